"""What raters judge, declared once as data: each criterion with its question and its scale.
The same table drives the app's controls, the CLI, the store's validation, statistics, agreement
and export; adding a criterion is one line here.

Readers look the table up when they run (`criteria.CRITERIA`, `names()`), never copy it at import.
A rating stores the criteria that existed when it was made: one made before a criterion was added
lacks it, and counts as not rated on that criterion (not as an error, nor as a zero)."""

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

    @property
    def label(self) -> str:
        """The name as a reader sees it: `supports_answer` is "Supports answer"."""
        return self.name.replace("_", " ").capitalize()

    @property
    def values(self) -> tuple[int, ...]:
        """Every score a rater may give, lowest first."""
        return tuple(range(self.minimum, self.maximum + 1))


CRITERIA: tuple[Criterion, ...] = (
    Criterion("correctness", "Are the facts and the reasoning correct?", "wrong", "fully correct"),
    Criterion("clarity", "Is it clear and easy to follow?", "confusing", "very clear"),
    Criterion("supports_answer", "Does it lead to the answer it ends with?", "does not", "fully supports"),
)


def names() -> tuple[str, ...]:
    """The names of the criteria, in table order."""
    return tuple(c.name for c in CRITERIA)


def scale() -> tuple[int, int]:
    """(lowest, highest) score over every criterion: the range of a mean score."""
    return min(c.minimum for c in CRITERIA), max(c.maximum for c in CRITERIA)


# Which rationale the rater prefers for the question, when both a teacher and a student wrote one.
PREFERENCES = ("teacher", "student", "tie", "both_bad")
PREFERENCE_LABELS = {"teacher": "Teacher's", "student": "Student's", "tie": "Tie", "both_bad": "Both bad"}
STATUSES = ("draft", "submitted", "discarded")
DECISIONS = ("accept", "reject", "edit")
SOURCES = ("teacher", "student", "human")

# Limits on free text written through the store.
MAX_RATIONALE_CHARS = 8_000
MAX_COMMENT_CHARS = 2_000
MAX_NAME_CHARS = 64
