"""The feedback loop's write paths (accept, write the distillation set) on a real store: only
rationales whose question has an answer key go out, and the set follows the store."""

import json

import pytest

from demo import handlers as h
from demo import handlers_curate as hr
from scicot_core.distillation_set import load_distillation_set
from scicot_core.errors import DataError, ModelError
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
        hr.decide(rev, "rev", rid, decision, "", rid, edited, key)
    assert rev.store.counts() == before and rev.store.question(qid).answer_key is None
    assert "none yet" in hr.show_candidate(rev, rid)[0]


def test_accepting_with_a_key_stores_the_key_and_the_decision(rev):
    qid, rid = _typed_without_key(rev)
    assert "accept recorded" in hr.decide(rev, "rev", rid, "accept", "", "", "", " b ")
    assert rev.store.question(qid).answer_key == "B" and "(key: B)" in hr.show_candidate(rev, rid)[0]
    with pytest.raises(DataError, match="already has the answer key B"):
        hr.decide(rev, "rev", rid, "accept", "", "", "", "A")
    assert rev.store.question(qid).answer_key == "B"
    assert hr.decide(rev, "rev", rid, "reject", "", "", "", "")  # rejecting needs no key


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


# -- adapter sets that fail to load --------------------------------------------------------------
def _broken_set(model_dir, folder):
    from test_core_paths import _adapter_set

    _adapter_set(model_dir, folder)
    (folder / "answer" / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def test_a_set_that_fails_to_load_is_never_offered(app_deps, tiny_causal_dir, tmp_path):
    folder = _broken_set(tiny_causal_dir, tmp_path / "runs v1.2" / "broken")
    before = app_deps.students.names()
    problem = app_deps.students.add_folder("broken", folder, required=("rationale", "answer"), load=True)
    assert problem and "could not be loaded" in problem and app_deps.students.names() == before
    shown = hr.retrain_status(app_deps)
    assert "Not offered: **broken**" in shown and str(tmp_path) not in shown
    with pytest.raises(ModelError, match="not offered") as e:
        app_deps.students.student("broken")
    assert str(tmp_path) not in str(e.value)


def test_a_listed_set_that_breaks_is_dropped_with_a_plain_error(app_deps, tiny_causal_dir, tmp_path):
    folder = _broken_set(tiny_causal_dir, tmp_path / "runs v1.2" / "late")
    assert app_deps.students.add_folder("late", folder) is None and "late" in app_deps.students.names()  # as at start-up: not loaded yet
    q = sample_items()[0][0]
    with pytest.raises(ModelError, match="'late' is not offered: its adapters could not be loaded") as e:
        list(h.ask(app_deps, q, "stand-in", "", "", "late", max_tokens=4))
    assert str(tmp_path) not in str(e.value) and "late" not in app_deps.students.names()


def test_only_finished_complete_runs_are_offered_at_start(app_deps, tiny_causal_dir, tmp_path):
    import dataclasses

    from test_core_paths import _adapter_set

    from demo.deps import build_deps

    runs = app_deps.settings.cache_dir / "retrained"
    _adapter_set(tiny_causal_dir, runs / "good")
    _adapter_set(tiny_causal_dir, runs / "unfinished.partial")
    _adapter_set(tiny_causal_dir, runs / "half", stages=("rationale",))
    deps = build_deps(dataclasses.replace(app_deps.settings, adapters=None))
    assert [n for n in deps.students.names() if n.startswith("retrained")] == ["retrained good"]
    assert deps.students.failures() == {"retrained half": "its folder holds no answer adapter; retrain it."}


# -- retraining: one owner, progress, cancelling ------------------------------------------------
def test_the_run_state_has_one_owner_with_an_estimate_and_one_run_at_a_time():
    import threading

    from demo.retrain import Retraining

    now = [100.0]
    r = Retraining(clock=lambda: now[0])
    started = []

    def begin(i):
        try:
            r.begin(f"run{i}", 10)
            started.append(i)
        except DataError:
            pass

    threads = [threading.Thread(target=begin, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(started) == 1 and r.snapshot()["name"] == f"run{started[0]}"
    assert r.seconds_left() is None
    now[0] = 110.0
    assert r.advance() is False and r.advance() is False
    assert r.seconds_left() == 40  # 5 s a step, 8 steps to go
    assert r.cancel() is True and r.advance() is True
    r.finish("cancelled")
    assert r.cancel() is False and r.snapshot()["state"] == "cancelled"
    r.begin("next", 2)  # a finished run does not block the next
    assert r.snapshot()["step"] == 0 and not r.cancelled


def _wait(deps, seconds=180):
    import time

    deadline = time.time() + seconds
    while deps.retrain.snapshot()["state"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    return deps.retrain.snapshot()


@pytest.mark.parametrize("steps", [0, -3, 2001, None])
def test_bad_step_counts_start_nothing(rev, steps):
    _accept_samples(rev, 2)
    hr.append_accepted(rev, "rev")
    with pytest.raises(DataError, match="1 to 2000"):
        hr.start_retrain(rev, "rev", steps)
    assert rev.retrain.snapshot() == {} and not (rev.settings.cache_dir / "retrained").exists()


def test_a_failed_run_is_shown_plainly_and_offers_nothing(rev, tmp_path):
    q = sample_items()[0][0]
    line = q.to_ai2() | {"answerKey": None, "rationale": "No key here."}  # as another tool might write it
    rev.settings.distill_path.write_text(json.dumps(line) + "\n")
    before = rev.students.names()
    hr.start_retrain(rev, "rev", 2)
    run = _wait(rev)
    shown = hr.retrain_status(rev)
    assert run["state"] == "failed" and "has no answer key" in run["error"], run
    assert "failed" in shown and str(tmp_path) not in shown and rev.students.names() == before


def test_a_cancelled_run_stops_and_offers_nothing(rev):
    import time

    _accept_samples(rev, 4)
    hr.append_accepted(rev, "rev")
    with pytest.raises(DataError, match="no retraining run"):
        hr.cancel_retrain(rev, "rev")
    hr.start_retrain(rev, "rev", 2000)
    deadline = time.time() + 120
    while rev.retrain.snapshot()["step"] < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert "s left" in hr.retrain_status(rev) and "step" in hr.retrain_status(rev)
    assert "Cancelling" in hr.cancel_retrain(rev, "rev")
    run = _wait(rev)
    assert run["state"] == "cancelled" and run["step"] < 2000 and "was cancelled" in hr.retrain_status(rev)
    assert not [n for n in rev.students.names() if n.startswith("retrained")]
    [kept] = (rev.settings.cache_dir / "retrained").iterdir()
    assert kept.name.endswith(".partial") and (kept / "distillation_set.jsonl").read_bytes() == rev.settings.distill_path.read_bytes()
