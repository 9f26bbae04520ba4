"""The app's raw API against a real server (issue 33): what a client that is not the page may send.
Each case goes over plain HTTP (`/gradio_api/call/<endpoint>`, the way any script can call it)
from a session set up as the case needs: signed in as a rater with an item to rate, signed in
as a reviewer, or with an answer on screen. Each must end in one log line `refused <action>:
...`, a message that says what to do, no traceback, and a store whose every row is the same
before and after.

The same runs make the API table of docs/bad_input.md (see tests/test_bad_input.py)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from dataclasses import dataclass

import httpx
import pytest
from test_bad_input import API_PART, DOCS, cell, code

from scicot_core.questions import Rationale, sample_items

SET = "base model (no adapters)"
ASK = ["pick", "SciCoT sample set", "sample-biology-01", "", "", "", "stand-in", "", "", SET]
TYPED = ["typed", "SciCoT sample set", None, "Which one is a metal?", "iron\nwood", "", "stand-in", "", "", SET]


def with_(base: list, index: int, value) -> list:
    return [value if i == index else v for i, v in enumerate(base)]


@dataclass(frozen=True)
class ApiCase:
    name: str
    api: str
    data: object  # the raw `data` sent; "{pin}" is the rater's current item
    expect: str  # a fragment of the message (case aside)
    who: str = ""  # "rater", "reviewer" or "asked": how the session is set up first
    logged: bool = True  # False: Gradio refuses it before the app (its request schema), so the app logs nothing


RATING = ["{pin}", "", "", 4, 4, 3, "student", "fine"]  # /submit_rating: pin, edit pin, edit, 3 scores, preference, comment
FILTERS = [0, 0, 4]  # /candidates: minimum mean, minimum raters, maximum spread

CASES = [
    # 1. Garbage is refused, never stored.
    ApiCase("comment as a JSON object", "submit_rating", with_(RATING, 7, {"a": 1}), "comment: {'a': 1} is not text", "rater"),
    ApiCase("edit as a list", "save_edit", ["{pin}", ["an", "edit"]], "is not text; send a string", "rater"),
    ApiCase("question as a number", "ask", with_(TYPED, 3, 42), "your question: 42 is not text", "asked"),
    ApiCase("question as a list", "ask", with_(TYPED, 3, ["Why?"]), "your question: ['why?'] is not text", "asked"),
    ApiCase("question as a dict", "ask", with_(TYPED, 3, {"q": 1}), "your question: {'q': 1} is not text", "asked"),
    ApiCase("mode null", "ask", with_(ASK, 0, None), "choose pick", "asked"),
    ApiCase("mode unknown", "ask", with_(ASK, 0, "both"), "ask about: 'both' is not one of the choices", "asked"),
    ApiCase("student set null", "ask", with_(ASK, 9, None), "choose a student", "asked"),
    ApiCase("student set unknown", "ask", with_(ASK, 9, "gpt-5"), "student: 'gpt-5' is not one of the choices", "asked"),
    ApiCase("one input too many", "ask", [*ASK, "extra"], "this endpoint takes 10 inputs", "asked"),
    ApiCase("one input too few", "ask", ASK[:-1], "this endpoint takes 10 inputs", "asked"),
    ApiCase("data not a list", "ask", {"mode": "pick"}, 'http 422: {"detail":[{"type":"list_type"', "asked", logged=False),
    ApiCase("keyword API: an unknown keyword", "v2/ask", {"data": ASK}, "parameter `data` is not a valid key-word argument"),
    ApiCase("keyword API: no such endpoint", "v2/delete_everything", {}, "there is no endpoint /delete_everything"),
    ApiCase(
        "keyword API: the question as a number",
        "v2/ask",
        dict(zip(("m", "src", "sid", "s", "c", "k", "t", "u", "mo", "aset"), with_(TYPED, 3, 42))),
        "your question: 42 is not text",
    ),
    ApiCase("a stem of control characters only", "ask", with_(TYPED, 3, "\x01\x02\x03\x1b"), "type a question", "asked"),
    ApiCase("the same answer sent twice", "send_to_queue", [], "already in the rating queue", "asked"),
    ApiCase("pin as a number", "submit_rating", with_(RATING, 0, 5), "rate pin: 5 is not text", "rater"),
    ApiCase("preference unknown", "submit_rating", with_(RATING, 6, "best"), "'best' is not one of the choices", "rater"),
    ApiCase("name as a list", "sign_in", [["ann"], ""], "your name: ['ann'] is not text"),
    ApiCase("token as a dict", "sign_in", ["ann", {"t": 1}], "is not text; send a string"),
    ApiCase("secret as a list", "reviewer_sign_in", ["rev", ["sesame"]], "reviewer secret: ['sesame'] is not text"),
    ApiCase("edit as a dict (next item)", "next_item", ["{pin}", {"e": 1}], "is not text; send a string", "rater"),
    ApiCase("skip pinned to a list", "skip", [["{pin}"], "", ""], "is not text; send a string", "rater"),
    # 2. No tracebacks for values out of a widget's range or choices.
    ApiCase("score 6", "submit_rating", with_(RATING, 3, 6), "6 is not one of the choices; send one of 1, 2, 3, 4, 5", "rater"),
    ApiCase("score 3.5", "submit_rating", with_(RATING, 4, 3.5), "3.5 is not one of the choices", "rater"),
    ApiCase("score '5' (text)", "submit_rating", with_(RATING, 5, "5"), "'5' is not one of the choices", "rater"),
    ApiCase("score true", "submit_rating", with_(RATING, 3, True), "True is not one of the choices", "rater"),
    ApiCase("accuracy n=0", "student_accuracy", [SET, 0], "dev questions: 0 is out of range; give a number from 4 to 100", ""),
    ApiCase("accuracy n='abc'", "student_accuracy", [SET, "abc"], "'abc' is not a number", ""),
    ApiCase("accuracy n=5 (not a step)", "student_accuracy", [SET, 5], "5 is not a step of the slider", ""),
    ApiCase("accuracy n null", "student_accuracy", [SET, None], "None is not a number", ""),
    ApiCase("min_raters -5", "candidates", [0, -5, 4], "minimum raters: -5 is out of range; give a whole number of at least 0", "reviewer"),
    ApiCase("min_raters 'x'", "candidates", [0, "x", 4], "'x' is not a number", "reviewer"),
    ApiCase("min_raters 2.5", "candidates", [0, 2.5, 4], "2.5 is not a whole number", "reviewer"),
    ApiCase("max_spread null", "candidates", [0, 0, None], "maximum disagreement: none is not a number", "reviewer"),
    ApiCase("min_mean 99", "candidates", [99, 0, 4], "minimum mean rating: 99 is out of range", "reviewer"),
    ApiCase("min_mean NaN", "candidates", [float("nan"), 0, 4], "is not a number", "reviewer"),
    ApiCase(
        "retrain steps 0", "retrain", [0], "retrain steps per stage: 0 is out of range; give a whole number from 1 to 2000", "reviewer"
    ),
    ApiCase("retrain steps 2001", "retrain", [2001], "2001 is out of range", "reviewer"),
    ApiCase("retrain steps 'abc'", "retrain", ["abc"], "'abc' is not a number", "reviewer"),
    ApiCase("export format csv", "export", ["csv", True, 0, 0], "export format: 'csv' is not one of the choices", "reviewer"),
    ApiCase("export accepted-only 'yes'", "export", ["jsonl", "yes", 0, 0], "accepted only: 'yes' is not true or false", "reviewer"),
    ApiCase(
        "decision 'maybe'", "decide", ["r", "maybe", "", "", "", "", 0, 0, 4], "decision: 'maybe' is not one of the choices", "reviewer"
    ),
    ApiCase("cancel with inputs it does not take", "cancel_retrain", ["now", "later"], "this endpoint takes 0 inputs", "reviewer"),
    ApiCase("toggle to an unknown mode", "toggle_typed", ["both", "SciCoT sample set", None], "'both' is not one of the choices"),
]

_SECRET_NAMES = ("auth_failures",)  # wrong tries are recorded on purpose; everything else must not change


def dump(path) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [n for (n,) in conn.execute("select name from sqlite_master where type = 'table' order by name") if n not in _SECRET_NAMES]
    rows = {t: sorted(map(repr, conn.execute(f"select * from [{t}]"))) for t in tables}
    conn.close()
    return rows


def call(url: str, api: str, data, session: str) -> tuple[str, object]:
    """POST `data` to an endpoint in `session`; ("complete", outputs), ("error", message) or ("http <code>", body)."""
    # The keyword API ("v2/<endpoint>") takes the inputs by name, as the whole body; it has no session.
    body = json.dumps(data if api.startswith("v2/") else {"data": data, "session_hash": session})  # NaN as JSON's NaN, as a script may
    r = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers={"content-type": "application/json"}, timeout=60)
    if not r.is_success:
        return f"http {r.status_code}", r.text
    event_id = r.json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/call/{api}/{event_id}", timeout=180) as events:
        kind = None
        for line in events.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("complete", "error"):
                return kind, json.loads(line[6:])
    raise AssertionError(f"/{api} ended without an answer")


def said(kind: str, payload) -> str:
    """The message a caller reads: an error's text, or the "⚠️" status line among the outputs."""
    if kind == "error":
        return str(payload.get("error") if isinstance(payload, dict) else payload)
    if kind == "complete":
        shown = [t for t in payload if isinstance(t, str) and t.startswith("⚠️")]
        return shown[0] if shown else f"(no refusal: {payload!r})"
    return f"({kind}: {payload})"


