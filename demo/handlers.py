"""Plain handler functions behind the Ask and Rate tabs; `ui.py` only wires them. Each takes
`deps` first and raises domain errors, which the wiring turns into `gr.Error`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from annotations import criteria
from annotations.criteria import MAX_RATIONALE_CHARS
from annotations.identity import Client
from scicot_core import asking, base_models, formats
from scicot_core.errors import DataError, PermissionDenied
from scicot_core.questions import Question, Rationale, typed_question

from .deps import MAX_LISTED, Deps
from .render import named, plain_model, probabilities_label, question_md, rationale_md, safe, seconds


# -- Ask ---------------------------------------------------------------------------------------
def question_choices(deps: Deps, source: str) -> list[tuple[str, str]]:
    """(label, id) pairs for the question picker: the first questions of a source."""
    return [(f"{q.id}: {q.stem[:70]}", q.id) for q in deps.questions.questions_in(source)[:MAX_LISTED]]


def parse_question(
    deps: Deps, mode: str, source: str, question_id: str | None, stem: str, choices_text: str, answer_key: str | None
) -> Question:
    """The question to ask: one picked from the sample set or a data set, or a typed one with
    2 to 9 choices (one per line)."""
    if mode not in ("pick", "typed"):
        raise DataError(f"ask about {mode!r}? Choose pick (a listed question) or typed (your own).")
    if mode == "pick":
        for q in deps.questions.questions_in(source):
            if q.id == question_id:
                return q
        raise DataError("pick a question from the list.")
    return typed_question(stem, (choices_text or "").splitlines(), answer_key)


def question_card(deps: Deps, mode: str, source: str, question_id: str | None) -> str:
    """The picked question in full, every choice on its own line (a typed one shows in its boxes)."""
    if mode != "pick":
        return ""
    return question_md(parse_question(deps, mode, source, question_id, "", "", None))


STAGES = {"teacher_ms": "teacher", "stage1_ms": "student's rationale", "stage2_ms": "answer", "memory_ms": "memory and its reading"}


def _facts_md(facts) -> str:
    """The memory's facts for a question, each with where it came from."""
    if not facts:
        return "\n\n#### Facts from the memory\n\n*No fact in the memory matches this question.*"
    rows = [f"{n}. {safe(f.text)}  \n   *{safe(f.source)}*" for n, f in enumerate(facts, 1)]
    return "\n\n#### Facts from the memory\n\n" + "\n".join(rows)


