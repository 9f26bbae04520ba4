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
