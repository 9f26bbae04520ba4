"""The cost of sampling k stage-1 rationales per question, batched (the k of a question in one
generate call), against one greedy rationale, on this machine.

    .venv/bin/python benchmarks/sampling.py --data-dir ../shared/data --questions 20 --k 1 4 8

Each question is timed alone, as the app and `scicot ask --samples K` run it: greedy (k=1) and
k sampled rationales in one batch, one question at every k before the next. Prints a table and
writes benchmarks/results/sampling.json. Rationales are cut at 64 tokens and stop at their answer
sentence, as in the app.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from scicot_core.base_models import load_model
from scicot_core.lm import Sampling
from scicot_core.questions import load_split, sample_questions
from scicot_core.settings import Settings
from scicot_core.student import Student, default_adapters


def seconds_per_question(student: Student, questions, ks: list[int]) -> dict[int, list[float]]:
    """Each question at every k in turn (interleaved, so a busy spell on the machine hits all k alike)."""
    times: dict[int, list[float]] = {k: [] for k in ks}
    for n, q in enumerate(questions):
        for k in ks:
            sampling = Sampling(0.7, 0.95, seed=n) if k > 1 else None
            start = time.perf_counter()
            [rationales] = student.sample_rationales([q], k, sampling, batch_size=k)
            assert len(rationales) == k
            times[k].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="ARC-Easy dev from here; else the bundled sample set.")
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sampling.json")
    args = parser.parse_args()
    settings = Settings.from_env()
    questions = load_split("arc_easy", "dev", args.data_dir) if args.data_dir else sample_questions()
    questions = questions[: args.questions]
    lm = load_model(settings.student, settings.cache_dir, settings.offline, settings.threads)
    student = Student(lm, adapters=default_adapters(settings.adapters, settings.student))
    seconds_per_question(student, questions[:2], args.k)  # warm-up
    rows = {}
    for k, times in seconds_per_question(student, questions, args.k).items():
        rows[k] = {"p50_s": round(statistics.median(times), 3), "mean_s": round(statistics.mean(times), 3)}
    greedy = rows[min(args.k)]["p50_s"]
    print("| k | p50 s per question | mean s | x greedy (p50) |\n|---|---|---|---|")
    for k, row in rows.items():
        row["x_greedy"] = round(row["p50_s"] / greedy, 2)
        print(f"| {k} | {row['p50_s']:.2f} | {row['mean_s']:.2f} | {row['x_greedy']:.2f} |")
    report = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "model": student.model_id_of(["rationale"]),
        "questions": len(questions),
        "max_tokens": student.max_rationale_tokens,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
