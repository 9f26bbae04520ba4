"""The app's teacher endpoints are safe to put on the internet: a typed URL is fetched only when
the operator allowed it, never with the server's API key, within a short bound, and another
server's reply is never shown. Driven through the app's HTTP API against capture servers."""

import time
from dataclasses import replace

import pytest
from conftest import FakeOpenAI, deps_from_env, refusal
from gradio_client import Client

from demo.deps import Deps
from scicot_core.errors import DataError

KEY = "sk-operator-secret"
BASE_SET = "base model (no adapters)"


@pytest.fixture
def servers():
    """The operator's own teacher, one the operator allowed visitors to type, and one not allowed."""
    own, allowed, other = FakeOpenAI(), FakeOpenAI(), FakeOpenAI()
    yield own, allowed, other
    for server in (own, allowed, other):
        server.close()


@pytest.fixture
def app_deps(app_deps, servers):
    """conftest's app dependencies, configured from the environment an operator would set."""
    own, allowed, _ = servers
    env = {
        "SCICOT_TEACHER_URL": own.url,
        "SCICOT_TEACHER_API_KEY": KEY,
        "SCICOT_TEACHER_ALLOWED_URLS": allowed.url + "/",
        "SCICOT_TEACHER_TYPED_TIMEOUT": "1.5",
    }
    return deps_from_env(app_deps, env)


@pytest.fixture
def client(app_server):
    return Client(app_server[0], verbose=False)


def _ask(client, url, stem="Which is a metal?"):
    return client.predict("typed", "SciCoT sample set", None, stem, "iron\nwood", "", "http", url, "", BASE_SET, api_name="/ask")


def _nothing_written(deps, before):
    assert deps.store.counts() == before
    assert not (deps.settings.cache_dir / "teacher-responses").exists()


# -- which endpoint, with which key: VisitorTeachers.endpoint_for -------------------------------
def test_only_the_operators_own_endpoint_gets_the_key(app_deps, servers):
    own, allowed, other = servers
    for typed in ("", own.url, own.url + "/"):
        endpoint = app_deps.teachers.endpoint_for(typed, "")
        assert (endpoint.base_url, endpoint.api_key) == (own.url, KEY)
    typed = app_deps.teachers.endpoint_for(allowed.url + "/", "small")
    assert (typed.base_url, typed.model, typed.api_key) == (allowed.url, "small", None)
    assert (typed.deadline, typed.max_retries, typed.timeout_setting) == (1.5, 1, "SCICOT_TEACHER_TYPED_TIMEOUT")
    with pytest.raises(DataError, match="not allowed on this server.*SCICOT_TEACHER_ALLOWED_URLS"):
        app_deps.teachers.endpoint_for(other.url, "")


def test_without_an_allow_list_no_typed_url_is_fetched(app_deps, servers):
    own, allowed, _ = servers
    app_deps = Deps(replace(app_deps.settings, endpoint=None, allowed_urls=()), app_deps.store, app_deps.model.get)
    with pytest.raises(DataError, match="no teacher endpoint of its own"):
        app_deps.teachers.endpoint_for("", "")
    with pytest.raises(DataError, match="not allowed"):
        app_deps.teachers.endpoint_for(allowed.url, "")
    assert "no other URL is allowed" in app_deps.teachers.endpoint_help()


# -- finding 1: the server's API key goes to any URL a visitor types ----------------------------
def test_a_typed_url_never_receives_the_servers_key_over_the_api(client, app_server, servers):
    deps = app_server[1]
    own, allowed, other = servers
    _ask(client, allowed.url)
    assert [r["auth"] for r in allowed.requests] == [None]
    _ask(client, own.url, stem="Which is a gas?")
    assert [r["auth"] for r in own.requests] == [f"Bearer {KEY}"]
    before = deps.store.counts()
    refusal(_ask(client, other.url, stem="Which is a liquid?"), "not allowed on this server")
    assert other.requests == [] and deps.store.counts() == before


# -- finding 2: server-side request forgery, with the response shown -----------------------------
def test_a_url_not_on_the_allow_list_is_never_fetched(client, app_server, servers):
    deps = app_server[1]
    other = servers[2]
    internal = other.url.replace("/v1", "/internal?x=")
    before = deps.store.counts()
    shown = refusal(_ask(client, internal), "not allowed on this server")
    assert "internal" not in shown and other.requests == []
    _nothing_written(deps, before)


def test_another_servers_reply_is_never_shown(client, app_server, servers):
    deps = app_server[1]
    allowed = servers[1]
    allowed.script.append(("status", 403, {}, "INTERNAL-ADMIN-PAGE: users=alice,bob"))
    before = deps.store.counts()
    shown = refusal(_ask(client, allowed.url), "answered HTTP 403; check the URL")
    assert "INTERNAL-ADMIN-PAGE" not in shown
    _nothing_written(deps, before)


def test_a_typed_endpoint_holds_a_worker_only_for_the_typed_bound(client, app_server, servers):
    deps = app_server[1]
    allowed = servers[1]
    allowed.script.extend([("sleep", 8)] * 3)
    before = deps.store.counts()
    start = time.monotonic()
    refusal(_ask(client, allowed.url), "timed out.*SCICOT_TEACHER_TYPED_TIMEOUT")
    assert time.monotonic() - start < 1.5 + 1.5  # the bound, plus the app's own round trip
    assert len(allowed.requests) <= 2
    _nothing_written(deps, before)
