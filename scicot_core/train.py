"""Training each stage (and each baseline) as a LoRA adapter, or fully, with the transformers
Trainer: a dataclass config saved beside the output, loss on the completion only, length
bucketing, resumable checkpoints, a training log. CPU by default, a GPU when there is one,
several through `accelerate launch`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import formats
from .choice_loss import CHOICE_STAGES, OBJECTIVES, ChoiceCollator, choice_examples, choice_trainer, tokenize_groups
from .distillation_set import DistillRecord, in_fold, load_any, load_student_rationales, parse_fold, rationale_files
from .errors import ConfigError, DataError
from .questions import Question, load_split
from .student import STAGES

FACT_STAGES = ("rationale", "answer-only")  # the stages that may read the memory's facts (TrainConfig.facts)

CONFIG_FILE = "scicot_train_config.json"
LOG_FILE = "training_log.jsonl"
DATA_FILE = "scicot_train_data.json"


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
    # The memory's facts for each training question (`scicot memory retrieve` on the training
    # split, which never gives a question its own rationales' facts): stage 1 and answer-only
    # then learn with them before the question, as two-stage+memory and answer-only+memory run.
    facts: list[str] = field(default_factory=list)
    # Which rationales: files chosen by teacher/level in data_dir/rationales (added to `data`),
    # at most this many per question (0 = all), only those whose conclusion is the gold answer.
    sources: list[str] = field(default_factory=list)
    max_per_question: int = 0
    correct_only: bool = False
    # More training questions without rationales ("arc_easy/train"): answer-only, step-by-step's
    # answer task and stage 2 (on student or empty rationales) train on them too.
    questions: list[str] = field(default_factory=list)
    # "K/N": leave fold K of N of the training questions out (distillation_set.in_fold), so that
    # the student's own rationales for them come from a stage 1 that never saw them (cross-fitting).
    hold_out: str = ""
    # Stage 2's mix: teacher rationales, up to this many student rationales per question (0 =
    # all given), and this share of questions also with an empty rationale.
    teacher_for_answer: bool = True
    student_per_question: int = 0
    empty_rationale: float = 0.0
    save_steps: int = 50
    logging_steps: int = 5
    # What a scoring stage (answer, answer-only) learns: "lm", the gold text's language-model
    # loss; "choices", the gold choice among all of its question's (see choice_loss), plus
    # lm_weight times that language-model loss.
    objective: str = "lm"
    lm_weight: float = 1.0

    def check(self) -> TrainConfig:
        """Refuse a config that cannot train, saying which field to fix."""
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; choose one of {list(STAGES)}.")
        if not self.data and not self.sources:
            raise ConfigError("no training data: give at least one distillation-set JSONL file (or --source with a data directory).")
        for name in ("batch_size", "grad_accum", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}.")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate {self.learning_rate} is out of range; try 2e-4 for LoRA, 2e-5 for full fine-tuning.")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0.")
        if self.student_rationales and self.stage != "answer":
            raise ConfigError("student rationales are for the answer stage only (stage 2 reads rationales).")
        if self.facts and self.stage not in FACT_STAGES:
            raise ConfigError(f"the memory's facts are for {' and '.join(FACT_STAGES)} (stage 2 reads a rationale), not {self.stage}.")
        if self.max_per_question < 0 or self.student_per_question < 0:
            raise ConfigError("max_per_question and student_per_question must be 0 (all) or more.")
        if not 0 <= self.empty_rationale <= 1:
            raise ConfigError(f"empty_rationale is a share of questions in [0, 1], not {self.empty_rationale}.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of {list(OBJECTIVES)}.")
        if self.objective == "choices" and self.stage not in CHOICE_STAGES:
            raise ConfigError(f"the choices objective is for the stages that score choices ({', '.join(CHOICE_STAGES)}), not {self.stage}.")
        if self.lm_weight < 0:
            raise ConfigError(f"lm_weight must be 0 or more, not {self.lm_weight}.")
        if self.hold_out:
            parse_fold(self.hold_out)
        if (self.sources or self.questions) and not self.data_dir:
            raise ConfigError("--source and --questions need a data directory (--data-dir or SCICOT_DATA_DIR).")
        return self

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> TrainConfig:
        return cls(**json.loads((Path(folder) / CONFIG_FILE).read_text()))


# What a setting's declared type accepts, in words for a message.
_KINDS = {"int": int, "float": (int, float), "bool": bool, "list[str]": list, "str": str}
_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "list[str]": 'a list, e.g. ["q_proj"]', "str": "text"}


def setting(name: str, value, where: str = "") -> object:
    """`value` as TrainConfig field `name` holds it (an int accepted for a float), or a
    ConfigError naming the field and the type it takes; `where` says where the value came from."""
    declared = {f.name: str(f.type) for f in fields(TrainConfig)}
    where = where or name
    if name not in declared:
        raise ConfigError(f"{where}: unknown training setting {name!r}; choose from {sorted(declared)}.")
    kind, optional = declared[name].split(" | ")[0], declared[name].endswith("| None")
    if value is None and optional:
        return None
    wanted = _KINDS[kind]
    if not isinstance(value, wanted) or (kind != "bool" and isinstance(value, bool)):
        raise ConfigError(f"{where}: {name} takes {_WORDS[kind]}{' or null' if optional else ''}.")
    if kind == "list[str]" and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {name} takes {_WORDS[kind]} of text.")
    return float(value) if kind == "float" else value


@dataclass
class TrainingData:
    """What one run trains on: rationale records, extra questions without rationales, and the
    student's own rationales for stage 2."""

    records: list[DistillRecord]
    extra_questions: list[Question] = field(default_factory=list)
    student: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)  # the memory's facts by question id (config.facts)

    def questions(self) -> list[Question]:
        """Every training question once, in a stable order."""
        seen: dict[str, Question] = {}
        for q in [r.question for r in self.records] + self.extra_questions:
            seen.setdefault(q.id, q)
        return list(seen.values())


