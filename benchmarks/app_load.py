"""Load test of the app's API: 8 concurrent gradio_client sessions sign in and submit ratings
through `/submit_rating` (each reply also loads the rater's next item), against a real server
on 127.0.0.1 with a real store; afterwards every rating must be in the store.

    .venv/bin/python benchmarks/app_load.py --clients 8 --ratings 100
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SSR_MODE", "false")

from gradio_client import Client  # noqa: E402
from raw_client import RawClient  # noqa: E402

from annotations.store import Store  # noqa: E402
from demo.deps import BASE_SET, Deps  # noqa: E402
from demo.ui import build_demo, launch_options  # noqa: E402
from scicot_core.questions import Choice, Question, Rationale  # noqa: E402
from scicot_core.settings import Settings  # noqa: E402


def serve(folder: Path, n_rationales: int):
    settings = Settings(cache_dir=folder / "cache", db_path=folder / "load.db", distill_path=folder / "d.jsonl")
    store = Store(settings.db_path)
    questions = [Question(f"q{i}", f"Load question {i}?", (Choice("A", "yes"), Choice("B", "no")), "A") for i in range(n_rationales)]
    store.add_questions(questions)
    store.add_rationales([Rationale(q.id, f"Rationale {q.id}. Thus, the answer is (A).", "teacher", "t") for q in questions])
    deps = Deps(settings, store, load_lm=lambda: None)  # rating never touches the model
    deps.students.add(BASE_SET, {})
    demo = build_demo(deps)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    return demo, store


def rater(url: str, name: str, n: int, results, kind: str) -> None:
    """One client process: sign in, then submit n ratings; reports (latencies, error)."""
    latencies, error, began = [], None, None
    try:
        if kind == "gradio_client":
            client = Client(url, verbose=False)
            call = lambda api, *a: client.predict(*a, api_name=api)  # noqa: E731
        else:
            call = RawClient(url).call
        pin = call("/sign_in", name, "")[5]  # a fresh store each run: the name is new, claimed without a token
        began = time.time()
        for _ in range(n):
            start = time.perf_counter()
            # A rating carries the item its form is for (the pin); its reply brings the next one.
            status, *_, pin = call("/submit_rating", pin, "", "", 4, 3, 5, "tie", "load test")[:6]
            if not status.startswith("Saved"):  # a refusal comes back as the status line, not as an exception
                raise RuntimeError(status)
            latencies.append(time.perf_counter() - start)
    except Exception as e:  # counted and reported, never hidden
        error = f"{name}: {e!r}"
    results.put((latencies, error, began, time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ratings", type=int, default=100, help="ratings per client")
    parser.add_argument(
        "--client",
        choices=["gradio_client", "raw"],
        default="gradio_client",
        help="gradio_client, or a minimal HTTP client (raw_client.py) that costs the client side less",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo, store = serve(Path(tmp), args.ratings)
        # Clients run in their own processes, as real raters' browsers would: the server keeps its GIL.
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(target=rater, args=(demo.local_url, f"load{i}", args.ratings, results, args.client)) for i in range(args.clients)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get() for _ in procs]
        for p in procs:
            p.join()
        # Throughput over the window in which clients were submitting (not process start-up).
        elapsed = max(o[3] for o in outcomes) - min(o[2] for o in outcomes if o[2])
        latencies = [x for o in outcomes for x in o[0]]
        errors = [o[1] for o in outcomes if o[1]]
        stored = len(store.ratings())
        demo.close()
    latencies.sort()
    expected = args.clients * args.ratings
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "client": args.client,
        "clients": args.clients,
        "ratings_expected": expected,
        "ratings_stored": stored,
        "errors": errors,
        "ratings_per_s": expected / elapsed,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p95_ms": 1000 * latencies[int(0.95 * len(latencies))],
    }
    out = args.out or Path(f"benchmarks/results/app_load_{args.client}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"client: {args.client}")
    print("| clients | ratings | stored | errors | ratings/s | p50 ms | p95 ms |\n|---|---|---|---|---|---|---|")
    print(
        f"| {args.clients} | {expected} | {stored} | {len(errors)} | {report['ratings_per_s']:.0f} | {report['latency_p50_ms']:.0f} | {report['latency_p95_ms']:.0f} |"
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
