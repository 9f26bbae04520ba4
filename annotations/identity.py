"""Rater identity without accounts: who may act as a name (its per-rater token, or the operator's
reviewer secret), and the throttle on wrong guesses of either. The policy lives here, mixed into
`Store`; every read and write goes through the Store's own SQL methods.

The throttle slows down the client that guesses, never a name: a name locked by anyone's wrong
guesses would lock its owner out too. A client is an app session (or this machine's `scicot`
command) and, where one is known, its network address. A session has a few free tries, then
waits 2, 4, 8 ... seconds (at most `MAX_DELAY_S`) after each wrong one; an address, which many
sessions and people may share, gets more free tries before its delays start."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import datetime, timezone
from typing import NamedTuple

from scicot_core.errors import DataError, PermissionDenied

from . import validate

TOKEN_BYTES = 24
FAILURE_WINDOW_S = 900  # a wrong try counts this long
FREE_PER_SESSION = 3  # wrong tries of one session within the window before its delays start
FREE_PER_ADDRESS = 20  # the same for one network address (shared by its sessions)
MAX_DELAY_S = 300


class Client(NamedTuple):
    """Who is trying: an app session (`session`), or the local `scicot` command; `address` where known."""

    session: str = "scicot command"
    address: str | None = None


LOCAL = Client()  # the `scicot` command on this machine


class Identity(NamedTuple):
    """A signed-in rater; `new_token` is set only when this sign-in claimed the name (show it once)."""

    name: str
    new_token: str | None = None


class IdentityVerbs:
    """The sign-in verbs of `Store`."""

    def claim_rater(self, name: str, secret: str | None = None, client: Client = LOCAL) -> str:
        """Register a new name and return its token, shown this once (only its hash is kept). A
        name already taken gets a new token only with the operator's secret (a lost token, or a
        rater from before tokens)."""
        name = validate.name(name)
        if secret is not None:
            self.check_secret(name, secret, client)
        token = new_token()
        self._save_token(name, token_hash(token), replace=secret is not None)
        return token

    def authenticate(
        self, name, token: str | None = None, secret: str | None = None, claim: bool = True, client: Client = LOCAL
    ) -> Identity:
        """Sign a rater in: a known name needs its token or the operator's secret; an unknown one
        is claimed (unless `claim` is false) and its token returned once, in `new_token`. Wrong
        tries slow `client` down (see the module's notes)."""
        name = validate.name(name)
        known, stored_hash = self._token_hash(name)
        if not known:
            if token or not claim:
                raise DataError(
                    f"unknown rater {name!r}; check the spelling, or claim the name first (Rate tab with no token, or `scicot db claim`)."
                )
            return Identity(name, self.claim_rater(name, secret, client))
        if secret is not None:
            self.check_secret(name, secret, client)
            return Identity(name)
        if not stored_hash:
            raise PermissionDenied(f"{name!r} has no token yet; ask whoever runs this deployment to issue one with the reviewer secret.")
        if not token:
            raise PermissionDenied(f"{name!r} is already claimed; give its token to sign in, or choose another name.")
        if not self._attempt("token", name, token_matches(token, stored_hash), client):
            raise PermissionDenied(f"wrong token for {name!r}; give the token you were shown when you claimed the name.")
        return Identity(name)

    def check_secret(self, name: str, secret, client: Client = LOCAL) -> None:
        """The operator's secret, given on `name`'s behalf; wrong ones slow `client` down."""
        name = validate.name(name)
        if not self._reviewer_secret:
            raise PermissionDenied("no reviewer secret is configured; set SCICOT_REVIEWER_SECRET to enable reviewers.")
        if not self._attempt("secret", name, secret_matches(secret, self._reviewer_secret), client):
            raise PermissionDenied("wrong reviewer secret; ask whoever runs this deployment for SCICOT_REVIEWER_SECRET.")

    def grant_reviewer(self, name: str, secret: str, client: Client = LOCAL) -> str:
        """Make `name` a reviewer (registering it if new) when `secret` is the operator's; the
        secret is checked before anything is written."""
        name = validate.name(name)
        self.check_secret(name, secret, client)
        self._make_reviewer(name)
        return name


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    # A token is 192 random bits, not a chosen password: there is no dictionary to try, so a fast
    # hash is enough, and a slow KDF would only slow every sign-in down.
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token, stored_hash: str) -> bool:
    return isinstance(token, str) and hmac.compare_digest(token_hash(token), stored_hash)


def secret_matches(given, configured: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), configured.encode())


def wait_s(recent: list[dict], client: Client, now: float) -> int:
    """Seconds `client` must wait before its next try; 0 when it may try now. `recent`: the
    wrong tries (session, address, created_utc) within the window, of every client."""
    wait = _delay_s([r for r in recent if r["session"] == client.session], FREE_PER_SESSION, now)
    if client.address:
        wait = max(wait, _delay_s([r for r in recent if r["address"] == client.address], FREE_PER_ADDRESS, now))
    return wait


def _delay_s(failures: list[dict], free: int, now: float) -> int:
    times = sorted(datetime.fromisoformat(r["created_utc"]).timestamp() for r in failures)
    times = [t for t in times if t > now - FAILURE_WINDOW_S]
    if len(times) <= free:
        return 0
    delay = min(2 ** (len(times) - free), MAX_DELAY_S)  # 2, 4, 8 ... seconds after the last wrong try
    return max(0, math.ceil(times[-1] + delay - now))


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")
