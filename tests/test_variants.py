"""Sampling, self-consistency, the prior mix and the variant table: seeded sampling is
reproducible, voting and averaging on hand-made distributions, and clear errors for bad settings."""

import json

import pytest
from click.testing import CliRunner

from demo.cli import main
from scicot_core import variants
from scicot_core.errors import ConfigError
from scicot_core.lm import Sampling
from scicot_core.questions import Choice, Question, sample_items
from scicot_core.student import Answer, Student, majority_label, mean_answer, with_prior

Q = Question("q", "What melts ice?", (Choice("A", "cold"), Choice("B", "heat"), Choice("C", "salt")), "B")


def _answer(a, b, c):
    probs = {"A": a, "B": b, "C": c}
    best = max(probs, key=probs.get)
    return Answer("q", best, Q.choice(best).text, probs, "two-stage")


def test_averaging_and_voting_by_hand():
    answers = [_answer(0.5, 0.4, 0.1), _answer(0.5, 0.4, 0.1), _answer(0.0, 0.9, 0.1)]
    mean = mean_answer(Q, answers, "two-stage")
    assert mean.probabilities == pytest.approx({"A": 1 / 3, "B": 1.7 / 3, "C": 0.1})
    assert mean.label == "B"  # the average prefers B, though A won two of the three answers
    assert majority_label(Q, answers) == "A"
    tie = [_answer(0.6, 0.3, 0.1), _answer(0.1, 0.8, 0.1)]
    assert majority_label(Q, tie) == "B"  # one vote each: the higher mean probability wins


def test_the_prior_mix_is_log_linear():
    answer, prior = _answer(0.7, 0.2, 0.1), _answer(0.1, 0.8, 0.1)
    assert with_prior(Q, answer, prior, 0.0).probabilities == pytest.approx(answer.probabilities)
    assert with_prior(Q, answer, prior, 1.0).probabilities == pytest.approx(prior.probabilities)
    half = with_prior(Q, answer, prior, 0.5).probabilities
    expected = {k: (answer.probabilities[k] * prior.probabilities[k]) ** 0.5 for k in "ABC"}
    total = sum(expected.values())
    assert half == pytest.approx({k: v / total for k, v in expected.items()})
    with pytest.raises(ConfigError, match="prior weight"):
        with_prior(Q, answer, prior, 1.5)


def test_seeded_sampling_is_reproducible_and_batched(tiny_causal):
    student = Student(tiny_causal, max_rationale_tokens=8)
    questions = [q for q, _ in sample_items()[:2]]
    first = student.sample_rationales(questions, 3, Sampling(1.0, 1.0, seed=7), batch_size=6)
    again = student.sample_rationales(questions, 3, Sampling(1.0, 1.0, seed=7), batch_size=6)
    other = student.sample_rationales(questions, 3, Sampling(1.0, 1.0, seed=8), batch_size=6)
    texts = lambda rs: [[r.text for r in group] for group in rs]  # noqa: E731
    assert [len(g) for g in first] == [3, 3] and texts(first) == texts(again) != texts(other)
    assert [r.meta["sample"] for r in first[0]] == [0, 1, 2]
    greedy = student.sample_rationales(questions, 1, None, batch_size=6)
    assert texts(greedy) == [[r.text] for r in student.rationales(questions)]


def _full_sort_nucleus(probs, top_p):
    ordered, order = probs.sort(dim=-1, descending=True)
    kept = ordered.masked_fill(ordered.cumsum(-1) - ordered > top_p, 0.0)
    return {(row, int(order[row, i])): float(kept[row, i]) for row in range(len(probs)) for i in range(probs.shape[-1]) if kept[row, i] > 0}


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.5, 50.0])  # 50: nearly flat, wider than the candidates
def test_the_nucleus_is_the_one_a_full_sort_gives(temperature):
    import torch

    from scicot_core.lm import NUCLEUS_CANDIDATES, _nucleus

    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(4, 5000) * 3 / temperature, dim=-1)
    weights, order = _nucleus(probs, 0.9)
    got = {(row, int(order[row, i])): float(weights[row, i]) for row in range(4) for i in range(weights.shape[-1]) if weights[row, i] > 0}
    assert got == pytest.approx(_full_sort_nucleus(probs, 0.9))
    if temperature == 50.0:
        assert max(row for row, _ in got) == 3 and len(got) > 4 * NUCLEUS_CANDIDATES  # the fallback ran


