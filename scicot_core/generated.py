"""Rationales an evaluation has generated so far, and stage 2's answers to them, kept on disk
so that an interrupted run resumes without generating or scoring them again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .formats import FORMAT_VERSION
from .questions import Rationale


class GeneratedCheckpoint:
    """Rationales an evaluation has generated so far, one JSON line per question (its k
    rationales), so an interrupted run resumes without generating them again; and stage 2's
    answers to them (`kind: answers`: each rationale's choice probabilities), so it does not
    score them again either (on a CPU scoring k rationales costs as much as writing them). Each
    line records what wrote it (base model, the adapter's path and a hash of its weights, the
    text format, the length limit, k, the sampling settings and stage 1's sentence cap); only lines written exactly as
    this run would write them are reused, and answers only for the same rationale texts. A torn
    last line is ignored."""

    STAGE = {"two-stage": "rationale", "single-stage": "single-stage", "two-stage+memory": "rationale"}

    def __init__(
        self,
        path: Path,
        base_model: str,
        adapters: dict[str, Path],
        max_tokens: int,
        samples: int = 1,
        sampling=None,
        max_sentences=None,
        memory: dict | None = None,
    ):
        """`memory` says which facts two-stage+memory's stage 1 read (`memory_writer`)."""
        self.path = path
        sampled = {"samples": samples, "sampling": asdict(sampling) if sampling else None}
        sampled |= {"max_sentences": max_sentences} if max_sentences else {}  # absent when uncapped: older lines stay valid
        self.writer = {
            v: _writer(base_model, adapters.get(stage), max_tokens) | (sampled if v.startswith("two-stage") else {})
            for v, stage in self.STAGE.items()
        }
        self.writer["two-stage+memory"] |= {"memory": memory}
        self.answer_writer = self.writer["two-stage"] | {"answer": _writer(base_model, adapters.get("answer"), max_tokens)}
        self.scored: dict[str, dict[str, tuple[list[str], list[dict[str, float]]]]] = {}  # filled by `load`

    def load(self) -> dict[str, dict[str, list[Rationale]]]:
        """The rationales kept, by variant and question id; the answers kept go to `scored`."""
        given: dict[str, dict[str, list[Rationale]]] = {}
        self.scored = {}
        if not self.path.exists():
            return given
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a torn last line: end it, so new lines start clean
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
                if row.get("kind") == "answers":
                    if row["variant"] == "two-stage" and row["writer"] == self.answer_writer:
                        texts, probs = list(row["rationales"]), [dict(p) for p in row["probabilities"]]
                        if len(texts) == len(probs) and all(isinstance(t, str) for t in texts):
                            self.scored.setdefault("two-stage", {})[row["id"]] = (texts, probs)
                elif self.writer.get(row["variant"]) == row["writer"]:
                    rs = [
                        Rationale(row["id"], r["text"], "student", row["model_id"], row["ms"], meta={"conclusion": r["conclusion"]})
                        for r in row["rationales"]
                    ]
                    given.setdefault(row["variant"], {})[row["id"]] = rs
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return given

    def append(self, variant: str, rationales: list[list[Rationale]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for rs in rationales:
                texts = [{"text": r.text, "conclusion": r.meta.get("conclusion")} for r in rs]
                row = {
                    "variant": variant,
                    "id": rs[0].question_id,
                    "rationales": texts,
                    "model_id": rs[0].model_id,
                    "ms": rs[0].duration_ms,
                }
                f.write(json.dumps(row | {"writer": self.writer[variant]}) + "\n")

    def append_answers(self, variant: str, scored: list[tuple[str, list[str], list[dict[str, float]]]]) -> None:
        """Stage 2's answers to a batch: (question id, the rationale texts it read, each one's
        choice probabilities)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for question_id, texts, probs in scored:
                row = {"variant": variant, "kind": "answers", "id": question_id, "rationales": texts, "probabilities": probs}
                f.write(json.dumps(row | {"writer": self.answer_writer}) + "\n")


def memory_writer(path: Path | None, k: int, mode: str) -> dict | None:
    """Which facts a memory gives: its file's hash, k and the mode (None without a memory)."""
    if path is None:
        return None
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return {"memory": digest, "k": k, "mode": mode}


def _writer(base_model: str, adapter: Path | None, max_tokens: int) -> dict:
    names = ("adapter_model.safetensors", "model.safetensors")  # an adapter, or a stage fine-tuned whole
    weights = next((Path(adapter) / n for n in names if (Path(adapter) / n).exists()), None) if adapter else None
    digest = None
    if weights and weights.exists():
        with open(weights, "rb") as f:  # a whole model's weights are 540 MB: hashed as a stream
            digest = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return {
        "base": base_model,
        "adapter": str(Path(adapter).resolve()) if adapter else None,
        "weights": digest,
        "format": FORMAT_VERSION,
        "max_tokens": max_tokens,
    }
