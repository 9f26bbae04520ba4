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
from datetime import datetime, timezone
from pathlib import Path

from scicot_core.errors import DataError
from scicot_core.paired import compare, right_answers


def read_side(spec: str) -> tuple[str, dict[str, bool]]:
    """`DIR:VARIANT` as (its label, {question id: right}) over the questions with an answer key."""
    folder, sep, variant = spec.rpartition(":")
    if not sep or not folder or not variant:
        raise SystemExit(f"{spec}: give an eval folder and a variant, as DIR:VARIANT (e.g. runs/eval:two-stage).")
    try:
        return f"{Path(folder).name}:{variant}", right_answers(Path(folder), variant)
    except DataError as e:
        raise SystemExit(str(e)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, action="append", required=True, metavar=("A", "B"), help="two sides, each DIR:VARIANT")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "paired.json")
    args = parser.parse_args()
    rows = []
    print("| A | B | questions | A | B | B - A | A alone right | B alone right | sign test p |\n|---|---|---|---|---|---|---|---|---|")
    for spec_a, spec_b in args.compare:
        (name_a, a), (name_b, b) = read_side(spec_a), read_side(spec_b)
        try:
            row = {"a": spec_a, "b": spec_b} | compare(a, b)
        except DataError as e:
            raise SystemExit(str(e)) from None
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
