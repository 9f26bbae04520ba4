"""Store throughput: ratings/s for one writer and for 8 concurrent writers (threads, as Gradio
runs handlers, and processes), and export time for 100,000 ratings.

    .venv/bin/python benchmarks/store.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from annotations.export import ExportFilter, export_rows, write_export
from annotations.store import Store
from scicot_core.questions import Choice, Question, Rationale

SCORES = {"correctness": 4, "clarity": 3, "supports_answer": 5}


def populate(path: Path, n_rationales: int, raters: list[str]) -> list[str]:
    store = Store(path, reviewer_secret="bench")
    questions = [Question(f"q{i}", f"Benchmark question {i}?", (Choice("A", "yes"), Choice("B", "no")), "A") for i in range(n_rationales)]
    store.add_questions(questions)
    ids = store.add_rationales(
        [Rationale(q.id, f"Because {i}. Thus, the answer is (A).", "teacher", "bench") for i, q in enumerate(questions)]
    )
    for name in raters:
        store.add_rater(name)
    return ids


def rate_all(path: Path, rater: str, ids: list[str]) -> None:
    store = Store(path)
    for rid in ids:
        store.upsert_rating(rid, rater, SCORES, comment="benchmark")


def writers(path: Path, ids: list[str], raters: list[str], mode: str) -> float:
    """Ratings per second with one writer per rater, all at once."""
    kind = threading.Thread if mode == "threads" else multiprocessing.get_context("fork").Process
    workers = [kind(target=rate_all, args=(path, r, ids)) for r in raters]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(raters) * len(ids) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=2000, help="ratings per writer in the throughput runs")
    parser.add_argument("--export-ratings", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/store.json"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = populate(tmp / "one.db", args.ratings, ["solo"])
        results["1 writer, ratings/s"] = writers(tmp / "one.db", ids, ["solo"], "threads")
        for mode in ("threads", "processes"):
            raters = [f"w{i}" for i in range(8)]
            ids = populate(tmp / f"eight-{mode}.db", args.ratings // 4, raters)
            results[f"8 writers ({mode}), ratings/s"] = writers(tmp / f"eight-{mode}.db", ids, raters, mode)

        raters = [f"r{i}" for i in range(10)]
        ids = populate(tmp / "export.db", args.export_ratings // 10, raters + ["rev"])
        store = Store(tmp / "export.db", reviewer_secret="bench")
        start = time.perf_counter()
        for r in raters:
            rate_all(tmp / "export.db", r, ids)
        results["filling 100k ratings, ratings/s"] = len(raters) * len(ids) / (time.perf_counter() - start)
        start = time.perf_counter()
        rows = export_rows(store.curation_rows(), ExportFilter(accepted_only=False))
        results["export: read + build rows, s"] = time.perf_counter() - start
        for fmt, name in (("jsonl", "set.jsonl"), ("parquet", "set.parquet")):
            start = time.perf_counter()
            write_export(rows, tmp / name, fmt)
            results[f"export: write {fmt}, s"] = time.perf_counter() - start
        results["export rows (rationales with 10 ratings each)"] = len(rows)

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| measure | value |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:,.2f} |" if isinstance(v, float) else f"| {k} | {v:,} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
