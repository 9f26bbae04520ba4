"""The `scicot` command: ask a question of the two-stage student beside a teacher.

User mistakes end in one line saying what to do and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time

import click

from scicot_core.errors import ScicotError
from scicot_core.questions import Question, sample_items, typed_question
from scicot_core.settings import Settings

from .cli_teacher import teacher_option


class ScicotGroup(click.Group):
    """Turns domain errors into `Error: ...` and exit status 1, and a subcommand's usage errors
    into one `Error: ...` line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ScicotError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except click.UsageError as e:  # a bad option value: one line too, with where to look
            where = f" See '{e.ctx.command_path} --help'." if e.ctx else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=ScicotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scicot-studio")
def main():
    """SciCoT Studio: distil a teacher's chain-of-thought into a small two-stage student.

    Configuration comes from SCICOT_* environment variables (see the README).
    """


@functools.cache
def _lm(name: str, settings: Settings):
    from scicot_core.base_models import load_model

    return load_model(name, settings.cache_dir, settings.offline, settings.threads)


def _teacher(name: str, settings: Settings, question: Question, student_name: str):
    from scicot_core.teachers import StoredTeacher, get_teacher

    if name == "auto":
        samples = StoredTeacher.samples()
        if samples.has(question.id):
            return samples
        name = settings.teacher
    return get_teacher(name, settings, lambda: _lm(student_name, settings))


@main.command()
@click.option("--question", "text", help="The question text (or use --sample).")
@click.option("--choice", "choices", multiple=True, help="A choice; repeat 2 to 9 times. Labelled A, B, C ... in order.")
@click.option("--answer-key", help="The correct label, if known: the teacher then explains it (rationalization).")
@click.option("--sample", "sample_id", help="Ask a bundled sample question by id (see `scicot samples`).")
@teacher_option("auto", "Teacher: {names}, none; auto = stored reference for sample questions, else SCICOT_TEACHER.")
@click.option("--student", default=None, help="Student base model name or directory [default: SCICOT_STUDENT or smollm2-135m].")
@click.option(
    "--max-tokens",
    type=click.IntRange(1, 2048),
    default=None,
    help="Longest student rationale, in tokens [default: the student family's, 64].",
)
@click.option(
    "--samples", type=click.IntRange(min=1), default=1, show_default=True, help="Sample this many rationales and average stage 2 over them."
)
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True, help="With --samples > 1.")
@click.option("--seed", type=int, default=0, show_default=True, help="With --samples > 1: same seed, same rationales.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (with --samples, every rationale with its own answer).")
@click.option(
    "--memory/--no-memory",
    "with_memory",
    default=True,
    show_default=True,
    help="Also show the memory's facts for the question (SCICOT_MEMORY, built on first use) and stage 2's answer reading them.",
)
def ask(text, choices, answer_key, sample_id, teacher, student, max_tokens, samples, temperature, seed, as_json, with_memory):
    """Ask one question: teacher rationale, student rationale, answer with every choice's probability."""
    from scicot_core import asking, base_models
    from scicot_core.lm import Sampling
    from scicot_core.student import Student, default_adapters

    settings = Settings.from_env()
    question = _question(text, choices, answer_key, sample_id)
    student_name = student or settings.student
    adapters = default_adapters(settings.adapters, student_name)  # a bad SCICOT_ADAPTERS fails before the model loads
    start = time.perf_counter()
    lm = _lm(student_name, settings)
    timings = {"load_ms": _ms(start)}
    asked = _teacher(teacher, settings, question, student_name) if teacher != "none" else None
    model = Student(lm, adapters=adapters, max_rationale_tokens=max_tokens or base_models.max_tokens(student_name))
    sampling = Sampling(temperature, 0.95, seed) if samples > 1 else None
    events = {type(e): e for e in asking.ask(question, model, asked, samples, sampling, memory=_memory(settings) if with_memory else None)}
    wrote, texts, answered = events.get(asking.TeacherWrote), events[asking.StudentWrote], events[asking.Answered]
    if wrote:
        timings["teacher_ms"] = wrote.ms
    timings |= {"stage1_ms": texts.ms, "stage2_ms": answered.ms}
    result = _result(question, wrote.rationale if wrote else None, texts.texts[0], answered.answer, texts.model_id, timings)
    read = events.get(asking.MemoryRead)
    if read:
        timings["memory_ms"] = read.ms
        result["memory"] = {
            "facts": [f.shown() for f in read.facts],
            "answer": {"label": read.answer.label, "text": read.answer.text, "probabilities": read.answer.probabilities},
        }
    if samples > 1:
        result["samples"] = [
            {"rationale": t, "label": a.label, "probabilities": a.probabilities} for t, a in zip(texts.texts, answered.each)
        ]
    click.echo(json.dumps(result, indent=2) if as_json else _render(result))


