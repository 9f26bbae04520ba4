"""`scicot teach | train | eval`: the Sci-CoT method end to end from the shell."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path

import click
from tqdm import tqdm

from scicot_core import variants as variant_table
from scicot_core.distill import load_student_rationales
from scicot_core.errors import ConfigError, DataError
from scicot_core.evaluate import VARIANTS, available, evaluate, write_report
from scicot_core.formats import FORMAT_VERSION, TEACHER_MODES
from scicot_core.pipeline import BUNDLED_ADAPTERS, MAX_RATIONALE_TOKENS, STAGES, Student, default_adapters, find_adapters
from scicot_core.questions import DATASETS, HUB_SPLITS, Rationale, load_jsonl, load_split
from scicot_core.settings import Settings
from scicot_core.teach import teach as run_teach
from scicot_core.train import TrainConfig
from scicot_core.train import main as run_train

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [default: SCICOT_DATA_DIR]."
)


def question_options(fn):
    """--dataset/--split or --questions, --limit and --data-dir: which questions a command reads."""
    options = [
        click.option("--dataset", type=click.Choice(sorted(DATASETS))),
        click.option("--split", type=click.Choice(list(HUB_SPLITS))),
        click.option(
            "--questions",
            "questions_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Any AI2-layout question file (2 to 9 choices) instead.",
        ),
        click.option("--limit", type=int, help="Only the first N questions."),
        data_dir_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _questions(dataset, split, data_dir, questions_file, settings: Settings, limit):
    if questions_file:
        qs = load_jsonl(questions_file)
    elif dataset and split:
        qs = load_split(dataset, split, data_dir or settings.data_dir, settings.offline)
    else:
        raise ConfigError("give --dataset and --split, or --questions FILE.")
    return qs[:limit] if limit else qs


@click.command()
@question_options
@click.option("--teacher", default=None, help="Teacher name: http, stand-in, stored, sample [default: SCICOT_TEACHER].")
@click.option(
    "--mode",
    type=click.Choice(TEACHER_MODES),
    default="rationalize",
    show_default=True,
    help="rationalize: the gold answer is given; cot: free chain-of-thought, kept only when its answer is right.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Distillation-set JSONL to write (appended; ids already there are skipped).",
)
def teach(dataset, split, questions_file, teacher, mode, out, limit, data_dir):
    """Write teacher rationales for a split as a distillation set (resumable)."""
    from scicot_core.models import load_model
    from scicot_core.teachers import get_teacher

    settings = Settings.from_env()
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    t = get_teacher(
        teacher or settings.teacher, settings, lambda: load_model(settings.student, settings.cache_dir, settings.offline, settings.threads)
    )
    chunk = max(16, 4 * (settings.endpoint.concurrency if settings.endpoint else 4))
    with tqdm(total=len(questions), desc=f"teaching ({t.model_id})", unit="q") as bar:
        counts = run_teach(t, questions, out, mode, chunk=chunk, progress=bar.update)
    click.echo(
        f"{out}: {counts['written']} written, {counts['skipped_done']} already there, {counts['dropped_wrong']} dropped (wrong answer)"
    )


@click.command()
@click.option("--stage", type=click.Choice(STAGES), required=True, help="rationale (stage 1), answer (stage 2), or a baseline.")
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Distillation-set or rationale JSONL; repeatable. One example per (question, rationale).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="PATTERN",
    help="Rationale files of the data directory by teacher and level, e.g. 'gpt4o-level[1-3]', 'gemini15flash-*', entailmentbank, flan_t5; repeatable.",
)
@click.option("--max-per-question", type=click.IntRange(min=0), default=0, help="At most N rationales per question (0 = all).")
@click.option("--correct-only", is_flag=True, help="Keep only rationales whose own conclusion (teacher_answer) is the gold answer.")
@click.option(
    "--questions",
    "extra_questions",
    multiple=True,
    metavar="DATASET/SPLIT",
    help="More training questions without rationales (answer-only, step-by-step and stage 2 train on them), e.g. arc_easy/train.",
)
@click.option(
    "--out", "output_dir", required=True, type=click.Path(file_okay=False), help="Folder for the adapter, config, log and checkpoints."
)
@click.option(
    "--student-rationales",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="(answer stage) also train on these student rationales: JSONL with id and rationale, or the predictions.jsonl of `scicot eval` on the training split.",
)
@click.option("--full", is_flag=True, help="Full fine-tuning instead of LoRA.")
@click.option(
    "--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Any TrainConfig field, e.g. --set epochs=2 --set lora_r=16."
)
@data_dir_option
def train(stage, data, sources, max_per_question, correct_only, extra_questions, output_dir, student_rationales, full, overrides, data_dir):
    """Train one stage or baseline (LoRA by default); rerun the same command to resume.

    The saved scicot_train_config.json names every file read and every filter;
    scicot_train_data.json adds each file's hash and the counts."""
    settings = Settings.from_env()
    config = TrainConfig(
        stage=stage,
        data=list(data),
        sources=list(sources),
        max_per_question=max_per_question,
        correct_only=correct_only,
        questions=list(extra_questions),
        output_dir=output_dir,
        base_model=settings.student,
        lora=not full,
        student_rationales=list(student_rationales),
        data_dir=str(data_dir or settings.data_dir or "") or None,
    )
    for item in overrides:
        _override(config, item)
    out = run_train(config, settings.cache_dir, settings.offline)
    click.echo(f"trained {stage}: {out}")


