"""The annotation store: schema, ratings, the queue, roles, curation, and garbage on every
write path leaving the store unchanged."""

import json
import os
import sqlite3
from pathlib import Path

import pytest

from annotations.store import Store
from scicot_core.errors import DataError, PermissionDenied
from scicot_core.questions import Choice, Question, Rationale, sample_items

FULL = {"correctness": 5, "clarity": 4, "supports_answer": 5}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "a.db", reviewer_secret="sesame")
    items = sample_items()[:4]
    s.add_questions([q for q, _ in items])
    s.ids = s.add_rationales([Rationale(q.id, t, "teacher", "flan-t5") for q, t in items])
    s.student_id = s.add_rationale(Rationale(items[0][0].id, "Friction is equal. Thus, the answer is (C).", "student", "smollm2"))
    for name in ("ann", "bob", "rev"):
        s.add_rater(name)
    s.grant_reviewer("rev", "sesame")
    return s


def snapshot(store: Store) -> dict:
    """Every row of every table, to assert that a failed write changed nothing; all but the log
    of wrong tokens and secrets, which the throttle fills on purpose (tests/test_identity.py)."""
    conn = sqlite3.connect(store.path)
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' and name != 'auth_failures' order by name")]
    return {t: sorted(map(repr, conn.execute(f"select * from [{t}]").fetchall())) for t in tables}


def test_schema_wal_and_migrations_once(tmp_path):
    s = Store(tmp_path / "x.db")
    assert s.db.conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert set(s.db.table_names()) >= {"questions", "rationales", "raters", "ratings", "curation", "auth_failures", "_sqlite_migrations"}
    Store(tmp_path / "x.db")
    assert [r["name"] for r in s.db.query("select name from _sqlite_migrations")] == [
        "m001_initial",
        "m002_rater_tokens_and_auth_failures",
        "m003_auth_failures_by_client",
    ]
    assert s.db["ratings"].foreign_keys and s.integrity_ok()


def test_rerating_replaces_and_only_submitted_counts(store):
    first = store.upsert_rating(store.ids[0], "ann", FULL, preference="teacher", comment="ok")
    again = store.upsert_rating(store.ids[0], "ann", FULL | {"clarity": 2}, preference="tie", comment="changed my mind")
    assert first == again and store.counts()["ratings"] == 1
    [row] = store.ratings()
    assert (row["scores"], row["preference"], row["comment"], row["rater"]) == (FULL | {"clarity": 2}, "tie", "changed my mind", "ann")
    store.upsert_rating(store.ids[1], "bob", {"correctness": 3}, status="draft")
    assert len(store.ratings()) == 1 and len(store.ratings(status=None)) == 2


def test_a_rater_changes_only_their_own_rating(store):
    rid = store.upsert_rating(store.ids[0], "ann", FULL)
    before = snapshot(store)
    with pytest.raises(PermissionDenied, match="only your own"):
        store.update_rating(rid, "bob", comment="mine now")
    assert snapshot(store) == before
    store.update_rating(rid, "ann", comment="still mine")
    assert store.ratings()[0]["comment"] == "still mine"


def test_queue_fewest_ratings_first_never_twice_and_drafts_resume(store):
    store.upsert_rating(store.ids[0], "bob", FULL)
    store.upsert_rating(store.ids[1], "bob", FULL)
    first = store.next_item("ann")
    assert first.rationale["id"] == store.ids[2] and first.question.id == first.rationale["question_id"]
    store.upsert_rating(store.ids[2], "ann", {"clarity": 3}, status="draft")
    resumed = store.next_item("ann")
    assert resumed.rationale["id"] == store.ids[2] and json.loads(resumed.draft["scores_json"]) == {"clarity": 3}
    seen = set()
    while (item := store.next_item("ann")) is not None:
        assert item.rationale["id"] not in seen
        seen.add(item.rationale["id"])
        store.upsert_rating(item.rationale["id"], "ann", FULL)
    assert seen == set(store.ids + [store.student_id])
    p = store.progress("ann")
    assert (p["rationales"], p["rater_done"], p["rater_remaining"], p["submitted_ratings"]) == (5, 5, 0, 7)


def test_queue_item_carries_the_other_side(store):
    store.skip(store.ids[0], "bob")
    store.skip(store.ids[1], "bob")
    store.skip(store.ids[2], "bob")
    store.skip(store.ids[3], "bob")
    item = store.next_item("bob")
    assert item.rationale["source"] == "student" and [s["source"] for s in item.siblings] == ["teacher"]
    store.skip(store.student_id, "bob")
    assert store.next_item("bob") is None and store.ratings() == []


def test_reviewer_role_needs_the_secret(store):
    before = snapshot(store)
    with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
        store.grant_reviewer("ann", "guess")
    with pytest.raises(PermissionDenied, match="not a reviewer"):
        store.curate(store.ids[0], "accept", "ann")
    assert snapshot(store) == before
    with pytest.raises(PermissionDenied, match="no reviewer secret is configured"):
        Store(store.path).grant_reviewer("ann", "sesame")


