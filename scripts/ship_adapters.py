"""Copy trained stage adapters into the package as the default distilled student, with a model
card built from their training configs and logs and from the evaluation reports.

    .venv/bin/python scripts/ship_adapters.py runs/v3/adapters --stages rationale answer answer-only \
        --reports runs/v2/test --notes docs/model_card_notes.md

Only what loading needs is copied (adapter_config.json, adapter_model.safetensors) plus the
training config and log; checkpoints and PEFT's generated README stay behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from scicot_core.base_models import SMOLLM2, SMOLLM2_HUB, family
from scicot_core.evaluate import VARIANTS, bar_chart

KEEP = ("adapter_config.json", "adapter_model.safetensors", "scicot_train_config.json", "training_log.jsonl")
SETTINGS = ("lora_r", "lora_alpha", "target_modules", "learning_rate", "batch_size", "max_length", "limit", "epochs", "seed")


def ship(source: Path, stages: list[str], dest: Path) -> dict[str, dict]:
    """Copy each stage's adapter into a fresh folder that then replaces `dest` (nothing is
    touched unless every stage is there); returns each stage's training config and run summary."""
    for stage in stages:
        missing = [name for name in KEEP if not (source / stage / name).exists()]
        if missing:
            raise SystemExit(f"{source / stage} lacks {missing}: train the stage first (scicot train --stage {stage}).")
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    info = {}
    for stage in stages:
        src, out = source / stage, staging / stage
        out.mkdir(parents=True)
        for name in KEEP:
            shutil.copy2(src / name, out / name)
        config = json.loads((out / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = SMOLLM2_HUB  # not the trainer's local cache path
        (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
        log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
        info[stage] = {"config": json.loads((out / "scicot_train_config.json").read_text()), "summary": log[-1]}
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return info


def scores(reports: Path) -> dict[str, dict[str, float | None]]:
    """Accuracy by data set and variant, from every `<reports>/*/results.json` (eval_all.sh writes
    one folder per data set and variant)."""
    found: dict[str, dict[str, float | None]] = {}
    for path in sorted(reports.glob("*/results.json")):
        result = json.loads(path.read_text())
        found.setdefault(f"{result['title']} ({result['n']})", {}).update(result["accuracy"])
    return found


def scores_table(found: dict[str, dict[str, float | None]]) -> str:
    lines = ["| questions | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    for name, row in found.items():
        cells = ["not yet run" if v not in row else "n/a" if row[v] is None else f"{row[v]:.1%}" for v in VARIANTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(info: dict[str, dict], table: str, notes: str) -> str:
    rows = []
    for stage, entry in info.items():
        c, s = entry["config"], entry["summary"]
        settings = ", ".join(f"{k}={'/'.join(c[k]) if isinstance(c[k], list) else c[k]}" for k in SETTINGS)
        minutes = round(s.get("train_runtime", 0) / 60, 1)
        rows.append(f"| `{stage}` | {s.get('step')} | {minutes} | {s.get('train_loss', float('nan')):.3f} | {settings} |")
    return f"""---
base_model: {SMOLLM2_HUB}
library_name: peft
license: apache-2.0
tags: [lora, distillation, chain-of-thought, science-qa]
---

# SmolLM2-135M-Instruct, Sci-CoT student (LoRA adapters)

The default student of SciCoT Studio: LoRA adapters on SmolLM2-135M-Instruct for the two
stages of Sci-CoT (arXiv 2308.04679). `rationale` writes a short rationale from a question
and its choices; `answer` scores each choice's text given the question and the rationale.
`answer-only` is the baseline that answers without a rationale, shipped so the app can show it
beside the student. All are attention-only (q, k, v, o), rank 8, stored in fp16, and loaded on
one base model (`scicot_core.student.Student`).

## Training

Data: the Flan-T5 rationalization rationales (teacher shown the gold answer) for ARC-Challenge
and OpenBookQA train, from the public data of "Beyond Answers" (TinyLLM), Apache-2.0; questions
from ARC (CC BY-SA 4.0) and OpenBookQA (Apache-2.0), Allen Institute for AI. Settings were
chosen on the dev splits only.

| stage | steps | minutes (2-core CPU) | mean train loss | settings |
|---|---|---|---|---|
{chr(10).join(rows)}

{notes.strip()}

## Scores

Accuracy on the full test splits (`scripts/eval_all.sh`: each variant on every question of the
split; the zero-shot column is the bare base model scoring each choice's text after the
question{'; "not yet run" means what it says' if "not yet run" in table else ""}):

{table}

![accuracy by variant on each test set](accuracy.png)

## Limits

A 135M model writes short rationales that are often wrong or only restate a choice; stage 2
can only be as good as the rationale it reads. Do not use the answers for anything that matters.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder with <stage>/ adapters from `scicot train`")
    parser.add_argument("--stages", nargs="+", default=["rationale", "answer", "answer-only"])
    parser.add_argument("--reports", type=Path, required=True, help="folder of `scicot eval` reports, one per data set and variant")
    parser.add_argument("--notes", type=Path, help="markdown added under Training (e.g. what differs between stages)")
    parser.add_argument("--dest", type=Path, default=family(SMOLLM2).adapters)
    args = parser.parse_args()
    info = ship(args.source, args.stages, args.dest)
    notes = args.notes.read_text() if args.notes else ""
    found = scores(args.reports)
    (args.dest / "README.md").write_text(model_card(info, scores_table(found), notes))
    bar_chart(found, args.dest / "accuracy.png", chance=0.25)
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"shipped {', '.join(info)} to {args.dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
