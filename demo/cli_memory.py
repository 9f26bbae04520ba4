"""`scicot memory ...`: the student's memory of facts (scicot_core/memory.py) from the shell:
build it from training-split rationales and the store's accepted ones, search it, count it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from tqdm.auto import tqdm

from scicot_core.memory import MAX_FACTS, MODES
from scicot_core.settings import Settings

from .cli_method import _questions, question_options

memory_option = click.option(
    "--memory",
    "memory_path",
    type=click.Path(path_type=Path),
    help="Memory file [default: SCICOT_MEMORY, else memory.db beside the store].",
)


@click.group()
def memory():
    """The student's memory: facts from teacher and human rationales, searched by BM25."""


@memory.command()
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [default: SCICOT_DATA_DIR; none: the sample set]."
)
@click.option(
    "--source", "patterns", multiple=True, help="Rationale files by teacher, e.g. 'gpt4o-level[1-3]' [default: every train file]."
)
@click.option(
    "--file", "files", multiple=True, type=click.Path(dir_okay=False, path_type=Path), help="A training-split rationale file to add."
)
@click.option(
    "--db", "db_path", type=click.Path(path_type=Path), help="Store whose accepted rationales and edits join [default: SCICOT_DB]."
)
@click.option("--no-store", is_flag=True, help="Leave the store's rationales out.")
@memory_option
def build(data_dir, patterns, files, db_path, no_store, memory_path):
    """Build the memory anew (the old file stays until the new one is whole)."""
    from scicot_core import memory as mem

    settings = Settings.from_env()
    data_dir = data_dir or settings.data_dir
    out = memory_path or settings.memory_file
    chosen, rows = mem.build_rows(data_dir, patterns or ("*",), files)
    store_db = db_path or settings.db_path
    extra = []
    if not no_store and store_db.is_file():
        extra = _store_rows(store_db, data_dir)
    began = time.monotonic()
    about = {"files": [f.name for f in chosen] or ["sample_questions.jsonl"], "store": str(store_db) if extra else None}
    stats = mem.build(out, _chain(rows, extra), about)
    click.echo(
        f"{out}: {stats['facts']:,} facts from {stats['sources']:,} places, {stats['questions']:,} questions, in {time.monotonic() - began:.1f} s"
    )
    for kind, n in stats["by_kind"].items():
        click.echo(f"  {kind:8} {n:,}")


def _chain(first, second):
    yield from first
    yield from second


def _store_rows(db_path: Path, data_dir: Path | None) -> list:
    from annotations.export import export_rows
    from annotations.store import Store
    from scicot_core import memory as mem

    store = Store(db_path)
    try:
        rows = export_rows(store.curation_rows())
    finally:
        store.close()
    return list(mem.store_rows(rows, mem.held_out_ids(data_dir)))


@memory.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="How many facts.")
@click.option("--exclude-question", help="Leave out the facts of this question's own rationales.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per fact.")
@memory_option
def search(query, k, exclude_question, as_json, memory_path):
    """The facts BM25 ranks first for QUERY, with where each came from."""
    from scicot_core import memory as mem

    store = mem.Memory(memory_path or Settings.from_env().memory_file)
    try:
        facts = store.with_sources(store.search(query, k, exclude_question))
    finally:
        store.close()
    if not facts:
        click.echo("No fact matches; try other words.", err=True)
    for f in facts:
        if as_json:
            click.echo(json.dumps({"text": f.text, "score": round(f.score, 3), "sources": [s.label() for s in f.sources]}))
        else:
            more = f" (+{len(f.sources) - 1} more)" if len(f.sources) > 1 else ""
            click.echo(f"{f.score:6.2f}  {f.text}\n        {f.sources[0].label()}{more}")


@memory.command()
@memory_option
def stats(memory_path):
    """How many facts, from where."""
    from scicot_core import memory as mem

    store = mem.Memory(memory_path or Settings.from_env().memory_file)
    try:
        click.echo(json.dumps(store.stats(), indent=2))
    finally:
        store.close()


@memory.command()
@question_options
@click.option("-k", "k", type=click.IntRange(1, MAX_FACTS), default=3, show_default=True, help="Facts per question.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="joint",
    show_default=True,
    help="joint: stem and choices as one query; per-choice: the stem with each choice, their best in turn.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL: id, rationale (the facts as one text), facts, sources.",
)
@memory_option
def retrieve(dataset, split, questions_file, limit, data_dir, k, mode, out, memory_path):
    """Each question's top-k facts, as a rationale file that `eval --rationales` and `train
    --student-rationales` read. A question never gets the facts of its own rationales."""
    from scicot_core import memory as mem
    from scicot_core.distillation_set import write_jsonl_atomic

    settings = Settings.from_env()
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    store = mem.Memory(memory_path or settings.memory_file)
    try:
        rows = []
        for q in tqdm(questions, desc="retrieve", unit="q", disable=None):
            facts = store.with_sources(store.for_question(q, k, mode, exclude_own=True))
            rows.append(
                {
                    "id": q.id,
                    "rationale": mem.as_rationale(facts),
                    "facts": [f.text for f in facts],
                    "sources": [[s.label() for s in f.sources[:3]] for f in facts],
                }
            )
    finally:
        store.close()
    write_jsonl_atomic(rows, out)
    empty = sum(not r["facts"] for r in rows)
    click.echo(f"{out}: {len(rows)} questions, {k} facts each ({mode}){f'; {empty} found none' if empty else ''}")
