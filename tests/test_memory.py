"""The student's memory (scicot_core/memory.py, `scicot memory`): facts from training-split
rationales only, deduplicated with their provenance, searched by BM25; a dev or test rationale
is refused and leaves the memory as it was."""

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotations.export import export_rows
from annotations.store import Store
from demo.cli import main
from scicot_core import memory
from scicot_core.errors import ConfigError
from scicot_core.questions import Rationale, sample_items, typed_question

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def rationale_file(folder: Path, name: str, rows: list[dict]) -> Path:
    (folder / "rationales").mkdir(parents=True, exist_ok=True)
    path = folder / "rationales" / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"id": "q1", "rationale": "Wind is a renewable resource. Option (b) is wrong because coal burns. Thus, the answer is (c) wind."},
    {"id": "q2", "rationale": "wind is a renewable resource! The Sun heats the air unevenly, which makes wind. So the answer is wind."},
    {"id": "q3", "rationale": "Too short. Thus, the answer is (a) it."},
]


def test_facts_are_the_sentences_before_the_answer_without_those_about_the_options():
    assert memory.facts_of(ROWS[0]) == ["Wind is a renewable resource."]
    assert memory.facts_of(ROWS[2]) == []
    leaning = "D: Farming vegetables changes the soil a lot. It helps keep the soil fertile. Wind moves soil from fields."
    assert memory.facts_of({"rationale": leaning}) == ["Wind moves soil from fields."]
    human = {"rationale": "ignored", "facts": ["the moon 's gravity causes the tides", "a tide is a kind of change"]}
    assert memory.facts_of(human) == ["The moon 's gravity causes the tides.", "A tide is a kind of change."]


def test_list_marks_are_cut_and_sentences_about_the_reasoning_left_out():
    text = (
        "The question asks which tool measures mass. Step 1: Identify what a balance does. - A balance measures mass."
        "- Step 2: **Magnets** attract iron nails. To determine the answer, we need to compare the tools. A ruler is not "
        "directly related to mass. Sand and a ruler are irrelevant here. - C: rulers measure length. "
        "The sun is the closest star to us. So the answer is (a) a balance."
    )
    assert memory.facts_of({"rationale": text}) == [
        "A balance measures mass.",
        "Magnets attract iron nails.",
        "The sun is the closest star to us.",
    ]
    assert memory.facts_of({"rationale": "-2188 c is lower than 0 c. So the answer is C."}) == ["-2188 c is lower than 0 c."]


def test_a_fact_found_twice_is_kept_once_with_both_sources(tmp_path):
    path = rationale_file(tmp_path, "gpt4o-level1_openbookqa_train.jsonl", ROWS)
    files, rows = memory.build_rows(None, files=[path])
    stats = memory.build(tmp_path / "m.db", rows)
    assert files == [path] and stats["facts"] == 2 and stats["sources"] == 3 and stats["questions"] == 2
    m = memory.Memory(tmp_path / "m.db")
    [top] = m.with_sources(m.search("Which resource is renewable?", k=1))
    assert top.text == "Wind is a renewable resource."
    assert [s.question_id for s in top.sources] == ["q1", "q2"]
    assert top.sources[0].label() == "GPT-4o rationale for an OpenBookQA train question"
    assert "Apache-2.0" in top.sources[0].licence and top.sources[0].kind == "teacher"
    # A training question never gets the facts of its own rationales back.
    assert [f.text for f in m.search("renewable wind sun", k=5, exclude_question="q1")] == [
        "The Sun heats the air unevenly, which makes wind."
    ]
    assert m.search("the of and", k=3) == [] and m.search('"); drop table facts; --', k=3) == []


def test_per_choice_retrieval_finds_a_fact_for_each_choice(tmp_path):
    rows = [
        {"id": "a", "rationale": "Coal is a fossil fuel that forms over millions of years."},
        {"id": "b", "rationale": "Coal and oil and gas are burned in power plants for heat."},
        {"id": "c", "rationale": "Wind turbines turn moving air into electricity."},
    ]
    path = rationale_file(tmp_path, "flan_t5_openbookqa_train.jsonl", rows)
    memory.build(tmp_path / "m.db", memory.build_rows(None, files=[path])[1])
    m = memory.Memory(tmp_path / "m.db")
    q = typed_question("Which is renewable: coal, oil, gas or wind?", ["coal", "oil", "natural gas", "wind turbines"], None)
    assert any("Wind" in f.text for f in m.for_question(q, k=2, mode="per-choice"))
    with pytest.raises(ConfigError, match="joint or per-choice"):
        m.for_question(q, mode="both")