def ask(
    deps: Deps, question: Question, teacher: str, url: str, model: str, adapter_set: str, max_tokens: int | None = None, every: float = 1.0
) -> Iterator[tuple]:
    """Teacher | student | answer, streamed: `asking.ask`'s events rendered, with a "thinking"
    line every `every` seconds while a teacher is asked. Yields (teacher_md, student_md,
    answer_md, {choice: probability}, baselines_md, info_md, result)."""
    if adapter_set is None:
        raise DataError("choose a student (the Student list; its first entry is the default).")
    result = {"question": question.to_ai2() | {"source": question.source}, "teacher": None, "student": None, "answer": None}
    shown = {"teacher": "", "student": "*Loading the student…*", "answer": "", "probs": {}, "baselines": [], "info": ""}
    timings, asked_at, asked_model = {}, None, ""

    def view():
        return (shown["teacher"], shown["student"], shown["answer"], shown["probs"], "", shown["info"], result)

    stored = deps.questions.stored_rationale(question.id)
    if stored:
        given = Rationale(question.id, stored[0], "teacher", stored[1], 0, "stored")
        shown["teacher"] = rationale_md(stored[0], stored[1])
        yield view()  # the stored rationale shows while the student loads
    else:
        given = deps.teachers.build(teacher, url, model)
    student = deps.students.student(adapter_set, max_tokens or base_models.max_tokens(deps.settings.student), deps.settings.merge)
    for event in _paced(asking.ask(question, student, given, baselines=True, memory=deps.memory), every):
        if event is None:
            if asked_at is not None:
                shown["teacher"] = f"*Thinking… {time.monotonic() - asked_at:.0f} s* ({safe(asked_model)})"
                yield view()
            continue
        if isinstance(event, asking.TeacherAsking):
            asked_at, asked_model = time.monotonic(), event.model_id
            shown["teacher"] = f"*Thinking… 0 s* ({safe(asked_model)})"
            shown["student"] = "*Waiting for the teacher…*"
            yield view()
        elif isinstance(event, asking.TeacherWrote):
            asked_at, r = None, event.rationale
            result["teacher"] = {"text": r.text, "model_id": r.model_id, "note": r.note, "duration_ms": r.duration_ms}
            shown["teacher"] = rationale_md(r.text, r.model_id) if event.stored else rationale_md(r.text, r.model_id, r.note, r.duration_ms)
            if not event.stored:
                timings["teacher_ms"] = event.ms
        elif isinstance(event, asking.StudentWriting):
            shown["student"] = rationale_md(event.text + " ▌", student.model_id)
            yield view()
        elif isinstance(event, asking.StudentWrote):
            timings["stage1_ms"] = event.ms
            result["student"] = {"text": event.texts[0], "model_id": event.model_id, "duration_ms": event.ms}
            shown["student"] = rationale_md(event.texts[0], event.model_id, "stage 1", event.ms)
        elif isinstance(event, asking.Answered):
            timings["stage2_ms"] = event.ms
            result["answer"] = {"label": event.answer.label, "probabilities": event.answer.probabilities}
            shown["answer"], shown["probs"] = _answer_md(question, event.answer), probabilities_label(event.answer.probabilities, question)
        elif isinstance(event, asking.BaselineAnswered):
            a = event.answer
            shown["baselines"].append(f"- **{event.name}**: ({safe(a.label)}) {safe(a.text)} · {a.probabilities[a.label]:.0%}")
        elif isinstance(event, asking.MemoryRead):
            timings["memory_ms"] = event.ms
            a = event.answer
            result["memory"] = {
                "facts": [f.shown() for f in event.facts],
                "answer": {"label": a.label, "probabilities": a.probabilities},
            }
            shown["baselines"].append(
                f"- **retrieve-then-read** (stage 2 reading the memory's facts below): ({safe(a.label)}) {safe(a.text)} · {a.probabilities[a.label]:.0%}"
            )
            shown["memory"] = _facts_md(event.facts)
    shown["info"] = "Took " + " · ".join(f"{STAGES[k]} {seconds(v)}" for k, v in timings.items())
    listed = "\n".join(shown["baselines"]) or "*No baseline adapters in this set.*"
    baselines_md = f"#### Baselines: the same student asked other ways\n\n{listed}" + shown.get("memory", "")
    yield (*view()[:4], baselines_md, shown["info"], result)


_END = object()


def _paced(events: Iterator, every: float) -> Iterator:
    """`events`, with a None whenever the next one takes longer than `every` seconds (each next
    runs on one worker thread, so the caller can show that time passes)."""
    with ThreadPoolExecutor(1) as pool:
        while True:
            pending = pool.submit(next, events, _END)
            while True:
                try:
                    event = pending.result(timeout=every)
                    break
                except FutureTimeout:
                    yield None
            if event is _END:
                return
            yield event


def _answer_md(question: Question, answer) -> str:
    verdict = {True: " — **correct**", False: f" — **wrong** (key: {safe(question.answer_key)})", None: ""}[answer.is_correct(question)]
    return f"### ({safe(answer.label)}) {safe(answer.text)}\n\n{answer.probabilities[answer.label]:.0%} probability{verdict}"


def send_to_queue(deps: Deps, result: dict | None) -> str:
    """Store the question and both rationales, with provenance, for rating; marks `result` as
    queued, so that a second click says so rather than queueing it again."""
    if not result or not result.get("student"):
        raise DataError("ask a question first; then send its result to the rating queue.")
    q = Question.from_ai2(result["question"], result["question"].get("source", "typed"))
    if result.get("queued"):
        raise DataError(f"this answer is already in the rating queue (question {q.id}); ask another question to queue more.")
    rationales = []
    if result.get("teacher"):
        t = result["teacher"]
        rationales.append(Rationale(q.id, t["text"], "teacher", t["model_id"], t["duration_ms"], t["note"]))
    s = result["student"]
    rationales.append(Rationale(q.id, s["text"] or "(empty)", "student", s["model_id"], s["duration_ms"], "two-stage student, stage 1"))
    ids = deps.store.add_question_with_rationales(q, rationales)
    result["queued"] = True
    return f"Queued {len(ids)} rationale(s) for rating: question {safe(q.id)}."


