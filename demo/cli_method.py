"""`scicot teach | train | eval`: the Sci-CoT method end to end from the shell."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import click
from tqdm import tqdm

from scicot_core import formats
from scicot_core import variants as variant_table
from scicot_core.distillation_set import in_fold, load_student_rationales, load_student_samples, parse_fold
from scicot_core.errors import ConfigError, DataError, TeacherError
from scicot_core.evaluate import VARIANTS, available, evaluate, write_report
from scicot_core.formats import TEACHER_MODES
from scicot_core.generated import GeneratedCheckpoint, memory_writer
from scicot_core.memory import MAX_FACTS, MODES, Memory, as_rationale
from scicot_core.questions import DATASETS, SPLITS, Rationale, load_jsonl, load_split
from scicot_core.settings import Settings
from scicot_core.student import MAX_RATIONALE_TOKENS, STAGES, Student, default_adapters, find_adapters, saved_sentence_cap
from scicot_core.train import TrainConfig, setting
from scicot_core.train import main as run_train

from .cli_teacher import teacher_option

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [default: SCICOT_DATA_DIR]."
)


# Long runs pay the merge (seconds per stage) back many times over; see docs/benchmarks.md.
merge_option = click.option(
    "--merge/--attach",
    default=True,
    show_default=True,
    help="Run stage 1 and stage 2 each on a copy of the base with its adapter merged in (faster, 540 MB more memory per "
    "stage for the default model; the same text and answers up to float rounding), or keep the adapters attached to one base.",
)


def question_options(fn):
    """--dataset/--split or --questions, --limit and --data-dir: which questions a command reads."""
    options = [
        click.option("--dataset", type=click.Choice(sorted(DATASETS))),
        click.option("--split", type=click.Choice(SPLITS)),
        click.option(
            "--questions",
            "questions_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Any AI2-layout question file (2 to 9 choices) instead.",
        ),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N questions."),
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
    return qs[:limit] if limit is not None else qs


@click.command()
@question_options
@teacher_option(None, "Teacher name: {names} [default: SCICOT_TEACHER].")
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
    from scicot_core.base_models import load_model
    from scicot_core.teach_split import teach as run_teach
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
@click.option(
    "--facts",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="(rationale, answer-only) the memory's facts for each training question, put before it: "
    "`scicot memory retrieve --split train` output, which never gives a question its own facts.",
)
@click.option("--full", is_flag=True, help="Full fine-tuning instead of LoRA.")
@click.option(
    "--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Any TrainConfig field, e.g. --set epochs=2 --set lora_r=16."
)
@data_dir_option
def train(
    stage, data, sources, max_per_question, correct_only, extra_questions, output_dir, student_rationales, facts, full, overrides, data_dir
):
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
        facts=list(facts),
        data_dir=str(data_dir or settings.data_dir or "") or None,
    )
    for item in overrides:
        _override(config, item)
    out = run_train(config, settings.cache_dir, settings.offline)
    click.echo(f"trained {stage}: {out}")


def _override(config: TrainConfig, item: str) -> None:
    name, _, raw = item.partition("=")
    kind = {f.name: str(f.type) for f in fields(TrainConfig)}.get(name, "")
    if kind.startswith("str"):  # text as given, even when it looks like JSON
        value = None if kind.endswith("| None") and raw == "null" else raw
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    setattr(config, name, setting(name, value, f"--set {name}={raw!r}"))


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
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
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
    "--max-tokens", type=click.IntRange(min=1), default=MAX_RATIONALE_TOKENS, show_default=True, help="Longest rationale, in tokens."
)
@click.option(
    "--temperature", type=click.FloatRange(min=0), default=0.7, show_default=True, help="Sampling temperature when --samples > 1."
)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling (same seed, same rationales).")
@click.option("--prior-weight", type=click.FloatRange(0, 1), help="two-stage+prior's weight [default: the adapters' prior.json, else 0.5].")
@click.option(
    "--max-sentences",
    type=click.IntRange(min=0),
    help="Cut stage 1's rationales after N sentences (0: no cap) [default: the cap saved with the rationale adapter, else none].",
)
@click.option(
    "--memory",
    "memory_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A memory (scicot memory build): retrieve-then-read, two-stage+memory and answer-only+memory read its top facts for each question.",
)
@click.option("--memory-k", type=click.IntRange(1, MAX_FACTS), default=3, show_default=True, help="Facts per question from the memory.")
@click.option("--memory-mode", type=click.Choice(MODES), default="joint", show_default=True, help="How a question is put to the memory.")
@merge_option
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
    max_tokens,
    temperature,
    top_p,
    seed,
    prior_weight,
    max_sentences,
    memory_path,
    memory_k,
    memory_mode,
    merge,
    as_json,
    data_dir,
):
    """Accuracy of zero-shot, answer-only, step-by-step, single-stage, two-stage, two-stage+prior
    and (with --memory) two-stage+memory, answer-only+memory and retrieve-then-read on the same questions. Two-stage with --samples K averages stage 2 over K sampled rationales
    (self-consistency) and also reports the majority vote and accuracy against k.

    An interrupted run resumes where it stopped: the rationales it had generated, and stage 2's
    answers to them, are kept in OUT/generated.partial.jsonl and reused when the same command
    runs again."""
    from scicot_core.base_models import family, load_model
    from scicot_core.lm import Sampling

    settings = Settings.from_env()
    sampling = Sampling(temperature, top_p, seed) if samples > 1 else None
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    reused = load_student_samples(rationale_files)
    found = default_adapters(adapters or settings.adapters, settings.student)
    title = f"{dataset}/{split}" if dataset else Path(questions_file).stem
    out_dir = out_dir or Path("runs") / f"eval-{title.replace('/', '-')}"
    for variant in variants:
        if variant_table.get(variant).reads_memory and memory_path is None:
            raise ConfigError(f"variant {variant} reads the memory; give --memory FILE (build one with `scicot memory build`).")
        missing = [stage for stage in variant_table.get(variant).needs if stage not in found]
        if missing:
            raise ConfigError(
                f"variant {variant} needs a {missing[0]}/ adapter in the adapter set; train it with `scicot train --stage {missing[0]}`."
            )
    shipped = family(settings.student).adapters if family(settings.student) else None
    adapter_folder = adapters or settings.adapters or (shipped if found else None)
    weight = prior_weight if prior_weight is not None else variant_table.prior_weight(adapter_folder)
    cap = (max_sentences if max_sentences is not None else saved_sentence_cap(found.get("rationale"))) or None
    read = memory_writer(memory_path, memory_k, memory_mode)
    checkpoint = GeneratedCheckpoint(out_dir / "generated.partial.jsonl", settings.student, found, max_tokens, samples, sampling, cap, read)
    given = checkpoint.load()
    if given:
        kept = checkpoint.scored.get("two-stage", {})
        answered = sum(  # answers kept for exactly the rationales to be read now
            kept.get(i, ([], []))[0] == [formats.rationale_body(r.text) for r in rs[:samples]]
            for i, rs in given.get("two-stage", {}).items()
        )
        click.echo(
            f"resuming: reusing {sum(map(len, given.values()))} questions' rationales generated before in {checkpoint.path}"
            + (f", and stage 2's answers for {answered} of them" if answered else "")
        )
    by_id = {q.id: q for q in questions}
    for i, texts in reused.items():  # cut as stage 1 would have stopped them; what they concluded kept
        given.setdefault("two-stage", {})[i] = [
            Rationale(
                i,
                formats.first_sentences(t, cap),
                "student",
                "reused from an earlier run",
                meta={"conclusion": c or (formats.rationale_conclusion(t, by_id[i]) if i in by_id else None)},
            )
            for t, c in texts
        ]
    student = Student(
        load_model(settings.student, settings.cache_dir, settings.offline, settings.threads),
        adapters=found,
        max_rationale_tokens=max_tokens,
        max_sentences=cap or 0,
        merge=merge,
    )
    if merge:
        student.merged_copies()  # built before the first question, so that every one runs merged
    memory = Memory(memory_path) if memory_path else None
    facts = _memory_facts(memory, memory_k, memory_mode) if memory else None
    variants = available(student, variants or VARIANTS, memory=facts is not None)
    with tqdm(desc="evaluating", unit="q", total=len(questions) * len(variants)) as bar:
        result = evaluate(
            student,
            questions,
            variants,
            batch_size,
            lambda v, n: bar.update(n),
            given,
            checkpoint.append,
            samples,
            sampling,
            weight,
            checkpoint.scored,
            checkpoint.append_answers,
            facts,
        )
    if memory:
        memory.close()
    paths = write_report(result, out_dir, title)
    checkpoint.path.unlink(missing_ok=True)
    if db_path:
        _store_student_rationales(db_path, questions, result, settings)
    summary = {k: v for k, v in json.loads(paths["results.json"].read_text()).items()} | {"files": {k: str(v) for k, v in paths.items()}}
    click.echo(json.dumps(summary, indent=2) if as_json else paths["results.md"].read_text() + f"\nreport: {out_dir}")


def _memory_facts(memory, k: int, mode: str):
    """question -> the memory's top-k facts as one text (never the question's own)."""
    return lambda q: as_rationale(memory.for_question(q, k, mode, exclude_own=True))


@click.command()
@question_options
@click.option("--adapters", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder with the rationale/ adapter.")
@click.option("--samples", type=click.IntRange(min=1), default=4, show_default=True, help="Rationales per question.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=MAX_RATIONALE_TOKENS, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Sequences per generation batch.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL of {id, rationale, conclusion}; appended, resumable.",
)
@click.option(
    "--fold",
    metavar="K/N",
    help="Only the questions of fold K of N: those a stage 1 trained with --set hold_out=K/N never saw (cross-fitting).",
)
@click.option(
    "--facts",
    "facts_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The memory's facts for each question (`scicot memory retrieve` output), put before it as a stage 1 trained with --facts reads them.",
)
@merge_option
def sample(
    dataset,
    split,
    questions_file,
    limit,
    data_dir,
    adapters,
    samples,
    temperature,
    top_p,
    seed,
    max_tokens,
    batch_size,
    out,
    fold,
    facts_files,
    merge,
):
    """Sample the student's own rationales for training questions (right and wrong alike), for
    stage 2's robust mix: `scicot train --stage answer --student-rationales OUT`."""
    from scicot_core.base_models import load_model
    from scicot_core.lm import Sampling

    settings = Settings.from_env()
    held_out = parse_fold(fold) if fold else None
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    if held_out:
        questions = [q for q in questions if in_fold(q.id, held_out)]
    found = find_adapters(adapters)
    if "rationale" not in found:
        raise ConfigError(f"{adapters} has no rationale/ adapter; train one with `scicot train --stage rationale`.")
    done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    todo = [q for q in questions if q.id not in done]
    student = Student(
        load_model(settings.student, settings.cache_dir, settings.offline, settings.threads),
        adapters={"rationale": found["rationale"]},
        max_rationale_tokens=max_tokens,
        merge=merge,
    )
    if merge:
        student.merged_copies()
    facts = {i: texts[0] for i, texts in load_student_rationales(facts_files).items() if texts}
    per_call = max(1, batch_size // samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(todo), desc="sampling", unit="q") as bar, open(out, "a", encoding="utf-8") as f:
        for i in range(0, len(todo), per_call):
            part = todo[i : i + per_call]
            sampling = Sampling(temperature, top_p, seed + i)
            given = [facts.get(q.id, "") for q in part] if facts else None
            batch = student.sample_rationales(part, samples, sampling, batch_size, stop=formats.rationale_concluded, facts=given)
            for rs in batch:
                for r in rs:
                    f.write(json.dumps({"id": r.question_id, "rationale": r.text, "conclusion": r.meta["conclusion"]}) + "\n")
            f.flush()
            bar.update(len(part))
    click.echo(f"{out}: {len(todo)} questions sampled ({len(done)} were there already), {samples} rationales each")


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
