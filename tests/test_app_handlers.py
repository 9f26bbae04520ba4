"""The app's handlers called directly, on a tiny model and a real store."""

import re

import pytest
from conftest import SHARED_DATA, needs_shared

from demo import handlers as h
from demo import handlers_curate as hr
from demo import plots
from demo.deps import BASE_SET
from demo.render import plain_model, safe
from scicot_core.errors import DataError, PermissionDenied


def _ask(deps, max_tokens=4, **kw):
    source, mode = kw.get("source", "SciCoT sample set"), kw.get("mode", "pick")
    q = h.parse_question(
        deps, mode, source, kw.get("sid", "sample-physics-01"), kw.get("stem", ""), kw.get("choices", ""), kw.get("key", "")
    )
    return list(h.ask(deps, q, "stand-in", "", "", BASE_SET, max_tokens=max_tokens))


def _shown(markdown: str) -> str:
    """The text of a rationale column, without its provenance line and the typing cursor."""
    return markdown.split("\n\n*")[0].removesuffix(" ▌")


def test_ask_a_sample_streams_then_answers(app_deps):
    steps = _ask(app_deps, max_tokens=16)
    teacher_md, student_md, answer_md, rows, baselines, info, result = steps[-1]
    assert "hand-written reference rationale" in teacher_md and answer_md.startswith("### (")
    assert len(rows) == 4 and abs(sum(rows.values()) - 1) < 1e-3 and all(k.startswith("(") for k in rows)
    assert result["answer"]["label"] in "ABCD" and "student's rationale" in info and "No baseline adapters" in baselines
    assert baselines.startswith("#### Baselines") and " ms" not in info + student_md
    # The student's rationale arrives in pieces: each shows more of the final text, which the last step shows whole.
    final = _shown(student_md)
    assert final == safe(result["student"]["text"]) and final.strip()
    partial = [_shown(step[1]) for step in steps[:-1] if not step[1].startswith("*")]  # "*Loading the student…*" first
    assert steps[0][0] == teacher_md and steps[0][1] == "*Loading the student…*"  # the stored rationale at once
    assert len(set(partial)) >= 2 and all(final.startswith(p) for p in partial)
    assert [len(p) for p in partial] == sorted(len(p) for p in partial)


@needs_shared
def test_dataset_questions_come_with_their_stored_teacher_rationale(app_deps):
    import dataclasses

    from demo.deps import Deps

    app_deps = Deps(dataclasses.replace(app_deps.settings, data_dir=SHARED_DATA), app_deps.store, app_deps.model.get)
    app_deps.students.add(BASE_SET, {})
    assert "arc_challenge/dev" in app_deps.questions.sources() and "arc_easy/test" in app_deps.questions.sources()
    listed = h.question_choices(app_deps, "arc_challenge/dev")
    assert len(listed) == 299
    *_, result = _ask(app_deps, source="arc_challenge/dev", sid=listed[0][1])[-1]
    assert result["teacher"]["model_id"].startswith("stored teacher rationale (flan-t5")
    *_, result = _ask(app_deps, source="arc_easy/test", sid=h.question_choices(app_deps, "arc_easy/test")[0][1], key="")[-1]
    assert result["teacher"]["note"].startswith("small stand-in teacher")  # no stored rationale for test splits


def test_typed_question_uses_the_labelled_stand_in_and_shows_it_thinking(app_deps):
    q = h.parse_question(app_deps, "typed", "", None, "What melts ice?", "heat\ncold\n", "a")
    steps = list(h.ask(app_deps, q, "stand-in", "", "", BASE_SET, max_tokens=4, every=0.001))
    *_, result = steps[-1]
    assert result["teacher"]["note"].startswith("small stand-in teacher") and result["question"]["answerKey"] == "A"
    thinking = [step[0] for step in steps if step[0].startswith("*Thinking… ")]
    assert thinking and all(re.fullmatch(r"\*Thinking… \d+ s\* \(.+\)", line) for line in thinking)
    assert not steps[-1][0].startswith("*Thinking") and steps[-1][5].startswith("Took teacher ")


