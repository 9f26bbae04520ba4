"""Rating statistics, computed once for both faces: `scicot db stats` prints them and the app's
Stats tab draws them. A pure function of submitted ratings (`Store.ratings()` rows); a rating
made before a criterion existed is left out of that criterion's numbers."""

from __future__ import annotations

from . import criteria
from .agreement import alpha_by_criterion


def mean_score(scores: dict) -> float | None:
    """One rating's mean over the criteria it scored (criteria no longer in the table aside)."""
    values = [scores[name] for name in criteria.names() if name in scores]
    return sum(values) / len(values) if values else None


def rating_statistics(ratings: list[dict]) -> dict:
    """How many ratings and raters; per rationale source and criterion the mean score (None where
    no rating has that criterion) and how often each score was given; preference counts; and
    Krippendorff's alpha (ordinal) per criterion."""
    sources = sorted({g["rationale_source"] for g in ratings})
    by_source = {s: [g["scores"] for g in ratings if g["rationale_source"] == s] for s in sources}
    return {
        "ratings": len(ratings),
        "raters": len({g["rater"] for g in ratings}),
        "mean_by_source": {
            s: {c.name: _mean(x[c.name] for x in rows if c.name in x) for c in criteria.CRITERIA} for s, rows in by_source.items()
        },
        "distribution": {
            c.name: {s: {v: sum(1 for x in rows if x.get(c.name) == v) for v in c.values} for s, rows in by_source.items()}
            for c in criteria.CRITERIA
        },
        "preferences": {p: sum(1 for g in ratings if g["preference"] == p) for p in criteria.PREFERENCES},
        "alpha": alpha_by_criterion(ratings),
    }


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
