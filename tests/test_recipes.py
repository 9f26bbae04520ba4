"""Recipes and `scicot run`: a bad recipe is refused before anything runs, a run resumes (done
steps skipped, a torn one run again, a changed one and what reads it started over), and its report
card and summary hold what the docs' tables are made from."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from demo.cli import main
from scicot_core import recipes
from scicot_core.errors import ConfigError
from scicot_core.memory import key as memory_key
from scicot_core.questions import sample_items

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


RATIONALE_FILES = [
    *(f"entailmentbank_{d}_{split}" for d in ("arc_easy", "arc_challenge") for split in ("train", "dev")),
    *(f"flan_t5_{d}_{split}" for d in ("arc_challenge", "openbookqa") for split in ("train", "dev")),
    *(f"gpt4o-level{n}_openbookqa_train" for n in (1, 2, 3)),
    *(f"gemini15flash-level{n}_openbookqa_train" for n in (1, 2, 3, 4)),
]


def sample_data(folder: Path) -> Path:
    """A data directory in the shared layout made of the bundled sample questions: every split of
    every dataset, and every rationale file the committed recipes read (the sample rationales,
    with EntailmentBank's facts list)."""
    for dataset in ("arc_easy", "arc_challenge", "openbookqa"):
        (folder / dataset).mkdir(parents=True)
        for split in ("train", "dev", "test"):
            lines = [json.dumps(q.to_ai2() | {"id": _split_id(q.id, split)}) for q, _ in sample_items()]
            (folder / dataset / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "rationales").mkdir()
    for name in RATIONALE_FILES:
        split = name.rpartition("_")[2]
        rows = [
            {
                "id": _split_id(q.id, split),
                "rationale": text,
                "teacher": "human",
                "teacher_answer": q.answer_key,
                "facts": text.split(". ")[:2],
            }
            for q, text in sample_items()
        ]
        (folder / "rationales" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _split_id(question_id: str, split: str) -> str:
    """The sample questions in every split, each split's under ids of its own (as real splits are)."""
    return question_id if split == "train" else f"{question_id}-{split}"


TINY = """
[recipe]
name = "tiny"
about = "A recipe of every kind of step but ship, on the sample questions."
baseline = "eval:lm/answer-only"
compare = [["eval:lm/two-stage", "eval:choices/two-stage"]]

[defaults.train.settings]
batch_size = 4
max_length = 96
max_steps = 2
save_steps = 1
logging_steps = 1
target_modules = ["q_proj", "v_proj"]

[steps.questions]
kind = "pick"
questions = "arc_easy/train"
rationales = "rationales/entailmentbank_arc_easy_train.jsonl"
n = 6

[steps.stage1]
kind = "train"
stage = "rationale"
data = ["@questions/entailmentbank_arc_easy_train.jsonl"]

[steps.own]
kind = "sample"
questions = "@questions/questions.jsonl"
adapters = { rationale = "@stage1" }
samples = 1
max_tokens = 4

[steps.answer]
kind = "train"
stage = "answer"
data = ["@questions/entailmentbank_arc_easy_train.jsonl"]
student_rationales = ["@own/rationales.jsonl"]
arms.lm.settings.objective = "lm"
arms.choices.settings.objective = "choices"

[steps.answer-only]
kind = "train"
stage = "answer-only"
data = ["@questions/entailmentbank_arc_easy_train.jsonl"]

[steps.eval]
kind = "eval"
dataset = "arc_easy"
split = "dev"
limit = 5
max_tokens = 4
adapters = { rationale = "@stage1", answer = "@answer", answer-only = "@answer-only" }
variants = ["answer-only", "two-stage"]
arms.lm = {}
arms.choices.rationales = ["@eval:lm/predictions.jsonl"]
"""


@pytest.fixture
def data(tmp_path) -> Path:
    return sample_data(tmp_path / "data")


def write(folder: Path, text: str, name: str = "r.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def scicot(args: list[str], env: dict | None = None):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


# -- refused before anything runs -------------------------------------------------------------

BAD = [
    ("unknown step key", ("n = 6", "n = 6\nepoch = 2"), "steps.questions: unknown key 'epoch'"),
    ("unknown setting", ("max_steps = 2", "max_steps = 2\nepoch = 2"), "unknown training setting 'epoch'"),
    ("wrong type", ("n = 6", 'n = "six"'), "steps.questions: n takes a whole number, not 'six'"),
    ("wrong setting type", ("batch_size = 4", 'batch_size = "4"'), "settings.batch_size: batch_size takes a whole number"),
    ("missing file", ('entailmentbank_arc_easy_train.jsonl"\nn', 'entailmentbank_openbookqa_train.jsonl"\nn'), "is missing"),
    ("unknown kind", ('kind = "pick"', 'kind = "select"'), "unknown kind 'select'"),
    ("no stage", ('stage = "rationale"\n', ""), "steps.stage1: stage is missing"),
    ("unknown stage", ('stage = "rationale"', 'stage = "writer"'), "stage 'writer'"),
    ("later step", ('data = ["@questions/', 'data = ["@own/'), "names a later step"),
    ("no such step", ('data = ["@questions/', 'data = ["@pick/'), "names no step"),
    ("file a step does not make", ("@own/rationales.jsonl", "@own/own.jsonl"), "step own makes no 'own.jsonl'"),
    ("arm of a step without arms", ('rationale = "@stage1"', 'rationale = "@stage1:lm"'), "step stage1 has no arms"),
    ("unknown variant", ('variants = ["answer-only", "two-stage"]', 'variants = ["answer-only", "three-stage"]'), "unknown 'three-stage'"),
    ("bad objective", ('objective = "choices"', 'objective = "choice"'), "unknown objective 'choice'"),
    ("train on dev", ('stage = "answer-only"', 'stage = "answer-only"\nquestions = ["arc_easy/dev"]'), "train on train splits only"),
    ("test without final", ('split = "dev"', 'split = "test"'), "mark it final = true"),
    ("baseline of no step", ('baseline = "eval:lm/answer-only"', 'baseline = "eval:none/answer-only"'), "[recipe] baseline"),
    ("baseline of no variant", ('baseline = "eval:lm/answer-only"', 'baseline = "answer-alone"'), "is no variant"),
    ("not toml", ("[recipe]", "[recipe"), "is not valid TOML"),
    ("compare of no step", ('compare = [["eval:lm/', 'compare = [["eval:none/'), "[recipe] compare 'eval:none/two-stage'"),
    ("compare of a variant not scored", ('"eval:lm/two-stage", "eval', '"eval:lm/zero-shot", "eval'), "compare 'eval:lm/zero-shot'"),
    ("compare of one side", ('"eval:lm/two-stage", "eval:choices/two-stage"', '"eval:lm/two-stage"'), "takes a list of pairs"),
    ("compare of a variant with itself", ('"eval:choices/two-stage"]]', '"eval:lm/two-stage"]]'), "pair two variants scored on the same"),
]


@pytest.mark.parametrize("change, message", [(c, m) for _, c, m in BAD], ids=[name for name, _, _ in BAD])
def test_a_bad_recipe_is_refused_before_anything_runs(tmp_path, data, change, message):
    old, new = change
    assert old in TINY
    recipe = write(tmp_path, TINY.replace(old, new, 1))
    run_dir = tmp_path / "run"
    result = scicot(["run", str(recipe), "--data-dir", str(data), "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output and len(result.output.splitlines()) == 1
    assert not run_dir.exists()


def test_a_test_split_never_feeds_a_choice(tmp_path, data):
    """Scores on a test split are for final reports: an eval that reuses a test eval's
    rationales is refused (as would be any step reading it, but a ship step)."""
    text = TINY.replace('split = "dev"', 'split = "test"\nfinal = true')
    with pytest.raises(ConfigError, match="made from a test split: test splits are for final reports only"):
        recipes.load(write(tmp_path, text), data)


CHOOSE = """
[steps.cap]
kind = "choose"
what = "sentence-cap"
reports = ["@eval:lm"]
adapters = { rationale = "@stage1", answer = "@answer:lm" }

[steps.again]
kind = "eval"
dataset = "arc_easy"
split = "dev"
adapters = { rationale = "@stage1", answer = "@answer:lm" }
variants = ["two-stage"]
max_sentences = "@cap"
"""


@pytest.mark.parametrize(
    "change, message",
    [
        (('what = "sentence-cap"', 'what = "epochs"'), "what 'epochs'; give one of sentence-cap, prior-weight"),
        (('reports = ["@eval:lm"]', 'reports = ["@stage1"]'), "'@stage1' is no eval step"),
        (('max_sentences = "@cap"', 'max_sentences = "@stage1"'), "name a choose step whose what chooses max_sentences"),
        (('max_sentences = "@cap"', 'max_sentences = "one"'), "max_sentences takes a whole number, not 'one'"),
        (('max_sentences = "@cap"', "max_sentences = 1.5"), "max_sentences takes a whole number"),
        (('what = "sentence-cap"', 'what = "prior-weight"'), "name a choose step whose what chooses max_sentences"),
    ],
)
def test_a_choice_is_made_by_a_choose_step_on_eval_reports(tmp_path, data, change, message):
    assert change[0] in CHOOSE
    with pytest.raises(ConfigError, match=re.escape(message)):
        recipes.load(write(tmp_path, TINY + CHOOSE.replace(*change)), data)


def test_a_choice_is_never_made_on_a_test_split(tmp_path, data):
    text = TINY + CHOOSE.replace('reports = ["@eval:lm"]', 'reports = ["@final"]')
    text = text.replace(
        "[steps.cap]",
        '[steps.final]\nkind = "eval"\ndataset = "arc_easy"\nsplit = "test"\nfinal = true\nadapters = { answer-only = "@answer-only" }\n\n[steps.cap]',
    )
    with pytest.raises(ConfigError, match="made from a test split: test splits are for final reports only, never for a choice"):
        recipes.load(write(tmp_path, text), data)


def test_the_dev_choices_prefer_fewer_sentences_and_a_weight_near_a_half_and_refuse_test():
    from scicot_core import dev_choices

    caps = {"caps": {"1": {"accuracy": 60.0}, "2": {"accuracy": 60.0}, "none": {"accuracy": 55.0}}, "questions": 10}
    assert dev_choices.sentence_cap({"arc_easy/dev": caps})[0] == 1
    assert dev_choices.sentence_cap({"arc_easy/dev": caps | {"caps": {"1": {"accuracy": 50.0}, "none": {"accuracy": 51.0}}}})[0] is None
    sweep = [{"title": "arc_easy/dev", "n": 10, "prior_sweep": {"0.3": 0.6, "0.5": 0.6, "0.9": 0.5}}]
    assert dev_choices.prior_weight(sweep)[0] == 0.5
    with pytest.raises(ConfigError, match="arc_easy/test is a test split"):
        dev_choices.prior_weight([sweep[0] | {"title": "arc_easy/test"}])


def test_a_missing_data_directory_says_what_to_give(tmp_path):
    result = scicot(["run", str(write(tmp_path, TINY)), "--run-dir", str(tmp_path / "run")], env={"SCICOT_DATA_DIR": ""})
    assert result.exit_code == 1 and "give --data-dir" in result.output
    assert not (tmp_path / "run").exists()


def test_smoke_takes_n_questions_and_n_steps_everywhere(tmp_path, data):
    recipe = recipes.load(write(tmp_path, TINY), data, smoke=3)
    by_id = {s.id: s for s in recipe.steps}
    assert by_id["questions"].keys["n"] == 3
    assert all(s.keys["settings"]["max_steps"] == 3 and s.keys["settings"]["limit"] == 3 for s in recipe.steps if s.kind == "train")
    assert by_id["own"].keys["limit"] == 3 and by_id["eval:lm"].keys["limit"] == 3


def test_arms_read_their_own_arm_and_name_another(tmp_path, data):
    recipe = recipes.load(write(tmp_path, TINY), data)
    assert [s.id for s in recipe.steps] == [
        "questions", "stage1", "own", "answer:lm", "answer:choices", "answer-only", "eval:lm", "eval:choices"
    ]  # fmt: skip
    assert recipe.step("eval:lm").needs == ["stage1", "answer:lm", "answer-only"]
    assert recipe.step("eval:choices").needs == ["eval:lm", "stage1", "answer:choices", "answer-only"]


# -- a run, resumed ---------------------------------------------------------------------------


def test_a_run_resumes_and_keeps_its_report_card(tmp_path, data, tiny_causal_dir):
    recipe = write(tmp_path, TINY)
    run_dir, results = tmp_path / "run", tmp_path / "results"
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(recipe), "--data-dir", str(data), "--run-dir", str(run_dir), "--results", str(results)]

    first = scicot(args, env)
    assert first.exit_code == 0, first.output
    summary = json.loads((results / "tiny.json").read_text())
    assert summary == json.loads((run_dir / "report.json").read_text())
    assert summary["recipe"] == "tiny" and summary["smoke"] is None and summary["commit"]
    assert summary["device"].startswith(("CPU", "GPU"))
    assert set(summary["data"]) == {"arc_easy/train.jsonl", "arc_easy/dev.jsonl", "rationales/entailmentbank_arc_easy_train.jsonl"}
    assert all(len(h) == 64 for h in summary["data"].values())  # SHA-256, hex
    assert [s["step"] for s in summary["steps"]] == [s.id for s in recipes.load(recipe, data).steps]
    assert all(s["minutes"] >= 0 for s in summary["steps"])
    assert [(r["step"], r["questions"], r["n"], sorted(r["accuracy"])) for r in summary["accuracy"]] == [
        ("eval:lm", "arc_easy/dev", 5, ["answer-only", "two-stage"]),
        ("eval:choices", "arc_easy/dev", 5, ["answer-only", "two-stage"]),
    ]
    assert [(p["a"], p["b"]) for p in summary["paired"]] == [
        ("eval:lm/answer-only", "eval:lm/two-stage"),
        ("eval:lm/answer-only", "eval:choices/answer-only"),
        ("eval:lm/answer-only", "eval:choices/two-stage"),
        ("eval:lm/two-stage", "eval:choices/two-stage"),  # the recipe's compare pair
    ]
    assert all(p["questions"] == 5 and 0 <= p["p"] <= 1 for p in summary["paired"])
    assert summary["samples"] == [{"step": "own", "rationales": 6, "conclude_gold": summary["samples"][0]["conclude_gold"]}]
    assert 0 <= summary["samples"][0]["conclude_gold"] <= 100
    card = (run_dir / "report.md").read_text()
    assert "| eval:choices | arc_easy/dev (5) |" in card and "| eval:lm/answer-only | eval:choices/two-stage | 5 |" in card

    again = scicot(args, env)
    assert again.exit_code == 0 and again.output.count("done before") == 8

    # A torn step (its marker says not done) runs again in place; a changed one starts over,
    # and so does every step that reads it.
    marker = run_dir / "own" / "scicot_step.json"
    marker.write_text(json.dumps(json.loads(marker.read_text()) | {"done": False}))
    torn = scicot(args, env)
    assert "== own (sample) goes on" in torn.output and torn.output.count("done before") == 7
    # The same data elsewhere (a run carried to another machine) changes nothing; changed data does.
    moved = data.rename(tmp_path / "elsewhere")
    args[args.index(str(data))] = str(moved)
    assert scicot(args, env).output.count("done before") == 8
    dev = moved / "arc_easy" / "dev.jsonl"
    dev.write_text("".join(dev.read_text().splitlines(keepends=True)[1:]))  # one question fewer
    redone = scicot(args, env)
    assert re.findall(r"^== (\S+) \(\w+\) starts", redone.output, re.M) == ["eval:lm", "eval:choices"]
    recipe.write_text(TINY.replace("[steps.answer-only]\nkind", "[steps.answer-only]\nsettings = { seed = 1 }\nkind"))
    changed = scicot(args, env)
    assert changed.exit_code == 0, changed.output
    assert "== answer-only: its settings or inputs changed; it starts over" in changed.output
    restarted = re.findall(r"^== (\S+) \(\w+\) starts", changed.output, re.M)
    assert restarted == ["answer-only", "eval:lm", "eval:choices"]


def test_a_smoke_run_writes_no_summary_and_a_test_step_waits_for_test(tmp_path, data, tiny_causal_dir):
    text = TINY + '\n[steps.final]\nkind = "eval"\ndataset = "arc_easy"\nsplit = "test"\nfinal = true\nlimit = 2\n'
    text += 'adapters = { answer-only = "@answer-only" }\nvariants = ["answer-only"]\n'
    run_dir, results = tmp_path / "run", tmp_path / "results"
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(write(tmp_path, text)), "--data-dir", str(data), "--run-dir", str(run_dir), "--results", str(results)]
    smoke = scicot([*args, "--smoke", "2"], env)
    assert smoke.exit_code == 0, smoke.output
    assert "== final: held" in smoke.output and not results.exists()
    assert json.loads((run_dir / "report.json").read_text())["smoke"] == 2
    held = scicot(args, env)  # a full run without --test: complete but for the final step, so no summary yet
    assert held.exit_code == 0 and not results.exists()
    final = scicot([*args, "--test"], env)
    assert final.exit_code == 0 and (results / "tiny.json").is_file()
    assert [r["step"] for r in json.loads((results / "tiny.json").read_text())["accuracy"]][-1] == "final"


# -- the committed recipes --------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.toml")), ids=lambda p: p.stem)
def test_every_committed_recipe_checks(path):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not here: the committed recipes read the shared data")
    recipe = recipes.load(path, SHARED)
    assert recipe.name == path.stem and recipe.about


CEILING = """
[steps.explained]
kind = "pick"
questions = "arc_easy/dev"
rationales = "rationales/entailmentbank_arc_easy_dev.jsonl"
n = 4
arms.facts.rationale_from = "facts"
arms.whole = {}

[steps.ceiling]
kind = "eval"
questions = "@explained:whole/questions.jsonl"
adapters = { rationale = "@stage1", answer = "@answer:lm", answer-only = "@answer-only" }
variants = ["answer-only", "two-stage"]
arms.facts.rationales = ["@explained:facts/entailmentbank_arc_easy_dev.jsonl"]
arms.hypothesis.rationales = ["@explained:whole/entailmentbank_arc_easy_dev.jsonl"]
"""


def test_stage_2_reads_a_picked_explanation_as_facts_or_whole(tmp_path, data, tiny_causal_dir):
    """What recipes/stage1-check.toml's ceiling does: dev questions picked with their human
    explanations, as its facts alone or whole, and read by stage 2 in place of stage 1's."""
    run_dir = tmp_path / "run"
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(write(tmp_path, TINY + CEILING)), "--data-dir", str(data), "--run-dir", str(run_dir), "--smoke", "2"]
    done = scicot(args, env)
    assert done.exit_code == 0, done.output
    facts = [json.loads(line) for line in (run_dir / "explained/facts/entailmentbank_arc_easy_dev.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (run_dir / "explained/whole/entailmentbank_arc_easy_dev.jsonl").read_text().splitlines()]
    assert [r["id"] for r in facts] == [r["id"] for r in whole] and len(facts) == 2
    assert facts[0]["rationale"] == " ".join(f[0].upper() + f[1:] + ("" if f.endswith(".") else ".") for f in whole[0]["facts"])
    summary = json.loads((run_dir / "report.json").read_text())
    ceiling = [r for r in summary["accuracy"] if r["step"].startswith("ceiling")]
    assert [(r["step"], r["n"]) for r in ceiling] == [("ceiling:facts", 2), ("ceiling:hypothesis", 2)]
    predictions = [json.loads(line) for line in (run_dir / "ceiling/facts/predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [r["id"] for r in facts]


@pytest.mark.parametrize("name", ["crossfit", "distill", "distill-slice", "reader-check"])
def test_a_committed_recipe_without_the_shipped_student_runs_as_a_smoke_run_on_a_tiny_model(tmp_path, data, tiny_causal_dir, name):
    run_dir = tmp_path / "run"
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    done = scicot(["run", f"recipes/{name}.toml", "--data-dir", str(data), "--run-dir", str(run_dir), "--smoke", "2"], env)
    assert done.exit_code == 0, done.output
    summary = json.loads((run_dir / "report.json").read_text())
    recipe = recipes.load(ROOT / "recipes" / f"{name}.toml", data)
    ran = [s.id for s in recipe.steps if not s.on_test]
    assert [s["step"] for s in summary["steps"]] == ran
    assert [r["step"] for r in summary["accuracy"]] == [s for s in ran if recipe.step(s).kind == "eval"]
    assert summary["paired"] and all(r["n"] == 2 for r in summary["accuracy"])
    if name == "distill":  # its choices, made on the dev reports and taken by the steps after them
        assert [(c["step"], c["what"]) for c in summary["choices"]] == [("cap", "sentence-cap"), ("prior", "prior-weight")]
        assert summary["choices"][0]["max_sentences"] in (0, 1, 2, 3) and 0 <= summary["choices"][1]["prior_weight"] <= 1
        k8 = json.loads((run_dir / "dev-k8" / "arc_easy" / "results.json").read_text())
        assert k8["max_sentences"] == (summary["choices"][0]["max_sentences"] or None)


@pytest.mark.slow
def test_the_choices_check_runs_end_to_end_as_a_smoke_run(tmp_path, data):
    """The real model and the shipped stage 1, two questions and two steps everywhere, on data
    the test writes (no shared data needed)."""
    done = subprocess.run(
        [sys.executable, "-m", "demo.cli", "run", "recipes/choices-check.toml", "--smoke", "2"]
        + ["--data-dir", str(data), "--run-dir", str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["step"] for r in summary["accuracy"]] == ["eval:lm", "eval:choices"]
    assert all(r["n"] == 2 for r in summary["accuracy"])


# -- the docs follow the files ----------------------------------------------------------------

TABLES = ROOT / "benchmarks" / "accuracy_tables.py"


def tables_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TABLES), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_every_accuracy_table_in_the_docs_matches_its_committed_summary():
    done = tables_script("--check")
    assert done.returncode == 0, done.stderr


def test_a_table_that_disagrees_with_its_file_fails_the_check_and_is_rewritten(tmp_path):
    summary = {
        "recipe": "demo",
        "baseline": "eval:a/answer-only",
        "accuracy": [
            {"step": "eval:a", "questions": "arc_easy/dev", "n": 570, "accuracy": {"answer-only": 64.9, "two-stage": 56.7}},
            {"step": "eval:b", "questions": "arc_easy/dev", "n": 570, "accuracy": {"answer-only": 67.7, "two-stage": 60.7}},
        ],
        "paired": [
            {"a": "eval:a/answer-only", "b": "eval:b/two-stage", "questions": 570, "accuracy_a": 64.9, "accuracy_b": 60.7}
            | {"difference": -4.2, "only_a": 60, "only_b": 36, "p": 0.018}
        ],
    }
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo.json").write_text(json.dumps(summary))
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Figures\n\n<!-- accuracy: demo -->\n| old | table |\n<!-- /accuracy -->\n\nProse stays.\n")
    where = ["--docs", str(docs), "--results", str(results)]
    stale = tables_script("--check", *where)
    assert stale.returncode == 1 and "the tables demo differ from their summaries" in stale.stderr
    assert tables_script(*where).returncode == 0
    text = docs.read_text()
    assert (
        "| eval:b | arc_easy/dev (570) | 67.7% | 60.7% |" in text
        and "| eval:a/answer-only | eval:b/two-stage | 570 | 64.9% | 60.7% | -4.2 | 60 | 36 | 0.018 |" in text
    )
    assert text.endswith("<!-- /accuracy -->\n\nProse stays.\n") and tables_script("--check", *where).returncode == 0
    (results / "other.json").write_text(json.dumps(summary | {"recipe": "other"}))
    orphan = tables_script("--check", *where)
    assert orphan.returncode == 1 and "other.json has no table" in orphan.stderr


def test_a_bare_variant_baseline_pairs_each_eval_with_its_own(tmp_path, data):
    from scicot_core import report_card

    recipe = recipes.load(write(tmp_path, TINY.replace('baseline = "eval:lm/answer-only"', 'baseline = "answer-only"')), data)
    run_dir = tmp_path / "run"
    answers = {"eval:lm": ["A", "B", "C"], "eval:choices": ["A", "A", "A"]}  # gold: A A A; answer-only says A B C
    for step_id, two_stage in answers.items():
        folder = run_dir / recipe.step(step_id).folder
        folder.mkdir(parents=True)
        rows = [
            {"id": f"q{i}", "answer_key": "A", "answer-only": {"label": "ABC"[i]}, "two-stage": {"label": t}}
            for i, t in enumerate(two_stage)
        ]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        accuracy = {"answer-only": 1 / 3, "two-stage": two_stage.count("A") / 3}
        (folder / "results.json").write_text(json.dumps({"title": "arc_easy/dev", "n": 3, "accuracy": accuracy}))
    finished = {s.id: {"minutes": 0.1} for s in recipe.steps}
    pairs = report_card.card(recipe, run_dir, finished, {})["paired"]
    assert [(p["a"], p["b"], p["only_a"], p["only_b"]) for p in pairs] == [
        ("eval:lm/answer-only", "eval:lm/two-stage", 0, 0),
        ("eval:choices/answer-only", "eval:choices/two-stage", 0, 2),
        ("eval:lm/two-stage", "eval:choices/two-stage", 0, 2),  # TINY's compare pair
    ]


def test_a_stage_folder_named_by_path_is_read_and_its_files_hashed(tmp_path, data, tiny_causal_dir):
    """A candidate a ship step wrote (here a trained stage of another run) is named by its folder,
    relative to the recipe; its files are among the step's inputs, so a changed adapter scores
    again, and a folder with no trained stage is refused before anything runs."""
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    first = tmp_path / "first"
    trained = scicot(["run", str(write(tmp_path, TINY)), "--data-dir", str(data), "--run-dir", str(first), "--smoke", "2"], env)
    assert trained.exit_code == 0, trained.output
    text = """
[recipe]
name = "candidate"
[steps.eval]
kind = "eval"
dataset = "arc_easy"
split = "dev"
limit = 3
adapters = { answer-only = "first/answer-only" }
variants = ["answer-only"]
"""
    recipe, run_dir = write(tmp_path, text, "candidate.toml"), tmp_path / "run"
    args = ["run", str(recipe), "--data-dir", str(data), "--run-dir", str(run_dir), "--results", str(tmp_path / "results")]
    done = scicot(args, env)
    assert done.exit_code == 0, done.output
    summary = json.loads((run_dir / "report.json").read_text())
    assert "first/answer-only/adapter_model.safetensors" in summary["data"] and summary["accuracy"][0]["n"] == 3
    assert scicot(args, env).output.count("done before") == 1
    config = first / "answer-only" / "adapter_config.json"
    config.write_text(config.read_text() + "\n")  # another file, if the same settings
    assert "== eval: its settings or inputs changed; it starts over" in scicot(args, env).output

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = scicot(
        [
            "run",
            str(write(tmp_path, text.replace("first/answer-only", "empty"), "bad.toml")),
            "--data-dir",
            str(data),
            "--run-dir",
            str(tmp_path / "r2"),
        ]
    )
    assert refused.exit_code == 1 and "holds no trained stage" in refused.output and len(refused.output.splitlines()) == 1
    assert not (tmp_path / "r2").exists()


MEMORY = """
[recipe]
name = "memory"
baseline = "answer-only"
compare = [["eval:own/two-stage", "eval:facts/two-stage"]]

[defaults.train.settings]
batch_size = 4
max_length = 96
max_steps = 2
target_modules = ["q_proj", "v_proj"]

[steps.memory]
kind = "memory"
sources = ["entailmentbank"]

[steps.facts]
kind = "retrieve"
memory = "@memory"
dataset = "arc_easy"
split = "dev"
k = 2

[steps.answer]
kind = "train"
stage = "answer"
data = ["rationales/entailmentbank_arc_easy_train.jsonl"]

[steps.answer-only]
kind = "train"
stage = "answer-only"
data = ["rationales/entailmentbank_arc_easy_train.jsonl"]

[steps.eval]
kind = "eval"
dataset = "arc_easy"
split = "dev"
limit = 4
max_tokens = 4
adapters = { rationale = "@answer", answer = "@answer", answer-only = "@answer-only" }
variants = ["answer-only", "two-stage"]
arms.own = {}
arms.facts.rationales = ["@facts/rationales.jsonl"]

[steps.read]
kind = "eval"
dataset = "arc_easy"
split = "dev"
limit = 4
memory = "@memory"
memory_k = 2
adapters = { answer = "@answer" }
variants = ["retrieve-then-read"]

[steps.train-facts]
kind = "retrieve"
memory = "@memory"
dataset = "arc_easy"
split = "train"
k = 2

[steps.stage1-memory]
kind = "train"
stage = "rationale"
data = ["rationales/entailmentbank_arc_easy_train.jsonl"]
facts = ["@train-facts/rationales.jsonl"]

[steps.own-with-memory]
kind = "sample"
questions = "arc_easy/train"
adapters = { rationale = "@stage1-memory" }
samples = 2
max_tokens = 4
limit = 3
facts = ["@train-facts/rationales.jsonl"]

[steps.with-memory]
kind = "eval"
dataset = "arc_easy"
split = "dev"
limit = 4
max_tokens = 4
memory = "@memory"
memory_k = 2
adapters = { rationale = "@stage1-memory", answer = "@answer", answer-only = "@answer-only" }
variants = ["two-stage+memory", "answer-only+memory"]
"""


def test_a_memory_step_builds_the_memory_and_a_retrieve_step_gives_stage_2_its_facts(tmp_path, data, tiny_causal_dir, monkeypatch):
    from scicot_core.student import Student

    asked, sample = [], Student.sample_rationales

    def spy(self, questions, *args, **kwargs):  # args: k, sampling, batch_size, stage, stop, facts
        asked.append(([q.id for q in questions], kwargs.get("facts", args[5] if len(args) > 5 else None)))
        return sample(self, questions, *args, **kwargs)

    monkeypatch.setattr(Student, "sample_rationales", spy)
    env = {"SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_CACHE_DIR": str(tmp_path / "cache")}
    run_dir = tmp_path / "run"
    args = ["run", str(write(tmp_path, MEMORY)), "--data-dir", str(data), "--run-dir", str(run_dir), "--results", str(tmp_path / "r")]
    done = scicot(args, env)
    assert done.exit_code == 0, done.output
    facts = [json.loads(line) for line in (run_dir / "facts" / "rationales.jsonl").read_text().splitlines()]
    dev = [json.loads(line)["id"] for line in (data / "arc_easy" / "dev.jsonl").read_text().splitlines()]
    assert [f["id"] for f in facts] == dev and all(len(f["facts"]) <= 2 for f in facts)
    assert sum(len(f["facts"]) == 2 for f in facts) > len(facts) / 2
    assert all(f["rationale"] == " ".join(f["facts"]) for f in facts)
    # The sample data's dev questions are its train questions under other ids: their facts are found.
    own = {
        json.loads(line)["id"]: json.loads(line)["facts"]
        for line in (data / "rationales" / "entailmentbank_arc_easy_train.jsonl").read_text().splitlines()
    }
    twins = [{memory_key(x) for x in own[f["id"].removesuffix("-dev")]} for f in facts]
    assert sum(bool({memory_key(x) for x in f["facts"]} & twin) for f, twin in zip(facts, twins)) > len(facts) / 2
    read = [json.loads(line) for line in (run_dir / "eval" / "facts" / "predictions.jsonl").read_text().splitlines()]
    assert read[0]["two-stage"]["rationale"] == facts[0]["rationale"]
    summary = json.loads((run_dir / "report.json").read_text())
    assert ("eval:own/two-stage", "eval:facts/two-stage") in {(p["a"], p["b"]) for p in summary["paired"]}
    assert "rationales/entailmentbank_arc_easy_train.jsonl" in summary["data"]
    # retrieve-then-read reads the same facts as the retrieve step wrote, with nothing generated.
    read_rows = [json.loads(line) for line in (run_dir / "read" / "predictions.jsonl").read_text().splitlines()]
    assert [r["retrieve-then-read"]["rationale"] for r in read_rows] == [f["rationale"] for f in facts[:4]]
    # Stage 1 learnt with each training question's facts (never its own) before it; two-stage+memory
    # and answer-only+memory read the dev questions' facts the same way.
    train_facts = [json.loads(line) for line in (run_dir / "train-facts" / "rationales.jsonl").read_text().splitlines()]
    assert train_facts and not any({memory_key(x) for x in f["facts"]} & {memory_key(x) for x in own[f["id"]]} for f in train_facts)
    config = json.loads((run_dir / "stage1-memory" / "scicot_train_config.json").read_text())
    assert config["facts"] == [str(run_dir / "train-facts" / "rationales.jsonl")]
    # Stage 1's own samples for stage 2's mix are written after the same facts it learnt with.
    by_id = {f["id"]: f["rationale"] for f in train_facts}
    sampled = [(ids, facts) for ids, facts in asked if facts and set(ids) <= set(by_id)]
    assert sampled and all(facts == [by_id[i] for i in ids] for ids, facts in sampled)
    assert len((run_dir / "own-with-memory" / "rationales.jsonl").read_text().splitlines()) == 6
    rows = [json.loads(line) for line in (run_dir / "with-memory" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all({"two-stage+memory", "answer-only+memory"} <= set(r) for r in rows)
    assert scicot(args, env).output.count("done before") == 11


@pytest.mark.parametrize(
    "old, new",
    [
        ('memory = "@memory"', 'memory = "@answer"'),
        ('sources = ["entailmentbank"]', 'sources = ["gpt5"]'),
        ("k = 2", "k = 0"),
        ("k = 2", 'k = 2\nmode = "both"'),
        ('split = "dev"\nk', "k"),
        ('memory = "@memory"\nmemory_k', "memory_k"),
        ("max_tokens = 4", "max_tokens = 4\nmemory_k = 2"),
        ("k = 2", "k = 51"),
        ("memory_k = 2", "memory_k = 0"),
        ("memory_k = 2", 'memory_k = 2\nmemory_mode = "all"'),
    ],
    ids=[
        "memory of no memory step",
        "unknown source",
        "no facts",
        "unknown mode",
        "no split",
        "read without memory",
        "memory_k without memory",
        "too many facts",
        "no facts read",
        "bad memory mode",
    ],
)
def test_a_bad_memory_or_retrieve_step_is_refused_before_anything_runs(tmp_path, data, old, new):
    assert old in MEMORY
    result = scicot(["run", str(write(tmp_path, MEMORY.replace(old, new, 1))), "--data-dir", str(data), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists()