def test_paced_marks_the_time_a_slow_step_takes():
    import time

    def slow():
        yield 1
        time.sleep(0.35)
        yield 2

    paced = list(h._paced(slow(), 0.1))
    assert paced[0] == 1 and paced[-1] == 2 and 2 <= paced.count(None) <= 4 and len(paced) == paced.count(None) + 2


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mode": "typed", "stem": "", "choices": "a\nb"}, "type a question"),
        ({"mode": "typed", "stem": "Why?", "choices": "only one"}, "2 to 9 choices"),
        ({"mode": "typed", "stem": "Why?", "choices": "\n".join("abcdefghij")}, "2 to 9 choices"),
        ({"mode": "typed", "stem": "x" * 5000, "choices": "a\nb"}, "under 2000"),
        ({"mode": "typed", "stem": "Why?", "choices": "a\nb", "key": "Z"}, "answer key 'Z'"),
        ({"mode": "pick", "sid": "nope"}, "pick a question"),
        ({"mode": "pick", "source": "arc_hard/test"}, "unknown question source"),
    ],
)
def test_bad_questions_store_nothing(app_deps, kw, message):
    before = app_deps.store.counts()
    with pytest.raises(DataError, match=message):
        _ask(app_deps, **kw)
    assert app_deps.store.counts() == before


def test_queue_rate_edit_curate_export_retrain_status(app_deps, tmp_path):
    *_, result = _ask(app_deps)[-1]
    assert h.send_to_queue(app_deps, result).startswith("Queued 2 rationale(s)")
    before = app_deps.store.counts()
    with pytest.raises(DataError, match="already in the rating queue"):
        h.send_to_queue(app_deps, result)
    assert app_deps.store.counts() == before
    with pytest.raises(DataError, match="ask a question first"):
        h.send_to_queue(app_deps, None)
    who, signed = h.sign_in(app_deps, None, " ann ")
    assert who == "ann" and "Your token: `" in signed and "not shown again" in signed
    item = h.next_item(app_deps, who)
    rid = item[4]
    model_folder = result["student"]["model_id"]
    assert model_folder.startswith("/") and model_folder not in item[1] + item[2]  # no server path shown
    assert '<progress value="0" max="2">' in item[3] and "<b>2</b> to go" in item[3] and rid.startswith("r-")
    with pytest.raises(DataError, match=r"score every criterion before submitting \(missing: Clarity\)"):
        h.submit_rating(app_deps, who, rid, rid, "", "", 5, None, 4, "teacher", "")
    assert app_deps.store.counts()["ratings"] == 0
    h.submit_rating(app_deps, who, rid, rid, "", "", 5, 4, 5, "teacher", "clear")
    with pytest.raises(DataError, match="unchanged"):
        h.save_edit(app_deps, who, rid, rid, item[-1])
    with pytest.raises(DataError, match="HTML"):
        h.save_edit(app_deps, who, rid, rid, "<script>alert(1)</script>")
    assert "Saved your edit" in h.save_edit(app_deps, who, rid, rid, "A better rationale. Thus, the answer is (C).")
    with pytest.raises(PermissionDenied):
        hr.candidates(app_deps, who, 0, 0, 4)
    with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
        hr.become_reviewer(app_deps, "rev", "guess")
    hr.become_reviewer(app_deps, "rev", "sesame")
    rows = hr.candidates(app_deps, "rev", 0, 0, 4)
    assert {r[2] for r in rows} == {"teacher", "student", "human"}
    rated = next(r for r in rows if r[0] == rid)
    assert rated[4:7] == [1, 4.67, 0.0]
    student_row = next(r for r in rows if r[2] == "student")
    assert student_row[3] and "/" not in student_row[3]  # the model by its folder's name, no server path
    assert all(model_folder.rsplit("/", 1)[0] not in r[3] for r in rows)  # a human edit's "edit of <model>" too
    assert all(len(r[1]) <= 80 and (r[1].endswith("…") or len(r[1]) < 80) for r in rows)
    accepted = hr.decide(app_deps, "rev", rid, "accept", "good", "", "")
    # The sample question's reference rationale: the memory (built from the sample set on first
    # use) has its facts already, and now knows the reviewer accepted them.
    assert "accept recorded" in accepted and re.search(r"The memory holds its \d+ fact\(s\) now \(0 new\)\.", accepted)
    from scicot_core.memory import Memory

    memory = Memory(app_deps.settings.memory_file)
    assert memory.stats()["by_kind"]["rated"] >= 1
    memory.close()
    path = hr.export_file(app_deps, "rev", "jsonl", True, 0, 0)
    assert path.endswith(".jsonl") and open(path).read().count("\n") == 1
    assert "1 accepted rationale(s) from the store" in hr.append_accepted(app_deps, "rev")
    assert "1 accepted rationale(s) from the store" in hr.append_accepted(app_deps, "rev")
    assert hr.retrain_status(app_deps) == "No retraining run yet."
    distribution, preference, summary = plots.stats(app_deps)
    assert "1 submitted ratings from 1 raters" in summary
    source = next(r[2] for r in rows if r[0] == rid)
    assert [ax.get_title() for ax in distribution.axes] == ["Correctness", "Clarity", "Supports answer"]
    assert "Agreement* is how far raters" in summary and "| Supports answer | n/a |" in summary
    for ax, given in zip(distribution.axes, (5, 4, 5)):  # one bar per score 1-5, one rating at the score given
        assert [int(t) for t in ax.get_xticks()] == [1, 2, 3, 4, 5] and ax.get_legend_handles_labels()[1] == [source]
        assert [p.get_height() for p in ax.patches] == [1 if score == given else 0 for score in range(1, 6)]
    [ax] = preference.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Teacher's", "Student's", "Tie", "Both bad"]
    assert [p.get_height() for p in ax.patches] == [1, 0, 0, 0]
    for ax in (*distribution.axes, preference.axes[0]):  # counts in whole numbers only
        assert all(float(t).is_integer() for t in ax.get_yticks())


