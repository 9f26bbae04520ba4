"""Copy trained stage adapters into the package as the default distilled student, with a model
card built from their training configs and logs and from the evaluation reports.

    .venv/bin/python scripts/ship_adapters.py runs/v3/adapters --stages rationale answer answer-only \
        --reports runs/v3/test --notes docs/model_card_notes.md

Only what loading needs is copied (adapter_config.json, adapter_model.safetensors) plus the
training config, data summary and log; checkpoints and PEFT's generated README stay behind. The
card's adapter settings, data files, sources, devices and times come from those files; its
scores and charts from the reports (greedy and sampled runs side by side, accuracy against k).
Nothing in the destination changes unless all of it is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from scicot_core.base_models import SMOLLM2, SMOLLM2_HUB, family
from scicot_core.evaluate import VARIANTS, bar_chart, k_chart
from scicot_core.student import SENTENCES_FILE, is_full_model

KEEP = ("adapter_config.json", "adapter_model.safetensors", "scicot_train_config.json", "training_log.jsonl")
DATA = "scicot_train_data.json"  # what the run read (files, filters, counts, device), when recorded
SETTINGS = ("lora_r", "lora_alpha", "target_modules", "learning_rate", "batch_size", "max_length", "limit", "epochs", "seed")


def stage_adapters(source: Path, stages: list[str], dest: Path) -> tuple[Path, dict[str, dict]]:
    """Copy each stage's adapter into a staging folder beside `dest` (`dest` is not touched);
    returns the folder and each stage's training config, run summary and data summary."""
    for stage in stages:
        if is_full_model(source / stage):
            raise SystemExit(f"{source / stage} is a whole fine-tuned model, not an adapter: only adapters ship in the package.")
        missing = [name for name in KEEP if not (source / stage / name).exists()]
        if missing:
            raise SystemExit(f"{source / stage} lacks {missing}: train the stage first (scicot train --stage {stage}).")
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        return staging, {stage: _stage_copy(source / stage, staging / stage) for stage in stages}
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _stage_copy(src: Path, out: Path) -> dict:
    """One stage's files into the staging folder; its config, run summary and data summary."""
    out.mkdir(parents=True)
    for name in KEEP + tuple(n for n in (DATA, SENTENCES_FILE) if (src / n).exists()):  # the sentence cap travels with stage 1
        shutil.copy2(src / name, out / name)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = SMOLLM2_HUB  # not the trainer's local cache path
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("scicot_train_config.json", DATA):  # no machine's folders in a committed file
        if (out / name).exists():
            (out / name).write_text(json.dumps(_names(json.loads((out / name).read_text())), indent=2) + "\n")
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    data = json.loads((out / DATA).read_text()) if (out / DATA).exists() else None
    cap = json.loads((out / SENTENCES_FILE).read_text()) if (out / SENTENCES_FILE).exists() else None
    return {"config": json.loads((out / "scicot_train_config.json").read_text()), "summary": log[-1], "data": data, "generation": cap}


def _names(value):
    """A training record with every absolute path in it (values and keys) cut to its file name."""
    cut = lambda text: Path(text).name if isinstance(text, str) and Path(text).is_absolute() else text  # noqa: E731
    if isinstance(value, dict):
        return {cut(k): _names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_names(v) for v in value]
    return cut(value)


def swap(staging: Path, dest: Path) -> None:
    """The staged folder, model card and charts included, becomes `dest` (the old one is moved
    aside first and deleted last, so `dest` is never missing for longer than two renames)."""
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


# Where each rationale file of ../shared/data comes from, by the start of its name (the card names
# the sources a stage read and their licences; see that folder's README).
SOURCES = {
    "flan_t5_": 'Flan-T5 rationalizations (the teacher saw the gold answer), public data of "Beyond Answers" (TinyLLM), Apache-2.0',
    "gpt4o-": "GPT-4o rationales, public data of Chen et al. 2025 (arXiv 2502.18001), Apache-2.0; OpenAI's terms for model outputs apply",
    "gemini15flash-": "Gemini-1.5-Flash rationales, same source as GPT-4o's; Google's terms for model outputs apply",
    "entailmentbank_": "EntailmentBank expert explanations (Dalvi et al. 2021), Apache-2.0 (the data page says CC BY)",
}
QUESTIONS = "Questions from ARC (CC BY-SA 4.0) and OpenBookQA (Apache-2.0), Allen Institute for AI."


