"""Plain handler functions behind the Curate & export tab: reviewer-only actions, downloads,
appending to the distillation set and background retraining. (The Statistics tab: `plots.py`.)"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from annotations.export import ExportFilter, export_rows, write_export
from annotations.identity import LOCAL, Client
from annotations.statistics import mean_score
from scicot_core import tempfiles
from scicot_core.asking import MEMORY_K
from scicot_core.distillation_set import DistillRecord, write_jsonl_atomic
from scicot_core.errors import DataError, PermissionDenied, ScicotError
from scicot_core.questions import read_jsonl
from scicot_core.settings import Settings

from . import retrain
from .deps import SAMPLE_SOURCE, Deps, open_memory
from .render import named, plain_model, safe

log = logging.getLogger(__name__)
EXPORT_KEEP_S = 86_400
CANDIDATE_HEADERS = ["rationale_id", "question", "source", "model", "raters", "mean", "spread", "decision"]


def become_reviewer(deps: Deps, name: str, secret: str, client: Client = LOCAL) -> str:
    """Sign in as a reviewer: the secret is checked, and `client`'s wrong ones throttled, before anything is written."""
    name = deps.store.grant_reviewer(name, secret, client)
    return f"{safe(name)} is a reviewer."


def _reviewer(deps: Deps, name: str) -> str:
    if not name:
        raise PermissionDenied("sign in as a reviewer first.")
    return deps.store.require_reviewer(name)


def candidates(deps: Deps, reviewer: str, min_mean: float, min_raters: int, max_spread: float) -> list[list]:
    """Rationales to curate, with their ratings summarised; `spread` is the range of the raters'
    mean scores (0 = full agreement)."""
    _reviewer(deps, reviewer)
    rows = []
    for row in deps.store.curation_rows():
        r, ratings = row["rationale"], row["ratings"]
        means = [m for m in (mean_score(g["scores"]) for g in ratings) if m is not None]
        mean = round(sum(means) / len(means), 2) if means else None
        spread = round(max(means) - min(means), 2) if means else None
        if (
            len(ratings) < (min_raters or 0)
            or (min_mean and (mean is None or mean < min_mean))
            or (spread is not None and spread > max_spread)
        ):
            continue
        decision = row["decision"]["decision"] if row["decision"] else ""
        rows.append(
            [
                r["id"],
                _cut(row["question"].stem, 80),
                r["source"],
                _cut(plain_model(r["model_id"]), 40),
                len(ratings),
                mean,
                spread,
                decision,
            ]
        )
    return rows[:500]


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word where one is near, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,.;:") + "…"


def show_candidate(deps: Deps, rationale_id: str) -> tuple[str, str]:
    r = deps.store.rationale(rationale_id)
    q = deps.store.question(r["question_id"])
    key = safe(q.answer_key) if q.answer_key else "none yet: give one below to accept or edit this rationale"
    return f"**{safe(q.stem)}** (key: {key})\n\n{safe(r['text'])}", r["text"]


def decide(
    deps: Deps, reviewer: str, rationale_id: str, decision: str, reason: str, edited_for: str, edited_text: str, answer_key: str = ""
) -> str:
    """Record a decision; `answer_key` gives a question without one its key (accepting needs it).
    An edit must come from the edit box of the selected rationale (`edited_for`, its pin)."""
    _reviewer(deps, reviewer)
    if not rationale_id:
        raise DataError("select a rationale in the table first.")
    if decision == "edit" and edited_for != rationale_id:
        raise DataError(
            f"the edited text is of {named(edited_for, 'no rationale')}, not of the selected {safe(rationale_id)}; "
            "nothing was recorded. Select the rationale you edited, or edit the one selected."
        )
    try:  # opened (built, the first time) before the decision, so that its change is measured from the memory as it was
        opened = open_memory(deps.settings, deps.store)
    except (ScicotError, OSError, sqlite3.Error) as e:
        opened = e
    try:
        deps.store.curate(rationale_id, decision, reviewer, reason or "", edited_text if decision == "edit" else None, answer_key or None)
    except BaseException:  # a refused decision leaves the memory as it was, and closed
        if not isinstance(opened, Exception):
            opened.close()
        raise
    return f"{decision} recorded for {rationale_id}.{_into_memory(deps, rationale_id, opened)}"


def _into_memory(deps: Deps, rationale_id: str, opened) -> str:
    """The memory follows the decision at once: an accepted rationale's facts (or its edit's,
    in its place) go in, a rejected or replaced one's come out, in one transaction. A dev or
    test question's stay out. The decision is recorded whatever happens here. What follows says
    so, and which of the questions nearest to those facts now read other facts, with stage 2's
    answer before and after (`memory_effect`). `opened` is the memory, or why it could not be opened."""
    from scicot_core import memory, memory_effect

    settings = deps.settings
    store_rows = deps.store.curation_rows()
    related = {rationale_id} | {row["rationale"]["id"] for row in store_rows if row["rationale"]["edits_id"] == rationale_id}
    rows = [r for r in export_rows(store_rows) if r["rationale_id"] in related]
    held_out = memory.held_out_ids(settings.data_dir)
    kept = [r for r in rows if not memory.held_out(r, held_out)]
    files = [f"store:{rid}" for rid in related]
    try:
        if isinstance(opened, Exception):
            raise opened
        store = opened
        try:
            facts = list(memory.store_rows(kept, held_out))
            texts = [text for text, _ in facts] + store.texts_from(files)
            (added, gone), effect = memory_effect.measure(
                store, effect_pool(deps), texts, lambda: store.replace(files, facts), MEMORY_K, _effect_student(deps)
            )
        finally:
            store.close()
    except (ScicotError, OSError, sqlite3.Error) as e:
        log.warning("the memory was not updated for %s: %s", rationale_id, e)
        return f" The memory was not updated ({safe(str(e))}); rebuild it with `scicot memory build`."
    if rows and not kept:
        return " Its question is a dev or test question, so the memory leaves it out."
    said = [f"holds its {len(facts)} fact(s) now ({added} new)"] if facts else []
    said += [f"lost {gone} fact(s) no other rationale holds"] if gone else []
    return (f" The memory {' and '.join(said)}." if said else "") + (effect_text(effect) if added or gone else "")


