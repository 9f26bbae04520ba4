"""The memory's numpy BM25 gives FTS5's own scores, and sees every change to the memory file."""

from __future__ import annotations

import pytest

from scicot_core import bm25, memory
from scicot_core.questions import sample_questions

SOURCE = memory.Source("teacher", "gpt4o", "gpt4o-level1_openbookqa_train.jsonl", "q1", "openbookqa", "licence")
EXTRA = [
    "Plants and planting: a plant's leaves make food from sunlight.",  # one stem, three words
    "A magnet attracts iron nails and steel pins.",
    "Le café chaud refroidit à l'air; naïve coffee cools in 5 minutes at 20°C.",  # diacritics, numbers
    "Water boils at 100 degrees Celsius at sea level, and water freezes at 0 degrees.",
]


def fts5(m: memory.Memory, query: str, exclude: str | None = None) -> dict[int, float]:
    """What FTS5 itself scores: every fact holding any query word."""
    return {f.id: f.score for f in m.fts5_search(query, k=10_000, exclude_question=exclude)}


@pytest.fixture
def sample_memory(tmp_path):
    rows = list(memory.build_rows(None)[1]) + [(text, SOURCE) for text in EXTRA]
    memory.build(tmp_path / "m.db", rows)
    m = memory.Memory(tmp_path / "m.db")
    yield m
    m.close()


def test_every_query_scores_each_fact_as_fts5_does(sample_memory):
    queries = [memory.joint_query(q) for q in sample_questions()]
    queries += ["plants plant planting", "magnetic", "cafe coffee 20", "water water boiling"]  # "magnetic" is in no fact
    for query in queries:
        want = fts5(sample_memory, query)
        got = {f.id: f.score for f in sample_memory.search(query, k=10_000)}
        assert got.keys() == want.keys(), query
        assert got == pytest.approx(want, rel=1e-9), query
        top = sample_memory.search(query, k=3)
        assert [f.score for f in top] == pytest.approx(sorted(want.values(), reverse=True)[:3], rel=1e-9)
    assert fts5(sample_memory, "magnetic") and fts5(sample_memory, "cafe")  # the stems and diacritics were tested


def test_leaving_out_a_question_drops_its_facts_alone(sample_memory):
    query = "plant leaves food sunlight magnet water"
    got = {f.id: f.score for f in sample_memory.search(query, k=10_000, exclude_question="q1")}
    assert got == pytest.approx(fts5(sample_memory, query, exclude="q1"), rel=1e-9)
    assert not {f.text for f in sample_memory.search(query, k=10_000, exclude_question="q1")} & set(EXTRA)


def test_a_search_sees_facts_this_connection_or_another_one_adds(sample_memory):
    assert sample_memory.search("quasar", k=1) == []
    sample_memory.add([("A quasar is a very bright galaxy core.", SOURCE)])
    assert [f.text for f in sample_memory.search("quasar", k=1)] == ["A quasar is a very bright galaxy core."]
    other = memory.Memory(sample_memory.path)
    try:
        other.add([("Quasars are far from the Milky Way.", SOURCE)])
    finally:
        other.close()
    assert len(sample_memory.search("quasar", k=5)) == 2
    assert {f.id: f.score for f in sample_memory.search("quasar", k=5)} == pytest.approx(fts5(sample_memory, "quasar"), rel=1e-9)
    sample_memory.replace([SOURCE.file], [])
    assert sample_memory.search("quasar", k=5) == []


def test_an_empty_index_and_an_empty_query_find_nothing():
    empty = bm25.Index([])
    assert len(empty) == 0 and empty.search(["water"], 5) == [] and empty.search([], 5, leave_out=[1]) == []
    one = bm25.Index([(7, "Water is wet.")])
    assert one.search(["water"], 0) == [] and one.search(["water"], 5, leave_out=[7]) == []
    assert [i for i, _ in one.search(["water", "fire"], 5, leave_out=[99])] == [7]


def test_words_are_cut_as_unicode61_cuts_them():
    assert bm25.words("Naïve CAFÉ, 20°C; e-mail_x") == ["naive", "cafe", "20", "c", "e", "mail", "x"]
    stems = bm25.Stemmer()(["plants", "planting", "running"])
    assert stems["plants"] == stems["planting"] == ("plant",) and stems["running"] == ("run",)
