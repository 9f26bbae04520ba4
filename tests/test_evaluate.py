"""Evaluation: accuracy by variant on a hand-checked fixture, the report files, the CLI, and a
tiny model trained and evaluated end to end."""

import json
from pathlib import Path

from click.testing import CliRunner

from demo.cli import main
from scicot_core.evaluate import available, evaluate, write_report
from scicot_core.questions import Choice, Question, Rationale
from scicot_core.student import Student


class ScriptedLM:
    """A fake LanguageModel: generates a fixed text, and scores a completion highest when it is
    the choice text scripted for that question id (found in the prompt)."""

    model_id = "scripted"
    is_seq2seq = False

    def __init__(self, picks):
        self.picks = picks
        self.adapters = {}
        self.generated = 0

    def load_adapter(self, name, path):
        self.adapters[name] = path

    def instruct(self, text):
        return text

    def generate(self, prompts, max_new_tokens=64, adapter=None, stop=None, sampling=None, k=1):
        self.generated += len(prompts) * k
        return ["Because. Thus, the answer is (A)."] * len(prompts) * k

    def score(self, prompts, completions, adapter=None, batch_size=16):
        out = []
        for p, c in zip(prompts, completions):
            qid = next(q for q in self.picks if f"Question: {q}?" in p)
            out.append((0.0 if c == f" {self.picks[qid]}" else -5.0, 2))
        return out


QUESTIONS = [
    Question("q1", "q1?", (Choice("A", "a"), Choice("B", "b")), "A"),
    Question("q2", "q2?", (Choice("A", "a"), Choice("B", "b"), Choice("C", "c")), "C"),
    Question("q3", "q3?", (Choice("1", "a"), Choice("2", "b")), "2"),
    Question("q4", "q4?", tuple(Choice(x, x.lower()) for x in "ABCDEFGHI"), "I"),
]


def test_accuracy_by_hand(tmp_path):
    # Scripted picks: q1 A (right), q2 B (wrong), q3 2 (right), q4 I (right): 3 of 4 = 0.75.
    student = Student(ScriptedLM({"q1": "a", "q2": "b", "q3": "b", "q4": "i"}), adapters={"answer-only": Path("answer-only")})
    assert available(student) == ["zero-shot", "answer-only", "two-stage", "two-stage+prior"]
    result = evaluate(student, QUESTIONS, batch_size=3)
    assert result["accuracy"] == {"zero-shot": 0.75, "answer-only": 0.75, "two-stage": 0.75, "two-stage+prior": 0.75}
    assert result["predictions"][1]["two-stage"]["label"] == "B"
    # Each variant names what it ran: zero-shot is the bare base even with adapters loaded.
    assert result["models"] == {
        "zero-shot": "scripted",
        "answer-only": "scripted + LoRA[answer-only]",
        "two-stage": "scripted",
        "two-stage+prior": "scripted + LoRA[answer-only]",
    }
    # Every rationale here concludes (A): wrong on q2 and q4 (q3 has no label A), and stage 2 followed neither.
    assert result["follows_wrong"] == {"rationales_concluding_wrong": 2, "stage2_followed": 0, "rate": 0.0}
    assert result["predictions"][0]["two-stage"]["samples"][0]["conclusion"] == "A"
    assert result["predictions"][3]["two-stage"]["rationale"] == "Because."  # the lettered answer sentence is cut
    paths = write_report(result, tmp_path / "report", "fixture")
    table = paths["results.md"].read_text().splitlines()
    assert any(line.startswith("| two-stage | 75.0% |") for line in table)
    assert any(line.startswith("| answer-only |") and line.endswith("| scripted + LoRA[answer-only] |") for line in table)
    assert len(paths["predictions.jsonl"].read_text().splitlines()) == 4
    assert paths["accuracy.png"].read_bytes()[:4] == b"\x89PNG"


