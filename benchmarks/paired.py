"""Is a dev difference more than noise? Two variants of `scicot eval` reports compared on the
questions both answered: how many each alone got right, and the exact two-sided sign test on
those discordant questions (the questions both got right or both got wrong say nothing about
which is better).

    .venv/bin/python benchmarks/paired.py --compare RUN/eval-lm:two-stage RUN/eval-choices:two-stage \\
        [--compare DIR:VARIANT DIR:VARIANT ...]

Each side is an eval output folder (its predictions.jsonl) and one of the variants it scored
(answer-only, two-stage, ...). Prints a Markdown table, one row per comparison, and writes
benchmarks/results/paired.json. Reads reports only: no model is loaded.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime, timezone
from pathlib import Path


def sign_test_p(only_a: int, only_b: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this uneven of the discordant
    questions if either side were as likely to be the one that is right."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def read_side(spec: str) -> tuple[str, dict[str, bool]]:
    """`DIR:VARIANT` as (its label, {question id: right}) over the questions with an answer key."""
    folder, sep, variant = spec.rpartition(":")
    if not sep or not folder or not variant:
        raise SystemExit(f"{spec}: give an eval folder and a variant, as DIR:VARIANT (e.g. runs/eval:two-stage).")
    path = Path(folder) / "predictions.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: {folder} is no `scicot eval` output folder.")
    right = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        if row.get("answer_key") is None:
            continue
        if variant not in row:
            raise SystemExit(f"{path}:{number}: no {variant!r} answer; it scored {sorted(set(row) - {'id', 'answer_key'})}.")
        right[row["id"]] = row[variant]["label"] == row["answer_key"]
    return f"{Path(folder).name}:{variant}", right


def compare(a: dict[str, bool], b: dict[str, bool]) -> dict:
    """The paired counts of two sides on the questions both answered."""
    common = [i for i in a if i in b]
    if not common:
        raise SystemExit("the two reports share no question: compare reports of the same split.")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, action="append", required=True, metavar=("A", "B"), help="two sides, each DIR:VARIANT")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "paired.json")
    args = parser.parse_args()
    rows = []
    print("| A | B | questions | A | B | B - A | A alone right | B alone right | sign test p |\n|---|---|---|---|---|---|---|---|---|")
    for spec_a, spec_b in args.compare:
        (name_a, a), (name_b, b) = read_side(spec_a), read_side(spec_b)
        row = {"a": spec_a, "b": spec_b} | compare(a, b)
        rows.append(row)
        print(
            f"| {name_a} | {name_b} | {row['questions']} | {row['accuracy_a']:.1f}% | {row['accuracy_b']:.1f}% | "
            f"{row['difference']:+.1f} | {row['only_a']} | {row['only_b']} | {row['p']:.2g} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "comparisons": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
