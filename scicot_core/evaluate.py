"""Evaluation: accuracy of the base model zero-shot, the answer-only and single-stage baselines
and the two-stage student on the same questions, with per-question predictions, a markdown
table and a bar chart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from . import formats
from .pipeline import Answer, Student
from .questions import Question, Rationale

VARIANTS = ("zero-shot", "answer-only", "single-stage", "two-stage")
VARIANT_STAGES = {"zero-shot": (), "answer-only": ("answer-only",), "single-stage": ("single-stage",), "two-stage": ("rationale", "answer")}
NEEDS_ADAPTER = {
    v: VARIANT_STAGES[v][0] for v in ("answer-only", "single-stage")
}  # baseline variant -> its stage (two-stage runs on the bare base too)


def available(student: Student, wanted: Sequence[str] = VARIANTS) -> list[str]:
    """The variants this student can run: baselines need their adapters."""
    return [v for v in wanted if v not in NEEDS_ADAPTER or student.has(NEEDS_ADAPTER[v])]


def evaluate(
    student: Student,
    questions: Sequence[Question],
    variants: Sequence[str] = VARIANTS,
    batch_size: int = 16,
    progress: Callable | None = None,
    given: dict[str, dict[str, Rationale]] | None = None,
    on_generated: Callable[[str, list[Rationale]], None] | None = None,
) -> dict:
    """Run each variant over the questions in batches; returns accuracy, timings and predictions.

    `given` maps a generating variant (`two-stage`, `single-stage`) to rationales by question id
    that it reuses instead of generating: an earlier run's, to score a new answer adapter on the
    same text, or those of an interrupted run. `on_generated(variant, rationales)` sees each
    batch of freshly generated ones, so a caller can keep them for such a resume."""
    variants = available(student, variants)
    given = given or {}
    preds = {q.id: {"id": q.id, "answer_key": q.answer_key} for q in questions}
    rationales: dict[str, list[Rationale]] = {}
    timings = {}
    for variant in variants:
        start = time.perf_counter()
        rationales[variant] = []
        for i in range(0, len(questions), batch_size):
            part = list(questions[i : i + batch_size])
            answers, texts = _run(student, variant, part, batch_size, given.get(variant, {}), on_generated)
            rationales[variant] += texts
            for q, a, r in zip(part, answers, texts or [None] * len(part)):
                preds[q.id][variant] = _prediction(a, r)
            if progress:
                progress(variant, len(part))
        timings[variant] = round(time.perf_counter() - start, 2)
    accuracy = {v: _accuracy(preds.values(), v) for v in variants}
    reused = {v: sum(q.id in given[v] for q in questions) for v in variants if given.get(v)}
    return {
        "n": len(questions),
        "variants": variants,
        "accuracy": accuracy,
        "seconds": timings,
        "model": student.model_id,
        "models": {v: student.model_id_of(VARIANT_STAGES[v]) for v in variants},
        "reused_rationales": reused,
        "predictions": list(preds.values()),
        "rationales": rationales,
    }


def _run(
    student: Student, variant: str, part: list[Question], batch_size: int, reuse: dict[str, Rationale], on_generated: Callable | None
) -> tuple[list[Answer], list[Rationale]]:
    if variant == "zero-shot":
        return student.zero_shot(part), []
    if variant == "answer-only":
        return student.answer_only(part), []
    stage = "single-stage" if variant == "single-stage" else "rationale"
    generated = student.rationales([q for q in part if q.id not in reuse], batch_size=batch_size, stage=stage)
    if generated and on_generated:
        on_generated(variant, generated)
    fresh = iter(generated)
    texts = [replace(reuse[q.id], text=formats.rationale_body(reuse[q.id].text)) if q.id in reuse else next(fresh) for q in part]
    scorer = student.single_stage if variant == "single-stage" else student.answers
    return scorer(part, [r.text for r in texts]), texts


def _prediction(answer: Answer, rationale: Rationale | None) -> dict:
    out = {"label": answer.label, "probabilities": {k: round(v, 4) for k, v in answer.probabilities.items()}}
    return out | ({"rationale": rationale.text} if rationale else {})


def _accuracy(preds, variant: str) -> float | None:
    scored = [p for p in preds if p.get("answer_key") is not None and variant in p]
    return round(sum(p[variant]["label"] == p["answer_key"] for p in scored) / len(scored), 4) if scored else None


def write_report(result: dict, out_dir: Path, title: str) -> dict[str, Path]:
    """results.json, results.md, predictions.jsonl and accuracy.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.json", "results.md", "predictions.jsonl", "accuracy.png")}
    summary = {k: v for k, v in result.items() if k not in ("predictions", "rationales")} | {"title": title}
    paths["results.json"].write_text(json.dumps(summary, indent=2))
    paths["results.md"].write_text(markdown_table(summary))
    with open(paths["predictions.jsonl"], "w") as f:
        for p in result["predictions"]:
            f.write(json.dumps(p) + "\n")
    bar_chart({title: summary["accuracy"]}, paths["accuracy.png"], chance=None)
    return paths


def markdown_table(summary: dict) -> str:
    lines = [
        f"**{summary['title']}** ({summary['n']} questions; {summary['model']})",
        "",
        "| variant | accuracy | seconds | model |",
        "|---|---|---|---|",
    ]
    for v in summary["variants"]:
        acc = summary["accuracy"][v]
        model = summary.get("models", {}).get(v, "")
        lines.append(f"| {v} | {'n/a' if acc is None else f'{acc:.1%}'} | {summary['seconds'][v]} | {model} |")
    return "\n".join(lines) + "\n"


def bar_chart(groups: dict[str, dict[str, float | None]], path: Path, chance: float | None = None) -> Path:
    """Grouped bars: one group per data set, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in VARIANTS if any(v in g for g in groups.values())]
    fig, ax = plt.subplots(figsize=(max(5, 2.2 * len(groups)), 3.6), dpi=120)
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        present = [(j, g[v]) for j, g in enumerate(groups.values()) if g.get(v) is not None]  # no bar for a variant not run
        xs = [j + i * width for j, _ in present]
        ys = [100 * acc for _, acc in present]
        bars = ax.bar(xs, ys, width, label=v)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    if chance:
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(groups))], list(groups))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
