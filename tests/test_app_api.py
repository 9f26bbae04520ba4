"""The app's API through gradio_client against a real server on 127.0.0.1."""

import pytest
from gradio_client import Client

from scicot_core.questions import Rationale, sample_items


@pytest.fixture
def client(app_server):
    return Client(app_server[0], verbose=False)


def test_every_event_has_a_named_endpoint(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    wanted = {
        "/ask",
        "/send_to_queue",
        "/sign_in",
        "/next_item",
        "/submit_rating",
        "/skip",
        "/save_edit",
        "/reviewer_sign_in",
        "/candidates",
        "/show_candidate",
        "/decide",
        "/export",
        "/append_accepted",
        "/retrain",
        "/stats",
        "/student_accuracy",
        "/toggle_typed",
    }
    assert wanted <= names


def test_ask_send_sign_in_rate_over_the_api(client, app_server):
    deps = app_server[1]
    out = client.predict(
        "pick", "SciCoT sample set", "sample-biology-01", "", "", "", "stand-in", "", "", "base model (no adapters)", api_name="/ask"
    )
    assert "reference rationale" in out[0] and out[2].startswith("### (")
    assert client.predict(api_name="/send_to_queue").startswith("Queued 2")
    item = client.predict("bob", "", api_name="/sign_in")
    assert item[0].startswith("Rating as **bob**, a name new here. Your token: `") and "to go" in item[4]
    pin = item[5]  # the item this form is for: a rating carries it
    status, *_ = client.predict(pin, "", "", 4, 4, 3, "student", "fine", api_name="/submit_rating")
    assert status.startswith("Saved your rating")
    [rating] = deps.store.ratings()
    assert (rating["rater"], rating["scores"], rating["preference"], rating["comment"]) == (
        "bob",
        {"correctness": 4, "clarity": 4, "supports_answer": 3},
        "student",
        "fine",
    )


def test_errors_come_back_as_messages_and_store_nothing(client, app_server, capfd, caplog):
    deps = app_server[1]
    out = client.predict(
        "typed", "SciCoT sample set", None, "Why?", "only one", "", "stand-in", "", "", "base model (no adapters)", api_name="/ask"
    )
    assert out[6] == "⚠️ Give 2 to 9 choices (you gave 1)." and out[0] == {"__type__": "update"}  # the previous answer stays
    q = sample_items()[0][0]
    deps.store.add_questions([q])
    deps.store.add_rationale(Rationale(q.id, "Some text.", "teacher", "m"))
    pin = client.predict("ann", "", api_name="/sign_in")[5]
    before = deps.store.counts()
    status, *rest = client.predict(pin, "", "", 5, 5, 5, "tie", "<script>alert(1)</script>", api_name="/submit_rating")
    assert "HTML" in status and all(r["__type__"] == "update" for r in rest)  # the scores chosen stay
    status, *rest = client.predict(pin, "", "", 5, None, 5, "tie", "", api_name="/submit_rating")
    assert status == "⚠️ Score every criterion before submitting (missing: Clarity)."
    download, status = client.predict("jsonl", True, 0, 0, api_name="/export")
    assert download == {"__type__": "update"} and status.startswith("⚠️ Sign in as a reviewer")  # no badge over the form
    assert deps.store.counts() == before
    refused = [r.getMessage() for r in caplog.records if r.name == "scicot.app"]
    assert len(refused) == 4 and refused[2].startswith("refused submit_then_next: score every criterion")
    assert "Traceback" not in capfd.readouterr().err  # one line per user error, no traceback


def test_html_in_a_typed_question_is_not_stored_through_send_to_queue(client, app_server):
    deps = app_server[1]
    stem = '<img src=x onerror="window.__xss=1"> Which melts ice?'
    out = client.predict(
        "typed", "SciCoT sample set", None, stem, "heat\ncold", "A", "stand-in", "", "", "base model (no adapters)", api_name="/ask"
    )
    assert out[2].startswith("### (")  # asking is fine (the app shows text escaped); storing it is not
    before = deps.store.counts()
    assert client.predict(api_name="/send_to_queue").startswith("⚠️ Question stem contains HTML such as &lt;script&gt;")
    assert deps.store.counts() == before


def test_an_export_downloads_from_the_exports_folder(client, app_server):
    deps = app_server[1]
    q, text = sample_items()[0]
    deps.store.add_questions([q])
    deps.store.add_rationale(Rationale(q.id, text, "teacher", "m"))
    client.predict("rev", "sesame", api_name="/reviewer_sign_in")
    path, status = client.predict("jsonl", False, 0, 0, api_name="/export")
    assert open(path).read().count("\n") == 1 and status.startswith("Exported")
    [written] = (deps.settings.cache_dir / "exports").iterdir()
    assert written.name.startswith("scicot-distill-") and written.read_bytes() == open(path, "rb").read()
