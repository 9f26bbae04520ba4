"""Teachers behind one protocol, looked up by name in one registry (`TEACHERS`) that the CLI's
help and the app's Ask tab are built from: an OpenAI-compatible chat-completions endpoint, a
local transformers model (the offline stand-in), and stored rationales. A new backend is one
row here (and its options in `settings.py`).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from . import tempfiles
from .errors import ConfigError, TeacherError
from .formats import teacher_messages
from .questions import Question, Rationale, read_jsonl, sample_items
from .settings import Settings, TeacherEndpoint, normalise_url

if TYPE_CHECKING:  # torch loads only when a model does: `scicot --help` stays quick
    from .lm import LanguageModel

STAND_IN_NOTE = (
    "small stand-in teacher (SmolLM2-135M-Instruct, not a large model): its rationales are often wrong; "
    "plug in a real teacher endpoint for distillation"
)


class Teacher(Protocol):
    """Writes rationales for questions, in `rationalize` (gold answer given) or `cot` mode."""

    model_id: str
    note: str

    def rationales(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale]: ...


# -- a cache keyed by endpoint, model and prompt, so nothing is paid for twice ---------------
class ResponseCache:
    """One JSON file per (endpoint, model, prompt) key under a directory; written atomically.
    The endpoint is in the key so that one server's replies are never served for another's."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, base_url: str, model: str, messages: list[dict]) -> Path:
        key = hashlib.sha256(json.dumps([normalise_url(base_url), model, messages], sort_keys=True).encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.json"

    def get(self, base_url: str, model: str, messages: list[dict]) -> str | None:
        path = self._path(base_url, model, messages)
        try:
            return json.loads(path.read_text())["text"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, base_url: str, model: str, messages: list[dict], text: str) -> None:
        path = self._path(base_url, model, messages)
        with tempfiles.atomic(path) as tmp:
            tmp.write_text(json.dumps({"base_url": normalise_url(base_url), "model": model, "text": text}))


# -- (a) an OpenAI-compatible endpoint --------------------------------------------------------
MAX_REPLY_BYTES = 1_000_000  # a chat completion of a few hundred tokens is a few kB

ADVICE = {
    "timeout": "the server is too slow: check it, or raise {setting}",
    "busy": "the server is overloaded or failing: retry later, or lower SCICOT_TEACHER_CONCURRENCY",
    "connect": "check the URL and that the server is running",
    "malformed": "is the URL an OpenAI-compatible /v1 endpoint?",
    "truncated": "its reply was cut off at the length limit: try a model that answers more briefly",
}


class _Retry(Exception):
    """One attempt's retryable problem: what happened, its kind (which picks the advice) and
    the wait a server asked for."""

    def __init__(self, problem: str, kind: str, wait: float | None = None):
        super().__init__(problem)
        self.problem, self.kind, self.wait = problem, kind, wait


class HttpTeacher:
    """A chat-completions endpoint: one deadline per question across retries (backoff honouring
    Retry-After), truncated or malformed replies retried and never cached, bounded concurrency,
    and a response cache."""

    RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(
        self,
        endpoint: TeacherEndpoint,
        cache: ResponseCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.endpoint = endpoint
        self.model_id = endpoint.model
        self.note = f"remote teacher at {endpoint.base_url}"
        self.cache = cache
        self.sleep = sleep
        self.clock = clock
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"HttpTeacher({self.endpoint!r})"  # the endpoint's repr leaves the key out

    def _client(self) -> httpx.Client:
        # httpx clients are not shared across threads here: one per worker thread. Redirects are
        # not followed: a reply may only come from the URL that was allowed.
        if getattr(self._local, "client", None) is None:
            headers = {"Authorization": f"Bearer {self.endpoint.api_key}"} if self.endpoint.api_key else {}
            self._local.client = httpx.Client(timeout=self.endpoint.timeout_s, headers=headers, follow_redirects=False)
        return self._local.client

    def complete(self, messages: list[dict], max_tokens: int = 256) -> str:
        """One chat completion's text, from the cache when this endpoint and model have seen this prompt."""
        base_url = self.endpoint.base_url
        if self.cache and (hit := self.cache.get(base_url, self.model_id, messages)) is not None:
            return hit
        text = self._post_with_retries(messages, max_tokens)
        if self.cache:
            self.cache.put(base_url, self.model_id, messages, text)
        return text

    def _post_with_retries(self, messages: list[dict], max_tokens: int) -> str:
        url = normalise_url(self.endpoint.base_url) + "/chat/completions"
        start = self.clock()
        deadline = start + self.endpoint.deadline
        grown = False
        for attempt in range(self.endpoint.max_retries + 1):
            try:
                return self._post_once(url, messages, max_tokens, deadline)
            except _Retry as e:
                last = e
            if last.kind == "truncated":
                if grown:
                    raise TeacherError(f"teacher at {url} cut its reply off twice (at max_tokens={max_tokens}); {ADVICE['truncated']}.")
                grown, max_tokens, wait = True, 2 * max_tokens, 0.0
            else:
                wait = last.wait if last.wait is not None else backoff(attempt)
            # Retries share the question's one deadline: no wait or attempt past it.
            if attempt == self.endpoint.max_retries or self.clock() + wait >= deadline:
                break
            self.sleep(wait)
        advice = ADVICE[last.kind].format(setting=self.endpoint.timeout_setting)
        tries = f"{attempt + 1} time{'s' if attempt else ''}"
        raise TeacherError(f"teacher at {url} failed {tries} in {self.clock() - start:.0f} s (last: {last.problem}); {advice}.")

    def _post_once(self, url: str, messages: list[dict], max_tokens: int, deadline: float) -> str:
        body = {"model": self.model_id, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise _Retry("out of time", "timeout")
        try:
            with self._client().stream("POST", url, json=body, timeout=min(self.endpoint.timeout_s, remaining)) as response:
                if response.status_code == 200:
                    return _completion_text(self._read(response, deadline))
                if response.status_code in self.RETRY_STATUS:
                    raise _Retry(f"HTTP {response.status_code}", "busy", retry_after(response.headers.get("Retry-After")))
        except httpx.TimeoutException:
            raise _Retry(f"timed out (limit {min(self.endpoint.timeout_s, remaining):g} s)", "timeout") from None
        except httpx.HTTPError as e:
            raise _Retry(f"could not connect ({e.__class__.__name__})", "connect") from None
        # The reply body is never shown: the server may be an internal one answering with a
        # page nobody outside should read. The status is enough to act on.
        raise TeacherError(f"teacher at {url} answered HTTP {response.status_code}; check the URL, model name and API key.")

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        """The reply body, cut short when it grows past MAX_REPLY_BYTES or the deadline (a
        server dripping bytes would otherwise hold a worker for ever)."""
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise _Retry(f"reply larger than {MAX_REPLY_BYTES:,} bytes", "malformed")
            if self.clock() > deadline:
                raise _Retry("timed out while reading the reply", "timeout")
            chunks.append(chunk)
        return b"".join(chunks)

    def outcomes(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale | TeacherError]:
        """Each question's rationale, or the TeacherError that stopped it; the others still finish."""

        def one(question: Question) -> Rationale | TeacherError:
            messages = teacher_messages(question, mode)
            start = time.perf_counter()
            try:
                text = self.complete(messages)
            except TeacherError as e:
                return e
            ms = int((time.perf_counter() - start) * 1000)
            return Rationale(question.id, text.strip(), "teacher", self.model_id, ms, self.note, {"mode": mode})

        with ThreadPoolExecutor(max_workers=max(1, self.endpoint.concurrency)) as pool:
            return list(pool.map(one, questions))

    def rationales(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale]:
        out = self.outcomes(questions, mode)
        for r in out:
            if isinstance(r, TeacherError):
                raise r
        return out


def _completion_text(raw: bytes) -> str:
    """The text of a chat completion; a malformed, empty or truncated one is a retryable problem."""
    try:
        choice = json.loads(raw)["choices"][0]
        text, finish = choice["message"]["content"], choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _Retry("the reply was not a chat completion", "malformed") from None
    if finish == "length":
        raise _Retry("the reply was cut off at max_tokens", "truncated")
    if not isinstance(text, str) or not text.strip():
        raise _Retry("the completion was empty", "malformed")
    return text


def retry_after(value: str | None, cap: float = 60.0) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        pass
    try:
        return min(max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0), cap)
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, base: float = 0.5, cap: float = 20.0) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4 ... seconds."""
    return min(cap, base * 2**attempt) * (0.5 + random.random() / 2)


# -- (b) a local transformers model -------------------------------------------------------------
class LocalTeacher:
    """A local chat model as teacher; offline that is the small SmolLM2 stand-in, labelled so."""

    def __init__(self, lm: LanguageModel, note: str = STAND_IN_NOTE, max_new_tokens: int = 96):
        self.lm = lm
        self.model_id = lm.model_id
        self.note = note
        self.max_new_tokens = max_new_tokens

    def rationales(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale]:
        prompts = [self.lm.chat_prompt(teacher_messages(q, mode)) for q in questions]
        start = time.perf_counter()
        texts = self.lm.generate(prompts, max_new_tokens=self.max_new_tokens)
        ms = int((time.perf_counter() - start) * 1000 / max(1, len(questions)))
        return [Rationale(q.id, t, "teacher", self.model_id, ms, self.note, {"mode": mode}) for q, t in zip(questions, texts)]


# -- (c) stored rationales ----------------------------------------------------------------------
class StoredTeacher:
    """Rationales written earlier, such as a distillation set's JSONL (`id`, `rationale`, `teacher`)."""

    def __init__(self, by_id: dict[str, tuple[str, str]], model_id: str = "stored", note: str = "stored rationales"):
        self.by_id = by_id
        self.model_id = model_id
        self.note = note

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> StoredTeacher:
        by_id: dict[str, tuple[str, str]] = {}
        names = []
        for path in paths:
            names.append(Path(path).name)
            for number, row in read_jsonl(Path(path)):
                if not isinstance(row, dict) or not row.get("id") or not isinstance(row.get("rationale"), str):
                    raise TeacherError(f'{path}:{number}: a stored rationale needs "id" and "rationale".')
                by_id[str(row["id"])] = (row["rationale"], str(row.get("teacher") or "stored"))
        return cls(by_id, model_id="stored", note="stored rationales from " + ", ".join(names))

    @classmethod
    def from_data_dir(cls, data_dir: Path | None) -> StoredTeacher | None:
        """The rationale files of a data directory (`<data_dir>/rationales/*.jsonl`), or None."""
        folder = Path(data_dir) / "rationales" if data_dir else None
        files = sorted(folder.glob("*.jsonl")) if folder and folder.is_dir() else []
        return cls.from_files(files) if files else None

    @classmethod
    def samples(cls) -> StoredTeacher:
        """The bundled sample set's reference rationales."""
        by_id = {q.id: (text, "reference (SciCoT sample set)") for q, text in sample_items()}
        return cls(by_id, model_id="reference (SciCoT sample set)", note="hand-written reference rationale")

    def has(self, question_id: str) -> bool:
        return question_id in self.by_id

    def rationales(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale]:
        missing = [q.id for q in questions if q.id not in self.by_id]
        if missing:
            raise TeacherError(
                f"no stored rationale for {missing[:3]}{'...' if len(missing) > 3 else ''}; use a teacher that writes one (e.g. --teacher stand-in)."
            )
        out = []
        for q in questions:
            text, model_id = self.by_id[q.id]
            out.append(Rationale(q.id, text, "teacher", model_id, 0, self.note, {"mode": "stored"}))
        return out


# -- (d) the memory: no model asked ------------------------------------------------------------
MEMORY_NOTE = "not written for this question: the memory's nearest facts from teacher and human rationales of training questions"


class MemoryTeacher:
    """Where no teacher model is at hand: the facts the memory (scicot_core/memory.py) holds
    nearest to the question (never those of its own rationales), one query per choice,
    labelled as such with where each came from."""

    model_id = "memory (BM25 over teacher and human facts)"
    note = MEMORY_NOTE

    def __init__(self, path: Path, k: int = 4):
        self.path, self.k = Path(path), k

    def rationales(self, questions: Sequence[Question], mode: str = "rationalize") -> list[Rationale]:
        from .memory import Memory, as_rationale

        store = Memory(self.path)
        try:
            out = []
            for q in questions:
                start = time.perf_counter()
                facts = store.with_sources(store.for_question(q, self.k, "per-choice", exclude_own=True))
                ms = int((time.perf_counter() - start) * 1000)
                note = self.note + (": " + "; ".join(dict.fromkeys(f.source for f in facts)) if facts else " (none matched)")
                meta = {"mode": "memory", "facts": [f.shown() for f in facts]}
                out.append(Rationale(q.id, as_rationale(facts), "teacher", self.model_id, ms, note, meta))
            return out
        finally:
            store.close()


def _memory(settings: Settings, _load) -> Teacher:
    from .memory import ensure

    return MemoryTeacher(ensure(settings.memory_file, settings.data_dir))  # the app's own adds the store's: demo/deps.py


# -- the registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    """One kind of teacher: its name (`--teacher`, `SCICOT_TEACHER`), a label for the app, and
    how to build it from the settings and a loader of the local model."""

    name: str
    label: str
    build: Callable[[Settings, Callable[[], LanguageModel]], Teacher]
    uses_endpoint: bool = False  # reads `settings.endpoint` (in the app: the URL and model typed)
    in_app: bool = True  # offered in the app's Ask tab for questions without a stored rationale


def _http(settings: Settings, _load) -> Teacher:
    if settings.endpoint is None:
        raise ConfigError("teacher 'http' needs SCICOT_TEACHER_URL (and SCICOT_TEACHER_MODEL, SCICOT_TEACHER_API_KEY).")
    return HttpTeacher(settings.endpoint, ResponseCache(settings.cache_dir / "teacher-responses"))


def _stored(settings: Settings, _load) -> Teacher:
    stored = StoredTeacher.from_data_dir(settings.data_dir)
    if stored is None:
        raise ConfigError("teacher 'stored' needs rationale files in $SCICOT_DATA_DIR/rationales/*.jsonl.")
    return stored


TEACHERS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("memory", "The memory's nearest facts (no model asked)", _memory),
        Backend("stand-in", "Local stand-in (small, often wrong)", lambda settings, load: LocalTeacher(load())),
        Backend("http", "Remote endpoint", _http, uses_endpoint=True),
        Backend("stored", "Stored rationales (data directory)", _stored, in_app=False),
        Backend("sample", "The sample set's reference rationales", lambda settings, load: StoredTeacher.samples(), in_app=False),
    )
}


def get_teacher(name: str, settings: Settings, load_local: Callable[[], LanguageModel]) -> Teacher:
    """The teacher called `name`; `load_local` supplies the local model when one is needed."""
    if name not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}.")
    return TEACHERS[name].build(settings, load_local)


def teacher_names() -> str:
    """The registered teachers' names, for help texts."""
    return ", ".join(TEACHERS)
