"""Training a scoring stage on what it is judged by: the choice among the question's options.

Stage 2 and the answer-only baseline answer by scoring each choice's text (its mean token
log-probability) and taking the best. Trained with the language-model loss on the gold text
alone, a stage learns what a right answer sounds like but never that the wrong ones are wrong:
a short, common phrase can outscore the choice the rationale argues for. The `choices`
objective (`TrainConfig.objective`) scores every choice of a question in the same forward pass
and minimises the cross-entropy of the gold one among them (the inference rule, made
differentiable), plus `lm_weight` times the gold text's language-model loss, which keeps the
stage a fluent model of its answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import formats
from .questions import Question

OBJECTIVES = ("lm", "choices")
CHOICE_STAGES = ("answer", "answer-only")  # the stages that answer by scoring choices


def choice_examples(prompts: Sequence[tuple[Question, str]]) -> list[tuple[str, list[str], int]]:
    """(prompt, every choice's scored completion, index of the gold one) per (question, prompt)."""
    return [(p, [formats.answer_target(c) for c in q.choices], q.labels.index(q.answer_key)) for q, p in prompts]


def tokenize_groups(groups: list[tuple[str, list[str], int]], tokenize_pairs) -> list[dict]:
    """One row per question: each choice tokenized as prompt + completion (as `train.tokenize`
    does one pair), and the gold index."""
    flat = tokenize_pairs([(p, c) for p, completions, _ in groups for c in completions])
    rows, at = [], 0
    for _, completions, gold in groups:
        part = _same_prompt(flat[at : at + len(completions)])
        at += len(completions)
        rows.append({"input_ids": [r["input_ids"] for r in part], "labels": [r["labels"] for r in part], "gold": gold})
    return rows


def _same_prompt(part: list[dict]) -> list[dict]:
    """A question's choices after one and the same prompt: a prompt cut to fit beside a longer
    completion is cut as far for every choice (a causal row's prompt is its -100 labels; a
    seq2seq row has none and its input is the prompt alone, cut alike already)."""
    kept = [len(r["labels"]) - len([t for t in r["labels"] if t != -100]) for r in part]
    return [{"input_ids": r["input_ids"][k - min(kept) :], "labels": r["labels"][k - min(kept) :]} for r, k in zip(part, kept)]


@dataclass
class ChoiceCollator:
    """Flattens a batch of questions into one right-padded batch of choice sequences, with the
    number of choices of each question and its gold index."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        seqs = [s for r in rows for s in r["input_ids"]]
        labels = [s for r in rows for s in r["labels"]]
        width, label_width = max(map(len, seqs)), max(map(len, labels))  # they differ for a seq2seq model
        return {
            "input_ids": torch.tensor([s + [self.pad_id] * (width - len(s)) for s in seqs]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
            "labels": torch.tensor([s + [-100] * (label_width - len(s)) for s in labels]),
            "sizes": torch.tensor([len(r["input_ids"]) for r in rows]),
            "gold": torch.tensor([r["gold"] for r in rows]),
        }


def choice_scores(logits, labels, seq2seq: bool):
    """Each sequence's mean log-probability of its labelled tokens (the score inference uses)."""
    import torch

    if not seq2seq:  # a causal model predicts token t+1 at position t
        logits, labels = logits[:, :-1], labels[:, 1:]
    keep = labels != -100
    logprobs = -torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels.clamp(min=0), reduction="none"
    )  # (sequences, tokens)
    return (logprobs * keep).sum(-1) / keep.sum(-1).clamp(min=1)


def choice_loss(scores, sizes, gold, lm_weight: float):
    """Mean over questions of the gold choice's cross-entropy among its question's choices, plus
    `lm_weight` times the gold text's mean negative log-probability."""
    import torch

    losses, at = [], 0
    for n, g in zip(sizes.tolist(), gold.tolist()):
        group = scores[at : at + n]
        at += n
        losses.append(torch.nn.functional.cross_entropy(group[None], gold.new_tensor([g])) - lm_weight * group[g])
    return torch.stack(losses).mean()


def choice_trainer(seq2seq: bool, lm_weight: float):
    """A transformers `Trainer` class whose loss is `choice_loss` over the batch's questions."""
    from transformers import Trainer

    class ChoiceTrainer(Trainer):
        loss_is_scaled_for_ga = False  # a mean per batch: the Trainer divides it over accumulated steps

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            sizes, gold, labels = inputs.pop("sizes"), inputs.pop("gold"), inputs["labels"]
            forward = inputs if seq2seq else {k: v for k, v in inputs.items() if k != "labels"}  # a causal model's own loss is not needed
            outputs = model(**forward)
            loss = choice_loss(choice_scores(outputs.logits, labels, seq2seq), sizes, gold, lm_weight)
            return (loss, outputs) if return_outputs else loss

    return ChoiceTrainer
