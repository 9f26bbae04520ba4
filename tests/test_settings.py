"""Settings: the one reader of environment variables."""

from pathlib import Path

import pytest

from scicot_core.errors import ConfigError
from scicot_core.settings import Settings


def test_defaults_are_offline_with_the_memory_teacher():
    s = Settings.from_env({"SCICOT_CACHE_DIR": "/tmp/c"})
    assert (s.cache_dir, s.student, s.teacher, s.endpoint, s.offline) == (Path("/tmp/c"), "smollm2-135m", "memory", None, True)


def test_an_endpoint_makes_http_the_teacher():
    env = {
        "SCICOT_TEACHER_URL": "http://127.0.0.1:8000/v1",
        "SCICOT_TEACHER_MODEL": "m",
        "OPENAI_API_KEY": "k",
        "SCICOT_TEACHER_CONCURRENCY": "8",
    }
    s = Settings.from_env(env)
    assert s.teacher == "http" and s.endpoint.api_key == "k" and s.endpoint.concurrency == 8 and s.endpoint.model == "m"
    assert "k" not in repr(s)


def test_online_only_on_a_space_or_when_asked_and_never_past_hf_hub_offline():
    assert Settings.from_env({"SPACE_ID": "me/app"}).offline is False
    assert Settings.from_env({"SCICOT_ONLINE": "1"}).offline is False
    assert Settings.from_env({"SCICOT_ONLINE": "1", "HF_HUB_OFFLINE": "1"}).offline is True


def test_bad_numbers_say_what_to_set():
    with pytest.raises(ConfigError, match="SCICOT_THREADS='two' is not a whole number"):
        Settings.from_env({"SCICOT_THREADS": "two"})


@pytest.mark.parametrize("raw", ["-1", "0"])
def test_thread_counts_below_one_are_refused(raw):
    with pytest.raises(ConfigError, match=f"SCICOT_THREADS='{raw}' is below 1; set it to at least 1"):
        Settings.from_env({"SCICOT_THREADS": raw})
    assert Settings.from_env({"SCICOT_THREADS": "4"}).threads == 4 and Settings.from_env({}).threads is None


def test_merging_is_on_unless_switched_off_and_a_bad_switch_says_what_to_set():
    assert Settings.from_env({}).merge is True and Settings.from_env({"SCICOT_MERGE": ""}).merge is True
    assert Settings.from_env({"SCICOT_MERGE": "0"}).merge is False and Settings.from_env({"SCICOT_MERGE": " Off "}).merge is False
    with pytest.raises(ConfigError, match="SCICOT_MERGE='maybe' is neither on nor off; set it to 1 or 0"):
        Settings.from_env({"SCICOT_MERGE": "maybe"})


def test_typed_endpoints_are_none_by_default_and_listed_ones_are_normalised():
    default = Settings.from_env({})
    assert (default.allowed_urls, default.typed_timeout_s) == ((), 20.0)
    env = {"SCICOT_TEACHER_ALLOWED_URLS": " http://127.0.0.1:8000/v1/ ,https://api.example.org/v1,", "SCICOT_TEACHER_TYPED_TIMEOUT": "5"}
    s = Settings.from_env(env)
    assert (s.allowed_urls, s.typed_timeout_s) == (("http://127.0.0.1:8000/v1", "https://api.example.org/v1"), 5.0)
    with pytest.raises(ConfigError, match="SCICOT_TEACHER_ALLOWED_URLS holds 'file:///etc', which is not an http"):
        Settings.from_env({"SCICOT_TEACHER_ALLOWED_URLS": "file:///etc"})
    with pytest.raises(ConfigError, match="SCICOT_TEACHER_TYPED_TIMEOUT='0' is not a positive number of seconds"):
        Settings.from_env({"SCICOT_TEACHER_TYPED_TIMEOUT": "0"})


def test_the_operators_endpoint_has_one_deadline_of_three_timeouts():
    s = Settings.from_env({"SCICOT_TEACHER_URL": "http://127.0.0.1:8000/v1", "SCICOT_TEACHER_TIMEOUT": "30"})
    assert (s.endpoint.timeout_s, s.endpoint.deadline) == (30.0, 90.0)


def test_every_variable_the_code_reads_is_in_the_readmes_table():
    """Each environment variable read by the app, the CLI or the core (through `Settings`, a click
    `envvar`, or `os.environ`) has a row in the README's Configuration table."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    reads = re.compile(r'(?:env(?:iron)?\.get\(|env\[|_(?:int|flag|float|urls)\(env, |envvar=)"([A-Z][A-Z0-9_]+)"')
    code = [p for folder in ("scicot_core", "annotations", "demo") for p in (root / folder).glob("*.py")] + [root / "app.py"]
    read = {name for path in code for name in reads.findall(path.read_text())}
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", (root / "README.md").read_text(), re.MULTILINE))
    assert {"SCICOT_DB", "SCICOT_RATER_TOKEN", "HF_TOKEN", "SPACE_ID", "OPENAI_API_KEY"} <= read
    assert read - table == set()
    assert {"GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"} <= table  # read by Gradio for `python app.py`


def test_the_distillation_set_lies_beside_the_store_unless_set():
    assert Settings.from_env({"SCICOT_DB": "/srv/my data.v1/s.db"}).distill_path == Path("/srv/my data.v1/distillation_set.jsonl")
    both = Settings.from_env({"SCICOT_DB": "/srv/s.db", "SCICOT_DISTILL_SET": "/elsewhere/d.jsonl"})
    assert both.distill_path == Path("/elsewhere/d.jsonl")
