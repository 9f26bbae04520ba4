"""What a change to the memory does: which questions now retrieve other facts, and how stage 2's
answer reading them moves, before against after. The app shows it to a reviewer whose decision
just put a rationale's facts into the memory (or took them out), as a retrain's comparison shows
what a retrain did.

Only the questions nearest to the changed facts are checked (those sharing the most query words
with them): BM25 can only bring a fact to a question that shares a word with it, and the nearest
are the ones whose top facts can move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import bm25
from .memory import Fact, Memory, as_rationale, joint_query, query_terms
from .questions import Question
from .student import Answer, Student

T = TypeVar("T")
CHECKED = 8  # the nearest questions whose facts are compared (each costs two searches and two stage-2 readings)


@dataclass(frozen=True)
class Change:
    """One question whose top facts a change moved, and stage 2's answer reading each set."""

    question: Question
    before: list[Fact]
    after: list[Fact]
    answer_before: Answer | None = None
    answer_after: Answer | None = None

    @property
    def new(self) -> list[Fact]:
        """The facts it reads now that it did not read before."""
        seen = {f.text for f in self.before}
        return [f for f in self.after if f.text not in seen]

    @property
    def gone(self) -> list[Fact]:
        seen = {f.text for f in self.after}
        return [f for f in self.before if f.text not in seen]


@dataclass(frozen=True)
class Effect:
    checked: int  # questions compared
    changes: list[Change]  # those whose top facts moved

    def right(self, when: str) -> tuple[int, int]:
        """(right, scored) over the changed questions with a key, stage 2 reading the facts of `when`."""
        pairs = [(c.question, getattr(c, f"answer_{when}")) for c in self.changes]
        scored = [(q, a) for q, a in pairs if a is not None and q.answer_key is not None]
        return sum(a.label == q.answer_key for q, a in scored), len(scored)


def nearest(pool: Sequence[Question], texts: Sequence[str], n: int = CHECKED) -> list[Question]:
    """The `n` questions of `pool` sharing the most query terms (stemmed as the memory stems
    them) with `texts`, at least one."""
    stemmer = bm25.Stemmer()

    def terms(text: str) -> set[str]:
        found = query_terms(text)
        stems = stemmer(found)
        return {t for w in found for t in stems[w]}

    wanted = terms(" ".join(texts))
    if not wanted:
        return []
    shared = [(len(wanted & terms(joint_query(q))), i) for i, q in enumerate(pool)]
    ranked = sorted((s for s in shared if s[0] > 0), key=lambda s: (-s[0], s[1]))
    return [pool[i] for _, i in ranked[:n]]


def measure(
    memory: Memory,
    pool: Sequence[Question],
    texts: Sequence[str],
    change: Callable[[], T],
    k: int,
    student: Student | None = None,
    n: int = CHECKED,
) -> tuple[T, Effect]:
    """Run `change` (a write to `memory` bringing in or taking out the facts `texts`) and return
    its result with its effect on the `n` questions of `pool` nearest to those facts: each one's
    top `k` facts before and after, and, with a student that has stage 2, its answer reading
    each. A question never reads the facts of its own rationales, as in the app's ask."""
    checked = nearest(pool, texts, n)
    top = lambda: [memory.with_sources(memory.for_question(q, k, exclude_own=True)) for q in checked]  # noqa: E731
    before = top()  # with their sources now: a fact the change takes out has none after it
    result = change()
    moved = [(q, b, a) for q, b, a in zip(checked, before, top()) if [f.text for f in b] != [f.text for f in a]]
    read: tuple[list, list] = ([None] * len(moved), [None] * len(moved))
    if moved and student is not None and student.has("answer"):
        questions = [q for q, _, _ in moved]
        read = tuple([each[0] for each in student.answers_over(questions, [[as_rationale(m[side])] for m in moved])] for side in (1, 2))
    return result, Effect(len(checked), [Change(q, b, a, rb, ra) for (q, b, a), rb, ra in zip(moved, *read)])
