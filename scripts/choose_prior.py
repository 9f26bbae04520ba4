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

from scicot_core.dev_choices import prior_weight  # noqa: E402
from scicot_core.errors import ConfigError  # noqa: E402
from scicot_core.variants import save_prior_weight  # noqa: E402


def main(adapters: Path, results: list[Path]) -> float:
    summaries = [json.loads(path.read_text()) for path in results]
    for path, summary in zip(results, summaries):
        if "/test" in summary.get("title", "") or "test" in path.parent.parent.name:
            raise SystemExit(f"{path}: a test split; choose the weight on dev only.")
    try:
        best, chosen_on = prior_weight(summaries)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    save_prior_weight(adapters, best, chosen_on)
    n = sum(s["n"] for s in summaries)
    print(f"prior weight {best:g} (dev accuracy {chosen_on['sweep'][_key(best, chosen_on)]:.1%} over {n} questions) saved in {adapters}")
    return best


def _key(weight: float, chosen_on: dict) -> str:
    return next(w for w in chosen_on["sweep"] if float(w) == weight)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