def examples(stage: str, data: TrainingData | list[DistillRecord], instruct, config: TrainConfig | None = None) -> list[tuple[str, str]]:
    """(prompt, completion) pairs for a stage; the formats are those inference uses. One pair per
    (question, rationale) for the stages that read or write rationales, one per question for
    the answer tasks."""
    data = data if isinstance(data, TrainingData) else TrainingData(data)
    config = config or TrainConfig(stage, ["-"], "-")
    records = [r for r in data.records if formats.rationale_body(r.rationale)]  # a lettered answer alone teaches nothing
    gold = {q.id: formats.answer_target(q.choice(q.answer_key)) for q in data.questions()}
    if stage == "rationale":
        facts = data.facts
        return [
            (instruct(formats.rationale_input(r.question, facts.get(r.question.id, ""))), formats.rationale_target(r.rationale))
            for r in records
        ]
    if stage == "single-stage":
        return [
            (
                instruct(formats.rationale_input(r.question)),
                formats.single_stage_target(r.rationale, r.question.choice(r.question.answer_key)),
            )
            for r in records
        ]
    if stage == "step-by-step":
        tasks = [(instruct(formats.step_rationale_input(r.question)), formats.rationale_target(r.rationale)) for r in records]
        return tasks + [(formats.step_answer_input(q), gold[q.id]) for q in data.questions()]
    return [(p, gold[q.id]) for q, p in scoring_prompts(stage, data, config)]


def scoring_prompts(stage: str, data: TrainingData, config: TrainConfig) -> list[tuple[Question, str]]:
    """(question, prompt) for each example of a stage that answers by scoring choices: the
    question alone for answer-only; for stage 2 the robust mix of teacher rationales, the
    student's own (right and wrong alike, always with the gold answer as target) and some empty
    ones, so that a bad rationale does not drag the answer down."""
    if stage == "answer-only":
        return [(q, formats.cloze_input(q, data.facts.get(q.id, ""))) for q in data.questions()]
    records = [r for r in data.records if formats.rationale_body(r.rationale)] if config.teacher_for_answer else []
    out = [(r.question, formats.answer_input(r.question, r.rationale)) for r in records]
    for q in data.questions():
        texts = data.student.get(q.id, [])
        texts = texts[: config.student_per_question] if config.student_per_question else texts
        out += [(q, formats.answer_input(q, t)) for t in texts]
        if config.empty_rationale and _share(q.id, config.seed) < config.empty_rationale:
            out.append((q, formats.answer_input(q, "")))
    return out


def _share(question_id: str, seed: int) -> float:
    """A stable number in [0, 1) per question, so the same share of questions is picked each run."""
    return int(hashlib.sha256(f"{seed}|{question_id}".encode()).hexdigest()[:8], 16) / 16**8


