"""The text formats of every stage, in one place: teacher prompts, the stage-1 input
(question + choices -> rationale), the stage-2 input (question + rationale, each choice's text
scored after it),
the baselines' inputs and answer extraction. Training and inference call the same functions.
"""

from __future__ import annotations

import re

from .errors import ConfigError
from .questions import Choice, Question

FORMAT_VERSION = "scicot-v4"
TEACHER_MODES = ("rationalize", "cot")

TEACHER_SYSTEM = (
    "You are a careful science teacher. Explain the reasoning behind multiple-choice science "
    "answers in two to four short sentences of plain text."
)


def choices_block(question: Question) -> str:
    """One line per choice: `(A) text`."""
    return "\n".join(f"({c.label}) {c.text}" for c in question.choices)


def question_block(question: Question) -> str:
    return f"Question: {question.stem}\nChoices:\n{choices_block(question)}"


def answer_sentence(choice: Choice) -> str:
    """How every rationale ends, and what answer extraction looks for."""
    return f"Thus, the answer is ({choice.label}) {choice.text}."


def teacher_prompt(question: Question, mode: str) -> str:
    """The teacher's user message: rationalization (gold answer given) or free chain-of-thought."""
    if mode == "rationalize":
        if question.answer_key is None:
            raise ConfigError(f"question {question.id!r} has no answer key; use mode 'cot' or give --answer-key.")
        gold = question.choice(question.answer_key)
        return (
            f"{question_block(question)}\n"
            f"The correct answer is ({gold.label}) {gold.text}.\n"
            "Explain step by step, from scientific facts, why this answer is correct. "
            f'End with exactly: "{answer_sentence(gold)}"'
        )
    if mode == "cot":
        return (
            f"{question_block(question)}\n"
            "Think step by step from scientific facts, then choose one answer. "
            'End with exactly: "Thus, the answer is (X) <choice text>." where X is the label.'
        )
    raise ConfigError(f"unknown teacher mode {mode!r}; choose one of {TEACHER_MODES}.")


def teacher_messages(question: Question, mode: str) -> list[dict]:
    """Chat messages for an instruction-following teacher."""
    return [
        {"role": "system", "content": TEACHER_SYSTEM},
        {"role": "user", "content": teacher_prompt(question, mode)},
    ]


def facts_block(facts: str) -> str:
    """The memory's facts before a question (scicot_core/memory.py), or nothing without any."""
    return f"Facts: {facts.strip()}\n" if facts and facts.strip() else ""


def rationale_input(question: Question, facts: str = "") -> str:
    """Stage 1 (rationale generator) and the single-stage baseline: the prompt; with the
    memory (two-stage+memory), the facts it retrieved come first."""
    return f"{facts_block(facts)}{question_block(question)}\nRationale:"


def rationale_target(rationale: str) -> str:
    """Stage 1: the completion the student learns to write: the reasoning, then the rationale's
    own answer sentence ("Thus, the answer is (b) heat."), so that a generated rationale names
    the answer it argues for (stage 2 never reads that sentence: see `rationale_body`)."""
    return " " + rationale_concluded_text(rationale)


def rationale_concluded_text(text: str) -> str:
    """A cleaned rationale up to the end of its first answer sentence (the body alone when it
    has none), with any loop before it left out (see `rationale_body`): a student taught the
    loops of a teacher writes them."""
    text = clean_rationale(text)
    found = _ANSWER_SENTENCE.search(text)
    if not found:
        return rationale_body(text)
    end = re.search(r"\.(\s|$)", text[found.end() :])
    conclusion = text[found.start() : found.end() + end.start() + 1] if end else text[found.start() :]
    return f"{rationale_body(text)} {conclusion}".strip()


def answer_input(question: Question, rationale: str) -> str:
    """Stage 2 (answer inferrer): the question and the rationale; each choice's text is then
    scored as the continuation. The choices are not listed here: on dev, listing lettered choices
    before the answer cost this 135M model 2 to 5 points here and 15 to 33 in the answer-only
    baseline (docs/benchmarks.md)."""
    return f"Question: {question.stem}\nRationale: {rationale_body(rationale)}\nAnswer:"


def cloze_input(question: Question, facts: str = "") -> str:
    """Zero-shot scoring and the answer-only baseline: the question alone, each choice's text
    scored as its continuation (the cloze form of the usual LM evaluations; listing lettered
    choices costs an untrained 135M model some 15 points). With the memory (answer-only+memory),
    the facts it retrieved come first."""
    return f"{facts_block(facts)}Question: {question.stem}\nAnswer:"


def answer_target(choice: Choice) -> str:
    """The completion scored (and trained) for one choice after an answer prompt: the choice's
    text alone (cloze). A 135M model cannot bind letters to options, so the label is not scored."""
    return f" {choice.text}"


def single_stage_target(rationale: str, choice: Choice) -> str:
    """The single-stage baseline's completion: the rationale's body, then the answer, in one output."""
    return f" {rationale_body(rationale)}\nAnswer:{answer_target(choice)}"


# The step-by-step baseline (Hsieh et al. 2023): one adapter, two tasks told apart by a prefix;
# it answers with the answer task alone and never generates at inference.
STEP_ANSWER, STEP_RATIONALE = "[answer] ", "[rationale] "


def step_answer_input(question: Question) -> str:
    return STEP_ANSWER + cloze_input(question)


def step_rationale_input(question: Question) -> str:
    return STEP_RATIONALE + rationale_input(question)


SINGLE_STAGE_STOP = "\nAnswer:"


