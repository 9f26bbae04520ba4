"""Training on tiny models: the loss falls, adapters load back into the student, runs resume
after an interruption, and bad configs and data fail clearly."""

import json

import pytest
from transformers import TrainerCallback

from scicot_core.distill import load_distillation_set
from scicot_core.errors import ConfigError, DataError
from scicot_core.models import load_model
from scicot_core.pipeline import Student
from scicot_core.questions import sample_items
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
    from scicot_core.distill import DistillRecord

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
        ({"target_modules": ["nope"]}, "none of target_modules"),
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
    records, student = load_records(config)
    assert student == {q.id: "My own reasoning."}
    pairs = examples("answer", records, lambda t: t, student)
    assert len(pairs) == len(records) + 1 and any("Rationale: My own reasoning." in p for p, _ in pairs)
    preds.write_text('{"id": "x"}\n')
    with pytest.raises(ConfigError, match="predictions.jsonl"):
        load_records(config)


def test_a_rationale_that_is_only_a_lettered_answer_teaches_no_stage_that_reads_or_writes_one():
    from scicot_core.distill import DistillRecord

    q = sample_items()[0][0]
    records = [DistillRecord(q, f"Thus, the answer is ({q.answer_key})", "t"), DistillRecord(q, "Real reasoning here.", "t")]
    for stage in ("rationale", "answer", "single-stage"):
        assert len(examples(stage, records, lambda t: t)) == 1, stage
    assert len(examples("answer-only", records, lambda t: t)) == 2
