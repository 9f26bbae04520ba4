"""The bad-input table of issue 10 (findings 7, 8 and 11): every input that crashed, fooled or got
active HTML into the `scicot` command or the app, run for real. Each must end in one `Error: ...`
line (the app: one message), a non-zero exit, and nothing written: the store's rows and every file
in the test's folder are the same before and after.

The same runs make docs/bad_input.md. `SCICOT_WRITE_DOCS=1 pytest tests/test_bad_input.py`
rewrites it; otherwise the test checks that the committed table still says what the code does."""

from __future__ import annotations

import hashlib
import html
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotations.store import Store
from demo import handlers
from demo.cli import main
from demo.deps import Deps
from scicot_core.distillation_set import DistillRecord
from scicot_core.errors import ScicotError
from scicot_core.questions import Choice, Question, sample_items
from scicot_core.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"
SECRET = "sesame"
WATCHED = ("/dev/null-wal", "/dev/null-shm", "/dev/null-journal")  # what opening /dev/null as SQLite would create
SAMPLE_Q = sample_items()[0][0]


def record(rationale: str = "Heat flows from warm to cold. Thus, the answer is (A).", **changes) -> str:
    """A distillation-set line for a new question (changes apply to the record, or to its question)."""
    row = {
        "id": "new-1",
        "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "A"}, {"text": "cold", "label": "B"}]},
        "answerKey": "A",
        "rationale": rationale,
        "teacher": "t",
    }
    for key, value in changes.items():
        (row["question"] if key in ("stem", "choices") else row)[key] = value
    return json.dumps(row)


ARGS_27 = tuple(x for i in range(27) for x in ("--choice", f"choice {i}"))
RATE = ("db", "rate", "{rid}", "--rater", "ann")
SCORES = ("--score", "clarity=3", "--score", "supports_answer=3")
ASK = ("ask", "--question", "What melts ice?", "--choice", "heat", "--choice", "cold", "--teacher", "none")


@dataclass(frozen=True)
class Case:
    name: str
    finding: int
    args: tuple  # "{tmp}" is the test's folder, "{rid}" a stored rationale
    expect: str  # a fragment of the one-line message
    env: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # relative path -> text; a path ending in "/" is a folder
    shown: str = ""  # the command as the docs show it, where the real one is too long to read


