"""Evaluation: accuracy of the base model zero-shot, the answer-only and single-stage baselines
and the two-stage student on the same questions, with per-question predictions, a markdown
table and a bar chart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from . import formats, variants
from .errors import ConfigError
from .lm import Sampling
from .questions import Question, Rationale
from .student import Answer, Student, majority_label, mean_answer, with_prior

VARIANTS = variants.NAMES
PRIOR_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def available(student: Student, wanted: Sequence[str] = VARIANTS, memory: bool = False) -> list[str]:
    """The variants this student can run: baselines need their adapters."""
    return variants.available(student.has, wanted, memory)


def evaluate(
    student: Student,
    questions: Sequence[Question],
    wanted: Sequence[str] = VARIANTS,
    batch_size: int = 16,
    progress: Callable | None = None,
    given: dict[str, dict[str, list[Rationale]]] | None = None,
    on_generated: Callable[[str, list[list[Rationale]]], None] | None = None,
    samples: int = 1,
    sampling: Sampling | None = None,
    prior_weight: float = variants.DEFAULT_PRIOR_WEIGHT,
    scored: dict[str, dict[str, tuple[list[str], list[dict[str, float]]]]] | None = None,
    on_scored: Callable[[str, list[tuple[str, list[str], list[dict[str, float]]]]], None] | None = None,
    facts: Callable[[Question], str] | None = None,
) -> dict:
    """Run each variant over the questions in batches; returns accuracy, timings and predictions.

    Two-stage writes `samples` rationales per question (greedy when 1, else with `sampling`) and
    averages stage 2's probabilities over them; the report adds the majority vote, accuracy
    against k, and how often stage 2 follows a rationale whose own conclusion is wrong.
    `given` maps a generating variant to rationales by question id that it reuses instead of
    generating (an earlier run's, or those of an interrupted run); `on_generated(variant,
    rationales)` sees each batch of freshly generated ones, so a caller can keep them. `scored`
    and `on_scored` do the same for stage 2's answers: by variant and question id, the rationale
    texts read and each one's choice probabilities (reused only for the very same texts)."""
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, not {samples}.")
    if samples > 1 and sampling is None:
        raise ConfigError("more than one rationale per question needs sampling: give a temperature above 0.")
    chosen = available(student, wanted, memory=facts is not None)
    run = Run(student, batch_size, given or {}, on_generated, samples, sampling, scored or {}, on_scored, facts)
    timings = {}
    for name in [v for v in VARIANTS if v in chosen or v in _needed_by(chosen)]:
        start = time.perf_counter()
        for i in range(0, len(questions), batch_size):
            part = list(questions[i : i + batch_size])
            run.variant(name, part, prior_weight)
            if progress and name in chosen:
                progress(name, len(part))
        timings[name] = round(time.perf_counter() - start, 2)
    return run.report(questions, chosen, timings, prior_weight)


def _needed_by(chosen: Sequence[str]) -> set[str]:
    return {"two-stage", "answer-only"} if "two-stage+prior" in chosen else set()


def _reused(r: Rationale, q: Question) -> Rationale:
    """A rationale given to reuse, as stage 2 reads it (its body), keeping the label its own
    answer sentence named: from its meta when the file said, else from its text."""
    meta = r.meta if "conclusion" in r.meta else r.meta | {"conclusion": formats.rationale_conclusion(r.text, q)}
    return replace(r, text=formats.rationale_body(r.text), meta=meta)


class Run:
    """The answers of every variant so far, per question, and the rationales behind them."""

    def __init__(
        self, student: Student, batch_size: int, given, on_generated, samples: int, sampling: Sampling | None, scored, on_scored, facts=None
    ):
        self.student, self.batch_size, self.given, self.on_generated = student, batch_size, given, on_generated
        self.samples, self.sampling, self.scored, self.on_scored = samples, sampling, scored, on_scored
        self.facts: Callable[[Question], str] | None = facts
        self.answers: dict[str, dict[str, Answer]] = {}
        self.per_rationale: dict[str, dict[str, list[Answer]]] = {}
        self.rationales: dict[str, dict[str, list[Rationale]]] = {}

    def variant(self, name: str, part: list[Question], prior_weight: float) -> None:
        s = self.student
        if name in ("zero-shot", "answer-only", "step-by-step"):
            method = {"zero-shot": s.zero_shot, "answer-only": s.answer_only, "step-by-step": s.step_by_step}[name]
            got = method(part)
        elif name == "two-stage+prior":
            two, prior = self.answers["two-stage"], self.answers["answer-only"]
            got = [with_prior(q, two[q.id], prior[q.id], prior_weight) for q in part]
        elif name == "answer-only+memory":
            got = s.answer_only(part, [self.facts(q) for q in part])
        elif name == "retrieve-then-read":
            read = [Rationale(q.id, self.facts(q), "memory", "memory") for q in part]
            self.rationales.setdefault(name, {}).update({q.id: [r] for q, r in zip(part, read)})
            each = self._answers_over(name, part, [[r.text] for r in read])
            self.per_rationale.setdefault(name, {}).update({q.id: a for q, a in zip(part, each)})
            got = [a[0] for a in each]
        else:
            single = name == "single-stage"
            facts = [self.facts(q) for q in part] if variants.get(name).reads_memory else None
            texts = self._rationales(name, part, 1 if single else self.samples, "single-stage" if single else "rationale", facts)
            if single:
                got = s.single_stage(part, [rs[0].text for rs in texts])
                self.per_rationale.setdefault(name, {}).update({q.id: [a] for q, a in zip(part, got)})
            else:
                each = self._answers_over(name, part, [[r.text for r in rs] for rs in texts])
                self.per_rationale.setdefault(name, {}).update({q.id: a for q, a in zip(part, each)})
                got = [mean_answer(q, a, name) for q, a in zip(part, each)]
        self.answers.setdefault(name, {}).update({q.id: a for q, a in zip(part, got)})

    def _answers_over(self, name: str, part: list[Question], texts: list[list[str]]) -> list[list[Answer]]:
        """Stage 2 on each question's rationales, reusing answers kept for the very same texts."""
        known = self.scored.get(name, {})
        out: list[list[Answer] | None] = [
            [_kept_answer(q, p, name) for p in known[q.id][1]] if known.get(q.id, ([], []))[0] == ts else None for q, ts in zip(part, texts)
        ]
        todo = [i for i, a in enumerate(out) if a is None]
        if todo:
            fresh = self.student.answers_over([part[i] for i in todo], [texts[i] for i in todo])
            for i, answers in zip(todo, fresh):
                out[i] = answers
            if self.on_scored:
                self.on_scored(name, [(part[i].id, texts[i], [a.probabilities for a in out[i]]) for i in todo])
        return out

    def _rationales(self, name: str, part: list[Question], k: int, stage: str, facts: list[str] | None = None) -> list[list[Rationale]]:
        reuse = self.given.get(name, {})
        todo = [i for i, q in enumerate(part) if len(reuse.get(q.id, [])) < k]
        sampling = self.sampling if k > 1 else None
        todo_facts = [facts[i] for i in todo] if facts is not None else None
        todo = [part[i] for i in todo]
        fresh = (
            self.student.sample_rationales(todo, k, sampling, self.batch_size, stage, formats.rationale_concluded, todo_facts)
            if todo
            else []
        )
        if fresh and self.on_generated:
            self.on_generated(name, fresh)
        by_id = {q.id: rs for q, rs in zip(todo, fresh)}
        out = [by_id.get(q.id) or [_reused(r, q) for r in reuse[q.id][:k]] for q in part]
        self.rationales.setdefault(name, {}).update({q.id: rs for q, rs in zip(part, out)})
        return out

    def report(self, questions: Sequence[Question], chosen: list[str], timings: dict, prior_weight: float) -> dict:
        preds = [self._prediction(q, chosen) for q in questions]
        reused = {v: sum(q.id in self.given[v] for q in questions) for v in chosen if self.given.get(v)}
        out = {
            "n": len(questions),
            "variants": chosen,
            "accuracy": {v: _accuracy(questions, self.answers[v]) for v in chosen},
            "seconds": timings,
            "model": self.student.model_id,
            "models": {v: self.student.model_id_of(variants.get(v).uses) for v in chosen},
            "samples": self.samples,
            "sampling": asdict(self.sampling) if self.sampling else None,
            "max_sentences": self.student.max_sentences,
            "reused_rationales": reused,
            "predictions": preds,
            "rationales": {v: [r for q in questions for r in self.rationales[v][q.id]] for v in chosen if v in self.rationales},
        }
        if "two-stage" in chosen:
            out |= self._two_stage_measures(questions)
        if "two-stage+prior" in chosen:
            out["prior_weight"] = prior_weight
            out["prior_sweep"] = {str(w): self._prior_accuracy(questions, w) for w in PRIOR_GRID}
        return out

    def _two_stage_measures(self, questions) -> dict:
        each = self.per_rationale["two-stage"]
        keyed = [q for q in questions if q.answer_key is not None]
        by_k = [_accuracy(keyed, {q.id: mean_answer(q, each[q.id][:j], "two-stage") for q in keyed}) for j in range(1, self.samples + 1)]
        vote = sum(majority_label(q, each[q.id]) == q.answer_key for q in keyed) / len(keyed) if keyed else None
        wrong = followed = 0
        for q in keyed:
            for r, a in zip(self.rationales["two-stage"][q.id], each[q.id]):
                concluded = r.meta.get("conclusion")
                if concluded is not None and concluded != q.answer_key:
                    wrong += 1
                    followed += a.label == concluded
        follows = {"rationales_concluding_wrong": wrong, "stage2_followed": followed, "rate": round(followed / wrong, 4) if wrong else None}
        return {
            "accuracy_by_k": {"two-stage": by_k},
            "accuracy_vote": {"two-stage": round(vote, 4) if vote is not None else None},
            "follows_wrong": follows,
        }

    def _prior_accuracy(self, questions, weight: float) -> float | None:
        two, prior = self.answers["two-stage"], self.answers["answer-only"]
        return _accuracy(questions, {q.id: with_prior(q, two[q.id], prior[q.id], weight) for q in questions})

    def _prediction(self, q: Question, chosen: list[str]) -> dict:
        row = {"id": q.id, "answer_key": q.answer_key}
        for v in chosen:
            a = self.answers[v][q.id]
            row[v] = {"label": a.label, "probabilities": {k: round(p, 4) for k, p in a.probabilities.items()}}
            texts = self.rationales.get(v, {}).get(q.id)
            if texts:
                row[v]["rationale"] = texts[0].text
                if len(texts) > 1 or v == "two-stage":
                    row[v]["samples"] = [
                        {"rationale": r.text, "conclusion": r.meta.get("conclusion"), "label": b.label, "probabilities": _rounded(b)}
                        for r, b in zip(texts, self.per_rationale[v][q.id])
                    ]
        return row


def _kept_answer(q: Question, probabilities: dict[str, float], method: str) -> Answer:
    best = max(probabilities, key=probabilities.get)
    return Answer(q.id, best, q.choice(best).text, probabilities, method)


def _rounded(answer: Answer) -> dict:
    return {k: round(p, 4) for k, p in answer.probabilities.items()}


def _accuracy(questions, answers: dict[str, Answer]) -> float | None:
    scored = [q for q in questions if q.answer_key is not None and q.id in answers]
    return round(sum(answers[q.id].label == q.answer_key for q in scored) / len(scored), 4) if scored else None


COMPARED = ("two-stage", "answer-only")


def compare(students: dict[str, Student], questions: Sequence[Question], references: dict[str, str], batch_size: int = 16) -> dict:
    """Several students on the same questions: two-stage and answer-only accuracy (None where a
    student lacks the adapter), and how often its stage-1 rationale concludes the answer the
    teacher's reference rationale concludes (over the questions whose reference names one)."""
    out = {}
    for name, student in students.items():
        result = evaluate(student, questions, COMPARED, batch_size)
        mine = {r.question_id: r.text for r in result["rationales"].get("two-stage", [])}
        agree = [
            formats.rationale_conclusion(mine.get(q.id, ""), q) == concluded
            for q in questions
            if (concluded := formats.rationale_conclusion(references.get(q.id, ""), q)) is not None
        ]
        out[name] = {
            "accuracy": {v: result["accuracy"].get(v) for v in COMPARED},
            "teacher_agreement": round(sum(agree) / len(agree), 4) if agree else None,
            "model": result["model"],
        }
    return {"n": len(questions), "students": out}


def comparison_table(result: dict, label: Callable[[str], str] = str) -> str:
    """`compare`'s result as a Markdown table, one row per student (named through `label`)."""
    lines = [f"| student | {' | '.join(COMPARED)} | agrees with the teacher |", "|---|" + "---|" * (len(COMPARED) + 1)]
    for name, row in result["students"].items():
        cells = [_pct(row["accuracy"][v], "—") for v in COMPARED] + [_pct(row["teacher_agreement"], "—")]
        lines.append(f"| {label(name)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_report(result: dict, out_dir: Path, title: str) -> dict[str, Path]:
    """results.json, results.md, predictions.jsonl and accuracy.png in `out_dir`, and
    accuracy_by_k.png when two-stage sampled several rationales per question (and the questions
    have answer keys)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.json", "results.md", "predictions.jsonl", "accuracy.png")}
    summary = {k: v for k, v in result.items() if k not in ("predictions", "rationales")} | {"title": title}
    paths["results.json"].write_text(json.dumps(summary, indent=2))
    paths["results.md"].write_text(markdown_table(summary))
    with open(paths["predictions.jsonl"], "w") as f:
        for p in result["predictions"]:
            f.write(json.dumps(p) + "\n")
    bar_chart({title: summary["accuracy"]}, paths["accuracy.png"], chance=None)
    by_k = (summary.get("accuracy_by_k") or {}).get("two-stage") or []
    if len(by_k) > 1 and None not in by_k:  # questions without answer keys have no accuracy
        reference = {title: summary["accuracy"]["answer-only"]} if summary["accuracy"].get("answer-only") is not None else {}
        paths["accuracy_by_k.png"] = k_chart({title: by_k}, out_dir / "accuracy_by_k.png", reference)
    return paths


def markdown_table(summary: dict) -> str:
    lines = [
        f"**{summary['title']}** ({summary['n']} questions; {summary['model']})",
        "",
        "| variant | accuracy | seconds | model |",
        "|---|---|---|---|",
    ]
    for v in summary["variants"]:
        acc = summary["accuracy"][v]
        model = summary.get("models", {}).get(v, "")
        lines.append(f"| {v} | {_pct(acc)} | {summary['seconds'][v]} | {model} |")
    if summary.get("accuracy_by_k"):
        k = summary["samples"]
        sampling = summary.get("sampling") or {}
        lines += [
            "",
            f"Two-stage with k={k} rationale(s) per question"
            + (f" (temperature {sampling['temperature']}, top-p {sampling['top_p']}, seed {sampling['seed']})" if sampling else " (greedy)")
            + (f", each cut after {summary['max_sentences']} sentence(s)" if summary.get("max_sentences") else "")
            + ":",
        ]
        lines.append(
            "- accuracy against k (probabilities averaged): "
            + ", ".join(f"{j} {_pct(a)}" for j, a in enumerate(summary["accuracy_by_k"]["two-stage"], 1))
        )
        lines.append(f"- majority vote over the k answers: {_pct(summary['accuracy_vote']['two-stage'])}")
        f = summary["follows_wrong"]
        lines.append(
            f"- stage 2 followed a rationale whose own conclusion was wrong {f['stage2_followed']} of {f['rationales_concluding_wrong']} times"
            + (f" ({f['rate']:.0%})" if f["rate"] is not None else "")
        )
    if summary.get("prior_sweep"):
        lines += [
            "",
            f"two-stage+prior weight {summary['prior_weight']}; on these questions: "
            + ", ".join(f"w={w} {_pct(a)}" for w, a in summary["prior_sweep"].items()),
        ]
    return "\n".join(lines) + "\n"


def _pct(acc: float | None, missing: str = "n/a") -> str:
    return missing if acc is None else f"{acc:.1%}"


def bar_chart(groups: dict[str, dict[str, float | None]], path: Path, chance: float | None = None) -> Path:
    """Grouped bars: one group per data set, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {v: None for g in groups.values() for v in g}
    variants = [v for v in VARIANTS if v in seen] + [v for v in seen if v not in VARIANTS]  # e.g. "two-stage k=8"
    fig, ax = plt.subplots(figsize=(max(5, 2.2 * len(groups)), 3.6), dpi=120)
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        present = [(j, g[v]) for j, g in enumerate(groups.values()) if g.get(v) is not None]  # no bar for a variant not run
        xs = [j + i * width for j, _ in present]
        ys = [100 * acc for _, acc in present]
        bars = ax.bar(xs, ys, width, label=v)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    if chance:
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(groups))], list(groups))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def k_chart(curves: dict[str, list[float]], path: Path, references: dict[str, float] | None = None) -> Path:
    """Two-stage accuracy against k (the first k sampled rationales averaged), one line per data
    set, each with its answer-only accuracy (when given) as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for name, accs in curves.items():
        ks = list(range(1, len(accs) + 1))
        (line,) = ax.plot(ks, [100 * a for a in accs], marker="o", markersize=3, label=f"{name}: two-stage")
        if (references or {}).get(name) is not None:
            ax.axhline(100 * references[name], color=line.get_color(), linestyle="--", linewidth=1, label=f"{name}: answer-only")
    longest = max((len(a) for a in curves.values()), default=1)
    ax.set_xticks(range(1, longest + 1))
    ax.set_xlabel("sampled rationales per question (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Two-stage accuracy against k", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
