"""Choices made on dev reports, never on test ones: stage 1's sentence cap (from the sweep of
benchmarks/rationale_cap.py) and two-stage+prior's weight (from `scicot eval`'s prior sweep)."""

from __future__ import annotations

from .errors import ConfigError


def sentence_cap(results: dict) -> tuple[int | None, dict]:
    """The cap with the best accuracy over all the reports together, weighted by their questions
    (a tie goes to fewer sentences: a faster ask), and what it was chosen on; None: no cap."""
    _dev_only(results)
    n = sum(r["questions"] for r in results.values())
    keys = next(iter(results.values()))["caps"]
    overall = {c: sum(r["caps"][c]["accuracy"] * r["questions"] for r in results.values()) / n for c in keys}
    best = max(overall, key=lambda c: (round(overall[c], 6), -(int(c) if c != "none" else 10**6)))
    return (None if best == "none" else int(best)), {
        "reports": list(results),
        "questions": n,
        "accuracy": {c: round(a, 2) for c, a in overall.items()},
    }


def prior_weight(summaries: list[dict]) -> tuple[float, dict]:
    """The weight whose sweep scores best over the dev reports together, weighted by their
    question counts (a tie goes to the weight nearer 0.5), and what it was chosen on."""
    _dev_only({s.get("title", ""): s for s in summaries})
    totals: dict[str, float] = {}
    for summary in summaries:
        for weight, accuracy in (summary.get("prior_sweep") or {}).items():
            totals[weight] = totals.get(weight, 0.0) + (accuracy or 0.0) * summary["n"]
    if not totals:
        raise ConfigError("no prior sweep in these results: run eval with --variant two-stage+prior.")
    n = sum(s["n"] for s in summaries)
    best = max(totals, key=lambda w: (round(totals[w], 6), -abs(float(w) - 0.5)))
    sweep = {w: round(t / n, 4) for w, t in totals.items()}
    return float(best), {"dev": [{"title": s.get("title"), "n": s["n"]} for s in summaries], "sweep": sweep}


def _dev_only(named: dict) -> None:
    test = [name for name in named if name.endswith("/test") or name == "test"]
    if test:
        raise ConfigError(f"{test[0]} is a test split: choose on dev reports only.")
