"""`make jobs-<paper>`: one SLURM batch script per command of a paper, into jobs/generated/<paper>/.

    python -m jobs.render paper=<paper> [out=DIR] [override ...]     (overrides default to scale=paper)

The command's own config says which resources it needs (`job.profile`, a row of
conf/slurm/profiles.yaml), which list-valued key to split into an array (`job.array`) and which
environment variables it cannot run without (`job.require_env`); site values come from the git-ignored
jobs/site.yaml (or $JOBS_SITE). The module a script runs is the one named as its config
(conf/<paper>/<exp>.yaml -> papers.<paper>.<exp>). vLLM experiments (`engine=vllm`) run in .venv-vllm,
every other in .venv. Overrides reach the commands that have their key, as in `jobs.pipeline`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Optional

from common import slurm
from common.atomic import write_atomic
from common.errors import EXIT_BAD_INPUT, BadInput
from common.repo import PAPERS, REPO_ROOT
from common.schema import MISSING
from jobs.routing import App, compose_app, route, split

JOBS_DIR = Path(__file__).resolve().parent
TEMPLATE = JOBS_DIR / "templates" / "job.sbatch"
SITE = JOBS_DIR / "site.yaml"
VENVS = {"hf": (".venv", "make setup"), "vllm": (".venv-vllm", "make setup-vllm")}  # by `engine`


@dataclass
class RenderConfig:
    paper: str = MISSING  # batching | slm_energy | frida | mpt_lml
    out: Optional[str] = None  # None: jobs/generated/<paper>


@dataclass
class Rendered:
    path: Path
    job_name: str
    module: str
    array_size: int | None


def _read_yaml(path: Path, what: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise BadInput(f"{what} {path}: {err}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{what} {path}: expected a mapping")
    return data


def render(app: App, overrides: list[str], out_dir: Path, site: dict, name_suffix: str = "") -> Rendered:
    from omegaconf import OmegaConf

    cfg = compose_app(app, overrides)
    job = cfg.job
    profile = slurm.profile(job.profile)
    job_name = f"{cfg.paper}-{cfg.experiment}{name_suffix}"
    extra = []
    if profile["gpus"]:
        extra.append(f"#SBATCH --gres=gpu:{profile['gpus']}")
    for key in ("partition", "account", "qos"):
        if value := _site_value(site, key, job.profile):
            extra.append(f"#SBATCH --{key}={value}")
    extra += [f"#SBATCH {line}" for line in site.get("extra_sbatch") or []]
    array_size, array_select, log_pattern = None, "", "%x_%j.out"
    if job.array:
        values = OmegaConf.select(cfg, job.array)
        if not OmegaConf.is_list(values) or len(values) == 0:
            raise BadInput(f"job.array={job.array!r} of {app.config} must name a non-empty list key")
        array_size = len(values)
        extra.append(f"#SBATCH --array=0-{array_size - 1}")
        log_pattern = "%x_%A_%a.out"
        quoted = " ".join(shlex.quote(str(v)) for v in values)
        array_select = (
            f'VALUES=({quoted})\nARRAY_OVERRIDE="{job.array}=[$${{VALUES[$$SLURM_ARRAY_TASK_ID]}}]"'
        )
    engine = OmegaConf.select(cfg, "engine", default="hf")
    if engine not in VENVS:
        raise BadInput(f"engine={engine!r} of {app.config} has no environment (choices: {', '.join(VENVS)})")
    venv, venv_setup = VENVS[engine]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{app.config.split('/')[-1]}{name_suffix}.sbatch"
    all_overrides = [*app.overrides, *overrides]
    text = Template(TEMPLATE.read_text()).substitute(
        config=app.config,
        profile=job.profile,
        scale=cfg.scale.name,
        script=path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path,
        job_name=job_name,
        log_pattern=log_pattern,
        cpus_per_task=profile["cpus_per_task"],
        mem=f"{profile['mem_gb']}G",
        time=slurm.sbatch_time(profile["time_min"]),
        sbatch_extra="\n".join(extra),
        require_env=" ".join(job.require_env),
        setup="\n".join(site.get("setup") or []),
        array_select=array_select,
        module=app.module,
        venv=venv,
        venv_setup=venv_setup,
        overrides=" ".join(shlex.quote(o) for o in all_overrides),
    )
    write_atomic(path, text)
    path.chmod(0o755)
    return Rendered(path, job_name, app.module, array_size)


def _site_value(site: dict, key: str, profile: str) -> str | None:
    """A site value is one string, or a mapping from profile to string (CPU and GPU partitions differ)."""
    value = site.get(key)
    if isinstance(value, dict):
        value = value.get(profile)
    if value is not None and not isinstance(value, str | int):
        raise BadInput(f"site config key {key!r}: expected a string or a mapping profile -> string")
    return None if value is None else str(value)


def read_site() -> dict:
    """$JOBS_SITE names the site config (it must exist); else jobs/site.yaml where there is one."""
    if os.environ.get("JOBS_SITE"):
        return _read_yaml(Path(os.environ["JOBS_SITE"]), "site config ($JOBS_SITE)")
    return _read_yaml(SITE, "site config") if SITE.exists() else {}


def render_app(app: App, overrides: list[str], out_dir: Path, name_suffix: str = "") -> Rendered:
    """Render one command with this site's values into out_dir."""
    site = read_site()
    (REPO_ROOT / "logs").mkdir(exist_ok=True)  # SLURM does not create the --output directory
    return render(app, overrides, out_dir, site, name_suffix)


def render_experiment(
    paper: str, experiment: str, overrides: list[str], out_dir: Path | None = None, name_suffix: str = ""
) -> Rendered:
    """Render conf/<paper>/<experiment>.yaml into out_dir (default jobs/generated/<paper>)."""
    return render_app(
        App(f"{paper}/{experiment}"), overrides, out_dir or JOBS_DIR / "generated" / paper, name_suffix
    )


def render_paper(paper: str, overrides: list[str], out_dir: Path | None = None) -> list[Rendered]:
    """Every command of a paper; overrides go where their key is (scale=paper unless told otherwise)."""
    from common.config import experiment_configs

    if paper not in PAPERS:
        raise BadInput(f"paper={paper!r} is not one of {', '.join(PAPERS)}")
    apps = [App(name) for name in experiment_configs((paper,))]
    if not any(o.startswith("scale=") for o in overrides):
        overrides = ["scale=paper", *overrides]
    shares = route(apps, overrides)
    return [
        render_app(app, share, out_dir or JOBS_DIR / "generated" / paper) for app, share in zip(apps, shares)
    ]


def main(argv: list[str] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from common.config import compose, register_schema

    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    own, rest = split(argv, {"paper", "out"})
    try:
        register_schema("jobs/render", RenderConfig)
        try:
            cfg: RenderConfig = OmegaConf.to_object(compose("jobs/render", own))
        except HydraException as err:
            raise BadInput(" ".join(str(err).split())) from None
        rendered = render_paper(cfg.paper, rest, Path(cfg.out) if cfg.out else None)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for r in rendered:
        array = f" (array of {r.array_size})" if r.array_size else ""
        print(
            f"{r.path.relative_to(REPO_ROOT) if r.path.is_relative_to(REPO_ROOT) else r.path}"
            f"  ->  python -m {r.module}{array}"
        )
    print(f"submit from {REPO_ROOT}: sbatch <script>; logs go to logs/")
    return 0


def overrides_digest(overrides: list[str]) -> str:
    return hashlib.sha1(" ".join(overrides).encode()).hexdigest()[:8] if overrides else ""


if __name__ == "__main__":
    sys.exit(main())