# -- Rate ---------------------------------------------------------------------------------------
APP = Client("app")  # an event with no request (a handler called directly)


def client_of(request) -> Client:
    """Who sent an event: its session, and its address where Gradio knows one (throttling keys)."""
    if request is None:
        return APP
    host = getattr(getattr(request, "client", None), "host", None)
    return Client(f"session {getattr(request, 'session_hash', None) or 'none'}", host or None)


def sign_in(deps: Deps, profile, typed: str, token: str = "", client: Client = APP) -> tuple[str, str]:
    """(rater, line to show). On a Space only the Hugging Face login counts, never a typed name;
    elsewhere a typed name is claimed on first use, its token shown this once, and afterwards
    needs that token (wrong ones slow `client` down)."""
    if deps.settings.on_space:
        username = getattr(profile, "username", None)
        if not username:
            raise PermissionDenied("log in with Hugging Face to rate (the “Sign in with Hugging Face” button in this tab).")
        name = deps.store.add_rater(username)
        return name, f"Rating as **{safe(name)}** (Hugging Face login)."
    if not (typed or "").strip():
        raise DataError("type your name to rate (and your token, if you have rated under that name before).")
    who = deps.store.authenticate(typed, token=(token or "").strip() or None, client=client)
    if who.new_token is None:
        return who.name, f"Rating as **{safe(who.name)}**."
    return who.name, (
        f"Rating as **{safe(who.name)}**, a name new here. {TOKEN_SHOWN}`{who.new_token}`  \n"
        f"Keep this to sign in again as {safe(who.name)}: it is not shown again."
    )


TOKEN_SHOWN = "Your token: "


def without_token(line) -> str:
    """The sign-in line as the session may remember it: a new token is shown once, never kept."""
    return re.sub(f"{TOKEN_SHOWN}`[^`]*`", TOKEN_SHOWN + "(shown once, on the page that claimed the name)", line or "")


def _signed_in(rater) -> str:
    # The rater comes from this session's server-side state, which only sign_in sets.
    if not rater:
        raise PermissionDenied("sign in first, at the top of the Rate tab.")
    return rater


NOTHING_LEFT = "Nothing left to rate: ask more questions or import a distillation set."


def next_item(deps: Deps, rater: str) -> tuple:
    """(question_md, rationale_md, other_md, progress_html, rationale_id, scores..., preference,
    comment, edit_text); the rationale id is empty when nothing is left to rate."""
    item = deps.store.next_item(_signed_in(rater))
    progress_md = progress_html(deps.store.progress(rater))
    if item is None:
        progress_md += f'<p class="rate-empty"><b>{NOTHING_LEFT}</b></p>'
        return ("", "", "", progress_md, "", *(None for _ in criteria.CRITERIA), None, "", "")
    r = item.rationale
    draft = json.loads(item.draft["scores_json"]) if item.draft else {}
    others = (
        "\n\n---\n\n".join(f"**{safe(s['source'])}** ({safe(plain_model(s['model_id']))}):\n\n{safe(s['text'])}" for s in item.siblings)
        or "*No other rationale for this question.*"
    )
    scores = tuple(draft.get(c.name) for c in criteria.CRITERIA)
    return (
        question_md(item.question),
        rationale_md(r["text"], f"{r['source']} · {plain_model(r['model_id'])}"),
        others,
        progress_md,
        r["id"],
        *scores,
        item.draft["preference"] if item.draft else None,
        item.draft["comment"] if item.draft else "",
        r["text"],
    )


def progress_html(progress: dict) -> str:
    """The rater's place in the queue as a bar and a line of numbers (numbers only: nothing typed)."""
    done, remaining = int(progress["rater_done"]), int(progress["rater_remaining"])
    return (
        f'<div class="rate-progress"><progress value="{done}" max="{max(done + remaining, 1)}"></progress> '
        f"<span><b>{done}</b> done · <b>{remaining}</b> to go · {int(progress['submitted_ratings'])} ratings by everyone</span></div>"
    )


