#!/usr/bin/env bash
# Reproduce "Mind the Memory Gap" (arXiv 2503.08311) at the default (CPU) scale: the batch sweep, the
# study of it (Figs 2-4), the profiler breakdown (Fig. 5), the Nsight Compute summary (Table I / Fig. 6;
# recorded as missing without a GPU), the BCA on this sweep and on the authors' sweeps, replication,
# then every figure from the saved results.
#
#   bash papers/batching/reproduce.sh                           # this machine: ~1.5 min on 2 quiet cores
#   bash papers/batching/reproduce.sh scale=paper engine=vllm   # the paper's grid on a GPU node
#   LAUNCHER=slurm make reproduce-batching                      # each step a chained SLURM job
#
# Overrides go to every step, except engine=... which only the serving steps (sweep, replicate) have:
# the breakdown and Nsight Compute profile the hf engine's decode loop whatever engine serves, and the
# study and the BCA read whatever the sweep stored.
set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/lib.sh
export WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}" PYTHONUNBUFFERED=1

serve=()
rest=()
for arg in "$@"; do
  case "$arg" in
    engine=*) serve+=("$arg") ;;
    *) rest+=("$arg") ;;
  esac
done

start=$SECONDS
run_step papers.batching.sweep "${serve[@]}" "${rest[@]}"
run_step papers.batching.study "${rest[@]}"
run_step papers.batching.breakdown "${rest[@]}"
run_step papers.batching.ncu "${rest[@]}"
run_step papers.batching.bca_runs "${rest[@]}"
run_step papers.batching.replicate "${serve[@]}" "${rest[@]}"
finish_steps
build_figures batching "${rest[@]}"
echo "== reproduce-batching: $((SECONDS - start)) s in all (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