class World:
    """A server with questions to rate, and sessions set up as the cases need."""

    def __init__(self, url: str, deps):
        self.url, self.deps = url, deps
        q = sample_items()[0][0]
        deps.store.add_questions([q])
        deps.store.add_rationale(Rationale(q.id, "Friction balances the push. Thus, the answer is (C).", "teacher", "m"))
        deps.store.add_rationale(Rationale(q.id, "It is pushed. Thus, the answer is (C).", "student", "s"))
        self.pin = ""

    def session(self, who: str) -> str:
        session = uuid.uuid4().hex[:12]
        if who == "rater":
            kind, out = call(self.url, "sign_in", [f"r{session[:6]}", ""], session)
            assert kind == "complete", out
            ids = {r["id"] for r in self.deps.store.db.query("select id from rationales")}
            self.pin = next(v for v in out if isinstance(v, str) and v in ids)  # the form's pin, among the outputs
        elif who == "reviewer":
            assert call(self.url, "reviewer_sign_in", ["rev", "sesame"], session)[0] == "complete"
        elif who == "asked":
            assert call(self.url, "ask", ASK, session)[0] == "complete"
            assert "Queued" in call(self.url, "send_to_queue", [], session)[1][0]  # the answer is queued once
        return session

    def run(self, case: ApiCase, capfd, caplog) -> str:
        session = self.session(case.who)
        data = (
            [self.pin if v == "{pin}" else [self.pin] if v == ["{pin}"] else v for v in case.data]
            if isinstance(case.data, list)
            else case.data
        )
        capfd.readouterr()
        caplog.clear()
        before = dump(self.deps.settings.db_path)
        message = said(*call(self.url, case.api, data, session))
        refused = [r.getMessage() for r in caplog.records if r.name == "scicot.app" and r.levelno == logging.WARNING]
        err = capfd.readouterr().err
        assert case.expect.lower() in message.lower(), (case.name, message)
        assert len(refused) == case.logged and all(r.startswith("refused ") for r in refused), (case.name, refused)
        assert "Traceback" not in err, (case.name, err)
        assert dump(self.deps.settings.db_path) == before, case.name
        return message


