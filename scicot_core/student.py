"""The two-stage Sci-CoT student: stage 1 writes a rationale from question + choices, stage 2
scores every choice's text given the question and that rationale, so the answer is always a choice.
Baselines (zero-shot, answer-only, single-stage) share the same scoring code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import formats
from .errors import ConfigError
from .lm import LanguageModel, Sampling
from .questions import Question, Rationale

STAGES = ("rationale", "answer", "answer-only", "single-stage", "step-by-step")
MAX_RATIONALE_TOKENS = 64  # stage 1's generation limit
log = logging.getLogger(__name__)
MERGED_STAGES = ("rationale", "answer")  # the stages of every ask, merged when a student merges
MERGED_KEPT = 4  # merged copies kept per base model: both stages of two adapter sets


@dataclass(frozen=True)
class Answer:
    """The chosen label, every choice's probability, and how it was reached."""

    question_id: str
    label: str
    text: str
    probabilities: dict[str, float]
    method: str
    duration_ms: int = 0

    def is_correct(self, question: Question) -> bool | None:
        return None if question.answer_key is None else self.label == question.answer_key


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def adapter_name(path: Path, stage: str) -> str:
    """The name a stage's adapter is loaded under: the stage and a short hash of its resolved
    folder, so that several sets share one model and any path (dots, spaces, any script) gives
    a name PEFT accepts (it refuses a dot)."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return f"{stage}-{digest}"


class Student:
    """A base model plus optional LoRA adapters per stage (`rationale`, `answer`, and the
    baselines' `answer-only`, `single-stage`, `step-by-step`). Each stage maps to the adapter
    name it is loaded under on the model; several students (adapter sets) can share one model,
    and a student uses only its own stages' adapters, whatever else the model holds. A stage
    trained with `scicot train --full` is a whole model of its own, loaded beside the base. With
    `merge`, the two stages of an ask run each on a copy of the base with its adapter merged in
    (the same outputs, faster on a CPU, a copy of the weights each; the baselines stay attached)."""

    def __init__(
        self,
        lm: LanguageModel,
        adapters: dict[str, Path] | None = None,
        max_rationale_tokens: int = MAX_RATIONALE_TOKENS,
        length_normalise: bool = True,
        merge: bool = False,
        max_sentences: int | None = None,
    ):
        self.lm = lm
        self.merge = merge
        self.max_rationale_tokens = max_rationale_tokens
        self.length_normalise = length_normalise
        self.names: dict[str, str] = {}
        self.full: dict[str, LanguageModel] = {}  # stages fine-tuned whole, each its own model
        for stage, path in (adapters or {}).items():
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}")
            if is_full_model(path):
                self.full[stage] = _whole_model(lm, path)
                continue
            self.names[stage] = adapter_name(path, stage)
            lm.load_adapter(self.names[stage], path)  # once per model: a second student reuses it
        # Stage 1's sentence cap: as given (0: none), else as chosen on dev for its adapter.
        saved = saved_sentence_cap((adapters or {}).get("rationale"))
        self.max_sentences = (max_sentences if max_sentences is not None else saved) or None

    @property
    def model_id(self) -> str:
        """The base model and every loaded adapter."""
        return self.model_id_of(sorted(STAGES))

    def model_id_of(self, stages) -> str:
        """What runs for these stages: the base model, those of their adapters that are loaded,
        and those of them fine-tuned whole (`full[...]`)."""
        names = [s for s in stages if s in self.names]
        full = [s for s in stages if s in self.full]
        return self.lm.model_id + (f" + LoRA[{', '.join(names)}]" if names else "") + (f" + full[{', '.join(full)}]" if full else "")

    def has(self, stage: str) -> bool:
        return stage in self.names or stage in self.full

    def adapter(self, stage: str) -> str | None:
        """The adapter name a stage is loaded under on the base, or None (none, or a stage
        fine-tuned whole)."""
        return self.names.get(stage)

    def model_for(self, stage: str | None) -> LanguageModel:
        """The model a stage's adapter is attached to: its own when it was fine-tuned whole, else the base."""
        return self.full.get(stage, self.lm) if stage else self.lm

    def runner(self, stage: str | None) -> tuple[LanguageModel, str | None]:
        """What a stage runs on: a model and the adapter to activate on it (None: none). With
        `merge`, an ask stage runs on a copy of the base with its adapter merged in once that
        copy is ready; the first use starts building it in the background, and until then the
        attached adapter gives the same outputs."""
        name = self.names.get(stage) if stage else None
        if name and self.merge and stage in MERGED_STAGES:
            merged = _merged_model(self.lm, name, wait=False)
            if merged is not None:
                return merged, None
        return self.model_for(stage), name

    def merged_copies(self) -> dict[str, LanguageModel]:
        """Build (or find) the merged copies of this student's ask stages now, waiting for them."""
        return {stage: _merged_model(self.lm, self.names[stage], wait=True) for stage in MERGED_STAGES if stage in self.names}

    # -- stage 1 ---------------------------------------------------------------------------------
    def stage1_prompt(self, question: Question, facts: str = "") -> str:
        """The stage-1 (and single-stage) prompt: the rationale input (after the memory's facts,
        when given) as the model's user turn."""
        return self.lm.instruct(formats.rationale_input(question, facts))

    def rationales(
        self,
        questions: Sequence[Question],
        batch_size: int = 8,
        stage: str = "rationale",
        stop=formats.rationale_finished,
    ) -> list[Rationale]:
        """Stage 1, greedy, for a batch of questions (`stage='single-stage'` for that baseline).
        `stop=formats.rationale_concluded` lets each rationale name its answer first (meta
        `conclusion`); the body is the same either way."""
        return [rs[0] for rs in self.sample_rationales(questions, 1, None, batch_size, stage, stop)]

    def sample_rationales(
        self,
        questions: Sequence[Question],
        k: int,
        sampling: Sampling | None,
        batch_size: int = 8,
        stage: str = "rationale",
        stop=formats.rationale_finished,
        facts: Sequence[str] | None = None,
    ) -> list[list[Rationale]]:
        """k rationales per question, the k of a question in one batch with it (generation here
        is memory-bound, so k sequences cost far less than k times one). Greedy when `sampling`
        is None (then k must be 1). `facts`, one text per question, puts the memory's facts
        before each question (two-stage+memory)."""
        if k < 1:
            raise ConfigError(f"samples must be at least 1, not {k}.")
        per_call = max(1, batch_size // k)
        facts = list(facts) if facts is not None else [""] * len(questions)
        out: list[list[Rationale]] = []
        for i in range(0, len(questions), per_call):
            part = questions[i : i + per_call]
            start = time.perf_counter()
            model, adapter = self.runner(stage)
            prompts = [self.stage1_prompt(q, f) for q, f in zip(part, facts[i : i + per_call])]
            texts = model.generate(prompts, self.max_rationale_tokens, adapter, self._capped(stop, stage), sampling, k)
            ms = int((time.perf_counter() - start) * 1000 / len(part))
            model_id = self.model_id_of([stage])
            cap = self.max_sentences if stage == "rationale" else None
            for j, q in enumerate(part):
                out.append([_student_rationale(q, t, model_id, ms, stage, n, cap) for n, t in enumerate(texts[j * k : (j + 1) * k])])
        return out

    def stream_rationale(self, question: Question) -> Iterator[str]:
        """Stage 1 for one question, yielding the text so far."""
        prompt = self.stage1_prompt(question)
        model, adapter = self.runner("rationale")
        for text in model.stream(prompt, self.max_rationale_tokens, adapter, self._capped(formats.rationale_finished, "rationale")):
            yield formats.first_sentences(formats.rationale_body(text), self.max_sentences)

    def _capped(self, stop, stage: str):
        """A stage-1 stop that also ends a rationale past its sentence cap: at once, or, when the
        stop waits for the answer sentence's conclusion (eval), once the next sentence is
        known not to be it. The single-stage baseline's rationale is never capped (its answer follows it)."""
        if not self.max_sentences or stage != "rationale":
            return stop
        n, words = self.max_sentences, formats.ANSWER_OPENING_WORDS if stop is formats.rationale_concluded else 1
        return lambda text: stop(text) or formats.past_sentences(text, n, words)

    # -- stage 2 and the baselines -------------------------------------------------------------
    def answers(self, questions: Sequence[Question], rationales: Sequence[str]) -> list[Answer]:
        """Stage 2: each choice's text scored after the question and the rationale."""
        prompts = [formats.answer_input(q, r) for q, r in zip(questions, rationales)]
        return self._choose(questions, prompts, "answer", "two-stage")

    def answer_only(self, questions: Sequence[Question], facts: Sequence[str] | None = None) -> list[Answer]:
        """The answer-only baseline (the question, no rationale, each choice's text scored); zero-shot without its adapter.
        `facts`, one text per question, puts the memory's facts before each (answer-only+memory)."""
        if facts is not None:
            prompts = [formats.cloze_input(q, f) for q, f in zip(questions, facts)]
            return self._choose(questions, prompts, "answer-only", "answer-only+memory")
        if not self.has("answer-only"):
            return self.zero_shot(questions)
        return self._choose(questions, [formats.cloze_input(q) for q in questions], "answer-only", "answer-only")

    def step_by_step(self, questions: Sequence[Question]) -> list[Answer]:
        """The step-by-step baseline: its answer task alone (it learnt rationales only as a second task)."""
        return self._choose(questions, [formats.step_answer_input(q) for q in questions], "step-by-step", "step-by-step")

    def zero_shot(self, questions: Sequence[Question]) -> list[Answer]:
        """The bare base model scoring each choice's text after the question (cloze)."""
        return self._choose(questions, [formats.cloze_input(q) for q in questions], None, "zero-shot")

    def single_stage(self, questions: Sequence[Question], rationales: Sequence[str]) -> list[Answer]:
        """The single-stage baseline: its own rationale, then its own answer, one adapter."""
        prompts = [f"{self.stage1_prompt(q)} {formats.rationale_body(r)}{formats.SINGLE_STAGE_STOP}" for q, r in zip(questions, rationales)]
        return self._choose(questions, prompts, "single-stage", "single-stage")

    def _choose(self, questions, prompts, stage: str | None, method: str) -> list[Answer]:
        start = time.perf_counter()
        flat_prompts, flat_targets = [], []
        for q, p in zip(questions, prompts):
            for c in q.choices:
                flat_prompts.append(p)
                flat_targets.append(formats.answer_target(c))
        model, adapter = self.runner(stage)
        scored = model.score(flat_prompts, flat_targets, adapter=adapter)
        ms = int((time.perf_counter() - start) * 1000 / max(1, len(questions)))
        answers, at = [], 0
        for q in questions:
            chunk = scored[at : at + len(q.choices)]
            at += len(q.choices)
            values = [s / n if self.length_normalise else s for s, n in chunk]
            probs = dict(zip(q.labels, softmax(values)))
            best = max(probs, key=probs.get)
            answers.append(Answer(q.id, best, q.choice(best).text, probs, method, ms))
        return answers

    def answers_over(self, questions: Sequence[Question], rationales: Sequence[Sequence[str]]) -> list[list[Answer]]:
        """Stage 2 on each of several rationales per question (one scoring pass for all)."""
        flat_q = [q for q, rs in zip(questions, rationales) for _ in rs]
        flat = self.answers(flat_q, [r for rs in rationales for r in rs])
        out, at = [], 0
        for rs in rationales:
            out.append(flat[at : at + len(rs)])
            at += len(rs)
        return out


def _student_rationale(q: Question, text: str, model_id: str, ms: int, stage: str, sample: int, cap: int | None) -> Rationale:
    meta = {"stage": stage, "sample": sample, "conclusion": formats.rationale_conclusion(text, q)}
    return Rationale(q.id, formats.first_sentences(formats.rationale_body(text), cap), "student", model_id, ms, meta=meta)


SENTENCES_FILE = "generation.json"  # in a stage-1 adapter's folder: its sentence cap, chosen on dev


def saved_sentence_cap(rationale: Path | None) -> int | None:
    """The sentence cap saved with a stage-1 adapter (`benchmarks/rationale_cap.py --save`), or None."""
    path = Path(rationale) / SENTENCES_FILE if rationale else None
    if path is None or not path.exists():
        return None
    try:
        cap = json.loads(path.read_text())["max_sentences"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a generation file ({e}); delete it or write {{'max_sentences': 1}}.") from None
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
        raise ConfigError(f"{path}: max_sentences must be a whole number of sentences (0 or null: no cap), not {cap!r}.")
    return cap or None


def save_sentence_cap(rationale: Path, cap: int | None, chosen_on: dict) -> Path:
    """Keep stage 1's sentence cap chosen on dev beside the adapter it belongs to (None: no cap)."""
    path = Path(rationale) / SENTENCES_FILE
    path.write_text(json.dumps({"max_sentences": cap, "chosen_on": chosen_on}, indent=2) + "\n")
    return path


def mean_answer(question: Question, answers: Sequence[Answer], method: str) -> Answer:
    """Self-consistency: the choice probabilities averaged over answers (one per rationale)."""
    probs = {label: sum(a.probabilities[label] for a in answers) / len(answers) for label in question.labels}
    best = max(probs, key=probs.get)
    return Answer(question.id, best, question.choice(best).text, probs, method, sum(a.duration_ms for a in answers))


def majority_label(question: Question, answers: Sequence[Answer]) -> str:
    """Majority vote over answers; ties go to the higher mean probability."""
    votes = {label: sum(a.label == label for a in answers) for label in question.labels}
    mean = mean_answer(question, answers, "vote").probabilities
    return max(question.labels, key=lambda label: (votes[label], mean[label]))


def with_prior(question: Question, answer: Answer, prior: Answer, weight: float, method: str = "two-stage+prior") -> Answer:
    """Log-linear mix: p ∝ p_answer^(1-w) · p_prior^w (w=0 is the answer alone, 1 the prior alone)."""
    if not 0 <= weight <= 1:
        raise ConfigError(f"the prior weight must be in [0, 1], not {weight}.")
    tiny = 1e-12
    scores = [
        (1 - weight) * math.log(answer.probabilities[x] + tiny) + weight * math.log(prior.probabilities[x] + tiny) for x in question.labels
    ]
    probs = dict(zip(question.labels, softmax(scores)))
    best = max(probs, key=probs.get)
    return Answer(question.id, best, question.choice(best).text, probs, method, answer.duration_ms + prior.duration_ms)


def _merged_model(lm: LanguageModel, name: str, wait: bool) -> LanguageModel | None:
    """A copy of the base model with one of its adapters merged into the weights, built once and
    kept (the `MERGED_KEPT` most recently used): the same outputs as the adapter attached,
    without the adapter's extra products in every layer, for the memory of a second copy of the
    weights (540 MB for the default model; see docs/benchmarks.md for what it saves). Building
    takes seconds: with `wait` it is built here, else in the background (None until ready)."""
    with lm.lock:
        merged = lm.merged.pop(name, None)
        if merged is not None:
            lm.merged[name] = merged  # the most recently used last
            return merged
        if name not in lm.merging:
            lm.merging[name] = threading.Thread(target=_build_merged, args=(lm, name), daemon=True)
            lm.merging[name].start()
        builder = lm.merging[name]
    if builder is None or not wait:  # None: it failed once (logged), and the adapter stays attached
        return None
    builder.join()
    with lm.lock:
        return lm.merged.get(name)


def _build_merged(lm: LanguageModel, name: str) -> None:
    import copy

    try:
        with lm.lock:  # copied whole while no adapter is being attached
            model = copy.deepcopy(lm.model)
        model = model.merge_and_unload(adapter_names=[name])
        # its own tokenizer: generation sets the padding side, and this model has its own lock
        merged = LanguageModel(model, copy.deepcopy(lm.tokenizer), lm.model_id, lm.note, lm.prompt_lookup)
    except Exception:  # e.g. out of memory: the attached adapter serves on
        log.exception("merging adapter %s into a copy of the base failed; it stays attached", name)
        with lm.lock:
            lm.merging[name] = None
        return
    with lm.lock:
        lm.merged[name] = merged
        while len(lm.merged) > MERGED_KEPT:
            lm.merged.pop(next(iter(lm.merged)))
        del lm.merging[name]


def _whole_model(lm: LanguageModel, path: Path) -> LanguageModel:
    """A stage fine-tuned whole, loaded once per base model and folder (the app builds a
    `Student` for every ask)."""
    from .base_models import load_model

    key = str(Path(path).resolve())
    with lm.lock:
        if key not in lm.whole:
            lm.whole[key] = load_model(key, Path(key), offline=True)
        return lm.whole[key]


def is_full_model(path: Path) -> bool:
    """Whether a stage folder holds a whole fine-tuned model (`scicot train --full`), not an adapter."""
    return not (Path(path) / "adapter_config.json").exists() and (Path(path) / "config.json").exists()


def find_adapters(folder: Path | None) -> dict[str, Path]:
    """The stages in a folder laid out as `<folder>/<stage>/`: each a LoRA adapter
    (adapter_config.json) or a whole fine-tuned model (config.json)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {s: Path(folder) / s for s in STAGES if (Path(folder) / s / "adapter_config.json").exists() or is_full_model(Path(folder) / s)}


def default_adapters(configured: Path | None, base_model: str) -> dict[str, Path]:
    """Configured adapters (`none`: the bare base), else the distilled ones shipped with the
    package for the base model's family (`base_models.FAMILIES`), if any. A configured folder without adapters is a mistake, not a
    quiet fall back to the bare model."""
    if configured is not None:
        if str(configured).lower() == "none":
            return {}
        found = find_adapters(configured)
        if not found:
            problem = "does not exist" if not Path(configured).is_dir() else "holds no <stage>/adapter_config.json (nor config.json)"
            raise ConfigError(
                f"adapter folder {configured} {problem}; point SCICOT_ADAPTERS (or --adapters) at a folder with "
                f"{'/, '.join(STAGES)}/ adapters (or whole models from `scicot train --full`), or set it to none for the bare base model."
            )
        return found
    from .base_models import family

    known = family(base_model)
    return find_adapters(known.adapters) if known and known.adapters else {}
