#!/usr/bin/env bash
# make gpu-check: the serving core's GPU measurements (~6 min on one H100); writes results/gpu/<device>/.
#
# Runs with the GPU node's own python (torch + transformers + nvidia-ml-py; override with PYTHON=...).
# The driver imports no hydra, but common.gpu_metrics and common.hardware import common.config, which
# needs omegaconf: when that python lacks it, the two pure-Python wheels in scripts/wheels/
# (omegaconf 2.3.1 and antlr4-python3-runtime 4.9.3 from PyPI; PyYAML is on the nodes) are installed
# into a throw-away folder first. Extra arguments go to the driver (e.g. --dry-run --out /tmp/x).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
if ! "$PY" -c "import omegaconf" 2>/dev/null; then
  site="$(mktemp -d)"
  trap 'rm -rf "$site"' EXIT
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" scripts/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers; print('gpu-check: torch', torch.__version__, 'transformers', \
transformers.__version__, 'cuda', torch.cuda.is_available())"
"$PY" -m common.serving.bench.gpu_check "$@"
# the SLM benchmark for two model sizes with NVML energy (issue 5); --dry-run mirrors the CPU check
slm_args=() prev=""
for arg in "$@"; do
  [ "$arg" = --dry-run ] && slm_args+=(--dry-run)
  [ "$prev" = --out ] && slm_args+=(--out "$arg/slm_energy")
  prev=$arg
done
"$PY" -m papers.slm_energy.gpu_bench ${slm_args[@]+"${slm_args[@]}"}
