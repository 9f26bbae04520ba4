"""The Statistics tab: its two handlers and the figures they draw. The numbers come from
`annotations.statistics` (the same ones `scicot db stats` prints) and `scicot_core.evaluate`;
this module only lays them out."""

from __future__ import annotations

from annotations import criteria
from annotations.statistics import rating_statistics

from .deps import Deps

PREFERENCE_COLOURS = {"teacher": "#4C72B0", "student": "#DD8452", "tie": "#999999", "both_bad": "#C44E52"}


def stats(deps: Deps):
    """(distribution figure, preference figure, agreement markdown) over submitted ratings."""
    numbers = rating_statistics(deps.store.ratings())
    alpha = numbers["alpha"]
    lines = ["| criterion | Krippendorff's alpha (ordinal) |", "|---|---|"]
    lines += [f"| {name} | {'n/a' if alpha[name] is None else f'{alpha[name]:.3f}'} |" for name in alpha]
    summary = f"{numbers['ratings']} submitted ratings from {numbers['raters']} raters.\n\n" + "\n".join(lines)
    return distribution_figure(numbers), preference_figure(numbers), summary


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
    variants = result["variants"]
    fig = accuracy_figure({v: result["accuracy"][v] for v in variants}, f"{result['model']} on {len(questions)} {name} questions")
    return fig, " · ".join(f"**{v}** {result['accuracy'][v]:.0%}" for v in variants) + f" ({len(questions)} {name} questions)"


def _figure(width=7.0, height=3.0, cols=1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, cols, figsize=(width, height), dpi=100, squeeze=False)


def distribution_figure(numbers: dict):
    """One panel per criterion: how often each score was given, a bar per rationale source."""
    fig, axes = _figure(10, 3, len(criteria.CRITERIA))
    for ax, c in zip(axes[0], criteria.CRITERIA):
        by_source = numbers["distribution"][c.name] or {"teacher": dict.fromkeys(c.values, 0)}
        width = 0.8 / len(by_source)
        for i, (source, counts) in enumerate(by_source.items()):
            ax.bar([v + i * width - 0.4 + width / 2 for v in c.values], [counts[v] for v in c.values], width, label=source)
        ax.set_title(c.name)
        ax.set_xlabel("score")
        ax.set_xticks(c.values)
    axes[0][0].set_ylabel("ratings")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def preference_figure(numbers: dict):
    """A bar per preference: how many raters chose it."""
    fig, axes = _figure(5, 3)
    prefs = numbers["preferences"]
    axes[0][0].bar(list(prefs), list(prefs.values()), color=[PREFERENCE_COLOURS.get(p, "#777777") for p in prefs])
    axes[0][0].set_title("teacher vs student: which rationale raters prefer")
    fig.tight_layout()
    return fig


def accuracy_figure(accuracy: dict[str, float | None], title: str):
    """A bar per variant: its accuracy in percent."""
    fig, axes = _figure(6, 3)
    bars = axes[0][0].bar(list(accuracy), [100 * (a or 0) for a in accuracy.values()])
    axes[0][0].bar_label(bars, fmt="%.0f%%")
    axes[0][0].set_ylim(0, 100)
    axes[0][0].set_title(title, fontsize=9)
    return fig
