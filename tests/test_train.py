"""Training on tiny models: the loss falls, adapters load back into the student, runs resume
after an interruption, and bad configs and data fail clearly."""

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from scicot_core.base_models import load_model
from scicot_core.distillation_set import load_distillation_set
from scicot_core.errors import ConfigError, DataError
from scicot_core.lm import Sampling
from scicot_core.questions import sample_items
from scicot_core.student import Student, find_adapters
from scicot_core.train import LOG_FILE, TrainConfig, examples, main, tokenize


@pytest.fixture
def distill_set(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [q.to_ai2() | {"rationale": t, "teacher": "ref"} for q, t in sample_items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, model_dir, distill_set, stage="rationale", **kw):
    base = dict(
        stage=stage,
        data=[str(distill_set)],
        output_dir=str(tmp_path / stage),
        base_model=str(model_dir),
        max_steps=8,
        batch_size=4,
        save_steps=4,
        logging_steps=1,
        learning_rate=5e-3,
        lora_r=4,
    )
    return TrainConfig(**(base | kw))


def _losses(folder):
    return [e["loss"] for e in map(json.loads, open(folder / LOG_FILE)) if "loss" in e]


@pytest.mark.parametrize("model", ["causal", "seq2seq"])
def test_loss_falls_and_the_adapter_serves_the_student(tmp_path, distill_set, tiny_causal_dir, tiny_seq2seq_dir, model):
    model_dir = {"causal": tiny_causal_dir, "seq2seq": tiny_seq2seq_dir}[model]
    out = main(_config(tmp_path, model_dir, distill_set, "answer", max_steps=12), tmp_path / "cache", progress=False)
    losses = _losses(out)
    assert len(losses) == 12 and all(loss == loss for loss in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert (out / "adapter_config.json").exists() and TrainConfig.load(out).stage == "answer"
    student = Student(load_model(str(model_dir), tmp_path), adapters={"answer": out})
    q = sample_items()[0][0]
    [answer] = student.answers([q], ["A rationale."])
    assert answer.label in q.labels and student.has("answer")


def _accuracy(student, stage):
    questions = [q for q, _ in sample_items()]
    answers = student.answer_only(questions) if stage == "answer-only" else student.answers(questions, [t for _, t in sample_items()])
    return sum(a.label == q.answer_key for a, q in zip(answers, questions)) / len(questions)


@pytest.mark.parametrize("model", ["causal", "seq2seq"])
@pytest.mark.parametrize("stage", ["answer", "answer-only"])
def test_the_choices_objective_teaches_the_gold_choice_among_the_others(
    tmp_path, distill_set, tiny_causal_dir, tiny_seq2seq_dir, model, stage
):
    model_dir = {"causal": tiny_causal_dir, "seq2seq": tiny_seq2seq_dir}[model]
    config = _config(tmp_path, model_dir, distill_set, stage, max_steps=16, objective="choices")
    out = main(config, tmp_path / "cache", progress=False)
    losses = _losses(out)
    assert len(losses) == 16 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert TrainConfig.load(out).objective == "choices"
    base = load_model(str(model_dir), tmp_path)
    before, after = Student(base), Student(base, adapters={stage: out})
    assert _accuracy(after, stage) > _accuracy(before, "answer-only")  # the untrained student, zero-shot


def test_the_choice_score_trained_is_the_score_inference_answers_by(tiny_causal):
    """The objective differentiates exactly the rule `Student` answers by: each choice's mean
    token log-probability after the prompt (no end token for a causal model)."""
    import torch

    from scicot_core import formats
    from scicot_core.choice_loss import ChoiceCollator, choice_examples, choice_forward, tokenize_groups

    questions = [q for q, _ in sample_items()[:3]]
    groups = choice_examples([(q, formats.cloze_input(q)) for q in questions])
    rows = tokenize_groups(groups, lambda flat: tokenize(flat, tiny_causal.tokenizer, 256, False, eos=False))
    batch = ChoiceCollator(tiny_causal.tokenizer.pad_token_id)(rows)
    with torch.no_grad():
        trained = choice_forward(tiny_causal.model, batch, seq2seq=False).tolist()
    # Each prompt runs once, however many choices continue it.
    assert batch["input_ids"].shape[0] == len(questions) and batch["choice_ids"].shape[0] == sum(len(q.choices) for q in questions)
    prompts = [p for p, completions, _ in groups for _ in completions]
    scored = tiny_causal.score(prompts, [c for _, completions, _ in groups for c in completions])
    assert trained == pytest.approx([s / n for s, n in scored], abs=1e-4)
    assert batch["sizes"].tolist() == [len(q.choices) for q in questions]
    # A prompt cut to fit beside a long choice is cut as far for every choice of its question.
    cut = tokenize_groups(groups, lambda flat: tokenize(flat, tiny_causal.tokenizer, 12, False, eos=False))
    for row in cut:
        prompts = {tuple(i for i, label in zip(ids, labels) if label == -100) for ids, labels in zip(row["input_ids"], row["labels"])}
        assert len(prompts) == 1 and all(len(ids) <= 12 for ids in row["input_ids"])
    assert batch["gold"].tolist() == [q.labels.index(q.answer_key) for q in questions]


def test_set_reads_each_field_by_its_declared_type():
    from demo.cli_method import _override

    config = TrainConfig("answer", ["x"], "out")
    for item in [
        "lm_weight=2",
        "epochs=3",
        "lora=false",
        "limit=5",
        "limit=null",
        "data_dir=/d",
        'target_modules=["q_proj"]',
        "base_model=2024",
    ]:
        _override(config, item)
    assert (config.lm_weight, config.epochs, config.lora, config.limit, config.data_dir) == (2.0, 3.0, False, None, "/d")
    assert (config.target_modules, config.base_model) == (["q_proj"], "2024")
    for item, message in [
        ("limit=many", "limit takes a whole number or null"),
        ("lora=1", "lora takes true or false"),
        ("seed=true", "seed takes a whole number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _override(config, item)


def test_a_stage_fine_tuned_whole_serves_the_student_beside_adapters(tmp_path, distill_set, tiny_causal_dir):
    """`scicot train --full` saves a whole model; a set may mix it with LoRA stages, and eval,
    ask and the app load it through the same folder layout."""
    adapters = tmp_path / "set"
    main(
        _config(tmp_path, tiny_causal_dir, distill_set, "rationale", lora=False, output_dir=str(adapters / "rationale")),
        tmp_path / "c",
        progress=False,
    )
    main(_config(tmp_path, tiny_causal_dir, distill_set, "answer", output_dir=str(adapters / "answer")), tmp_path / "c", progress=False)
    assert not (adapters / "rationale" / "adapter_config.json").exists()
    assert find_adapters(adapters) == {"rationale": adapters / "rationale", "answer": adapters / "answer"}
    base = load_model(str(tiny_causal_dir), tmp_path)
    student = Student(base, adapters=find_adapters(adapters))
    assert student.model_for("rationale") is not base and student.model_for("answer") is base
    # The app builds a student per ask: the whole model is loaded once per base, not each time.
    assert Student(base, adapters=find_adapters(adapters)).model_for("rationale") is student.model_for("rationale")
    assert base.adapters.keys() == {student.adapter("answer")}  # the whole model is not attached to the base
    assert student.model_id_of(["rationale", "answer"]).endswith(" + LoRA[answer] + full[rationale]")
    q = sample_items()[0][0]
    [rationales] = student.sample_rationales([q], 2, Sampling(seed=3), batch_size=2)
    [again] = student.sample_rationales([q], 2, Sampling(seed=3), batch_size=2)
    assert [r.text for r in rationales] == [r.text for r in again] and rationales[0].model_id.endswith("full[rationale]")
    [answer] = student.answers([q], [rationales[0].text])
    assert answer.label in q.labels


def test_completion_only_labels_and_formats(tiny_causal):
    records = load_distillation_set_from_samples()
    for stage in ("rationale", "answer", "answer-only", "single-stage"):
        [(prompt, completion)] = examples(stage, records[:1], tiny_causal.instruct)
        [row] = tokenize([(prompt, completion)], tiny_causal.tokenizer, 512, seq2seq=False)
        n_prompt = len(tiny_causal.tokenizer(prompt)["input_ids"])
        assert row["labels"][:n_prompt] == [-100] * n_prompt
        assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
        assert row["labels"][-1] == tiny_causal.tokenizer.eos_token_id
    [(_, completion)] = examples("single-stage", records[:1], tiny_causal.instruct)
    assert completion.endswith("\nAnswer: The friction force is equal in size to the push.")
    [row] = tokenize([("word " * 400, " (A) yes")], tiny_causal.tokenizer, 64, seq2seq=False)
    assert len(row["input_ids"]) == 64 and row["labels"][-1] == tiny_causal.tokenizer.eos_token_id


def load_distillation_set_from_samples():
    from scicot_core.distillation_set import DistillRecord

    return [DistillRecord(q, t, "ref") for q, t in sample_items()]


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 6:
            raise KeyboardInterrupt


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resumes_after_an_interruption(tmp_path, distill_set, tiny_causal_dir):
    config = _config(tmp_path, tiny_causal_dir, distill_set)
    with pytest.raises(KeyboardInterrupt):
        main(config, tmp_path / "cache", progress=False, callbacks=[Interrupt()])
    assert (tmp_path / "rationale" / "checkpoints" / "checkpoint-4").is_dir()
    counter = CountSteps()
    out = main(config, tmp_path / "cache", progress=False, callbacks=[counter])
    assert counter.steps == [5, 6, 7, 8]  # picked up after checkpoint 4, not from scratch
    assert [e["step"] for e in map(json.loads, open(out / LOG_FILE)) if "loss" in e][-1] == 8


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stage": "stage-3"}, "unknown stage"),
        ({"data": []}, "no training data"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"learning_rate": 3.0}, "out of range"),
        ({"epochs": 0, "max_steps": -1}, "epochs > 0"),
        ({"student_rationales": ["x.jsonl"]}, "answer stage only"),
        ({"stage": "answer", "facts": ["x.jsonl"]}, "the memory's facts are for rationale and answer-only"),
        ({"target_modules": ["nope"]}, "none of target_modules"),
        ({"stage": "answer", "objective": "contrast"}, "unknown objective 'contrast'"),
        ({"objective": "choices"}, "the choices objective is for the stages that score choices"),
        ({"stage": "answer", "objective": "choices", "lm_weight": -1.0}, "lm_weight must be 0 or more"),
        ({"hold_out": "2/2"}, "fold '2/2' is not K/N"),
        ({"hold_out": "0/1"}, "N >= 2"),
    ],
)
def test_bad_configs(tmp_path, distill_set, tiny_causal_dir, change, message):
    with pytest.raises(ConfigError, match=message):
        main(_config(tmp_path, tiny_causal_dir, distill_set, **change), tmp_path / "cache", progress=False)


def test_bad_data(tmp_path, tiny_causal_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(sample_items()[0][0].to_ai2() | {"teacher": "t"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: missing field"):
        main(_config(tmp_path, tiny_causal_dir, path), tmp_path / "cache", progress=False)
    no_key = sample_items()[0][0].to_ai2() | {"answerKey": None, "rationale": "r"}
    path.write_text(json.dumps(no_key) + "\n")
    with pytest.raises(DataError, match="no answer key"):
        load_distillation_set(path)


def test_stage_two_can_also_learn_from_student_rationales(tmp_path, distill_set, tiny_causal_dir):
    from scicot_core.train import load_records

    q = sample_items()[0][0]
    preds = tmp_path / "predictions.jsonl"
    preds.write_text(
        json.dumps({"id": q.id, "answer_key": q.answer_key, "two-stage": {"label": "A", "rationale": "My own reasoning."}}) + "\n"
    )
    config = _config(tmp_path, tiny_causal_dir, distill_set, "answer", student_rationales=[str(preds)])
    data = load_records(config)
    assert data.student == {q.id: ["My own reasoning."]}
    pairs = examples("answer", data, lambda t: t, config)
    assert len(pairs) == len(data.records) + 1 and any("Rationale: My own reasoning." in p for p, _ in pairs)
    preds.write_text('{"id": "x"}\n')
    with pytest.raises(ConfigError, match="predictions.jsonl"):
        load_records(config)


def test_a_rationale_that_is_only_a_lettered_answer_teaches_no_stage_that_reads_or_writes_one():
    from scicot_core.distillation_set import DistillRecord

    q = sample_items()[0][0]
    records = [DistillRecord(q, f"Thus, the answer is ({q.answer_key})", "t"), DistillRecord(q, "Real reasoning here.", "t")]
    for stage in ("rationale", "answer", "single-stage"):
        assert len(examples(stage, records, lambda t: t)) == 1, stage
    assert len(examples("answer-only", records, lambda t: t)) == 1  # one example per question


# -- many rationales per question: files, caps, the correctness filter, stage 2's mix ----------
def _rationale_file(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data_dir(tmp_path):
    """A data directory with one split and two teachers' rationale files, three rationales for q0."""
    items = sample_items()[:3]
    root = tmp_path / "data"
    (root / "openbookqa").mkdir(parents=True)
    (root / "openbookqa" / "train.jsonl").write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in items))
    wrong = {q.id: next(c.label for c in q.choices if c.label != q.answer_key) for q, _ in items}
    rows = lambda level: [  # noqa: E731
        {
            "id": q.id,
            "rationale": f"Level {level} says {text} Thus, the answer is ({q.answer_key}).",
            "teacher": f"t{level}",
            "teacher_answer": q.answer_key,
        }
        for q, text in items
    ]
    folder = root / "rationales"
    _rationale_file(folder, "gpt4o-level1_openbookqa_train.jsonl", rows(1))
    _rationale_file(folder, "gpt4o-level2_openbookqa_train.jsonl", rows(2))
    q0 = items[0][0]
    cot = [{"id": q0.id, "rationale": "A wrong chain. Thus, the answer is (x).", "teacher": "cot", "teacher_answer": wrong[q0.id]}]
    _rationale_file(folder, "gpt4o-cot_openbookqa_train.jsonl", cot)
    _rationale_file(folder, "gpt4o-level1_openbookqa_dev.jsonl", rows(9))
    return root


def _data_config(tmp_path, data_dir, **kw):
    return TrainConfig("rationale", [], str(tmp_path / "out"), data_dir=str(data_dir), **kw)


def test_sources_choose_files_by_teacher_and_level_and_the_config_records_them(tmp_path, data_dir):
    from scicot_core.train import load_records

    config = _data_config(tmp_path, data_dir, sources=["gpt4o-level*"])
    data = load_records(config)
    assert [Path(f).name for f in config.data] == ["gpt4o-level1_openbookqa_train.jsonl", "gpt4o-level2_openbookqa_train.jsonl"]
    assert len(data.records) == 6 and len(data.questions()) == 3  # one example per (question, rationale)
    assert len(examples("rationale", data, lambda t: t)) == 6
    config = _data_config(tmp_path, data_dir, sources=["gpt4o-*"])
    assert len(load_records(config).records) == 7
    with pytest.raises(ConfigError, match="matches 'gemini"):
        load_records(_data_config(tmp_path, data_dir, sources=["gemini*"]))


def test_caps_and_the_correctness_filter(tmp_path, data_dir):
    from scicot_core.train import load_records

    everything = _data_config(tmp_path, data_dir, sources=["gpt4o-*"])
    q0 = sample_items()[0][0].id
    assert sum(r.question.id == q0 for r in load_records(everything).records) == 3
    correct = load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-*"], correct_only=True)).records
    assert len(correct) == 6 and all("wrong chain" not in r.rationale for r in correct)
    capped = load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-*"], max_per_question=1)).records
    assert sorted(r.question.id for r in capped) == sorted(q.id for q, _ in sample_items()[:3])
    again = load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-*"], max_per_question=1)).records
    assert [r.rationale for r in capped] == [r.rationale for r in again]  # the same seed keeps the same ones


def test_stage_two_mix_of_teacher_student_and_empty_rationales(tmp_path, data_dir):
    from scicot_core.train import TrainingData, load_records

    config = _data_config(tmp_path, data_dir, sources=["gpt4o-level1"])
    config.stage, config.student_per_question, config.empty_rationale = "answer", 2, 1.0
    data = load_records(config)
    q0 = data.records[0].question
    data = TrainingData(data.records, [], {q0.id: ["Mine, wrong.", "Mine, right.", "A third."]})
    pairs = examples("answer", data, lambda t: t, config)
    gold = f" {q0.choice(q0.answer_key).text}"
    student = [p for p, c in pairs if "Mine" in p or "third" in p]
    assert len(student) == 2 and all(c == gold for p, c in pairs if q0.stem in p)  # always the gold answer
    assert sum(p.endswith("Rationale: \nAnswer:") for p, _ in pairs) == 3  # every question once with an empty one
    config.teacher_for_answer, config.empty_rationale = False, 0.0
    assert len(examples("answer", data, lambda t: t, config)) == 2


def test_step_by_step_learns_two_tasks_with_prefixes(tmp_path, data_dir):
    from scicot_core.train import load_records

    data = load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-level*"]))
    pairs = examples("step-by-step", data, lambda t: t)
    assert sum(p.startswith("[rationale] ") for p, _ in pairs) == 6 and sum(p.startswith("[answer] ") for p, _ in pairs) == 3


def test_held_out_folds_split_the_training_questions_once_each(tmp_path, data_dir):
    from scicot_core.distillation_set import in_fold
    from scicot_core.train import load_records

    everything = {r.question.id for r in load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-level*"])).records}
    kept = [
        {r.question.id for r in load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-level*"], hold_out=f"{k}/2")).records}
        for k in (0, 1)
    ]
    assert kept[0] | kept[1] == everything and not kept[0] & kept[1]  # each question is held out by exactly one run
    assert not any(in_fold(q, (k, 2)) for k in (0, 1) for q in kept[k])
    sizes = [sum(in_fold(f"q{i}", (k, 3)) for i in range(3000)) for k in range(3)]
    assert sum(sizes) == 3000 and min(sizes) > 900  # about a third each


def test_never_trains_on_a_test_split(tmp_path, data_dir):
    from scicot_core.train import load_records

    with pytest.raises(ConfigError, match="never train on a test split"):
        load_records(_data_config(tmp_path, data_dir, sources=["gpt4o-level1"], questions=["openbookqa/test"]))


def test_stage_one_and_answer_only_learn_with_the_memory_s_facts_before_the_question(tmp_path, data_dir):
    from scicot_core.train import load_records

    q0 = sample_items()[0][0]
    facts = tmp_path / "facts.jsonl"  # as `scicot memory retrieve --split train` writes them
    facts.write_text(json.dumps({"id": q0.id, "rationale": "Friction opposes motion. A push moves a box."}) + "\n")
    config = _data_config(tmp_path, data_dir, sources=["gpt4o-level1"], facts=[str(facts)])
    data = load_records(config)
    assert data.facts == {q0.id: "Friction opposes motion. A push moves a box."}
    pairs = examples("rationale", data, lambda t: t, config)
    with_facts = [p for p, _ in pairs if p.startswith("Facts: Friction opposes motion. A push moves a box.\nQuestion: ")]
    assert len(with_facts) == 1 and q0.stem in with_facts[0] and sum(p.startswith("Question: ") for p, _ in pairs) == 2
    config.stage = "answer-only"
    answers = examples("answer-only", data, lambda t: t, config)
    assert sum(p.startswith("Facts: Friction") and p.endswith("\nAnswer:") for p, _ in answers) == 1
    facts.write_text("not json\n")
    with pytest.raises(DataError):
        load_records(config)
    facts.write_text(json.dumps({"id": "another-split-7", "rationale": "Friction opposes motion."}) + "\n")
    with pytest.raises(DataError, match=r"facts for none of the \d+ training questions: retrieve them"):
        load_records(config)
