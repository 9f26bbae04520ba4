"""The distillation set: one JSONL schema that teaching writes, the store exports and training
reads. Each line is an AI2 question record plus its rationale and provenance:

    {"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey",
     "rationale", "teacher", "source", ...provenance columns}
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import tempfiles
from .errors import ConfigError, DataError
from .questions import DATASETS, SPLITS, Question, load_jsonl, read_jsonl

REQUIRED = ("id", "question", "answerKey", "rationale")


@dataclass(frozen=True)
class DistillRecord:
    """A question with the rationale a student should learn to write for it."""

    question: Question
    rationale: str
    teacher: str
    source: str = "teacher"  # or "human" for a reviewer's edit
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return self.question.to_ai2() | {"rationale": self.rationale, "teacher": self.teacher, "source": self.source} | self.extra

    @classmethod
    def from_json(cls, row: dict, source: str = "") -> DistillRecord:
        missing = [k for k in REQUIRED if k not in row] if isinstance(row, dict) else list(REQUIRED)
        if missing:
            raise DataError(f"missing field(s) {missing}; a distillation record needs {list(REQUIRED)}")
        if not isinstance(row["rationale"], str) or not row["rationale"].strip():
            raise DataError("empty rationale")
        question = Question.from_ai2(row, source or str(row.get("dataset", "")))
        if question.answer_key is None:
            raise DataError(f"question {question.id!r} has no answer key; distillation needs the gold answer")
        known = {"id", "question", "answerKey", "rationale", "teacher", "source"}
        extra = {k: v for k, v in row.items() if k not in known}
        return cls(question, row["rationale"].strip(), str(row.get("teacher") or "unknown"), str(row.get("source") or "teacher"), extra)


def load_distillation_set(path: Path | str) -> list[DistillRecord]:
    """Records from a distillation-set JSONL file; problems name the file and line."""
    path = Path(path)
    out, first_line = [], {}
    for number, row in read_jsonl(path):
        try:
            record = DistillRecord.from_json(row, path.stem)
        except DataError as e:
            raise DataError(f"{path}:{number}: {e}") from None
        q = record.question
        earlier = first_line.setdefault(q.id, (number, q))
        if _content(earlier[1]) != _content(q):
            raise DataError(
                f"{path}:{number}: id {q.id!r} is also on line {earlier[0]} with a different question; give each question its own id"
            )
        out.append(record)
    return out


def _content(q: Question) -> tuple:
    return q.stem, q.choices, q.answer_key


def join_rationales(rationale_file: Path | str, question_file: Path | str) -> list[DistillRecord]:
    """A rationale file (`id`, `rationale`, `teacher`, ...) joined on id with its questions,
    such as `rationales/flan_t5_arc_challenge_train.jsonl` with `arc_challenge/train.jsonl`."""
    rationale_file = Path(rationale_file)
    stamp = Path(question_file).stat().st_mtime_ns if Path(question_file).exists() else -1  # a missing file: load_jsonl says so
    questions = _questions_by_id(str(Path(question_file).resolve()), stamp)
    out = []
    for number, row in read_jsonl(rationale_file):
        where = f"{rationale_file}:{number}"
        if not isinstance(row, dict) or not isinstance(row.get("rationale"), str) or "id" not in row:
            raise DataError(f'{where}: a rationale line needs "id" and "rationale"')
        question = questions.get(str(row["id"]))
        if question is None:
            raise DataError(f"{where}: id {row['id']!r} is not in {question_file}; join each rationale file with its own split")
        extra = {k: row[k] for k in ("dataset", "split", "teacher_answer") if k in row}
        out.append(DistillRecord(question, row["rationale"].strip(), str(row.get("teacher") or "unknown"), "teacher", extra))
    return out


@functools.lru_cache(maxsize=8)
def _questions_by_id(path: str, mtime_ns: int) -> dict[str, Question]:
    """A question split by id, read once however many rationale files join it (keyed by mtime)."""
    return {q.id: q for q in load_jsonl(path)}


def rationale_question_file(rationale_file: Path, data_dir: Path) -> Path:
    """The question split a shared rationale file belongs to (`flan_t5_<dataset>_<split>.jsonl`)."""
    stem = Path(rationale_file).stem
    for dataset in DATASETS:
        for split in SPLITS:
            if stem.endswith(f"{dataset}_{split}"):
                return Path(data_dir) / dataset / f"{split}.jsonl"
    raise DataError(f"{rationale_file}: cannot tell its dataset and split from the name; pass the question file explicitly")


def load_any(path: Path | str, question_file: Path | str | None = None, data_dir: Path | str | None = None) -> list[DistillRecord]:
    """A distillation set, or a rationale file joined with its questions (given, or found in
    `data_dir` from the file's name)."""
    path = Path(path)
    first = next(iter(read_jsonl(path)), (0, {}))[1]
    if isinstance(first, dict) and "question" in first:
        return load_distillation_set(path)
    if question_file is None:
        if data_dir is None:
            raise DataError(f"{path.name} holds rationales only: give its question file or a data directory (--data-dir) to join them.")
        question_file = rationale_question_file(path, Path(data_dir))
    return join_rationales(path, question_file)


def load_student_rationales(paths: Iterable[Path | str]) -> dict[str, list[str]]:
    """Student rationales by question id, all of them: `{"id", "rationale"}` lines (an id may
    repeat), or the lines of `scicot eval`'s predictions.jsonl (every two-stage sample)."""
    return {i: [text for text, _ in samples] for i, samples in load_student_samples(paths).items()}


def load_student_samples(paths: Iterable[Path | str]) -> dict[str, list[tuple[str, str | None]]]:
    """As `load_student_rationales`, each text with the label its own answer sentence named when
    the line says so (a "conclusion" beside the text, as `scicot sample` and eval's
    predictions.jsonl keep it: the text they keep is the body, without that sentence), else None."""
    student: dict[str, list[tuple[str, str | None]]] = {}
    for path in paths:
        for number, row in read_jsonl(Path(path)):
            samples = _student_samples(row)
            if samples is None:
                raise ConfigError(
                    f'{path}:{number}: a student rationale line needs "id" and "rationale" (or is a line of eval\'s predictions.jsonl).'
                )
            student.setdefault(str(row["id"]), []).extend(samples)
    return student


def _student_samples(row) -> list[tuple[str, str | None]] | None:
    if not isinstance(row, dict) or "id" not in row:
        return None
    two = row.get("two-stage")
    if isinstance(two, dict):
        samples = two.get("samples")
        if isinstance(samples, list) and all(isinstance(x, dict) and isinstance(x.get("rationale"), str) for x in samples):
            return [(x["rationale"], _label(x.get("conclusion"))) for x in samples]
        return [(two["rationale"], None)] if isinstance(two.get("rationale"), str) else None
    return [(row["rationale"], _label(row.get("conclusion")))] if isinstance(row.get("rationale"), str) else None


def _label(value) -> str | None:
    return value if isinstance(value, str) and value else None


def rationale_files(data_dir: Path | str, patterns: Iterable[str], split: str = "train") -> list[Path]:
    """The rationale files of a data directory chosen by teacher (and level): each pattern is
    matched (shell-style) against the part of the name before `_<dataset>_<split>`, e.g.
    `gpt4o-level[1-3]`, `gemini15flash-*`, `entailmentbank`, `flan_t5`."""
    folder = Path(data_dir) / "rationales"
    files = sorted(folder.glob(f"*_{split}.jsonl")) if folder.is_dir() else []
    chosen: list[Path] = []
    for pattern in patterns:
        hits = [f for f in files if fnmatch.fnmatchcase(_teacher_part(f, split), pattern) and f not in chosen]
        if not hits:
            names = sorted({_teacher_part(f, split) for f in files})
            raise ConfigError(f"no {split} rationale file in {folder} matches {pattern!r}; choose from {names}.")
        chosen += hits
    return chosen


def _teacher_part(path: Path, split: str) -> str:
    stem = path.stem[: -len(f"_{split}")]
    for dataset in DATASETS:
        if stem.endswith(f"_{dataset}"):
            return stem[: -len(f"_{dataset}")]
    return stem


def write_jsonl_atomic(rows: Iterable[dict], path: Path | str) -> int:
    """Write rows as JSONL through `tempfiles.atomic`: never a partial file at `path`, and what a
    killed writer left beside it is cleared first. Returns how many rows were written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file path such as {path / 'distill.jsonl'}.")
    count = 0
    with tempfiles.atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def parse_fold(spec: str) -> tuple[int, int]:
    """'K/N' as (K, N): fold K (counted from 0) of N folds of the training questions."""
    k, slash, n = spec.partition("/")
    if not (slash and k.strip().isdigit() and n.strip().isdigit() and int(n) >= 2 and int(k) < int(n)):
        raise ConfigError(f"fold {spec!r} is not K/N with 0 <= K < N and N >= 2; e.g. 0/2 is the first of two folds.")
    return int(k), int(n)


def in_fold(question_id: str, fold: tuple[int, int]) -> bool:
    """Whether a question falls in a fold: by a hash of its id alone, so a training run that holds
    the fold out and the sampling that writes its rationales agree without sharing a list."""
    k, n = fold
    return int(hashlib.sha256(f"fold|{question_id}".encode()).hexdigest()[:8], 16) % n == k