CASES = [
    # Finding 7: raw tracebacks.
    Case("score nan", 7, (*RATE, "--score", "correctness=nan", *SCORES), "score for correctness is 'nan'"),
    Case("score inf", 7, (*RATE, "--score", "correctness=inf", *SCORES), "score for correctness is 'inf'"),
    Case(
        "import a line nested 100,000 deep",
        7,
        ("db", "import", "{tmp}/deep.jsonl"),
        "nested more than 32 levels",
        files={"deep.jsonl": "[" * 100_000 + "]" * 100_000},
    ),
    Case(
        "export onto a folder",
        7,
        ("db", "export", "{tmp}/folder", "--reviewer", "rev"),
        "is a folder; give a file path",
        files={"folder/": ""},
    ),
    Case(
        "export into a folder that cannot be made (its parent is a file)",
        7,
        ("db", "export", "{tmp}/a-file/out.jsonl", "--reviewer", "rev"),
        "a-file is a file, not a folder",
        files={"a-file": "x"},
    ),
    Case(
        "SCICOT_DB is a folder (db stats)",
        7,
        ("db", "stats"),
        "is not an SQLite store file",
        {"SCICOT_DB": "{tmp}/folder"},
        {"folder/": ""},
    ),
    Case(
        "SCICOT_DB is a folder (db rate)",
        7,
        (*RATE, "--score", "correctness=3", *SCORES),
        "is not an SQLite store file",
        {"SCICOT_DB": "{tmp}/folder"},
        {"folder/": ""},
    ),
    Case(
        "SCICOT_DB is the null device (db stats)", 7, ("db", "stats"), "/dev/null is not an SQLite store file", {"SCICOT_DB": "/dev/null"}
    ),
    Case(
        "SCICOT_DB is the null device (db rate)",
        7,
        (*RATE, "--score", "correctness=3", *SCORES),
        "/dev/null is not an SQLite store file",
        {"SCICOT_DB": "/dev/null"},
    ),
    Case(
        "SCICOT_DB is not SQLite (db stats)",
        7,
        ("db", "stats"),
        "notes.txt is not an SQLite store file",
        {"SCICOT_DB": "{tmp}/notes.txt"},
        {"notes.txt": "my notes\n"},
    ),
    Case(
        "SCICOT_DB is not SQLite (db rate)",
        7,
        (*RATE, "--score", "correctness=3", *SCORES),
        "notes.txt is not an SQLite store file",
        {"SCICOT_DB": "{tmp}/notes.txt"},
        {"notes.txt": "my notes\n"},
    ),
    Case(
        "SCICOT_THREADS=-1",
        7,
        ("ask", "--sample", "sample-physics-01", "--teacher", "none"),
        "SCICOT_THREADS='-1' is below 1",
        {"SCICOT_THREADS": "-1"},
    ),
    Case(
        "SCICOT_MERGE=maybe",
        7,
        ("ask", "--sample", "sample-physics-01", "--teacher", "none"),
        "SCICOT_MERGE='maybe' is neither on nor off",
        {"SCICOT_MERGE": "maybe"},
    ),
    Case(
        "train --set lm_weight=heavy",
        7,
        ("train", "--stage", "answer", "--data", "{tmp}/q.jsonl", "--out", "{tmp}/trained", "--set", "lm_weight=heavy"),
        "--set lm_weight='heavy': lm_weight takes a number",
    ),
    Case(
        "train --set hold_out=2/2",
        7,
        ("train", "--stage", "rationale", "--data", "{tmp}/q.jsonl", "--out", "{tmp}/trained", "--set", "hold_out=2/2"),
        "fold '2/2' is not K/N with 0 <= K < N and N >= 2",
    ),
    Case(
        "sample --fold half",
        7,
        ("sample", "--questions", "{tmp}/q.jsonl", "--adapters", "{tmp}/folder", "--fold", "half", "--out", "{tmp}/own.jsonl"),
        "fold 'half' is not K/N",
    ),
    Case(
        "train --set batch_size=many",
        7,
        ("train", "--stage", "answer", "--data", "{tmp}/q.jsonl", "--out", "{tmp}/trained", "--set", "batch_size=many"),
        "--set batch_size='many': batch_size takes a whole number",
    ),
    Case("ask --max-tokens -1", 7, (*ASK, "--max-tokens", "-1"), "'--max-tokens': -1 is not in the range"),
    Case("eval --batch-size 0", 7, ("eval", "--questions", "{tmp}/q.jsonl", "--batch-size", "0"), "'--batch-size': 0 is not in the range"),
    # Finding 8: accepted silently.
    Case(
        "teach --limit 0",
        8,
        ("teach", "--questions", "{tmp}/q.jsonl", "--teacher", "sample", "--limit", "0", "--out", "{tmp}/taught.jsonl"),
        "'--limit': 0 is not in the range x>=1",
    ),
    Case(
        "teach --limit -2",
        8,
        ("teach", "--questions", "{tmp}/q.jsonl", "--teacher", "sample", "--limit", "-2", "--out", "{tmp}/taught.jsonl"),
        "'--limit': -2 is not in the range x>=1",
    ),
    Case("eval --limit 0", 8, ("eval", "--questions", "{tmp}/q.jsonl", "--limit", "0"), "'--limit': 0 is not in the range x>=1"),
    Case("SCICOT_ADAPTERS is a missing folder", 8, ASK, "does not exist; point SCICOT_ADAPTERS", {"SCICOT_ADAPTERS": "{tmp}/nonexistent"}),
    Case(
        "SCICOT_ADAPTERS holds no adapters",
        8,
        ASK,
        "holds no <stage>/adapter_config.json",
        {"SCICOT_ADAPTERS": "{tmp}/folder"},
        {"folder/": ""},
    ),
    Case(
        "ask a 100 KB question",
        8,
        ("ask", "--question", "x" * 100_000, "--choice", "a", "--choice", "b", "--teacher", "none"),
        "the question is 100,000 characters; keep it under 2000",
    ),
    Case("ask with a 301-character choice", 8, (*ASK, "--choice", "y" * 301), "choice C is 301 characters"),
    Case("ask with the same choice twice", 8, (*ASK, "--choice", " heat "), "choices A and C are the same ('heat')"),
    Case(
        "ask with 27 choices",
        8,
        ("ask", "--question", "Why?", *ARGS_27, "--teacher", "none"),
        "give 2 to 9 choices (you gave 27)",
        shown='scicot ask --question "Why?" --choice "choice 0" ... --choice "choice 26" --teacher none',
    ),
    Case(
        "import an id given as a list",
        8,
        ("db", "import", "{tmp}/d.jsonl"),
        '"id" must be a string or a whole number, not list',
        files={"d.jsonl": record(id=["new-1"])},
    ),
    Case(
        "import a 1 MB stem",
        8,
        ("db", "import", "{tmp}/d.jsonl"),
        "the stem is 1,000,000 characters; keep it under 2000",
        files={"d.jsonl": record(stem="x" * 1_000_000)},
    ),
    Case(
        "import one id with two different questions",
        8,
        ("db", "import", "{tmp}/d.jsonl"),
        "d.jsonl:2: id 'new-1' is also on line 1 with a different question",
        files={"d.jsonl": record() + "\n" + record(stem="What freezes water?")},
    ),
    Case(
        "import a stored id with a different question",
        8,
        ("db", "import", "{tmp}/d.jsonl"),
        f"question '{SAMPLE_Q.id}' is already in the store with a different text or answer",
        files={"d.jsonl": record(id=SAMPLE_Q.id)},
    ),
    # Finding 11: stored HTML and active links.
    Case(
        "import <script> in a question stem",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "question stem contains HTML",
        files={"d.jsonl": record(stem="<script>alert(1)</script> What melts ice?")},
    ),
    Case(
        "import <img onerror> in a choice",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "choice B contains HTML",
        files={"d.jsonl": record(choices=[{"text": "heat", "label": "A"}, {"text": '<img src=x onerror="alert(1)">', "label": "B"}])},
    ),
    Case(
        "import &#106;avascript: in a rationale",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "rationale contains a javascript: link",
        files={"d.jsonl": record("[why](&#106;avascript:alert(1)) Thus, the answer is (A).")},
    ),
    Case(
        "import java&#x09;script: in a rationale",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "rationale contains a javascript: link",
        files={"d.jsonl": record("[why](java&#x09;script:alert(1)) Thus, the answer is (A).")},
    ),
    Case(
        "import vbscript: in a rationale",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "rationale contains a vbscript: link",
        files={"d.jsonl": record("[why](vbscript:msgbox(1)) Thus, the answer is (A).")},
    ),
    Case(
        "import a Markdown link to data:",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "rationale contains a link to a data: address",
        files={"d.jsonl": record("[why](data:text/html;base64,PHNjcmlwdD4=) Thus, the answer is (A).")},
    ),
    Case(
        "import a Markdown image from javascript:",
        11,
        ("db", "import", "{tmp}/d.jsonl"),
        "rationale contains a javascript: link",
        files={"d.jsonl": record("![x](javascript:alert(1)) Thus, the answer is (A).")},
    ),
    Case(
        "rate with a comment linking to data:",
        11,
        (*RATE, "--score", "correctness=3", *SCORES, "--comment", "[x](data:text/html,hi)"),
        "comment contains a link to a data: address",
    ),
    Case(
        "curate with a reason holding &#106;avascript:",
        11,
        ("db", "curate", "{rid}", "--reviewer", "rev", "--decision", "reject", "--reason", "[x](&#106;avascript:alert(1))"),
        "reason contains a javascript: link",
    ),
]

