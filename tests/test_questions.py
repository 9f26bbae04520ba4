"""Questions and loaders: the sample set, AI2 JSONL files (real and broken), hub rows."""

import json

import pytest
from conftest import SHARED_DATA, needs_shared

from scicot_core.errors import DataError
from scicot_core.questions import Choice, Question, _from_hub_row, load_jsonl, load_split, sample_items, typed_question


def test_sample_set_covers_four_sciences_with_reference_rationales():
    items = sample_items()
    topics = {q.source for q, _ in items}
    assert len(items) >= 30
    assert topics == {"sample/physics", "sample/chemistry", "sample/biology", "sample/earth_science"}
    assert len({q.id for q, _ in items}) == len(items)
    for q, rationale in items:
        assert q.answer_key in q.labels
        assert rationale.endswith(f"Thus, the answer is ({q.answer_key}).")
    assert {len(q.choices) for q, _ in items} >= {3, 4, 5}


def _write(tmp_path, lines):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


GOOD = json.dumps(
    {"id": "q1", "question": {"stem": "Why?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "B"}
)


def _row(**changes):
    row = json.loads(GOOD)
    row.update(changes)
    return json.dumps(row)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not JSON"),
        (json.dumps({"id": "q2", "answerKey": "A"}), 'missing "question"'),
        (_row(question={"stem": "s", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "A"}]}), "duplicate choice labels"),
        (_row(answerKey="E"), "answer key 'E' is not among the labels"),
        (_row(question={"stem": "s", "choices": []}), "no choices"),
        (_row(question={"stem": "s", "choices": [{"text": "a", "label": "A"}]}), "1 choices; a question needs 2 to 9"),
        (_row(question={"stem": "s", "choices": [{"label": "A"}, {"text": "b", "label": "B"}]}), 'needs "label" and "text"'),
        (b'{"id": "\xff\xfe"}', "not valid UTF-8"),
        (GOOD, "duplicate id 'q1'"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_broken_file_names_file_line_and_problem(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, "", bad])
    with pytest.raises(DataError) as e:
        load_jsonl(path)
    assert str(e.value).startswith(f"{path}:3: ")
    assert message in str(e.value)


def test_missing_file_and_unknown_names(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unknown dataset"):
        load_split("arc_hard", "test", tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        load_split("arc_easy", "validation", tmp_path)
    with pytest.raises(DataError, match="SCICOT_DATA_DIR"):
        load_split("arc_easy", "test", None, offline=True)


def test_question_validates_itself():
    with pytest.raises(DataError, match="10 choices"):
        Question("x", "s", tuple(Choice(str(i), "t") for i in range(10)))
    q = Question("x", "s", (Choice("1", "one"), Choice("2", "two")), "2")
    assert q.choice("2").text == "two"
    assert Question.from_ai2(q.to_ai2()) == q


def test_hub_rows_become_the_same_question_type():
    arc = {"id": "Mercury_1", "question": "Which is a gas?", "choices": {"text": ["ice", "steam"], "label": ["1", "2"]}, "answerKey": "2"}
    obqa = {
        "id": "7-980",
        "question_stem": "The sun is",
        "choices": {"text": ["a star", "a planet", "a moon"], "label": ["A", "B", "C"]},
        "answerKey": "A",
    }
    assert _from_hub_row(arc, "arc_easy/test") == Question(
        "Mercury_1", "Which is a gas?", (Choice("1", "ice"), Choice("2", "steam")), "2", "arc_easy/test"
    )
    assert _from_hub_row(obqa, "openbookqa/test").choices[0] == Choice("A", "a star")


EXPECTED = {
    ("arc_easy", "train"): 2251,
    ("arc_easy", "dev"): 570,
    ("arc_easy", "test"): 2376,
    ("arc_challenge", "train"): 1119,
    ("arc_challenge", "dev"): 299,
    ("arc_challenge", "test"): 1172,
    ("openbookqa", "train"): 4957,
    ("openbookqa", "dev"): 500,
    ("openbookqa", "test"): 500,
}


@needs_shared
@pytest.mark.parametrize("dataset, split", sorted(EXPECTED))
def test_real_splits_load_whole(dataset, split):
    questions = load_split(dataset, split, SHARED_DATA)
    assert len(questions) == EXPECTED[dataset, split]
    assert all(q.answer_key in q.labels for q in questions)


@needs_shared
def test_real_arc_has_digit_keys_and_odd_choice_counts():
    questions = load_split("arc_easy", "test", SHARED_DATA) + load_split("arc_challenge", "test", SHARED_DATA)
    assert any(q.answer_key.isdigit() for q in questions)
    assert {3, 4, 5} <= {len(q.choices) for q in questions}


@pytest.mark.parametrize(
    "stem, choices, message",
    [
        ("", ["a", "b"], "type a question"),
        ("Why?", ["only one"], r"give 2 to 9 choices \(you gave 1\)"),
        ("Why?", [f"c{i}" for i in range(27)], r"give 2 to 9 choices \(you gave 27\)"),
        ("x" * 2_001, ["a", "b"], "the question is 2,001 characters; keep it under 2000"),
        ("Why?", ["a", "y" * 301], "choice B is 301 characters; keep each choice under 300"),
        ("Why?", ["heat", "cold", "heat  "], r"choices A and C are the same \('heat'\)"),
        ("Why?", ["very  hot", "very hot"], "choices A and B are the same"),
    ],
)
def test_typed_questions_are_held_to_one_limit_and_distinct_choices(stem, choices, message):
    with pytest.raises(DataError, match=message):
        typed_question(stem, choices, None)


def test_typed_choices_that_differ_only_in_case_are_distinct_as_in_genetics():
    q = typed_question("Which genotype is heterozygous?", ["RR", "Rr", "rr"], "b")
    assert q.labels == ["A", "B", "C"] and q.answer_key == "B"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"id": ["q1"]}, '"id" must be a string or a whole number, not list'),
        ({"id": {"a": 1}}, "not dict"),
        ({"id": True}, "not bool"),
        ({"question": {"stem": "x" * 1_000_000, "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}}, "1,000,000"),
        ({"question": {"stem": "s", "choices": [{"text": "a", "label": "A"}, {"text": "b" * 301, "label": "B"}]}}, "choice B is 301"),
    ],
)
def test_records_need_a_plain_id_and_texts_within_the_limits(tmp_path, changes, message):
    path = _write(tmp_path, [GOOD.replace('"q1"', '"q0"'), _row(**changes)])
    with pytest.raises(DataError, match=message):
        load_jsonl(path)
    assert Question.from_ai2(json.loads(_row(id=7))).id == "7"


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deeply_nested_json_is_a_data_error_naming_the_line(tmp_path, depth):
    path = _write(tmp_path, [GOOD, "[" * depth + "]" * depth])
    with pytest.raises(DataError, match=rf"{path}:2: JSON nested more than 32 levels deep"):
        load_jsonl(path)


@needs_shared
def test_real_questions_fit_the_limits_typed_questions_are_held_to():
    """Every real question loads within the stem and choice limits, and only three OpenBookQA
    train questions repeat a choice word for word (so loaders keep them; only typed ones refuse)."""
    repeats = []
    for dataset, split in sorted(EXPECTED):
        for q in load_split(dataset, split, SHARED_DATA):
            texts = [" ".join(c.text.split()) for c in q.choices]
            if len(set(texts)) < len(texts):
                repeats.append((dataset, split, q.id))
    assert [r[:2] for r in repeats] == [("openbookqa", "train")] * 3