def test_reviewer_actions_refused_without_the_role(app_deps):
    app_deps.store.add_rater("ann")
    for call in (
        lambda: hr.export_file(app_deps, "ann", "jsonl", True, 0, 0),
        lambda: hr.append_accepted(app_deps, "ann"),
        lambda: hr.start_retrain(app_deps, "ann", 5),
        lambda: hr.decide(app_deps, "", "r-x", "accept", "", "", ""),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert not app_deps.settings.distill_path.exists()


def test_student_accuracy_on_the_sample_set(app_deps):
    fig, text = plots.student_accuracy(app_deps, BASE_SET, 4)
    assert "zero-shot" in text and "two-stage" in text and "4 SciCoT sample set questions" in text
    [ax] = fig.axes
    shown = {t.get_text(): p.get_height() for t, p in zip(ax.get_xticklabels(), ax.patches)}
    title = " ".join(ax.get_title().split())
    assert re.fullmatch(r"tiny-causal\d+ on 4 SciCoT sample set questions", title) and {"zero-shot", "two-stage"} <= set(shown)
    for variant, height in shown.items():  # each bar is that variant's accuracy as the text gives it: 0, 25, 50, 75 or 100%
        assert height in (0, 25, 50, 75, 100) and f"**{variant}** {height / 100:.0%}" in text


def test_retrain_in_the_background_then_the_adapters_are_selectable(app_deps):
    import time

    from scicot_core.questions import sample_items

    app_deps.store.add_rater("rev")
    app_deps.store.grant_reviewer("rev", "sesame")
    with pytest.raises(DataError, match="distillation set is empty"):
        hr.start_retrain(app_deps, "rev", 2)
    items = sample_items()[:6]
    app_deps.store.add_questions([q for q, _ in items])
    from scicot_core.questions import Rationale

    for rid in app_deps.store.add_rationales([Rationale(q.id, t, "teacher", "ref") for q, t in items]):
        app_deps.store.curate(rid, "accept", "rev")
    assert "6 accepted rationale(s)" in hr.append_accepted(app_deps, "rev")
    assert hr.start_retrain(app_deps, "rev", 2).startswith("Retraining **")
    with pytest.raises(DataError, match="still going"):
        hr.start_retrain(app_deps, "rev", 2)
    deadline = time.time() + 120
    while app_deps.retrain.snapshot()["state"] == "running" and time.time() < deadline:
        assert "step" in hr.retrain_status(app_deps)
        time.sleep(0.2)
    run = app_deps.retrain.snapshot()
    assert run["state"] == "done", run
    name = f"retrained {run['name']}"
    assert run["student"] == name and name in app_deps.students.names() and name in hr.retrain_status(app_deps)
    assert set(app_deps.students.stages(name)) == {"rationale", "answer"}
    table = run["comparison"].splitlines()
    assert table[0] == "On the same 4 SciCoT sample set questions:" and table[2].startswith("| student | two-stage | answer-only |")
    assert table[4].startswith(f"| {name} | ") and table[5].startswith(f"| {BASE_SET} | ") and table[4].endswith("% |")
    assert table[4].split(" | ")[2] == "—"  # a retrain trains no answer-only adapter
    student = app_deps.students.student(name, max_tokens=4)
    assert student.has("rationale") and student.has("answer") and "LoRA[answer, rationale]" in student.model_id
    *_, result = list(h.ask(app_deps, items[0][0], "stand-in", "", "", name, max_tokens=4))[-1]
    assert result["student"]["model_id"].endswith("LoRA[answer, rationale]")


def test_a_user_error_is_a_status_message_and_one_log_line_a_fault_is_raised(caplog):
    import gradio as gr

    from demo.reporting import reported

    def submit(score):
        if score is None:
            raise DataError("score every criterion before submitting (missing: Clarity).")
        if score == "boom":
            raise RuntimeError("a real fault")
        return "saved", score

    wrapped = reported(submit, 2, status=0)
    assert wrapped(4) == ("saved", 4)
    with caplog.at_level("INFO", logger="scicot.app"):
        status, kept = wrapped(None)
    assert status == "⚠️ Score every criterion before submitting (missing: Clarity)."
    assert kept == gr.skip()  # what the user entered stays as it was
    [record] = caplog.records
    assert record.getMessage() == "refused submit: score every criterion before submitting (missing: Clarity)."
    assert record.exc_info is None and "\n" not in record.getMessage()
    with pytest.raises(RuntimeError, match="a real fault"):
        wrapped("boom")


def test_statistics_before_any_rating_are_empty_and_say_so(app_deps):
    distribution, preference, summary = plots.stats(app_deps)
    assert summary.startswith("0 submitted ratings from 0 raters") and "0.8 or more is good" in summary
    assert all(ax.get_legend() is None and sum(p.get_height() for p in ax.patches) == 0 for ax in distribution.axes)
    assert [t for t in preference.axes[0].get_yticks() if 0 <= t <= 1] == [0, 1]  # whole counts even with none


def test_long_text_in_the_curate_table_is_cut_at_a_word_with_an_ellipsis():
    from demo.handlers_curate import _cut

    stem = "A student pushes a heavy box across a floor so that it slides at a constant speed and then stops suddenly"
    cut = _cut(stem, 40)
    assert cut == "A student pushes a heavy box across a…" and len(cut) <= 40
    assert _cut("short", 40) == "short" and _cut("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    "model_id, said",
    [
        (
            "HuggingFaceTB/SmolLM2-135M-Instruct + LoRA[answer, rationale]",
            "HuggingFaceTB/SmolLM2-135M-Instruct with adapters answer, rationale",
        ),
        ("/srv/models/base + LoRA[answer] + full[rationale]", "base with adapters answer and rationale fine-tuned whole"),
        ("/srv/models/base + full[answer, rationale]", "base and answer, rationale fine-tuned whole"),
        ("human edit of /srv/models/x", "human edit of x"),
    ],
)
def test_model_ids_read_in_words_without_server_paths(model_id, said):
    assert plain_model(model_id) == said


def test_a_form_pinned_to_another_item_is_refused_and_stores_nothing(app_deps):
    """The rater's current item is server-side state; a rating, skip or edit from a form pinned to
    another item (a late reply, an old tab) is refused, and moving on past an unsaved edit too."""
    from scicot_core.questions import Rationale, sample_items

    (q1, t1), (q2, t2) = sample_items()[:2]
    first = app_deps.store.add_question_with_rationales(q1, [Rationale(q1.id, t1, "teacher", "ref")])[0]
    app_deps.store.add_question_with_rationales(q2, [Rationale(q2.id, t2, "teacher", "ref")])
    who, _ = h.sign_in(app_deps, None, "ann")
    current = h.next_item(app_deps, who)[4]
    other = first if current != first else app_deps.store.rationales_for(q2.id)[0]["id"]
    before = app_deps.store.counts()
    edited = "A better rationale. Thus, the answer is (C)."
    for call, message in (
        (lambda: h.submit_rating(app_deps, who, current, other, "", "", 5, 5, 5, "tie", ""), "this rating is for r-.*current item is r-"),
        (lambda: h.submit_rating(app_deps, who, current, None, "", "", 5, 5, 5, "tie", ""), "this rating is for no item"),
        (lambda: h.skip_item(app_deps, who, current, other, "", ""), "this skip is for"),
        (lambda: h.save_edit(app_deps, who, current, other, edited), "this edit is for"),
        (lambda: h.skip_item(app_deps, who, current, current, current, edited), "unsaved edit"),
        (lambda: h.check_no_unsaved_edit(app_deps, who, current, current, edited), "unsaved edit"),
    ):
        with pytest.raises(DataError, match=message):
            call()
    assert app_deps.store.counts() == before
    # an unsaved edit of the current item goes in with its rating, in one transaction
    line, new_id = h.submit_rating(app_deps, who, current, current, current, edited, 5, 5, 5, "tie", "")
    assert line.endswith(f"and your edit as {new_id}.") and app_deps.store.rationale(new_id)["edits_id"] == current
    h.check_no_unsaved_edit(app_deps, who, current, current, edited)  # saved now: moving on is fine
    with pytest.raises(DataError, match="HTML"):
        h.submit_rating(app_deps, who, current, current, current, "<script>x</script>", 4, 4, 4, "tie", "")
    assert [g["scores"]["correctness"] for g in app_deps.store.ratings()] == [5]  # neither the rating nor the edit


def test_an_edit_decision_must_come_from_the_selected_rationales_edit_box(app_deps):
    from scicot_core.questions import Rationale, sample_items

    q, text = sample_items()[0]
    rid = app_deps.store.add_question_with_rationales(q, [Rationale(q.id, text, "teacher", "ref")])[0]
    hr.become_reviewer(app_deps, "rev", "sesame")
    before = app_deps.store.counts()
    for pinned in ("r-another", "", None):
        with pytest.raises(DataError, match="the edited text is of .*not of the selected"):
            hr.decide(app_deps, "rev", rid, "edit", "", pinned, "Better. Thus, the answer is (C).")
    assert app_deps.store.counts() == before
    assert "edit recorded" in hr.decide(app_deps, "rev", rid, "edit", "", rid, "Better. Thus, the answer is (C).")


def test_the_memory_follows_each_curation_decision_at_once(app_deps):
    from scicot_core.memory import Memory
    from scicot_core.questions import Rationale, typed_question

    store = app_deps.store
    train_q = typed_question("What pulls an iron nail?", ["a magnet", "a cork"], "A")
    dev_q = typed_question("What melts ice fastest?", ["salt", "sand"], "A")
    dev_q = type(dev_q)("dev-1", dev_q.stem, dev_q.choices, dev_q.answer_key, "arc_easy/dev")
    store.add_questions([train_q, dev_q])
    [rid] = store.add_rationales(
        [Rationale(train_q.id, "Magnets pull iron nails toward them. Thus, the answer is (A).", "teacher", "gpt-4o")]
    )
    [dev_rid] = store.add_rationales(
        [Rationale(dev_q.id, "Salt lowers the melting point of ice. Thus, the answer is (A).", "teacher", "gpt-4o")]
    )
    store.add_rater("rev")
    hr.become_reviewer(app_deps, "rev", "sesame")

    def texts():
        memory = Memory(app_deps.settings.memory_file)
        try:
            return {f.text for f in memory.search("magnets iron nails salt melting ice", k=10)}
        finally:
            memory.close()

    accepted = hr.decide(app_deps, "rev", rid, "accept", "", "", "")
    assert "(1 new)" in accepted
    # The reviewer sees which questions nearest to the fact read it now (the sample set's, without a data directory).
    assert "2 of the 2 questions nearest to these facts read other facts now" in accepted
    assert "Which object would be pulled toward a bar magnet?" in accepted and "+ Magnets pull iron nails toward them." in accepted
    assert "Magnets pull iron nails toward them." in texts()
    edited = hr.decide(app_deps, "rev", rid, "edit", "", rid, "A magnet attracts iron objects. Thus, the answer is (A).")
    assert "holds its 1 fact(s) now (1 new) and lost 1 fact(s)" in edited
    assert "A magnet attracts iron objects." in texts() and "Magnets pull iron nails toward them." not in texts()
    assert "lost 1 fact(s)" in hr.decide(app_deps, "rev", rid, "reject", "wrong", "", "")
    assert not {"A magnet attracts iron objects.", "Magnets pull iron nails toward them."} & texts()
    assert "dev or test question, so the memory leaves it out" in hr.decide(app_deps, "rev", dev_rid, "accept", "", "", "")
    assert "Salt lowers the melting point of ice." not in texts()
    # Bad input: refused before the store or the memory change.
    before = (store.counts(), texts())
    with pytest.raises(DataError):
        hr.decide(app_deps, "rev", "r-nothing", "accept", "", "", "")
    with pytest.raises(DataError):
        hr.decide(app_deps, "rev", rid, "edit", "", "r-other", "text")
    assert (store.counts(), texts()) == before
