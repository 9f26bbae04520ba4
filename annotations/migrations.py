"""The store's schema as an ordered list of named migrations, applied on every open.
Never edit a shipped migration: add the next one."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("scicot-annotations")


@migrations()
def m001_initial(db: Database) -> None:
    db["questions"].create(
        {"id": str, "stem": str, "choices_json": str, "answer_key": str, "source": str, "created_utc": str},
        pk="id",
        not_null={"stem", "choices_json", "created_utc"},
    )
    db["raters"].create({"name": str, "role": str, "created_utc": str}, pk="name", not_null={"role", "created_utc"})
    db["rationales"].create(
        {
            "id": str,
            "question_id": str,
            "text": str,
            "source": str,
            "model_id": str,
            "format_version": str,
            "edits_id": str,
            "author": str,
            "duration_ms": int,
            "note": str,
            "created_utc": str,
        },
        pk="id",
        foreign_keys=[("question_id", "questions", "id"), ("edits_id", "rationales", "id"), ("author", "raters", "name")],
        not_null={"question_id", "text", "source", "model_id", "created_utc"},
    )
    db["rationales"].create_index(["question_id"])
    db["ratings"].create(
        {
            "id": str,
            "rationale_id": str,
            "rater": str,
            "scores_json": str,
            "preference": str,
            "comment": str,
            "status": str,
            "created_utc": str,
            "updated_utc": str,
        },
        pk="id",
        foreign_keys=[("rationale_id", "rationales", "id"), ("rater", "raters", "name")],
        not_null={"rationale_id", "rater", "scores_json", "status", "created_utc", "updated_utc"},
    )
    db["ratings"].create_index(["rationale_id", "rater"], unique=True)
    db["ratings"].create_index(["rater", "status"])
    db["curation"].create(
        {"id": int, "rationale_id": str, "decision": str, "reviewer": str, "reason": str, "edited_id": str, "created_utc": str},
        pk="id",
        foreign_keys=[("rationale_id", "rationales", "id"), ("reviewer", "raters", "name"), ("edited_id", "rationales", "id")],
        not_null={"rationale_id", "decision", "reviewer", "created_utc"},
    )
    db["curation"].create_index(["rationale_id"])


@migrations()
def m002_rater_tokens_and_auth_failures(db: Database) -> None:
    # Only a hash of each rater's token is kept; raters from before this migration have none
    # and can be given one only with the operator's secret.
    db["raters"].add_column("token_hash", str)
    # Wrong tokens and secrets, counted to throttle guessing; kept in the store so that every
    # worker thread, every `scicot` process and a restarted app share one count.
    db["auth_failures"].create({"id": int, "kind": str, "name": str, "created_utc": str}, pk="id", not_null={"kind", "name", "created_utc"})
    db["auth_failures"].create_index(["name", "created_utc"])
    db["auth_failures"].create_index(["kind", "created_utc"])


@migrations()
def m003_auth_failures_by_client(db: Database) -> None:
    # The throttle slows down the client that guesses (its session, and its address where known),
    # not the name guessed at: counting by name let anyone lock a name's owner out.
    db["auth_failures"].add_column("session", str)
    db["auth_failures"].add_column("address", str)
    db["auth_failures"].create_index(["session", "created_utc"])
    db["auth_failures"].create_index(["address", "created_utc"])
