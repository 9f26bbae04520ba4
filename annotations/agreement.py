"""Inter-rater agreement: Krippendorff's alpha (nominal, ordinal or interval) from the
coincidence matrix, for any number of raters and missing ratings (Krippendorff 2011,
"Computing Krippendorff's Alpha-Reliability")."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from . import criteria


def coincidences(units: Iterable[Sequence[float]]) -> dict[tuple[float, float], float]:
    """o[c, k]: each ordered pair of values within a unit, weighted 1 / (m_u - 1)."""
    o: dict[tuple[float, float], float] = defaultdict(float)
    for values in units:
        m = len(values)
        if m < 2:
            continue  # a unit with one value is not pairable
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    o[c, k] += 1 / (m - 1)
    return o


def _distance(level: str, totals: dict[float, float], ordered: list[float]):
    if level == "nominal":
        return lambda c, k: float(c != k)
    if level == "interval":
        return lambda c, k: (c - k) ** 2
    if level == "ordinal":
        rank = {v: i for i, v in enumerate(ordered)}

        def ordinal(c, k):
            lo, hi = sorted((rank[c], rank[k]))
            between = sum(totals[ordered[g]] for g in range(lo, hi + 1))
            return (between - (totals[c] + totals[k]) / 2) ** 2

        return ordinal
    raise ValueError(f"unknown level {level!r}; use nominal, ordinal or interval")


def krippendorff_alpha(units: Iterable[Sequence[float]], level: str = "ordinal") -> float | None:
    """Alpha over units (each the values raters gave one item); None when it is undefined
    (fewer than two pairable values, or no variation at all)."""
    o = coincidences(units)
    totals: Counter = Counter()
    for (c, _k), weight in o.items():
        totals[c] += weight
    n = sum(totals.values())
    if n <= 1 or len(totals) < 2:
        return None
    ordered = sorted(totals)
    delta = _distance(level, totals, ordered)
    observed = sum(weight * delta(c, k) for (c, k), weight in o.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in ordered for k in ordered) / (n - 1)
    return 1 - observed / expected


def alpha_by_criterion(ratings: Iterable[dict], level: str = "ordinal") -> dict[str, float | None]:
    """Alpha per criterion from submitted ratings (each with `rationale_id` and `scores`); a
    rating without a criterion (made before it existed) is a missing value there."""
    per_item: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rating in ratings:
        for name, value in rating["scores"].items():
            per_item[name][rating["rationale_id"]].append(value)
    return {c.name: krippendorff_alpha(per_item[c.name].values(), level) for c in criteria.CRITERIA}
