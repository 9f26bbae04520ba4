"""`scicot --help` and the store commands start without importing torch or transformers: only
the commands that run a model load them (`benchmarks/cli_start.py` measures the time saved)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in a fresh interpreter, then reports which heavy libraries the command imported.
PROBE = """
import json, sys
from demo.cli import main
try:
    main(sys.argv[1:], prog_name="scicot")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "imported": sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)}), file=sys.stderr)
"""


def probe(args, tmp_path) -> dict:
    env = os.environ | {"PYTHONPATH": str(ROOT), "SCICOT_DB": str(tmp_path / "probe.db"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [("--help",), ("db", "--help"), ("db", "init"), ("db", "stats"), ("db", "stats", "--json"), ("samples",), ("teach", "--help")],
)
def test_commands_without_a_model_import_no_torch(args, tmp_path):
    assert probe(args, tmp_path) == {"code": 0, "imported": []}


def test_a_model_command_still_imports_torch(tmp_path):
    """The probe can tell: `ask` on a missing model imports torch before it fails."""
    result = probe(("ask", "--sample", "sample-physics-01", "--student", str(tmp_path / "no-model"), "--teacher", "none"), tmp_path)
    assert result["code"] == 1 and "torch" in result["imported"]
