"""Text shown in the app: Markdown with maths, raw HTML always escaped, so a `<script>` or an
`<img onerror=...>` in a rationale or comment shows as text and never runs."""

from __future__ import annotations

import html
import re
from pathlib import PurePath

from scicot_core.questions import Question

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def safe(text: str | None) -> str:
    """Escape HTML; Markdown and $maths$ still render."""
    return html.escape(text or "", quote=False)


def question_md(q: Question) -> str:
    lines = [f"**{safe(q.stem)}**", ""]
    lines += [f"- **({safe(c.label)})** {safe(c.text)}" + (" — *answer key*" if c.label == q.answer_key else "") for c in q.choices]
    return "\n".join(lines)


def plain_model(model_id: str) -> str:
    """A model id as a reader says it: `base + LoRA[a, b]` becomes `base with adapters a, b`
    (`+ full[c]`, a stage fine-tuned whole: `and c fine-tuned whole`); a model loaded from a
    folder is named by the folder alone, also where its path ends a longer id ("human edit of
    /srv/models/x" becomes "human edit of x"): the server's paths stay private."""
    rest, _, full = model_id.partition(" + full[")
    base, _, adapters = rest.partition(" + LoRA[")
    base = ABSOLUTE_PATH.sub(lambda m: PurePath(m.group(0)).name, base)
    said = f"{base} with adapters {adapters.rstrip(']')}" if adapters else base
    return f"{said} and {full.rstrip(']')} fine-tuned whole" if full else said


ABSOLUTE_PATH = re.compile(r"(?<![\w.])/.*$")  # a path runs to the end of the id ("human edit of <id>")


def seconds(ms: int) -> str:
    """A duration in plain words: `0.4 s`, `9.3 s`, `2 min 5 s`."""
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def rationale_md(text: str, source: str, note: str = "", ms: int | None = None) -> str:
    meta = f"*{safe(plain_model(source))}*" + (f" · {safe(note)}" if note else "") + (f" · {seconds(ms)}" if ms is not None else "")
    return f"{safe(text) or '*(empty)*'}\n\n{meta}"


def probabilities_label(probabilities: dict[str, float], question: Question) -> dict[str, float]:
    """Every choice's probability, keyed by its label and text, for a `gr.Label` chart."""
    return {f"({label}) {question.choice(label).text}": round(p, 4) for label, p in probabilities.items()}


def named(item_id, missing: str) -> str:
    """An item id as it came from a form, for a message: escaped, or `missing` when it is no id at all."""
    return safe(item_id) if isinstance(item_id, str) and item_id else missing
