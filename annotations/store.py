"""The annotation store: the one owner of SQL. A SQLite file in WAL mode with a busy timeout,
one connection per thread (Gradio runs handlers in worker threads), migrations on open, and
verbs for questions, rationales, raters, ratings, curation and the rating queue.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from scicot_core.distillation_set import DistillRecord
from scicot_core.errors import ConfigError, DataError, PermissionDenied
from scicot_core.formats import FORMAT_VERSION
from scicot_core.questions import MAX_CHOICE_CHARS, MAX_STEM_CHARS, Choice, Question, Rationale

from . import criteria, identity, validate
from .criteria import MAX_COMMENT_CHARS, MAX_RATIONALE_CHARS, PREFERENCES, SOURCES, STATUSES
from .curation import CurationVerbs
from .identity import IdentityVerbs
from .migrations import migrations

BUSY_TIMEOUT_S = 30.0
MAX_ID_CHARS, MAX_LABEL_CHARS, MAX_NOTE_CHARS = 200, 8, 500


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def rationale_id(question_id: str, source: str, model_id: str, text: str, edits_id: str | None) -> str:
    """Deterministic, so importing the same rationale twice adds nothing."""
    key = "\x1f".join([question_id, source, model_id, text, edits_id or ""])
    return "r-" + hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class QueueItem:
    """One rationale to rate, with its question and the other rationales for that question."""

    rationale: dict
    question: Question
    siblings: list[dict]
    draft: dict | None


_UPSERT_RATING = """insert into ratings (id, rationale_id, rater, scores_json, preference, comment, status, created_utc, updated_utc)
   values (:id, :rationale_id, :rater, :scores_json, :preference, :comment, :status, :created_utc, :updated_utc)
   on conflict(rationale_id, rater) do update set scores_json = excluded.scores_json,
   preference = excluded.preference, comment = excluded.comment, status = excluded.status,
   updated_utc = excluded.updated_utc"""


class Store(IdentityVerbs, CurationVerbs):
    """Everything the app and the CLI write or read about human judgements goes through here."""

    def __init__(self, path: Path | str, reviewer_secret: str | None = None, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._reviewer_secret = reviewer_secret
        self._clock = clock  # seconds since the epoch; tests pass a fake to step through the throttle
        self._local = threading.local()
        validate.store_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.db
            db.conn.execute("PRAGMA journal_mode=WAL")
            with self._write():
                pass
            migrations.apply(db)
        except (sqlite3.DatabaseError, OSError) as e:
            self.close()
            raise ConfigError(f"cannot open the store {self.path} ({e}); point SCICOT_DB (or --db) at a .db file you can write.") from None

    # -- connections and transactions ----------------------------------------------------------
    @property
    def db(self) -> Database:
        """This thread's connection; a connection never crosses threads."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            db = self._local.db = Database(conn, execute_plugins=False)
        return db

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One write transaction, taking the write lock up front (no upgrade deadlocks)."""
        db = self.db
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _questions_by_id(self) -> dict[str, Question]:
        return {row["id"]: _question_from_row(row) for row in self.db.query("select * from questions")}

    def _one(self, sql: str, params=()) -> dict | None:
        rows = list(self.db.query(sql, params))
        return rows[0] if rows else None

    # -- questions and rationales ---------------------------------------------------------------
    def add_questions(self, questions: Iterable[Question]) -> int:
        """Insert questions not yet stored; returns how many were new."""
        rows = [_question_row(q) for q in questions]
        with self._write() as db:
            before = db["questions"].count
            db["questions"].insert_all(rows, ignore=True)
            return db["questions"].count - before

    def add_rationale(self, rationale: Rationale, edits_id: str | None = None, author: str | None = None) -> str:
        """Store a rationale (idempotent); its question must be stored first."""
        return self.add_rationales([rationale], edits_id=edits_id, author=author)[0]

    def add_rationales(self, rationales: Iterable[Rationale], edits_id: str | None = None, author: str | None = None) -> list[str]:
        rows = [self._rationale_row(r, edits_id, author) for r in rationales]
        with self._write() as db:
            for row in rows:
                if db["questions"].count_where("id = ?", [row["question_id"]]) == 0:
                    raise DataError(f"unknown question {row['question_id']!r}; add the question before its rationale.")
            db["rationales"].insert_all(rows, ignore=True)
        return [row["id"] for row in rows]

    def add_question_with_rationales(self, question: Question, rationales: Iterable[Rationale]) -> list[str]:
        """A question and its rationales in one transaction: if any is refused, neither is stored."""
        question_row = _question_row(question)
        rows = [self._rationale_row(r, None, None) for r in rationales]
        with self._write() as db:
            db["questions"].insert(question_row, ignore=True)
            db["rationales"].insert_all(rows, ignore=True)
        return [row["id"] for row in rows]

    def _rationale_row(self, r: Rationale, edits_id: str | None, author: str | None) -> dict:
        text = validate.text(r.text, "rationale", MAX_RATIONALE_CHARS)
        validate.choice(r.source, SOURCES, "rationale source")
        model_id = validate.text(r.model_id, "model id", 200)
        return {
            "id": rationale_id(r.question_id, r.source, model_id, text, edits_id),
            "question_id": r.question_id,
            "text": text,
            "source": r.source,
            "model_id": model_id,
            "format_version": FORMAT_VERSION,
            "edits_id": edits_id,
            "author": author,
            "duration_ms": int(r.duration_ms),
            "note": validate.text(r.note or "", "rationale note", MAX_NOTE_CHARS, allow_empty=True),
            "created_utc": now_utc(),
        }

    def edit_rationale(self, original_id: str, text: str, author: str) -> str:
        """Save a human edit of a rationale, linked to the rationale it edits."""
        row = self._edit_row(original_id, text, author)
        with self._write() as db:
            db["rationales"].insert(row, ignore=True)
        return row["id"]

    def edit_exists(self, original_id: str, text: str) -> bool:
        """Whether a human edit of `original_id` with this text is stored already (the same text
        makes the same id, whoever wrote it)."""
        try:
            row = self._edit_row(original_id, text, None)
        except DataError:
            return False
        return self._one("select id from rationales where id = ?", [row["id"]]) is not None

    def _edit_row(self, original_id: str, text: str, author: str | None) -> dict:
        author = self._known_rater(author) if author is not None else None
        original = self.rationale(original_id)
        edit = Rationale(original["question_id"], text, "human", f"human edit of {original['model_id']}")
        return self._rationale_row(edit, original_id, author)

    def rationale(self, rationale_id_: str) -> dict:
        row = self._one("select * from rationales where id = ?", [rationale_id_])
        if row is None:
            raise DataError(f"unknown rationale {rationale_id_!r}; pick one from the queue or the curation list.")
        return row

    def question(self, question_id: str) -> Question:
        row = self._one("select * from questions where id = ?", [question_id])
        if row is None:
            raise DataError(f"unknown question {question_id!r}.")
        return _question_from_row(row)

    def rationales_for(self, question_id: str) -> list[dict]:
        return list(self.db.query("select * from rationales where question_id = ? order by created_utc, id", [question_id]))

    def import_records(self, records: Iterable[DistillRecord]) -> tuple[int, int]:
        """A distillation set in as teacher (or human) rationales ready to rate; idempotent.
        Returns (new questions, new rationales)."""
        records = list(records)
        rationales = [Rationale(r.question.id, r.rationale, r.source if r.source in SOURCES else "teacher", r.teacher) for r in records]
        question_rows = [_question_row(r.question) for r in records]
        rationale_rows = [self._rationale_row(r, None, None) for r in rationales]
        with self._write() as db:
            self._refuse_changed_questions(question_rows)
            q0, r0 = db["questions"].count, db["rationales"].count
            db["questions"].insert_all(question_rows, ignore=True)
            db["rationales"].insert_all(rationale_rows, ignore=True)
            return db["questions"].count - q0, db["rationales"].count - r0

    def _refuse_changed_questions(self, rows: list[dict]) -> None:
        """An id already used for a different question (in the store or in this batch) would
        attach a rationale to the wrong question: refuse it."""
        seen: dict[str, tuple] = {}
        for row in rows:
            content = (row["stem"], row["choices_json"], row["answer_key"])
            stored = self._one("select stem, choices_json, answer_key from questions where id = ?", [row["id"]])
            if stored is not None and tuple(stored.values()) != content:
                raise DataError(
                    f"question {row['id']!r} is already in the store with a different text or answer; give the new one its own id."
                )
            if seen.setdefault(row["id"], content) != content:
                raise DataError(f"two different questions share the id {row['id']!r}; give each its own id.")

    # -- raters, identity and roles ----------------------------------------------------------------
    def add_rater(self, name: str) -> str:
        """Register a rater whose identity is vouched for elsewhere (a Hugging Face login on a
        Space); idempotent. Typed names go through `authenticate` (in `IdentityVerbs`)."""
        name = validate.name(name)
        with self._write() as db:
            db["raters"].insert({"name": name, "role": "rater", "created_utc": now_utc()}, ignore=True)
        return name

    # SQL behind the sign-in verbs of `identity.IdentityVerbs`
    def _token_hash(self, name: str) -> tuple[bool, str | None]:
        row = self._one("select token_hash from raters where name = ?", [name])
        return row is not None, row["token_hash"] if row else None

    def _save_token(self, name: str, hashed: str, replace: bool) -> None:
        """Register `name` with this token hash; an existing name only when `replace`."""
        with self._write() as db:
            taken = db["raters"].count_where("name = ?", [name]) > 0
            if taken and not replace:  # checked inside the write lock: two first sign-ins cannot both claim a name
                raise PermissionDenied(f"{name!r} is already claimed; sign in with its token, or choose another name.")
            if not taken:
                db["raters"].insert({"name": name, "role": "rater", "created_utc": now_utc()})
            db["raters"].update(name, {"token_hash": hashed})

    def _make_reviewer(self, name: str) -> None:
        with self._write() as db:
            db["raters"].insert({"name": name, "role": "reviewer", "created_utc": now_utc()}, ignore=True)
            db["raters"].update(name, {"role": "reviewer"})

    def _attempt(self, kind: str, name: str, ok: bool, client: identity.Client) -> bool:
        """Count one token or secret check by `client`: refused while the client must wait (even
        when right, or guessing would go on), recorded when wrong; in one transaction, so that
        concurrent guesses cannot all slip under the limit."""
        now = self._clock()
        since = identity.iso(now - identity.FAILURE_WINDOW_S)
        with self._write() as db:
            recent = list(db.query("select session, address, created_utc from auth_failures where created_utc > ?", [since]))
            wait = identity.wait_s(recent, client, now)
            if not wait and not ok:
                db.execute("delete from auth_failures where created_utc <= ?", [since])  # they no longer count
                row = {"kind": kind, "name": name, "session": client.session, "address": client.address, "created_utc": identity.iso(now)}
                db["auth_failures"].insert(row)
        if wait:
            raise PermissionDenied(f"too many wrong attempts from here; wait {wait} s and try again.")
        return ok

    def role(self, name: str) -> str | None:
        row = self._one("select role from raters where name = ?", [name])
        return row["role"] if row else None

    def require_reviewer(self, name: str) -> str:
        if self.role(name) != "reviewer":
            raise PermissionDenied(
                f"{name!r} is not a reviewer; curation and export need the reviewer role (granted with the reviewer secret)."
            )
        return name

    def _known_rater(self, name) -> str:
        if not isinstance(name, str) or self.role(name) is None:
            raise DataError(f"unknown rater {name!r}; sign in (or register the name) first.")
        return name

    # -- ratings ---------------------------------------------------------------------------------------
    def upsert_rating(
        self,
        rationale_id_: str,
        rater: str,
        scores: dict | None = None,
        preference: str | None = None,
        comment: str = "",
        status: str = "submitted",
    ) -> str:
        """Rate a rationale; re-rating replaces the rater's earlier rating, never duplicates it."""
        row = self._rating_row(rationale_id_, rater, scores, preference, comment, status)
        with self._write() as db:
            db.execute(_UPSERT_RATING, row)
        return row["id"]

    def rate_with_edit(
        self, rationale_id_: str, rater: str, scores: dict, preference: str | None, comment: str, text: str
    ) -> tuple[str, str]:
        """A rating and a human edit of the same rationale, in one transaction: both or neither.
        Returns (rating id, edit id)."""
        rating = self._rating_row(rationale_id_, rater, scores, preference, comment, "submitted")
        edit = self._edit_row(rationale_id_, text, rater)
        with self._write() as db:
            db.execute(_UPSERT_RATING, rating)
            db["rationales"].insert(edit, ignore=True)
        return rating["id"], edit["id"]

    def _rating_row(self, rationale_id_: str, rater: str, scores: dict | None, preference: str | None, comment: str, status: str) -> dict:
        rater = self._known_rater(rater)
        self.rationale(rationale_id_)
        status = validate.choice(status, STATUSES, "status")
        clean = validate.scores(scores) if status == "submitted" else _partial_scores(scores)
        return {
            "id": f"g-{hashlib.sha256(f'{rationale_id_}|{rater}'.encode()).hexdigest()[:20]}",
            "rationale_id": rationale_id_,
            "rater": rater,
            "scores_json": json.dumps(clean),
            "preference": validate.choice(preference, PREFERENCES, "preference", optional=True),
            "comment": validate.text(comment or "", "comment", MAX_COMMENT_CHARS, allow_empty=True),
            "status": status,
            "created_utc": now_utc(),
            "updated_utc": now_utc(),
        }

    def update_rating(self, rating_id: str, rater: str, **changes) -> str:
        """Change an existing rating; only its own rater may."""
        row = self._one("select * from ratings where id = ?", [rating_id])
        if row is None:
            raise DataError(f"unknown rating {rating_id!r}.")
        if row["rater"] != rater:
            raise PermissionDenied(f"rating {rating_id!r} belongs to another rater; you can change only your own ratings.")
        current = {
            "scores": json.loads(row["scores_json"]),
            "preference": row["preference"],
            "comment": row["comment"],
            "status": row["status"],
        }
        return self.upsert_rating(row["rationale_id"], rater, **(current | changes))

    def skip(self, rationale_id_: str, rater: str) -> str:
        """Pass on a rationale: it leaves this rater's queue and counts nowhere."""
        return self.upsert_rating(rationale_id_, rater, None, status="discarded")

    def ratings(self, status: str | None = "submitted") -> list[dict]:
        """Ratings with scores decoded; only submitted ones by default (the only ones that count)."""
        sql = "select g.*, r.source as rationale_source from ratings g join rationales r on r.id = g.rationale_id"
        rows = self.db.query(sql + (" where g.status = ?" if status else "") + " order by g.created_utc", [status] if status else [])
        return [row | {"scores": json.loads(row.pop("scores_json"))} for row in rows]

    # -- the queue --------------------------------------------------------------------------------------
    def next_item(self, rater: str) -> QueueItem | None:
        """This rater's draft if any, else the rationale with the fewest submitted ratings that
        the rater has not rated or skipped."""
        rater = self._known_rater(rater)
        row = self._one(
            """select r.*, (select count(*) from ratings g where g.rationale_id = r.id and g.status = 'submitted') as n_ratings,
                      d.id as draft_id
               from rationales r left join ratings d on d.rationale_id = r.id and d.rater = :rater and d.status = 'draft'
               where r.id not in (select rationale_id from ratings where rater = :rater and status != 'draft')
               order by draft_id is null, n_ratings, r.created_utc, r.id limit 1""",
            {"rater": rater},
        )
        if row is None:
            return None
        draft = self._one("select * from ratings where id = ?", [row.pop("draft_id")]) if row.get("draft_id") else None
        row.pop("draft_id", None)
        siblings = [s for s in self.rationales_for(row["question_id"]) if s["id"] != row["id"]]
        return QueueItem(row, self.question(row["question_id"]), siblings, draft)

    def progress(self, rater: str | None = None) -> dict:
        """Counts for the queue: rationales, rated by anyone, and this rater's share."""
        total = self.db["rationales"].count
        rated = self._one("select count(distinct rationale_id) n from ratings where status = 'submitted'")["n"]
        out = {"rationales": total, "rated_by_anyone": rated, "submitted_ratings": self.db["ratings"].count_where("status = 'submitted'")}
        if rater:
            done = self._one("select count(*) n from ratings where rater = ? and status != 'draft'", [rater])["n"]
            mine = self._one("select count(*) n from ratings where rater = ? and status = 'submitted'", [rater])["n"]
            out |= {"rater_done": done, "rater_submitted": mine, "rater_remaining": total - done}
        return out

    def counts(self) -> dict:
        return {t: self.db[t].count for t in ("questions", "rationales", "raters", "ratings", "curation")}

    def integrity_ok(self) -> bool:
        return self._one("pragma integrity_check")["integrity_check"] == "ok"