def _on_current(rationale_id: str, form_id, what: str) -> str:
    """The rater's current item (server-side state), if `form_id`, the item the form in the page
    belongs to, is that item; a form for another one (a late reply, an old tab) is refused."""
    if not rationale_id:
        raise DataError("load a rationale first.")
    if form_id != rationale_id:
        raise DataError(
            f"this {what} is for {named(form_id, 'no item')}, but your current item is {safe(rationale_id)}; "
            "nothing was saved. Check the item shown, then try again."
        )
    return rationale_id


def _unsaved_edit(deps: Deps, rationale_id: str, edit_id, text) -> str | None:
    """The edit box's text if it holds a changed, unsaved edit of the current item, else None."""
    if edit_id != rationale_id or not isinstance(text, str) or not text.strip():
        return None
    if formats.clean_rationale(text) == formats.clean_rationale(deps.store.rationale(rationale_id)["text"]):
        return None
    if deps.store.edit_exists(rationale_id, text):
        return None  # saved already
    if len(text) > MAX_RATIONALE_CHARS:
        raise DataError(f"the edit is {len(text):,} characters; keep it under {MAX_RATIONALE_CHARS:,}.")
    return text


def check_no_unsaved_edit(deps: Deps, rater: str, rationale_id: str, edit_id, text) -> None:
    """Moving on (Next, Skip) past an unsaved edit of the current item is refused: it would be lost."""
    _signed_in(rater)
    if rationale_id and _unsaved_edit(deps, rationale_id, edit_id, text) is not None:
        raise DataError("you have an unsaved edit of this rationale: save it (Save edit) or press Discard edit, then move on.")


def submit_rating(deps: Deps, rater: str, rationale_id: str, form_id, edit_id, edit_text, *values) -> tuple[str, str | None]:
    """values: one score per criterion of `criteria.CRITERIA`, in its order, then preference, then
    comment. The form must be pinned to the rater's current item; an unsaved edit of it in the
    edit box is saved with the rating. Returns (the line to show, the saved edit's id or None)."""
    *scores, preference, comment = values
    _signed_in(rater)
    _on_current(rationale_id, form_id, "rating")
    missing = [c.label for c, v in zip(criteria.CRITERIA, scores) if v in (None, "")]
    if missing:
        raise DataError(f"score every criterion before submitting (missing: {', '.join(missing)}).")
    edit = _unsaved_edit(deps, rationale_id, edit_id, edit_text)
    rated = ({c.name: v for c, v in zip(criteria.CRITERIA, scores)}, preference or None, comment or "")
    if edit is None:
        deps.store.upsert_rating(rationale_id, rater, *rated)
        return f"Saved your rating of {safe(rationale_id)}.", None
    _, new_id = deps.store.rate_with_edit(rationale_id, rater, *rated, edit)
    return f"Saved your rating of {safe(rationale_id)} and your edit as {new_id}.", new_id


def skip_item(deps: Deps, rater: str, rationale_id: str, form_id, edit_id, edit_text) -> str:
    check_no_unsaved_edit(deps, rater, rationale_id, edit_id, edit_text)
    _on_current(rationale_id, form_id, "skip")
    deps.store.skip(rationale_id, rater)
    return f"Skipped {safe(rationale_id)}."


def save_edit(deps: Deps, rater: str, rationale_id: str, edit_id, text: str) -> str:
    """Save an edited rationale as a human edit linked to its source (it joins the queue); the
    edit box must be pinned to the rater's current item."""
    _signed_in(rater)
    _on_current(rationale_id, edit_id, "edit")
    if text and len(text) > MAX_RATIONALE_CHARS:
        raise DataError(f"the edit is {len(text):,} characters; keep it under {MAX_RATIONALE_CHARS:,}.")
    if formats.clean_rationale(text or "") == formats.clean_rationale(deps.store.rationale(rationale_id)["text"]):
        raise DataError("the text is unchanged; edit it before saving.")
    new_id = deps.store.edit_rationale(rationale_id, text, rater)
    return f"Saved your edit as {new_id} (linked to {rationale_id})."
