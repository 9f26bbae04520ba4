"""Atomic writes, the one way files and folders are written whole (the distillation set,
exports, the teacher cache): into a temporary sibling first, then renamed onto the destination,
so a reader never sees a partial file and a failed write leaves the destination as it was.

Temporary siblings are named so that what a killed writer leaves behind can be recognised and
removed: `.<name>.scicot-<pid>-<random>.tmp` beside the destination.

Before each write, stale siblings of the same destination go: those whose writer process is gone
(`os.kill(pid, 0)`), and any untouched for an hour (the PID may have been reused, or the writer ran
on another host). Leftovers of the older `mkstemp` naming (`.<name>.<random>.tmp`) go by age alone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

TAG = "scicot"
STALE_AFTER_S = 3600


def sibling(destination: Path, kind: str = "tmp") -> Path:
    """A new name beside `destination` carrying this process's id (`kind`: tmp, or old)."""
    return destination.with_name(f".{destination.name}.{TAG}-{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def create(destination: Path, directory: bool = False) -> Path:
    """Clear stale siblings, then make an empty private temporary file or folder beside
    `destination`; an unwritable place is a ConfigError that says so."""
    destination = Path(destination)
    blocking = next((p for p in destination.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"cannot write {destination}: {blocking} is a file, not a folder; choose another path.")
    wanted = destination.is_dir() if directory else destination.is_file()
    if destination.exists() and not wanted:  # a device (/dev/null), a pipe, a socket: never renamed over
        kind = "a folder" if directory else "a file"
        raise ConfigError(f"cannot write {destination}: it is there and is not {kind}; choose another path.")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(destination)
        tmp = sibling(destination)
        if directory:
            tmp.mkdir(mode=0o700)
        else:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise unwritable(destination, e) from None
    return tmp


@contextmanager
def atomic(destination: Path | str, directory: bool = False) -> Iterator[Path]:
    """Yield a new temporary file (or folder) beside `destination` to write into; when the block
    ends without error it is synced and renamed onto `destination` (an earlier folder is moved
    aside and removed only after the new one is in place). On any error the temporary goes and
    `destination` is unchanged; an OSError becomes a ConfigError naming `destination`."""
    destination = Path(destination)
    tmp = create(destination, directory)
    try:
        yield tmp
        if directory:
            _swap_folder(tmp, destination)
        else:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, destination)
    except OSError as e:
        remove(tmp)
        raise unwritable(destination, e) from None
    except BaseException:
        remove(tmp)
        raise


def _swap_folder(tmp: Path, destination: Path) -> None:
    if not destination.exists():
        tmp.rename(destination)
        return
    old = sibling(destination, "old")
    destination.rename(old)
    tmp.rename(destination)
    remove(old)


def unwritable(destination: Path, error: OSError) -> ConfigError:
    return ConfigError(f"cannot write {destination} ({error.strerror or error}); choose a folder you can write to.")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale(destination: Path, now: float | None = None) -> list[Path]:
    """Remove temporary siblings of `destination` left by writers that died; returns them."""
    ours = re.compile(rf"^\.{re.escape(destination.name)}\.(?:{TAG}-(\d+)-[0-9a-f]+\.(?:tmp|old)|[A-Za-z0-9_]+\.tmp)$")
    now = time.time() if now is None else now
    removed = []
    for path in destination.parent.glob(f".{glob_escape(destination.name)}.*"):
        found = ours.match(path.name)
        if not found:
            continue
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue  # its writer finished meanwhile
        pid = int(found.group(1)) if found.group(1) else None
        if age > STALE_AFTER_S or (pid is not None and not _alive(pid)):
            remove(path)
            removed.append(path)
    return removed


def prune(folder: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    """Remove everything in `folder` untouched for `max_age_s` (a folder of throwaway files)."""
    now = time.time() if now is None else now
    removed = []
    for path in Path(folder).glob("*") if Path(folder).is_dir() else []:
        try:
            old = now - path.lstat().st_mtime > max_age_s
        except FileNotFoundError:
            continue
        if old:
            remove(path)
            removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False  # never a writer; os.kill(0, ...) would mean our own process group
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
