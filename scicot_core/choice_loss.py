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
    """A batch of questions, each with every one of its choices, and each question's number of
    choices (`sizes`) and gold index.

    A causal model's choices share their question's prompt, so the prompt runs once per
    question, not once per choice: `input_ids` holds the prompts but their last token,
    `choice_ids` every choice's completion after that token, `owner` the prompt each completion
    continues and `labels` the completion's tokens (all padded on the right). Prompts are most
    of a row's tokens, so a step runs about as many tokens as the language-model loss's. A
    seq2seq model's encoder reads each choice's prompt and its decoder the completion: one
    right-padded sequence per choice."""

    pad_id: int
    seq2seq: bool = False

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        batch = {
            "sizes": torch.tensor([len(r["input_ids"]) for r in rows]),
            "gold": torch.tensor([r["gold"] for r in rows]),
        }
        if self.seq2seq:
            seqs = [s for r in rows for s in r["input_ids"]]
            labels = [s for r in rows for s in r["labels"]]
            width, label_width = max(map(len, seqs)), max(map(len, labels))
            return batch | {
                "input_ids": torch.tensor([s + [self.pad_id] * (width - len(s)) for s in seqs]),
                "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
                "labels": torch.tensor([s + [-100] * (label_width - len(s)) for s in labels]),
            }
        prompts, completions, owner = [], [], []
        for i, row in enumerate(rows):
            split = [labels.count(-100) for labels in row["labels"]]  # `_same_prompt`: one prompt per question
            prompt = row["input_ids"][0][: split[0]]
            if len(prompt) < 2 or any(ids[:n] != prompt for ids, n in zip(row["input_ids"], split)):
                raise ValueError("a question's choices do not share one prompt; tokenize them with tokenize_groups.")
            prompts.append(prompt[:-1])  # its last token leads every completion: it predicts their first
            completions += [prompt[-1:] + ids[n:] for ids, n in zip(row["input_ids"], split)]
            owner += [i] * len(split)
        width, cwidth = max(map(len, prompts)), max(map(len, completions))
        return batch | {
            "input_ids": torch.tensor([p + [self.pad_id] * (width - len(p)) for p in prompts]),
            "attention_mask": torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts]),
            "choice_ids": torch.tensor([c + [self.pad_id] * (cwidth - len(c)) for c in completions]),
            "choice_mask": torch.tensor([[1] * len(c) + [0] * (cwidth - len(c)) for c in completions]),
            "labels": torch.tensor([[-100] + c[1:] + [-100] * (cwidth - len(c)) for c in completions]),
            "owner": torch.tensor(owner),
        }


def choice_forward(model, batch: dict, seq2seq: bool):
    """Every choice's score (`choice_scores`) for a `ChoiceCollator` batch. A causal model runs
    each prompt once, keeping its keys and values, and then every completion after its own
    prompt's: the scores (and their gradients) are those of one sequence per choice."""
    import torch

    if seq2seq:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        return choice_scores(model(**inputs).logits, batch["labels"], seq2seq=True)
    prompt_mask, owner, choice_ids = batch["attention_mask"], batch["owner"], batch["choice_ids"]
    # Padded on the right, every position sees a real token (a row that sees none, as left
    # padding makes, can turn to NaN in some attention kernels); the pads are masked out below.
    prompt = model(input_ids=batch["input_ids"], attention_mask=prompt_mask, use_cache=True, logits_to_keep=1)
    renamed = hasattr(prompt, "cache")  # transformers >= 5.2x calls past_key_values `cache`
    cache = prompt.cache if renamed else prompt.past_key_values
    cache.reorder_cache(owner)  # one copy of its prompt's keys and values per choice
    positions = prompt_mask.sum(1)[owner, None] + torch.arange(choice_ids.shape[1], device=choice_ids.device)
    logits = model(
        input_ids=choice_ids,
        attention_mask=torch.cat([prompt_mask[owner], batch["choice_mask"]], 1),
        position_ids=positions,
        use_cache=True,
        **{"cache" if renamed else "past_key_values": cache},
    ).logits
    return choice_scores(logits, batch["labels"], seq2seq=False)


def choice_scores(logits, labels, seq2seq: bool):
    """Each sequence's mean log-probability of its labelled tokens (the score inference uses)."""
    import torch

    if not seq2seq:
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
    """A transformers `Trainer` class whose loss is `choice_loss` over the batch's questions,
    and whose batches hold questions of about the same length (a question's row is several
    sequences, which the Trainer's own length grouping would count as its length)."""
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class ChoiceTrainer(Trainer):
        loss_is_scaled_for_ga = False  # a mean per batch: the Trainer divides it over accumulated steps

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = choice_loss(choice_forward(model, inputs, seq2seq), inputs["sizes"], inputs["gold"], lm_weight)
            return (loss, None) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):
            rows = train_dataset if train_dataset is not None else self.train_dataset
            lengths = [max(map(len, row["input_ids"])) for row in rows]
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)

    return ChoiceTrainer
