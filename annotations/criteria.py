"""What raters judge, declared once as data: the same lists drive the app's controls and the
store's validation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str
    low: str
    high: str
    minimum: int = 1
    maximum: int = 5


CRITERIA: tuple[Criterion, ...] = (
    Criterion("correctness", "Are the facts and the reasoning correct?", "wrong", "fully correct"),
    Criterion("clarity", "Is it clear and easy to follow?", "confusing", "very clear"),
    Criterion("supports_answer", "Does it lead to the answer it ends with?", "does not", "fully supports"),
)
CRITERION_NAMES = tuple(c.name for c in CRITERIA)

# Which rationale the rater prefers for the question, when both a teacher and a student wrote one.
PREFERENCES = ("teacher", "student", "tie", "both_bad")
STATUSES = ("draft", "submitted", "discarded")
DECISIONS = ("accept", "reject", "edit")
SOURCES = ("teacher", "student", "human")

# Limits on free text written through the store.
MAX_RATIONALE_CHARS = 8_000
MAX_COMMENT_CHARS = 2_000
MAX_NAME_CHARS = 64
