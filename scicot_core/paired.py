"""Paired comparisons of two `scicot eval` reports on the questions both answered: how many each
alone got right, and the exact two-sided sign test on those discordant questions (the questions
both got right or both got wrong say nothing about which is better). Reads reports only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import DataError


def sign_test_p(only_a: int, only_b: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this uneven of the discordant
    questions if either side were as likely to be the one that is right."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def right_answers(folder: Path, variant: str) -> dict[str, bool]:
    """{question id: right} of one variant of an eval folder, over the questions with an answer key."""
    path = Path(folder) / "predictions.jsonl"
    if not path.is_file():
        raise DataError(f"{path} is missing: {folder} is no `scicot eval` output folder.")
    right = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        if row.get("answer_key") is None:
            continue
        if variant not in row:
            raise DataError(f"{path}:{number}: no {variant!r} answer; it scored {sorted(set(row) - {'id', 'answer_key'})}.")
        right[row["id"]] = row[variant]["label"] == row["answer_key"]
    return right


def compare(a: dict[str, bool], b: dict[str, bool]) -> dict:
    """The paired counts of two sides on the questions both answered."""
    common = [i for i in a if i in b]
    if not common:
        raise DataError("the two reports share no question: compare reports of the same split.")
    only_a = sum(a[i] and not b[i] for i in common)
    only_b = sum(b[i] and not a[i] for i in common)
    acc_a = 100 * sum(a[i] for i in common) / len(common)
    acc_b = 100 * sum(b[i] for i in common) / len(common)
    return {
        "questions": len(common),
        "accuracy_a": round(acc_a, 1),
        "accuracy_b": round(acc_b, 1),
        "difference": round(acc_b - acc_a, 1),
        "only_a": only_a,
        "only_b": only_b,
        "p": float(f"{sign_test_p(only_a, only_b):.3g}"),
    }
