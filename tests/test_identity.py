"""Rater identity in the store: names claimed with a token shown once, signing in only with that
token or the operator's secret, raters from before tokens, and the throttle on wrong guesses
(a fake clock steps through it; nothing sleeps)."""

import hashlib
import sqlite3

import pytest
from sqlite_utils import Database

from annotations.identity import FAILURE_WINDOW_S
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


def test_wrong_tokens_lock_that_name_for_a_while(store, clock):
    token = store.authenticate("alice").new_token
    bob = store.authenticate("bob").new_token
    for _ in range(5):
        with pytest.raises(PermissionDenied, match="wrong token"):
            store.authenticate("alice", token="guess")
        clock.now += 1
    for attempt in ("guess", token):  # during the lockout even the right token is refused
        with pytest.raises(PermissionDenied, match=f"too many wrong attempts; wait {FAILURE_WINDOW_S - 5} s"):
            store.authenticate("alice", token=attempt)
    assert len(failures(store)) == 5  # refused attempts are not counted again
    assert store.authenticate("bob", token=bob).name == "bob"  # other names are not locked
    clock.now += FAILURE_WINDOW_S - 6
    with pytest.raises(PermissionDenied, match="wait 1 s"):
        store.authenticate("alice", token=token)
    clock.now += 1
    assert store.authenticate("alice", token=token).name == "alice"


def test_wrong_secrets_are_throttled_per_name_and_in_all(store, clock):
    before = tables(store)
    for _ in range(5):
        with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
            store.grant_reviewer("rev", "guess")
    with pytest.raises(PermissionDenied, match="too many wrong attempts"):
        store.grant_reviewer("rev", "sesame")
    for i in range(15):  # another name each time: the secret is one, so it is also counted in all
        with pytest.raises(PermissionDenied, match="wrong reviewer secret"):
            store.check_secret(f"spray{i}", "guess")
    for call in (lambda: store.grant_reviewer("other", "sesame"), lambda: store.authenticate("alice", secret="sesame")):
        with pytest.raises(PermissionDenied, match=f"too many wrong attempts; wait {FAILURE_WINDOW_S} s"):
            call()
    assert tables(store) == before  # not a single rater row from any of it
    assert store.authenticate("alice").new_token  # claiming a new name needs no secret: not locked
    clock.now += FAILURE_WINDOW_S + 1
    assert store.grant_reviewer("rev", "sesame") == "rev" and store.role("rev") == "reviewer"


def test_old_failures_are_dropped_with_the_next_one(store, clock):
    store.authenticate("alice")
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            store.authenticate("alice", token="guess")
    clock.now += FAILURE_WINDOW_S + 1
    with pytest.raises(PermissionDenied, match="wrong token"):
        store.authenticate("alice", token="guess")
    assert failures(store) == [("token", "alice")]
