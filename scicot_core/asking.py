"""Asking one question of a teacher and the two-stage student, as a stream of small events that
the app and the `scicot ask` command each render: the teacher's rationale, stage 1's text as it
grows, the answer (averaged over k sampled rationales when k > 1) and the baselines the
student has adapters for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import variants
from .lm import Sampling
from .memory import as_rationale
from .questions import Question, Rationale
from .student import Answer, Student, mean_answer
from .teachers import Teacher


@dataclass(frozen=True)
class TeacherAsking:
    """A teacher is about to be asked (a remote one may take seconds)."""

    model_id: str


@dataclass(frozen=True)
class TeacherWrote:
    """The teacher's rationale; `stored` when it was given rather than asked for (then ms is 0)."""

    rationale: Rationale
    ms: int
    stored: bool = False


@dataclass(frozen=True)
class StudentWriting:
    """Stage 1's text so far (only when one rationale is written: sampled ones come at once)."""

    text: str


@dataclass(frozen=True)
class StudentWrote:
    """Stage 1's rationales (one, or k sampled) and the student that wrote them."""

    texts: list[str]
    model_id: str
    ms: int


@dataclass(frozen=True)
class Answered:
    """Stage 2: the answer (averaged over the rationales when there are several) and each one's own."""

    answer: Answer
    each: list[Answer]
    ms: int


@dataclass(frozen=True)
class BaselineAnswered:
    """A baseline's answer to the same question, for a baseline whose adapter the student has."""

    name: str
    answer: Answer


@dataclass(frozen=True)
class MemoryRead:
    """Retrieve-then-read: the memory's facts for the question (with their sources) and stage 2's
    answer reading them in place of a rationale."""

    facts: list  # memory.Fact, each with its sources
    answer: Answer
    ms: int


Event = TeacherAsking | TeacherWrote | StudentWriting | StudentWrote | Answered | BaselineAnswered | MemoryRead
MEMORY_K = 3  # facts stage 2 reads when asked with the memory


def ask(
    question: Question,
    student: Student,
    teacher: Teacher | Rationale | None = None,
    samples: int = 1,
    sampling: Sampling | None = None,
    baselines: bool = False,
    memory=None,
) -> Iterator[Event]:
    """Teacher (asked, given as a stored rationale, or none), then stage 1, stage 2 and, with
    `baselines`, the baselines: each step as an event. `samples` > 1 needs `sampling`. With a
    `memory` (scicot_core.memory.Memory), stage 2 also reads its top facts for the question
    (never the question's own), as retrieve-then-read."""
    if isinstance(teacher, Rationale):
        yield TeacherWrote(teacher, 0, stored=True)
    elif teacher is not None:
        yield TeacherAsking(teacher.model_id)
        start = time.perf_counter()
        [r] = teacher.rationales([question], "rationalize" if question.answer_key else "cot")
        yield TeacherWrote(r, _ms(start))
    start = time.perf_counter()
    texts = yield from _stage1(question, student, samples, sampling)
    yield StudentWrote(texts, student.model_id, _ms(start))
    start = time.perf_counter()
    [each] = student.answers_over([question], [texts])
    answer = mean_answer(question, each, "two-stage") if samples > 1 else each[0]
    yield Answered(answer, each, _ms(start))
    if baselines:
        yield from _baselines(question, student)
    if memory is not None and student.has("answer"):
        start = time.perf_counter()
        facts = memory.with_sources(memory.for_question(question, MEMORY_K, exclude_own=True))
        [each] = student.answers_over([question], [[as_rationale(facts)]])
        yield MemoryRead(facts, each[0], _ms(start))


def _stage1(question: Question, student: Student, samples: int, sampling: Sampling | None):
    if samples == 1:
        text = ""
        for text in student.stream_rationale(question):
            yield StudentWriting(text)
        return [text]
    [rationales] = student.sample_rationales([question], samples, sampling, batch_size=samples)
    return [r.text for r in rationales]


def _baselines(question: Question, student: Student) -> Iterator[BaselineAnswered]:
    """Every variant of the table that has its own adapter loaded, apart from the two-stage mix
    (it needs a weight chosen on dev; `scicot eval` reports it)."""
    for name in variants.available(student.has):
        if not variants.get(name).needs or name == "two-stage+prior":
            continue
        if variants.get(name).generates:
            [r] = student.rationales([question], stage=name)
            [a] = student.single_stage([question], [r.text])
        else:
            [a] = {"answer-only": student.answer_only, "step-by-step": student.step_by_step}[name]([question])
        yield BaselineAnswered(name, a)


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