def test_curation_latest_decision_and_edits_link_to_source(store):
    store.curate(store.ids[0], "reject", "rev", "wrong fact")
    store.curate(store.ids[0], "accept", "rev", "on second thought")
    cid = store.curate(store.ids[1], "edit", "rev", "tightened", edited_text="Wood conducts heat poorly. Thus, the answer is (A).")
    rows = {r["rationale"]["id"]: r for r in store.curation_rows()}
    assert rows[store.ids[0]]["decision"]["decision"] == "accept"
    edited = rows[store.ids[1]]["decision"]["edited_id"]
    assert rows[edited]["rationale"]["edits_id"] == store.ids[1] and rows[edited]["rationale"]["source"] == "human"
    assert rows[edited]["rationale"]["author"] == "rev" and cid == 3


def test_import_is_idempotent(tmp_path):
    from scicot_core.distillation_set import DistillRecord

    s = Store(tmp_path / "i.db")
    records = [DistillRecord(q, t, "flan-t5") for q, t in sample_items()]
    assert s.import_records(records) == (36, 36)
    assert s.import_records(records) == (0, 0)
    assert s.counts()["rationales"] == 36


HUGE = "x" * 100_000
BAD_TEXTS = ["", "   ", HUGE, "nul\x00byte", "<script>alert(1)</script>", '<img src=x onerror="alert(1)">', b"\xff\xfe bad utf-8", 42]


@pytest.mark.parametrize("bad", BAD_TEXTS, ids=lambda b: repr(b)[:20])
def test_garbage_rationale_text_changes_nothing(store, bad):
    before = snapshot(store)
    with pytest.raises(DataError):
        store.add_rationale(Rationale(store.question("sample-physics-01").id, bad, "teacher", "m"))
    with pytest.raises(DataError):
        store.edit_rationale(store.ids[0], bad, "ann")
    with pytest.raises(DataError):
        store.curate(store.ids[0], "edit", "rev", "r", edited_text=bad)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scores": FULL | {"clarity": 6}}, "whole number from 1 to 5"),
        ({"scores": FULL | {"clarity": 0}}, "whole number from 1 to 5"),
        ({"scores": FULL | {"clarity": "five"}}, "'five'"),
        ({"scores": FULL | {"clarity": 2.5}}, "2.5"),
        ({"scores": FULL | {"clarity": True}}, "whole number"),
        ({"scores": FULL | {"clarity": None}}, "whole number"),
        ({"scores": {"correctness": 5}}, "missing"),
        ({"scores": FULL | {"beauty": 5}}, "unknown \\['beauty'\\]"),
        ({"scores": "5,5,5"}, "must map"),
        ({"scores": FULL, "preference": "teacher!"}, "preference"),
        ({"scores": FULL, "status": "final"}, "status"),
        ({"scores": FULL, "comment": HUGE}, "keep it under"),
        ({"scores": FULL, "comment": "a\x00b"}, "control characters"),
        ({"scores": FULL, "comment": "<script>alert(1)</script>"}, "HTML"),
        ({"scores": FULL, "rater": "mallory"}, "unknown rater"),
        ({"scores": FULL, "rationale": "r-nope"}, "unknown rationale"),
    ],
)
def test_garbage_ratings_change_nothing(store, kwargs, message):
    kwargs = dict(kwargs)
    rater, rationale = kwargs.pop("rater", "ann"), kwargs.pop("rationale", store.ids[0])
    store.upsert_rating(store.ids[1], "ann", FULL)
    before = snapshot(store)
    with pytest.raises(DataError, match=message):
        store.upsert_rating(rationale, rater, **kwargs)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.add_rater(""), "not valid"),
        (lambda s: s.add_rater("x" * 65), "not valid"),
        (lambda s: s.add_rater("<b>ann</b>"), "not valid"),
        (lambda s: s.add_rater("ann\x00"), "not valid"),
        (lambda s: s.add_questions([Question("sample-physics-01", "dup", (Choice("A", "a"), Choice("B", "b")))]) and None, None),
        (lambda s: s.add_rationale(Rationale("no-such-question", "text", "teacher", "m")), "unknown question"),
        (lambda s: s.add_rationale(Rationale("sample-physics-01", "text", "oracle", "m")), "rationale source"),
        (lambda s: s.curate(s.ids[0], "promote", "rev"), "decision"),
        (lambda s: s.curate(s.ids[0], "edit", "rev"), "edited text"),
        (lambda s: s.curate(s.ids[0], "accept", "rev", edited_text="x"), "edited text"),
        (lambda s: s.curate("r-nope", "accept", "rev"), "unknown rationale"),
        (lambda s: s.curate(s.ids[0], "accept", "nobody"), "unknown rater"),
        (lambda s: s.curate(s.ids[0], "accept", "rev", reason="<iframe src=x>"), "HTML"),
        (lambda s: s.edit_rationale(s.ids[0], "fine text", "nobody"), "unknown rater"),
        (lambda s: s.update_rating("g-nope", "ann", comment="x"), "unknown rating"),
        (lambda s: s.skip("r-nope", "ann"), "unknown rationale"),
    ],
)
def test_garbage_on_other_write_paths_changes_nothing(store, call, message):
    before = snapshot(store)
    if message is None:
        call(store)  # an existing question id is ignored, not overwritten
    else:
        with pytest.raises(DataError, match=message):
            call(store)
    assert snapshot(store) == before


