"""Submit commands to SLURM and wait for them: the `launcher=slurm` half of `jobs.pipeline`.

Each step becomes one batch job rendered by jobs.render, chained with `afterok` so a step reads what
the previous one wrote. `wait` shows progress from `sacct` and fails with the job id and its log path
as soon as a job fails; it cancels what would never start, so `make reproduce` never hangs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common.repo import REPO_ROOT
from jobs.render import JOBS_DIR, overrides_digest, render_app
from jobs.routing import App

TERMINAL_OK = {"COMPLETED"}
TERMINAL_BAD = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
}


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def submit(app: App, overrides: list[str], after: str | None) -> str:
    """sbatch the app's rendered script (after job `after` succeeded, if given); returns the job id."""
    paper = app.config.split("/")[0]
    all_overrides = [*app.overrides, *overrides]
    rendered = render_app(
        app,
        overrides,
        JOBS_DIR / "generated" / paper / "steps",
        name_suffix=f"-{overrides_digest(all_overrides)}" if all_overrides else "",
    )
    cmd = ["sbatch", "--parsable", f"--chdir={REPO_ROOT}"]
    if after:
        cmd.append(f"--dependency=afterok:{after}")
    return _run([*cmd, str(rendered.path)]).strip().split(";")[0]


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """job id -> (state, name, log path) of each job's allocation (array tasks folded in)."""
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "--format=JobID,JobName,State,WorkDir"])
    states: dict[str, tuple[str, str, str]] = {}
    for line in out.splitlines():
        jid, name, state, workdir = (line.split("|") + ["", "", "", ""])[:4]
        base, _, task = jid.partition("_")
        state = state.split()[0] if state else "UNKNOWN"
        # logs/%x_%j.out, or logs/%x_%A_%a.out for an array task (jobs/templates/job.sbatch)
        stem = f"{name}_{base}_{task}" if task else f"{name}_{base}"
        log = Path(workdir or REPO_ROOT) / "logs" / f"{stem}.out"
        previous = states.get(base)
        if previous is None or previous[0] in TERMINAL_OK or state in TERMINAL_BAD:
            states[base] = (state, name, str(log))
    return states


def wait(job_ids: list[str], timeout_min: float, poll_s: float = 2.0) -> int:
    """0 when every job completed; 1 (after cancelling the rest) when one failed or time ran out."""
    from rich.progress import Progress

    deadline = time.time() + timeout_min * 60
    with Progress(transient=True) as progress:
        bar = progress.add_task("SLURM jobs", total=len(job_ids))
        while True:
            states = job_states(job_ids)
            done = [j for j in job_ids if states.get(j, ("PENDING",))[0] in TERMINAL_OK]
            bad = [j for j in job_ids if states.get(j, ("PENDING",))[0] in TERMINAL_BAD]
            progress.update(
                bar,
                completed=len(done),
                description=(
                    f"SLURM jobs: {len(done)}/{len(job_ids)} done, "
                    + ", ".join(f"{j}:{states.get(j, ('PENDING',))[0]}" for j in job_ids)
                ),
            )
            if bad:
                rest = [j for j in job_ids if j not in done and j not in bad]
                if rest:
                    subprocess.run(["scancel", *rest], timeout=60)
                for j in bad:
                    path = states[j][2]
                    print(
                        f"error: job {j} ({states[j][1]}) ended {states[j][0]}; log: {path}", file=sys.stderr
                    )
                    if Path(path).exists():
                        tail = Path(path).read_text(errors="replace").splitlines()[-15:]
                        print("\n".join("  | " + line for line in tail), file=sys.stderr)
                return 1
            if len(done) == len(job_ids):
                print(f"SLURM: {len(job_ids)} job(s) completed: {' '.join(job_ids)}")
                return 0
            if time.time() > deadline:
                subprocess.run(["scancel", *job_ids], timeout=60)
                print(
                    f"error: jobs {' '.join(job_ids)} not finished after {timeout_min} min; cancelled",
                    file=sys.stderr,
                )
                return 1
            time.sleep(poll_s)
