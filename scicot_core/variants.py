"""The variants a student can be run as, in one table that evaluation, the CLI and the app read:
each names the adapters it needs, the adapters it uses when present, and whether it writes
rationales. Adding a variant is one row here and one branch in `evaluate._answers`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class Variant:
    name: str
    needs: tuple[str, ...]  # stages whose adapters must be loaded
    uses: tuple[str, ...]  # stages whose adapters it runs with when loaded (for its model label)
    generates: bool  # writes rationales before answering
    how: str
    reads_memory: bool = False  # reads facts retrieved from the memory (scicot_core/memory.py)


TABLE: tuple[Variant, ...] = (
    Variant("zero-shot", (), (), False, "the bare base scores each choice's text after the question"),
    Variant("answer-only", ("answer-only",), ("answer-only",), False, "fine-tuned to score the answer after the question, no rationale"),
    Variant(
        "step-by-step",
        ("step-by-step",),
        ("step-by-step",),
        False,
        "one adapter trained on answers and rationales as two tasks; answers without writing one",
    ),
    Variant("single-stage", ("single-stage",), ("single-stage",), True, "one adapter writes a rationale, then scores the answer after it"),
    Variant(
        "two-stage",
        (),
        ("rationale", "answer"),
        True,
        "stage 1 writes k rationales, stage 2 scores the choices after each; probabilities averaged",
    ),
    Variant(
        "two-stage+prior",
        ("answer-only",),
        ("rationale", "answer", "answer-only"),
        True,
        "two-stage's distribution mixed log-linearly with answer-only's (weight chosen on dev)",
    ),
    Variant(
        "two-stage+memory",
        (),
        ("rationale", "answer"),
        True,
        "stage 1 writes its rationale after the memory's top-k facts for the question; stage 2 reads the rationale",
        reads_memory=True,
    ),
    Variant(
        "answer-only+memory",
        ("answer-only",),
        ("answer-only",),
        False,
        "answer-only scoring the choices after the memory's top-k facts and the question (the baseline given the same facts)",
        reads_memory=True,
    ),
    Variant(
        "retrieve-then-read",
        (),
        ("answer",),
        False,
        "stage 2 reads the memory's top-k facts for the question in place of a rationale; nothing is generated",
        reads_memory=True,
    ),
)
VARIANTS: dict[str, Variant] = {v.name: v for v in TABLE}
NAMES = tuple(VARIANTS)


def get(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose one of {list(NAMES)}.")
    return VARIANTS[name]


def available(has, wanted=NAMES, memory: bool = False) -> list[str]:
    """The variants whose needed adapters are loaded (`has(stage)` says which are), and those
    that read the memory only when there is one (`memory`)."""
    return [name for name in wanted if all(has(stage) for stage in get(name).needs) and (memory or not get(name).reads_memory)]


PRIOR_FILE = "prior.json"
DEFAULT_PRIOR_WEIGHT = 0.5


def prior_weight(adapters: Path | None) -> float:
    """The two-stage+prior weight saved with an adapter set (chosen on dev), else the default."""
    path = Path(adapters) / PRIOR_FILE if adapters else None
    if path is None or not path.exists():
        return DEFAULT_PRIOR_WEIGHT
    try:
        weight = float(json.loads(path.read_text())["weight"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a prior file ({e}); delete it or write {{'weight': 0.5}}.") from None
    if not 0 <= weight <= 1:
        raise ConfigError(f"{path}: weight {weight} is outside [0, 1].")
    return weight


def save_prior_weight(adapters: Path, weight: float, chosen_on: dict) -> Path:
    """Keep the weight chosen on dev beside the adapters it belongs to, with how it was chosen."""
    path = Path(adapters) / PRIOR_FILE
    path.write_text(json.dumps({"weight": weight, "chosen_on": chosen_on}, indent=2) + "\n")
    return path