@pytest.fixture
def world(app_server):
    return World(*app_server)


@pytest.mark.slow
def test_every_bad_api_input_is_one_refusal_no_traceback_and_no_write(world, capfd, caplog):
    """Every case, then the table of them in docs/bad_input.md (`SCICOT_WRITE_DOCS=1` rewrites it)."""
    caplog.set_level(logging.WARNING, logger="scicot.app")
    problems, rows = [], []
    for case in CASES:
        try:
            rows.append(f"| {cell(case.name)} | {code(shown(case))} | {code(world.run(case, capfd, caplog))} | yes |")
        except AssertionError as e:
            problems.append(f"{case.name}: {e}")
    assert not problems, f"{len(problems)} of {len(CASES)} cases fail:\n" + "\n".join(problems)
    text = "\n".join([*API_HEAD, *rows]) + "\n"
    written = DOCS.read_text()
    if os.environ.get("SCICOT_WRITE_DOCS"):
        DOCS.write_text(written.partition(API_PART)[0] + API_PART + text)
        written = DOCS.read_text()
    assert written.partition(API_PART)[2] == text, "docs/bad_input.md is stale: rerun with SCICOT_WRITE_DOCS=1"


API_HEAD = [
    "",
    "## The app's raw API",
    "",
    "Generated by `tests/test_api_bad_input.py` against a real server, over plain HTTP (`POST",
    "/gradio_api/call/<endpoint>` with a session, or the keyword API `/gradio_api/call/v2/<endpoint>`). Each ends",
    "in the message shown (an error event, or the form's ⚠️ status line), one `refused <action>: ...` line in the",
    "server log (none where Gradio's request schema refuses it first), no traceback, and the same store rows before",
    "and after. `PIN` is the rater's current item.",
    "",
    "| case | request | message | store unchanged |",
    "|---|---|---|---|",
]


