"""The accuracy tables of docs/benchmarks.md, made from the committed recipe summaries
(benchmarks/results/accuracy/<recipe>.json, written by `scicot run`).

    .venv/bin/python benchmarks/accuracy_tables.py            # rewrite every table from its file
    .venv/bin/python benchmarks/accuracy_tables.py --check    # exit 1 where a table and its file disagree

A table sits between `<!-- accuracy: NAME -->` and `<!-- /accuracy -->`; NAME is the recipe. Put
the two markers where a new recipe's table belongs and run this once. Every summary needs a
table, and every table a summary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from scicot_core.report_card import tables

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
BLOCK = re.compile(r"(<!-- accuracy: ([a-z0-9_-]+) -->\n)(.*?)(<!-- /accuracy -->)", re.S)


def rebuilt(text: str, results: Path) -> tuple[str, list[str]]:
    """The docs with every table made again from its summary, and what does not match up."""
    problems: list[str] = []
    named = set()

    def table(match: re.Match) -> str:
        name = match.group(2)
        named.add(name)
        path = results / f"{name}.json"
        if not path.is_file():
            problems.append(f"the table {name} has no summary {path}: run `scicot run recipes/{name}.toml`, or drop the table")
            return match.group(0)
        return match.group(1) + "\n" + tables(json.loads(path.read_text())) + "\n" + match.group(4)

    out = BLOCK.sub(table, text)
    for path in sorted(results.glob("*.json")):
        if path.stem not in named:
            problems.append(f"{path} has no table: add `<!-- accuracy: {path.stem} -->` and `<!-- /accuracy -->` where it belongs")
    return out, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a table and its summary disagree")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    text = args.docs.read_text()
    out, problems = rebuilt(text, args.results)
    if args.check and out != text:
        stale = [m.group(2) for m, n in zip(BLOCK.finditer(text), BLOCK.finditer(out)) if m.group(0) != n.group(0)]
        problems.append(f"{args.docs}: the tables {', '.join(stale)} differ from their summaries: run benchmarks/accuracy_tables.py")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not args.check and out != text:
        args.docs.write_text(out)
        print(f"{args.docs}: tables rewritten")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
