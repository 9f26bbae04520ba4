"""Issue 10, findings 3, 5, 9 and 10, each through the face it was found in: the app over its
HTTP API (a real server), the `scicot db` commands through click's runner. Every refusal is
one clear line and writes nothing."""

import dataclasses
import json
import re
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner
from conftest import refusal
from gradio_client import Client

from annotations.store import Store
from demo import handlers as h
from demo.cli import main
from scicot_core.errors import PermissionDenied
from scicot_core.questions import Rationale, sample_items

SCORES = ["--score", "correctness=5", "--score", "clarity=4", "--score", "supports_answer=5"]


def queue_one(store: Store) -> str:
    q = sample_items()[0][0]
    store.add_questions([q])
    return store.add_rationale(Rationale(q.id, "Friction balances the push. Thus, the answer is (C).", "teacher", "m"))


def token_in(signed_md: str) -> str:
    return re.search(r"Your token: `([^`]+)`", signed_md).group(1)


# -- 3: anyone could rate as anyone --------------------------------------------------------------
def test_3_a_claimed_name_signs_in_only_with_its_token_over_the_api(app_server):
    url, deps = app_server
    queue_one(deps.store)
    alice = Client(url, verbose=False)
    signed, *_, pin, _, _, _, _, _, _ = alice.predict("alice", "", api_name="/sign_in")
    alice.predict(pin, "", "", 5, 5, 5, "teacher", "mine", api_name="/submit_rating")
    [rating] = deps.store.ratings()
    before = deps.store.counts()
    mallory = Client(url, verbose=False)
    for tried, message in (("", "'alice' is already claimed"), ("guess", "wrong token for 'alice'")):
        refusal(mallory.predict("alice", tried, api_name="/sign_in"), message)
    refusal(mallory.predict(pin, "", "", 1, 1, 1, "student", "overwritten", api_name="/submit_rating"), "sign in first")
    assert deps.store.ratings() == [rating] and deps.store.counts() == before
    elsewhere = Client(url, verbose=False)  # alice on another machine, with her token
    assert elsewhere.predict("alice", token_in(signed), api_name="/sign_in")[0] == "Rating as **alice**."


def test_3_the_rater_comes_from_server_state_never_from_the_request(app_server):
    url, deps = app_server
    rid = queue_one(deps.store)
    Client(url, verbose=False).predict("alice", "", api_name="/sign_in")
    config = httpx.get(url + "config").json()
    fn = next(d for d in config["dependencies"] if d.get("api_name") == "submit_rating")
    forged = ["alice", rid, rid, "", "", 1, 1, 1, "student", "forged"]  # every input, the two gr.State ones included
    assert httpx.post(url + "gradio_api/queue/join", json={"data": forged, "fn_index": fn["id"], "session_hash": "forged"}).is_success
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": "forged"}, timeout=60) as events:
        done = next(json.loads(line[5:]) for line in events.iter_lines() if "process_completed" in line)
    refusal(done["output"]["data"], "sign in first")  # answered as the form's status line, nothing stored
    assert deps.store.ratings(status=None) == []


def test_3_on_a_space_only_the_hugging_face_login_rates(app_deps, monkeypatch):
    import gradio.routes

    from demo.ui import build_demo

    # Building an app with a LoginButton sets up OAuth, which needs gradio[oauth]; only the layout is checked here.
    monkeypatch.setattr(gradio.routes, "attach_oauth", lambda app: None)

    app_deps.settings = dataclasses.replace(app_deps.settings, on_space=True)
    before = app_deps.store.counts()
    with pytest.raises(PermissionDenied, match="log in with Hugging Face to rate"):
        h.sign_in(app_deps, None, "alice")
    assert app_deps.store.counts() == before
    assert h.sign_in(app_deps, SimpleNamespace(username="alice"), "mallory", "")[0] == "alice"
    boxes = [b for b in build_demo(app_deps).blocks.values() if getattr(b, "elem_id", None) in ("rater-name", "rater-token")]
    assert len(boxes) == 2 and not any(b.visible for b in boxes)