def clean_rationale(text: str) -> str:
    """Collapse whitespace so a rationale is one paragraph, drop control characters, and cut a
    generated answer line off."""
    text = text.split(SINGLE_STAGE_STOP)[0]
    if not text.isprintable():  # the per-character pass only where needed: it dominates loading large sets
        text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    return " ".join(text.split())


_ANSWER_SENTENCE = re.compile(r"\b(?:thus|so|therefore|hence),?\s+the\s+answer\s+is\b", re.IGNORECASE)


def rationale_body(text: str) -> str:
    """A cleaned rationale cut where it states its answer ("Thus, the answer is (b) ...", also
    "so the answer is heat"): that sentence and anything after it go. Stage 2 reads only this,
    so it must weigh the reasoning instead of copying a conclusion. A rationale that writes a
    sentence it has already written is in a loop: it is cut before the repeat as well."""
    text = clean_rationale(text)
    found = _ANSWER_SENTENCE.search(text)
    text = text[: found.start()] if found else text
    repeat = _first_repeat(text, ended=True)
    return (text[:repeat] if repeat is not None else text).strip()


def rationale_finished(text: str) -> bool:
    """Whether a rationale being generated can stop: nothing after this point would survive
    `rationale_body` (its answer sentence, or the single-stage answer line, has begun, or it has
    repeated a whole sentence)."""
    return SINGLE_STAGE_STOP in text or _ANSWER_SENTENCE.search(text) is not None or _looping(text)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def first_sentences(text: str, n: int | None) -> str:
    """The first `n` sentences of a cleaned rationale (all of it when `n` is None)."""
    text = clean_rationale(text)
    return text if n is None else " ".join(_SENTENCE_END.split(text)[:n])


ANSWER_OPENING_WORDS = 5  # an answer sentence is known by its fifth word ("Thus, the answer is (b)")


def past_sentences(text: str, n: int, words: int = 1) -> bool:
    """Whether a rationale being generated has written `words` words of a sentence after its
    first `n` (its answer sentence aside): stage 1 capped at `n` sentences can stop there. With
    `ANSWER_OPENING_WORDS`, a sentence that turns out to be the answer sentence is let through."""
    text = clean_rationale(text)
    found = _ANSWER_SENTENCE.search(text)
    pieces = _SENTENCE_END.split(text[: found.start()].strip() if found else text)
    return len(pieces) > n and len(pieces[n].split()) >= words


LOOP_PERIODS = 3  # a loop repeats its last 1, 2 or 3 sentences


def _first_repeat(text: str, ended: bool) -> int | None:
    """Where a loop starts in `text` (cleaned): the first run of one to `LOOP_PERIODS` sentences
    that repeats the run just before it, case and spacing aside ("X. X." or "X. Y. X. Y."); a
    sentence repeated further on ("... This is wrong. B: ... This is wrong.") is no loop. Returns
    None when there is none. The last sentence counts only once something follows it, unless the
    text has `ended` (while generating, "It is 9." may still become "It is 9.5 g.")."""
    pieces = _SENTENCE_END.split(text)
    if not (ended and pieces[-1][-1:] in (".", "!", "?")):
        pieces = pieces[:-1]
    keys = [p.lower() for p in pieces]
    for i in range(1, len(keys)):
        for period in range(1, min(LOOP_PERIODS, i) + 1):
            run = keys[i : i + period]
            if run == keys[i - period : i] and any(c.isalpha() for c in "".join(run)):  # not list numbers ("2. 2.")
                return sum(len(p) + 1 for p in pieces[:i])  # `clean_rationale` leaves one space between
    return None


def _looping(text: str) -> bool:
    """Whether a rationale being generated has repeated a whole sentence (see `rationale_body`)."""
    text = clean_rationale(text)
    found = _ANSWER_SENTENCE.search(text)
    return _first_repeat(text[: found.start()] if found else text, ended=False) is not None


_LABEL_AFTER = re.compile(r"\s*:?\s*\(\s*([A-Za-z0-9])\s*\)")


def rationale_concluded(text: str) -> bool:
    """Whether a rationale being generated can stop once its conclusion is known: its answer
    sentence has named a label ("... the answer is (b)") or ended. Later than
    `rationale_finished` by a few tokens; the body is the same. A rationale that loops before
    its answer sentence stops there, with no conclusion."""
    if SINGLE_STAGE_STOP in text:
        return True
    found = _ANSWER_SENTENCE.search(text)
    if not found:
        return _looping(text)
    tail = text[found.end() :]
    return bool(_LABEL_AFTER.match(tail)) or "." in tail or "\n" in tail


def rationale_conclusion(text: str, question: Question) -> str | None:
    """The label a rationale's own answer sentence names, or None (no sentence, or no label)."""
    found = _ANSWER_SENTENCE.search(clean_rationale(text))
    return extract_answer(clean_rationale(text)[found.start() :], question) if found else None


_ANSWER_PATTERNS = [
    re.compile(r"answer\s+is\s*:?\s*\(?\s*([A-Za-z0-9])\s*\)", re.IGNORECASE),
    re.compile(r"answer\s*:\s*\(?\s*([A-Za-z0-9])\b\)?", re.IGNORECASE),
    re.compile(r"\(([A-Za-z0-9])\)"),
]


def extract_answer(text: str, question: Question) -> str | None:
    """The label a rationale commits to ("the answer is (B)"), or None when it names none."""
    labels = set(question.labels)
    for pattern in _ANSWER_PATTERNS:
        found = [m.group(1) for m in pattern.finditer(text)]
        found = [f if f in labels else f.upper() for f in found]
        found = [f for f in found if f in labels]
        if found:
            return found[-1]
    lowered = text.lower()
    named = [c.label for c in question.choices if f"answer is {c.text.lower()}" in lowered]
    return named[-1] if len(named) == 1 else None
