"""Checks on everything written to the store, and on the store file itself; each failure says
what to change.

Every stored text field (question ids, stems, choices and labels; rationales, notes, comments,
reasons) goes through `text()`. Text is plain text or Markdown, escaped again wherever it is
shown; refusing active content here means safety never rests on a renderer's sanitiser alone.

Active content is looked for after decoding HTML entities (repeatedly, so `&amp;#106;` is `j`)
and, inside link targets and scheme names, after dropping the characters browsers skip there
(tabs, newlines and other control or invisible characters, so `java&#x09;script:` is caught):
- a tag that runs or loads something (<script>, <iframe>, <img>, <svg>, <style>, ...) or an
  `on...=` event handler inside any tag;
- a `javascript:` or `vbscript:` scheme, anywhere;
- a link target whose scheme is not http, https or mailto (relative targets and #anchors are
  fine): Markdown `[x](target)`, `![x](target)`, `[x]: target`, `<scheme:...>`, and URL
  attributes such as `href=`, `src=` inside a tag;
- a data URL in running text: `data:` followed at once by a media type and `,` or `;`
  (`data:text/html,...`, `data:image/svg+xml;base64,...`), or by `,` alone.
So prose keeps working: "Data: the table shows", "ratio 3:4", "x < y > z", "H2O", "<Step 1: ...>";
only `data:` used as a link or URL is refused.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from pathlib import Path

from scicot_core.errors import ConfigError, DataError

from . import criteria
from .criteria import MAX_NAME_CHARS

_ACTIVE_TAG = re.compile(
    r"<\s*/?\s*(script|iframe|object|embed|style|link|meta|form|svg|img|video|audio|base)\b|<[^<>]*\bon[a-z]+\s*=",
    re.IGNORECASE,
)
_SCRIPT_SCHEME = re.compile(r"(java|vb)script\s*:", re.IGNORECASE)
_SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):(?=\S)", re.IGNORECASE)
_MD_LINK = re.compile(r"\]\(\s*<?\s*([^\s)>]*)")
_MD_REFERENCE = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?(.*)$", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.\-]{1,31}:[^\s<>]*)>", re.IGNORECASE)
_URL_ATTRIBUTE = re.compile(
    r"<[^<>]*?\b(?:href|src|srcset|action|formaction|data|poster|background|cite|codebase|lowsrc|dynsrc|longdesc|xlink:href)"
    r"\s*=\s*[\"'`]?([^\s\"'`>]*)",
    re.IGNORECASE,
)
_DATA_URL = re.compile(r"\bdata:(?:[a-z]+/[a-z0-9.+\-]+\s*[;,]|,)", re.IGNORECASE)
SQLITE_HEADER = b"SQLite format 3\x00"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")


def text(value, what: str, limit: int, allow_empty: bool = False, drop_controls: bool = False) -> str:
    """A clean text field: a string, not empty (unless allowed), within `limit`, no control or
    active content. `drop_controls` removes control characters instead of refusing them: published
    questions carry a few stray ones (ARC-Challenge dev NYSEDREGENTS_2014_8_20 has two U+0002)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{what} is not valid UTF-8; re-save it as UTF-8.") from None
    if not isinstance(value, str):
        raise DataError(f"{what} must be text, not {type(value).__name__}.")
    if drop_controls:
        value = "".join(ch for ch in value if unicodedata.category(ch) != "Cc" or ch in "\n\t\r")
    value = value.strip()
    if not value and not allow_empty:
        raise DataError(f"{what} is empty; write some text.")
    if len(value) > limit:
        raise DataError(f"{what} is {len(value):,} characters; keep it under {limit:,}.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in value):
        raise DataError(f"{what} contains control characters (such as NUL); remove them.")
    problem = active_content(value)
    if problem:
        raise DataError(f"{what} contains {problem}; write plain text or Markdown, with links only to http(s) or mailto addresses.")
    return value


def active_content(value: str) -> str | None:
    """What active content `value` holds (see the module docstring), or None."""
    decoded = _decode(value)
    compact = _compact(decoded)
    if _ACTIVE_TAG.search(decoded):
        return "HTML such as <script>, <img> or an on...= handler"
    found = _SCRIPT_SCHEME.search(compact)
    if found:
        return f"a {found.group(1).lower()}script: link"
    targets = _MD_LINK.findall(compact) + _URL_ATTRIBUTE.findall(compact) + _AUTOLINK.findall(compact)
    targets += [_compact(t) for t in _MD_REFERENCE.findall(decoded)]
    for target in targets:
        scheme = _SCHEME.match(target.strip())
        if scheme and scheme.group(1).lower() not in _SAFE_SCHEMES:
            return f"a link to a {scheme.group(1).lower()}: address"
    if _DATA_URL.search(decoded):
        return "a data: URL"
    return None


def _decode(value: str) -> str:
    """HTML entities decoded until nothing changes (bounded: each round only shortens the text)."""
    for _ in range(10):
        decoded = html.unescape(value)
        if decoded == value:
            break
        value = decoded
    return value


def _compact(value: str) -> str:
    """Without the characters a browser skips inside a URL: tabs, newlines, controls, invisibles."""
    return "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf"))


def name(value, what: str = "rater name") -> str:
    """A rater or reviewer name: letters, digits, space, `_ . -`, up to 64 characters."""
    if not isinstance(value, str) or not _NAME.match(value.strip()) or len(value.strip()) > MAX_NAME_CHARS:
        raise DataError(f"{what} {value!r} is not valid; use up to {MAX_NAME_CHARS} letters, digits, spaces, '_', '.' or '-'.")
    return value.strip()


def scores(values) -> dict[str, int]:
    """Every criterion of `criteria.CRITERIA` scored with a whole number in its range, and nothing else."""
    if not isinstance(values, dict):
        raise DataError("scores must map each criterion to a number.")
    expected = set(criteria.names())
    unknown, missing = set(values) - expected, expected - set(values)
    if unknown or missing:
        raise DataError(f"scores need exactly {sorted(expected)}; unknown {sorted(unknown)}, missing {sorted(missing)}.")
    out = {}
    for c in criteria.CRITERIA:
        v = values[c.name]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise DataError(f"score for {c.name} must be a whole number from {c.minimum} to {c.maximum}.")
        try:
            number = float(v)
        except ValueError:
            raise DataError(f"score for {c.name} is {v!r}; give a whole number from {c.minimum} to {c.maximum}.") from None
        if not math.isfinite(number) or number != int(number) or not c.minimum <= number <= c.maximum:
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


def store_file(path: Path) -> None:
    """Refuse, before SQLite touches it, a path that is not a store: a folder, a device such as
    /dev/null, or a file that is not SQLite (opening those would fail late or write beside them)."""
    message = f"{path} is not an SQLite store file; point SCICOT_DB (or --db) at a .db file."
    if path.exists() and not path.is_file():
        raise ConfigError(message)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new store
    except OSError as e:
        raise ConfigError(f"cannot read the store {path} ({e.strerror}); point SCICOT_DB (or --db) at a .db file you can write.") from None
    if head and head != SQLITE_HEADER:
        raise ConfigError(message)
