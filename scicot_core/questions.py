"""Questions and rationales, and the loaders that make them: AI2 JSONL files (ARC-Easy,
ARC-Challenge, OpenBookQA), the Hugging Face hub when online, and the bundled sample set.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import DataError

MIN_CHOICES, MAX_CHOICES = 2, 9
# One limit for every way a question comes in (typed in the app or `scicot ask`, imported, loaded);
# the longest real ARC/OpenBookQA stem is 831 characters and the longest choice 192.
MAX_STEM_CHARS, MAX_CHOICE_CHARS = 2_000, 300
MAX_JSON_DEPTH = 32  # an AI2 record nests 4 deep; far deeper is an attack on the parser, not data
LABELS = "ABCDEFGHI"

# The data sets and splits, named once here; every other place reads them from these.
# name -> (hub dataset, hub config); our split names map to the hub's below.
DATASETS = {
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy"),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge"),
    "openbookqa": ("allenai/openbookqa", "main"),
}
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
SPLITS = tuple(HUB_SPLITS)


@dataclass(frozen=True)
class Choice:
    label: str
    text: str


@dataclass(frozen=True)
class Question:
    """A multiple-choice question with 2 to 9 labelled choices and an optional answer key."""

    id: str
    stem: str
    choices: tuple[Choice, ...]
    answer_key: str | None = None
    source: str = ""

    def __post_init__(self):
        problem = _problem(self)
        if problem:
            raise DataError(f"question {self.id!r}: {problem}")

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.choices]

    def choice(self, label: str) -> Choice:
        for c in self.choices:
            if c.label == label:
                return c
        raise DataError(f"question {self.id!r} has no choice {label!r}; choose one of {self.labels}.")

    def to_ai2(self) -> dict:
        """The AI2 JSONL record for this question."""
        choices = [{"text": c.text, "label": c.label} for c in self.choices]
        return {"id": self.id, "question": {"stem": self.stem, "choices": choices}, "answerKey": self.answer_key}

    @classmethod
    def from_ai2(cls, row: dict, source: str = "") -> Question:
        """Build from an AI2 JSONL record; raises DataError naming the problem."""
        if not isinstance(row, dict):
            raise DataError("a record must be a JSON object")
        q = row.get("question")
        if not isinstance(q, dict) or not isinstance(q.get("choices"), list):
            raise DataError('missing "question" with "stem" and "choices"')
        if "id" not in row or "stem" not in q:
            raise DataError('missing field "id" or "question.stem"')
        if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)):
            raise DataError(f'"id" must be a string or a whole number, not {type(row["id"]).__name__}')
        choices = []
        for c in q["choices"]:
            if not isinstance(c, dict) or "label" not in c or "text" not in c:
                raise DataError('every choice needs "label" and "text"')
            choices.append(Choice(str(c["label"]).strip(), str(c["text"]).strip()))
        key = row.get("answerKey")
        key = str(key).strip() if key not in (None, "") else None
        return cls(str(row["id"]), str(q["stem"]).strip(), tuple(choices), key, source)


@dataclass(frozen=True)
class Rationale:
    """A rationale for a question: who wrote it, with what, and how long it took."""

    question_id: str
    text: str
    source: str  # "teacher", "student" or "human"
    model_id: str
    duration_ms: int = 0
    note: str = ""  # e.g. "small stand-in teacher: often wrong"
    meta: dict = field(default_factory=dict, compare=False)


def _problem(q: Question) -> str | None:
    if not q.id:
        return "empty id"
    if not q.stem:
        return "empty question stem"
    if not q.choices:
        return "no choices"
    if not MIN_CHOICES <= len(q.choices) <= MAX_CHOICES:
        return f"{len(q.choices)} choices; a question needs {MIN_CHOICES} to {MAX_CHOICES}"
    if len(q.stem) > MAX_STEM_CHARS:
        return f"the stem is {len(q.stem):,} characters; keep it under {MAX_STEM_CHARS}"
    long = [c for c in q.choices if len(c.text) > MAX_CHOICE_CHARS]
    if long:
        return f"choice {long[0].label} is {len(long[0].text):,} characters; keep each choice under {MAX_CHOICE_CHARS}"
    labels = [c.label for c in q.choices]
    if any(not label for label in labels) or any(not c.text for c in q.choices):
        return "a choice has an empty label or text"
    if len(set(labels)) != len(labels):
        return f"duplicate choice labels {labels}"
    if q.answer_key is not None and q.answer_key not in labels:
        return f"answer key {q.answer_key!r} is not among the labels {labels}"
    return None


def typed_question(stem: str, choices: Sequence[str], answer_key: str | None) -> Question:
    """A question someone typed (the app, `scicot ask`): choices labelled A, B, C ... in order,
    its id `typed-<hash of stem and choices>`, so the same question typed twice is one question.
    Stricter than a data file: two choices that read the same (ignoring spacing) are refused.
    Case counts, since real genetics questions offer both "Rr" and "RR"; published data keeps
    its few exact repeats (three OpenBookQA train questions), so loaders do not apply this."""
    stem = _typed(stem)
    texts = [t for t in map(_typed, choices) if t]
    if not stem:
        raise DataError("type a question.")
    if len(stem) > MAX_STEM_CHARS:
        raise DataError(f"the question is {len(stem):,} characters; keep it under {MAX_STEM_CHARS}.")
    if not MIN_CHOICES <= len(texts) <= MAX_CHOICES:
        raise DataError(f"give {MIN_CHOICES} to {MAX_CHOICES} choices (you gave {len(texts)}).")
    for label, text in zip(LABELS, texts):
        if len(text) > MAX_CHOICE_CHARS:
            raise DataError(f"choice {label} is {len(text):,} characters; keep each choice under {MAX_CHOICE_CHARS}.")
    seen: dict[str, str] = {}
    for label, text in zip(LABELS, texts):
        key = " ".join(text.split())
        if key in seen:
            raise DataError(f"choices {seen[key]} and {label} are the same ({text!r}); give each choice once.")
        seen[key] = label
    key = (answer_key or "").strip().upper() or None
    question_id = "typed-" + hashlib.sha256(json.dumps([stem, texts]).encode()).hexdigest()[:12]
    return Question(question_id, stem, tuple(Choice(label, t) for label, t in zip(LABELS, texts)), key, "typed")


def _typed(text) -> str:
    """Typed text without control characters (a stem of only those is no question) or edge spaces."""
    if not isinstance(text, str):
        return ""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in "\n\t").strip()


def read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; DataError names file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check the path.") from None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value, too_deep = json.loads(line.decode("utf-8")), False
        except RecursionError:  # nested past the parser's own stack
            value, too_deep = None, True
        except UnicodeDecodeError:
            raise DataError(f"{path}:{number}: not valid UTF-8; re-save the file as UTF-8.") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not JSON ({e.msg}); each line must be one JSON object.") from None
        if too_deep or _too_deep(value):
            raise DataError(
                f"{path}:{number}: JSON nested more than {MAX_JSON_DEPTH} levels deep; a question or rationale record nests a few levels at most."
            )
        yield number, value


def _too_deep(value) -> bool:
    """Whether `value` nests past MAX_JSON_DEPTH; iterative, so it cannot itself overflow."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def load_jsonl(path: Path | str, source: str | None = None) -> list[Question]:
    """Questions from an AI2-layout JSONL file; every problem names the file and line."""
    path = Path(path)
    source = source or path.stem
    questions, seen = [], set()
    for number, row in read_jsonl(path):
        try:
            question = Question.from_ai2(row, source)
        except DataError as e:
            raise DataError(f"{path}:{number}: {e}") from None
        if question.id in seen:
            raise DataError(f"{path}:{number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions


def split_path(data_dir: Path, dataset: str, split: str) -> Path:
    """Where a split lives in a data directory laid out as `<dataset>/<split>.jsonl`."""
    _check_name(dataset, split)
    return Path(data_dir) / dataset / f"{split}.jsonl"


def load_split(dataset: str, split: str, data_dir: Path | None = None, offline: bool = True) -> list[Question]:
    """A dataset split from a local data directory, or from the hub when online."""
    _check_name(dataset, split)
    if data_dir is not None:
        path = split_path(data_dir, dataset, split)
        if not path.exists():
            raise DataError(f"{path} does not exist; point --data-dir (or SCICOT_DATA_DIR) at a folder with {dataset}/{split}.jsonl.")
        return load_jsonl(path, source=f"{dataset}/{split}")
    if offline:
        raise DataError(
            f"no data directory for {dataset}/{split}: set SCICOT_DATA_DIR or pass --data-dir, or set SCICOT_ONLINE=1 to load it from the hub."
        )
    return load_hub(dataset, split)


def load_hub(dataset: str, split: str) -> list[Question]:
    """A split from the Hugging Face hub (`allenai/ai2_arc`, `allenai/openbookqa`)."""
    _check_name(dataset, split)
    import datasets  # heavy; only when online

    repo, config = DATASETS[dataset]
    rows = datasets.load_dataset(repo, config, split=HUB_SPLITS[split])
    return [_from_hub_row(row, f"{dataset}/{split}") for row in rows]


def _from_hub_row(row: dict, source: str) -> Question:
    stem = row.get("question") or row.get("question_stem")
    ch = row["choices"]
    choices = [{"text": t, "label": lab} for t, lab in zip(ch["text"], ch["label"])]
    record = {"id": row["id"], "question": {"stem": stem, "choices": choices}, "answerKey": row.get("answerKey")}
    return Question.from_ai2(record, source)


def _check_name(dataset: str, split: str) -> None:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}.")
    if split not in HUB_SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(HUB_SPLITS)}.")


SAMPLE_FILE = "sample_questions.jsonl"


def sample_items() -> list[tuple[Question, str]]:
    """The bundled sample set: (question, reference rationale) pairs across four sciences."""
    path = resources.files("scicot_core") / "data" / SAMPLE_FILE
    with resources.as_file(path) as p:
        rows = list(read_jsonl(p))
        return [(Question.from_ai2(row, f"sample/{row['topic']}"), row["rationale"]) for _, row in rows]


def sample_questions() -> list[Question]:
    """Just the questions of the bundled sample set."""
    return [q for q, _ in sample_items()]
