#!/usr/bin/env bash
# Reproduce "On Masked Pre-training and the Marginal Likelihood" (arXiv 2306.00520) at the default
# (CPU) scale: every entry point, then the figures from the saved results. Overrides pass through,
# e.g. `bash papers/mpt_lml/reproduce.sh scale=paper`; LAUNCHER=slurm runs each step as a SLURM job.
# mlm_glue (bert-base-uncased on GLUE) needs the HF hub and is not run here:
# `python -m papers.mpt_lml.mlm_glue` on a cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/lib.sh

start=$SECONDS
for entry in convergence curve ppca_training noise_to_lml bernoulli_digits mlm_hmm mlm_text; do
  run_step "papers.mpt_lml.${entry}" "$@"
done
finish_steps
t0=$SECONDS
"$PY" -m papers.mpt_lml.bench.batched_vs_loop  # a timing benchmark: always on this machine
echo "== mpt_lml/bench.batched_vs_loop: $((SECONDS - t0)) s"
build_figures mpt_lml "$@"
echo "== reproduce-mpt_lml: $((SECONDS - start)) s in all"
