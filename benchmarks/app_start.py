"""Start-up of the real app: seconds from `python app.py` to the first page (HTTP 200 on /),
with the model cache already made (the model then loads in the background).

    .venv/bin/python benchmarks/app_start.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(folder: Path) -> float:
    port = free_port()
    env = os.environ | {
        "GRADIO_SERVER_PORT": str(port),
        "SCICOT_DB": str(folder / "start.db"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SSR_MODE": "false",
    }
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the app did not serve its first page within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/app_start.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = [one_start(Path(tmp)) for _ in range(args.runs)]
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs_s": times, "median_s": statistics.median(times)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| runs | first page, median (s) | each (s) |\n|---|---|---|")
    print(f"| {len(times)} | {report['median_s']:.1f} | {', '.join(f'{t:.1f}' for t in times)} |\n\nwrote {args.out}")


if __name__ == "__main__":
    main()