def effect_pool(deps: Deps) -> list:
    """The questions a memory change is checked on: every dev split in the data directory (never
    in the memory, so what moves there is what a new question would see), else the sample set."""
    sources = [s for s in deps.questions.sources() if s.endswith("/dev")] or [SAMPLE_SOURCE]
    return [q for source in sources for q in deps.questions.questions_in(source)]


def _effect_student(deps: Deps):
    """The default student (the first set offered), or none where it cannot be had: the facts
    that moved are shown all the same."""
    names = deps.students.names()
    try:
        return deps.students.student(names[0]) if names else None
    except ScicotError as e:
        log.warning("no student for the memory change's answers: %s", e)
        return None


def effect_text(effect) -> str:
    """A memory change's effect as Markdown: what moved among the questions nearest to the
    changed facts, and a table of those whose facts moved, with stage 2's answer before and after."""
    if not effect.checked:
        return " No question shares a word with these facts."
    if not effect.changes:
        return f" None of the {effect.checked} questions nearest to these facts reads other facts now."
    head = f"\n\n**{len(effect.changes)} of the {effect.checked} questions nearest to these facts read other facts now.**"
    (right_before, scored), (right_after, _) = effect.right("before"), effect.right("after")
    if scored:
        head += f" Stage 2 reading them: {right_before} of {scored} right before, {right_after} after."
    rows = ["| question | key | facts it reads now (+ new, − gone) | answer before → after |", "|---|---|---|---|"]
    for c in effect.changes:
        moved = [f"+ {safe(f.text)} ({safe(f.source)})" for f in c.new] + [f"− {safe(f.text)}" for f in c.gone]
        answers = f"{_answer(c.answer_before)} → {_answer(c.answer_after)}" if c.answer_after else "—"
        rows.append(f"| {safe(_cut(c.question.stem, 90))} | {safe(c.question.answer_key or '?')} | {'<br>'.join(moved)} | {answers} |")
    return head + "\n\n" + "\n".join(rows)


def _answer(a) -> str:
    return f"{safe(a.label)} ({a.probabilities.get(a.label, 0):.0%})"


def export_dir(settings: Settings) -> Path:
    """The one folder the app's downloads are written to (and served from: see `ui.launch_options`)."""
    return settings.cache_dir / "exports"


def export_file(deps: Deps, reviewer: str, fmt: str, accepted_only: bool, min_mean: float, min_raters: int) -> str:
    """Write the export to a new file in the exports folder and return its path (for the
    download); exports older than a day go first, so the folder never grows without bound."""
    _reviewer(deps, reviewer)
    rows = export_rows(deps.store.curation_rows(), ExportFilter(accepted_only, min_mean or None, int(min_raters or 0)))
    folder = export_dir(deps.settings)
    tempfiles.prune(folder, EXPORT_KEEP_S)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    # A random part: two reviewers exporting in the same second get a file each.
    name = f"scicot-distill-{stamp}-{secrets.token_hex(4)}.{'jsonl' if fmt == 'jsonl' else 'parquet'}"
    return str(write_export(rows, folder / name, fmt))


def append_accepted(deps: Deps, reviewer: str) -> str:
    """Write the distillation set as the store now has it: the base set's lines (those that did
    not come from this store) kept as they are, then every accepted or edited rationale with its
    provenance, so a later rejection or edit shows the next time it is written."""
    _reviewer(deps, reviewer)
    target = deps.settings.distill_path
    store_rows = deps.store.curation_rows()
    ours = {row["rationale"]["id"] for row in store_rows}
    base = [row for row in _base_lines(target) if row.get("rationale_id") not in ours]
    rows = export_rows(store_rows)
    keyless = sum(1 for row in store_rows if row["question"].answer_key is None and (row["decision"] or {}).get("decision") == "accept")
    write_jsonl_atomic(base + rows, target)
    note = f" ({keyless} accepted without an answer key left out: accept them again with a key)" if keyless else ""
    return f"Wrote the distillation set {target.name}: {len(rows)} accepted rationale(s) from the store and {len(base)} from the base set{note}."


def _base_lines(path: Path) -> list[dict]:
    """The lines of the current distillation set, each checked as a record (a bad line refuses
    the write, naming the line but not the server's path)."""
    if not path.exists():
        return []
    rows = []
    try:
        for _, row in read_jsonl(path):
            DistillRecord.from_json(row)
            rows.append(row)
    except DataError as e:
        raise DataError(
            f"the distillation set {path.name} has a bad line ({str(e).replace(str(path), path.name)}); fix or move it first."
        ) from None
    return rows


def start_retrain(deps: Deps, reviewer: str, steps: int) -> str:
    """Train stage 1 and stage 2 on the distillation set in the background (one run at a time)."""
    _reviewer(deps, reviewer)
    return retrain.start(deps, steps)


def cancel_retrain(deps: Deps, reviewer: str) -> str:
    """Stop the running retraining after its current step; nothing of it is offered."""
    _reviewer(deps, reviewer)
    if not deps.retrain.cancel():
        raise DataError("no retraining run is going.")
    return "Cancelling: the run stops after its current step."


def retrain_status(deps: Deps) -> str:
    return retrain.status(deps)
