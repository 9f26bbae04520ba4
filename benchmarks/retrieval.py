"""Does the memory find the facts a question needs, and fast? Recall@k on the ARC dev questions
that have an EntailmentBank explanation, its human facts the relevance judgements; and the time
of each retrieval.

    .venv/bin/python benchmarks/retrieval.py --data-dir ../shared/data [--memory NAME=PATTERN,PATTERN ...] [--rerank N] \\
        [--k 1 3 5 10 20] [--out benchmarks/results/retrieval.json]

Each memory is built from the data directory's training-split rationale files that its
patterns choose, as `scicot memory build --source` builds it, into a temporary file; by default
`all` (every file), `human` (EntailmentBank) and `terse` (EntailmentBank, Flan-T5, and the
tersest GPT-4o and Gemini levels). Per memory,
query mode (`joint`: the stem and every choice at once; `per-choice`: the stem with each choice,
the choices' best in turn) and k it reports:
- recall@k: the share of a question's gold facts among its k retrieved (same words, in order),
  averaged over questions;
- near recall@k: the same, a retrieved fact counting when its content words overlap a gold
  fact's by a Jaccard index of at least 0.5;
- hit@k: the share of questions with at least one gold fact (exact) in their k;
- in memory: the share of gold facts the memory holds at all, the ceiling of recall.
And the milliseconds per question (p50, p90) of a top-20 retrieval, for the joint query also as
FTS5 itself ranks it (`joint, FTS5`: the same scores, the speed the numpy index is measured
against in the same run), and the seconds to load the index. With `--rerank N`, also the
joint query's top N reordered by the student's own scores (the base model's pointwise mutual
information of each fact with the question and its choices), the model's time included.
Prints a Markdown table and writes JSON; without `--rerank` no model is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from scicot_core import formats, memory
from scicot_core.questions import load_split

SETS = {"arc_easy": "entailmentbank_arc_easy_dev.jsonl", "arc_challenge": "entailmentbank_arc_challenge_dev.jsonl"}
NEAR = 0.5
DEFAULT = ["all=*", "human=entailmentbank", "terse=entailmentbank,flan_t5,gpt4o-level1,gemini15flash-level1"]


def gold(data_dir: Path, dataset: str) -> list[tuple[object, list[str]]]:
    """(question, its gold facts as memory keys) for the dev questions with an explanation."""
    questions = {q.id: q for q in load_split(dataset, "dev", data_dir)}
    rows = [json.loads(line) for line in (data_dir / "rationales" / SETS[dataset]).read_text().splitlines() if line.strip()]
    return [(questions[r["id"]], [memory.key(f) for f in r["facts"]]) for r in rows if r["id"] in questions and r["facts"]]


def content(text_key: str) -> frozenset[str]:
    return frozenset(w for w in text_key.split() if w not in memory.STOPWORDS)


def near(a: str, b: str) -> bool:
    x, y = content(a), content(b)
    return bool(x | y) and len(x & y) / len(x | y) >= NEAR


def reranker(lm, candidates: int):
    """Facts for a question reordered by the student's own scores: the BM25 top `candidates`,
    by how much more likely the base model finds each fact after the question and its choices
    than on its own (pointwise mutual information per token)."""

    alone: dict[str, float] = {}  # a fact's score on its own is the same for every question

    def rerank(m: memory.Memory, question, k: int, mode: str) -> list:
        found = m.for_question(question, k=candidates, mode=mode)
        if not found:
            return []
        texts = [f" {f.text}" for f in found]
        new = [t for t in dict.fromkeys(texts) if t not in alone]
        if new:
            alone.update((t, a) for t, (a, _) in zip(new, lm.score(["Fact:"] * len(new), new)))
        given = lm.score([f"{formats.question_block(question)}\nFact:"] * len(found), texts)
        gain = [(c - alone[t]) / max(n, 1) for (c, n), t in zip(given, texts)]
        return [f for _, f in sorted(zip(gain, found), key=lambda x: -x[0])][:k]

    return rerank


def fts5(m: memory.Memory, question, k: int, mode: str) -> list:
    """The joint query as FTS5 ranks it, without the numpy index."""
    return m.fts5_search(memory.joint_query(question), k)


def measure(m: memory.Memory, items, ks: list[int], mode: str, rerank=None, label: str = "") -> dict:
    top = max(ks)
    recall = {k: [] for k in ks}
    soft = {k: [] for k in ks}
    hit = {k: [] for k in ks}
    ms = []
    # BM25 alone takes milliseconds a question; the reranker's model, about a second: show its progress
    for question, facts in tqdm(items, desc=label, unit="question", disable=not label):
        began = time.perf_counter()
        found = rerank(m, question, top, mode) if rerank else m.for_question(question, k=top, mode=mode)
        ms.append(1000 * (time.perf_counter() - began))
        keys = [memory.key(f.text) for f in found]
        for k in ks:
            first = keys[:k]
            recall[k].append(sum(f in first for f in facts) / len(facts))
            soft[k].append(sum(any(near(f, g) for g in first) for f in facts) / len(facts))
            hit[k].append(any(f in first for f in facts))
    pct = lambda values: round(100 * statistics.mean(values), 1)  # noqa: E731
    return {
        "recall": {k: pct(v) for k, v in recall.items()},
        "near_recall": {k: pct(v) for k, v in soft.items()},
        "hit": {k: pct(v) for k, v in hit.items()},
        "ms_p50": round(statistics.median(ms), 2),
        "ms_p90": round(statistics.quantiles(ms, n=10)[-1], 2),
    }


def measure_memory(data_dir: Path, patterns: list[str], ks: list[int], rerank=None) -> dict:
    """Build one memory and measure it on every dev set."""
    with tempfile.TemporaryDirectory() as tmp:
        began = time.monotonic()
        files, rows = memory.build_rows(data_dir, patterns)
        stats = memory.build(Path(tmp) / "memory.db", rows)
        build_s = round(time.monotonic() - began, 1)
        m = memory.Memory(Path(tmp) / "memory.db")
        began = time.perf_counter()
        m.warm()
        index_s = round(time.perf_counter() - began, 2)
        keys = {r[0] for r in m.db.execute("select key from facts")}
        results = {}
        for dataset in SETS:
            items = gold(data_dir, dataset)
            facts = [f for _, fs in items for f in fs]
            results[dataset] = {
                "questions": len(items),
                "gold_facts": len(facts),
                "in_memory": round(100 * sum(f in keys for f in facts) / len(facts), 1),
                "modes": {mode: measure(m, items, ks, mode) for mode in memory.MODES}
                | {"joint, FTS5": measure(m, items, ks, "joint", fts5)}
                | ({"joint, reranked": measure(m, items, ks, "joint", rerank, f"rerank {dataset}")} if rerank else {}),
            }
        m.close()
    print(
        f"memory {patterns}: {stats['facts']:,} facts from {len(files)} files, built in {build_s} s, its index loaded in {index_s} s",
        flush=True,
    )
    return {
        "sources": patterns,
        "files": [f.name for f in files],
        "facts": stats["facts"],
        "places": stats["sources"],
        "build_s": build_s,
        "index_s": index_s,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--memory", action="append", metavar="NAME=PATTERN,...", help="a memory to measure (default: all, human, terse)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10, 20])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval.json"))
    parser.add_argument(
        "--rerank",
        type=int,
        metavar="N",
        help="also rerank the BM25 top N of each joint query by the student's own scores (loads the base model)",
    )
    args = parser.parse_args()
    rerank = None
    if args.rerank:
        from scicot_core.base_models import load_model
        from scicot_core.settings import Settings

        settings = Settings.from_env()
        rerank = reranker(load_model(settings.student, settings.cache_dir, settings.offline, settings.threads), args.rerank)
    specs = args.memory or DEFAULT
    if not all("=" in spec for spec in specs):
        raise SystemExit("--memory takes NAME=PATTERN[,PATTERN...], e.g. human=entailmentbank")
    configs = dict(spec.split("=", 1) for spec in specs)
    memories = {name: measure_memory(args.data_dir, patterns.split(","), args.k, rerank) for name, patterns in configs.items()}
    summary = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "memories": memories,
        "rerank_candidates": args.rerank,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    head = " | ".join(f"R@{k}" for k in args.k)
    print(f"| memory (facts) | dev set | mode | {head} | near R@{args.k[-1]} | hit@5 | in memory | ms p50 | ms p90 |")
    print("|---|---|---|" + "---|" * len(args.k) + "---|---|---|---|---|")
    for name, mem in memories.items():
        for dataset, r in mem["results"].items():
            for mode, x in r["modes"].items():
                cells = " | ".join(f"{x['recall'][k]:.1f}" for k in args.k)
                print(
                    f"| {name} ({mem['facts']:,}) | {dataset} ({r['questions']}) | {mode} | {cells} | "
                    f"{x['near_recall'][args.k[-1]]:.1f} | {x['hit'].get(5, 'n/a')} | {r['in_memory']:.1f} | {x['ms_p50']} | {x['ms_p90']} |"
                )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
