"""Checks on everything written to the store; each failure says what to change. Rationales and
comments are plain text or Markdown: active HTML (scripts, event handlers) is refused here and
escaped again wherever text is shown."""

from __future__ import annotations

import re
import unicodedata

from scicot_core.errors import DataError

from .criteria import CRITERIA, CRITERION_NAMES, MAX_NAME_CHARS

CRITERIA_NAMES = CRITERION_NAMES

_ACTIVE_HTML = re.compile(
    r"<\s*/?\s*(script|iframe|object|embed|style|link|meta|form|svg|img|video|audio|base)\b|<[^>]*\bon[a-z]+\s*=|javascript\s*:",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")


def text(value, what: str, limit: int, allow_empty: bool = False) -> str:
    """A clean text field: a string, not empty (unless allowed), within `limit`, no control or active-HTML content."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{what} is not valid UTF-8; re-save it as UTF-8.") from None
    if not isinstance(value, str):
        raise DataError(f"{what} must be text, not {type(value).__name__}.")
    value = value.strip()
    if not value and not allow_empty:
        raise DataError(f"{what} is empty; write some text.")
    if len(value) > limit:
        raise DataError(f"{what} is {len(value):,} characters; keep it under {limit:,}.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in value):
        raise DataError(f"{what} contains control characters (such as NUL); remove them.")
    if _ACTIVE_HTML.search(value):
        raise DataError(f"{what} contains HTML such as <script>, <img> or an on...= handler; write plain text or Markdown.")
    return value


def name(value, what: str = "rater name") -> str:
    """A rater or reviewer name: letters, digits, space, `_ . -`, up to 64 characters."""
    if not isinstance(value, str) or not _NAME.match(value.strip()) or len(value.strip()) > MAX_NAME_CHARS:
        raise DataError(f"{what} {value!r} is not valid; use up to {MAX_NAME_CHARS} letters, digits, spaces, '_', '.' or '-'.")
    return value.strip()


def scores(values) -> dict[str, int]:
    """Every criterion scored with a whole number in its range, and nothing else."""
    if not isinstance(values, dict):
        raise DataError("scores must map each criterion to a number.")
    expected = {c.name for c in CRITERIA}
    unknown, missing = set(values) - expected, expected - set(values)
    if unknown or missing:
        raise DataError(f"scores need exactly {sorted(expected)}; unknown {sorted(unknown)}, missing {sorted(missing)}.")
    out = {}
    for c in CRITERIA:
        v = values[c.name]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise DataError(f"score for {c.name} must be a whole number from {c.minimum} to {c.maximum}.")
        try:
            number = float(v)
        except ValueError:
            raise DataError(f"score for {c.name} is {v!r}; give a whole number from {c.minimum} to {c.maximum}.") from None
        if number != int(number) or not c.minimum <= number <= c.maximum:
            raise DataError(f"score for {c.name} is {v!r}; give a whole number from {c.minimum} to {c.maximum}.")
        out[c.name] = int(number)
    return out


def choice(value, allowed: tuple[str, ...], what: str, optional: bool = False):
    """One of a fixed set of values."""
    if value in (None, "") and optional:
        return None
    if value not in allowed:
        raise DataError(f"{what} {value!r} is not one of {list(allowed)}.")
    return value
