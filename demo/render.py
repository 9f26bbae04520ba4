"""Text shown in the app: Markdown with maths, raw HTML always escaped, so a `<script>` or an
`<img onerror=...>` in a rationale or comment shows as text and never runs."""

from __future__ import annotations

import html

from scicot_core.questions import Question

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def safe(text: str | None) -> str:
    """Escape HTML; Markdown and $maths$ still render."""
    return html.escape(text or "", quote=False)


def question_md(q: Question) -> str:
    lines = [f"**{safe(q.stem)}**", ""]
    lines += [f"- **({safe(c.label)})** {safe(c.text)}" + (" — *answer key*" if c.label == q.answer_key else "") for c in q.choices]
    return "\n".join(lines)


def rationale_md(text: str, source: str, note: str = "", ms: int | None = None) -> str:
    meta = f"*{safe(source)}*" + (f" · {safe(note)}" if note else "") + (f" · {ms} ms" if ms is not None else "")
    return f"{safe(text) or '*(empty)*'}\n\n{meta}"


def probabilities_label(probabilities: dict[str, float], question: Question) -> dict[str, float]:
    """Every choice's probability, keyed by its label and text, for a `gr.Label` chart."""
    return {f"({label}) {question.choice(label).text}"[:60]: round(p, 4) for label, p in probabilities.items()}
