"""`scicot db ...` end to end on a real store file: import, queue, rate, grant, curate, export, stats."""

import json

import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA, needs_shared

from demo.cli import main
from scicot_core.distillation_set import load_distillation_set
from scicot_core.questions import sample_items


@pytest.fixture
def run(tmp_path):
    env = {"SCICOT_DB": str(tmp_path / "cli.db"), "SCICOT_REVIEWER_SECRET": "sesame", "SCICOT_DATA_DIR": ""}

    def invoke(*args, ok=True):
        result = CliRunner().invoke(main, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


@pytest.fixture
def distill_file(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [q.to_ai2() | {"rationale": t, "teacher": "ref"} for q, t in sample_items()[:3]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_help_everywhere(run):
    for cmd in ("init", "stats", "import", "export", "grant", "claim", "queue", "rate", "curate"):
        assert "Usage:" in run("db", cmd, "--help").output


def test_the_whole_loop(run, distill_file, tmp_path):
    assert "3 records, 3 new questions, 3 new rationales" in run("db", "import", str(distill_file)).output
    assert "0 new questions, 0 new rationales" in run("db", "import", str(distill_file)).output
    claimed = run("db", "claim", "ann")
    ann, bob = claimed.stdout.strip(), run("db", "claim", "bob").stdout.strip()
    assert "not shown again" in claimed.stderr and len(ann) >= 32 and ann != bob
    queue = run("db", "queue", "--rater", "ann", "--token", ann).output
    rid = queue.split("\n\n")[1].split()[0]
    assert rid.startswith("r-") and "0 done, 3 to go" in queue
    scores = ["--score", "correctness=5", "--score", "clarity=4", "--score", "supports_answer=5"]
    run("db", "rate", rid, "--rater", "ann", "--token", ann, *scores, "--comment", "good")
    run("db", "rate", rid, "--rater", "bob", "--token", bob, *scores)
    bad = run("db", "rate", rid, "--rater", "ann", "--token", ann, *scores, "--score", "correctness=7", ok=False)
    assert bad.exit_code == 1 and bad.output.startswith("Error: score for")
    assert run("db", "grant", "rev", "--secret", "nope", ok=False).output.startswith("Error: wrong reviewer secret")
    run("db", "grant", "rev", "--secret", "sesame")
    run("db", "curate", rid, "--reviewer", "rev", "--decision", "accept")
    refused = run("db", "export", str(tmp_path / "x.jsonl"), "--reviewer", "ann", ok=False)
    assert "not a reviewer" in refused.output and not (tmp_path / "x.jsonl").exists()
    out = tmp_path / "out.jsonl"
    assert "wrote 1 rationales" in run("db", "export", str(out), "--reviewer", "rev").output
    [record] = load_distillation_set(out)
    assert record.extra["raters"] == ["ann", "bob"]
    stats = json.loads(run("db", "stats", "--json").output)
    assert stats["counts"]["ratings"] == 2 and stats["mean_by_source"]["teacher"]["correctness"] == 5
    assert "agreement" in run("db", "stats").output


def test_rationale_files_need_their_questions(run, tmp_path):
    path = tmp_path / "flan_t5_arc_easy_dev.jsonl"
    path.write_text('{"id": "x", "rationale": "r", "teacher": "t"}\n')
    assert "give its question file or a data directory (--data-dir)" in run("db", "import", str(path), ok=False).output


@needs_shared
def test_import_the_real_teacher_rationales(run):
    files = sorted(str(p) for p in (SHARED_DATA / "rationales").glob("flan_t5_arc_challenge_*.jsonl"))
    out = run("db", "import", *files, "--data-dir", str(SHARED_DATA)).output
    assert "295 records, 295 new questions, 295 new rationales" in out and "1117 records" in out
    assert "0 new rationales" in run("db", "import", *files, "--data-dir", str(SHARED_DATA)).output
