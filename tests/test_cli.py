"""The `scicot` command: asking, listing samples, and one-line errors for user mistakes."""

import json

from click.testing import CliRunner

from demo.cli import main
from scicot_core.questions import typed_question


def _run(args, env=None, tmp_path=None):
    env = {"SCICOT_CACHE_DIR": str(tmp_path)} | (env or {}) if tmp_path else env
    return CliRunner().invoke(main, args, env=env)


def test_help_on_every_command():
    for args in (["--help"], ["ask", "--help"], ["samples", "--help"]):
        result = _run(args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_ask_with_a_tiny_student_as_json(tiny_causal_dir, tmp_path, fake_teacher):
    fake_teacher.enqueue(["Heat speeds molecules. Thus, the answer is (B)."])
    args = [
        "ask",
        "--question",
        "What melts ice?",
        "--choice",
        "cold",
        "--choice",
        "heat",
        "--answer-key",
        "b",
        "--student",
        str(tiny_causal_dir),
        "--teacher",
        "fake",
        "--max-tokens",
        "4",
        "--json",
    ]
    result = _run(args, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["question"]["answerKey"] == "B"
    assert out["teacher"] == {
        "model": "fake-teacher",
        "note": "scripted fake",
        "rationale": "Heat speeds molecules. Thus, the answer is (B).",
    }
    assert out["answer"]["label"] in ("A", "B") and set(out["answer"]["probabilities"]) == {"A", "B"}
    assert set(out["timings_ms"]) == {"load_ms", "teacher_ms", "stage1_ms", "stage2_ms"}
    assert fake_teacher.history == [(out["question"]["id"], "rationalize")] and out["question"]["id"].startswith("typed-")


def test_ask_a_sample_shows_its_reference_rationale_in_text(tiny_causal_dir, tmp_path):
    result = _run(["ask", "--sample", "sample-physics-01", "--student", str(tiny_causal_dir), "--max-tokens", "3"], tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    assert "Teacher rationale [reference (SciCoT sample set)" in result.output
    assert "Student rationale [" in result.output and "Answer: (" in result.output and "Timings: load" in result.output


def test_user_mistakes_are_one_line_errors(tmp_path):
    cases = [
        (["ask", "--question", "Why?", "--choice", "only one"], "at least two --choice"),
        (["ask", "--sample", "nope"], "scicot samples"),
        (
            ["ask", "--question", "Why?", "--choice", "a", "--choice", "b", "--answer-key", "Z", "--teacher", "none"],
            "answer key 'Z' is not among",
        ),
        (["ask", "--sample", "sample-physics-01", "--student", "gpt9"], "unknown model 'gpt9'"),
        (["ask", "--sample", "sample-physics-02", "--teacher", "oracle", "--student", "nobody/none"], "cannot load model"),
    ]
    for args, message in cases:
        result = _run(args, tmp_path=tmp_path)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and message in result.output


def test_samples_lists_ids():
    result = _run(["samples"])
    assert result.exit_code == 0 and "sample-biology-01" in result.output and len(result.output.splitlines()) >= 30


def test_typed_questions_are_labelled_in_order():
    q = typed_question(" Why? ", ("a ", "b", "c"), "c")
    assert q.labels == ["A", "B", "C"] and q.answer_key == "C" and q.choices[0].text == "a"
