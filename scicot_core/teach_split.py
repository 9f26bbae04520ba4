"""Teaching: teacher rationales for a split, written as a distillation set chunk by chunk, so a
stopped run resumes where it was (ids already written are skipped) and questions the teacher
failed on are asked again."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from .distillation_set import DistillRecord
from .errors import DataError, TeacherError
from .formats import TEACHER_MODES, extract_answer
from .questions import Question, Rationale
from .teachers import Teacher


def done_ids(path: Path) -> set[str]:
    """Ids already in an output file; a torn last line (a killed run) is cut off."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1].strip():
        try:
            json.loads(lines[-1])
        except ValueError:
            with open(path, "r+b") as f:
                f.truncate(len(raw) - len(lines[-1]))
            lines = lines[:-1]
    ids = set()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: not a distillation record; write to a new file or repair this one.") from None
    return ids


def teach(
    teacher: Teacher,
    questions: Sequence,
    out: Path,
    mode: str = "rationalize",
    chunk: int = 16,
    progress: Callable[[int], None] | None = None,
    on_error: Callable[[Question, TeacherError], None] | None = None,
) -> dict:
    """Write teacher rationales for questions not yet in `out`. Only rationales concluding with
    the gold answer are kept (in `rationalize` mode, one naming no answer is kept too). A question
    the teacher fails on is counted, passed to `on_error` and left for a later run. Returns counts."""
    if mode not in TEACHER_MODES:
        raise DataError(f"unknown mode {mode!r}; choose one of {TEACHER_MODES}.")
    missing = [q for q in questions if q.answer_key is None]
    if missing:
        raise DataError(f"{len(missing)} questions have no answer key (e.g. {missing[0].id!r}); teaching needs the gold answer.")
    done = done_ids(out)
    todo = [q for q in questions if q.id not in done]
    counts = {"skipped_done": len(questions) - len(todo), "written": 0, "dropped_wrong": 0, "failed": 0}
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        outcomes = _outcomes(teacher, part, mode)
        errors = [r for r in outcomes if isinstance(r, TeacherError)]
        if len(errors) == len(part) and i + chunk < len(todo):
            # A teacher failing on a whole chunk (a wrong key, a dead server) would fail on the
            # rest too: stop instead of spending a deadline on every remaining question.
            raise TeacherError(
                f"the teacher failed on all {len(part)} questions of a batch, so the run stopped "
                f"({counts['written']} written so far; rerun the same command to resume): {errors[0]}"
            )
        lines = []
        for q, r in zip(part, outcomes):
            if isinstance(r, TeacherError):
                counts["failed"] += 1
                if on_error:
                    on_error(q, r)
            elif _wrong_conclusion(r.text, q, mode):
                counts["dropped_wrong"] += 1
            else:
                extra = {"mode": mode, "dataset": q.source, "duration_ms": r.duration_ms, "teacher_note": r.note}
                lines.append(json.dumps(DistillRecord(q, r.text, r.model_id, "teacher", extra).to_json(), ensure_ascii=False) + "\n")
        _append(out, lines)
        counts["written"] += len(lines)
        if progress:
            progress(len(part))
    return counts


def _wrong_conclusion(text: str, question: Question, mode: str) -> bool:
    """Whether a rationale concludes with an answer other than the gold one. In `cot` mode a
    rationale naming no answer counts as wrong too; a rationalization was told the answer, so
    only one naming a different label is (training on it would teach a contradiction)."""
    said = extract_answer(text, question)
    return said != question.answer_key and (mode == "cot" or said is not None)


def _outcomes(teacher: Teacher, questions: Sequence[Question], mode: str) -> list[Rationale | TeacherError]:
    """Each question's rationale or the TeacherError that stopped it, so that one failure does
    not sink a batch. A teacher without `outcomes` is asked one question at a time once its
    batch has failed."""
    outcomes = getattr(teacher, "outcomes", None)
    if outcomes is not None:
        return outcomes(questions, mode)
    try:
        return list(teacher.rationales(questions, mode))
    except TeacherError as e:
        if len(questions) == 1:
            return [e]
    return [r for q in questions for r in _outcomes(teacher, [q], mode)]


def _append(out: Path, lines: list[str]) -> None:
    if not lines:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        f.writelines(lines)
