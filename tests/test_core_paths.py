"""One path for each thing: one teacher registry behind both faces, one `ask` that the app and
the CLI render, one student mapping stages to adapter names valid for any folder, and the
student families with their short names."""

import json

import pytest
from click.testing import CliRunner
from conftest import FakeTeacher

from demo import handlers as h
from demo.cli import main
from demo.deps import BASE_SET
from scicot_core import asking, teachers
from scicot_core.errors import ConfigError, ModelError
from scicot_core.questions import Rationale, sample_items, typed_question
from scicot_core.student import Student, adapter_name

TYPED = ("Which one melts ice?", ["heat", "cold"], "A")


def _cli(args, tmp_path, **env):
    return CliRunner().invoke(main, args, env={"SCICOT_CACHE_DIR": str(tmp_path / "cache"), "SCICOT_DATA_DIR": ""} | env)


def _typed_args(student, *more):
    stem, choices, key = TYPED
    return [
        "ask",
        "--question",
        stem,
        *[a for c in choices for a in ("--choice", c)],
        "--answer-key",
        key,
        "--student",
        str(student),
        *more,
    ]


def _app_ask(deps, teacher="stand-in", adapter_set=BASE_SET):
    stem, choices, key = TYPED
    q = h.parse_question(deps, "typed", "", None, stem, "\n".join(choices), key)
    return list(h.ask(deps, q, teacher, "", "", adapter_set, max_tokens=4))


# -- the teacher registry ------------------------------------------------------------------------
def test_a_new_teacher_backend_is_one_row_in_the_registry(monkeypatch, app_deps, tiny_causal_dir, tmp_path):
    echo = FakeTeacher()
    echo.model_id, echo.note = "echo-teacher", "echoes"
    monkeypatch.setitem(teachers.TEACHERS, "echo", teachers.Backend("echo", "Echo teacher", lambda settings, load: echo))
    for command in ("ask", "teach"):
        help_text = _cli([command, "--help"], tmp_path).output
        assert "echo" in help_text and "stand-in" in help_text, command
    result = _cli(_typed_args(tiny_causal_dir, "--teacher", "echo", "--max-tokens", "3", "--json"), tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["teacher"]["model"] == "echo-teacher"

    from demo.ui import build_demo

    assert ("Echo teacher", "echo") in app_deps.teachers.choices()
    radio = next(b for b in build_demo(app_deps).blocks.values() if getattr(b, "elem_id", None) == "ask-teacher")
    assert [value for _, value in radio.choices] == ["memory", "stand-in", "http", "echo"]
    *_, result = _app_ask(app_deps, teacher="echo")[-1]
    assert (result["teacher"]["model_id"], result["teacher"]["note"]) == ("echo-teacher", "echoes")
    assert [mode for _, mode in echo.history] == ["rationalize", "rationalize"]  # asked once by each face


def test_an_unknown_teacher_is_the_same_error_in_both_faces(app_deps, tiny_causal_dir, tmp_path):
    result = _cli(_typed_args(tiny_causal_dir, "--teacher", "oracle"), tmp_path)
    assert result.exit_code == 1
    with pytest.raises(ConfigError) as raised:
        _app_ask(app_deps, teacher="oracle")
    assert result.output == f"Error: {raised.value}\n" and "unknown teacher 'oracle'" in result.output


# -- one ask ---------------------------------------------------------------------------------------
def test_ask_yields_teacher_streamed_stage_1_answer_and_baselines_in_order(tiny_causal, fake_teacher):
    q = sample_items()[0][0]
    events = list(asking.ask(q, Student(tiny_causal, max_rationale_tokens=6), fake_teacher, baselines=True))
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["TeacherAsking", "TeacherWrote"] and kinds[-2:] == ["StudentWrote", "Answered"]
    assert set(kinds[2:-2]) == {"StudentWriting"}  # no baseline adapters: no baseline events
    assert events[2:-2][-1].text == events[-2].texts[0] and fake_teacher.history == [(q.id, "rationalize")]
    answer = events[-1].answer
    assert answer.label in q.labels and events[-1].each == [answer]


def test_ask_with_a_stored_rationale_or_several_samples(tiny_causal):
    from scicot_core.lm import Sampling

    q = sample_items()[1][0]
    stored = Rationale(q.id, "Known already.", "teacher", "reference", 0, "stored")
    student = Student(tiny_causal, max_rationale_tokens=5)
    events = list(asking.ask(q, student, stored, samples=3, sampling=Sampling(seed=1)))
    assert [type(e) for e in events] == [asking.TeacherWrote, asking.StudentWrote, asking.Answered]
    assert events[0] == asking.TeacherWrote(stored, 0, stored=True)
    texts, answered = events[1].texts, events[2]
    assert len(texts) == 3 and len(answered.each) == 3
    mean = {label: sum(a.probabilities[label] for a in answered.each) / 3 for label in q.labels}
    assert answered.answer.probabilities == pytest.approx(mean)


def test_ask_runs_every_baseline_the_variant_table_finds_adapters_for(tiny_causal, tiny_causal_dir, tmp_path):
    stages = ("rationale", "answer", "answer-only", "step-by-step", "single-stage")
    folder = _adapter_set(tiny_causal_dir, tmp_path / "set", stages)
    student = Student(tiny_causal, {s: folder / s for s in stages}, max_rationale_tokens=3)
    q = sample_items()[0][0]
    baselines = [e for e in asking.ask(q, student, baselines=True) if isinstance(e, asking.BaselineAnswered)]
    assert [b.name for b in baselines] == ["answer-only", "step-by-step", "single-stage"]  # the table's order
    assert [b.answer.method for b in baselines] == ["answer-only", "step-by-step", "single-stage"]
    assert all(b.answer.label in q.labels for b in baselines)


def test_the_app_and_the_cli_give_the_same_answer_to_the_same_typed_question(app_deps, tiny_causal_dir, tmp_path):
    *_, result = _app_ask(app_deps)[-1]
    cli = _cli(_typed_args(tiny_causal_dir, "--teacher", "none", "--max-tokens", "4", "--json"), tmp_path)
    out = json.loads(cli.output)
    assert out["question"]["id"] == result["question"]["id"] == typed_question(*TYPED).id
    assert out["student"]["rationale"] == result["student"]["text"]
    assert out["answer"]["probabilities"] == pytest.approx(result["answer"]["probabilities"], abs=1e-6)


# -- adapter names -----------------------------------------------------------------------------------
def _adapter_set(model_dir, folder, stages=("rationale", "answer")):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for seed, stage in enumerate(stages):
        torch.manual_seed(seed)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        )
        model.save_pretrained(folder / stage)
    return folder


