"""How domain errors reach the people using the app. A `ScicotError` is theirs to fix: one line in
the server log and a message where they acted, every other output left as it was. Anything
else is a fault, which Gradio logs with its traceback."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from scicot_core.errors import ScicotError

from .render import safe

log = logging.getLogger("scicot.app")


def message(error: ScicotError | str) -> str:
    """The error as a sentence: domain messages start in lower case, to follow a colon in the CLI."""
    text = str(error)
    return text[:1].upper() + text[1:]


def _refused(fn, error: ScicotError) -> str:
    name = getattr(fn, "__name__", None) or getattr(fn, "func", fn).__name__  # a partial names its function
    log.warning("refused %s: %s", name, error)
    return message(error)


def friendly(fn):
    """For events with no status line of their own: a `gr.Error` the user reads, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ScicotError as e:
            raise gr.Error(_refused(fn, e), print_exception=False) from None

    return wrapper


def _status_only(text: str, outputs: int, status: int) -> tuple:
    gr.Warning(text)
    shown = tuple(f"⚠️ {safe(text)}" if i == status else gr.skip() for i in range(outputs))
    return shown if outputs > 1 else shown[0]


def reported(fn, outputs: int, status: int = 0):
    """On a domain error: a warning, the message in output `status`, the other outputs untouched
    (a `gr.Error` would badge every output and hide what the user had entered)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ScicotError as e:
            return _status_only(_refused(fn, e), outputs, status)

    return wrapper


def reported_stream(fn, outputs: int, status: int = 0):
    """`reported` for a generator: what it already showed stays, the message joins it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except ScicotError as e:
            yield _status_only(_refused(fn, e), outputs, status)

    return wrapper
