"""The model wrapper and the two-stage student on tiny models, causal and seq2seq."""

import math

import pytest
import torch

from scicot_core.base_models import load_model, resolve
from scicot_core.errors import ModelError
from scicot_core.student import Student


@pytest.fixture(params=["causal", "seq2seq"])
def tiny_lm(request, tiny_causal, tiny_seq2seq):
    return {"causal": tiny_causal, "seq2seq": tiny_seq2seq}[request.param]


def test_batched_generation_matches_one_at_a_time(tiny_lm, samples):
    prompts = [tiny_lm.instruct(q.stem) for q in samples[:3]]
    batched = tiny_lm.generate(prompts, max_new_tokens=8)
    alone = [tiny_lm.generate([p], max_new_tokens=8)[0] for p in prompts]
    assert batched == alone
    assert len(batched) == 3 and all(text.strip() for text in batched)


def test_stream_grows_to_the_generated_text(tiny_lm, samples):
    prompt = tiny_lm.instruct(samples[0].stem)
    chunks = list(tiny_lm.stream(prompt, max_new_tokens=8))
    assert all(later.startswith(earlier) for earlier, later in zip(chunks, chunks[1:]))
    assert chunks[-1].strip() and chunks[-1] == tiny_lm.generate([prompt], max_new_tokens=8)[0]


def test_a_stopped_generation_is_the_start_of_the_unstopped_one(tiny_lm, samples):
    """Each sequence of a batch stops on its own once `stop` fires; what it wrote is unchanged."""
    prompts = [tiny_lm.instruct(q.stem) for q in samples[:3]]
    full = tiny_lm.generate(prompts, max_new_tokens=12)
    stop = lambda text: len(text.strip()) >= 6  # noqa: E731
    stopped = tiny_lm.generate(prompts, max_new_tokens=12, stop=stop)
    streamed = ([""] + list(tiny_lm.stream(prompts[0], max_new_tokens=12, stop=stop)))[-1]
    for short, long in zip(stopped + [streamed], full + [full[0]]):
        assert long.startswith(short)
        assert 6 <= len(short) < len(long)


def test_scores_are_log_probabilities_independent_of_batching(tiny_lm):
    prompts = ["Question: why?\nAnswer:", "Question: what melts ice in spring?\nAnswer:"]
    comps = [" (A) heat", " (B) a long answer here"]
    together = tiny_lm.score(prompts, comps)
    apart = [tiny_lm.score([p], [c])[0] for p, c in zip(prompts, comps)]
    for (s1, n1), (s2, n2) in zip(together, apart):
        assert s1 < 0 and n1 == n2 and math.isclose(s1, s2, rel_tol=1e-4, abs_tol=1e-4)


def test_student_two_stage_answer_is_a_choice_with_probabilities(tiny_lm, samples):
    student = Student(tiny_lm, max_rationale_tokens=6)
    questions = samples[:4]
    rationales = student.rationales(questions, batch_size=3)
    answers = student.answers(questions, [r.text for r in rationales])
    for q, r, a in zip(questions, rationales, answers):
        assert r.source == "student" and r.question_id == q.id
        assert a.label in q.labels and a.text == q.choice(a.label).text
        assert set(a.probabilities) == set(q.labels)
        assert math.isclose(sum(a.probabilities.values()), 1.0, rel_tol=1e-6)
        assert a.probabilities[a.label] == max(a.probabilities.values())
    assert [a.method for a in student.answer_only(questions)] == ["zero-shot"] * 4


def _make_adapter(model_dir, out, seed):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(out)
    return out


