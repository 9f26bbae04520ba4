"""Rater identity in the store: names claimed with a token shown once, signing in only with that
token or the operator's secret, raters from before tokens, and the throttle on wrong guesses
(a fake clock steps through it; nothing sleeps)."""

import hashlib
import sqlite3

import pytest
from sqlite_utils import Database

from annotations.identity import FAILURE_WINDOW_S, FREE_PER_ADDRESS, FREE_PER_SESSION, MAX_DELAY_S, Client
from annotations.migrations import migrations
from annotations.store import Store
from scicot_core.errors import DataError, PermissionDenied


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    return Store(tmp_path / "id.db", reviewer_secret="sesame", clock=clock)


def tables(store: Store) -> dict:
    """Every row of every table but the failure log (failures are recorded on purpose)."""
    conn = sqlite3.connect(store.path)
    names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' and name != 'auth_failures'")]
    return {t: sorted(map(repr, conn.execute(f"select * from [{t}]").fetchall())) for t in names}


def failures(store: Store) -> list[tuple]:
    return [(r["kind"], r["name"]) for r in store.db.query("select kind, name from auth_failures order by id")]


def test_a_name_is_claimed_once_and_then_needs_its_token(store):
    alice = store.authenticate("alice")
    assert alice.name == "alice" and len(alice.new_token) >= 32
    [row] = store.db.query("select * from raters")
    assert row["token_hash"] == hashlib.sha256(alice.new_token.encode()).hexdigest()
    assert alice.new_token.encode() not in store.path.read_bytes()  # only the hash is kept
    assert store.authenticate("alice", token=alice.new_token) == ("alice", None)
    assert store.authenticate(" alice ", token=alice.new_token).name == "alice"
    before = tables(store)
    with pytest.raises(PermissionDenied, match="'alice' is already claimed; give its token"):
        store.authenticate("alice")
    with pytest.raises(PermissionDenied, match="wrong token for 'alice'"):
        store.authenticate("alice", token="guess")
    with pytest.raises(PermissionDenied, match="already claimed"):
        store.claim_rater("alice")
    with pytest.raises(DataError, match="unknown rater 'alise'; check the spelling"):
        store.authenticate("alise", token=alice.new_token)
    with pytest.raises(DataError, match="unknown rater 'bob'"):
        store.authenticate("bob", claim=False)
    with pytest.raises(DataError, match="not valid"):
        store.authenticate("<b>eve</b>")
    assert tables(store) == before and failures(store) == [("token", "alice")]


def test_the_operator_secret_signs_in_as_anyone_and_issues_new_tokens(store):
    old = store.authenticate("alice").new_token
    assert store.authenticate("alice", secret="sesame") == ("alice", None)
    new = store.claim_rater("alice", secret="sesame")
    with pytest.raises(PermissionDenied, match="wrong token"):
        store.authenticate("alice", token=old)
    assert store.authenticate("alice", token=new).name == "alice"
    before = tables(store)
    with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
        store.claim_rater("alice", secret="guess")
    with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
        store.authenticate("carol", secret="guess")  # an unknown name is not claimed on a wrong secret
    assert tables(store) == before
    assert store.authenticate("carol", secret="sesame").new_token


def test_raters_from_before_tokens_need_the_operator(tmp_path, clock):
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m002_rater_tokens_and_auth_failures")
    old["raters"].insert({"name": "ann", "role": "rater", "created_utc": "2025-01-01T00:00:00+00:00"})
    old.close()
    store = Store(path, reviewer_secret="sesame", clock=clock)
    assert [r["name"] for r in store.db.query("select name from _sqlite_migrations")] == [
        "m001_initial",
        "m002_rater_tokens_and_auth_failures",
        "m003_auth_failures_by_client",
    ]
    before = tables(store)
    for token in (None, "anything"):
        with pytest.raises(PermissionDenied, match="'ann' has no token yet; ask whoever runs this deployment"):
            store.authenticate("ann", token=token)
    with pytest.raises(PermissionDenied, match="already claimed"):
        store.claim_rater("ann")
    assert tables(store) == before and failures(store) == []
    token = store.claim_rater("ann", secret="sesame")
    assert store.authenticate("ann", token=token).name == "ann"


