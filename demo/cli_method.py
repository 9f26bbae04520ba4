"""`scicot teach | train | eval`: the Sci-CoT method end to end from the shell."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

import click
from tqdm import tqdm

from scicot_core.distill import load_student_rationales
from scicot_core.errors import ConfigError, DataError, TeacherError
from scicot_core.evaluate import NEEDS_ADAPTER, VARIANTS, available, evaluate, write_report
from scicot_core.formats import FORMAT_VERSION, TEACHER_MODES
from scicot_core.pipeline import MAX_RATIONALE_TOKENS, STAGES, Student, default_adapters, find_adapters
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
    help="rationalize: the gold answer is given (a rationale concluding otherwise is dropped); cot: free chain-of-thought, kept only when its answer is right.",
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
    errors = []
    with tqdm(total=len(questions), desc=f"teaching ({t.model_id})", unit="q") as bar:
        counts = run_teach(t, questions, out, mode, chunk=chunk, progress=bar.update, on_error=lambda q, e: errors.append((q.id, e)))
    click.echo(
        f"{out}: {counts['written']} written, {counts['skipped_done']} already there, "
        f"{counts['dropped_wrong']} dropped (wrong answer), {counts['failed']} failed"
    )
    if errors:
        question_id, error = errors[0]
        raise TeacherError(
            f"the teacher failed on {len(errors)} question(s) (first, {question_id}: {str(error).rstrip('.')}); rerun the same command to ask them again."
        )


@click.command()
@click.option("--stage", type=click.Choice(STAGES), required=True, help="rationale (stage 1), answer (stage 2), or a baseline.")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Distillation-set or rationale JSONL; repeatable.",
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
def train(stage, data, output_dir, student_rationales, full, overrides, data_dir):
    """Train one stage or baseline (LoRA by default); rerun the same command to resume."""
    settings = Settings.from_env()
    config = TrainConfig(
        stage=stage,
        data=list(data),
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
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def eval_(dataset, split, questions_file, limit, adapters, variants, batch_size, out_dir, db_path, rationale_files, as_json, data_dir):
    """Accuracy of zero-shot, answer-only, single-stage and two-stage on the same questions.

    An interrupted run resumes where it stopped: the rationales it had generated are kept in
    OUT/generated.partial.jsonl and reused when the same command runs again."""
    from scicot_core.models import load_model

    settings = Settings.from_env()
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    reused = load_student_rationales(rationale_files)
    found = find_adapters(adapters) if adapters else default_adapters(settings.adapters, settings.student)
    title = f"{dataset}/{split}" if dataset else Path(questions_file).stem
    out_dir = out_dir or Path("runs") / f"eval-{title.replace('/', '-')}"
    for variant in variants:
        stage = NEEDS_ADAPTER.get(variant)
        if stage and stage not in found:
            raise ConfigError(
                f"variant {variant} needs a {stage}/ adapter in the adapter set; train it with `scicot train --stage {stage}`."
            )
    checkpoint = GeneratedCheckpoint(out_dir / "generated.partial.jsonl", settings.student, found, MAX_RATIONALE_TOKENS)
    given = checkpoint.load()
    if given:
        click.echo(f"resuming: reusing {sum(map(len, given.values()))} rationales generated before in {checkpoint.path}")
    earlier = {i: Rationale(i, text, "student", "reused from an earlier run") for i, text in reused.items()}
    given.setdefault("two-stage", {}).update(earlier)
    student = Student(load_model(settings.student, settings.cache_dir, settings.offline, settings.threads), adapters=found)
    variants = available(student, variants or VARIANTS)
    with tqdm(desc="evaluating", unit="q", total=len(questions) * len(variants)) as bar:
        result = evaluate(student, questions, variants, batch_size, lambda v, n: bar.update(n), given, checkpoint.append)
    paths = write_report(result, out_dir, title)
    checkpoint.path.unlink(missing_ok=True)
    if db_path:
        _store_student_rationales(db_path, questions, result, settings)
    summary = {k: v for k, v in json.loads(paths["results.json"].read_text()).items()} | {"files": {k: str(v) for k, v in paths.items()}}
    click.echo(json.dumps(summary, indent=2) if as_json else paths["results.md"].read_text() + f"\nreport: {out_dir}")


class GeneratedCheckpoint:
    """Rationales an evaluation has generated so far, one JSON line each, so an interrupted run
    resumes without generating them again. Each line records what wrote it (base model, the
    adapter's path and a hash of its weights, the text format, the length limit); only lines
    written exactly as this run would write them are reused. A torn last line is ignored."""

    STAGE = {"two-stage": "rationale", "single-stage": "single-stage"}

    def __init__(self, path: Path, base_model: str, adapters: dict[str, Path], max_tokens: int):
        self.path = path
        self.writer = {v: _writer(base_model, adapters.get(stage), max_tokens) for v, stage in self.STAGE.items()}

    def load(self) -> dict[str, dict[str, Rationale]]:
        given: dict[str, dict[str, Rationale]] = {}
        if not self.path.exists():
            return given
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a torn last line: end it, so new lines start clean
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
                variant, rationale = row["variant"], row["rationale"]
                if self.writer.get(variant) == row["writer"] and isinstance(rationale, str):
                    given.setdefault(variant, {})[row["id"]] = Rationale(row["id"], rationale, "student", row["model_id"], row["ms"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return given

    def append(self, variant: str, rationales) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rationales:
                row = {"variant": variant, "id": r.question_id, "rationale": r.text, "model_id": r.model_id, "ms": r.duration_ms}
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
