"""What a killed writer leaves behind is cleared by the next write (finding 12 of issue 10), and
the app's downloads live in one folder that forgets them after a day."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotations.export import write_export
from scicot_core.distillation_set import write_jsonl_atomic
from scicot_core.errors import ConfigError

ROWS = [{"id": "q1", "rationale": "r"}]


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_temporary_files_carry_the_writer_and_clear_on_success(tmp_path):
    from scicot_core import tempfiles

    tmp = tempfiles.create(tmp_path / "set.jsonl")
    assert tmp.name.startswith(f".set.jsonl.scicot-{os.getpid()}-") and tmp.name.endswith(".tmp")
    tmp.unlink()
    write_jsonl_atomic(ROWS, tmp_path / "set.jsonl")
    assert hidden(tmp_path) == [] and (tmp_path / "set.jsonl").read_text() == json.dumps(ROWS[0]) + "\n"


@pytest.mark.parametrize("fmt, name", [("jsonl", "out.jsonl"), ("parquet", "out.parquet"), ("dataset", "out")])
def test_orphans_of_a_dead_writer_go_before_the_next_export(tmp_path, fmt, name):
    pid = dead_pid()
    orphan_file = tmp_path / f".{name}.scicot-{pid}-0a1b2c3d.tmp"
    orphan_file.write_bytes(b"x" * 3_000_000)
    orphan_dir = tmp_path / f".{name}.scicot-{pid}-4e5f6a7b.tmp"
    orphan_dir.mkdir()
    (orphan_dir / "data.arrow").write_bytes(b"x")
    legacy = tmp_path / f".{name}.k2j4_x9q.tmp"  # the older mkstemp naming: goes by age
    legacy.write_bytes(b"x")
    an_hour_ago = time.time() - 2 * 3600  # past tempfiles.STALE_AFTER_S
    os.utime(legacy, (an_hour_ago, an_hour_ago))
    recent_legacy = tmp_path / f".{name}.recent12.tmp"
    recent_legacy.write_bytes(b"x")
    live = tmp_path / f".{name}.scicot-{os.getppid()}-11112222.tmp"  # a live process: may still be writing
    live.write_bytes(b"x")
    unrelated = tmp_path / ".other.jsonl.scicot-1-00000000.tmp"
    unrelated.write_bytes(b"x")
    write_export(ROWS, tmp_path / name, fmt)
    assert hidden(tmp_path) == sorted([recent_legacy.name, live.name, unrelated.name])
    assert (tmp_path / name).exists()


WRITER = """
import sys, time
from scicot_core.distillation_set import write_jsonl_atomic

def rows():
    yield {"id": "q1"}
    print("writing", flush=True)
    time.sleep(60)
    yield {"id": "q2"}

write_jsonl_atomic(rows(), sys.argv[1])
"""


def test_a_writer_killed_mid_write_leaves_an_orphan_the_next_write_removes(tmp_path):
    destination = tmp_path / "set.jsonl"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(destination)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "writing"
        [orphan] = hidden(tmp_path)
        assert orphan.startswith(f".set.jsonl.scicot-{child.pid}-")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not destination.exists() and hidden(tmp_path) == [orphan]
    write_jsonl_atomic(ROWS, destination)
    assert hidden(tmp_path) == [] and destination.read_text().count("\n") == 1


def test_an_unwritable_folder_is_a_config_error_and_leaves_nothing(tmp_path, monkeypatch):
    from scicot_core import tempfiles

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfiles.os, "open", refuse)
    with pytest.raises(ConfigError, match=r"cannot write .*out.jsonl \(Permission denied\); choose a folder you can write to"):
        write_export(ROWS, tmp_path / "out.jsonl", "jsonl")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_a_config_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="Permission denied"):
        write_export(ROWS, folder / "out.jsonl", "jsonl")


def test_a_dataset_export_never_replaces_a_folder_that_is_not_one(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="is not an earlier dataset export"):
        write_export(ROWS, precious, "dataset")
    assert (precious / "thesis.tex").read_text() == "years of work"
    write_export(ROWS, tmp_path / "set", "dataset")
    write_export(ROWS + ROWS, tmp_path / "set", "dataset")  # an earlier export is replaced
    assert hidden(tmp_path) == []


def test_app_exports_go_to_one_folder_that_forgets_them_after_a_day(app_deps):
    from demo import handlers_curate as hr
    from scicot_core.distillation_set import DistillRecord
    from scicot_core.questions import sample_items

    store = app_deps.store
    store.import_records([DistillRecord(q, t, "ref") for q, t in sample_items()[:2]])
    store.add_rater("rev")
    store.grant_reviewer("rev", "sesame")
    folder = app_deps.settings.cache_dir / "exports"
    first = Path(hr.export_file(app_deps, "rev", "jsonl", False, 0, 0))
    second = Path(hr.export_file(app_deps, "rev", "parquet", False, 0, 0))
    assert first.parent == folder and second.parent == folder and first != second
    a_day_ago = time.time() - 86_400 - 60  # past hr.EXPORT_KEEP_S
    os.utime(first, (a_day_ago, a_day_ago))
    orphan = folder / ".scicot-distill-x.jsonl.scicot-1-00000000.tmp"
    orphan.write_bytes(b"x")
    os.utime(orphan, (a_day_ago, a_day_ago))
    third = Path(hr.export_file(app_deps, "rev", "jsonl", False, 0, 0))
    assert sorted(folder.iterdir()) == sorted([second, third])


def test_the_teacher_cache_writes_through_the_same_atomic_writer(tmp_path):
    from scicot_core.teachers import ResponseCache

    cache = ResponseCache(tmp_path)
    messages = [{"role": "user", "content": "why?"}]
    entry = cache._path("http://x/v1", "m", messages)
    entry.parent.mkdir(parents=True)
    orphan = entry.with_name(f".{entry.name}.scicot-{dead_pid()}-0a1b2c3d.tmp")
    orphan.write_text("{")
    cache.put("http://x/v1", "m", messages, "Because.")
    assert cache.get("http://x/v1/", "m", messages) == "Because." and hidden(entry.parent) == []


@pytest.mark.parametrize("write", ["memory", "jsonl"])
def test_a_destination_that_is_a_pipe_or_device_is_refused_and_left_in_place(tmp_path, write):
    """`--memory /dev/null` once renamed a new file over the device (run as root); now any
    destination that is there and is no file is refused before anything is written."""
    from scicot_core import memory
    from scicot_core.errors import ConfigError

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(ConfigError, match="is not a file"):
        if write == "memory":
            memory.build(pipe, memory.sample_rows())
        else:
            write_jsonl_atomic([{"id": "q"}], pipe)
    assert pipe.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
