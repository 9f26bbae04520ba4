"""Start-up of the `scicot` command: wall seconds for commands that need no model, and whether
they imported torch or transformers. Give `--before` a checkout of an older commit to measure
both in one run, interleaved, on the same machine and load.

    .venv/bin/python benchmarks/cli_start.py --runs 5 --before ../main
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

COMMANDS = (("--help",), ("db", "--help"), ("db", "stats"), ("samples",))

# Runs the CLI as `scicot` would, then reports which heavy libraries the command imported.
PROBE = """
import json, sys
from demo.cli import main
try:
    main(sys.argv[1:], prog_name="scicot")
except SystemExit:
    pass
print(json.dumps({m: m in sys.modules for m in ("torch", "transformers")}), file=sys.stderr)
"""


def run(tree: Path, args: tuple[str, ...], env: dict) -> tuple[float, dict]:
    """(wall seconds of `python -m demo.cli ARGS`, {library: imported}) in checkout `tree`."""
    env = env | {"PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "demo.cli", *args], cwd=tree, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    probe = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tree, env=env, check=True, capture_output=True, text=True)
    return seconds, json.loads(probe.stderr.strip().splitlines()[-1])


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="An older checkout to measure beside this one.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_start.json"))
    args = parser.parse_args()
    trees = {"after": Path.cwd()} | ({"before": args.before.resolve()} if args.before else {})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"SCICOT_DB": str(Path(tmp) / "bench.db"), "HF_HUB_OFFLINE": "1"}
        for command in COMMANDS:
            times: dict[str, list[float]] = {label: [] for label in trees}
            imported: dict[str, dict] = {}
            for _ in range(args.runs):
                for label, tree in trees.items():
                    seconds, imported[label] = run(tree, command, env)
                    times[label].append(seconds)
            for label in trees:
                rows.append(
                    {"command": "scicot " + " ".join(command), "tree": label, "median_s": statistics.median(times[label])}
                    | {"runs_s": times[label], "imports": imported[label]}
                )
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "commits": {label: _commit(tree) for label, tree in trees.items()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| command | code | median (s) | torch imported | transformers imported |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['command']}` | {r['tree']} | {r['median_s']:.2f} | {r['imports']['torch']} | {r['imports']['transformers']} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
