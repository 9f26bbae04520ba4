"""The Statistics tab: its two handlers and the figures they draw. The numbers come from
`annotations.statistics` (the same ones `scicot db stats` prints) and `scicot_core.evaluate`;
this module only lays them out."""

from __future__ import annotations

import textwrap

from annotations import criteria
from annotations.criteria import PREFERENCE_LABELS
from annotations.statistics import rating_statistics

from .deps import Deps
from .render import plain_model

AGREEMENT = (
    "*Agreement* is how far raters who scored the same rationales agree beyond chance: 1 is full "
    "agreement, 0 no better than chance; 0.8 or more is good, under 0.667 too weak to rely on; "
    "n/a until two raters have scored the same rationale."
)
PREFERENCE_COLOURS = {"teacher": "#4C72B0", "student": "#DD8452", "tie": "#999999", "both_bad": "#C44E52"}


def stats(deps: Deps):
    """(distribution figure, preference figure, agreement markdown) over submitted ratings."""
    numbers = rating_statistics(deps.store.ratings())
    alpha = numbers["alpha"]
    labels = {c.name: c.label for c in criteria.CRITERIA}
    lines = ["| criterion | agreement (Krippendorff's alpha, ordinal) |", "|---|---|"]
    lines += [f"| {labels.get(name, name)} | {'n/a' if alpha[name] is None else f'{alpha[name]:.3f}'} |" for name in alpha]
    summary = f"{numbers['ratings']} submitted ratings from {numbers['raters']} raters.\n\n{AGREEMENT}\n\n" + "\n".join(lines)
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
    fig = accuracy_figure(
        {v: result["accuracy"][v] for v in variants}, f"{plain_model(result['model'])} on {len(questions)} {name} questions"
    )
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
        ax.set_title(c.label)
        ax.set_xlabel("score")
        ax.set_xticks(c.values)
        _whole_counts(ax)
    axes[0][0].set_ylabel("ratings")
    if any(numbers["distribution"][c.name] for c in criteria.CRITERIA):  # no legend for the empty placeholder bars
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def preference_figure(numbers: dict):
    """A bar per preference: how many raters chose it."""
    fig, axes = _figure(5, 3)
    prefs = numbers["preferences"]
    axes[0][0].bar(
        [PREFERENCE_LABELS.get(p, p) for p in prefs], list(prefs.values()), color=[PREFERENCE_COLOURS.get(p, "#777777") for p in prefs]
    )
    axes[0][0].set_ylabel("raters")
    _whole_counts(axes[0][0])
    fig.tight_layout()
    return fig


def accuracy_figure(accuracy: dict[str, float | None], title: str):
    """A bar per variant: its accuracy in percent."""
    fig, axes = _figure(6, 3)
    bars = axes[0][0].bar(list(accuracy), [100 * (a or 0) for a in accuracy.values()])
    axes[0][0].bar_label(bars, fmt="%.0f%%")
    axes[0][0].set_ylim(0, 100)
    axes[0][0].set_title(textwrap.fill(title, 70), fontsize=9)
    axes[0][0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    return fig


def _whole_counts(ax) -> None:
    """Counts on the y axis in whole numbers only (matplotlib picks 0.2 steps for small counts)."""
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0, top=max(1, ax.get_ylim()[1]))
