#!/usr/bin/env bash
# FRIDA (arXiv 2410.05020) at the default CPU scale: the experiment grid (in-process runtime), the
# detector-overhead benchmark, one federation under Flower's simulation runtime (Ray) next to its
# in-process twin, then every figure and table under figures/frida/ from the saved results.
#
#   bash papers/frida/reproduce.sh [overrides...]     e.g. scale=paper, fed.rounds=10, logger=wandb
#
# Overrides go to every step, so use keys all FRIDA experiments share (scale, seed, fed.*, paths.*,
# logger); grid-only keys (seeds=..., workers=...) go to `python -m papers.frida.run_grid` directly.
set -euo pipefail
cd "$(dirname "$0")/../.."

source jobs/lib.sh  # run_step: here, or as chained SLURM jobs with LAUNCHER=slurm

start=$SECONDS
run_step papers.frida.run_grid "$@"                       # the experiment grid (in-process runtime)
run_step papers.frida.bench "$@"                          # detector overhead (in-process runtime)
run_step papers.frida.detect runtime=simulation "$@"      # acceptance cell, seed 0, Ray simulation
run_step papers.frida.detect runtime=inprocess "$@"       # its in-process twin
finish_steps
build_figures frida "$@"
echo "== frida: done in $((SECONDS - start)) s; figures in figures/frida/"
