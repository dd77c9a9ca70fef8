# The two commands: `make demo` and `make test`. Both create or reuse .venv from the lock file.
# HSTU_DEVICE=cuda selects the GPU install path (CUDA torch + fbgemm-gpu) instead of the CPU one.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
HSTU_DEVICE ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(HSTU_DEVICE)
PYTEST_ARGS ?=
# Test files run on TEST_WORKERS processes (pytest-xdist, one file per worker at a time, so a module's fixtures stay
# in one process), in collection order with the DAG module first (tests/conftest.py: RUN_FIRST), so its ~14 min
# overlap the rest. The DAG and Spark tests mostly wait on subprocesses, so two workers fit two cores. Measured
# worse: all slow files first (two DAG files then ran at the same time); `--dist loadgroup` does not group under
# pytest 9.2 (a split DAG module clashes on ports).
TEST_WORKERS ?= 2

.PHONY: help venv test test-browser lint demo proto lock up down clean

help:
	@echo "make demo   - run the whole pipeline end to end on the embedded default"
	@echo "make test   - run the test suite (pytest + ruff)"
	@echo "make up / make down - start / stop Airflow and MLflow UIs on 127.0.0.1"
	@echo "make proto  - regenerate the config's Python code from the .proto files"
	@echo "make lock   - re-resolve requirements/cpu.in into requirements/cpu.lock"

venv: $(STAMP)

$(STAMP): requirements/cpu.lock requirements/cuda.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(HSTU_DEVICE),cuda)
	grep -vE '^(torch|fbgemm[-_]gpu[-_]cpu|triton)==' requirements/cpu.lock > $(VENV)/cuda-base.lock
	$(PY) -m pip install --no-deps -r $(VENV)/cuda-base.lock
	$(PY) -m pip install -r requirements/cuda.txt
else
	$(PY) -m pip install --no-deps -r requirements/cpu.lock
endif
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The browser test needs Debian's chromium (root: apt-get); `make test` skips it when chromium is absent.
test-browser: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PY) -m pytest -m browser tests/ui $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(PY) -m components.orchestration.demo

proto: $(STAMP)
	$(PY) -m components.protogen

lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -r requirements/cpu.in
	.lockenv/bin/pip install --no-deps -r requirements/torchrec.in
	{ echo "# Exact CPU environment (Python 3.11, x86_64), installed with --no-deps. Regenerate with: make lock"; \
	  .lockenv/bin/pip freeze --all --exclude-editable | grep -v '^-e'; } > requirements/cpu.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache

up: $(STAMP)
	$(PY) -m components.orchestration.localstack up

down:
	$(PY) -m components.orchestration.localstack down