# -- 5: reviewer sign-in was not throttled (and then, issue 33, the throttle locked everyone out) ----
def test_5_wrong_reviewer_secrets_slow_down_that_session_only_over_the_api(app_server):
    url, deps = app_server
    client = Client(url, verbose=False)
    for _ in range(4):
        refusal(client.predict("rev", "guess", api_name="/reviewer_sign_in"), "wrong reviewer secret")
    # That session must wait now, even with the right secret: otherwise guessing would simply go on.
    refusal(client.predict("rev", "sesame", api_name="/reviewer_sign_in"), r"too many wrong attempts from here; wait \d+ s")
    refusal(client.predict("jsonl", True, 0, 0, api_name="/export"), "sign in as a reviewer")
    assert deps.store.counts()["raters"] == 0
    # The reviewer, in a session of their own (the same address: 127.0.0.1), is not locked out.
    assert Client(url, verbose=False).predict("rev", "sesame", api_name="/reviewer_sign_in") == "rev is a reviewer."


# -- 9: written despite failing -----------------------------------------------------------------------
def test_9_a_wrong_secret_in_the_app_adds_no_rater(app_server):
    url, deps = app_server
    before = deps.store.counts()
    refusal(Client(url, verbose=False).predict("rev", "guess", api_name="/reviewer_sign_in"), "wrong reviewer secret")
    assert deps.store.counts() == before


@pytest.fixture
def cli_store(tmp_path):
    """A store file with one rationale and a reviewer, built with the verbs every version has."""
    store = Store(tmp_path / "cli.db", reviewer_secret="sesame")
    store.rid = queue_one(store)
    store.add_rater("rev")
    store.grant_reviewer("rev", "sesame")
    return store


def cli(store: Store, *args, secret: str | None = "sesame"):
    env = {"SCICOT_DB": str(store.path), "SCICOT_REVIEWER_SECRET": secret, "SCICOT_RATER_TOKEN": None, "SCICOT_DATA_DIR": ""}
    return CliRunner().invoke(main, list(args), env=env)


def refused(result, message: str) -> bool:
    """A non-zero exit with one line, `Error: ...`, and nothing else printed."""
    return (
        result.exit_code == 1 and result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith(f"Error: {message}")
    )


def test_9_failed_cli_commands_write_nothing(cli_store):
    before = cli_store.counts()
    rate = cli(cli_store, "db", "rate", "r-nope", "--rater", "zed", *SCORES)
    grant = cli(cli_store, "db", "grant", "newrev", "--secret", "nope")
    assert cli_store.counts() == before
    assert refused(rate, "unknown rater 'zed'") and refused(grant, "wrong reviewer secret")
    token = cli(cli_store, "db", "claim", "ann").stdout.strip()
    before = cli_store.counts()
    assert refused(cli(cli_store, "db", "rate", "r-nope", "--rater", "ann", "--token", token, *SCORES), "unknown rationale 'r-nope'")
    assert refused(cli(cli_store, "db", "rate", cli_store.rid, "--rater", "ann", "--token", "guess", *SCORES), "wrong token for 'ann'")
    assert refused(cli(cli_store, "db", "queue", "--rater", "ann"), "'ann' is already claimed")
    assert refused(cli(cli_store, "db", "claim", "ann"), "'ann' is already claimed")
    assert cli_store.counts() == before


# -- 10: curate and export without the secret ------------------------------------------------------
def test_10_curate_and_export_need_the_secret_at_the_time(cli_store, tmp_path):
    out = tmp_path / "out.jsonl"
    before = cli_store.counts()
    unset = "no reviewer secret is configured; set SCICOT_REVIEWER_SECRET"
    assert refused(cli(cli_store, "db", "curate", cli_store.rid, "--reviewer", "rev", "--decision", "accept", secret=None), unset)
    assert refused(cli(cli_store, "db", "export", str(out), "--reviewer", "rev", secret=None), unset)
    wrong = ("--secret", "guess")
    assert refused(
        cli(cli_store, "db", "curate", cli_store.rid, "--reviewer", "rev", "--decision", "accept", *wrong), "wrong reviewer secret"
    )
    assert refused(cli(cli_store, "db", "export", str(out), "--reviewer", "rev", *wrong), "wrong reviewer secret")
    assert cli_store.counts() == before and not out.exists()
    assert cli(cli_store, "db", "curate", cli_store.rid, "--reviewer", "rev", "--decision", "accept").exit_code == 0
    assert cli(cli_store, "db", "export", str(out), "--reviewer", "rev", "--secret", "sesame").exit_code == 0 and out.exists()
