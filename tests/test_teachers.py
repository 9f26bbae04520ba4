"""Teacher backends: the HTTP teacher against a fault-injecting OpenAI-compatible server,
stored rationales, the local stand-in and the registry."""

import json
import time

import pytest
from conftest import FakeOpenAI

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


def test_persistent_500s_give_up_with_advice_about_load_not_timeouts(fake_openai, samples):
    fake_openai.script.extend([("status", 500)] * 4)
    teacher, sleeps = _teacher(fake_openai)
    with pytest.raises(TeacherError, match="failed 4 times .*\\(last: HTTP 500\\); the server is overloaded or failing") as raised:
        teacher.rationales(samples[:1])
    assert "SCICOT_TEACHER_CONCURRENCY" in str(raised.value) and "SCICOT_TEACHER_TIMEOUT" not in str(raised.value)
    assert len(sleeps) == 3 and len(fake_openai.requests) == 4


def test_auth_errors_are_not_retried_and_never_show_the_reply_or_the_key(fake_openai, samples, tmp_path):
    fake_openai.script.append(("status", 401, {}, '{"error": "INTERNAL-PAGE-TEXT"}'))
    teacher, sleeps = _teacher(fake_openai, tmp_path)
    with pytest.raises(TeacherError, match="answered HTTP 401; check the URL, model name and API key") as raised:
        teacher.rationales(samples[:1])
    assert "INTERNAL-PAGE-TEXT" not in str(raised.value) and "sk-test" not in str(raised.value)
    assert "sk-test" not in repr(teacher) and "sk-test" not in repr(teacher.endpoint)
    assert sleeps == [] and len(fake_openai.requests) == 1 and not (tmp_path / "cache").exists()


def test_malformed_and_empty_replies_are_retried_and_never_cached(fake_openai, samples, tmp_path):
    fake_openai.script.extend([("malformed",), ("ok", "  "), ("ok", "Fine. Thus, the answer is (A).")])
    teacher, sleeps = _teacher(fake_openai, tmp_path)
    assert teacher.rationales(samples[:1])[0].text == "Fine. Thus, the answer is (A)."
    assert len(sleeps) == 2 and len(fake_openai.requests) == 3
    fake_openai.script.extend([("malformed",)] * 4)
    with pytest.raises(TeacherError, match="last: the reply was not a chat completion\\); is the URL an OpenAI-compatible"):
        teacher.rationales(samples[1:2])
    assert [p.read_text() for p in (tmp_path / "cache").rglob("*.json")] == [
        json.dumps({"base_url": fake_openai.url, "model": "big-teacher", "text": "Fine. Thus, the answer is (A)."})
    ]


def test_a_truncated_reply_is_asked_again_with_more_tokens_and_never_cached(fake_openai, samples, tmp_path):
    fake_openai.script.extend([("truncated", "Let us reason s"), ("ok", "Whole. Thus, the answer is (B).")])
    teacher, _ = _teacher(fake_openai, tmp_path)
    assert teacher.rationales(samples[:1])[0].text == "Whole. Thus, the answer is (B)."
    assert [r["body"]["max_tokens"] for r in fake_openai.requests] == [256, 512]
    fake_openai.script.extend([("truncated", "Let us reason s"), ("truncated", "Let us reason some more but")])
    with pytest.raises(TeacherError, match="cut its reply off twice \\(at max_tokens=512\\)"):
        teacher.rationales(samples[1:2])
    texts = [json.loads(p.read_text())["text"] for p in (tmp_path / "cache").rglob("*.json")]
    assert texts == ["Whole. Thus, the answer is (B)."] and len(fake_openai.requests) == 4


def test_timeouts_share_one_deadline_per_question(fake_openai, samples):
    # Three timeouts' worth in all (the default deadline), not max_retries + 1 full timeouts:
    # every abandoned request keeps a slow server generating.
    fake_openai.script.extend([("sleep", 3)] * 5)
    teacher, _ = _teacher(fake_openai, timeout_s=0.5, max_retries=4)
    teacher.sleep = time.sleep  # the waits between attempts count against the deadline too
    start = time.monotonic()
    with pytest.raises(TeacherError, match="timed out.*raise SCICOT_TEACHER_TIMEOUT"):
        teacher.rationales(samples[:1])
    assert time.monotonic() - start < 1.5 + 0.3 and 2 <= len(fake_openai.requests) <= 3


def test_a_reply_dripping_bytes_is_cut_at_the_deadline(fake_openai, samples):
    fake_openai.script.append(("drip", 0.05, 80))
    teacher, _ = _teacher(fake_openai, timeout_s=1, max_retries=0, deadline_s=1.5)
    start = time.monotonic()
    with pytest.raises(TeacherError, match="timed out while reading the reply"):
        teacher.rationales(samples[:1])
    assert time.monotonic() - start < 2.5


def test_redirects_are_not_followed(fake_openai, samples):
    other = FakeOpenAI()
    try:
        fake_openai.script.append(("status", 307, {"Location": other.url + "/chat/completions"}))
        teacher, _ = _teacher(fake_openai)
        with pytest.raises(TeacherError, match="answered HTTP 307"):
            teacher.rationales(samples[:1])
        assert other.requests == []
    finally:
        other.close()


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


def test_the_cache_never_serves_one_endpoints_reply_for_another(fake_openai, samples, tmp_path):
    fake_openai.script.append(("ok", "Planted by a visitor's server. Thus, the answer is (A)."))
    visitors, _ = _teacher(fake_openai, tmp_path)
    visitors.rationales(samples[:1])
    operators_server = FakeOpenAI()
    try:
        operators_server.script.append(("ok", "The operator's teacher. Thus, the answer is (B)."))
        operators, _ = _teacher(operators_server, tmp_path)
        assert operators.rationales(samples[:1])[0].text == "The operator's teacher. Thus, the answer is (B)."
        assert len(operators_server.requests) == 1
    finally:
        operators_server.close()


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
