"""The app's real dependencies, built once per process, each piece with one job: the one shared
model, the named adapter sets (students) on it, the question sources, and the teachers a
visitor may ask; `Deps` holds them beside the settings and the store."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from annotations.store import Store
from scicot_core.errors import DataError, ModelError, ScicotError
from scicot_core.lm import LanguageModel
from scicot_core.questions import DATASETS, HUB_SPLITS, Question, load_split, sample_items, split_path
from scicot_core.settings import Settings, TeacherEndpoint, normalise_url
from scicot_core.student import MAX_RATIONALE_TOKENS, Student, default_adapters, find_adapters
from scicot_core.teachers import TEACHERS, StoredTeacher, Teacher, get_teacher

from .retrain import PARTIAL, STAGES, Retraining, runs_dir

SAMPLE_SOURCE = "SciCoT sample set"
MAX_LISTED = 500  # questions offered per source in the picker
DEFAULT_SET = "distilled (shipped)"
BASE_SET = "base model (no adapters)"

log = logging.getLogger(__name__)


class SharedModel:
    """The one model of this process, loaded on first use (by whichever thread comes first)."""

    def __init__(self, load: Callable[[], LanguageModel]):
        self._load = load
        self._lm: LanguageModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LanguageModel:
        with self._lock:
            if self._lm is None:
                self._lm = self._load()
            return self._lm


class AdapterSets:
    """Named adapter sets (stage -> folder), each a student on the shared model. Retraining adds
    sets from a background thread while handlers read them, so the table is behind a lock. A set
    whose adapters fail to load is dropped and never offered; why, in plain words, is kept in
    `failures()` for the reviewer (the full error goes to the server log)."""

    def __init__(self, model: SharedModel):
        self.model = model
        self._sets: dict[str, dict[str, Path]] = {}
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return list(self._sets)

    def failures(self) -> dict[str, str]:
        """The sets that are not offered, each with the reason in words without server paths."""
        with self._lock:
            return dict(self._failures)

    def stages(self, name: str) -> dict[str, Path]:
        with self._lock:
            return dict(self._sets.get(name, {}))

    def add(self, name: str, stages: dict[str, Path]) -> None:
        with self._lock:
            self._sets[name] = dict(stages)
            self._failures.pop(name, None)

    def add_folder(self, name: str, folder: Path, required: tuple[str, ...] = (), load: bool = False) -> str | None:
        """Add the stage adapters found in a folder as a set: only when it holds every `required`
        stage and (with `load`) they load on the shared model. Returns None, or why it was not added."""
        stages = find_adapters(folder)
        missing = [s for s in required if s not in stages]
        if not stages or missing:
            return self._fail(name, f"its folder holds no {' or '.join(missing) or 'stage'} adapter; retrain it.")
        if load:
            problem = self._load(name, stages)
            if problem:
                return problem
        self.add(name, stages)
        return None

    def student(self, name: str | None, max_tokens: int = MAX_RATIONALE_TOKENS, merge: bool = False) -> Student:
        """The student of one set (an empty name: the bare base model), with its ask stages merged
        into copies of the base when `merge`. A set that fails to load is dropped, and the error
        says so without the server's paths."""
        if name and name not in self.names():
            why = self.failures().get(name, "there is no such student")
            raise ModelError(f"the student {name!r} is not offered: {why} Choose another.")
        lm, stages = self.model.get(), self.stages(name or "")
        try:
            return Student(lm, stages, max_rationale_tokens=max_tokens, merge=merge)
        except Exception:  # a broken adapter folder fails in PEFT, safetensors or json alike
            raise ModelError(f"the student {name!r} is not offered: {self._broken(name or '')} Choose another.") from None

    def _load(self, name: str, stages: dict[str, Path]) -> str | None:
        lm = self.model.get()
        try:
            Student(lm, stages)
            return None
        except Exception:  # as in `student`
            return self._broken(name)

    def _broken(self, name: str) -> str:
        log.exception("adapter set %r failed to load", name)
        return self._fail(name, "its adapters could not be loaded (damaged, or made for another base model); retrain it.")

    def _fail(self, name: str, why: str) -> str:
        with self._lock:
            self._sets.pop(name, None)
            self._failures[name] = why
        return why

    def warm(self, merged: str | None = None) -> None:
        """Load the model and every set's adapters, and merge the ask stages of the set named
        `merged`, so that the first ask finds them ready (a set that fails is dropped)."""
        self.model.get()
        for name in self.names():
            if not self._load(name, self.stages(name)) and name == merged:
                self.student(name, merge=True).merged_copies()


