#!/usr/bin/env bash
# make reproduce-slm_energy: the benchmark (frontiers, Pareto batch, memory) and the replication
# experiment at the default CPU scale, then every figure and the README table from their results.
# Extra arguments go to both entry points (e.g. scale=paper engine=vllm on a GPU node).
set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/lib.sh
run_step papers.slm_energy.benchmark "$@"
run_step papers.slm_energy.replication "$@"
finish_steps
build_figures slm_energy "$@"