def test_garbage_in_a_distillation_file_changes_nothing(store, tmp_path):
    from scicot_core.distillation_set import load_distillation_set

    good = sample_items()[5][0].to_ai2() | {"rationale": "ok", "teacher": "t"}
    path = tmp_path / "d.jsonl"
    path.write_bytes((json.dumps(good) + "\n").encode() + b'{"id": "x", "rationale": "\xff"}\n')
    before = snapshot(store)
    with pytest.raises(DataError, match=":2: not valid UTF-8"):
        store.import_records(load_distillation_set(path))
    bad_text = good | {"rationale": "<script>x</script>"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad_text | {"id": "sample-physics-07"}) + "\n")
    with pytest.raises(DataError, match="HTML"):
        store.import_records(load_distillation_set(path))
    assert snapshot(store) == before


@pytest.mark.parametrize("kind", ["folder", "null device", "text file", "damaged SQLite", "fifo"])
def test_a_store_path_that_is_not_a_store_is_one_config_error_and_nothing_is_written(tmp_path, kind):
    from scicot_core.errors import ConfigError

    path = {"folder": tmp_path / "folder", "null device": Path("/dev/null"), "fifo": tmp_path / "pipe"}.get(kind, tmp_path / "x.db")
    if kind == "folder":
        path.mkdir()
    elif kind == "text file":
        path.write_text("my notes\n")
    elif kind == "damaged SQLite":
        path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    elif kind == "fifo":
        os.mkfifo(path)  # opening it as a database would block forever
    before = sorted(p.name for p in tmp_path.iterdir())
    content = path.read_bytes() if path.is_file() else None
    with pytest.raises(ConfigError, match="point SCICOT_DB \\(or --db\\) at a .db file"):
        Store(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not Path("/dev/null-wal").exists()
    assert (path.read_bytes() if path.is_file() else None) == content


@pytest.mark.parametrize(
    "question, message",
    [
        (Question("q-html", "<script>alert(1)</script> Why?", (Choice("A", "a"), Choice("B", "b"))), "question stem contains HTML"),
        (Question("q-html", "Why?", (Choice("A", "a"), Choice("B", "[b](javascript:x)"))), "choice B contains a javascript: link"),
        (Question("<b onclick=x>", "Why?", (Choice("A", "a"), Choice("B", "b"))), "question id contains HTML"),
        (Question(" q-space ", "Why?", (Choice("A", "a"), Choice("B", "b"))), "has spaces around it"),
        (Question("q-html", "Why?", (Choice("A", "a"), Choice("B", "b")), source="<img src=x>"), "question source contains HTML"),
    ],
)
def test_every_text_of_a_question_is_checked_like_a_rationale(store, question, message):
    before = snapshot(store)
    with pytest.raises(DataError, match=message):
        store.add_questions([question])
    with pytest.raises(DataError, match=message):
        store.add_question_with_rationales(question, [Rationale(question.id, "fine", "teacher", "m")])
    assert snapshot(store) == before


def test_a_question_and_its_rationales_are_stored_together_or_not_at_all(store):
    q = Question("q-new", "Why?", (Choice("A", "a"), Choice("B", "b")), "A")
    before = snapshot(store)
    with pytest.raises(DataError, match="rationale note contains HTML"):
        store.add_question_with_rationales(
            q, [Rationale(q.id, "fine", "teacher", "m"), Rationale(q.id, "ok", "student", "s", note="<svg>")]
        )
    assert snapshot(store) == before
    assert len(store.add_question_with_rationales(q, [Rationale(q.id, "fine", "teacher", "m")])) == 1


def test_an_import_never_attaches_a_rationale_to_a_different_question(store):
    from scicot_core.distillation_set import DistillRecord

    stored = store.question("sample-physics-01")
    changed = Question(stored.id, stored.stem + " Really?", stored.choices, stored.answer_key)
    other = Question("q-new", "Why?", (Choice("A", "a"), Choice("B", "b")), "A")
    twin = Question("q-new", "Why not?", other.choices, "A")
    before = snapshot(store)
    with pytest.raises(DataError, match="'sample-physics-01' is already in the store with a different text or answer"):
        store.import_records([DistillRecord(changed, "r", "t")])
    with pytest.raises(DataError, match="two different questions share the id 'q-new'"):
        store.import_records([DistillRecord(other, "r", "t"), DistillRecord(twin, "r2", "t")])
    assert snapshot(store) == before
    assert store.import_records([DistillRecord(stored, "another teacher's rationale", "t2")]) == (0, 1)
