"""A recipe run's report card (nanochat's report.md, and more): settings, data files with their
hashes, the commit, the device, minutes per step, accuracy per variant and split, and paired
counts against the recipe's baseline; and the Markdown tables that docs/benchmarks.md takes
from the committed summary (`benchmarks/accuracy_tables.py`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .paired import compare, right_answers
from .recipes import Recipe

RESULTS = "results.json"
SAMPLE_STATS = "sample_stats.json"  # a sample step's count, and how often its rationales conclude the gold answer


def accuracy(recipe: Recipe, run_dir: Path, finished: dict[str, dict]) -> list[dict]:
    """Per finished eval step: the questions it scored, how many, each variant's accuracy (%)."""
    rows = []
    for step in recipe.steps:
        path = run_dir / step.folder / RESULTS
        if step.kind != "eval" or step.id not in finished or not path.is_file():
            continue
        result = json.loads(path.read_text())
        scores = {v: None if a is None else round(100 * a, 1) for v, a in result["accuracy"].items()}
        seconds = {v: result.get("seconds", {}).get(v) for v in scores}
        rows.append({"step": step.id, "questions": result["title"], "n": result["n"], "accuracy": scores, "seconds": seconds})
    return rows


def paired(recipe: Recipe, run_dir: Path, rows: list[dict]) -> list[dict]:
    """Against the baseline: every other variant of every eval on the baseline step's questions
    (`step/variant`), or each eval's other variants against its own (a bare `variant`); then the
    recipe's `compare` pairs, each once, as far as both sides have been scored."""
    answers = functools.cache(lambda step_id, variant: right_answers(run_dir / recipe.step(step_id).folder, variant))
    scored = {(r["step"], v): r for r in rows for v in r["accuracy"]}
    pairs: list[tuple[tuple[str, str], tuple[str, str]]] = []
    if recipe.baseline:
        base_step, _, base_variant = recipe.baseline.rpartition("/")
        for row in rows:
            side = (base_step or row["step"], base_variant)
            if side in scored and row["questions"] == scored[side]["questions"]:
                pairs += [(side, (row["step"], v)) for v in row["accuracy"] if (row["step"], v) != side]
    for a, b in recipe.compare:
        pair = tuple(tuple(side.rpartition("/")[::2]) for side in (a, b))
        if all(side in scored for side in pair) and pair not in pairs:
            pairs.append(pair)
    return [{"a": "/".join(a), "b": "/".join(b)} | compare(answers(*a), answers(*b)) for a, b in pairs]


def card(recipe: Recipe, run_dir: Path, finished: dict[str, dict], about_run: dict) -> dict:
    """The whole report of a run so far: what `report.json` and the committed summary hold."""
    data: dict[str, str] = {}
    for record in finished.values():
        data |= record.get("data", {})
    rows = accuracy(recipe, run_dir, finished)
    return about_run | {
        "recipe": recipe.name,
        "about": recipe.about,
        "recipe_sha256": recipe.sha256,
        "baseline": recipe.baseline,
        "data": dict(sorted(data.items())),
        "steps": [
            {"step": s.id, "kind": s.kind, "minutes": finished[s.id]["minutes"], "settings": s.keys}
            for s in recipe.steps
            if s.id in finished
        ],
        "accuracy": rows,
        "paired": paired(recipe, run_dir, rows),
        "choices": [
            {"step": s.id, "what": s.keys["what"]} | {k: v for k, v in json.loads(path.read_text()).items() if k != "chosen_on"}
            for s in recipe.steps
            if s.kind == "choose" and s.id in finished and (path := run_dir / s.folder / "choice.json").is_file()
        ],
        "samples": [
            {"step": s.id} | json.loads(path.read_text())
            for s in recipe.steps
            if s.kind == "sample" and s.id in finished and (path := run_dir / s.folder / SAMPLE_STATS).is_file()
        ],
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def tables(summary: dict) -> str:
    """The accuracy table of a run (one row per eval step, one column per variant) and its paired
    counts against the baseline: the Markdown docs/benchmarks.md holds for it."""
    variants = list(dict.fromkeys(v for row in summary["accuracy"] for v in row["accuracy"]))
    lines = [
        f"| {summary['recipe']} | questions | " + " | ".join(variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]
    for row in summary["accuracy"]:
        cells = [_pct(row["accuracy"].get(v)) if v in row["accuracy"] else "" for v in variants]
        lines.append(f"| {row['step']} | {row['questions']} ({row['n']}) | " + " | ".join(cells) + " |")
    if summary.get("paired"):
        lines += [
            "",
            "| baseline | against it | questions | baseline | this | difference | baseline alone right | this alone right | sign test p |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in summary["paired"]:
            lines.append(
                f"| {p['a']} | {p['b']} | {p['questions']} | {p['accuracy_a']:.1f}% | {p['accuracy_b']:.1f}% | {p['difference']:+.1f} | "
                f"{p['only_a']} | {p['only_b']} | {p['p']:.2g} |"
            )
    if summary.get("choices"):
        lines += ["", "| chosen on dev | what | value |", "|---|---|---|"]
        lines += [f"| {c['step']} | {c['what']} | {c.get('max_sentences', c.get('prior_weight'))} |" for c in summary["choices"]]
    if summary.get("samples"):
        lines += ["", "| own rationales | rationales | conclude the gold answer |", "|---|---|---|"]
        lines += [f"| {s['step']} | {s['rationales']} | {_pct(s['conclude_gold'])} |" for s in summary["samples"]]
    return "\n".join(lines) + "\n"


def markdown(summary: dict) -> str:
    """report.md: the run's settings, data, commit, device, minutes per step and its tables."""
    lines = [
        f"# {summary['recipe']}" + (" (smoke: {} questions and steps)".format(summary["smoke"]) if summary.get("smoke") else ""),
        "",
        summary["about"],
        "",
        f"- commit {summary['commit']}, {summary['device']}, {summary['date_utc']}",
        f"- recipe {summary['file']} (sha256 {summary['recipe_sha256'][:12]}), data {summary['data_dir']}",
        "",
        "| step | kind | minutes | settings |",
        "|---|---|---|---|",
    ]
    for s in summary["steps"]:
        lines.append(f"| {s['step']} | {s['kind']} | {s['minutes']:.1f} | `{json.dumps(s['settings'], sort_keys=True)}` |")
    lines += ["", "| data file | sha256 |", "|---|---|"] + [f"| {path} | {digest[:16]} |" for path, digest in summary["data"].items()]
    return "\n".join(lines) + "\n\n" + tables(summary)
