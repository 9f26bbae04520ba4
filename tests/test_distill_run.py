"""scripts/distill_run.sh refuses settings it cannot honour before it makes anything (its whole
path is run by hand, `SMOKE=N`, as docs/benchmarks.md records)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("folds", ["1", "two", "-2"])
def test_a_number_of_folds_that_is_no_split_is_refused(tmp_path, folds):
    env = {"PATH": "/usr/bin:/bin", "PY": sys.executable, "GEN_BS": "1", "RUN": str(tmp_path / "run"), "FOLDS": folds}
    done = subprocess.run(["bash", "scripts/distill_run.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"FOLDS={folds}: give 0 (no cross-fitting) or a number of folds of 2 or more\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("objective", ["LM", "choice"])
def test_an_objective_that_training_does_not_know_is_refused_before_any_training(tmp_path, objective):
    env = {"PATH": "/usr/bin:/bin", "PY": sys.executable, "GEN_BS": "1", "RUN": str(tmp_path / "run"), "OBJECTIVE": objective}
    done = subprocess.run(["bash", "scripts/distill_run.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr == f"OBJECTIVE={objective}: give choices (the default) or lm\n"
    assert not (tmp_path / "run").exists()


def test_a_seed_that_is_no_folder_is_refused(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PY": sys.executable, "GEN_BS": "1", "RUN": str(tmp_path / "run"), "SEED": str(tmp_path / "none")}
    done = subprocess.run(["bash", "scripts/distill_run.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr == f"SEED={tmp_path / 'none'} is not a folder of stage adapters\n"
    assert not (tmp_path / "run").exists()