# Finding 11 through the app: what `/send_to_queue` stores is the result of asking a typed question.
APP_CASES = [
    ("<script> in a typed question", {"stem": "<script>alert(1)</script> Why?"}, "question stem contains HTML"),
    ("<img onerror> in a typed choice", {"choices": ["heat", "<img src=x onerror=alert(1)>"]}, "choice B contains HTML"),
    (
        "&#106;avascript: link in a typed question",
        {"stem": "See [this](&#106;avascript:alert(1))."},
        "question stem contains a javascript: link",
    ),
    (
        "data: link in the teacher rationale",
        {"teacher": "[x](data:text/html,hi) Thus, the answer is (A)."},
        "rationale contains a link to a data:",
    ),
    ("javascript: link in the student rationale", {"student": "[x](java\tscript:alert(1))"}, "rationale contains a javascript: link"),
]


# -- running a case --------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Every bad input must be refused before a model loads."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a bad input")

    monkeypatch.setattr("scicot_core.base_models.load_model", refuse)


def world(tmp: Path) -> str:
    """A store with three sample questions and rationales, a rater and a reviewer; returns a rationale id."""
    store = Store(tmp / "store.db", reviewer_secret=SECRET)
    store.import_records([DistillRecord(q, text, "ref") for q, text in sample_items()[:3]])
    (tmp / "ann.token").write_text(store.claim_rater("ann"))  # `db rate` signs ann in with it (SCICOT_RATER_TOKEN)
    store.add_rater("rev")
    store.grant_reviewer("rev", SECRET)
    rid = store.rationales_for(SAMPLE_Q.id)[0]["id"]
    store.close()
    (tmp / "q.jsonl").write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:3]))
    return rid


