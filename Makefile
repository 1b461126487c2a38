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
.PHONY: help setup test test-slow teacher clip-scorer eval bench-eval prompts clean-venv \
	ablation-scm ablation-ladd ablation-hybrid ablations ablation-axes ablation best-student best-student-stage4 bench-distill bench-compile bench-speedup paper quick report ui \
	controlnet-teacher controlnet-sprint controlnet-baseline controlnet bench-controlnet bench-realscale

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

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

teacher: setup ## train the default teacher (resumes if interrupted), score it on GenEval-Shapes, release it
	$(BIN)/sprint-bench train-teacher --config $(TEACHER_CONFIG) $(ARGS)
	$(BIN)/sprint-bench eval-teacher --config $(TEACHER_CONFIG) $(ARGS)
	$(BIN)/sprint-bench release-teacher --config $(TEACHER_CONFIG) $(ARGS)

clip-scorer: setup ## train the shapes-CLIP scorer into artifacts/clip-scorer (skipped if present)
	test -f artifacts/clip-scorer/meta.json || $(BIN)/python -m sprint_bench.eval.clip.train --config experiments/base.yaml --out artifacts/clip-scorer --threads 2 $(CLIP_ARGS)

EVAL_MODEL ?= teacher
EVAL_STEPS ?= 1,2,4,8,20
EVAL_METRICS ?= fd,kid,clip,geneval,latency
eval: setup ## evaluate EVAL_MODEL (default: the released teacher) at EVAL_STEPS with EVAL_METRICS
	$(BIN)/sprint-bench eval $(EVAL_MODEL) --steps $(EVAL_STEPS) --metrics $(EVAL_METRICS) $(ARGS)

bench-eval: setup ## evaluation speed benchmark: FD feature extraction and GenEval detection images/s
	$(BIN)/python -m sprint_bench.eval.metrics.bench_fd --n 512 --threads 2 --batch-size 16
	$(BIN)/python -m sprint_bench.eval.geneval.bench --n 2212

DISTILL_METRICS ?= fd,kid,clip,geneval,latency
DISTILL = $(BIN)/sprint-bench distill --metrics $(DISTILL_METRICS) --config
ablation-scm: setup clip-scorer ## sCM-only student: train, then evaluate at 1, 2 and 4 steps
	$(DISTILL) experiments/sprint/scm.yaml $(ARGS)

ablation-ladd: setup clip-scorer ## LADD-only student: train, then evaluate at 1, 2 and 4 steps
	$(DISTILL) experiments/sprint/ladd.yaml $(ARGS)

ablation-hybrid: setup clip-scorer ## hybrid (sCM + LADD) student: train, then evaluate at 1, 2 and 4 steps
	$(DISTILL) experiments/sprint/hybrid.yaml $(ARGS)

ablations: ablation-scm ablation-ladd ablation-hybrid ## the three students of paper Table 3 (finished ones are skipped)

