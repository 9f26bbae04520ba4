"""The app's real dependencies, built once per process: settings, the store, the model (loaded
once, shared by the student and the local stand-in teacher), adapter sets and teachers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from annotations.store import Store
from scicot_core.errors import DataError
from scicot_core.lm import LanguageModel
from scicot_core.student import Student, default_adapters, find_adapters
from scicot_core.questions import DATASETS, HUB_SPLITS, Question, load_split, sample_items, split_path
from scicot_core.settings import Settings, TeacherEndpoint, normalise_url
from scicot_core.teachers import STAND_IN_NOTE, HttpTeacher, LocalTeacher, ResponseCache, StoredTeacher, Teacher

SAMPLE_SOURCE = "SciCoT sample set"
MAX_LISTED = 500  # questions offered per source in the picker
DEFAULT_SET = "distilled (shipped)"
BASE_SET = "base model (no adapters)"


@dataclass
class Deps:
    """What handlers need; tests build one around a tiny model and a temporary store."""

    settings: Settings
    store: Store
    load_lm: Callable[[], LanguageModel]
    samples: list[tuple[Question, str]] = field(default_factory=sample_items)
    adapter_sets: dict[str, dict[str, Path]] = field(default_factory=dict)
    _lm: LanguageModel | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    retrain: dict = field(default_factory=dict)
    _questions: dict = field(default_factory=dict)
    _stored: StoredTeacher | None = None

    def lm(self) -> LanguageModel:
        """The one model of this process, loaded on first use."""
        with self._lock:
            if self._lm is None:
                self._lm = self.load_lm()
                for stages in self.adapter_sets.values():
                    for stage, path in stages.items():
                        self._lm.load_adapter(_adapter_name(path, stage), path)
            return self._lm

    def student(self, set_name: str | None, max_tokens: int = 64) -> Student:
        """A student using one adapter set (its stages under their plain names)."""
        lm = self.lm()
        stages = self.adapter_sets.get(set_name or "", {})
        return SetStudent(lm, {s: _adapter_name(p, s) for s, p in stages.items()}, max_tokens)

    def add_adapter_set(self, name: str, folder: Path) -> dict[str, Path]:
        stages = find_adapters(folder)
        if stages:
            self.adapter_sets[name] = stages
            if self._lm is not None:
                for stage, path in stages.items():
                    self._lm.load_adapter(_adapter_name(path, stage), path)
        return stages

    def teacher(self, name: str, url: str = "", model: str = "") -> Teacher:
        """The teacher for a typed question: the local stand-in, or an endpoint."""
        if name == "endpoint":
            return HttpTeacher(self.endpoint_for(url, model), ResponseCache(self.settings.cache_dir / "teacher-responses"))
        return LocalTeacher(self.lm(), STAND_IN_NOTE)

    def endpoint_for(self, url: str, model: str) -> TeacherEndpoint:
        """The endpoint a visitor may use: the operator's own (empty URL or the same one; the
        only one that gets the API key), or one on SCICOT_TEACHER_ALLOWED_URLS, without a key and
        with the typed bound. Any other URL is refused before anything is sent to it."""
        own, typed, model = self.settings.endpoint, normalise_url(url), (model or "").strip()
        if own and typed in ("", normalise_url(own.base_url)):
            return replace(own, model=model or own.model)
        if not typed:
            raise DataError("this server has no teacher endpoint of its own; enter an allowed base URL, or pick the local stand-in.")
        if typed not in self.settings.allowed_urls:
            # The typed URL is not echoed back: an error message is no place to reflect visitor input.
            raise DataError(
                "that endpoint URL is not allowed on this server; pick the local stand-in, "
                "or ask the operator to add it to SCICOT_TEACHER_ALLOWED_URLS."
            )
        bound = self.settings.typed_timeout_s
        return TeacherEndpoint(
            base_url=typed,
            model=model or (own.model if own else "gpt-4o-mini"),
            timeout_s=bound,
            max_retries=1,
            concurrency=1,
            deadline_s=bound,
            timeout_setting="SCICOT_TEACHER_TYPED_TIMEOUT",
        )

    def endpoint_help(self) -> str:
        """Which endpoint URLs the Ask tab accepts, for the URL box (the allow-list is public by
        the operator's choice; the API key is never part of it)."""
        allowed = ", ".join(self.settings.allowed_urls)
        own = "empty or as shown: this server's own endpoint" if self.settings.endpoint else "this server has no endpoint of its own"
        return f"{own}; others allowed: {allowed}" if allowed else f"{own}; no other URL is allowed (SCICOT_TEACHER_ALLOWED_URLS)"

    def question_sources(self) -> list[str]:
        """The sample set, then every `<dataset>/<split>` present in the data directory."""
        found = []
        if self.settings.data_dir:
            for dataset in DATASETS:
                found += [f"{dataset}/{split}" for split in HUB_SPLITS if split_path(self.settings.data_dir, dataset, split).exists()]
        return [SAMPLE_SOURCE, *found]

    def questions_in(self, source: str) -> list[Question]:
        """The questions of a source (read once, then kept)."""
        if source == SAMPLE_SOURCE:
            return [q for q, _ in self.samples]
        if source not in self.question_sources():
            raise DataError(f"unknown question source {source!r}; pick one from the list.")
        if source not in self._questions:
            dataset, split = source.split("/")
            self._questions[source] = load_split(dataset, split, self.settings.data_dir)
        return self._questions[source]

    def stored_rationale(self, question_id: str) -> tuple[str, str] | None:
        """(text, source) of a stored teacher rationale: the sample set's reference, one in the
        data directory's rationale files, or one imported into the store."""
        for q, text in self.samples:  # already in memory: no need to read the sample file again
            if q.id == question_id:
                return text, "hand-written reference rationale (SciCoT sample set)"
        stored = self._data_rationales()
        if stored and stored.has(question_id):
            text, model_id = stored.by_id[question_id]
            return text, f"stored teacher rationale ({model_id}; {stored.note})"
        rows = [r for r in self.store.rationales_for(question_id) if r["source"] in ("teacher", "human")]
        return (rows[-1]["text"], f"stored {rows[-1]['source']} rationale ({rows[-1]['model_id']})") if rows else None

    def _data_rationales(self) -> StoredTeacher | None:
        if self._stored is None:
            self._stored = StoredTeacher.from_data_dir(self.settings.data_dir)
        return self._stored


class SetStudent(Student):
    """A Student whose stage names map to adapter names of one set (several sets share the model)."""

    def __init__(self, lm: LanguageModel, names: dict[str, str], max_tokens: int):
        super().__init__(lm, max_rationale_tokens=max_tokens)
        self.names = names

    def has(self, stage: str) -> bool:
        return stage in self.names

    def _adapter(self, stage: str) -> str | None:
        return self.names.get(stage)

    @property
    def model_id(self) -> str:
        return self.lm.model_id + (f" + LoRA[{', '.join(sorted(self.names))}]" if self.names else "")


def _adapter_name(path: Path, stage: str) -> str:
    return f"{stage}@{Path(path).resolve()}"


def build_deps(settings: Settings) -> Deps:
    """The real dependencies for `app.py`."""
    from scicot_core.base_models import load_model

    store = Store(settings.db_path, reviewer_secret=settings.reviewer_secret)
    deps = Deps(settings, store, lambda: load_model(settings.student, settings.cache_dir, settings.offline, settings.threads))
    shipped = default_adapters(settings.adapters, settings.student)
    if shipped:
        deps.adapter_sets[DEFAULT_SET] = shipped
    deps.adapter_sets[BASE_SET] = {}
    runs = settings.cache_dir / "retrained"
    for folder in sorted(runs.glob("*")) if runs.is_dir() else []:
        deps.add_adapter_set(f"retrained {folder.name}", folder)
    return deps
