"""Export back into the distillation set: filters, provenance, the three formats, and the
round trip into training's reader."""

import json

import pytest

from annotations.export import ExportFilter, export_rows, write_export
from annotations.store import Store
from scicot_core.distillation_set import load_distillation_set
from scicot_core.errors import ConfigError
from scicot_core.questions import Rationale, sample_items

FULL = {"correctness": 5, "clarity": 4, "supports_answer": 5}
LOW = {"correctness": 2, "clarity": 2, "supports_answer": 2}


@pytest.fixture
def curated(tmp_path):
    s = Store(tmp_path / "e.db", reviewer_secret="k")
    items = sample_items()[:5]
    s.add_questions([q for q, _ in items])
    ids = s.add_rationales([Rationale(q.id, t, "teacher", "flan-t5-xl") for q, t in items])
    for name in ("ann", "bob", "rev"):
        s.add_rater(name)
    s.grant_reviewer("rev", "k")
    s.upsert_rating(ids[0], "ann", FULL)
    s.upsert_rating(ids[0], "bob", FULL | {"clarity": 5})
    s.upsert_rating(ids[1], "ann", LOW)
    s.upsert_rating(ids[2], "ann", FULL, status="draft")  # drafts never count
    s.curate(ids[0], "accept", "rev")
    s.curate(ids[1], "accept", "rev")
    s.curate(ids[2], "edit", "rev", "clearer", edited_text="Edited by a reviewer. Thus, the answer is (A).")
    s.curate(ids[3], "reject", "rev", "wrong")
    s.ids = ids
    return s


def test_accepted_only_with_provenance(curated):
    rows = export_rows(curated.curation_rows())
    assert [r["rationale_id"] for r in rows][:2] == curated.ids[:2]
    first = rows[0]
    assert first["raters"] == ["ann", "bob"] and first["n_raters"] == 2 and first["reviewer"] == "rev"
    assert (first["mean_correctness"], first["mean_clarity"], first["mean_supports_answer"]) == (5.0, 4.5, 5.0)
    assert first["mean_score"] == pytest.approx(14.5 / 3, abs=1e-4) and first["teacher_model"] == "flan-t5-xl"
    edit = next(r for r in rows if r["source"] == "human")
    assert edit["edited_from"] == curated.ids[2] and edit["rationale"].startswith("Edited by a reviewer")
    assert edit["teacher_model"] == "flan-t5-xl" and edit["n_raters"] == 0  # the draft on its source does not count
    assert len(rows) == 3  # rejected, replaced-by-edit and uncurated rationales stay out


def test_filters(curated):
    rows = curated.curation_rows()
    assert [r["rationale_id"] for r in export_rows(rows, ExportFilter(min_mean=3))] == [curated.ids[0]]
    assert [r["rationale_id"] for r in export_rows(rows, ExportFilter(min_raters=2))] == [curated.ids[0]]
    loose = export_rows(rows, ExportFilter(accepted_only=False))
    assert curated.ids[4] in [r["rationale_id"] for r in loose] and curated.ids[3] not in [r["rationale_id"] for r in loose]


def test_jsonl_round_trips_into_the_training_reader(curated, tmp_path):
    rows = export_rows(curated.curation_rows())
    path = write_export(rows, tmp_path / "out" / "set.jsonl", "jsonl")
    records = load_distillation_set(path)
    assert [r.question.id for r in records] == [r["id"] for r in rows]
    assert records[0].rationale == rows[0]["rationale"] and records[0].extra["raters"] == ["ann", "bob"]
    assert records[0].question.answer_key == sample_items()[0][0].answer_key


def test_parquet_and_dataset(curated, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    rows = export_rows(curated.curation_rows())
    table = pq.read_table(write_export(rows, tmp_path / "set.parquet", "parquet"))
    assert table.num_rows == 3 and "mean_score" in table.column_names
    folder = write_export(rows, tmp_path / "set-ds", "dataset")
    write_export(rows, folder, "dataset")  # replacing an existing export works too
    ds = datasets.load_from_disk(str(folder))
    assert ds.num_rows == 3 and ds[0]["rationale_id"] == rows[0]["rationale_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db", "e.db-shm", "e.db-wal", "set-ds", "set.parquet"]


def test_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="unknown export format"):
        write_export([], tmp_path / "x.csv", "csv")


def test_a_failing_write_leaves_nothing_at_the_destination(tmp_path):
    def rows():
        yield {"id": "a"}
        raise RuntimeError("disk on fire")

    from scicot_core.distillation_set import write_jsonl_atomic

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(rows(), tmp_path / "set.jsonl")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "set.jsonl").write_text(json.dumps({"old": True}) + "\n")
    with pytest.raises(RuntimeError):
        write_jsonl_atomic(rows(), tmp_path / "set.jsonl")
    assert (tmp_path / "set.jsonl").read_text() == '{"old": true}\n'
