"""The store under stress: concurrent writers, a writer killed mid-burst, an export killed
half-way."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from annotations.store import Store
from scicot_core.questions import Choice, Question, Rationale

FULL = {"correctness": 4, "clarity": 4, "supports_answer": 4}


def populated(path: Path, n: int, raters: list[str]) -> tuple[Store, list[str]]:
    store = Store(path)
    questions = [Question(f"q{i}", f"Question {i}?", (Choice("A", "yes"), Choice("B", "no")), "A") for i in range(n)]
    store.add_questions(questions)
    ids = store.add_rationales([Rationale(q.id, f"Rationale {q.id}. Thus, the answer is (A).", "teacher", "t") for q in questions])
    for name in raters:
        store.add_rater(name)
    return store, ids


def test_16_threads_by_200_ratings_all_land(tmp_path):
    raters = [f"rater{i}" for i in range(16)]
    store, ids = populated(tmp_path / "c.db", 200, raters)
    errors = []

    def work(rater):
        try:
            for rid in ids:
                store.upsert_rating(rid, rater, FULL)
        except Exception as e:  # any escape (e.g. "database is locked") fails the test
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts()["ratings"] == 3200 and len(store.ratings()) == 3200
    assert store.integrity_ok()


WRITER = textwrap.dedent(
    """
    import sys
    from annotations.store import Store
    store = Store(sys.argv[1])
    for rid in sys.argv[2:]:
        store.upsert_rating(rid, "writer", {"correctness": 3, "clarity": 3, "supports_answer": 3})
        print(rid, flush=True)
    """
)


def test_writer_killed_mid_burst_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "k.db"
    store, ids = populated(path, 2000, ["writer"])
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), *ids], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    acked = []
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) == 300:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reopened = Store(path)
    assert reopened.integrity_ok()
    stored = {g["rationale_id"] for g in reopened.ratings()}
    assert set(acked) <= stored and len(stored) < 2000


EXPORTER = textwrap.dedent(
    """
    import sys, time
    from annotations.export import write_export
    def rows():
        for i in range(100000):
            if i == 5000:
                print("halfway", flush=True)
                time.sleep(60)
            yield {"id": f"q{i}", "rationale": "x" * 50}
    write_export(rows(), sys.argv[1], "jsonl")
    """
)


@pytest.mark.parametrize("existing", [False, True])
def test_export_killed_half_way_leaves_no_partial_file(tmp_path, existing):
    destination = tmp_path / "set.jsonl"
    if existing:
        destination.write_text('{"previous": "export"}\n')
    proc = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(destination)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    assert proc.stdout.readline().strip() == "halfway"
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the export really was under way
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if existing:
        assert destination.read_text() == '{"previous": "export"}\n'
    else:
        assert not destination.exists()
