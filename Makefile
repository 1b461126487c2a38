# sprint_bench — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
TEACHER_CONFIG ?= experiments/teacher.yaml
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-slow teacher teacher-eval prompts clean-venv

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package (idempotent)

test: setup ## run the fast test suite (< 15 min on 2 cores)
	$(BIN)/python -m pytest -q

test-slow: setup ## run only the slow checks
	$(BIN)/python -m pytest -q -m slow

teacher: setup ## train the default flow-matching teacher (resumes if interrupted), then score it
	$(BIN)/sprint-bench train-teacher --config $(TEACHER_CONFIG) $(ARGS)
	$(BIN)/sprint-bench eval-teacher --config $(TEACHER_CONFIG) $(ARGS)

prompts: setup ## regenerate the GenEval-Shapes prompt file shipped in the package
	$(BIN)/sprint-bench make-prompts

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)