def tokenize(pairs: list[tuple[str, str]], tokenizer, max_length: int, seq2seq: bool, eos: bool = True) -> list[dict]:
    """Token ids with labels only on the completion (-100 on the prompt), which ends with the
    end-of-sequence token when `eos`; prompts are cut from the left when too long, so the
    completion always survives."""
    rows = []
    # One batched call per side: the fast tokenizer works through a list in parallel.
    prompt_ids = tokenizer([p for p, _ in pairs])["input_ids"] if pairs else []
    completion_ids = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"] if pairs else []
    for p, c in zip(prompt_ids, completion_ids):
        c = c + [tokenizer.eos_token_id] if eos else c
        if seq2seq:
            rows.append({"input_ids": p[-max_length:], "labels": c[:max_length]})
            continue
        c = c[: max_length // 2] if len(c) > max_length // 2 and len(p) + len(c) > max_length else c
        p = p[-(max_length - len(c)) :] if len(p) + len(c) > max_length else p
        rows.append({"input_ids": p + c, "labels": [-100] * len(p) + c})
    return rows


def load_records(config: TrainConfig) -> TrainingData:
    """The run's data, filtered as configured; also records in the config exactly which files
    were read (sources resolved to file names)."""
    files = list(config.data)
    if config.sources:
        files += [str(f) for f in rationale_files(config.data_dir, config.sources) if str(f) not in files]
    config.data = files
    records = [r for path in files for r in load_any(path, data_dir=config.data_dir)]
    fold = parse_fold(config.hold_out) if config.hold_out else None
    if fold:  # before the caps and the limit, which then count what is left
        records = [r for r in records if not in_fold(r.question.id, fold)]
    if config.correct_only:
        records = [r for r in records if _concludes_gold(r)]
    records = _dedupe(records)
    if config.max_per_question:
        records = _cap(records, config.max_per_question, config.seed)
    if config.limit:
        records = random.Random(config.seed).sample(records, min(config.limit, len(records)))
    extra = [q for name in config.questions for q in load_split(*_split_name(name), config.data_dir)]
    if fold:
        extra = [q for q in extra if not in_fold(q.id, fold)]
    facts = {qid: texts[0] for qid, texts in load_student_rationales(config.facts).items() if texts}
    data = TrainingData(records, extra, load_student_rationales(config.student_rationales), facts)
    if config.facts:
        questions = data.questions()
        if not {q.id for q in questions} & facts.keys():
            raise DataError(
                f"the facts files ({', '.join(config.facts)}) hold facts for none of the {len(questions)} training "
                "questions: retrieve them for these questions (`scicot memory retrieve` on the training split) and try again."
            )
    return data


def _concludes_gold(r: DistillRecord) -> bool:
    concluded = r.extra.get("teacher_answer") or formats.extract_answer(r.rationale, r.question)
    return concluded == r.question.answer_key


def _dedupe(records: list[DistillRecord]) -> list[DistillRecord]:
    seen, out = set(), []
    for r in records:
        key = (r.question.id, formats.clean_rationale(r.rationale))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _cap(records: list[DistillRecord], most: int, seed: int) -> list[DistillRecord]:
    by_question: dict[str, list[DistillRecord]] = {}
    for r in records:
        by_question.setdefault(r.question.id, []).append(r)
    rng = random.Random(seed)
    return [r for group in by_question.values() for r in (rng.sample(group, most) if len(group) > most else group)]


def _split_name(name: str) -> tuple[str, str]:
    dataset, _, split = name.partition("/")
    if split == "test":
        raise ConfigError(f"{name}: never train on a test split.")
    return dataset, split


def data_summary(config: TrainConfig, data: TrainingData, n_examples: int) -> dict:
    """What the run read, saved beside its config: each file with a hash, and the counts."""
    return {
        "files": {path: _sha256(Path(path)) for path in config.data},
        "filters": {"sources": config.sources, "max_per_question": config.max_per_question, "correct_only": config.correct_only},
        "records": len(data.records),
        "questions": len(data.questions()),
        "student_rationales": sum(map(len, data.student.values())),
        "examples": n_examples,
    }


def _device_name() -> str:
    """What the run trains on, for the model card: the GPU's name, else the CPU's thread count."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"


def main(config: TrainConfig, cache_dir: Path, offline: bool = True, progress: bool = True, callbacks: list | None = None) -> Path:
    """Train one stage; returns the folder holding the adapter (or full model), config and log."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from .base_models import load_model

    config.check()
    out = Path(config.output_dir)
    data = load_records(config)
    if not data.records and not (config.stage in ("answer", "answer-only") and data.questions()):
        raise ConfigError("the training data holds no records (check the files and filters: --max-per-question, --correct-only).")
    lm = load_model(config.base_model, cache_dir, offline)
    model, tokenizer = lm.model, lm.tokenizer
    choices = config.objective == "choices"
    pairs = choice_examples(scoring_prompts(config.stage, data, config)) if choices else examples(config.stage, data, lm.instruct, config)
    if not pairs:
        raise ConfigError(f"no training examples for stage {config.stage}: the rationales have no reasoning before their answer.")
    if choices:  # scored as inference scores them: a causal model's completion without its end token
        rows = tokenize_groups(pairs, lambda flat: tokenize(flat, tokenizer, config.max_length, lm.is_seq2seq, eos=lm.is_seq2seq))
    else:
        rows = tokenize(pairs, tokenizer, config.max_length, lm.is_seq2seq)
    config.save(out)
    (out / DATA_FILE).write_text(json.dumps(data_summary(config, data, len(pairs)) | {"device": _device_name()}, indent=2))
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
        train_sampling_strategy="group_by_length",  # a choice row's length: ChoiceTrainer measures it
        seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    collator = (
        ChoiceCollator(tokenizer.pad_token_id, lm.is_seq2seq)
        if choices
        else DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, padding=True)
    )
    trainer_class = choice_trainer(lm.is_seq2seq, config.lm_weight) if choices else Trainer
    trainer = trainer_class(
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


def _dataset(rows: list[dict]) -> list[dict]:
    # A plain list is a map-style dataset; the length-grouped sampler measures input_ids itself.
    return rows


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
