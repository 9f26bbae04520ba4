"""benchmarks/paired.py: the paired counts and the exact sign test that dev decisions rest on."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "paired.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def report(folder: Path, rows: list[tuple[str, str | None, dict[str, str]]]) -> Path:
    """An eval folder whose predictions.jsonl has (id, answer key, {variant: label}) rows."""
    folder.mkdir()
    lines = [json.dumps({"id": i, "answer_key": key} | {v: {"label": label} for v, label in answers.items()}) for i, key, answers in rows]
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_counts_and_sign_test(tmp_path):
    # q1 both right, q2 A alone, q3-q5 B alone, q6 both wrong, q7 no key (left out), q8 only in A.
    a = report(
        tmp_path / "a",
        [("q1", "A", {"x": "A"}), ("q2", "A", {"x": "A"}), ("q3", "A", {"x": "B"}), ("q4", "B", {"x": "A"}), ("q5", "C", {"x": "A"})]
        + [("q6", "D", {"x": "A"}), ("q7", None, {"x": "A"}), ("q8", "A", {"x": "A"})],
    )
    b = report(
        tmp_path / "b",
        [("q1", "A", {"y": "A"}), ("q2", "A", {"y": "C"}), ("q3", "A", {"y": "A"}), ("q4", "B", {"y": "B"}), ("q5", "C", {"y": "C"})]
        + [("q6", "D", {"y": "B"}), ("q7", None, {"y": "B"})],
    )
    out = tmp_path / "paired.json"
    done = run("--compare", f"{a}:x", f"{b}:y", "--out", str(out))
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())["comparisons"][0]
    # 4 discordant questions split 1:3: P = 2 * (1 + 4) / 16.
    assert row | {"a": None, "b": None} == {
        "a": None,
        "b": None,
        "questions": 6,
        "accuracy_a": 33.3,
        "accuracy_b": 66.7,
        "difference": 33.3,
        "only_a": 1,
        "only_b": 3,
        "p": 0.625,
    }
    assert "| a:x | b:y | 6 | 33.3% | 66.7% | +33.3 | 1 | 3 | 0.62 |" in done.stdout


def test_sign_test_matches_the_recorded_choices_check():
    from scicot_core.paired import sign_test_p

    assert round(sign_test_p(17, 33), 3) == 0.033  # docs/benchmarks.md: 33 vs 17, p = 0.03
    assert round(sign_test_p(43, 20), 4) == 0.0052  # 43 vs 20, p = 0.005
    assert sign_test_p(0, 0) == 1.0 and sign_test_p(5, 5) == 1.0


def test_bad_sides_say_what_to_give(tmp_path):
    a = report(tmp_path / "a", [("q1", "A", {"x": "A"})])
    assert "DIR:VARIANT" in run("--compare", str(a), f"{a}:x").stderr
    assert "no `scicot eval` output folder" in run("--compare", f"{tmp_path}/none:x", f"{a}:x").stderr
    assert "no 'two-stage' answer; it scored ['x']" in run("--compare", f"{a}:two-stage", f"{a}:x").stderr
    other = report(tmp_path / "other", [("q9", "A", {"x": "A"})])
    assert "share no question" in run("--compare", f"{a}:x", f"{other}:x", "--out", str(tmp_path / "o.json")).stderr
    assert not (tmp_path / "o.json").exists()