def test_without_a_data_directory_the_memory_is_the_sample_sets(tmp_path):
    stats = memory.build(tmp_path / "m.db", memory.build_rows(None)[1])
    assert stats["facts"] > 20 and stats["by_file"] == {"sample_questions.jsonl": stats["sources"]}
    m = memory.Memory(tmp_path / "m.db")
    hit = m.with_sources(m.search("photosynthesis sunlight leaves", k=1))[0]
    assert hit.sources[0].label().startswith("the sample set's rationale for a")


@pytest.mark.parametrize(
    "name, rows, message",
    [
        ("entailmentbank_arc_easy_dev.jsonl", ROWS, "is a dev rationale file"),
        ("flan_t5_openbookqa_test.jsonl", ROWS, "is a test rationale file"),
        ("notes.jsonl", ROWS, "is not a training-split rationale file"),
        (
            "flan_t5_openbookqa_train.jsonl",
            [*ROWS, {"id": "d1", "split": "dev", "rationale": "The dev fact is here now."}],
            "line 4: a 'dev' row",
        ),
    ],
)
def test_a_dev_or_test_rationale_is_refused_and_the_memory_is_unchanged(tmp_path, name, rows, message):
    good = rationale_file(tmp_path, "gpt4o-level1_openbookqa_train.jsonl", ROWS[:1])
    target = tmp_path / "m.db"
    memory.build(target, memory.build_rows(None, files=[good])[1])
    before = target.read_bytes()
    bad = rationale_file(tmp_path, name, rows)
    with pytest.raises(ConfigError, match=message):
        memory.build(target, memory.build_rows(None, files=[good, bad])[1])
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.db", "rationales"]  # no temporary file left


