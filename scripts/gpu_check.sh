#!/usr/bin/env bash
# make gpu-check: the serving core's GPU measurements, then the SLM benchmark (~6 min on one H100); both write
# under ${paths.results_dir}/gpu/<device>/ (commit it). Every argument goes to both commands as given:
#   bash scripts/gpu_check.sh                         # plan=full, on a GPU node
#   bash scripts/gpu_check.sh plan=small out=/tmp/x   # the same path with tiny models, on a CPU
# (plan, out and paths.* mean the same to both; gpu_bench's own keys, e.g. replication=true, go to
# `python -m papers.slm_energy.gpu_bench` directly.)
# Python: $PYTHON, else the first of python3 and .venv/bin/python that has torch. The GPU nodes' python has
# torch, transformers and PyYAML but no hydra: the commands then read the same conf/ files through
# common.plain_config (no bundled wheels needed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif python3 -c "import torch" 2>/dev/null || [ ! -x .venv/bin/python ]; then
  PY=python3
else
  PY=.venv/bin/python
fi
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers; print('gpu-check: torch', torch.__version__, 'transformers', \
transformers.__version__, 'cuda', torch.cuda.is_available())"
"$PY" -m common.serving.bench.gpu_check "$@"
"$PY" -m papers.slm_energy.gpu_bench "$@"
