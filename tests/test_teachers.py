"""Teacher backends: the HTTP teacher against a fault-injecting OpenAI-compatible server,
stored rationales, the local stand-in and the registry."""

import json

import pytest

from scicot_core.errors import ConfigError, TeacherError
from scicot_core.settings import Settings, TeacherEndpoint
from scicot_core.teachers import HttpTeacher, LocalTeacher, ResponseCache, StoredTeacher, get_teacher, retry_after


def _teacher(server, tmp_path=None, **kw):
    endpoint = TeacherEndpoint(base_url=server.url, model="big-teacher", api_key="sk-test", **({"timeout_s": 5, "max_retries": 3} | kw))
    sleeps = []
    cache = ResponseCache(tmp_path / "cache") if tmp_path else None
    return HttpTeacher(endpoint, cache=cache, sleep=sleeps.append), sleeps


def test_a_rationale_from_the_endpoint(fake_openai, samples):
    fake_openai.script.append(("ok", "Heat flows. Thus, the answer is (C)."))
    teacher, _ = _teacher(fake_openai)
    [r] = teacher.rationales(samples[:1], "rationalize")
    assert (r.text, r.source, r.model_id, r.meta) == (
        "Heat flows. Thus, the answer is (C).",
        "teacher",
        "big-teacher",
        {"mode": "rationalize"},
    )
    [req] = fake_openai.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "big-teacher" and req["body"]["messages"][1]["role"] == "user"


def test_429_honours_retry_after_then_succeeds(fake_openai, samples):
    fake_openai.script.extend([("status", 429, {"Retry-After": "7"}), ("status", 503), ("ok", "done")])
    teacher, sleeps = _teacher(fake_openai)
    assert teacher.rationales(samples[:1])[0].text == "done"
    assert sleeps[0] == 7.0 and 0 < sleeps[1] <= 1.0 and len(sleeps) == 2


def test_timeout_is_retried(fake_openai, samples):
    fake_openai.script.extend([("sleep", 1.5, "late"), ("ok", "in time")])
    teacher, sleeps = _teacher(fake_openai, timeout_s=0.5)
    assert teacher.rationales(samples[:1])[0].text == "in time"
    assert len(sleeps) == 1


def test_persistent_500s_give_up_with_a_clear_error(fake_openai, samples):
    fake_openai.script.extend([("status", 500)] * 4)
    teacher, sleeps = _teacher(fake_openai)
    with pytest.raises(TeacherError, match="failed 4 times \\(last: HTTP 500\\)"):
        teacher.rationales(samples[:1])
    assert len(sleeps) == 3 and len(fake_openai.requests) == 4


def test_malformed_json_and_auth_errors_are_not_retried(fake_openai, samples):
    fake_openai.script.extend([("malformed",), ("status", 401)])
    teacher, sleeps = _teacher(fake_openai)
    with pytest.raises(TeacherError, match="not a chat completion"):
        teacher.rationales(samples[:1])
    with pytest.raises(TeacherError, match="HTTP 401.*API key"):
        teacher.rationales(samples[1:2])
    assert sleeps == []


def test_connection_refused_is_a_teacher_error(samples):
    endpoint = TeacherEndpoint(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1)
    with pytest.raises(TeacherError, match="could not connect"):
        HttpTeacher(endpoint, sleep=lambda s: None).rationales(samples[:1])


def test_cache_means_nothing_is_paid_for_twice(fake_openai, samples, tmp_path):
    teacher, _ = _teacher(fake_openai, tmp_path)
    first = teacher.rationales(samples[:3])
    again = teacher.rationales(samples[:3])
    assert [r.text for r in first] == [r.text for r in again]
    assert len(fake_openai.requests) == 3
    other_model, _ = _teacher(fake_openai, tmp_path)
    other_model.model_id = "other"
    other_model.rationales(samples[:1])
    assert len(fake_openai.requests) == 4


def test_concurrency_is_bounded(fake_openai, samples):
    fake_openai.script.extend([("sleep", 0.2, f"r{i}") for i in range(9)])
    teacher, _ = _teacher(fake_openai, concurrency=3)
    out = teacher.rationales(samples[:9])
    assert [r.question_id for r in out] == [q.id for q in samples[:9]]
    assert fake_openai.max_active == 3


def test_retry_after_forms():
    assert retry_after("3") == 3.0
    assert retry_after("1000") == 60.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_stored_teacher(tmp_path, samples):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": samples[0].id, "rationale": "Stored text.", "teacher": "flan-t5"}) + "\n")
    teacher = StoredTeacher.from_files([path])
    [r] = teacher.rationales(samples[:1])
    assert (r.text, r.model_id) == ("Stored text.", "flan-t5")
    with pytest.raises(TeacherError, match="no stored rationale"):
        teacher.rationales(samples[1:2])
    path.write_text('{"id": "x"}\n')
    with pytest.raises(TeacherError, match=":1: a stored rationale needs"):
        StoredTeacher.from_files([path])
    assert StoredTeacher.samples().rationales(samples[:1])[0].text.endswith(f"({samples[0].answer_key}).")


def test_local_teacher_is_labelled_a_stand_in(tiny_causal, samples):
    [r] = LocalTeacher(tiny_causal, max_new_tokens=5).rationales(samples[:1], "cot")
    assert "stand-in" in r.note and r.model_id == tiny_causal.model_id


def test_registry(tmp_path, fake_teacher, samples):
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown teacher 'oracle'"):
        get_teacher("oracle", settings, lambda: None)
    with pytest.raises(ConfigError, match="SCICOT_TEACHER_URL"):
        get_teacher("http", settings, lambda: None)
    with pytest.raises(ConfigError, match="rationales"):
        get_teacher("stored", settings, lambda: None)
    fake_teacher.enqueue(["scripted"])
    assert get_teacher("fake", settings, lambda: None).rationales(samples[:1])[0].text == "scripted"
    assert fake_teacher.history == [(samples[0].id, "rationalize")]
