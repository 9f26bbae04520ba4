"""`scicot db ...`: the annotation store from the shell (init, stats, import, export, and the
rating and curation verbs for scripted use). Open the same file in Datasette to browse it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from annotations import criteria, validate
from annotations.criteria import DECISIONS, PREFERENCES
from annotations.export import FORMATS, ExportFilter, export_rows, push_to_hub, write_export
from annotations.statistics import rating_statistics
from scicot_core.distillation_set import load_any
from scicot_core.settings import Settings

if TYPE_CHECKING:
    from annotations.store import Store

db_option = click.option(
    "--db", "db_path", type=click.Path(path_type=Path), help="Store file [default: SCICOT_DB, else the user data dir]."
)


# A rater's token is that person's credential for one command, not the deployment's
# configuration, so it comes with the command (or its shell) rather than through Settings.
token_option = click.option(
    "--token", envvar="SCICOT_RATER_TOKEN", show_envvar=True, help="Your rater token, printed once by `scicot db claim`."
)
secret_option = click.option("--secret", help="The reviewer secret [default: SCICOT_REVIEWER_SECRET].")


def open_store(db_path: Path | None) -> Store:
    from annotations.store import Store  # here, not above: `scicot --help` need not load sqlite-utils (and pandas)

    settings = Settings.from_env()
    return Store(db_path or settings.db_path, reviewer_secret=settings.reviewer_secret)


def reviewer_store(db_path: Path | None, reviewer: str, secret: str | None) -> Store:
    """The store, once `reviewer` has shown the reviewer secret for this very action: without a
    secret configured, curation and export are refused, whatever role a name holds."""
    store = open_store(db_path)
    settings = Settings.from_env()
    store.check_secret(reviewer, settings.reviewer_secret if secret is None else secret)
    store.require_reviewer(reviewer)
    return store


@click.group()
def db():
    """The annotation store: ratings, edits and curation in SQLite."""


@db.command()
@db_option
def init(db_path):
    """Create the store (or bring its schema up to date) and print where it is."""
    store = open_store(db_path)
    click.echo(f"{store.path}: " + ", ".join(f"{n} {t}" for t, n in store.counts().items()))


@db.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def stats(db_path, as_json):
    """Counts, ratings per criterion and source, preferences and agreement (submitted ratings only)."""
    store = open_store(db_path)
    report = {"counts": store.counts(), "progress": store.progress()} | rating_statistics(store.ratings())
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"store: {store.path}")
    click.echo("counts: " + ", ".join(f"{n} {t}" for t, n in report["counts"].items()))
    click.echo(
        f"submitted ratings: {report['progress']['submitted_ratings']} on {report['progress']['rated_by_anyone']} of {report['progress']['rationales']} rationales"
    )
    for source, means in report["mean_by_source"].items():
        click.echo(f"  {source:8} " + "  ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in means.items()))
    chosen = {k: v for k, v in report["preferences"].items() if v}
    click.echo("preference: " + (", ".join(f"{k} {v}" for k, v in chosen.items()) or "none yet"))
    click.echo(
        "agreement (Krippendorff's alpha, ordinal): "
        + ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in report["alpha"].items())
    )


@db.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--questions",
    "question_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Question file to join rationale files with.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory to find each rationale file's questions [default: SCICOT_DATA_DIR].",
)
@db_option
def import_(files, question_file, data_dir, db_path):
    """Load distillation sets as teacher rationales ready to rate (idempotent).

    FILES are distillation-set JSONL files (question + rationale per line) or rationale files
    (`id`, `rationale`, `teacher`) joined on id with their question split, such as
    rationales/flan_t5_arc_challenge_train.jsonl with arc_challenge/train.jsonl.
    """
    data_dir = data_dir or Settings.from_env().data_dir
    # Every file is read and checked before the store is opened: a bad line anywhere stores nothing.
    loaded = [(path, load_any(path, question_file, data_dir)) for path in files]
    store = open_store(db_path)
    for path, records in loaded:
        new_q, new_r = store.import_records(records)
        click.echo(f"{path.name}: {len(records)} records, {new_q} new questions, {new_r} new rationales")
    click.echo("store: " + ", ".join(f"{n} {t}" for t, n in store.counts().items()))


@db.command()
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--reviewer", required=True, help="Your rater name; export needs the reviewer role.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--all", "include_all", is_flag=True, help="Include uncurated rationales (never rejected ones).")
@click.option("--min-mean", type=float, help="Keep rationales whose mean score is at least this.")
@click.option("--min-raters", type=int, default=0, show_default=True, help="Keep rationales with at least this many submitted ratings.")
@click.option("--push-to-hub", "repo_id", help="Also push the set to this hub dataset repo (needs HF_TOKEN and a network).")
@secret_option
@db_option
def export(destination, reviewer, fmt, include_all, min_mean, min_raters, repo_id, secret, db_path):
    """Write curated rationales as the distillation set (JSONL is what `scicot train` reads)."""
    store = reviewer_store(db_path, reviewer, secret)
    rows = export_rows(store.curation_rows(), ExportFilter(not include_all, min_mean, min_raters))
    write_export(rows, destination, fmt)
    click.echo(f"wrote {len(rows)} rationales to {destination} ({fmt})")
    if repo_id:
        push_to_hub(rows, repo_id, os.environ.get("HF_TOKEN"))
        click.echo(f"pushed to the hub as {repo_id}")


@db.command()
@click.argument("name")
@click.option("--secret", prompt=True, hide_input=True, help="The reviewer secret (SCICOT_REVIEWER_SECRET of this deployment).")
@db_option
def grant(name, secret, db_path):
    """Give a name the reviewer role (curation and export), registering it if new."""
    name = open_store(db_path).grant_reviewer(name, secret)
    click.echo(f"{name} is now a reviewer")


@db.command()
@click.argument("name")
@click.option("--secret", help="The reviewer secret: only to give a name already claimed a new token (a lost one, or none yet).")
@db_option
def claim(name, secret, db_path):
    """Claim a rater name; prints its token, once (keep it: rating as NAME needs it).

    The token alone goes to stdout: `export SCICOT_RATER_TOKEN=$(scicot db claim ann)`.
    """
    token = open_store(db_path).claim_rater(name, secret)
    click.echo(f"{name.strip()}: your rater token follows; it is not shown again, so keep it to rate as {name.strip()}.", err=True)
    click.echo(token)


@db.command()
@click.option("--rater", required=True, help="Your rater name (claimed with `scicot db claim`).")
@token_option
@db_option
def queue(rater, token, db_path):
    """Show the next rationale for a rater, with progress."""
    store = open_store(db_path)
    rater = store.authenticate(rater, token, claim=False).name
    item = store.next_item(rater)
    p = store.progress(rater)
    click.echo(f"{rater}: {p['rater_done']} done, {p['rater_remaining']} to go")
    if item is None:
        click.echo("nothing left to rate")
        return
    r = item.rationale
    click.echo(f"\n{r['id']}  [{r['source']}, {r['model_id']}]\nQuestion: {item.question.stem}")
    click.echo(
        "\n".join(f"  ({c.label}) {c.text}" for c in item.question.choices)
        + f"\nAnswer key: {item.question.answer_key}\nRationale: {r['text']}"
    )


@db.command(epilog="Criteria: " + "; ".join(f"{c.name} ({c.minimum} = {c.low} to {c.maximum} = {c.high})" for c in criteria.CRITERIA) + ".")
@click.argument("rationale_id")
@click.option("--rater", required=True)
@click.option("--score", "scores", multiple=True, metavar="CRITERION=N", help="Repeat for each criterion (listed below, with its scale).")
@click.option("--preference", type=click.Choice(PREFERENCES))
@click.option("--comment", default="")
@click.option("--skip", is_flag=True, help="Pass on this rationale instead of rating it.")
@token_option
@db_option
def rate(rationale_id, rater, scores, preference, comment, skip, token, db_path):
    """Rate (or skip) one rationale; rating it again replaces your earlier rating."""
    parsed = {}
    for item in scores:
        name, _, value = item.partition("=")
        parsed[name.strip()] = value.strip()
    if not skip:
        validate.scores(parsed)  # before the rater is registered: bad scores write nothing
    store = open_store(db_path)
    rater = store.authenticate(rater, token, claim=False).name
    if skip:
        store.skip(rationale_id, rater)
        click.echo(f"skipped {rationale_id}")
        return
    rating = store.upsert_rating(rationale_id, rater, parsed, preference, comment)
    click.echo(f"rating {rating} saved for {rationale_id}")


@db.command()
@click.argument("rationale_id")
@click.option("--reviewer", required=True)
@click.option("--decision", type=click.Choice(DECISIONS), required=True)
@click.option("--reason", default="")
@click.option("--text", "edited_text", help="The edited rationale (with --decision edit).")
@secret_option
@db_option
def curate(rationale_id, reviewer, decision, reason, edited_text, secret, db_path):
    """Accept, reject or edit a rationale (reviewers only, with the reviewer secret)."""
    store = reviewer_store(db_path, reviewer, secret)
    store.curate(rationale_id, decision, reviewer, reason, edited_text)
    click.echo(f"{decision} recorded for {rationale_id}")
