"""The distilled student shipped in the package: small fp16 attention-only LoRA adapters with a
model card, picked up as the default student for the default base model."""

import json

import pytest
from safetensors import safe_open

from scicot_core.base_models import SMOLLM2, SMOLLM2_HUB, family
from scicot_core.errors import ConfigError
from scicot_core.student import default_adapters

BUNDLED_ADAPTERS = family(SMOLLM2).adapters
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_both_stages_ship_as_small_fp16_attention_only_adapters():
    found = default_adapters(None, SMOLLM2)
    assert {"rationale", "answer"} <= set(found)
    for stage, folder in found.items():
        config = json.loads((folder / "adapter_config.json").read_text())
        assert set(config["target_modules"]) <= ATTENTION and config["r"] <= 16, stage
        assert config["base_model_name_or_path"] == SMOLLM2_HUB  # not a trainer's local path
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}, stage
        assert not (folder / "checkpoints").exists() and not (folder / "README.md").exists()
    size = sum(p.stat().st_size for p in BUNDLED_ADAPTERS.rglob("*") if p.is_file())
    assert size < 8_000_000


def test_the_model_card_gives_data_settings_and_scores():
    card = (BUNDLED_ADAPTERS / "README.md").read_text()
    assert f"base_model: {SMOLLM2_HUB}" in card
    for needed in ("## Training", "## Scores", "learning_rate=", "| questions | zero-shot | answer-only | single-stage | two-stage |"):
        assert needed in card


def test_the_shipped_student_is_the_default_only_for_its_base_model(tmp_path):
    assert default_adapters(None, SMOLLM2_HUB) == default_adapters(None, SMOLLM2)
    assert default_adapters(None, "google/flan-t5-small") == {}
    assert default_adapters("none", SMOLLM2) == {}


@pytest.mark.parametrize(
    "folder, problem", [("missing", "does not exist"), ("", r"holds no <stage>/adapter_config.json \(nor config.json\)")]
)
def test_a_configured_folder_without_adapters_is_an_error_not_the_bare_model(tmp_path, folder, problem):
    with pytest.raises(ConfigError, match=f"adapter folder .* {problem}; point SCICOT_ADAPTERS"):
        default_adapters(tmp_path / folder, SMOLLM2)