def snapshot(tmp: Path) -> dict:
    """Every file under `tmp` (the store by its rows: SQLite may touch its bytes when opened) and the watched paths."""
    files = {}
    for path in sorted(tmp.rglob("*")):
        if path.name.startswith("store.db"):
            continue
        files[str(path.relative_to(tmp))] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    conn = sqlite3.connect(f"file:{tmp / 'store.db'}?mode=ro", uri=True)
    tables = [name for (name,) in conn.execute("select name from sqlite_master where type = 'table' order by name")]
    rows = {t: sorted(map(repr, conn.execute(f"select * from [{t}]"))) for t in tables}
    conn.close()
    return {"files": files, "rows": rows, "watched": {w: os.path.exists(w) for w in WATCHED}}


def run_case(case: Case, tmp: Path) -> str:
    """Run one CLI case, check it, and return its message with the folder written as <tmp>."""
    rid = world(tmp)
    for name, text in case.files.items():
        path = tmp / name
        path.mkdir(parents=True) if name.endswith("/") else path.write_text(text)

    def fill(value: str) -> str:
        return value.replace("{tmp}", str(tmp)).replace("{rid}", rid)

    env = {
        "SCICOT_DB": str(tmp / "store.db"),
        "SCICOT_REVIEWER_SECRET": SECRET,
        "SCICOT_CACHE_DIR": str(tmp / "cache"),
        "SCICOT_DATA_DIR": "",
        "SCICOT_ADAPTERS": "",
        "SCICOT_THREADS": "",
        "HF_HUB_OFFLINE": "1",
        "SCICOT_RATER_TOKEN": (tmp / "ann.token").read_text(),
    } | {k: fill(v) for k, v in case.env.items()}
    before = snapshot(tmp)
    result = CliRunner().invoke(main, [fill(a) for a in case.args], env=env, prog_name="scicot")
    assert isinstance(result.exception, SystemExit) and result.exit_code != 0, (case.name, result.output, result.exception)
    assert "Traceback" not in result.output and result.output.count("\n") == 1, (case.name, result.output)
    assert result.output.startswith("Error: ") and case.expect in result.output, (case.name, result.output)
    assert snapshot(tmp) == before, case.name
    return f"{result.output.strip().replace(str(tmp), '<tmp>')} (exit {result.exit_code})"