def test_sampled_tokens_stay_inside_the_nucleus():
    import torch

    from scicot_core.lm import _sample_step

    torch.manual_seed(1)
    logits = torch.tensor([[4.0, 3.0, 0.0, -1.0, -2.0] + [-9.0] * 95] * 200)
    seen = torch.zeros(200, 1, dtype=torch.long) + 99  # a token far outside, so the penalty changes nothing that matters
    picked = _sample_step(logits, seen, Sampling(1.0, 0.8, seed=0))
    assert set(picked.tolist()) == {0, 1}  # 0.72 and 0.26 of the mass: the nucleus of 0.8 is {0, 1}


def test_the_sampler_output_layer_gives_the_model_logits(tiny_causal):
    import torch

    lm = tiny_causal
    enc = lm._encode_prompts(["Which one melts ice?", "Heat"])
    step = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "use_cache": False}
    with torch.inference_mode():
        expected = lm.model(**step).logits[:, -1].float()
        assert torch.allclose(lm._next_logits()(**step), expected, atol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Sampling(temperature=0), "temperature must be above 0"),
        (lambda: Sampling(temperature=-1), "temperature must be above 0"),
        (lambda: Sampling(top_p=0), "top_p"),
    ],
)
def test_bad_sampling_settings(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_k_below_one_or_several_without_sampling_is_refused(tiny_causal):
    student = Student(tiny_causal, max_rationale_tokens=4)
    with pytest.raises(ConfigError, match="at least 1"):
        student.sample_rationales([Q], 0, Sampling())
    with pytest.raises(ConfigError, match="only when sampling"):
        student.sample_rationales([Q], 2, None)


def test_the_table_says_what_each_variant_needs():
    assert variants.available(lambda stage: False) == ["zero-shot", "two-stage"]
    assert variants.available(lambda stage: stage == "answer-only") == ["zero-shot", "answer-only", "two-stage", "two-stage+prior"]
    assert variants.get("step-by-step").needs == ("step-by-step",) and not variants.get("step-by-step").generates
    with pytest.raises(ConfigError, match="unknown variant"):
        variants.get("three-stage")


def test_prior_weight_file(tmp_path):
    assert variants.prior_weight(tmp_path) == variants.DEFAULT_PRIOR_WEIGHT
    variants.save_prior_weight(tmp_path, 0.3, {"dev": "x"})
    assert variants.prior_weight(tmp_path) == 0.3
    (tmp_path / variants.PRIOR_FILE).write_text('{"weight": 2}')
    with pytest.raises(ConfigError, match="outside"):
        variants.prior_weight(tmp_path)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, tiny_causal_dir):
    """Every stage trained for two steps on a tiny model, and where to evaluate it."""
    from scicot_core.train import TrainConfig
    from scicot_core.train import main as train

    tmp_path = tmp_path_factory.mktemp("tiny set")
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps(q.to_ai2() | {"rationale": t, "teacher": "ref"}) + "\n" for q, t in sample_items()[:8]))
    adapters = tmp_path / "adapters"
    for stage in ("rationale", "answer", "answer-only", "step-by-step"):
        train(
            TrainConfig(stage, [str(data)], str(adapters / stage), str(tiny_causal_dir), max_steps=2, batch_size=4),
            tmp_path / "c",
            progress=False,
        )
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q, _ in sample_items()[:4]))
    env = {"SCICOT_CACHE_DIR": str(tmp_path / "c"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_DATA_DIR": ""}
    return tmp_path, adapters, questions, env


def _eval_args(tiny_set, out, *extra) -> list[str]:
    """`scicot eval` of the tiny set on its questions, short rationales, report in `out`."""
    _, adapters, questions, _ = tiny_set
    return ["eval", "--questions", str(questions), "--adapters", str(adapters), "--out", str(out), "--max-tokens", "6", *extra]


def test_eval_and_ask_with_samples_on_a_tiny_model(tiny_set):
    tmp_path, adapters, questions, env = tiny_set
    result = CliRunner().invoke(main, _eval_args(tiny_set, tmp_path / "r", "--samples", "3", "--json"), env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["variants"] == ["zero-shot", "answer-only", "step-by-step", "two-stage", "two-stage+prior"]
    assert len(report["accuracy_by_k"]["two-stage"]) == 3 and report["samples"] == 3
    assert set(report["prior_sweep"]) == {str(w / 10) for w in range(11)}
    preds = [json.loads(line) for line in open(tmp_path / "r" / "predictions.jsonl")]
    assert all(len(p["two-stage"]["samples"]) == 3 for p in preds)
    assert (tmp_path / "r" / "accuracy_by_k.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(main, _eval_args(tiny_set, tmp_path / "r", "--samples", "0"), env=env)
    assert bad.exit_code != 0 and "--samples" in bad.output
    ask = ["ask", "--question", "What melts ice?", "--choice", "cold", "--choice", "heat", "--samples", "3", "--teacher", "none", "--json"]
    result = CliRunner().invoke(main, ask, env=env | {"SCICOT_ADAPTERS": str(adapters)})
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["samples"]) == 3 and all(set(s["probabilities"]) == {"A", "B"} for s in out["samples"])
    mean = {k: sum(s["probabilities"][k] for s in out["samples"]) / 3 for k in "AB"}
    assert out["answer"]["probabilities"] == pytest.approx(mean)


def test_shipping_a_set_writes_its_card_from_its_configs_and_reports(tiny_set):
    """scripts/ship_adapters.py as a user runs it: the card's settings, data and scores come from
    the run's files (greedy and sampled reports side by side, accuracy against k); a failed
    ship leaves the destination as it was."""
    import subprocess
    import sys
    from pathlib import Path

    tmp_path, adapters, questions, env = tiny_set
    root = Path(__file__).resolve().parent.parent
    reports = tmp_path / "reports"
    for name, extra in (
        ("greedy", ["--variant", "answer-only", "--variant", "two-stage"]),
        ("k3", ["--samples", "3", "--variant", "two-stage"]),
    ):
        cmd = _eval_args(tiny_set, reports / name, *extra)
        result = CliRunner().invoke(main, cmd, env=env)
        assert result.exit_code == 0, result.output
    dest = tmp_path / "shipped"
    dest.mkdir()
    (dest / "keep.txt").write_text("the set shipped before")

    def ship(*args):
        run_env = {**__import__("os").environ, **env, "PYTHONPATH": str(root)}
        cmd = [sys.executable, str(root / "scripts" / "ship_adapters.py"), str(adapters), "--dest", str(dest), *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=tmp_path)

    failed = ship("--reports", str(tmp_path / "no reports here"))
    assert failed.returncode != 0 and "run `scicot eval` first" in failed.stderr
    missing = ship("--reports", str(reports), "--stages", "rationale", "single-stage")
    assert missing.returncode != 0 and "train the stage first" in missing.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"] and not dest.with_name("shipped.new").exists()

    from scicot_core.student import save_sentence_cap

    cap = save_sentence_cap(adapters / "rationale", 1, {"reports": ["arc_easy/dev"]})  # stage 1's cap travels with it
    try:
        done = ship("--reports", str(reports))
    finally:
        cap.unlink()  # the set is shared with other tests
    assert done.returncode == 0, done.stderr
    assert (dest / "rationale" / "generation.json").exists()
    card = (dest / "README.md").read_text()
    assert "Stage 1 stops after 1 sentence(s) (`rationale/generation.json`, chosen on dev)." in card
    assert "`rationale`, `answer`, `answer-only`: rank 8 on the attention layers" in card
    assert "from set." in card and str(tmp_path) not in card  # data files by name, never a path
    assert "A candidate (not the default) student" in card  # shipped beside the package, not into it
    assert "`answer-only`: the gold answer after the question alone" in card
    for stage in ("rationale", "answer", "answer-only"):
        for name in ("scicot_train_config.json", "scicot_train_data.json"):
            kept = (dest / stage / name).read_text()
            assert str(tmp_path) not in kept and "set.jsonl" in kept, (stage, name)  # by name, no machine's folders
    assert "trained on" in card and "CPU (" in card
    header = next(line for line in card.splitlines() if line.startswith("| questions |"))
    assert header == "| questions | answer-only | two-stage | two-stage k=3 |"
    assert '"k=3" marks two-stage with 3 sampled rationales per question' in card
    assert "![two-stage accuracy against k, answer-only dashed](accuracy_by_k.png)" in card
    for name in ("accuracy.png", "accuracy_by_k.png"):
        assert (dest / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (dest / "answer").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "scicot_train_config.json",
        "scicot_train_data.json",
        "training_log.jsonl",
    ]
    assert not (dest / "keep.txt").exists()
