"""Rating criteria are data: a criterion added to `annotations/criteria.py` (here by patching its
table) is rated through the store, the app and the CLI, and every reader copes with the ratings
made before it existed: there it counts as not rated, not as an error and not as a zero."""

import json

import pytest
from click.testing import CliRunner

from annotations import criteria
from annotations.export import export_rows
from annotations.statistics import rating_statistics
from demo import handlers as h
from demo import plots
from demo.cli import main
from scicot_core.errors import DataError
from scicot_core.questions import Rationale, sample_items

EVIDENCE = criteria.Criterion("cites_evidence", "Does it cite evidence?", "none", "plenty", minimum=0, maximum=2)
OLD = {"correctness": 4, "clarity": 2, "supports_answer": 5}


@pytest.fixture
def old_rating(app_deps):
    """A store holding one rationale, rated by ann before the new criterion existed."""
    question, text = sample_items()[0]
    store = app_deps.store
    store.add_questions([question])
    rid = store.add_rationale(Rationale(question.id, text, "teacher", "ref"))
    store.add_rater("ann")
    store.upsert_rating(rid, "ann", OLD, "teacher")
    return rid


def test_a_new_criterion_is_rated_everywhere_and_old_ratings_lack_it(app_deps, old_rating, monkeypatch):
    rid, store = old_rating, app_deps.store
    monkeypatch.setattr(criteria, "CRITERIA", (*criteria.CRITERIA, EVIDENCE))

    # Read before anyone rated it: not rated, not zero.
    numbers = rating_statistics(store.ratings())
    assert numbers["mean_by_source"] == {"teacher": OLD | {"cites_evidence": None}}
    assert numbers["distribution"]["cites_evidence"] == {"teacher": {0: 0, 1: 0, 2: 0}}
    assert numbers["alpha"]["cites_evidence"] is None
    [row] = export_rows(store.curation_rows(), flt=_everything())
    assert row["mean_cites_evidence"] is None and row["mean_score"] == pytest.approx(11 / 3, abs=1e-4)

    # A new rating must score it, on its own scale, in the store and the app alike.
    store.add_rater("bob")
    before = store.counts()
    with pytest.raises(DataError, match=r"missing \['cites_evidence'\]"):
        store.upsert_rating(rid, "bob", OLD)
    with pytest.raises(DataError, match="cites_evidence is 3; give a whole number from 0 to 2"):
        store.upsert_rating(rid, "bob", OLD | {"cites_evidence": 3})
    assert store.counts() == before
    store.upsert_rating(rid, "bob", {"correctness": 2, "clarity": 2, "supports_answer": 3, "cites_evidence": 0}, "tie")

    store.add_rater("cy")
    item = h.next_item(app_deps, "cy")
    assert item[4] == rid and item[5:9] == (None, None, None, None)  # a score slot per criterion
    with pytest.raises(DataError, match="missing: Cites evidence"):
        h.submit_rating(app_deps, "cy", rid, rid, "", "", 5, 5, 5, None, "student", "")
    h.submit_rating(app_deps, "cy", rid, rid, "", "", 5, 5, 5, 2, "student", "")
    cy = next(g for g in store.ratings() if g["rater"] == "cy")
    assert cy["scores"] == {"correctness": 5, "clarity": 5, "supports_answer": 5, "cites_evidence": 2}

    # Every reader: the new criterion over the two ratings that have it, the old ones over all three.
    numbers = rating_statistics(store.ratings())
    assert numbers["mean_by_source"]["teacher"] == {"correctness": 11 / 3, "clarity": 3.0, "supports_answer": 13 / 3, "cites_evidence": 1.0}
    assert numbers["distribution"]["cites_evidence"] == {"teacher": {0: 1, 1: 0, 2: 1}}
    assert set(numbers["alpha"]) == {"correctness", "clarity", "supports_answer", "cites_evidence"}
    [row] = export_rows(store.curation_rows(), flt=_everything())
    assert row["mean_cites_evidence"] == 1.0 and row["n_raters"] == 3
    distribution, _, summary = plots.stats(app_deps)
    assert [ax.get_title() for ax in distribution.axes] == ["Correctness", "Clarity", "Supports answer", "Cites evidence"]
    assert [int(t) for t in distribution.axes[-1].get_xticks()] == [0, 1, 2]
    assert "| Cites evidence |" in summary and "3 submitted ratings from 3 raters" in summary


def test_the_cli_rates_and_reports_a_new_criterion(tmp_path, monkeypatch):
    monkeypatch.setattr(criteria, "CRITERIA", (*criteria.CRITERIA, EVIDENCE))
    env = {"SCICOT_DB": str(tmp_path / "cli.db"), "SCICOT_DATA_DIR": ""}
    question, text = sample_items()[0]
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(question.to_ai2() | {"rationale": text, "teacher": "ref"}) + "\n")

    def run(*args, code=0):
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    run("db", "import", str(path))
    token = run("db", "claim", "ann").strip().splitlines()[-1]
    [rid] = [line.split()[0] for line in run("db", "queue", "--rater", "ann", "--token", token).splitlines() if line.startswith("r-")]
    scores = ["--score", "correctness=4", "--score", "clarity=3", "--score", "supports_answer=5"]
    assert "missing ['cites_evidence']" in run("db", "rate", rid, "--rater", "ann", "--token", token, *scores, code=1)
    run("db", "rate", rid, "--rater", "ann", "--token", token, *scores, "--score", "cites_evidence=2")
    report = json.loads(run("db", "stats", "--json"))
    assert report["mean_by_source"]["teacher"] == {"correctness": 4, "clarity": 3, "supports_answer": 5, "cites_evidence": 2}


def test_the_app_shows_a_control_per_criterion_on_its_scale(app_deps, monkeypatch):
    from demo.ui import build_demo

    monkeypatch.setattr(criteria, "CRITERIA", (*criteria.CRITERIA, EVIDENCE))
    radios = {b.elem_id: b for b in build_demo(app_deps).blocks.values() if (b.elem_id or "").startswith("crit-")}
    assert sorted(radios) == ["crit-cites_evidence", "crit-clarity", "crit-correctness", "crit-supports_answer"]
    assert [value for _, value in radios["crit-cites_evidence"].choices] == [0, 1, 2]
    assert "(0 = none, 2 = plenty)" in radios["crit-cites_evidence"].label


def _everything():
    from annotations.export import ExportFilter

    return ExportFilter(accepted_only=False)