def test_adapters_per_stage_share_one_base(tiny_causal_dir, tmp_path):
    lm = load_model(str(tiny_causal_dir), tmp_path)
    base = lm.score(["Question: x\nAnswer:"], [" (A) y"])[0][0]
    paths = {"rationale": _make_adapter(tiny_causal_dir, tmp_path / "r", 1), "answer": _make_adapter(tiny_causal_dir, tmp_path / "a", 2)}
    student = Student(lm, adapters=paths)
    assert student.model_id.endswith("+ LoRA[answer, rationale]")
    with_answer = lm.score(["Question: x\nAnswer:"], [" (A) y"], adapter=student.adapter("answer"))[0][0]
    with_rationale = lm.score(["Question: x\nAnswer:"], [" (A) y"], adapter=student.adapter("rationale"))[0][0]
    assert len({round(base, 5), round(with_answer, 5), round(with_rationale, 5)}) == 3
    assert lm.score(["Question: x\nAnswer:"], [" (A) y"])[0][0] == pytest.approx(base, abs=1e-5)
    with pytest.raises(ModelError, match="not loaded"):
        lm.score(["q"], [" a"], adapter="single-stage")


def test_a_merging_student_writes_and_answers_as_the_attached_one(tiny_causal_dir, tmp_path, samples, monkeypatch):
    lm = load_model(str(tiny_causal_dir), tmp_path)
    paths = {s: _make_adapter(tiny_causal_dir, tmp_path / s, n) for n, s in enumerate(["rationale", "answer", "answer-only"], 1)}
    attached, merging = Student(lm, paths, max_rationale_tokens=8), Student(lm, paths, max_rationale_tokens=8, merge=True)
    questions = samples[:3]
    texts = [r.text for r in attached.rationales(questions)]
    expected = attached.answers(questions, texts)
    # Until its copy is ready a stage runs on the attached adapter; the first use starts the build.
    assert merging.runner("rationale") == (lm, merging.adapter("rationale"))
    copies = merging.merged_copies()
    assert set(copies) == {"rationale", "answer"} and not lm.merging
    assert merging.runner("rationale") == (copies["rationale"], None) and merging.runner("answer") == (copies["answer"], None)
    assert merging.runner("answer-only") == (lm, attached.adapter("answer-only"))  # the baselines stay attached
    assert [r.text for r in merging.rationales(questions)] == texts
    assert list(merging.stream_rationale(questions[0]))[-1] == texts[0]
    for a, b in zip(expected, merging.answers(questions, texts)):
        assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert Student(lm, paths, merge=True).merged_copies() == copies  # built once per adapter
    assert merging.model_id == attached.model_id
    # Only the most recently used copies are kept; the base and its attached adapters are untouched.
    monkeypatch.setattr("scicot_core.student.MERGED_KEPT", 1)
    other = Student(lm, {"answer": _make_adapter(tiny_causal_dir, tmp_path / "other", 4)}, merge=True)
    other.merged_copies()
    assert list(lm.merged) == [other.names["answer"]]
    assert attached.answers(questions, texts)[0].probabilities == pytest.approx(expected[0].probabilities, abs=1e-6)


def test_a_merge_that_fails_leaves_the_adapter_attached(tiny_causal_dir, tmp_path, samples, monkeypatch):
    lm = load_model(str(tiny_causal_dir), tmp_path)
    student = Student(lm, {"answer": _make_adapter(tiny_causal_dir, tmp_path / "a", 1)}, merge=True)

    def no_memory(*args, **kwargs):
        raise MemoryError("no room for a copy")

    monkeypatch.setattr("copy.deepcopy", no_memory)
    assert student.merged_copies() == {"answer": None}
    assert student.runner("answer") == (lm, student.adapter("answer")) and lm.merging == {student.adapter("answer"): None}
    assert student.answers(samples[:1], ["r"])[0].label in samples[0].labels


def test_adapter_folder_must_hold_an_adapter(tiny_causal, tmp_path):
    with pytest.raises(ModelError, match="no adapter_config.json"):
        tiny_causal.load_adapter("answer", tmp_path)