def test_adapter_names_suit_any_folder_and_each_student_uses_only_its_own(tiny_causal, tiny_causal_dir, tmp_path):
    odd = tmp_path / "runs v2.1" / "adapters ü"
    names = {adapter_name(odd / "answer", "answer"), adapter_name(tmp_path / "answer", "answer")}
    assert len(names) == 2 and all(n.startswith("answer-") and "." not in n and " " not in n for n in names)
    assert adapter_name(odd / "x" / ".." / "answer", "answer") == adapter_name(odd / "answer", "answer")
    folder = _adapter_set(tiny_causal_dir, odd)
    with_set = Student(tiny_causal, {"answer": folder / "answer"})
    bare = Student(tiny_causal)
    assert with_set.has("answer") and not bare.has("answer") and bare.model_id == tiny_causal.model_id
    Student(tiny_causal, {"answer": folder / "answer"})  # a second student reuses the loaded adapter
    assert list(tiny_causal.adapters) == [with_set.adapter("answer")]


def test_a_set_under_a_path_with_a_dot_and_a_space_serves_the_app_the_cli_and_eval(app_deps, tiny_causal_dir, tmp_path):
    folder = _adapter_set(tiny_causal_dir, tmp_path / "runs v2.1" / "adapters")
    assert app_deps.students.add_folder("odd", folder, required=("rationale", "answer"), load=True) is None
    assert set(app_deps.students.stages("odd")) == {"rationale", "answer"}
    *_, result = _app_ask(app_deps, adapter_set="odd")[-1]
    assert result["student"]["model_id"].endswith("LoRA[answer, rationale]")
    cli = _cli(_typed_args(tiny_causal_dir, "--teacher", "none", "--max-tokens", "3", "--json"), tmp_path, SCICOT_ADAPTERS=str(folder))
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["student"]["model"].endswith("LoRA[answer, rationale]")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:2]))
    args = ["eval", "--questions", str(questions), "--adapters", str(folder), "--out", str(tmp_path / "r"), "--max-tokens", "3", "--json"]
    evaluated = _cli(args, tmp_path, SCICOT_STUDENT=str(tiny_causal_dir))
    assert evaluated.exit_code == 0, evaluated.output
    assert "two-stage" in json.loads(evaluated.output[evaluated.output.index("{") :])["accuracy"]