def _override(config: TrainConfig, item: str) -> None:
    name, _, raw = item.partition("=")
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if name not in kinds:
        raise ConfigError(f"unknown training setting {name!r}; choose from {sorted(kinds)}.")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    setattr(config, name, value)


@click.command(name="eval")
@question_options
@click.option(
    "--adapters",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with <stage>/ adapters [default: SCICOT_ADAPTERS, else the shipped ones].",
)
@click.option(
    "--variant", "variants", multiple=True, type=click.Choice(VARIANTS), help="Only these variants (repeatable) [default: all available]."
)
@click.option("--batch-size", default=16, show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Report folder [default: runs/eval-<dataset>-<split>]."
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also store each student rationale in this annotation store, beside the teacher's.",
)
@click.option(
    "--rationales",
    "rationale_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Reuse the two-stage rationales of an earlier run (its predictions.jsonl, or {id, rationale} lines) instead of "
    "generating them, e.g. to score a new answer adapter on the same text; questions missing from it are generated.",
)
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True, help="Two-stage: rationales per question (k).")
@click.option(
    "--temperature", type=click.FloatRange(min=0), default=0.7, show_default=True, help="Sampling temperature when --samples > 1."
)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling (same seed, same rationales).")
@click.option("--prior-weight", type=click.FloatRange(0, 1), help="two-stage+prior's weight [default: the adapters' prior.json, else 0.5].")
@click.option(
    "--save-prior",
    is_flag=True,
    help="Save the two-stage+prior weight that scores best on these questions to the adapters' prior.json (dev only).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def eval_(
    dataset,
    split,
    questions_file,
    limit,
    adapters,
    variants,
    batch_size,
    out_dir,
    db_path,
    rationale_files,
    samples,
    temperature,
    top_p,
    seed,
    prior_weight,
    save_prior,
    as_json,
    data_dir,
):
    """Accuracy of zero-shot, answer-only, step-by-step, single-stage, two-stage and two-stage+prior
    on the same questions. Two-stage with --samples K averages stage 2 over K sampled rationales
    (self-consistency) and also reports the majority vote and accuracy against k.

    An interrupted run resumes where it stopped: the rationales it had generated are kept in
    OUT/generated.partial.jsonl and reused when the same command runs again."""
    from scicot_core.lm import Sampling
    from scicot_core.models import load_model

    settings = Settings.from_env()
    if save_prior and split == "test":
        raise ConfigError("choose the prior weight on dev, never on test: drop --save-prior or use --split dev.")
    sampling = Sampling(temperature, top_p, seed) if samples > 1 else None
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    reused = load_student_rationales(rationale_files)
    found = find_adapters(adapters) if adapters else default_adapters(settings.adapters, settings.student)
    title = f"{dataset}/{split}" if dataset else Path(questions_file).stem
    out_dir = out_dir or Path("runs") / f"eval-{title.replace('/', '-')}"
    for variant in variants:
        missing = [stage for stage in variant_table.get(variant).needs if stage not in found]
        if missing:
            raise ConfigError(
                f"variant {variant} needs a {missing[0]}/ adapter in the adapter set; train it with `scicot train --stage {missing[0]}`."
            )
    adapter_folder = adapters or settings.adapters or (BUNDLED_ADAPTERS if found else None)
    weight = prior_weight if prior_weight is not None else variant_table.prior_weight(adapter_folder)
    checkpoint = GeneratedCheckpoint(out_dir / "generated.partial.jsonl", settings.student, found, MAX_RATIONALE_TOKENS, samples, sampling)
    given = checkpoint.load()
    if given:
        click.echo(f"resuming: reusing {sum(map(len, given.values()))} questions' rationales generated before in {checkpoint.path}")
    for i, texts in reused.items():
        given.setdefault("two-stage", {})[i] = [Rationale(i, t, "student", "reused from an earlier run") for t in texts]
    student = Student(load_model(settings.student, settings.cache_dir, settings.offline, settings.threads), adapters=found)
    variants = available(student, variants or VARIANTS)
    with tqdm(desc="evaluating", unit="q", total=len(questions) * len(variants)) as bar:
        result = evaluate(
            student, questions, variants, batch_size, lambda v, n: bar.update(n), given, checkpoint.append, samples, sampling, weight
        )
    paths = write_report(result, out_dir, title)
    if save_prior and result.get("prior_sweep"):
        best = max(result["prior_sweep"], key=lambda w: (result["prior_sweep"][w] or 0, -abs(float(w) - 0.5)))
        saved = variant_table.save_prior_weight(
            adapter_folder, float(best), {"questions": title, "n": len(questions), "sweep": result["prior_sweep"]}
        )
        click.echo(f"saved prior weight {best} to {saved}")
    checkpoint.path.unlink(missing_ok=True)
    if db_path:
        _store_student_rationales(db_path, questions, result, settings)
    summary = {k: v for k, v in json.loads(paths["results.json"].read_text()).items()} | {"files": {k: str(v) for k, v in paths.items()}}
    click.echo(json.dumps(summary, indent=2) if as_json else paths["results.md"].read_text() + f"\nreport: {out_dir}")


