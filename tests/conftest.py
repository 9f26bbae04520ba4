"""Shared fixtures and fakes: tiny models built from configs with a tokenizer trained here
(no downloads), a scripted fake teacher, and a fault-injecting OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from scicot_core.questions import Question, Rationale, sample_items  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not present at {SHARED_DATA}")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _corpus() -> list[str]:
    texts = []
    for q, rationale in sample_items():
        texts += [q.stem, rationale] + [c.text for c in q.choices]
    texts += ["Question: Choices: Rationale: Answer: (A) (B) (C) (D) (E) (1) (2) (3) (4)"]
    return texts


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on the sample set, with pad/eos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A 2-layer Llama with random weights, saved like a real checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        bos_token_id=None,
    )
    folder = tmp_path_factory.mktemp("tiny-causal")
    LlamaForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A 1-layer T5 with random weights (the paper's student is a T5) that never ends a text on
    its own: its output layer gives end-of-sequence and padding a logit of 0, below the best of
    the rest, so generation writes text (a random T5 would stop at once and write nothing)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tiny_tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        decoder_start_token_id=tiny_tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight[[tiny_tokenizer.pad_token_id, tiny_tokenizer.eos_token_id]] = 0
    folder = tmp_path_factory.mktemp("tiny-seq2seq")
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_causal(tiny_causal_dir, tmp_path):
    from scicot_core.base_models import load_model

    return load_model(str(tiny_causal_dir), tmp_path)


@pytest.fixture
def tiny_seq2seq(tiny_seq2seq_dir, tmp_path):
    from scicot_core.base_models import load_model

    return load_model(str(tiny_seq2seq_dir), tmp_path)


@pytest.fixture
def samples() -> list[Question]:
    return [q for q, _ in sample_items()]


class FakeTeacher:
    """A scripted teacher: `enqueue([...])` texts, read back what it was asked in `history`."""

    model_id = "fake-teacher"
    note = "scripted fake"

    def __init__(self):
        self.queue: deque[str] = deque()
        self.history: list[tuple[str, str]] = []
        self.fail_ids: set[str] = set()  # questions it fails on, like a backend giving up

    def enqueue(self, texts: list[str]) -> None:
        self.queue.extend(texts)

    def rationales(self, questions, mode="rationalize"):
        from scicot_core.errors import TeacherError

        failing = [q.id for q in questions if q.id in self.fail_ids]
        if failing:
            raise TeacherError(f"scripted failure on {failing[0]}.")
        out = []
        for q in questions:
            self.history.append((q.id, mode))
            text = self.queue.popleft() if self.queue else f"Because of science. Thus, the answer is ({q.answer_key or q.labels[0]})."
            out.append(Rationale(q.id, text, "teacher", self.model_id, 1, self.note, {"mode": mode}))
        return out


@pytest.fixture
def fake_teacher(monkeypatch):
    from scicot_core import teachers

    teacher = FakeTeacher()
    monkeypatch.setitem(teachers.TEACHERS, "fake", teachers.Backend("fake", "Scripted fake", lambda settings, load: teacher, in_app=False))
    return teacher


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 whose replies are scripted, one per request:
    ("ok", text) | ("truncated", text) | ("status", code, headers, body) | ("sleep", seconds[, text])
    | ("drip", seconds_per_byte, count) | ("malformed",). `requests` records what each request sent."""

    def __init__(self):
        self.script: deque[tuple] = deque()
        self.requests: list[dict] = []
        self.active: set[object] = set()  # the requests being answered now
        self.max_active = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    request = object()
                    fake.active.add(request)
                    fake.max_active = max(fake.max_active, len(fake.active))
                    step = fake.script.popleft() if fake.script else ("ok", "A default rationale. Thus, the answer is (A).")
                try:
                    fake._reply(self, step, request)
                finally:
                    fake._answered(request)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answered(self, request) -> None:
        # A request stops counting as active before its reply is sent: once the client has the
        # reply it may send the next request, before this thread gets to run again.
        with self.lock:
            self.active.discard(request)

    def _reply(self, handler, step, request=None):
        kind = step[0]
        if kind == "sleep":
            time.sleep(step[1])
            step = ("ok", step[2] if len(step) > 2 else "slow")
            kind = "ok"
        if kind in ("ok", "truncated"):
            choice = {"message": {"role": "assistant", "content": step[1]}, "finish_reason": "length" if kind == "truncated" else "stop"}
            payload = json.dumps({"choices": [choice]}).encode()
            code, headers = 200, {}
        elif kind == "status":
            code, headers = step[1], (step[2] if len(step) > 2 else {})
            payload = step[3].encode() if len(step) > 3 else b'{"error": "scripted"}'
        elif kind == "drip":
            return self._drip(handler, *step[1:])
        else:
            payload, code, headers = b"{not json", 200, {}
        self._answered(request)
        try:
            handler.send_response(code)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _drip(self, handler, seconds_per_byte, count):
        """A slow reply: one byte at a time, each well inside a read timeout, then cut short."""
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(count + 1))
            handler.end_headers()
            for _ in range(count):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(seconds_per_byte)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def app_deps(tmp_path, tiny_causal_dir):
    """The app's dependencies around a tiny model and a fresh store, in a folder whose name has a
    dot and a space."""
    from annotations.store import Store
    from demo.deps import BASE_SET, Deps
    from scicot_core.base_models import load_model
    from scicot_core.settings import Settings

    home = tmp_path / "scicot v1.2"  # a dot and a space: adapter names must not come from paths as text
    home.mkdir()
    settings = Settings(
        cache_dir=home / "cache",
        db_path=home / "app.db",
        distill_path=home / "distill.jsonl",
        reviewer_secret="sesame",
        student=str(tiny_causal_dir),
        compare_n=4,
    )
    deps = Deps(settings, Store(settings.db_path, reviewer_secret="sesame"), lambda: load_model(str(tiny_causal_dir), tmp_path))
    deps.students.add(BASE_SET, {})
    return deps


@pytest.fixture
def app_server(app_deps):
    """A real Gradio server on 127.0.0.1 (a fresh Blocks per test), closed afterwards."""
    os.environ["GRADIO_SSR_MODE"] = "false"
    from demo.ui import build_demo, launch_options

    demo = build_demo(app_deps)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_options(app_deps.settings))
    yield demo.local_url, app_deps
    demo.close()


def refusal(out, pattern: str) -> str:
    """The "⚠️ ..." message an app endpoint answered a user error with (its other outputs are left
    as they were), checked against `pattern` (case aside: messages start with a capital there)."""
    import re

    shown = [t for t in (out if isinstance(out, (list, tuple)) else [out]) if isinstance(t, str) and t.startswith("⚠️")]
    assert shown, f"no refusal in {out!r}"
    assert re.search(pattern, shown[0], re.I), shown[0]
    return shown[0]


def deps_from_env(app_deps, env: dict[str, str]):
    """conftest's app dependencies (same store, model and folders), with the other settings read
    from `env` as an operator would set them; its adapter sets hold only the bare base."""
    from dataclasses import replace

    from demo.deps import BASE_SET, Deps
    from scicot_core.settings import Settings

    s = app_deps.settings
    folders = {k: getattr(s, k) for k in ("cache_dir", "db_path", "distill_path", "reviewer_secret", "student")}
    deps = Deps(replace(Settings.from_env(env), **folders), app_deps.store, app_deps.model.get)
    deps.students.add(BASE_SET, {})
    return deps
