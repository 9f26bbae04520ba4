"""Latency of the offline default student on CPU: cold load from the GGUF file, warm load from
the safetensors cache, and full asks (stage-1 rationale of up to 64 tokens + stage-2 scoring)
on ARC-Easy dev questions, for fp32 and faster options, with how often answers agree.

    .venv/bin/python benchmarks/latency.py --data-dir ../shared/data --questions 20

The student is the default one (the shipped distilled adapters, if any); `--adapters DIR` picks
another set, `--adapters none` the bare base model. Faster variants merge each stage's adapter
into its own copy of the weights first (so int8 quantises the merged weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from scicot_core.base_models import SMOLLM2, ensure_smollm2, load_model
from scicot_core.lm import LanguageModel
from scicot_core.questions import load_split, sample_questions
from scicot_core.settings import Settings
from scicot_core.student import Student, default_adapters


def shown(path: Path) -> str:
    """A path as the report shows it: relative to the project when it lies inside."""
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def int8(lm: LanguageModel, per_channel: bool = False) -> LanguageModel:
    """Dynamic int8 quantisation of the Linear layers: every one with one scale per tensor, or
    the decoder's only with one scale per output channel (the output layer stays fp32)."""
    ao = torch.ao.quantization
    if per_channel:
        spec = {
            name: ao.per_channel_dynamic_qconfig
            for name, m in lm.model.named_modules()
            if isinstance(m, torch.nn.Linear) and name != "lm_head"
        }
    else:
        spec = {torch.nn.Linear}
    quantised = ao.quantize_dynamic(lm.model, spec, dtype=torch.qint8)  # a quantised copy
    return LanguageModel(quantised, lm.tokenizer, lm.model_id)


class WithoutEarlyStop(LanguageModel):
    """Generates to EOS or the token limit, as stage 1 did before it stopped at the answer sentence."""

    def generate(self, prompts, max_new_tokens=64, adapter=None, stop=None, sampling=None, k=1):
        return super().generate(prompts, max_new_tokens, adapter, None, sampling, k)


def variants(base: LanguageModel, adapters: dict[str, Path]) -> dict:
    """name -> (stage-1 student, stage-2 student, torch threads). The first is the reference
    for agreement: fp32 with the adapters attached to one base (`SCICOT_MERGE=0`)."""
    cores = torch.get_num_threads()
    reference, merging = Student(base, adapters), Student(base, adapters, merge=True)
    copies = merging.merged_copies()
    stage1, stage2 = copies.get("rationale") or base, copies.get("answer") or base  # None: that merge failed
    unstopped = copy.copy(base)  # the same weights and adapters, generating without the stop
    unstopped.__class__ = WithoutEarlyStop
    return {
        f"fp32, {cores} threads, adapters attached (SCICOT_MERGE=0)": (reference, reference, cores),
        "the same without stopping at the answer sentence": (Student(unstopped, adapters), reference, cores),
        "fp32, each stage's adapter merged into its own copy (the default)": (merging, merging, cores),
        "int8 dynamic Linear, merged per stage": (Student(int8(stage1)), Student(int8(stage2)), cores),
        "int8 per channel (output layer fp32), merged per stage": (Student(int8(stage1, True)), Student(int8(stage2, True)), cores),
    }


def measure(stage1: Student, stage2: Student, threads: int, questions, max_tokens: int) -> dict:
    torch.set_num_threads(threads)
    stage1.max_rationale_tokens = max_tokens
    stage2.answers([questions[0]], [stage1.rationales([questions[0]])[0].text])  # warm-up
    rows = []
    for q in questions:
        rationale, t1 = timed(lambda q=q: stage1.rationales([q])[0])
        answer, t2 = timed(lambda q=q, r=rationale: stage2.answers([q], [r.text])[0])
        tokens = len(stage1.lm.tokenizer(rationale.text, add_special_tokens=False)["input_ids"])
        rows.append(
            {
                "id": q.id,
                "stage1_s": t1,
                "stage2_s": t2,
                "ask_s": t1 + t2,
                "tokens": tokens,
                "rationale": rationale.text,
                "answer": answer.label,
                "correct": answer.label == q.answer_key,
            }
        )
    return {"rows": rows} | summarise(rows)


def summarise(rows: list[dict]) -> dict:
    asks = sorted(r["ask_s"] for r in rows)
    return {
        "ask_p50_s": statistics.median(asks),
        "ask_p90_s": asks[min(len(asks) - 1, int(0.9 * len(asks)))],
        "stage1_mean_s": statistics.mean(r["stage1_s"] for r in rows),
        "rationale_tokens_mean": statistics.mean(r["tokens"] for r in rows),
        "stage2_mean_s": statistics.mean(r["stage2_s"] for r in rows),
        "accuracy": statistics.mean(r["correct"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().data_dir)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--adapters", type=Path, help="stage adapters [default: the shipped ones]; 'none' for the bare base")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency.json"))
    args = parser.parse_args()
    adapters = default_adapters(args.adapters, SMOLLM2)
    questions = load_split("arc_easy", "dev", args.data_dir)[: args.questions] if args.data_dir else sample_questions()[: args.questions]

    with tempfile.TemporaryDirectory() as fresh:
        _, cold = timed(lambda: ensure_smollm2(Path(fresh), progress=lambda m: None))
        _, warm = timed(lambda: load_model("smollm2-135m", Path(fresh)))
    base = load_model("smollm2-135m", Settings.from_env().cache_dir)

    results = {}
    for name, (stage1, stage2, threads) in variants(base, adapters).items():
        results[name] = measure(stage1, stage2, threads, questions, args.max_tokens)
        print(f"measured {name}", flush=True)
    reference = next(iter(results.values()))["rows"]
    for summary in results.values():
        summary["agreement"] = statistics.mean(a["answer"] == r["answer"] for a, r in zip(reference, summary["rows"]))
        summary["same_rationale"] = statistics.mean(a["rationale"] == r["rationale"] for a, r in zip(reference, summary["rows"]))

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads max, {platform.processor() or platform.platform()}",
        "torch": torch.__version__,
        "questions": f"{len(questions)} x {questions[0].source}",
        "adapters": {stage: shown(path) for stage, path in adapters.items()},
        "cold_load_gguf_s": cold,
        "warm_load_cache_s": warm,
        "variants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\ncold load (GGUF -> dequantise -> cache): {cold:.1f} s; warm load (safetensors cache): {warm:.2f} s")
    print(
        "| variant | ask p50 (s) | ask p90 (s) | stage-1 mean (s) | rationale tokens kept | stage-2 mean (s) | same rationale | answers agree | accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in results.items():
        print(
            f"| {name} | {s['ask_p50_s']:.2f} | {s['ask_p90_s']:.2f} | {s['stage1_mean_s']:.2f} | {s['rationale_tokens_mean']:.1f} | {s['stage2_mean_s']:.2f} | {s['same_rationale']:.0%} | {s['agreement']:.0%} | {s['accuracy']:.0%} |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