def run_app_case(changes: dict, tmp: Path) -> str:
    """Send what asking a typed question would have produced to the rating queue; return the message."""
    world(tmp)
    settings = Settings(cache_dir=tmp / "cache", db_path=tmp / "store.db", reviewer_secret=SECRET)
    deps = Deps(settings, Store(settings.db_path, reviewer_secret=SECRET), lambda: None)
    choices = changes.get("choices", ["heat", "cold"])
    q = Question(
        "typed-test", changes.get("stem", "What melts ice?"), tuple(Choice(label, c) for label, c in zip("AB", choices)), "A", "typed"
    )
    result = {
        "question": q.to_ai2() | {"source": "typed"},
        "teacher": {
            "text": changes.get("teacher", "Heat melts ice. Thus, the answer is (A)."),
            "model_id": "t",
            "note": "",
            "duration_ms": 1,
        },
        "student": {"text": changes.get("student", "Heat. Thus, the answer is (A)."), "model_id": "s", "duration_ms": 1},
    }
    before = snapshot(tmp)
    with pytest.raises(ScicotError) as e:
        handlers.send_to_queue(deps, result)
    deps.store.close()
    assert snapshot(tmp) == before
    return str(e.value).replace(str(tmp), "<tmp>")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.finding}-{c.name}")
def test_bad_input_is_one_line_a_non_zero_exit_and_no_write(case, tmp_path):
    run_case(case, tmp_path)


@pytest.mark.parametrize("name, changes, expect", APP_CASES, ids=[c[0] for c in APP_CASES])
def test_the_app_stores_no_active_html_through_send_to_queue(name, changes, expect, tmp_path):
    assert expect in run_app_case(changes, tmp_path)


# -- the table in the docs -------------------------------------------------------------------------
def command(case: Case) -> str:
    if case.shown:
        return case.shown

    def show(arg: str) -> str:
        arg = arg.replace("{tmp}/", "").replace("{rid}", "R")
        if len(arg) > 40:
            return f"<{len(arg):,} characters>"
        return arg if arg and all(ch.isalnum() or ch in "-_./=<>{}" for ch in arg) else json.dumps(arg)

    env = " ".join(f"{k}={show(v)}" for k, v in case.env.items())
    return (env + " " if env else "") + "scicot " + " ".join(show(a) for a in case.args)


def cell(text: str) -> str:
    """Table-safe text: entities and tags shown as typed, not rendered."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("\n", " ") + "`"


def table(tmp_path_factory) -> str:
    lines = [
        "# Bad input: what the `scicot` command and the app answer",
        "",
        "Generated by `tests/test_bad_input.py` from real runs (`SCICOT_WRITE_DOCS=1 pytest tests/test_bad_input.py`",
        "rewrites it). Each case answers with the one line shown and a non-zero exit (the app: that message), and",
        "writes nothing: the store's rows and every file in the folder are the same before and after. Paths are",
        "relative to the test's folder (`<tmp>` in messages); `R` is a stored rationale; the number is the finding of issue 10.",
        "",
        "| case | message | nothing written |",
        "|---|---|---|",
    ]
    for case in CASES:
        message = run_case(case, tmp_path_factory.mktemp("case"))
        lines.append(
            f"| ({case.finding}) {cell(case.name)} — {code(command(case))} | {code(message)} | yes: store rows and files unchanged |"
        )
    for name, changes, _ in APP_CASES:
        message = run_app_case(changes, tmp_path_factory.mktemp("app"))
        lines.append(
            f"| (11) app, Ask then Send to queue (`/send_to_queue`) — {cell(name)} | {code(message)} | yes: store rows unchanged |"
        )
    return "\n".join(lines) + "\n"


API_PART = "\n<!-- The app's raw API: written by tests/test_api_bad_input.py -->\n"


def test_the_docs_table_is_what_the_code_says(tmp_path_factory):
    """This file writes the part of docs/bad_input.md before `API_PART`; test_api_bad_input.py the rest."""
    text = table(tmp_path_factory)
    written = DOCS.read_text() if DOCS.exists() else ""
    if os.environ.get("SCICOT_WRITE_DOCS"):
        DOCS.write_text(text + API_PART + written.partition(API_PART)[2])
        written = DOCS.read_text()
    assert written.partition(API_PART)[0] == text, "docs/bad_input.md is stale: rerun with SCICOT_WRITE_DOCS=1"