def test_eval_and_sample_run_merged_by_default_with_the_outputs_of_attached_adapters(tiny_causal_dir, tmp_path):
    folder = _adapter_set(tiny_causal_dir, tmp_path / "set")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:3]))
    env = {"SCICOT_STUDENT": str(tiny_causal_dir)}
    runs = {}
    for how in ("--merge", "--attach"):
        out = tmp_path / how.strip("-")
        args = ["eval", "--questions", str(questions), "--adapters", str(folder), "--out", str(out), "--max-tokens", "4"]
        assert (evaluated := _cli([*args, "--variant", "two-stage", how], tmp_path, **env)).exit_code == 0, evaluated.output
        sample = ["sample", "--questions", str(questions), "--adapters", str(folder), "--samples", "2", "--max-tokens", "4"]
        assert (sampled := _cli([*sample, "--out", str(out / "own.jsonl"), how], tmp_path, **env)).exit_code == 0, sampled.output
        runs[how] = [json.loads(line) for line in open(out / "predictions.jsonl")], (out / "own.jsonl").read_text()
    (merged, own_merged), (attached, own_attached) = runs["--merge"], runs["--attach"]
    assert own_merged == own_attached and own_merged.count("\n") == 6
    for m, a in zip(merged, attached):
        assert m["two-stage"]["rationale"] == a["two-stage"]["rationale"] and m["two-stage"]["label"] == a["two-stage"]["label"]
        assert m["two-stage"]["probabilities"] == pytest.approx(a["two-stage"]["probabilities"], abs=1e-4)


def test_sample_a_fold_writes_exactly_the_questions_of_that_fold(tiny_causal_dir, tmp_path):
    from scicot_core.distillation_set import in_fold

    folder = _adapter_set(tiny_causal_dir, tmp_path / "set", ("rationale",))
    questions = [q for q, _ in sample_items()[:8]]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in questions))
    sampled = []
    for k in (0, 1):
        out = tmp_path / f"own{k}.jsonl"
        args = ["sample", "--questions", str(tmp_path / "q.jsonl"), "--adapters", str(folder), "--samples", "1", "--max-tokens", "3"]
        assert (
            done := _cli([*args, "--fold", f"{k}/2", "--out", str(out)], tmp_path, SCICOT_STUDENT=str(tiny_causal_dir))
        ).exit_code == 0, done.output
        sampled.append([json.loads(line)["id"] for line in out.read_text().splitlines()])
    assert sampled == [[q.id for q in questions if in_fold(q.id, (k, 2))] for k in (0, 1)]
    assert sorted(sampled[0] + sampled[1]) == sorted(q.id for q in questions) and all(sampled)


def test_the_app_warms_its_default_student_merged_and_answers_as_with_the_adapters_attached(app_deps, tiny_causal_dir, tmp_path):
    from dataclasses import replace

    folder = _adapter_set(tiny_causal_dir, tmp_path / "shipped")
    assert app_deps.students.add_folder("shipped", folder) is None
    app_deps.students.warm("shipped")  # what app.py starts in the background with SCICOT_MERGE on
    lm = app_deps.model.get()
    stages = app_deps.students.student("shipped")
    assert set(lm.merged) == {stages.adapter("rationale"), stages.adapter("answer")} and not lm.merging
    *_, merged = _app_ask(app_deps, adapter_set="shipped")[-1]
    app_deps.settings = replace(app_deps.settings, merge=False)
    *_, attached = _app_ask(app_deps, adapter_set="shipped")[-1]
    assert merged["student"]["text"] == attached["student"]["text"] and merged["answer"]["label"] == attached["answer"]["label"]
    assert merged["answer"]["probabilities"] == pytest.approx(attached["answer"]["probabilities"], abs=1e-5)