def test_two_stage_reuses_given_rationales_and_generates_the_rest():
    lm = ScriptedLM({"q1": "a", "q2": "b", "q3": "b", "q4": "i"})
    seen = []
    given = {"two-stage": {"q2": [Rationale("q2", "Given here. Thus, the answer is (B) b", "student", "earlier")]}}
    result = evaluate(
        Student(lm), QUESTIONS, ["two-stage"], batch_size=4, given=given, on_generated=lambda v, rs: seen.append((v, len(rs)))
    )
    assert lm.generated == 3 and result["reused_rationales"] == {"two-stage": 1} and seen == [("two-stage", 3)]
    assert [p["two-stage"]["rationale"] for p in result["predictions"]] == ["Because.", "Given here.", "Because.", "Because."]
    assert [r.model_id for r in result["rationales"]["two-stage"]][:2] == ["scripted", "earlier"]
    # The reused rationale keeps what it concluded, (B) on q2 (gold C), and stage 2 followed it.
    assert result["follows_wrong"] == {"rationales_concluding_wrong": 2, "stage2_followed": 1, "rate": 0.5}


def test_eval_cli_on_any_question_file_with_a_tiny_model(tmp_path, tiny_causal_dir):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS))
    env = {"SCICOT_CACHE_DIR": str(tmp_path / "c"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_DATA_DIR": ""}
    args = ["eval", "--questions", str(path), "--out", str(tmp_path / "r"), "--json", "--batch-size", "2", "--db", str(tmp_path / "s.db")]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["variants"] == ["zero-shot", "two-stage"] and out["n"] == 4
    preds = [json.loads(line) for line in open(tmp_path / "r" / "predictions.jsonl")]
    expected = sum(p["two-stage"]["label"] == p["answer_key"] for p in preds) / 4
    assert out["accuracy"]["two-stage"] == expected

    from annotations.store import Store

    assert Store(tmp_path / "s.db").counts()["rationales"] == 4


def test_eval_cuts_stage_one_after_the_sentences_asked_for_and_says_so(tmp_path, tiny_causal_dir):
    path, given = tmp_path / "mine.jsonl", tmp_path / "given.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS))
    given.write_text("".join(json.dumps({"id": q.id, "rationale": "First one. Second one. Third."}) + "\n" for q in QUESTIONS))
    env = {"SCICOT_CACHE_DIR": str(tmp_path / "c"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_DATA_DIR": ""}
    args = ["eval", "--questions", str(path), "--out", str(tmp_path / "r"), "--variant", "two-stage", "--rationales", str(given)]
    result = CliRunner().invoke(main, [*args, "--max-sentences", "2", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["max_sentences"] == 2
    preds = [json.loads(line) for line in open(tmp_path / "r" / "predictions.jsonl")]
    assert {p["two-stage"]["rationale"] for p in preds} == {"First one. Second one."}
    assert "each cut after 2 sentence(s)" in (tmp_path / "r" / "results.md").read_text()


def test_eval_keeps_what_reused_rationales_concluded(tmp_path, tiny_causal_dir):
    # An earlier report's line and a line of `scicot sample` (each text is the body; the
    # conclusion is kept beside it), and a plain line whose text still has its answer sentence.
    path, given = tmp_path / "mine.jsonl", tmp_path / "given.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS[:3]))
    earlier = {"id": "q2", "two-stage": {"label": "B", "samples": [{"rationale": "It is b.", "conclusion": "B", "label": "B"}]}}
    sampled = {"id": "q3", "rationale": "It is a.", "conclusion": "1"}
    plain = {"id": "q1", "rationale": "It is a. Thus, the answer is (A) a."}
    given.write_text("".join(json.dumps(row) + "\n" for row in (earlier, sampled, plain)))
    env = {"SCICOT_CACHE_DIR": str(tmp_path / "c"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_DATA_DIR": ""}
    args = ["eval", "--questions", str(path), "--out", str(tmp_path / "r"), "--variant", "two-stage", "--rationales", str(given), "--json"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    preds = {p["id"]: p["two-stage"]["samples"][0] for p in map(json.loads, open(tmp_path / "r" / "predictions.jsonl"))}
    assert (preds["q1"]["rationale"], preds["q1"]["conclusion"]) == ("It is a.", "A")
    assert (preds["q2"]["rationale"], preds["q2"]["conclusion"]) == ("It is b.", "B")
    assert (preds["q3"]["rationale"], preds["q3"]["conclusion"]) == ("It is a.", "1")
    out = json.loads(result.output[result.output.index("{") :])
    assert out["follows_wrong"]["rationales_concluding_wrong"] == 2  # q2's (B), gold C; q3's (1), gold 2


def test_eval_needs_questions(tmp_path):
    result = CliRunner().invoke(main, ["eval"], env={"SCICOT_DATA_DIR": ""})
    assert result.exit_code == 1 and "give --dataset and --split" in result.output


def test_eval_refuses_a_bad_rationale_file_before_loading_a_model(tmp_path):
    questions, bad = tmp_path / "q.jsonl", tmp_path / "bad.jsonl"
    questions.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS))
    bad.write_text('{"id": "q1"}\n')
    args = ["eval", "--questions", str(questions), "--rationales", str(bad), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args, env={"SCICOT_STUDENT": str(tmp_path / "no-such-model"), "SCICOT_DATA_DIR": ""})
    assert result.exit_code == 1 and 'bad.jsonl:1: a student rationale line needs "id" and "rationale"' in result.output
    assert not (tmp_path / "r").exists()


def test_an_interrupted_eval_resumes_with_the_rationales_it_had_generated(tmp_path, tiny_causal_dir, monkeypatch):
    path, out = tmp_path / "mine.jsonl", tmp_path / "r"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS))
    env = {"SCICOT_CACHE_DIR": str(tmp_path / "c"), "SCICOT_STUDENT": str(tiny_causal_dir), "SCICOT_DATA_DIR": ""}
    args = ["eval", "--questions", str(path), "--out", str(out), "--variant", "two-stage", "--batch-size", "2"]
    calls = []
    real = Student.answers

    def crash_on_second_batch(self, questions, rationales):
        calls.append(len(questions))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, questions, rationales)

    monkeypatch.setattr(Student, "answers", crash_on_second_batch)
    assert CliRunner().invoke(main, args, env=env).exit_code != 0
    checkpoint = out / "generated.partial.jsonl"
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    kept = [k for k in lines if k.get("kind") != "answers"]
    answered = [k for k in lines if k.get("kind") == "answers"]
    assert [k["id"] for k in kept] == ["q1", "q2", "q3", "q4"] and not (out / "results.json").exists()
    # Stage 2 answered the first batch before the crash: those answers are kept too.
    assert [a["id"] for a in answered] == ["q1", "q2"]
    assert answered[0]["rationales"] == [kept[0]["rationales"][0]["text"]] and set(answered[0]["probabilities"][0]) == {"A", "B"}
    # A line written by another model, and a torn last line, are ignored; answers kept for other
    # text than the rationale now read are scored again.
    with open(checkpoint, "a") as f:
        f.write(
            json.dumps(
                kept[0]
                | {"id": "q1", "rationales": [{"text": "stale", "conclusion": None}], "writer": kept[0]["writer"] | {"base": "other"}}
            )
            + "\n"
        )
        f.write(json.dumps(answered[1] | {"rationales": ["other text"]}) + "\n")  # answers to other text: scored again
        f.write('{"variant": "two-st')
    scored = []
    monkeypatch.setattr(Student, "answers", lambda self, qs, rs: scored.extend(q.id for q in qs) or real(self, qs, rs))
    generated = []
    real_rationales = Student.sample_rationales
    monkeypatch.setattr(
        Student, "sample_rationales", lambda self, qs, *a, **kw: generated.extend(qs) or real_rationales(self, qs, *a, **kw)
    )
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "resuming: reusing 4 questions' rationales" in result.output and generated == []
    assert "stage 2's answers for 1 of them" in result.output and scored == ["q2", "q3", "q4"]
    preds = [json.loads(line) for line in open(out / "predictions.jsonl")]
    assert [p["two-stage"]["rationale"] for p in preds] == [k["rationales"][0]["text"] for k in kept]
    assert preds[0]["two-stage"]["probabilities"] == {k: round(v, 4) for k, v in answered[0]["probabilities"][0].items()}
    assert not checkpoint.exists()


def test_eval_refuses_a_baseline_variant_without_its_adapter(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q.to_ai2()) + "\n" for q in QUESTIONS))
    env = {"SCICOT_STUDENT": str(tmp_path / "no-such-model"), "SCICOT_DATA_DIR": ""}
    adapters = tmp_path / "set" / "rationale"
    adapters.mkdir(parents=True)
    (adapters / "adapter_config.json").write_text("{}")
    args = ["eval", "--questions", str(path), "--variant", "single-stage", "--adapters", str(adapters.parent)]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1 and "needs a single-stage/ adapter" in result.output


def test_compare_puts_students_side_by_side_with_teacher_agreement(tiny_causal):
    from scicot_core.evaluate import compare
    from scicot_core.questions import sample_items
    from scicot_core.student import Student

    items = sample_items()[:3]
    questions = [q for q, _ in items]
    references = {q.id: f"Some reason. Thus, the answer is ({q.answer_key})." for q in questions}
    result = compare(
        {"a": Student(tiny_causal, max_rationale_tokens=4), "b": Student(tiny_causal, max_rationale_tokens=4)}, questions, references
    )
    assert result["n"] == 3 and list(result["students"]) == ["a", "b"]
    row = result["students"]["a"]
    thirds = (0, 0.3333, 0.6667, 1)
    assert row["accuracy"]["answer-only"] is None and row["accuracy"]["two-stage"] in thirds and row["teacher_agreement"] in thirds
    assert compare({"a": Student(tiny_causal, max_rationale_tokens=4)}, questions, {})["students"]["a"]["teacher_agreement"] is None


class RecordingLM(ScriptedLM):
    """ScriptedLM that keeps every prompt it was given, to generate or to score."""

    def __init__(self, picks):
        super().__init__(picks)
        self.generated_prompts, self.scored_prompts = [], []

    def generate(self, prompts, *args, **kwargs):
        self.generated_prompts += prompts
        return super().generate(prompts, *args, **kwargs)

    def score(self, prompts, completions, adapter=None, batch_size=16):
        self.scored_prompts += [(p, adapter) for p in prompts]
        return super().score(prompts, completions, adapter, batch_size)


def test_the_memory_variants_put_the_facts_before_the_question_where_they_say():
    lm = RecordingLM({"q1": "a", "q2": "c", "q3": "b", "q4": "a"})
    student = Student(lm, adapters={"answer-only": Path("answer-only"), "rationale": Path("r"), "answer": Path("a")})
    assert "two-stage+memory" not in available(student)  # without a memory, no variant that reads one
    assert {"two-stage+memory", "answer-only+memory"} <= set(available(student, memory=True))
    result = evaluate(student, QUESTIONS, ["two-stage+memory", "answer-only+memory"], batch_size=3, facts=lambda q: f"Fact of {q.id}.")
    assert set(result["accuracy"]) == {"two-stage+memory", "answer-only+memory"}
    # Stage 1 writes after the facts; stage 2 reads its rationale alone; answer-only scores after the facts.
    assert lm.generated_prompts and all(p.startswith(f"Facts: Fact of {p.split('Question: ')[1][:2]}.\n") for p in lm.generated_prompts)
    stage2 = [p for p, a in lm.scored_prompts if a and a.startswith("answer-") and not a.startswith("answer-only")]
    assert stage2 and not any("Facts:" in p for p in stage2) and all("Rationale: Because." in p for p in stage2)
    only = [p for p, a in lm.scored_prompts if a and a.startswith("answer-only-")]
    assert only and all(p.startswith("Facts: Fact of q") and p.endswith("\nAnswer:") for p in only)
    # Two-stage without the memory writes without facts, on the same student.
    lm.generated_prompts.clear()
    evaluate(student, QUESTIONS[:1], ["two-stage"], facts=lambda q: "unused")
    assert lm.generated_prompts == ["Question: q1?\nChoices:\n(A) a\n(B) b\nRationale:"]


def test_two_stage_with_memory_reuses_kept_rationales_only_for_the_same_memory_and_k(tmp_path):
    from scicot_core.generated import GeneratedCheckpoint, memory_writer

    one, two = tmp_path / "one.db", tmp_path / "two.db"
    one.write_bytes(b"facts one")
    two.write_bytes(b"facts two")
    path = tmp_path / "generated.partial.jsonl"
    keep = lambda read: GeneratedCheckpoint(path, "base", {}, 8, memory=read)  # noqa: E731
    keep(memory_writer(one, 3, "joint")).append("two-stage+memory", [[Rationale("q1", "Because.", "student", "m")]])
    assert set(keep(memory_writer(one, 3, "joint")).load()["two-stage+memory"]) == {"q1"}
    for other in (memory_writer(two, 3, "joint"), memory_writer(one, 5, "joint"), memory_writer(one, 3, "per-choice")):
        assert keep(other).load() == {}
