"""The one place that reads environment variables: paths, model names and the teacher endpoint.

Everything else receives a `Settings` (or plain arguments) and never looks at `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "scicot"


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off setting: 1/0, true/false, yes/no, on/off; unset or empty keeps the default."""
    from .errors import ConfigError

    raw = env.get(name, "").strip().lower()
    if raw in ("", "1", "0", "true", "false", "yes", "no", "on", "off"):
        return default if not raw else raw in ("1", "true", "yes", "on")
    raise ConfigError(f"{name}={env[name]!r} is neither on nor off; set it to 1 or 0, or unset it for the default ({int(default)}).")


def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int | None = None) -> int | None:
    from .errors import ConfigError

    raw = env.get(name)
    if raw in (None, ""):
        return default
    example = default if default is not None else minimum
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {example}.") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum}; set it to at least {minimum}, or unset it for the default.")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    from .errors import ConfigError

    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds; set it to e.g. {default:g}.")
    return value


def normalise_url(url: str | None) -> str:
    """A base URL as compared and cached: surrounding spaces and trailing slashes dropped."""
    return (url or "").strip().rstrip("/")


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    from .errors import ConfigError

    urls = tuple(u for u in (normalise_url(part) for part in env.get(name, "").split(",")) if u)
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if bad:
        raise ConfigError(f"{name} holds {bad[0]!r}, which is not an http(s) URL; list base URLs such as http://127.0.0.1:8000/v1.")
    return urls


@dataclass(frozen=True)
class TeacherEndpoint:
    """An OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp, TGI)."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 4
    concurrency: int = 4
    # One bound per question across every attempt and wait; None means three timeouts.
    deadline_s: float | None = None
    # The setting a message names when this endpoint's time runs out.
    timeout_setting: str = "SCICOT_TEACHER_TIMEOUT"

    @property
    def deadline(self) -> float:
        """Seconds one question may take, retries and waits included."""
        return self.deadline_s if self.deadline_s is not None else 3 * self.timeout_s


@dataclass(frozen=True)
class Settings:
    """Run-time configuration, built once at the edge (CLI or app) and passed down."""

    cache_dir: Path
    data_dir: Path | None = None
    db_path: Path | None = None
    distill_path: Path | None = None
    memory_path: Path | None = None  # the student's memory of facts (scicot_core/memory.py); None: beside the store
    student: str = "smollm2-135m"
    adapters: Path | None = None
    teacher: str = "memory"
    endpoint: TeacherEndpoint | None = None
    offline: bool = True
    threads: int | None = None
    # Asks run each stage on a copy of the base with its adapter merged in: faster, more memory.
    merge: bool = True
    reviewer_secret: str | None = field(default=None, repr=False)
    on_space: bool = False
    # Base URLs that visitors of the app may type as teacher; they never get the API key.
    allowed_urls: tuple[str, ...] = ()
    typed_timeout_s: float = 20.0
    # Dev questions the app compares a retrained student and the default on.
    compare_n: int = 24

    @property
    def memory_file(self) -> Path:
        """The memory's file: SCICOT_MEMORY, else `memory.db` beside the store (derived when read,
        so that settings with another store keep their memory beside it)."""
        return self.memory_path or Path(self.db_path or default_db_path()).with_name("memory.db")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every `SCICOT_*` variable (and the few standard ones) from `env`."""
        env = os.environ if env is None else env
        endpoint = None
        if env.get("SCICOT_TEACHER_URL"):
            endpoint = TeacherEndpoint(
                base_url=env["SCICOT_TEACHER_URL"],
                model=env.get("SCICOT_TEACHER_MODEL", "gpt-4o-mini"),
                api_key=env.get("SCICOT_TEACHER_API_KEY") or env.get("OPENAI_API_KEY"),
                timeout_s=float(_int(env, "SCICOT_TEACHER_TIMEOUT", 60)),
                concurrency=_int(env, "SCICOT_TEACHER_CONCURRENCY", 4),
            )
        # Online only where asked for (a Space, or SCICOT_ONLINE=1), and never past HF_HUB_OFFLINE.
        wants_online = bool(env.get("SPACE_ID")) or _flag(env, "SCICOT_ONLINE")
        cache = _path(env.get("SCICOT_CACHE_DIR")) or Path(platformdirs.user_cache_dir(APP_NAME))
        threads = _int(env, "SCICOT_THREADS", None, minimum=1)
        db_path = _path(env.get("SCICOT_DB")) or default_db_path()
        return cls(
            cache_dir=cache,
            data_dir=_path(env.get("SCICOT_DATA_DIR")),
            db_path=db_path,
            distill_path=_path(env.get("SCICOT_DISTILL_SET")) or db_path.with_name("distillation_set.jsonl"),
            memory_path=_path(env.get("SCICOT_MEMORY")),
            student=env.get("SCICOT_STUDENT") or "smollm2-135m",
            adapters=_path(env.get("SCICOT_ADAPTERS")),
            teacher=env.get("SCICOT_TEACHER") or ("http" if endpoint else "memory"),
            endpoint=endpoint,
            offline=_flag(env, "HF_HUB_OFFLINE") or not wants_online,
            threads=threads,
            merge=_switch(env, "SCICOT_MERGE", True),
            reviewer_secret=env.get("SCICOT_REVIEWER_SECRET") or None,
            on_space=bool(env.get("SPACE_ID")),
            allowed_urls=_urls(env, "SCICOT_TEACHER_ALLOWED_URLS"),
            typed_timeout_s=_float(env, "SCICOT_TEACHER_TYPED_TIMEOUT", 20.0),
            compare_n=_int(env, "SCICOT_COMPARE_N", 24, minimum=1),
        )


def default_db_path() -> Path:
    """The annotation store: `/data` on a Space with persistent storage, else the user data dir."""
    space_volume = Path("/data")
    if space_volume.is_dir() and os.access(space_volume, os.W_OK):
        return space_volume / "scicot.db"
    return Path(platformdirs.user_data_dir(APP_NAME)) / "annotations.db"
