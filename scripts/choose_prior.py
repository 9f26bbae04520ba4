"""Choose the two-stage+prior weight on dev and save it with the adapters.

    python scripts/choose_prior.py ADAPTERS DEV_RESULTS.json...

Each results.json of `scicot eval` (run with the two-stage+prior variant) holds a sweep of the
weight; the sweeps are summed over the dev sets, weighted by their question counts, so one
weight serves all of them. Ties go to the weight nearer 0.5. Refuses test results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scicot_core.variants import save_prior_weight  # noqa: E402


def main(adapters: Path, results: list[Path]) -> float:
    totals: dict[str, float] = {}
    counted = []
    for path in results:
        summary = json.loads(path.read_text())
        if "/test" in summary.get("title", "") or "test" in path.parent.parent.name:
            raise SystemExit(f"{path}: a test split; choose the weight on dev only.")
        for weight, accuracy in (summary.get("prior_sweep") or {}).items():
            totals[weight] = totals.get(weight, 0.0) + (accuracy or 0.0) * summary["n"]
        counted.append({"title": summary.get("title"), "n": summary["n"]})
    if not totals:
        raise SystemExit("no prior sweep in these results: run eval with --variant two-stage+prior.")
    n = sum(c["n"] for c in counted)
    best = max(totals, key=lambda w: (round(totals[w], 6), -abs(float(w) - 0.5)))
    sweep = {w: round(t / n, 4) for w, t in totals.items()}
    save_prior_weight(adapters, float(best), {"dev": counted, "sweep": sweep})
    print(f"prior weight {best} (dev accuracy {sweep[best]:.1%} over {n} questions) saved in {adapters}")
    return float(best)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