def _memory(settings: Settings):
    from scicot_core import memory

    return memory.Memory(memory.ensure(settings.memory_file, settings.data_dir))


def _question(text, choices, answer_key, sample_id) -> Question:
    from scicot_core.errors import ConfigError

    if sample_id:
        found = [q for q, _ in sample_items() if q.id == sample_id]
        if not found:
            raise ConfigError(f"no sample question {sample_id!r}; list them with `scicot samples`.")
        return found[0]
    if not text or len(choices) < 2:
        raise ConfigError('give --question "..." and at least two --choice options (or --sample ID).')
    return typed_question(text, choices, answer_key)


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def _result(question, teacher_rationale, rationale: str, answer, student_id, timings) -> dict:
    teacher = None
    if teacher_rationale is not None:
        teacher = {"model": teacher_rationale.model_id, "note": teacher_rationale.note, "rationale": teacher_rationale.text}
    return {
        "question": question.to_ai2(),
        "teacher": teacher,
        "student": {"model": student_id, "rationale": rationale},
        "answer": {
            "label": answer.label,
            "text": answer.text,
            "probabilities": answer.probabilities,
            "correct": answer.is_correct(question),
        },
        "timings_ms": timings,
    }


def _render(result: dict) -> str:
    q = result["question"]
    lines = [f"Question: {q['question']['stem']}"]
    lines += [f"  ({c['label']}) {c['text']}" for c in q["question"]["choices"]]
    if result["teacher"]:
        t = result["teacher"]
        lines += ["", f"Teacher rationale [{t['model']}; {t['note']}]:", f"  {t['rationale']}"]
    lines += ["", f"Student rationale [{result['student']['model']}]:", f"  {result['student']['rationale']}"]
    for n, sample in enumerate(result.get("samples", []), 1):
        lines += [f"  sample {n}: ({sample['label']}) {sample['rationale']}"]
    if result.get("memory"):
        m = result["memory"]
        lines += ["", "Facts from the memory:"] + [f"  {n}. {f['text']}  [{f['source']}]" for n, f in enumerate(m["facts"], 1)]
        lines += [f"  stage 2 reading them (retrieve-then-read): ({m['answer']['label']}) {m['answer']['text']}"]
    a = result["answer"]
    verdict = {True: "  (correct)", False: "  (wrong)", None: ""}[a["correct"]]
    averaged = f" (averaged over {len(result['samples'])} rationales)" if result.get("samples") else ""
    lines += ["", f"Answer: ({a['label']}) {a['text']}{verdict}{averaged}"]
    for label, p in a["probabilities"].items():
        lines.append(f"  {label}  {p:6.1%}  {'#' * round(p * 30)}")
    lines += ["", "Timings: " + ", ".join(f"{k[:-3]} {v} ms" for k, v in result["timings_ms"].items())]
    return "\n".join(lines)


@main.command()
def samples():
    """List the bundled sample questions (ids for `scicot ask --sample`)."""
    for question, _ in sample_items():
        click.echo(f"{question.id:28} {question.stem[:70]}")


def _register_subgroups() -> None:
    from .cli_compare import compare
    from .cli_db import db
    from .cli_memory import memory
    from .cli_method import eval_, sample, teach, train
    from .cli_run import run

    for command in (db, teach, train, sample, eval_, compare, run, memory):
        main.add_command(command)


_register_subgroups()

if __name__ == "__main__":
    main()