def test_the_cli_refuses_a_dev_file_in_one_line_and_writes_nothing(tmp_path):
    bad = rationale_file(tmp_path, "entailmentbank_arc_easy_dev.jsonl", ROWS)
    out = tmp_path / "m.db"
    result = CliRunner().invoke(main, ["memory", "build", "--file", str(bad), "--memory", str(out), "--no-store"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert not out.exists()


def store_with_accepted(tmp_path, question, text):
    s = Store(tmp_path / "s.db", reviewer_secret="k")
    s.add_questions([question])
    [rid] = s.add_rationales([Rationale(question.id, text, "teacher", "gpt-4o")])
    s.add_rater("ann")
    s.grant_reviewer("ann", "k")
    s.curate(rid, "accept", "ann")
    return s


def test_an_accepted_rationale_joins_the_memory_rated_by_its_reviewer(tmp_path):
    question = sample_items()[0][0]
    s = store_with_accepted(tmp_path, question, "Magnets attract iron nails strongly. Thus, the answer is (A).")
    m_path = tmp_path / "m.db"
    memory.build(m_path, memory.build_rows(None)[1])
    m = memory.Memory(m_path)
    assert m.add(memory.store_rows(export_rows(s.curation_rows()), set())) == 1
    [hit] = m.with_sources(m.search("magnets attract iron nails", k=1))
    assert hit.text == "Magnets attract iron nails strongly." and hit.sources[0].label() == "rated by ann"


@pytest.mark.parametrize("held_out_by", ["split", "id"])
def test_an_accepted_rationale_of_a_dev_question_is_refused_and_nothing_is_added(tmp_path, held_out_by):
    q = sample_items()[0][0]
    if held_out_by == "split":
        q = type(q)(q.id, q.stem, q.choices, q.answer_key, "arc_easy/dev")
    s = store_with_accepted(tmp_path, q, "Magnets attract iron nails strongly. Thus, the answer is (A).")
    m_path = tmp_path / "m.db"
    memory.build(m_path, memory.build_rows(None)[1])
    m = memory.Memory(m_path)
    before = m.stats()
    with pytest.raises(ConfigError, match="training questions only"):
        m.add(memory.store_rows(export_rows(s.curation_rows()), {q.id} if held_out_by == "id" else set()))
    assert m.stats() == before


def test_a_file_that_is_no_memory_says_how_to_build_one(tmp_path):
    for path in (tmp_path / "none.db", tmp_path / "junk.db", tmp_path / "other.db"):
        if path.name == "junk.db":
            path.write_bytes(b"\x00garbage" * 100)
        if path.name == "other.db":
            sqlite3.connect(path).execute("create table t (x)").connection.close()
        with pytest.raises(ConfigError, match="scicot memory build"):
            memory.Memory(path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        memory.build(tmp_path / "folder", iter([]))


def test_the_cli_builds_searches_and_counts(tmp_path):
    env = {"SCICOT_DB": str(tmp_path / "s.db"), "SCICOT_DATA_DIR": ""}
    built = CliRunner().invoke(main, ["memory", "build"], env=env)
    assert built.exit_code == 0, built.output
    assert (tmp_path / "memory.db").is_file() and "facts from" in built.output
    found = CliRunner().invoke(main, ["memory", "search", "sunlight leaves food", "-k", "2", "--json"], env=env)
    rows = [json.loads(line) for line in found.output.splitlines()]
    assert found.exit_code == 0 and len(rows) == 2 and rows[0]["sources"]
    stats = json.loads(CliRunner().invoke(main, ["memory", "stats"], env=env).output)
    assert stats["facts"] > 20


@pytest.mark.skipif(not SHARED.is_dir(), reason="reads ../shared/data")
def test_the_real_memory_holds_no_dev_or_test_question(tmp_path):
    files, rows = memory.build_rows(SHARED, ["entailmentbank", "flan_t5"])
    memory.build(tmp_path / "m.db", rows)
    held_out = memory.held_out_ids(SHARED)
    db = sqlite3.connect(tmp_path / "m.db")
    ids = {r[0] for r in db.execute("select distinct question_id from sources")}
    assert len(ids) > 5000 and not ids & held_out
    assert all(f.name.endswith("_train.jsonl") for f in files)


def test_the_retrieval_benchmark_finds_gold_facts_the_memory_holds(tmp_path, tiny_causal_dir):
    """benchmarks/retrieval.py on a data directory whose dev explanations reuse its training
    facts: all of them are in memory, and most come back in the top 20."""
    import subprocess
    import sys

    data = tmp_path / "data"
    items = sample_items()
    for dataset in ("arc_easy", "arc_challenge"):
        (data / dataset).mkdir(parents=True)
        (data / dataset / "dev.jsonl").write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in items))
    rows = [{"id": q.id, "rationale": t, "facts": [f.rstrip(".") for f in memory.facts_of({"rationale": t})]} for q, t in items]
    rows = [r for r in rows if r["facts"]]
    rationale_file(data, "entailmentbank_arc_easy_train.jsonl", [r | {"id": "train-" + r["id"]} for r in rows])
    for dataset in ("arc_easy", "arc_challenge"):
        rationale_file(data, f"entailmentbank_{dataset}_dev.jsonl", rows)
    out = tmp_path / "r.json"
    script = [sys.executable, str(ROOT / "benchmarks" / "retrieval.py"), "--data-dir", str(data), "--out", str(out)]
    done = subprocess.run([*script, "--memory", "human=entailmentbank"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())["memories"]["human"]["results"]["arc_easy"]
    assert result["in_memory"] == 100.0 and result["questions"] == len(rows)
    assert result["modes"]["joint"]["recall"]["20"] > 50 and result["modes"]["joint"]["hit"]["1"] > 50
    assert "| human (" in done.stdout
    # FTS5's own ranking, timed beside the index: the same scores, so the same recall.
    assert result["modes"]["joint, FTS5"]["recall"] == result["modes"]["joint"]["recall"]
    # Reranked by the student's own scores: the same candidates, in another order (a tiny model here).
    env = os.environ | {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    reranked = subprocess.run(
        [*script, "--memory", "human=entailmentbank", "--rerank", "20", "--k", "1", "20"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert reranked.returncode == 0, reranked.stderr
    modes = json.loads(out.read_text())["memories"]["human"]["results"]["arc_easy"]["modes"]
    assert modes["joint, reranked"]["recall"]["20"] == modes["joint"]["recall"]["20"]  # the top 20, reordered
    assert "joint, reranked" in reranked.stdout
    bad = subprocess.run([*script, "--memory", "human"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "NAME=PATTERN" in bad.stderr


def test_without_a_teacher_model_the_memory_answers_for_the_teacher_labelled_as_such(tmp_path):
    from scicot_core.settings import Settings
    from scicot_core.teachers import MEMORY_NOTE, get_teacher

    settings = Settings.from_env({"SCICOT_DB": str(tmp_path / "s.db"), "SCICOT_CACHE_DIR": str(tmp_path / "c")})
    assert settings.teacher == "memory" and settings.memory_file == tmp_path / "memory.db"
    teacher = get_teacher("memory", settings, lambda: pytest.fail("no model is loaded for the memory"))
    assert (tmp_path / "memory.db").is_file()  # built on first use, from the sample set here
    q = typed_question("Which part of a plant makes food from sunlight?", ["roots", "leaves", "flowers", "seeds"], None)
    [r] = teacher.rationales([q], "cot")
    assert r.source == "teacher" and r.note.startswith(MEMORY_NOTE) and "sample set's rationale" in r.note
    assert r.text == " ".join(f["text"] for f in r.meta["facts"]) and 1 <= len(r.meta["facts"]) <= 4
    assert "sunlight" in r.text.lower()


def test_a_memory_built_on_first_use_reads_the_data_directory_when_it_has_training_files(tmp_path):
    data = tmp_path / "data"
    rationale_file(data, "flan_t5_openbookqa_train.jsonl", ROWS)
    path = memory.ensure(tmp_path / "m.db", data)
    assert memory.Memory(path).stats()["by_file"] == {"flan_t5_openbookqa_train.jsonl": 3}
    assert memory.ensure(path, None) == path  # there already: kept as it is
    assert memory.Memory(path).stats()["by_file"] == {"flan_t5_openbookqa_train.jsonl": 3}


def test_retrieve_then_read_without_a_memory_says_how_to_get_one(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:2]))
    result = CliRunner().invoke(
        main, ["eval", "--questions", str(questions), "--variant", "retrieve-then-read", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "give --memory FILE" in result.output and not (tmp_path / "r").exists()


@pytest.fixture
def answer_adapters(tmp_path, tiny_causal_dir):
    """A folder with a tiny stage-2 adapter (two steps on the sample set)."""
    from scicot_core.train import TrainConfig
    from scicot_core.train import main as run_train

    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps(q.to_ai2() | {"rationale": t, "teacher": "ref"}) + "\n" for q, t in sample_items()))
    folder = tmp_path / "adapters"
    config = TrainConfig(
        "answer", [str(data)], str(folder / "answer"), base_model=str(tiny_causal_dir), max_steps=2, batch_size=4, lora_r=4
    )
    run_train(config, tmp_path / "cache", progress=False)
    return folder


def test_ask_shows_the_facts_stage_2_read_with_their_sources(app_deps, answer_adapters, tiny_causal_dir, tmp_path):
    from demo import handlers as h

    app_deps.students.add("with stage 2", {"answer": answer_adapters / "answer"})
    q = h.parse_question(app_deps, "typed", "", None, "Which part of a plant makes food from sunlight?", "roots\nleaves\nflowers", "B")
    *_, (teacher_md, _, _, _, baselines_md, info, result) = list(h.ask(app_deps, q, "memory", "", "", "with stage 2", max_tokens=4))
    assert "Facts from the memory" in baselines_md and "retrieve-then-read" in baselines_md
    facts = result["memory"]["facts"]
    assert facts and all(f["source"].startswith("the sample set's rationale") for f in facts)
    assert facts[0]["source"] in baselines_md
    assert "memory and its reading" in info and "not written for this question" in teacher_md
    assert set(result["memory"]["answer"]["probabilities"]) == {"A", "B", "C"}

    env = {"SCICOT_DB": str(tmp_path / "cli" / "s.db"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_ADAPTERS": str(answer_adapters)}
    args = [
        "ask",
        "--question",
        "Which part of a plant makes food from sunlight?",
        "--choice",
        "roots",
        "--choice",
        "leaves",
        "--max-tokens",
        "3",
    ]
    shown = CliRunner().invoke(main, args, env=env)
    assert shown.exit_code == 0, shown.output
    assert "Facts from the memory:" in shown.output and "stage 2 reading them (retrieve-then-read)" in shown.output
    quiet = CliRunner().invoke(main, [*args, "--no-memory", "--json"], env=env)
    assert quiet.exit_code == 0 and "memory" not in json.loads(quiet.output)


def test_a_training_file_holding_a_dev_question_is_refused(tmp_path):
    data = tmp_path / "data"
    (data / "arc_easy").mkdir(parents=True)
    q = sample_items()[0][0]
    (data / "arc_easy" / "dev.jsonl").write_text(json.dumps(q.to_ai2() | {"id": "dev-7"}) + "\n")
    bad = rationale_file(
        data, "flan_t5_openbookqa_train.jsonl", [*ROWS, {"id": "dev-7", "rationale": "Wind turns the blades of a turbine."}]
    )
    with pytest.raises(ConfigError, match="dev-7 is a dev or test question"):
        memory.build(tmp_path / "m.db", memory.build_rows(data, files=[bad])[1])
    assert not (tmp_path / "m.db").exists()


def test_a_memory_of_facts_cut_another_way_is_built_again_on_first_use(tmp_path):
    path = memory.ensure(tmp_path / "m.db", None)
    db = sqlite3.connect(path)
    db.execute("update meta set value = '1' where name = 'facts_version'")
    db.execute("delete from sources")
    db.commit()
    db.close()
    assert memory.Memory(path).stats()["sources"] == 0
    memory.ensure(path, None)
    assert memory.Memory(path).stats()["sources"] > 20 and memory.Memory(path).stats()["meta"]["facts_version"] == memory.FACTS_VERSION


def test_the_memory_teacher_never_shows_a_question_its_own_rationale(tmp_path):
    from scicot_core.teachers import MemoryTeacher

    teacher = MemoryTeacher(memory.ensure(tmp_path / "m.db", None))
    for question, text in sample_items()[:6]:
        [r] = teacher.rationales([question])
        own = {memory.key(f) for f in memory.facts_of({"rationale": text})}
        assert not {memory.key(f["text"]) for f in r.meta["facts"]} & own


def test_retrieve_for_training_questions_never_gives_a_question_its_own_facts(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()))
    env = {"SCICOT_DB": str(tmp_path / "s.db"), "SCICOT_DATA_DIR": ""}
    out = tmp_path / "facts.jsonl"
    assert CliRunner().invoke(main, ["memory", "build"], env=env).exit_code == 0
    done = CliRunner().invoke(main, ["memory", "retrieve", "--questions", str(questions), "-k", "3", "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    rows = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert len(rows) == len(sample_items()) and sum(bool(r["facts"]) for r in rows.values()) > len(rows) / 2
    for q, text in sample_items():
        own = {memory.key(f) for f in memory.facts_of({"rationale": text})}
        assert not {memory.key(f) for f in rows[q.id]["facts"]} & own


def test_a_memory_in_a_folder_with_odd_characters_is_built_once(tmp_path):
    path = tmp_path / "a b#c?d%20" / "memory.db"
    path.parent.mkdir()
    memory.ensure(path, None)
    stamp = path.stat().st_mtime_ns
    memory.ensure(path, None)
    assert path.stat().st_mtime_ns == stamp and memory._version(path) == memory.FACTS_VERSION


def test_a_memory_change_names_the_nearest_questions_whose_facts_moved_with_stage_2_before_and_after(app_deps, answer_adapters, tmp_path):
    from scicot_core import memory_effect

    path = rationale_file(tmp_path, "flan_t5_openbookqa_train.jsonl", [{"id": "t1", "rationale": "Plants make food in their leaves."}])
    memory.build(tmp_path / "m.db", memory.build_rows(None, files=[path])[1])
    m = memory.Memory(tmp_path / "m.db")
    pool = [
        typed_question("Which part of a plant makes food?", ["roots", "leaves"], "B"),
        typed_question("What do magnets pull?", ["iron", "wood"], "A"),
        typed_question("What melts ice on roads?", ["salt", "sand"], "A"),
    ]
    fact = "Magnets pull iron objects toward them."
    row = (fact, memory.Source("rated", "", "store:r1", "t9", "openbookqa/train", memory.STORE_LICENCE, "ann"))
    app_deps.students.add("with stage 2", {"answer": answer_adapters / "answer"})
    student = app_deps.students.student("with stage 2")

    added, effect = memory_effect.measure(m, pool, [fact], lambda: m.add([row]), 3, student)
    assert added == 1 and effect.checked == 1  # only the magnet question shares a word with the fact
    [c] = effect.changes
    assert c.question is pool[1] and c.before == [] and [f.text for f in c.new] == [fact] and c.new[0].source == "rated by ann"
    assert set(c.answer_before.probabilities) == set(c.answer_after.probabilities) == {"A", "B"}
    assert effect.right("after")[1] == 1
    # Taking it out again moves the same question back; the fact that went keeps its source.
    _, back = memory_effect.measure(m, pool, [fact], lambda: m.replace(["store:r1"], []), 3, student)
    [c] = back.changes
    assert c.after == [] and [(f.text, f.source) for f in c.gone] == [(fact, "rated by ann")]
    # Facts no question shares a word with check nothing; without a student there are no answers.
    assert memory_effect.measure(m, pool, ["Zebras have stripes."], lambda: None, 3)[1].checked == 0
    _, plain = memory_effect.measure(m, pool, [fact], lambda: m.add([row]), 3)
    assert plain.changes[0].answer_after is None and plain.right("after") == (0, 0)
    m.close()
