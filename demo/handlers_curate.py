"""Plain handler functions behind the Curate & export and Stats tabs: reviewer-only actions,
downloads, appending to the distillation set, background retraining, and the plots."""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from annotations.agreement import alpha_by_criterion
from annotations.criteria import CRITERIA, PREFERENCES
from annotations.export import ExportFilter, export_rows, write_export
from scicot_core import tempfiles
from scicot_core.distillation_set import write_jsonl_atomic
from scicot_core.errors import DataError, PermissionDenied
from scicot_core.settings import Settings
from scicot_core.teach_split import done_ids

from .deps import Deps
from .render import safe

EXPORT_KEEP_S = 86_400
CANDIDATE_HEADERS = ["rationale_id", "question", "source", "model", "raters", "mean", "spread", "decision"]


def become_reviewer(deps: Deps, name: str, secret: str) -> str:
    """Sign in as a reviewer: the secret is checked, and wrong ones throttled, before anything is written."""
    name = deps.store.grant_reviewer(name, secret)
    return f"{safe(name)} is a reviewer."


def _reviewer(deps: Deps, name: str) -> str:
    if not name:
        raise PermissionDenied("sign in as a reviewer first.")
    return deps.store.require_reviewer(name)


def candidates(deps: Deps, reviewer: str, min_mean: float, min_raters: int, max_spread: float) -> list[list]:
    """Rationales to curate, with their ratings summarised; `spread` is the range of the raters'
    mean scores (0 = full agreement)."""
    _reviewer(deps, reviewer)
    rows = []
    for row in deps.store.curation_rows():
        r, ratings = row["rationale"], row["ratings"]
        means = [statistics.mean(g["scores"].values()) for g in ratings]
        mean = round(statistics.mean(means), 2) if means else None
        spread = round(max(means) - min(means), 2) if means else None
        if (
            len(ratings) < (min_raters or 0)
            or (min_mean and (mean is None or mean < min_mean))
            or (spread is not None and spread > max_spread)
        ):
            continue
        decision = row["decision"]["decision"] if row["decision"] else ""
        rows.append([r["id"], row["question"].stem[:80], r["source"], r["model_id"][:40], len(ratings), mean, spread, decision])
    return rows[:500]


def show_candidate(deps: Deps, rationale_id: str) -> tuple[str, str]:
    r = deps.store.rationale(rationale_id)
    q = deps.store.question(r["question_id"])
    return f"**{safe(q.stem)}** (key: {safe(q.answer_key)})\n\n{safe(r['text'])}", r["text"]


def decide(deps: Deps, reviewer: str, rationale_id: str, decision: str, reason: str, edited_text: str) -> str:
    _reviewer(deps, reviewer)
    if not rationale_id:
        raise DataError("select a rationale in the table first.")
    deps.store.curate(rationale_id, decision, reviewer, reason or "", edited_text if decision == "edit" else None)
    return f"{decision} recorded for {rationale_id}."


def export_dir(settings: Settings) -> Path:
    """The one folder the app's downloads are written to (and served from: see `ui.launch_options`)."""
    return settings.cache_dir / "exports"


def export_file(deps: Deps, reviewer: str, fmt: str, accepted_only: bool, min_mean: float, min_raters: int) -> str:
    """Write the export to a new file in the exports folder and return its path (for the
    download); exports older than a day go first, so the folder never grows without bound."""
    _reviewer(deps, reviewer)
    rows = export_rows(deps.store.curation_rows(), ExportFilter(accepted_only, min_mean or None, int(min_raters or 0)))
    folder = export_dir(deps.settings)
    tempfiles.prune(folder, EXPORT_KEEP_S)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    # A random part: two reviewers exporting in the same second get a file each.
    name = f"scicot-distill-{stamp}-{secrets.token_hex(4)}.{'jsonl' if fmt == 'jsonl' else 'parquet'}"
    return str(write_export(rows, folder / name, fmt))


def append_accepted(deps: Deps, reviewer: str) -> str:
    """Add accepted rationales to the distillation set file; ones already there are skipped."""
    _reviewer(deps, reviewer)
    target = deps.settings.distill_path
    present = done_ids(target) if target.exists() else set()
    rows = [r for r in export_rows(deps.store.curation_rows()) if r["id"] not in present]
    existing = [json.loads(line) for line in target.read_text().splitlines() if line.strip()] if target.exists() else []
    write_jsonl_atomic(existing + rows, target)
    return f"Added {len(rows)} accepted rationale(s) to {target} ({len(existing) + len(rows)} in all)."


def start_retrain(deps: Deps, reviewer: str, steps: int) -> str:
    """Train stage 1 and stage 2 on the distillation set in a background thread."""
    _reviewer(deps, reviewer)
    if deps.retrain.get("state") == "running":
        raise DataError("a retraining run is already going; wait for it to finish.")
    data = deps.settings.distill_path
    if not data.exists() or not data.read_text().strip():
        raise DataError("the distillation set is empty: accept rationales and append them first.")
    name = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = deps.settings.cache_dir / "retrained" / name
    deps.retrain.clear()
    deps.retrain.update(state="running", name=name, stage="", step=0, total=int(steps) * 2, started=time.time())
    threading.Thread(target=_retrain, args=(deps, data, out, int(steps)), daemon=True).start()
    return f"Retraining started ({steps} steps per stage) into {out}."