def scores(reports: list[Path]) -> tuple[dict[str, dict[str, float | None]], dict[str, list[float]]]:
    """Accuracy by data set and variant from every `<report>/*/results.json` (or a results.json
    given directly), and two-stage accuracy against k from the sampled runs. A sampled run's
    variants are named with their k ("two-stage k=8"): they sit beside the greedy ones."""
    found: dict[str, dict[str, float | None]] = {}
    by_k: dict[str, list[float]] = {}
    paths = [
        p
        for r in reports
        for p in ([r] if r.is_file() else [r / "results.json"] if (r / "results.json").exists() else sorted(r.glob("*/results.json")))
    ]
    for path in paths:
        result = json.loads(path.read_text())
        name = f"{result['title']} ({result['n']})"
        k = result.get("samples", 1)
        suffix = f" k={k}" if k > 1 else ""
        found.setdefault(name, {}).update({v + (suffix if v.startswith("two-stage") else ""): a for v, a in result["accuracy"].items()})
        if k > 1 and result.get("accuracy_by_k", {}).get("two-stage"):
            by_k[name] = result["accuracy_by_k"]["two-stage"]
    return found, by_k


def scores_table(found: dict[str, dict[str, float | None]]) -> str:
    seen = {v: None for row in found.values() for v in row}
    columns = [v for v in VARIANTS if v in seen] + sorted(v for v in seen if v not in VARIANTS)
    lines = ["| questions | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in found.items():
        cells = ["not run" if v not in row else "n/a" if row[v] is None else f"{row[v]:.1%}" for v in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _adapters_line(info: dict[str, dict]) -> str:
    """How the adapters are built, in words, from their configs (one phrase per distinct setting)."""
    phrases: dict[str, list[str]] = {}
    for stage, entry in info.items():
        c = entry["config"]
        targets = sorted(c["target_modules"])
        where = "every linear layer" if {"gate_proj", "up_proj", "down_proj"} <= set(targets) else "the attention layers"
        phrases.setdefault(f"rank {c['lora_r']} on {where} ({', '.join(targets)})", []).append(f"`{stage}`")
    return "; ".join(f"{', '.join(stages)}: {phrase}" for phrase, stages in phrases.items())


def _data_lines(info: dict[str, dict]) -> list[str]:
    """One line per stage: which rationale files (by name, never a path), filters and counts."""
    lines, used = [], set()
    for stage, entry in info.items():
        data, c = entry["data"], entry["config"]
        names = [Path(f).name for f in data.get("files", {})] if data else [Path(f).name for f in c["data"]]
        used.update(prefix for prefix in SOURCES for n in names if n.startswith(prefix))
        if not data:
            counts = "counts not recorded"
        elif c.get("stage") == "answer-only":
            after = "the question and its retrieved facts (never its own rationales')" if c.get("facts") else "the question alone"
            counts = f"the gold answer after {after}, {data['examples']:,} questions"
        else:
            counts = f"{data['records']:,} rationales for {data['questions']:,} questions, {data['examples']:,} examples" + (
                f" (with {data['student_rationales']:,} of the student's own rationales)" if data.get("student_rationales") else ""
            )
        filters = [
            f
            for f, on in (
                ("correct only", c.get("correct_only")),
                (f"at most {c.get('max_per_question')} per question", c.get("max_per_question")),
            )
            if on
        ]
        short = [n.removesuffix(".jsonl").removesuffix("_train") for n in names]
        lines.append(f"- `{stage}`: {counts}{'; ' + ', '.join(filters) if filters else ''}; from {', '.join(short)}.")
    lines += ["", "Sources:"] + [f"- {SOURCES[prefix]}." for prefix in SOURCES if prefix in used] + [f"- {QUESTIONS}"]
    return lines


def _cap_line(info: dict[str, dict]) -> str:
    cap = (info.get("rationale", {}).get("generation") or {}).get("max_sentences")
    return f" Stage 1 stops after {cap} sentence(s) (`rationale/{SENTENCES_FILE}`, chosen on dev)." if cap else ""


def model_card(info: dict[str, dict], table: str, notes: str, ks: list[int] = (), has_k_chart: bool = False, default: bool = True) -> str:
    rows = []
    for stage, entry in info.items():
        c, s = entry["config"], entry["summary"]
        settings = ", ".join(f"{k}={'/'.join(c[k]) if isinstance(c[k], list) else c[k]}" for k in SETTINGS if c.get(k) is not None)
        minutes = round(s.get("train_runtime", 0) / 60, 1)
        device = (entry["data"] or {}).get("device", "not recorded")
        rows.append(f"| `{stage}` | {s.get('step')} | {minutes} | {device} | {s.get('train_loss', float('nan')):.3f} | {settings} |")
    sampled = (
        f', and "k={ks[0]}" marks two-stage with {ks[0]} sampled rationales per question, stage 2\'s probabilities averaged'
        if len(ks) == 1
        else ', and "k=N" marks two-stage with N sampled rationales per question, stage 2\'s probabilities averaged'
        if ks
        else ""
    )
    k_figure = "\n\n![two-stage accuracy against k, answer-only dashed](accuracy_by_k.png)" if has_k_chart else ""
    return f"""---
base_model: {SMOLLM2_HUB}
library_name: peft
license: apache-2.0
tags: [lora, distillation, chain-of-thought, science-qa]
---

# SmolLM2-135M-Instruct, Sci-CoT student (LoRA adapters)

{"The default" if default else "A candidate (not the default)"} student of SciCoT Studio: LoRA adapters on SmolLM2-135M-Instruct for the two
stages of Sci-CoT (arXiv 2308.04679). `rationale` writes a short rationale from a question
and its choices; `answer` scores each choice's text given the question and the rationale.
`answer-only` is the baseline that answers without a rationale, shipped so the app can show it
beside the student. Adapters: {_adapters_line(info)}. Stored in fp16 and loaded on one base
model (`scicot_core.student.Student`).

## Training

{chr(10).join(_data_lines(info))}

Settings were chosen on the dev splits only.{_cap_line(info)}

| stage | steps | minutes | trained on | mean train loss | settings |
|---|---|---|---|---|---|
{chr(10).join(rows)}

{notes.strip()}

## Scores

Accuracy, each variant on every question of the split named (`scicot eval`); the zero-shot
column is the bare base model scoring each choice's text after the question{sampled}:

{table}

![accuracy by variant on each data set](accuracy.png){k_figure}

## Limits

A 135M model writes short rationales that are often wrong or only restate a choice; stage 2
can only be as good as the rationale it reads. Do not use the answers for anything that matters.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder with <stage>/ adapters from `scicot train`")
    parser.add_argument("--stages", nargs="+", default=["rationale", "answer", "answer-only"])
    parser.add_argument(
        "--reports", type=Path, nargs="+", required=True, help="`scicot eval` report folders (or folders of them, one per data set)"
    )
    parser.add_argument("--notes", type=Path, help="markdown added under Training (e.g. what differs between stages)")
    parser.add_argument("--dest", type=Path, default=family(SMOLLM2).adapters)
    args = parser.parse_args()
    found, by_k = scores(args.reports)
    if not found:
        raise SystemExit(f"no results.json in {', '.join(map(str, args.reports))}: run `scicot eval` first.")
    notes = args.notes.read_text() if args.notes else ""
    staging, info = stage_adapters(args.source, args.stages, args.dest)
    is_default = args.dest.resolve() == family(SMOLLM2).adapters.resolve()
    try:
        ks = sorted({int(v.rsplit(" k=", 1)[1]) for row in found.values() for v in row if " k=" in v})
        (staging / "README.md").write_text(model_card(info, scores_table(found), notes, ks, bool(by_k), default=is_default))
        bar_chart(found, staging / "accuracy.png", chance=0.25)
        if by_k:
            references = {name: row.get("answer-only") for name, row in found.items()}
            k_chart(by_k, staging / "accuracy_by_k.png", references)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap(staging, args.dest)
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"shipped {', '.join(info)} to {args.dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