class QuestionSources:
    """Where the Ask tab's questions come from (the sample set and the data directory's splits),
    and the teacher rationale already stored for one, if any."""

    def __init__(self, data_dir: Path | None, store: Store, samples: list[tuple[Question, str]] | None = None):
        self.data_dir = data_dir
        self.store = store
        self.samples = sample_items() if samples is None else samples
        self._questions: dict[str, list[Question]] = {}
        self._stored: StoredTeacher | None = None

    def sources(self) -> list[str]:
        """The sample set, then every `<dataset>/<split>` present in the data directory."""
        found = []
        if self.data_dir:
            for dataset in DATASETS:
                found += [f"{dataset}/{split}" for split in HUB_SPLITS if split_path(self.data_dir, dataset, split).exists()]
        return [SAMPLE_SOURCE, *found]

    def questions_in(self, source: str) -> list[Question]:
        """The questions of a source (read once, then kept)."""
        if source == SAMPLE_SOURCE:
            return [q for q, _ in self.samples]
        if source not in self.sources():
            raise DataError(f"unknown question source {source!r}; pick one from the list.")
        if source not in self._questions:
            dataset, split = source.split("/")
            self._questions[source] = load_split(dataset, split, self.data_dir)
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
            self._stored = StoredTeacher.from_data_dir(self.data_dir)
        return self._stored


class VisitorTeachers:
    """The teachers a visitor may pick for a question without a stored rationale: the registry's
    app backends, built by the registry, with the typed-endpoint policy applied first."""

    def __init__(self, settings: Settings, model: SharedModel):
        self.settings = settings
        self.model = model

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) of each registered teacher offered in the Ask tab."""
        return [(b.label, b.name) for b in TEACHERS.values() if b.in_app]

    def build(self, name: str, url: str = "", model: str = "") -> Teacher:
        """The teacher `name`; one that talks to an endpoint gets the one `endpoint_for` allows."""
        settings = self.settings
        if name in TEACHERS and TEACHERS[name].uses_endpoint:
            settings = replace(settings, endpoint=self.endpoint_for(url, model))
        return get_teacher(name, settings, self.model.get)

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


class Deps:
    """What handlers need; tests build one around a tiny model and a temporary store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        load_lm: Callable[[], LanguageModel],
        samples: list[tuple[Question, str]] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.model = SharedModel(load_lm)
        self.students = AdapterSets(self.model)
        self.questions = QuestionSources(settings.data_dir, store, samples)
        self.teachers = VisitorTeachers(settings, self.model)
        self.retrain = Retraining()
        self._memory = None
        self._memory_lock = threading.Lock()
        self.memory_problem: str | None = None

    @property
    def memory(self):
        """The student's memory (scicot_core/memory.py), built on first use beside the store with
        the store's accepted rationales; None (logged once) when it cannot be had, so that asking
        goes on without it."""
        with self._memory_lock:
            if self._memory is None and self.memory_problem is None:
                try:
                    self._memory = open_memory(self.settings, self.store)
                except (ScicotError, OSError, sqlite3.Error) as e:
                    self.memory_problem = str(e)
                    log.warning("the memory is not available: %s", e)
            return self._memory


def open_memory(settings: Settings, store: Store):
    """The memory, built first where there is none (or an outdated one): the data directory's
    training rationales (or the sample set's), and the store's accepted ones."""
    from annotations.export import export_rows
    from scicot_core import memory

    def accepted():
        return memory.store_rows(export_rows(store.curation_rows()), memory.held_out_ids(settings.data_dir), skip_held_out=True)

    return memory.Memory(memory.ensure(settings.memory_file, settings.data_dir, accepted))


def build_deps(settings: Settings) -> Deps:
    """The real dependencies for `app.py`."""
    from scicot_core.base_models import load_model

    store = Store(settings.db_path, reviewer_secret=settings.reviewer_secret)
    deps = Deps(settings, store, lambda: load_model(settings.student, settings.cache_dir, settings.offline, settings.threads))
    shipped = default_adapters(settings.adapters, settings.student)
    if shipped:
        deps.students.add(DEFAULT_SET, shipped)
    deps.students.add(BASE_SET, {})
    runs = runs_dir(settings)
    for folder in sorted(runs.glob("*")) if runs.is_dir() else []:
        if not folder.name.endswith(PARTIAL):  # a run that did not finish, kept for its checkpoints
            deps.students.add_folder(f"retrained {folder.name}", folder, required=STAGES)
    threading.Thread(target=_warm_memory, args=(deps,), name="memory", daemon=True).start()
    return deps


def _warm_memory(deps: Deps) -> None:
    """The memory built, if need be, and its search index loaded, before the first ask."""
    memory = deps.memory
    if memory is not None:
        memory.warm()