class GeneratedCheckpoint:
    """Rationales an evaluation has generated so far, one JSON line per question (its k
    rationales), so an interrupted run resumes without generating them again. Each line records
    what wrote it (base model, the adapter's path and a hash of its weights, the text format,
    the length limit, k and the sampling settings); only lines written exactly as this run
    would write them are reused. A torn last line is ignored."""

    STAGE = {"two-stage": "rationale", "single-stage": "single-stage"}

    def __init__(self, path: Path, base_model: str, adapters: dict[str, Path], max_tokens: int, samples: int = 1, sampling=None):
        self.path = path
        sampled = {"samples": samples, "sampling": asdict(sampling) if sampling else None}
        self.writer = {
            v: _writer(base_model, adapters.get(stage), max_tokens) | (sampled if v == "two-stage" else {})
            for v, stage in self.STAGE.items()
        }

    def load(self) -> dict[str, dict[str, list[Rationale]]]:
        given: dict[str, dict[str, list[Rationale]]] = {}
        if not self.path.exists():
            return given
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a torn last line: end it, so new lines start clean
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
                if self.writer.get(row["variant"]) == row["writer"]:
                    rs = [
                        Rationale(row["id"], r["text"], "student", row["model_id"], row["ms"], meta={"conclusion": r["conclusion"]})
                        for r in row["rationales"]
                    ]
                    given.setdefault(row["variant"], {})[row["id"]] = rs
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return given

    def append(self, variant: str, rationales: list[list[Rationale]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for rs in rationales:
                texts = [{"text": r.text, "conclusion": r.meta.get("conclusion")} for r in rs]
                row = {
                    "variant": variant,
                    "id": rs[0].question_id,
                    "rationales": texts,
                    "model_id": rs[0].model_id,
                    "ms": rs[0].duration_ms,
                }
                f.write(json.dumps(row | {"writer": self.writer[variant]}) + "\n")


def _writer(base_model: str, adapter: Path | None, max_tokens: int) -> dict:
    weights = Path(adapter) / "adapter_model.safetensors" if adapter else None
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights and weights.exists() else None
    return {
        "base": base_model,
        "adapter": str(Path(adapter).resolve()) if adapter else None,
        "weights": digest,
        "format": FORMAT_VERSION,
        "max_tokens": max_tokens,
    }


def _store_student_rationales(db_path: Path, questions, result: dict, settings: Settings) -> None:
    from annotations.store import Store
    from scicot_core.teachers import StoredTeacher

    store = Store(db_path, reviewer_secret=settings.reviewer_secret)
    store.add_questions(questions)
    student = result["rationales"].get("two-stage", [])
    refused = 0
    for rationale in student:
        try:
            store.add_rationale(rationale)
        except DataError:  # e.g. a generated rationale with HTML in it: not stored, counted
            refused += 1
    stored = StoredTeacher.from_data_dir(settings.data_dir)
    if stored is not None:
        have = [q for q in questions if stored.has(q.id)]
        store.add_rationales(stored.rationales(have))
    click.echo(
        f"stored {len(student) - refused} student rationales in {db_path}"
        + (f" ({refused} refused by the store's checks)" if refused else "")
    )