# -- student families --------------------------------------------------------------------------------
def test_flan_t5_has_a_short_name_and_a_clear_message_when_offline_and_not_cached(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    from scicot_core.base_models import family, load_model, max_tokens, resolve
    from scicot_core.student import default_adapters

    flan = family("flan-t5-small")
    assert (flan.hub_id, flan.kind, flan.adapters) == ("google/flan-t5-small", "seq2seq", None)
    assert family("google/flan-t5-small") == flan and max_tokens("flan-t5-small") == 64
    assert resolve("flan-t5-small", tmp_path, offline=True) == ("google/flan-t5-small", "google/flan-t5-small")
    assert default_adapters(None, "flan-t5-small") == {}
    if isinstance(try_to_load_from_cache("google/flan-t5-small", "config.json"), str):
        pytest.skip("flan-t5-small is in this machine's hub cache")
    with pytest.raises(ModelError, match=r"flan-t5-small \(google/flan-t5-small\) is not in the Hugging Face cache.*SCICOT_ONLINE=1"):
        load_model("flan-t5-small", tmp_path, offline=True)


def test_an_unknown_short_name_lists_the_families(tmp_path):
    from scicot_core.base_models import resolve

    with pytest.raises(ModelError, match="unknown model 'flan-t5'; use one of 'smollm2-135m', .*'flan-t5-small'"):
        resolve("flan-t5", tmp_path, offline=True)


def test_a_seq2seq_student_answers_in_both_faces(app_deps, tiny_seq2seq_dir, tmp_path):
    from demo.deps import BASE_SET, Deps
    from scicot_core.base_models import load_model

    deps = Deps(app_deps.settings, app_deps.store, lambda: load_model(str(tiny_seq2seq_dir), tmp_path))
    deps.students.add(BASE_SET, {})
    *_, result = _app_ask(deps)[-1]
    assert result["answer"]["label"] in "AB" and result["student"]["model_id"] == str(tiny_seq2seq_dir)
    cli = _cli(_typed_args(tiny_seq2seq_dir, "--teacher", "none", "--max-tokens", "4", "--json"), tmp_path)
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["student"]["rationale"] == result["student"]["text"] != ""
    assert json.loads(cli.output)["answer"]["probabilities"] == pytest.approx(result["answer"]["probabilities"], abs=1e-6)


# -- comparing adapter sets ------------------------------------------------------------------------
def test_compare_puts_two_adapter_sets_side_by_side_on_the_same_questions(tiny_causal_dir, tmp_path):
    a = _adapter_set(tiny_causal_dir, tmp_path / "runs" / "a" / "adapters", ("rationale", "answer", "answer-only"))
    b = _adapter_set(tiny_causal_dir, tmp_path / "runs" / "b" / "adapters")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:3]))
    env = {"SCICOT_STUDENT": str(tiny_causal_dir)}
    result = _cli(["compare", str(a), str(b), "--questions", str(questions), "--max-tokens", "3", "--json"], tmp_path, **env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["n"] == 3 and out["references"] == 3  # the sample set's reference rationales
    assert set(out["students"]) == {"a/adapters", "b/adapters"}
    assert out["students"]["a/adapters"]["accuracy"]["answer-only"] is not None
    assert out["students"]["b/adapters"]["accuracy"]["answer-only"] is None  # b has no answer-only adapter
    assert all(0 <= s["accuracy"]["two-stage"] <= 1 for s in out["students"].values())
    table = _cli(["compare", str(a), str(b), "--questions", str(questions), "--max-tokens", "3"], tmp_path, **env)
    assert "| a/adapters |" in table.output and "agrees with the teacher" in table.output


@pytest.mark.parametrize("which, message", [("same", "at least two different"), ("empty", "no rationale/ and answer/ adapters")])
def test_compare_refuses_what_it_cannot_compare(tiny_causal_dir, tmp_path, which, message):
    a = _adapter_set(tiny_causal_dir, tmp_path / "a")
    other = a if which == "same" else tmp_path / "empty"
    other.mkdir(exist_ok=True)
    result = _cli(["compare", str(a), str(other), "--dataset", "arc_easy", "--split", "dev"], tmp_path)
    assert result.exit_code == 1 and message in result.output