def shown(case: ApiCase) -> str:
    sent = json.dumps(case.data, ensure_ascii=True).replace('"{pin}"', "PIN")
    if len(sent) > 90:
        sent = sent[:87] + "..."
    return f"/{case.api} {sent}" + (f" (as a {case.who})" if case.who in ("rater", "reviewer") else " (after an ask)" if case.who else "")


def test_no_token_or_secret_in_a_page_that_others_can_open(app_server):
    """Gradio's deep links (`/gradio_api/deep_link?session_hash=...`) save a session's values into
    a page anyone with the link opens: the token a rater was shown, the token and the reviewer
    secret typed into the page, must not be among them."""
    url, deps = app_server
    session = uuid.uuid4().hex[:12]
    kind, out = call(url, "sign_in", ["dora", ""], session)
    token = next(t for t in out if isinstance(t, str) and "Your token: `" in t).split("`")[1]
    assert kind == "complete" and len(token) > 20  # the owner's page gets the token, once

    def shared_page() -> str:
        link = httpx.get(f"{url}gradio_api/deep_link", params={"session_hash": session}).json()
        assert link  # the session is known, and its page is saved
        return httpx.get(url, params={"deep_link": link}).text

    page = shared_page()
    assert "Your token: (shown once" in page and token not in page  # the line that showed it, without it
    assert call(url, "sign_in", ["dora", token], session)[0] == "complete"  # the token typed into the page
    assert call(url, "reviewer_sign_in", ["rev", "sesame"], session)[0] == "complete"  # and the secret
    page = shared_page()
    assert "Rating as **dora**." in page and "rev is a reviewer." in page  # the session's values are in the page ...
    assert token not in page and "sesame" not in page  # ... but no secret


def test_wrong_tokens_slow_down_the_guessing_session_not_the_owner(app_server):
    url, deps = app_server
    deps.store._clock = lambda: 1_700_000_000.0  # time stands still: the delays cannot run out on a slow machine
    owner = uuid.uuid4().hex[:12]
    token = next(t for t in call(url, "sign_in", ["erin", ""], owner)[1] if isinstance(t, str) and "Your token" in t).split("`")[1]
    mallory = uuid.uuid4().hex[:12]
    said_ = [said(*call(url, "sign_in", ["erin", tried], mallory)) for tried in ["guess"] * 5 + [token]]
    assert all("Wrong token for 'erin'" in s for s in said_[:4])
    assert all("Too many wrong attempts from here; wait 2 s" in s for s in said_[4:])  # even with the right token
    for session in (owner, uuid.uuid4().hex[:12]):  # the owner signs in at once, in any session of theirs
        kind, out = call(url, "sign_in", ["erin", token], session)
        assert kind == "complete" and "Rating as **erin**." in out