def test_unknown_and_unavailable_models(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'gpt9'"):
        resolve("gpt9", tmp_path, offline=True)
    with pytest.raises(ModelError, match="SCICOT_ONLINE=1"):
        load_model("nobody/no-such-model-xyz", tmp_path, offline=True)


def test_shared_prefix_scoring_equals_scoring_each_sequence_whole(tiny_causal):
    """Choices reuse their prompt's cache; the result must equal a plain forward pass."""
    lm = tiny_causal
    prompt = "Question: what melts ice?\nAnswer:"
    comps = [" (A) heat", " (B) cold air from the north", " (C) salt"]
    shared = lm.score([prompt] * 3, comps)
    for (score, n), comp in zip(shared, comps):
        p = lm.tokenizer(prompt)["input_ids"]
        c = lm.tokenizer(comp, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([p + c])).logits[0]
        logprobs = torch.log_softmax(logits, dim=-1)
        expected = sum(logprobs[len(p) - 1 + i, t].item() for i, t in enumerate(c))
        assert n == len(c) and score == pytest.approx(expected, abs=1e-4)


SPOKEN = "Ice is cold. Heat melts it. So it melts. Thus, the answer is (A) heat. More."


def _word_by_word(lm, monkeypatch):
    """Generation that writes SPOKEN a word at a time and honours `stop` as the real one does."""

    def run(stop):
        text = ""
        for word in SPOKEN.split(" "):
            text = f"{text} {word}".strip()
            if stop and stop(text):
                break
        return text

    monkeypatch.setattr(
        lm, "generate", lambda prompts, max_new_tokens=64, adapter=None, stop=None, sampling=None, k=1: [run(stop)] * (len(prompts) * k)
    )

    def stream(prompt, max_new_tokens=64, adapter=None, stop=None):
        final = run(stop)
        yield from (" ".join(final.split(" ")[:n]) for n in range(1, len(final.split(" ")) + 1))

    monkeypatch.setattr(lm, "stream", stream)


def test_a_sentence_cap_stops_stage_one_and_keeps_its_first_sentences(tiny_causal, samples, monkeypatch):
    from scicot_core import formats

    _word_by_word(tiny_causal, monkeypatch)
    q = samples[0]
    assert Student(tiny_causal).rationales([q])[0].text == "Ice is cold. Heat melts it. So it melts."
    one = Student(tiny_causal, max_sentences=1)
    [r] = one.rationales([q])
    assert r.text == "Ice is cold." and list(one.stream_rationale(q))[-1] == "Ice is cold."
    assert all(len(formats.first_sentences(t, None)) <= len("Ice is cold.") for t in one.stream_rationale(q))
    # Its answer sentence is not counted: a rationale that reaches it still names its conclusion.
    [r] = Student(tiny_causal, max_sentences=3).rationales([q], stop=formats.rationale_concluded)
    assert r.text == "Ice is cold. Heat melts it. So it melts." and r.meta["conclusion"] == "A"
    # The single-stage baseline's rationale is never cut (its answer follows it).
    assert one._capped(formats.rationale_finished, "single-stage") is formats.rationale_finished


def test_a_sentence_cap_chosen_on_dev_travels_with_the_stage_one_adapter(tiny_causal_dir, tmp_path):
    from scicot_core.errors import ConfigError
    from scicot_core.student import save_sentence_cap

    lm = load_model(str(tiny_causal_dir), tmp_path)
    rationale = _make_adapter(tiny_causal_dir, tmp_path / "rationale", 1)
    assert Student(lm, {"rationale": rationale}).max_sentences is None
    save_sentence_cap(rationale, 1, {"reports": ["arc_easy/dev"]})
    assert Student(lm, {"rationale": rationale}).max_sentences == 1
    assert Student(lm, {"rationale": rationale}, max_sentences=2).max_sentences == 2
    assert Student(lm, {"rationale": rationale}, max_sentences=0).max_sentences is None  # 0: no cap
    for bad in ["{", '{"max_sentences": "one"}', '{"max_sentences": -1}', "[]"]:
        (rationale / "generation.json").write_text(bad)
        with pytest.raises(ConfigError, match="generation"):
            Student(lm, {"rationale": rationale})
