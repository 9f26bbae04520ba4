"""The app's raw API, held like its screens. A browser sends what its widgets allow; a client of
the API (gradio_client, plain HTTP) may send anything. `GuardedBlocks` checks every event's raw
inputs against the components they are for, before Gradio turns them into Python values:

- the count: one value per input, no more (Gradio would ignore extras) and no fewer;
- the type: text for a text box, a number for a number or slider, true/false for a checkbox;
- the range: a number within its widget's minimum, maximum and step, a whole number where the
  widget takes one, a choice among the widget's choices (as this session's page shows them).

A refusal is one line in the server log, `refused <action>: <message>`, and the same message to
the caller, before any handler runs: nothing is stored. Gradio's own checks of these end in a
traceback (a score of 6) or pass the wrong thing on (a comment sent as a JSON object becomes its
`str()`).

It also keeps secrets out of shareable state. Gradio remembers each session's last value of
every component, and `/gradio_api/deep_link?session_hash=...` writes those values into a page
that anyone with the link opens. Components registered with `secret()` (a rater's token, the
reviewer secret, the line that shows a new token once) are remembered without their secret: the
owner's page gets the value, the session's remembered copy only `redact(value)`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gradio as gr

from .reporting import log, message


class GuardedBlocks(gr.Blocks):
    """`gr.Blocks` whose events refuse raw inputs their components would not give (see above)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        problem = raw_input_problem(block_fn.inputs, inputs, state)
        if problem:
            refuse(block_fn, problem)
        processed = await super().preprocess_data(block_fn, inputs, state, explicit_call)
        self._forget_secrets(block_fn.inputs, state)
        return processed

    async def postprocess_data(self, block_fn, predictions, state):
        data = await super().postprocess_data(block_fn, predictions, state)
        self._forget_secrets(block_fn.outputs, state)
        return data

    def _forget_secrets(self, blocks, state) -> None:
        if state is None:
            return
        for block in blocks:
            redact = getattr(block, "_scicot_redact", None)
            remembered = state.config_values.get(block._id, {}).get("props") if redact else None
            if remembered is not None and "value" in remembered:
                remembered["value"] = redact(remembered["value"])


async def _misused_route(request, error: Exception):
    """Gradio's keyword API (`/gradio_api/call/v2/<endpoint>`) turns an unknown endpoint or an
    unknown keyword into a KeyError or TypeError, a 500 and a traceback: answer 400 and one line.
    Elsewhere the error is a fault, and goes on to Gradio's own handling."""
    from fastapi.responses import JSONResponse

    path = request.url.path
    if "/gradio_api/call/v2/" not in path:
        raise error
    endpoint = path.rstrip("/").rsplit("/", 1)[-1]
    if isinstance(error, KeyError):
        why = f"there is no endpoint /{endpoint}; the API page (the app's footer) lists them."
    else:
        why = str(error).split(" Please ")[0].rstrip(".") + "; the API page (the app's footer) lists its parameters."
    log.warning("refused %s: %s", endpoint, why)
    return JSONResponse({"detail": message(why)}, status_code=400)


# For `launch(app_kwargs=...)`: how the app's routes answer a misused keyword API.
APP_KWARGS = {"exception_handlers": {KeyError: _misused_route, TypeError: _misused_route}}


def secret(component, redact: Callable[[Any], Any] | None = None):
    """Mark `component` as holding a secret: a session remembers `redact(value)` (by default
    nothing) instead of its value. Returns the component."""
    component._scicot_redact = redact or (lambda value: "")
    return component


def refuse(block_fn, why: str):
    action = block_fn.api_name or block_fn.name or "event"
    log.warning("refused %s: %s", action, why)
    raise gr.Error(message(why), print_exception=False)


def raw_input_problem(blocks: list, values: list, state=None) -> str | None:
    """What is wrong with the raw `values` sent for `blocks` (None when nothing is); Gradio's
    request schema has already refused `data` that is not a list."""
    if len(values) != len(blocks):
        names = ", ".join(_name(b) for b in blocks if not b.skip_api) or "none"
        return f"this endpoint takes {sum(not b.skip_api for b in blocks)} inputs ({names}); you sent {len(values)}."
    for block, value in zip(blocks, values, strict=True):
        if block.skip_api or block.stateful:
            continue  # state comes from the session, never from the caller
        if state is not None and block._id in state:
            block = state[block._id]  # this session's version (its choices may have been updated)
        problem = _value_problem(block, value)
        if problem:
            return f"{_name(block)}: {problem}"
    return None


def _name(block) -> str:
    """The input as its widget names it, without the explanation after a colon or in brackets."""
    label = getattr(block, "label", None)
    if label:
        return str(label).split(": ")[0].split(" (")[0]
    return str(getattr(block, "elem_id", None) or type(block).__name__).replace("-", " ")


def _value_problem(block, value) -> str | None:
    if isinstance(block, gr.Checkbox):
        return None if isinstance(value, bool) else f"{_shown(value)} is not true or false; send true or false."
    if isinstance(block, (gr.Number, gr.Slider)):
        return _number_problem(block, value)
    if isinstance(block, (gr.Radio, gr.Dropdown)):
        return _choice_problem(block, value)
    if isinstance(block, gr.Textbox):
        if value is None:
            return None
        if not isinstance(value, str):
            return f"{_shown(value)} is not text; send a string."
        limit = getattr(block, "max_length", None)
        if limit and len(value) > limit:
            return f"{len(value):,} characters is more than this box takes ({limit:,}); shorten it."
    return None


def _number_problem(block, value) -> str | None:
    low, high = block.minimum, block.maximum
    step = getattr(block, "step", None) if isinstance(block, gr.Slider) else None
    whole = isinstance(block, gr.Number) and block.precision == 0
    kind = "a whole number" if whole else "a number"
    span = f" from {low:g} to {high:g}" if low is not None and high is not None else f" of at least {low:g}" if low is not None else ""
    wanted = f"give {kind}{span}" + (f" in steps of {step:g}" if step else "") + "."
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{_shown(value)} is not a number; {wanted}"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{value:g} is out of range; {wanted}"
    if whole and value != int(value):
        return f"{value:g} is not a whole number; {wanted}"
    if step and low is not None and not math.isclose((value - low) / step, round((value - low) / step), abs_tol=1e-9):
        return f"{value:g} is not a step of the slider; {wanted}"
    return None


def _choice_problem(block, value) -> str | None:
    if value is None:
        return None  # nothing picked: the handler says when a choice is needed
    values = [v for _, v in block.choices]
    if getattr(block, "multiselect", False) or getattr(block, "allow_custom_value", False):
        return None if isinstance(value, (str, int, float, list)) else f"{_shown(value)} is not a choice."
    if not any(type(v) is type(value) and v == value for v in values):  # 5.0 is not the choice 5, nor True 1
        listed = ", ".join(repr(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
        return f"{_shown(value)} is not one of the choices; send one of {listed}."
    return None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
