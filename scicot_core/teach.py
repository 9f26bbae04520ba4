"""Teaching: teacher rationales for a split, written as a distillation set line by line, so a
stopped run resumes where it was (ids already written are skipped)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from .distill import DistillRecord
from .errors import DataError
from .formats import TEACHER_MODES, extract_answer
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
) -> dict:
    """Write teacher rationales for questions not yet in `out`. In `cot` mode only rationales
    whose answer is right are kept. Returns counts."""
    if mode not in TEACHER_MODES:
        raise DataError(f"unknown mode {mode!r}; choose one of {TEACHER_MODES}.")
    missing = [q for q in questions if q.answer_key is None]
    if missing:
        raise DataError(f"{len(missing)} questions have no answer key (e.g. {missing[0].id!r}); teaching needs the gold answer.")
    done = done_ids(out)
    todo = [q for q in questions if q.id not in done]
    counts = {"skipped_done": len(questions) - len(todo), "written": 0, "dropped_wrong": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        for i in range(0, len(todo), chunk):
            part = todo[i : i + chunk]
            for q, r in zip(part, teacher.rationales(part, mode)):
                if mode == "cot" and extract_answer(r.text, q) != q.answer_key:
                    counts["dropped_wrong"] += 1
                    continue
                extra = {"mode": mode, "dataset": q.source, "duration_ms": r.duration_ms, "teacher_note": r.note}
                f.write(json.dumps(DistillRecord(q, r.text, r.model_id, "teacher", extra).to_json(), ensure_ascii=False) + "\n")
                counts["written"] += 1
            f.flush()
            if progress:
                progress(len(part))
    return counts
