"""Training each stage (and each baseline) as a LoRA adapter, or fully, with the transformers
Trainer: a dataclass config saved beside the output, loss on the completion only, length
bucketing, resumable checkpoints, a training log. CPU by default, a GPU when there is one,
several through `accelerate launch`.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import formats
from .distill import DistillRecord, load_any, load_student_rationales
from .errors import ConfigError
from .pipeline import STAGES

CONFIG_FILE = "scicot_train_config.json"
LOG_FILE = "training_log.jsonl"


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as JSON beside its adapter."""

    stage: str
    data: list[str]
    output_dir: str
    base_model: str = "smollm2-135m"
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    max_length: int = 256
    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None  # to join rationale-only files with their questions
    student_rationales: list[str] = field(default_factory=list)
    save_steps: int = 50
    logging_steps: int = 5

    def check(self) -> TrainConfig:
        """Refuse a config that cannot train, saying which field to fix."""
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; choose one of {list(STAGES)}.")
        if not self.data:
            raise ConfigError("no training data: give at least one distillation-set JSONL file.")
        for name in ("batch_size", "grad_accum", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}.")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate {self.learning_rate} is out of range; try 2e-4 for LoRA, 2e-5 for full fine-tuning.")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0.")
        if self.student_rationales and self.stage != "answer":
            raise ConfigError("student rationales are for the answer stage only (stage 2 reads rationales).")
        return self

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> TrainConfig:
        return cls(**json.loads((Path(folder) / CONFIG_FILE).read_text()))


def examples(stage: str, records: list[DistillRecord], instruct, student_texts: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(prompt, completion) pairs for a stage; the formats are those inference uses."""
    out = []
    for r in records:
        q, gold = r.question, r.question.choice(r.question.answer_key)
        if stage != "answer-only" and not formats.rationale_body(r.rationale):
            continue  # only a lettered answer, no reasoning: nothing to learn to write or read
        if stage == "rationale":
            out.append((instruct(formats.rationale_input(q)), formats.rationale_target(r.rationale)))
        elif stage == "answer":
            out.append((formats.answer_input(q, r.rationale), formats.answer_target(gold)))
            if student_texts and q.id in student_texts:
                out.append((formats.answer_input(q, student_texts[q.id]), formats.answer_target(gold)))
        elif stage == "answer-only":
            out.append((formats.cloze_input(q), formats.answer_target(gold)))
        else:
            out.append((instruct(formats.rationale_input(q)), formats.single_stage_target(r.rationale, gold)))
    return out


def tokenize(pairs: list[tuple[str, str]], tokenizer, max_length: int, seq2seq: bool) -> list[dict]:
    """Token ids with labels only on the completion (-100 on the prompt); prompts are cut from
    the left when too long, so the completion always survives."""
    rows = []
    for prompt, completion in pairs:
        p = tokenizer(prompt)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if seq2seq:
            rows.append({"input_ids": p[-max_length:], "labels": c[:max_length]})
            continue
        c = c[: max_length // 2] if len(c) > max_length // 2 and len(p) + len(c) > max_length else c
        p = p[-(max_length - len(c)) :] if len(p) + len(c) > max_length else p
        rows.append({"input_ids": p + c, "labels": [-100] * len(p) + c})
    return rows


def load_records(config: TrainConfig) -> tuple[list[DistillRecord], dict[str, str]]:
    records = [r for path in config.data for r in load_any(path, data_dir=config.data_dir)]
    if config.limit:
        records = random.Random(config.seed).sample(records, min(config.limit, len(records)))
    return records, load_student_rationales(config.student_rationales)


def main(config: TrainConfig, cache_dir: Path, offline: bool = True, progress: bool = True, callbacks: list | None = None) -> Path:
    """Train one stage; returns the folder holding the adapter (or full model), config and log."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from .models import load_model

    config.check()
    out = Path(config.output_dir)
    records, student = load_records(config)
    if not records:
        raise ConfigError("the training data holds no records.")
    lm = load_model(config.base_model, cache_dir, offline)
    model, tokenizer = lm.model, lm.tokenizer
    rows = tokenize(examples(config.stage, records, lm.instruct, student), tokenizer, config.max_length, lm.is_seq2seq)
    config.save(out)
    if config.lora:
        model = _with_lora(model, config, lm.is_seq2seq)
    dataset = _dataset(rows)
    tokenizer.padding_side = "right"
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_steps=config.save_steps,
        save_total_limit=2,
        train_sampling_strategy="group_by_length",
        seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, padding=True)
    trainer = Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer, callbacks=callbacks
    )
    resume = any((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    _save(model, tokenizer, config, out)
    with open(out / LOG_FILE, "w") as f:
        for entry in trainer.state.log_history:
            f.write(json.dumps(entry) + "\n")
    return out


def _with_lora(model, config: TrainConfig, seq2seq: bool):
    from peft import LoraConfig, TaskType, get_peft_model

    targets = config.target_modules
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if seq2seq and not set(targets) & names:
        targets = ["q", "k", "v", "o"]  # T5 names its attention projections q, k, v, o
    if not set(targets) & names:
        raise ConfigError(f"none of target_modules {targets} is in {config.base_model}; pick from its Linear layers.")
    task = TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM
    lora = LoraConfig(
        task_type=task, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, target_modules=targets
    )
    return get_peft_model(model, lora)


def _dataset(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list([r | {"length": len(r["input_ids"])} for r in rows])


def _save(model, tokenizer, config: TrainConfig, out: Path) -> None:
    """Adapters in fp16 (a few MB; loaded back into an fp32 base); a full model as it is."""
    import torch

    if config.lora:
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.float16)
        model.save_pretrained(out)
    else:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
