#!/usr/bin/env bash
# Nsight Compute on one decode step of OPT-1.3B (random fp16 weights, hf engine): DRAM throughput and
# achieved occupancy of its attention and matmul kernels, at a small and a large batch (paper: Fig. 6-7).
# GPU node only (needs ncu and a CUDA torch); writes ncu_decode_B<batch>.{csv,json} to $NCU_OUT_DIR
# (default results/gpu/<device>/).
#   bash scripts/ncu_decode.sh [batch ...]      (default: 1 64)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
NCU="${NCU:-ncu}"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v "$NCU" >/dev/null || { echo "ncu_decode: $NCU not found (Nsight Compute)" >&2; exit 2; }
out="${NCU_OUT_DIR:-}"  # python -m papers.batching.ncu passes its result dir
if [[ -z "$out" ]]; then
  device="$("$PY" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name(0).lower()).strip('-'))")"
  out="results/gpu/$device"
fi
mkdir -p "$out"
metrics="dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum"
for batch in "${@:-1 64}"; do
  for b in $batch; do
    csv="$out/ncu_decode_B$b.csv"
    # only kernels launched inside the NVTX range "decode_step" (one forward) are replayed and measured
    # (decode_step is a config-driven command: key=value settings; its own run records go under $out too)
    "$NCU" --target-processes all --nvtx --nvtx-include "decode_step/" --metrics "$metrics" --csv \
      --log-file "$csv" "$PY" -m common.serving.bench.decode_step model=opt-1.3b batch="$b" \
      result_dir="$out/decode_step" logger=none
    "$PY" -m common.serving.bench.decode_step summarise="$csv" out="$out/ncu_decode_B$b.json" \
      result_dir="$out/decode_step" logger=none
  done
done
