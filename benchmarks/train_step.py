"""What a training step of the scoring stage costs with each objective: stage 2 (`answer`) on
real questions and teacher rationales, the language-model loss against the choices objective,
on the same questions, seed and settings as `recipes/distill.toml` (LoRA r16 on every linear
layer, batch 8).

    .venv/bin/python benchmarks/train_step.py --data-dir ../shared/data [--steps 12] [--out FILE]

The choices objective scores every choice of a question in the step, so it runs about as many
sequences as the question has choices; the ratio of the two objectives' seconds per step,
measured in one run, is the figure to compare across code versions (point PYTHONPATH at another
checkout to measure its scicot_core). Each objective runs in a process of its own, whose peak
memory is reported too. Prints a table and writes benchmarks/results/train_step.json (the
adapters go to a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from scicot_core import train
from scicot_core.settings import Settings
from scicot_core.train import LOG_FILE, TrainConfig

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def run(objective: str, args, settings: Settings, folder: Path) -> dict:
    config = TrainConfig(
        stage="answer",
        data=[str(args.data_dir / "rationales" / "entailmentbank_arc_easy_train.jsonl")],
        output_dir=str(folder / objective),
        data_dir=str(args.data_dir),
        limit=args.steps * args.batch_size,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=320,
        lora_r=16,
        lora_alpha=32,
        target_modules=ALL_LINEAR,
        objective=objective,
        save_steps=10**6,
        logging_steps=1,
    )
    out = train.main(config, settings.cache_dir, settings.offline, progress=False)
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    runtime = next(e["train_runtime"] for e in log if "train_runtime" in e)
    losses = [e["loss"] for e in log if "loss" in e]
    return {
        "steps": args.steps,
        "seconds": round(runtime, 1),
        "seconds_per_step": round(runtime / args.steps, 2),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_step.json")
    parser.add_argument("--only", choices=["lm", "choices"], help=argparse.SUPPRESS)  # one objective, in this process
    args = parser.parse_args()
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.only, args, Settings.from_env(), Path(tmp))
        result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        args.out.write_text(json.dumps(result))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for objective in ("lm", "choices"):  # each in a process of its own, so that its peak memory is its own
            part = Path(tmp) / f"{objective}.json"
            base = [sys.executable, __file__, "--data-dir", str(args.data_dir), "--steps", str(args.steps)]
            done = subprocess.run([*base, "--batch-size", str(args.batch_size), "--only", objective, "--out", str(part)])
            results[objective] = json.loads(part.read_text()) if done.returncode == 0 else {"failed": f"exit status {done.returncode}"}
    print("\n| objective | steps | seconds per step | loss, first -> last | peak memory |\n|---|---|---|---|---|")
    for objective, r in results.items():
        if "failed" in r:
            print(f"| {objective} | {args.steps} | failed ({r['failed']}; -9 is the kernel's out-of-memory kill) | | |")
        else:
            print(
                f"| {objective} | {r['steps']} | {r['seconds_per_step']:.2f} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} | {r['peak_rss_gb']:.1f} GB |"
            )
    ratio = None
    if all("failed" not in r for r in results.values()):
        ratio = results["choices"]["seconds_per_step"] / results["lm"]["seconds_per_step"]
        print(f"\nchoices / lm: {ratio:.2f}x")
    code = Path(train.__file__).parent  # the scicot_core measured (PYTHONPATH may point at another checkout)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=code).stdout.strip()
    report = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "code": str(code),
        "commit": commit,
        "batch_size": args.batch_size,
        "results": results,
        "choices_over_lm": round(ratio, 2) if ratio else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
