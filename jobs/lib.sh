# Sourced by papers/<paper>/reproduce.sh: each step runs here (LAUNCHER=local, the default) or as a
# SLURM batch job chained after the previous step (LAUNCHER=slurm); `finish_steps` waits for the jobs
# and fails with the failing job's id and log. Figures are then rebuilt here from the results.
LAUNCHER=${LAUNCHER:-local}
PY=${PY:-.venv/bin/python}
STEP_JOBS=()

run_step() {  # run_step MODULE [OVERRIDE ...]
  case "$LAUNCHER" in
    local)
      echo "== python -m $*"
      local t0=$SECONDS
      "$PY" -m "$@"
      echo "   ($((SECONDS - t0)) s)"
      ;;
    slurm)
      local after="" id
      if [ ${#STEP_JOBS[@]} -gt 0 ]; then after=${STEP_JOBS[-1]}; fi
      id=$("$PY" -m jobs.submit submit ${after:+--after "$after"} "$@")
      echo "== submitted python -m $* as SLURM job $id${after:+ (after $after)}"
      STEP_JOBS+=("$id")
      ;;
    *) echo "error: LAUNCHER=$LAUNCHER is not one of local, slurm" >&2; exit 2 ;;
  esac
}

finish_steps() {
  if [ "$LAUNCHER" = slurm ] && [ ${#STEP_JOBS[@]} -gt 0 ]; then
    "$PY" -m jobs.submit wait "${STEP_JOBS[@]}"
  fi
}

build_figures() {  # build_figures PAPER [OVERRIDE ...]: figures from the saved results, then logged
  local paper=$1 scale=smoke results=results figures=figures arg
  shift
  for arg in "$@"; do
    case "$arg" in
      scale=*) scale="${arg#scale=}" ;;
      paths.results_dir=*) results="${arg#paths.results_dir=}" ;;
      paths.figures_dir=*) figures="${arg#paths.figures_dir=}" ;;
    esac
  done
  "$PY" -m "papers.$paper.figures" --scale "$scale" --results-dir "$results" --out "$figures/$paper"
  # figures.py runs outside hydra: this puts them in the run logger (wandb with logger=wandb)
  "$PY" -m common.figure_log "$paper" "$@"
}
