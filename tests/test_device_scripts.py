"""The scripts that carry a distillation run to a lent GPU machine and bring it back
(docs/gpu_runs.md): a kit that is not all there is refused before anything runs, and what comes
back replaces a trained step only once it has unpacked whole. The run itself is `scicot run`,
tested on its own (tests/test_recipes.py); here no model is loaded."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checkout(tmp_path: Path) -> Path:
    """A copy of the scripts a device call would see, in a checkout of its own."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("device_run.sh", "device_ingest.sh"):
        shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
    return repo


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _env(repo: Path, out: Path, path: str, **settings: str) -> dict:
    out.mkdir(exist_ok=True)
    return {"PATH": path, "NAME": "r1", "OUT": str(out), "SITE": str(repo / "site"), **settings}


def _device_run(repo: Path, out: Path, path: str = "/usr/bin:/bin", **settings: str) -> subprocess.CompletedProcess:
    env = _env(repo, out, path, **settings)
    return subprocess.run(["bash", "scripts/device_run.sh"], cwd=repo, env=env, capture_output=True, text=True)


def _kit(repo: Path, files: dict[str, bytes], parts: int = 2) -> None:
    """A kit as scripts/device_kit.sh leaves it: an archive in parts, the last with the checksum
    and the number of parts."""
    kit = _tgz(files)
    size = -(-len(kit) // parts)
    for i in range(parts):
        (repo / f".device/part{i + 1}").mkdir(parents=True, exist_ok=True)
        (repo / f".device/part{i + 1}/kit.part{i:02d}").write_bytes(kit[i * size : (i + 1) * size])
    (repo / f".device/part{parts}/kit.sha256").write_text(hashlib.sha256(kit).hexdigest() + "\n")
    (repo / f".device/part{parts}/kit.count").write_text(f"{parts}\n")


def _python_without_the_packages(tmp_path: Path) -> str:
    """A `python3` whose pip installs anything and whose imports fail, as on a device image
    whose huggingface-hub is older than the carried transformers needs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        '#!/bin/sh\ncase "$*" in *"pip install"*) exit 0 ;; esac\n'
        'echo "ImportError: huggingface-hub>=2.4.0,<3.0 is required for a normal functioning of this module" >&2\nexit 1\n'
    )
    (bin_dir / "python3").chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_a_kit_with_a_part_missing_is_refused_and_nothing_runs(tmp_path):
    repo = _checkout(tmp_path)
    _kit(repo, {"wheels/none.txt": b"x" * 1000})
    shutil.rmtree(repo / ".device/part1")  # the first call's part never arrived

    done = _device_run(repo, tmp_path / "out")

    assert done.returncode == 2
    assert (tmp_path / "out/status.txt").read_text() == (
        "the kit is incomplete here (missing: .device/part1; 2 parts in all): carry each missing .device/partN, one per call\n"
    )
    assert not (repo / "runs").exists() and not (repo / ".device/kit").exists()


def test_a_kit_whose_parts_do_not_match_its_checksum_is_refused(tmp_path):
    repo = _checkout(tmp_path)
    _kit(repo, {"a": b"1"}, parts=1)
    (repo / ".device/part1/kit.sha256").write_text("0" * 64 + "\n")  # a kit built again since

    done = _device_run(repo, tmp_path / "out")

    assert done.returncode == 2
    assert "1 parts in all here, but they do not match its checksum" in (tmp_path / "out/status.txt").read_text()
    assert not (repo / "runs").exists() and not (repo / ".device/kit").exists()


def test_packages_that_do_not_import_stop_the_call_and_say_why(tmp_path):
    repo = _checkout(tmp_path)
    _kit(repo, {"wheels/x.txt": b"x"})

    done = _device_run(repo, tmp_path / "out", _python_without_the_packages(tmp_path))

    assert done.returncode == 2
    status = (tmp_path / "out/status.txt").read_text()
    assert status.startswith("the packages do not import here") and "huggingface-hub>=2.4.0" in status
    assert "huggingface-hub>=2.4.0" in (tmp_path / "out/run.log").read_text()
    assert not list((tmp_path / "out").glob("*.tgz"))


def test_a_kit_built_again_is_unpacked_afresh(tmp_path):
    repo = _checkout(tmp_path)
    path = _python_without_the_packages(tmp_path)
    _kit(repo, {"wheels/old.txt": b"old"})
    assert _device_run(repo, tmp_path / "out1", path).returncode == 2  # unpacked, then stopped at the imports
    assert (repo / ".device/kit/wheels/old.txt").exists()

    _kit(repo, {"wheels/new.txt": b"new" * 100}, parts=3)  # carried since: three parts this time
    assert _device_run(repo, tmp_path / "out2", path).returncode == 2

    assert sorted(p.name for p in (repo / ".device/kit/wheels").iterdir()) == ["new.txt"]


def _ingest(repo: Path, came_back: Path, runs: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "RUNS": str(runs)}
    return subprocess.run(["bash", "scripts/device_ingest.sh", str(came_back), "gpu2"], cwd=repo, env=env, capture_output=True, text=True)


def test_what_comes_back_is_unpacked_into_the_run_and_a_torn_archive_changes_nothing(tmp_path):
    repo = _checkout(tmp_path)
    came_back = tmp_path / "files"
    came_back.mkdir()
    (came_back / "stage-rationale.tgz").write_bytes(_tgz({"rationale/adapter_config.json": b"{}", "rationale/scicot_step.json": b"{}"}))
    (came_back / "stage-answer--lm.tgz").write_bytes(_tgz({"answer/lm/adapter_config.json": b"{}"}))
    (came_back / "reports.tgz").write_bytes(_tgz({"./dev/arc_easy/results.json": b"{}", "./prior/choice.json": b'{"prior_weight": 0.3}'}))
    (came_back / "status.txt").write_text("scicot run: exit 0 after 412 s\n")

    first = _ingest(repo, came_back, tmp_path / "runs")

    run = tmp_path / "runs/gpu2"
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[:2] == [f"{run}: 2 trained steps, reports", "scicot run: exit 0 after 412 s"]
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "answer/lm/adapter_config.json",
        "dev/arc_easy/results.json",
        "prior/choice.json",
        "rationale/adapter_config.json",
        "rationale/scicot_step.json",
    ]

    (came_back / "stage-rationale.tgz").write_bytes(b"not an archive")  # a transfer that broke off
    (came_back / "reports.tgz").unlink()
    second = _ingest(repo, came_back, tmp_path / "runs")

    assert second.returncode == 1
    assert "stage-rationale.tgz did not unpack (a broken transfer?): run the device call again" in second.stderr
    assert (run / "rationale/scicot_step.json").read_text() == "{}"
    assert sorted(p.name for p in run.iterdir()) == ["answer", "dev", "prior", "rationale"]


def _ready_to_run(tmp_path: Path, repo: Path) -> str:
    """A complete kit, and a `python3` that imports anything and whose `-m demo.cli run ...
    --run-dir RUN` trains a step at once (with the checkpoint and the eval's adapter links a real
    run leaves) and then goes on for a minute."""
    _kit(repo, {"wheels/x.txt": b"x"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        '#!/bin/bash\n[ "$1" = -c ] && { echo "torch 2.11 cuda True"; exit 0; }\n[ "$2" = demo.cli ] || exit 0\n'
        'while [ "$1" != --run-dir ]; do shift; done; run=$2\n'
        'mkdir -p "$run/rationale/checkpoints/checkpoint-1" "$run/dev/adapters"\n'
        'echo "{}" > "$run/rationale/adapter_config.json"\necho "{}" > "$run/rationale/checkpoints/checkpoint-1/x"\n'
        'echo "{}" > "$run/dev/results.json"\nln -s "$PWD/$run/rationale" "$run/dev/adapters/rationale"\n'
        'echo "== rationale: done"\nsleep 60\n'
    )
    (bin_dir / "python3").chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_a_run_that_meets_its_deadline_brings_back_what_it_made(tmp_path):
    repo = _checkout(tmp_path)
    path = _ready_to_run(tmp_path, repo)
    out = tmp_path / "out"

    done = _device_run(repo, out, path, DEADLINE="2")

    assert done.returncode == 0, done.stderr
    assert (out / "status.txt").read_text().startswith("scicot run: exit 124 after ")
    assert sorted(p.name for p in out.iterdir()) == ["reports.tgz", "run.log", "stage-rationale.tgz", "status.txt"]
    with tarfile.open(out / "stage-rationale.tgz") as tar:
        assert tar.getnames() == ["rationale", "rationale/adapter_config.json"]  # no checkpoints
    with tarfile.open(out / "reports.tgz") as tar:
        names = tar.getnames()
    assert "./dev/results.json" in names and not [n for n in names if "adapters" in n or "checkpoints" in n]


def test_a_call_killed_from_outside_still_leaves_whole_archives(tmp_path):
    # The device tool's own limit kills the command (rc 137) before DEADLINE: what the packer
    # had packed by then is what comes back, and each archive is whole.
    import os
    import signal
    import time

    repo = _checkout(tmp_path)
    path = _ready_to_run(tmp_path, repo)
    out = tmp_path / "out"
    call = subprocess.Popen(["bash", "scripts/device_run.sh"], cwd=repo, env=_env(repo, out, path, PACK_EVERY="1"), start_new_session=True)
    for _ in range(100):
        if (out / "reports.tgz").exists():
            break
        time.sleep(0.1)
    os.killpg(call.pid, signal.SIGKILL)
    call.wait()

    assert (out / "status.txt").read_text().startswith("scicot run: stopped from outside before its deadline of 500 s")
    for name in ("stage-rationale.tgz", "reports.tgz"):
        with tarfile.open(out / name) as tar:
            assert tar.getnames()
    assert "./dev/results.json" in tarfile.open(out / "reports.tgz").getnames()


def test_the_kit_carries_what_transformers_needs_beyond_the_device_image():
    # The image's huggingface-hub (1.33) is older than transformers 5.25 needs: the walk over
    # the requirements carries the newer hub and what it needs in turn, never torch.
    import importlib.util
    from importlib.metadata import version

    spec = importlib.util.spec_from_file_location("device_wheels", ROOT / "scripts/device_wheels.py")
    wheels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wheels)

    pins = wheels.closure(wheels.ROOTS)

    assert {"transformers", "peft", "accelerate", "gguf", "platformdirs", "huggingface-hub", "regex"} <= set(pins)
    assert not set(pins) & (wheels.DEVICE_HAS | {"torch", "numpy"})
    assert all(pins[name] == version(name) for name in pins)
    # Closed: whatever a carried package requires is carried too, or held by the image.
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    for name in pins:
        for req in map(Requirement, requires(name) or []):
            if req.marker is None or req.marker.evaluate(wheels.DEVICE | {"extra": ""}):
                assert wheels._name(req.name) in set(pins) | wheels.DEVICE_HAS, (name, req)
