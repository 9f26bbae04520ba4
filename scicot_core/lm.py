"""A loaded transformers model with its tokenizer: batched greedy generation, streaming, and
completion scoring, for causal and seq2seq models alike, with optional named LoRA adapters.
torch is imported where a model runs, not with this module, so that commands that never run one
(`scicot --help`, `scicot db ...`) start in a fraction of a second.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch


def _inference_mode(fn):
    """`torch.inference_mode` for a method, importing torch only when it runs: importing this
    module (and the CLI commands that need no model) stays free of torch."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Sampling:
    """Sampling settings for generation; `seed` makes a batch reproducible (same prompts, same
    batch, same seed: same texts)."""

    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be above 0 to sample (got {self.temperature}); use greedy decoding instead.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], not {self.top_p}.")


class LanguageModel:
    """One model, loaded once per process; calls are serialised by a lock (Gradio uses threads)."""

    def __init__(self, model, tokenizer, model_id: str, note: str = "", prompt_lookup: int = 0):
        self.model = model.eval()
        # Prompt-lookup decoding drafts tokens by copying from the prompt and keeps only those the
        # model itself would pick greedily: same text, fewer forward passes. Batch size 1 only.
        self.prompt_lookup = prompt_lookup
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.note = note
        self.is_seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.adapters: dict[str, Path] = {}
        self.whole: dict[str, LanguageModel] = {}  # stages fine-tuned whole, by folder: loaded once, beside this model
        self.merged: dict[str, LanguageModel] = {}  # copies with one adapter merged in, by adapter name
        self.merging: dict[str, threading.Thread | None] = {}  # those being built (None: failed)
        self.lock = threading.RLock()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- adapters -------------------------------------------------------------------------
    def load_adapter(self, name: str, path: Path) -> None:
        """Attach a PEFT LoRA adapter under `name`; several share the one base model. A name
        already attached is left as it is (names come from `student.adapter_name`, one per folder)."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise ModelError(f"{path} holds no adapter (no adapter_config.json); train one with `scicot train`.")
        with self.lock:
            if name in self.adapters:
                return
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name).eval()
            self.adapters[name] = path

    @contextmanager
    def using(self, adapter: str | None):
        """Run with one adapter active, or with the bare base model when `adapter` is None."""
        with self.lock:
            if not self.adapters:
                if adapter is not None:
                    raise ModelError(f"adapter {adapter!r} is not loaded; load it before using it.")
                yield
                return
            if adapter is None:
                with self.model.disable_adapter():
                    yield
                return
            if adapter not in self.adapters:
                raise ModelError(f"adapter {adapter!r} is not loaded; loaded: {sorted(self.adapters)}.")
            self.model.set_adapter(adapter)
            yield

    # -- text in, text out -----------------------------------------------------------------
    def chat_prompt(self, messages: list[dict]) -> str:
        """A chat as one prompt string, through the tokenizer's chat template when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages)

    def instruct(self, text: str) -> str:
        """`text` as a single user turn, the form stage-1 prompts take in training and inference."""
        return self.chat_prompt([{"role": "user", "content": text}])

    def _encode_prompts(self, prompts: Sequence[str]) -> dict:
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _gen_kwargs(
        self, enc: dict, max_new_tokens: int, stop: Callable[[str], bool] | None, sampling: Sampling | None = None, k: int = 1
    ) -> dict:
        batch = enc["input_ids"].shape[0]
        lookup = (
            {"prompt_lookup_num_tokens": self.prompt_lookup}
            if batch == 1 and self.prompt_lookup and not self.is_seq2seq and sampling is None
            else {}
        )
        decoding = (
            {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0, "num_return_sequences": k}
            if sampling
            else {"do_sample": False}
        )
        stopping = (
            {"stopping_criteria": _text_stop(self.tokenizer, 0 if self.is_seq2seq else enc["input_ids"].shape[1], stop)} if stop else {}
        )
        return (
            enc
            | lookup
            | stopping
            | decoding
            | {
                "max_new_tokens": max_new_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
                "repetition_penalty": 1.1,
            }
        )

    @_inference_mode
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        adapter: str | None = None,
        stop: Callable[[str], bool] | None = None,
        sampling: Sampling | None = None,
        k: int = 1,
    ) -> list[str]:
        """Continuations of a batch of prompts (left padding): greedy, or with `sampling` `k`
        samples per prompt, all in one batch (prompt 0's k samples first, then prompt 1's...).
        `stop(text so far)` ends a sequence early once it returns True (the text up to then is
        returned; it is identical to the start of the unstopped continuation)."""
        import torch

        if k < 1 or (k > 1 and sampling is None):
            raise ConfigError(f"k={k}: ask for at least one continuation, and for more than one only when sampling.")
        if not prompts:
            return []
        with self.using(adapter):
            enc = self._encode_prompts(prompts)
            width = enc["input_ids"].shape[1]
            if sampling:
                torch.manual_seed(sampling.seed)
            if k > 1 and not self.is_seq2seq:
                return self._sample_shrinking(self._prefilled(enc, k), width, max_new_tokens, stop, sampling)
            out = self.model.generate(**self._gen_kwargs(enc, max_new_tokens, stop, sampling, k))
        if not self.is_seq2seq:
            out = out[:, width:]
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _sample_shrinking(self, enc: dict, width: int, max_new_tokens: int, stop, sampling: Sampling) -> list[str]:
        """Sample every row of a prefilled batch, dropping each row (and its cache) once it ends:
        the tail of the longest sample is decoded alone, not with the whole batch beside it."""
        import torch

        ids, mask, cache = enc["input_ids"], enc["attention_mask"], enc["cache"]
        rows = torch.arange(ids.shape[0], device=ids.device)
        seen = ids.clone()  # prompt and generated tokens, for the repetition penalty
        texts = [""] * ids.shape[0]
        tokens: list[list[int]] = [[] for _ in texts]
        step_input = ids[:, -1:]
        eos = self.tokenizer.eos_token_id
        next_logits = self._next_logits()
        for _ in range(max_new_tokens):
            positions = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
            logits = next_logits(input_ids=step_input, attention_mask=mask, position_ids=positions, cache=cache)
            picked = _sample_step(logits, seen, sampling)
            seen, mask = torch.cat([seen, picked[:, None]], 1), torch.cat([mask, torch.ones_like(picked)[:, None]], 1)
            done = []
            for row, token in zip(rows.tolist(), picked.tolist()):
                if token != eos:
                    tokens[row].append(token)
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
                texts[row] = text
                done.append(token == eos or bool(stop and stop(text)))
            keep = torch.tensor([not d for d in done], device=ids.device)
            if not keep.any():
                break
            if not keep.all():
                index = keep.nonzero().squeeze(-1)
                cache.batch_select_indices(index)
                rows, seen, mask, picked = rows[index], seen[index], mask[index], picked[index]
            step_input = picked[:, None]
        return [t.strip() for t in texts]

    def _next_logits(self) -> Callable[..., torch.Tensor]:
        """The next token's logits per row, from the model's body and its output layer applied as
        `weight @ hidden.T`: on these CPUs that form takes a third of the time `linear` takes for
        2 to 8 rows of a vocabulary-sized layer (benchmarks/sampling.py). Any other output layer
        (with a bias, or adapted by LoRA) runs through the model as it is."""
        import torch

        head = self.model.get_output_embeddings()
        if type(head) is not torch.nn.Linear or head.bias is not None:
            return lambda **step: self.model(**step).logits[:, -1].float()
        body = self.model.get_decoder()
        return lambda **step: (head.weight @ body(**step).last_hidden_state[:, -1].T).T.float()

    def _prefilled(self, enc: dict, k: int) -> dict:
        """The prompts run once, their cache copied k times: k samples then pay one prefill, not
        k (on a CPU the prefill of k copies cost more than all the sampled tokens)."""
        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        first = self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True)
        first.cache.batch_repeat_interleave(k)
        return {"input_ids": ids.repeat_interleave(k, 0), "attention_mask": mask.repeat_interleave(k, 0), "cache": first.cache}

    def stream(
        self, prompt: str, max_new_tokens: int = 64, adapter: str | None = None, stop: Callable[[str], bool] | None = None
    ) -> Iterator[str]:
        """Yield the text generated so far, growing, as tokens arrive (`stop` as in `generate`)."""
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=not self.is_seq2seq, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode(), self.using(adapter):
                    enc = self._encode_prompts([prompt])
                    self.model.generate(**self._gen_kwargs(enc, max_new_tokens, stop), streamer=streamer)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.on_finalized_text("", stream_end=True)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text.strip()
        worker.join()
        if errors:
            raise ModelError(f"generation failed: {errors[0]}") from errors[0]

    # -- scoring ----------------------------------------------------------------------------
    @_inference_mode
    def score(
        self, prompts: Sequence[str], completions: Sequence[str], adapter: str | None = None, batch_size: int = 16
    ) -> list[tuple[float, int]]:
        """(sum of log-probabilities, token count) of each completion given its prompt."""
        if len(prompts) != len(completions):
            raise ValueError("prompts and completions differ in length")
        results: list[tuple[float, int]] = []
        if self.device.type != "cpu":
            batch_size = max(batch_size, 256)  # one wide padded batch per call (see _score_padded)
        with self.using(adapter):
            for i in range(0, len(prompts), batch_size):
                part = slice(i, i + batch_size)
                scorer = self._score_seq2seq if self.is_seq2seq else self._score_causal
                results.extend(scorer(prompts[part], completions[part]))
        return results

    def _ids(self, texts: Sequence[str], special: bool) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=special)["input_ids"]

    def _score_causal(self, prompts, completions):
        if self.device.type != "cpu":
            return self._score_padded(prompts, completions)
        # On a CPU choices share their prompt: run it once, then all its completions on a copy of its cache.
        out, start = [], 0
        while start < len(prompts):
            end = start
            while end < len(prompts) and prompts[end] == prompts[start]:
                end += 1
            out += self._score_shared_prefix(prompts[start], completions[start:end])
            start = end
        return out

    def _score_shared_prefix(self, prompt: str, completions: Sequence[str]) -> list[tuple[float, int]]:
        import torch

        prefix = torch.tensor([self._ids([prompt], True)[0]], device=self.device)
        comp_ids = self._ids(completions, False)
        first = self.model(input_ids=prefix, use_cache=True)
        cache = first.cache
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
        n, width, plen = len(comp_ids), max(map(len, comp_ids)), prefix.shape[1]
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([c + [pad] * (width - len(c)) for c in comp_ids], device=self.device)
        mask = torch.tensor([[1] * (plen + len(c)) + [0] * (width - len(c)) for c in comp_ids], device=self.device)
        cache.batch_repeat_interleave(n)
        positions = torch.arange(plen, plen + width, device=self.device).expand(n, -1)
        rest = self.model(input_ids=ids, attention_mask=mask, cache=cache, position_ids=positions)
        logprobs = torch.log_softmax(rest.logits.float(), dim=-1)
        results = []
        for row, c in enumerate(comp_ids):
            total = head[c[0]] + logprobs[row, torch.arange(len(c) - 1), torch.tensor(c[1:], dtype=torch.long)].sum()
            results.append((total.item(), len(c)))
        return results

    def _score_padded(self, prompts, completions) -> list[tuple[float, int]]:
        """The same scores from one right-padded batch of prompt + completion: on a GPU one wide
        forward pass beats many small ones."""
        import torch

        prompt_ids, comp_ids = self._ids(prompts, True), self._ids(completions, False)
        rows = [p + c for p, c in zip(prompt_ids, comp_ids)]
        width, pad = max(map(len, rows)), self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        logprobs = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        out = []
        for i, (p, c) in enumerate(zip(prompt_ids, comp_ids)):
            at = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=self.device)
            out.append((logprobs[i, at, torch.tensor(c, device=self.device)].sum().item(), len(c)))
        return out

    def _score_seq2seq(self, prompts, completions):
        import torch

        self.tokenizer.padding_side = "right"
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(self.device)
        comp_ids = self._ids(completions, True)  # the target keeps its end-of-sequence token
        width = max(map(len, comp_ids))
        labels = torch.tensor([c + [-100] * (width - len(c)) for c in comp_ids], device=self.device)
        logits = self.model(**enc, labels=labels).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        keep = labels != -100
        picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
        return [(picked[i].sum().item(), int(keep[i].sum())) for i in range(len(comp_ids))]


