"""The scripts that carry a distillation run to a lent GPU machine and bring it back
(docs/gpu_runs.md): a kit that is not all there is refused before anything runs, and what comes
back replaces a stage only once it has unpacked whole. The run itself is distill_run.sh, tested
on its own; here no model is loaded."""

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


def _device_run(repo: Path, out: Path) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "NAME": "r1", "OUT": str(out), "SITE": str(repo / "site")}
    return subprocess.run(["bash", "scripts/device_run.sh"], cwd=repo, env=env, capture_output=True, text=True)


def test_a_kit_with_a_part_missing_is_refused_and_nothing_runs(tmp_path):
    repo = _checkout(tmp_path)
    kit = _tgz({"wheels/none.txt": b"x" * 1000})
    halves = kit[: len(kit) // 2], kit[len(kit) // 2 :]
    for i, half in enumerate(halves):
        (repo / f".device/part{i + 1}").mkdir(parents=True)
        (repo / f".device/part{i + 1}/kit.part{i}").write_bytes(half)
    (repo / ".device/part2/kit.sha256").write_text(hashlib.sha256(kit).hexdigest() + "\n")
    shutil.rmtree(repo / ".device/part1")  # the first call's part never arrived

    done = _device_run(repo, tmp_path / "out")

    assert done.returncode == 2
    assert (tmp_path / "out/status.txt").read_text() == (
        "the kit is incomplete here (1 parts): carry the missing .device/partN, one per call\n"
    )
    assert not (repo / "runs").exists() and not (repo / ".device/kit").exists()


def test_a_kit_whose_parts_do_not_match_its_checksum_is_refused(tmp_path):
    repo = _checkout(tmp_path)
    (repo / ".device/part1").mkdir(parents=True)
    (repo / ".device/part1/kit.part0").write_bytes(_tgz({"a": b"1"}))
    (repo / ".device/part1/kit.sha256").write_text("0" * 64 + "\n")  # a kit built again since

    done = _device_run(repo, tmp_path / "out")

    assert done.returncode == 2
    assert "incomplete" in (tmp_path / "out/status.txt").read_text()
    assert not (repo / "runs").exists() and not (repo / ".device/kit").exists()


def _ingest(repo: Path, came_back: Path, runs: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "RUNS": str(runs)}
    return subprocess.run(["bash", "scripts/device_ingest.sh", str(came_back), "gpu2"], cwd=repo, env=env, capture_output=True, text=True)


def test_what_comes_back_is_unpacked_into_the_run_and_a_torn_archive_changes_nothing(tmp_path):
    repo = _checkout(tmp_path)
    came_back = tmp_path / "files"
    came_back.mkdir()
    (came_back / "stage-rationale.tgz").write_bytes(
        _tgz({"rationale/adapter_config.json": b"{}", "rationale/generation.json": b'{"max_sentences": 1}'})
    )
    (came_back / "reports.tgz").write_bytes(
        _tgz({"./dev/arc_easy-greedy/results.json": b"{}", "./adapters/prior.json": b'{"weight": 0.3}'})
    )
    (came_back / "status.txt").write_text("distill_run.sh: exit 0 after 412 s\n")

    first = _ingest(repo, came_back, tmp_path / "runs")

    run = tmp_path / "runs/gpu2"
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[:2] == [f"{run}: 1 stages, reports", "distill_run.sh: exit 0 after 412 s"]
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "adapters/prior.json",
        "adapters/rationale/adapter_config.json",
        "adapters/rationale/generation.json",
        "dev/arc_easy-greedy/results.json",
    ]

    (came_back / "stage-rationale.tgz").write_bytes(b"not an archive")  # a transfer that broke off
    (came_back / "reports.tgz").unlink()
    second = _ingest(repo, came_back, tmp_path / "runs")

    assert second.returncode == 1
    assert "stage-rationale.tgz did not unpack (a broken transfer?): run the device call again" in second.stderr
    assert (run / "adapters/rationale/generation.json").read_text() == '{"max_sentences": 1}'
    assert sorted(p.name for p in (run / "adapters").iterdir()) == ["prior.json", "rationale"]