def _retrain(deps: Deps, data: Path, out: Path, steps: int) -> None:
    from transformers import TrainerCallback

    from scicot_core.train import TrainConfig, main

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            deps.retrain["step"] += 1

    try:
        for stage in ("rationale", "answer"):
            deps.retrain["stage"] = stage
            config = TrainConfig(
                stage=stage,
                data=[str(data)],
                output_dir=str(out / stage),
                base_model=deps.settings.student,
                max_steps=steps,
                save_steps=max(10, steps),
            )
            main(config, deps.settings.cache_dir, deps.settings.offline, progress=False, callbacks=[Progress()])
        deps.students.add_folder(f"retrained {out.name}", out)
        deps.retrain["state"] = "done"
    except Exception as e:  # shown in the UI; the run's folder keeps its checkpoints
        deps.retrain.update(state="failed", error=str(e))


def retrain_status(deps: Deps) -> str:
    r = deps.retrain
    if not r:
        return "No retraining run yet."
    if r["state"] == "running":
        return f"Retraining **{r['name']}**: stage {r['stage']}, step {r['step']} of {r['total']} ({int(time.time() - r['started'])} s)."
    if r["state"] == "done":
        return f"Retrained **{r['name']}**: choose “retrained {r['name']}” in the Ask tab."
    return f"Retraining **{r['name']}** failed: {safe(r.get('error', ''))}"


# -- Stats ----------------------------------------------------------------------------------------
def stats(deps: Deps):
    """(distribution figure, preference figure, agreement markdown)."""
    ratings = deps.store.ratings()
    alpha = alpha_by_criterion(ratings)
    lines = ["| criterion | Krippendorff's alpha (ordinal) |", "|---|---|"]
    lines += [f"| {c.name} | {'n/a' if alpha[c.name] is None else f'{alpha[c.name]:.3f}'} |" for c in CRITERIA]
    summary = f"{len(ratings)} submitted ratings from {len({g['rater'] for g in ratings})} raters.\n\n" + "\n".join(lines)
    return _distribution_figure(ratings), _preference_figure(ratings), summary


def _figure(width=7.0, height=3.0, cols=1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, cols, figsize=(width, height), dpi=100, squeeze=False)


def _distribution_figure(ratings: list[dict]):
    fig, axes = _figure(10, 3, len(CRITERIA))
    sources = sorted({g["rationale_source"] for g in ratings}) or ["teacher"]
    for ax, c in zip(axes[0], CRITERIA):
        width = 0.8 / len(sources)
        for i, source in enumerate(sources):
            values = [g["scores"][c.name] for g in ratings if g["rationale_source"] == source]
            counts = [values.count(v) for v in range(c.minimum, c.maximum + 1)]
            ax.bar([v + i * width - 0.4 + width / 2 for v in range(c.minimum, c.maximum + 1)], counts, width, label=source)
        ax.set_title(c.name)
        ax.set_xlabel("score")
        ax.set_xticks(range(c.minimum, c.maximum + 1))
    axes[0][0].set_ylabel("ratings")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _preference_figure(ratings: list[dict]):
    fig, axes = _figure(5, 3)
    counts = [sum(1 for g in ratings if g["preference"] == p) for p in PREFERENCES]
    axes[0][0].bar(PREFERENCES, counts, color=["#4C72B0", "#DD8452", "#999999", "#C44E52"])
    axes[0][0].set_title("teacher vs student: which rationale raters prefer")
    fig.tight_layout()
    return fig


def student_accuracy(deps: Deps, adapter_set: str, n: int):
    """Accuracy of the selected student on a dev sample (ARC-Easy dev where a data directory
    exists, else the bundled sample set): (figure, markdown)."""
    from scicot_core.evaluate import evaluate
    from scicot_core.questions import load_split

    if deps.settings.data_dir and (deps.settings.data_dir / "arc_easy" / "dev.jsonl").exists():
        questions, name = load_split("arc_easy", "dev", deps.settings.data_dir)[: int(n)], "ARC-Easy dev"
    else:
        questions, name = [q for q, _ in deps.questions.samples][: int(n)], "SciCoT sample set"
    result = evaluate(deps.students.student(adapter_set), questions, batch_size=8)
    fig, axes = _figure(6, 3)
    variants = result["variants"]
    bars = axes[0][0].bar(variants, [100 * (result["accuracy"][v] or 0) for v in variants])
    axes[0][0].bar_label(bars, fmt="%.0f%%")
    axes[0][0].set_ylim(0, 100)
    axes[0][0].set_title(f"{result['model']} on {len(questions)} {name} questions", fontsize=9)
    return fig, " · ".join(f"**{v}** {result['accuracy'][v]:.0%}" for v in variants) + f" ({len(questions)} {name} questions)"