def _partial_scores(scores) -> dict:
    if not scores:
        return {}
    kept = {k: v for k, v in scores.items() if v not in (None, "")}
    full = validate.scores(kept | {c.name: c.minimum for c in criteria.CRITERIA if c.name not in kept})
    return {k: full[k] for k in kept}


def _question_row(q: Question) -> dict:
    """A question as stored; every text in it passes the same checks as rationales and comments."""
    choices = [
        [
            validate.text(c.label, "choice label", MAX_LABEL_CHARS),
            validate.text(c.text, f"choice {c.label}", MAX_CHOICE_CHARS, drop_controls=True),
        ]
        for c in q.choices
    ]
    if validate.text(q.id, "question id", MAX_ID_CHARS) != q.id:
        raise DataError(f"question id {q.id!r} has spaces around it; remove them.")
    return {
        "id": q.id,
        "stem": validate.text(q.stem, "question stem", MAX_STEM_CHARS, drop_controls=True),
        "choices_json": json.dumps(choices),
        "answer_key": q.answer_key,
        "source": validate.text(q.source or "", "question source", MAX_ID_CHARS, allow_empty=True),
        "created_utc": now_utc(),
    }


def _question_from_row(row: dict) -> Question:
    choices = tuple(Choice(label, text) for label, text in json.loads(row["choices_json"]))
    return Question(row["id"], row["stem"], choices, row["answer_key"], row["source"] or "")
