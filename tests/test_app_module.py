"""`app.py` is thin: importing it builds the real dependencies and `demo`, without launching."""

import importlib
import sys

import gradio as gr


def test_app_builds_demo_at_module_level(tmp_path, tiny_causal_dir, monkeypatch):
    monkeypatch.setenv("SCICOT_DB", str(tmp_path / "app.db"))
    monkeypatch.setenv("SCICOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SCICOT_STUDENT", str(tiny_causal_dir))
    monkeypatch.setenv("SCICOT_ADAPTERS", "none")
    sys.modules.pop("app", None)
    app = importlib.import_module("app")
    assert isinstance(app.demo, gr.Blocks)
    assert app.deps.settings.db_path == tmp_path / "app.db" and (tmp_path / "app.db").exists()
    assert app.deps.model.get().model_id == str(tiny_causal_dir)  # loaded once, by the background thread or here


def test_python_app_py_serves_where_gradios_own_variables_say(tmp_path, tiny_causal_dir):
    """`python app.py` listens on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT, as hosting platforms expect."""
    import os
    import socket
    import subprocess
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SSR_MODE": "false",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SCICOT_DB": str(tmp_path / "app.db"),
        "SCICOT_CACHE_DIR": str(tmp_path / "cache"),
        "SCICOT_STUDENT": str(tiny_causal_dir),
        "SCICOT_ADAPTERS": "none",
    }
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and server.poll() is None and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200, f"nothing served on port {port} (exit code {server.poll()})"
    finally:
        server.terminate()
        server.wait(timeout=30)
