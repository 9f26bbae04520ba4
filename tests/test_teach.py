"""`teach`: resumable, cot keeps only right answers, torn lines from a killed run are repaired."""

import json

import pytest
from click.testing import CliRunner

from demo.cli import main
from scicot_core.distill import load_distillation_set
from scicot_core.errors import DataError
from scicot_core.questions import sample_items
from scicot_core.teach import done_ids, teach


def test_resumable_and_provenance(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:6]]
    out = tmp_path / "set.jsonl"
    assert teach(fake_teacher, questions[:4], out, chunk=3)["written"] == 4
    counts = teach(fake_teacher, questions, out, chunk=3)
    assert counts == {"skipped_done": 4, "written": 2, "dropped_wrong": 0}
    records = load_distillation_set(out)
    assert [r.question.id for r in records] == [q.id for q in questions]
    assert records[0].teacher == "fake-teacher" and records[0].extra["mode"] == "rationalize"
    assert len(fake_teacher.history) == 6


def test_cot_keeps_only_right_answers(tmp_path, fake_teacher):
    questions = [q for q, _ in sample_items()[:2]]
    fake_teacher.enqueue([f"Thus, the answer is ({questions[0].answer_key}).", "Thus, the answer is (Z)."])
    counts = teach(fake_teacher, questions, tmp_path / "cot.jsonl", mode="cot")
    assert counts == {"skipped_done": 0, "written": 1, "dropped_wrong": 1}
    assert fake_teacher.history[0][1] == "cot"


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
