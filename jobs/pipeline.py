"""`make reproduce-<paper>`: a paper's steps, declared once in conf/pipeline/<paper>.yaml, run here one
after another (launcher=local) or on SLURM as a chain of batch jobs, each after the previous one
succeeded (launcher=slurm).

    python -m jobs.pipeline pipeline=<paper> [launcher=local|slurm] [only=[<app>,...]] [dry_run=true]
                            [override ...]

The other arguments are hydra overrides for the steps: each reaches every step whose config has its
key (`engine=vllm` reaches only the serving steps; `scale=paper` all of them), and one that no step
takes is an error, like a misspelt key. Every step is composed with its overrides before the first one
starts, so bad input fails in seconds with exit 2. A failing step stops the chain with its exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from common.errors import EXIT_BAD_INPUT, BadInput
from common.repo import CONF_DIR, REPO_ROOT
from common.schema import MISSING
from jobs.routing import App, route, split

LAUNCHERS = ("local", "slurm")


@dataclass
class StepConfig:
    """One step: a command's config name and the overrides this pipeline always gives it."""

    app: str = MISSING
    overrides: list[str] = field(default_factory=list)


@dataclass
class PipelineConfig:
    name: str = MISSING
    steps: list[StepConfig] = MISSING
    launcher: str = "local"  # local: here, one after another | slurm: a chain of batch jobs (afterok)
    only: list[str] = field(default_factory=list)  # run just these steps (their app names); [] = all
    dry_run: bool = False  # print the plan (each step's command) and stop
    wait_timeout_min: float = 1440.0  # slurm: give up waiting (and cancel) after this long


OWN = {"pipeline", "launcher", "only", "dry_run", "wait_timeout_min"}


def pipelines() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "pipeline").glob("*.yaml"))


def plan(argv: list[str]) -> tuple[PipelineConfig, list[App], list[list[str]]]:
    """The pipeline's config, its steps and each step's overrides; BadInput on anything wrong."""
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from common.config import compose

    own, rest = split(argv, OWN)
    names = [o.split("=", 1)[1] for o in own if o.startswith("pipeline=")]
    if len(names) != 1 or names[0] not in pipelines():
        raise BadInput(f"pipeline=<name> is required once (choices: {', '.join(pipelines())})")
    ConfigStore.instance().store(name="schema_jobs_pipeline", node=PipelineConfig)
    try:
        node = compose(f"pipeline/{names[0]}", [o for o in own if not o.startswith("pipeline=")])
    except HydraException as err:
        raise BadInput(" ".join(str(err).split())) from None
    cfg: PipelineConfig = OmegaConf.to_object(node)
    if cfg.launcher not in LAUNCHERS:
        raise BadInput(f"launcher={cfg.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    known = [s.app for s in cfg.steps]
    unknown = [o for o in cfg.only if o not in known]
    if unknown:
        raise BadInput(f"only={unknown}: not steps of pipeline {cfg.name} ({', '.join(known)})")
    apps = [App(s.app, list(s.overrides)) for s in cfg.steps if not cfg.only or s.app in cfg.only]
    return cfg, apps, route(apps, rest)


def command(app: App, share: list[str]) -> list[str]:
    return [sys.executable, "-m", app.module, *app.overrides, *share]


def run_local(apps: list[App], shares: list[list[str]]) -> int:
    start = time.monotonic()
    for i, (app, share) in enumerate(zip(apps, shares), start=1):
        cmd = command(app, share)
        print(f"== step {i}/{len(apps)}: python -m {' '.join(cmd[2:])}", flush=True)
        t0 = time.monotonic()
        code = subprocess.run(cmd, cwd=REPO_ROOT).returncode
        print(f"   ({time.monotonic() - t0:.0f} s, exit {code})", flush=True)
        if code != 0:
            print(
                f"error: step {app.label()} failed with exit status {code}; the later steps did not run",
                file=sys.stderr,
            )
            return code
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"== {len(apps)} steps done in {time.monotonic() - start:.0f} s (load average now: {load})")
    return 0


def run_slurm(apps: list[App], shares: list[list[str]], timeout_min: float) -> int:
    from jobs.submit import submit, wait

    ids: list[str] = []
    for app, share in zip(apps, shares):
        job = submit(app, share, after=ids[-1] if ids else None)
        print(
            f"== submitted python -m {' '.join(command(app, share)[2:])} as SLURM job {job}"
            + (f" (after {ids[-1]})" if ids else ""),
            flush=True,
        )
        ids.append(job)
    return wait(ids, timeout_min)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip() + f"\n\npipelines (conf/pipeline/): {', '.join(pipelines())}")
        return 0
    try:
        cfg, apps, shares = plan(argv)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"pipeline {cfg.name}: {len(apps)} steps, launcher={cfg.launcher}")
    if cfg.dry_run:
        for app, share in zip(apps, shares):
            print("  python -m " + " ".join(command(app, share)[2:]))
        return 0
    if cfg.launcher == "slurm":
        return run_slurm(apps, shares, cfg.wait_timeout_min)
    return run_local(apps, shares)


if __name__ == "__main__":
    sys.exit(main())