AXES := $(sort $(wildcard experiments/sprint/ablations/*.yaml))
ablation-axes: setup clip-scorer ## every YAML in experiments/sprint/ablations/ (over 30 students: paper Tables 4-6, 8 and ours; many hours)
	for f in $$($(BIN)/python -m sprint_bench.config.order $(AXES)); do $(DISTILL) $$f $(ARGS) || exit 1; done

ABLATION ?= experiments/sprint/hybrid.yaml
ablation: setup clip-scorer ## one student from ABLATION=<yaml>
	$(DISTILL) $(ABLATION) $(ARGS)

BEST := $(sort $(wildcard experiments/sprint/best/*.yaml))
best-student: setup clip-scorer ## the best 1-step student measured: 4 chained stages in experiments/sprint/best/ (4-5 h on CPU)
	for f in $(BEST); do $(DISTILL) $$f $(ARGS) || exit 1; done

BEST_STAGE3 ?= releases/sprint-best-3
best-student-stage4: setup clip-scorer ## best-student's stage 4 from the released stage 3 (BEST_STAGE3), without ~2 h of regression
	$(DISTILL) $(lastword $(BEST)) distill.student_init=$(BEST_STAGE3) $(ARGS)

bench-distill: setup ## training cost: sCM generator step vs teacher flow-matching step (median of 20 each, timed in turns)
	$(BIN)/python -m sprint_bench.lit.bench_distill --steps 20

bench-compile: setup ## what distill.compile buys: each compiled distillation call vs its eager twin (median of 10 each)
	$(BIN)/python -m sprint_bench.lit.bench_compile --steps 10

CONTROL_METRICS ?= edge_f1,fd,kid,clip,geneval,latency
CONTROL_EVAL = --metrics $(CONTROL_METRICS) --experiment controlnet
controlnet-teacher: setup clip-scorer ## ControlNet teacher: train on the frozen teacher, release, evaluate at 20 steps
	$(BIN)/sprint-bench train-controlnet --config experiments/controlnet/teacher.yaml --release $(ARGS)
	$(BIN)/sprint-bench eval controlnet-teacher --steps 20 $(CONTROL_EVAL)

CONTROL_SPRINT ?= experiments/controlnet/sprint-scm.yaml
controlnet-sprint: setup clip-scorer ## ControlNet student (CONTROL_SPRINT, default sCM only; sprint.yaml: the hybrid): distil, evaluate at 1, 2, 4 steps
	$(BIN)/sprint-bench distill --metrics $(CONTROL_METRICS) --config $(CONTROL_SPRINT) $(ARGS)

controlnet-baseline: setup clip-scorer ## unconditioned baselines with edge F1: the teacher (20 steps) and STUDENT (1 step)
	$(BIN)/sprint-bench eval teacher --steps 20 $(CONTROL_EVAL)
	$(BIN)/sprint-bench eval $(STUDENT) --steps 1 $(CONTROL_EVAL)

CONTROL_STUDENT ?= runs/$(shell $(BIN)/python -c "from sprint_bench.config import load_config, config_hash; c = load_config('$(CONTROL_SPRINT)'); print(f'{c.name}-{config_hash(c)}')" 2>/dev/null)
bench-controlnet: setup ## batch-1 latency of the 1-step ControlNet student vs the plain 1-step STUDENT, one interleaved run
	$(BIN)/python -m sprint_bench.eval.bench_speedup $(CONTROL_STUDENT) --teacher $(STUDENT) --teacher-steps 1 --student-steps 1

controlnet: controlnet-teacher controlnet-sprint controlnet-baseline ## the whole ControlNet suite, then reports/controlnet
	$(BIN)/sprint-bench report --suite controlnet --experiment controlnet

STUDENT ?= runs/sprint-hybrid-$(shell $(BIN)/python -c "from sprint_bench.config import load_config, config_hash; print(config_hash(load_config('experiments/sprint/hybrid.yaml')))" 2>/dev/null)
bench-speedup: setup ## batch-1 latency of STUDENT (default: the hybrid) at 1/2/4 steps vs the 20-step CFG teacher
	$(BIN)/python -m sprint_bench.eval.bench_speedup $(STUDENT)

REALSCALE_OUT ?= runs/bench-realscale.json
bench-realscale: setup ## full-size SANA(-Sprint) 0.6B/1.6B + Gemma-2 + DC-AE, random weights: batch-1 latency on a GPU (est. 7 min, H200)
	$(BIN)/python -m sprint_bench.eval.bench_realscale --out $(REALSCALE_OUT) $(ARGS)

TEACHER ?= release
QUICK_DIR ?= runs/quick
paper: setup ## the whole suite into reports/paper (TEACHER=retrain to retrain the teacher); resumable
	$(BIN)/sprint-bench paper $(if $(filter retrain,$(TEACHER)),--retrain-teacher,)

quick: setup ## the same chain on the micro preset in minutes (QUICK_DIR, labelled a smoke run)
	$(BIN)/sprint-bench paper --quick $(QUICK_DIR)

report: setup ## rebuild reports/paper from MLflow (SUITE=, EXPERIMENT=)
	$(BIN)/sprint-bench report --suite $(or $(SUITE),paper) --experiment $(or $(EXPERIMENT),sprint_bench) $(ARGS)

UI_PORT ?= 5000
ui: setup ## MLflow UI on 127.0.0.1:UI_PORT against the project's store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

prompts: setup ## regenerate the GenEval-Shapes prompt file shipped in the package
	$(BIN)/sprint-bench make-prompts

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)