def test_wrong_tokens_slow_down_the_session_that_guesses_not_the_name(store, clock):
    token = store.authenticate("alice").new_token
    mallory = Client("session m", "10.0.0.9")
    for _ in range(FREE_PER_SESSION):  # a few typos are free
        with pytest.raises(PermissionDenied, match="wrong token"):
            store.authenticate("alice", token="guess", client=mallory)
    waits = []
    for _ in range(4):  # then each wrong try makes the next one wait longer: 2, 4, 8, 16 s
        with pytest.raises(PermissionDenied, match="wrong token"):
            store.authenticate("alice", token="guess", client=mallory)
        with pytest.raises(PermissionDenied, match=r"too many wrong attempts from here; wait (\d+) s") as refused:
            store.authenticate("alice", token=token, client=mallory)  # even the right token, or guessing goes on
        waits.append(int(refused.value.args[0].split("wait ")[1].split(" s")[0]))
        clock.now += waits[-1]
    assert waits == [2, 4, 8, 16]
    assert len(failures(store)) == FREE_PER_SESSION + 4  # refused tries are not counted again
    # The owner, in another session (even from the same address), signs in at once.
    assert store.authenticate("alice", token=token, client=Client("session a", "10.0.0.9")).name == "alice"
    assert store.authenticate("alice", token=token).name == "alice"  # and with `scicot`, on the server's machine


def test_delays_stop_growing_and_end_when_the_tries_leave_the_window(store, clock):
    store.authenticate("alice")
    mallory = Client("session m")
    waited = []
    while len(failures(store)) < FREE_PER_SESSION + 9:  # wait each delay out, then guess again
        try:
            store.authenticate("alice", token="guess", client=mallory)
        except PermissionDenied as e:
            if "wait" in str(e):
                waited.append(int(str(e).split("wait ")[1].split(" s")[0]))
                clock.now += waited[-1]
    assert waited == [2, 4, 8, 16, 32, 64, 128, 256]
    with pytest.raises(PermissionDenied, match=f"wait {MAX_DELAY_S} s"):  # not 512: the delay is capped
        store.authenticate("alice", token="guess", client=mallory)
    clock.now += FAILURE_WINDOW_S + 1
    with pytest.raises(PermissionDenied, match="wrong token"):  # the old tries no longer count
        store.authenticate("alice", token="guess", client=mallory)


def test_an_address_that_guesses_from_many_sessions_is_slowed_down_too(store, clock):
    before = tables(store)
    for i in range(FREE_PER_ADDRESS):  # a new session each time, as a script can make them
        with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
            store.grant_reviewer("rev", "guess", client=Client(f"session {i}", "10.0.0.9"))
    with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
        store.grant_reviewer("rev", "guess", client=Client("session x", "10.0.0.9"))
    with pytest.raises(PermissionDenied, match="too many wrong attempts from here; wait 2 s"):
        store.grant_reviewer("rev", "sesame", client=Client("session y", "10.0.0.9"))
    assert tables(store) == before  # not a single rater row from any of it
    # The reviewer sign-in is not locked for anyone else.
    assert store.grant_reviewer("rev", "sesame", client=Client("session r", "10.0.0.1")) == "rev" and store.role("rev") == "reviewer"
    clock.now += 2
    assert store.grant_reviewer("rev2", "sesame", client=Client("session y", "10.0.0.9")) == "rev2"


def test_old_failures_are_dropped_with_the_next_one(store, clock):
    store.authenticate("alice")
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            store.authenticate("alice", token="guess")
    clock.now += FAILURE_WINDOW_S + 1
    with pytest.raises(PermissionDenied, match="wrong token"):
        store.authenticate("alice", token="guess")
    assert failures(store) == [("token", "alice")]