# Top-p needs the tokens in order of probability only until their sum reaches p: the first
# candidates found by top-k (no full sort of the vocabulary) hold the nucleus almost always, and
# when they do not, the whole vocabulary is sorted, so the nucleus is exact either way.
NUCLEUS_CANDIDATES = 64


def _sample_step(logits: torch.Tensor, seen: torch.Tensor, sampling: Sampling, penalty: float = 1.1) -> torch.Tensor:
    """One sampled token per row: the repetition penalty greedy decoding uses, temperature, then
    top-p (the smallest set of tokens whose probability reaches p)."""
    import torch

    previous = logits.gather(1, seen)
    logits = logits.scatter(1, seen, torch.where(previous < 0, previous * penalty, previous / penalty))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p == 1:
        return torch.multinomial(probs, 1).squeeze(-1)
    weights, order = _nucleus(probs, sampling.top_p)
    return order.gather(1, torch.multinomial(weights, 1)).squeeze(-1)


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the probabilities in descending order with those outside the top-p nucleus set to
    zero, and the token ids they belong to (only as many columns as the widest nucleus needs)."""
    top, order = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
    if bool((top.sum(-1) < top_p).any()):  # a nucleus wider than the candidates: sort it all
        top, order = probs.sort(dim=-1, descending=True)
    return top.masked_fill(top.cumsum(-1) - top > top_p, 0.0), order


def _text_stop(tokenizer, start: int, stop: Callable[[str], bool]):
    """Stopping criteria that end each sequence of a batch once `stop` says its generated text
    (tokens from `start` on) is complete."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class TextStop(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([stop(t) for t in texts], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([TextStop()])
