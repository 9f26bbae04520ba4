"""The feedback loop's write paths (accept, write the distillation set) on a real store: only
rationales whose question has an answer key go out, and the set follows the store."""

import json

import pytest

from demo import handlers as h
from demo import handlers_curate as hr
from scicot_core.distillation_set import load_distillation_set
from scicot_core.errors import DataError
from scicot_core.questions import Rationale, sample_items, typed_question


@pytest.fixture
def rev(app_deps):
    app_deps.store.add_rater("rev")
    app_deps.store.grant_reviewer("rev", "sesame")
    return app_deps


def _typed_without_key(deps) -> tuple[str, str]:
    """A typed question without an answer key, as the Ask tab's queue stores it: (question id, rationale id)."""
    q = typed_question("What melts ice?", ["heat", "cold"], None)
    [rid] = deps.store.add_question_with_rationales(q, [Rationale(q.id, "Heat melts ice. Thus, the answer is (A).", "teacher", "t")])
    return q.id, rid


def _file(deps) -> bytes | None:
    path = deps.settings.distill_path
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize(
    "decision, key, edited, message",
    [
        ("accept", "", "", "has no answer key"),
        ("edit", "", "Better. Thus, the answer is (A).", "has no answer key"),
        ("accept", "Z", "", "'Z' is not a choice"),
        ("accept", "AB", "", "'AB' is not a choice"),
        ("edit", "A", "<script>x</script>", "HTML"),
    ],
)
def test_a_question_without_a_key_cannot_be_accepted_without_one(rev, decision, key, edited, message):
    qid, rid = _typed_without_key(rev)
    before = rev.store.counts()
    with pytest.raises(DataError, match=message):
        hr.decide(rev, "rev", rid, decision, "", edited, key)
    assert rev.store.counts() == before and rev.store.question(qid).answer_key is None
    assert "none yet" in hr.show_candidate(rev, rid)[0]


def test_accepting_with_a_key_stores_the_key_and_the_decision(rev):
    qid, rid = _typed_without_key(rev)
    assert "accept recorded" in hr.decide(rev, "rev", rid, "accept", "", "", " b ")
    assert rev.store.question(qid).answer_key == "B" and "(key: B)" in hr.show_candidate(rev, rid)[0]
    with pytest.raises(DataError, match="already has the answer key B"):
        hr.decide(rev, "rev", rid, "accept", "", "", "A")
    assert rev.store.question(qid).answer_key == "B"
    assert hr.decide(rev, "rev", rid, "reject", "", "", "")  # rejecting needs no key


def test_an_accepted_row_without_a_key_from_an_older_store_stays_out_of_the_set(rev):
    qid, rid = _typed_without_key(rev)
    with rev.store.db.conn:  # as a store written before the check would hold it
        rev.store.db.conn.execute(
            "insert into curation (rationale_id, decision, reviewer, reason, created_utc) values (?, 'accept', 'rev', '', 'x')", [rid]
        )
    assert "1 accepted without an answer key left out" in hr.append_accepted(rev, "rev")
    assert load_distillation_set(rev.settings.distill_path) == []


def _accept_samples(deps, n):
    items = sample_items()[:n]
    deps.store.add_questions([q for q, _ in items])
    ids = deps.store.add_rationales([Rationale(q.id, t, "teacher", "ref") for q, t in items])
    for rid in ids:
        deps.store.curate(rid, "accept", "rev")
    return ids


def test_the_set_follows_the_store_and_keeps_the_base_set(rev):
    base_q, base_text = sample_items()[10]
    base_line = base_q.to_ai2() | {"rationale": base_text, "teacher": "gpt-x", "source": "teacher", "split": "train"}
    rev.settings.distill_path.write_text(json.dumps(base_line) + "\n")
    ids = _accept_samples(rev, 3)
    assert "3 accepted rationale(s) from the store and 1 from the base set" in hr.append_accepted(rev, "rev")
    rev.store.curate(ids[0], "reject", "rev", "wrong after all")
    rev.store.curate(ids[1], "edit", "rev", "clearer", edited_text="A clearer reason. Thus, the answer is (A).")
    assert "2 accepted rationale(s) from the store and 1 from the base set" in hr.append_accepted(rev, "rev")
    lines = [json.loads(line) for line in rev.settings.distill_path.read_text().splitlines()]
    assert lines[0] == base_line  # the base set's line, untouched
    kept, edit = sorted(lines[1:], key=lambda r: r["edited_from"] is not None)
    assert (kept["rationale_id"], kept["edited_from"], kept["reviewer"], kept["rationale"]) == (ids[2], None, "rev", sample_items()[2][1])
    assert (edit["edited_from"], edit["reviewer"], edit["source"]) == (ids[1], "rev", "human")
    assert edit["rationale"] == "A clearer reason. Thus, the answer is (A)."
    assert ids[0] not in json.dumps(lines)
    assert "2 accepted rationale(s) from the store and 1" in hr.append_accepted(rev, "rev")  # writing again changes nothing
    assert len(rev.settings.distill_path.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "garbage",
    [
        b"{not json\n",
        b'{"id": "x", "question": {"stem": "s", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": null, "rationale": "r"}\n',
        b'{"id": "x"}\n',
        b"\xff\xfe\n",
    ],
)
def test_a_bad_distillation_set_is_left_as_it_is(rev, garbage):
    _accept_samples(rev, 2)
    rev.settings.distill_path.write_bytes(garbage)
    with pytest.raises(DataError, match="has a bad line") as e:
        hr.append_accepted(rev, "rev")
    assert str(rev.settings.distill_path.parent) not in str(e.value)
    assert _file(rev) == garbage


def test_the_ask_tab_takes_an_answer_key_for_typed_questions(app_deps):
    q = h.parse_question(app_deps, "typed", "", None, "What melts ice?", "heat\ncold", "b")
    assert q.answer_key == "B"
