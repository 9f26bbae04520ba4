"""`teach`: resumable, cot keeps only right answers, torn lines from a killed run are repaired."""

import json

import pytest
from click.testing import CliRunner

from demo.cli import main
from scicot_core.distillation_set import load_distillation_set
from scicot_core.errors import DataError, TeacherError
from scicot_core.questions import sample_items
from scicot_core.teach_split import done_ids, teach


def test_resumable_and_provenance(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:6]]
    out = tmp_path / "set.jsonl"
    assert teach(fake_teacher, questions[:4], out, chunk=3)["written"] == 4
    counts = teach(fake_teacher, questions, out, chunk=3)
    assert counts == {"skipped_done": 4, "written": 2, "dropped_wrong": 0, "failed": 0}
    records = load_distillation_set(out)
    assert [r.question.id for r in records] == [q.id for q in questions]
    assert records[0].teacher == "fake-teacher" and records[0].extra["mode"] == "rationalize"
    assert len(fake_teacher.history) == 6


def test_cot_keeps_only_right_answers(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:2]]
    fake_teacher.enqueue([f"Thus, the answer is ({questions[0].answer_key}).", "Thus, the answer is (Z)."])
    counts = teach(fake_teacher, questions, tmp_path / "cot.jsonl", mode="cot")
    assert counts == {"skipped_done": 0, "written": 1, "dropped_wrong": 1, "failed": 0}
    assert fake_teacher.history[0][1] == "cot"


def test_rationalize_drops_a_rationale_concluding_with_another_answer(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:3]]
    other = next(label for label in questions[1].labels if label != questions[1].answer_key)
    fake_teacher.enqueue(
        [
            f"Right. Thus, the answer is ({questions[0].answer_key}).",
            f"It argues for another. Thus, the answer is ({other}).",
            "Reasoning that names no label.",
        ]
    )
    out = tmp_path / "set.jsonl"
    assert teach(fake_teacher, questions, out) == {"skipped_done": 0, "written": 2, "dropped_wrong": 1, "failed": 0}
    assert [r.question.id for r in load_distillation_set(out)] == [questions[0].id, questions[2].id]


def test_a_question_the_teacher_fails_on_is_counted_and_the_rest_written(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:5]]
    fake_teacher.fail_ids = {questions[1].id}
    out, failed = tmp_path / "set.jsonl", []
    counts = teach(fake_teacher, questions, out, chunk=3, on_error=lambda q, e: failed.append((q.id, str(e))))
    assert counts == {"skipped_done": 0, "written": 4, "dropped_wrong": 0, "failed": 1}
    assert failed == [(questions[1].id, f"scripted failure on {questions[1].id}.")]
    fake_teacher.fail_ids = set()
    assert teach(fake_teacher, questions, out)["written"] == 1
    assert sorted(r.question.id for r in load_distillation_set(out)) == sorted(q.id for q in questions)


def test_a_teacher_failing_on_a_whole_batch_stops_the_run_and_writes_nothing(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:5]]
    fake_teacher.fail_ids = {q.id for q in questions}
    out = tmp_path / "set.jsonl"
    with pytest.raises(TeacherError, match="failed on all 2 questions of a batch, so the run stopped \\(0 written so far"):
        teach(fake_teacher, questions, out, chunk=2)
    assert not out.exists()


def test_torn_last_line_is_cut_and_garbage_refused(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "quest')
    assert done_ids(path) == {"a"} and path.read_text() == '{"id": "a"}\n'
    path.write_text('{"id": "a"}\n[1]\n{"id": "c"}\n')
    with pytest.raises(DataError, match=":2: not a distillation record"):
        done_ids(path)


def test_teach_cli(tmp_path, fake_teacher):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:3]))
    args = ["teach", "--questions", str(path), "--teacher", "fake", "--out", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(main, args, env={"SCICOT_CACHE_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "3 written, 0 already there" in result.output


def _question_file(tmp_path, n):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:n]))
    return path


def _http_env(tmp_path, server):
    # One request at a time, so the script's replies go to the questions in order.
    return {"SCICOT_CACHE_DIR": str(tmp_path), "SCICOT_TEACHER_URL": server.url, "SCICOT_TEACHER_CONCURRENCY": "1"}


def test_teach_cli_gets_past_a_malformed_reply(tmp_path, fake_openai):
    fake_openai.script.extend([("ok", "One."), ("malformed",), ("ok", "Two."), ("ok", "Three.")])
    args = ["teach", "--questions", str(_question_file(tmp_path, 3)), "--teacher", "http", "--out", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(main, args, env=_http_env(tmp_path, fake_openai))
    assert result.exit_code == 0, result.output
    assert [r.rationale for r in load_distillation_set(tmp_path / "o.jsonl")] == ["One.", "Two.", "Three."]


def test_teach_cli_counts_a_failed_question_writes_the_rest_and_exits_non_zero(tmp_path, fake_openai):
    fake_openai.script.extend([("ok", "One."), ("status", 400), ("ok", "Three.")])
    out = tmp_path / "o.jsonl"
    args = ["teach", "--questions", str(_question_file(tmp_path, 3)), "--teacher", "http", "--out", str(out)]
    result = CliRunner().invoke(main, args, env=_http_env(tmp_path, fake_openai))
    assert result.exit_code == 1
    assert "2 written, 0 already there, 0 dropped (wrong answer), 1 failed" in result.output
    second = sample_items()[1][0].id
    assert f"Error: the teacher failed on 1 question(s) (first, {second}: teacher at" in result.output
    assert "answered HTTP 400; check the URL, model name and API key); rerun the same command" in result.output
    assert [r.rationale for r in load_distillation_set(out)] == ["One.", "Three."]
