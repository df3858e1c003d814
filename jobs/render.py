"""Render SLURM batch scripts from conf/: one per experiment of a paper, into jobs/generated/<paper>/.

The experiment's own config says which hardware profile it needs (`job.profile`), which list-valued
key to split into an array (`job.array`) and which environment variables it cannot run without
(`job.require_env`); site values come from the git-ignored jobs/site.yaml (or $JOBS_SITE). Nothing here
is typed by hand per experiment, so a new experiment config gets its job script for free. vLLM
experiments (`engine=vllm`) run in .venv-vllm, every other in .venv.

    python -m jobs.render <paper> [--scale paper|smoke] [--out DIR] [override ...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf

from common.config import CONF_DIR, PAPERS, REPO_ROOT, BadInput, compose, write_atomic

JOBS_DIR = Path(__file__).resolve().parent
TEMPLATE = JOBS_DIR / "templates" / "job.sbatch"
PROFILES = JOBS_DIR / "profiles.yaml"
SITE = JOBS_DIR / "site.yaml"
VENVS = {"hf": (".venv", "make setup"), "vllm": (".venv-vllm", "make setup-vllm")}  # by `engine`
RUN_LINE = re.compile(r"^#\s*Run:\s*python -m ([\w.]+)", re.MULTILINE)


@dataclass
class Rendered:
    path: Path
    job_name: str
    module: str
    array_size: int | None


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise BadInput(f"{what} {path}: {err}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{what} {path}: expected a mapping")
    return data


def experiment_module(paper: str, experiment: str) -> str:
    """The module named by the config's `# Run: python -m …` header; checked against its entry point."""
    path = CONF_DIR / paper / f"{experiment}.yaml"
    match = RUN_LINE.search(path.read_text())
    if not match:
        raise BadInput(f"{path}: no '# Run: python -m <module>' header line")
    module = match.group(1)
    main = getattr(importlib.import_module(module), "main", None)
    if getattr(main, "config_name", None) != f"{paper}/{experiment}":
        raise BadInput(f"{path}: header names {module}, whose entry point does not run {paper}/{experiment}")
    return module


def render(paper: str, experiment: str, overrides: list[str], out_dir: Path, site: dict,
           profiles: dict, name_suffix: str = "") -> Rendered:
    importlib.import_module(f"papers.{paper}.config")
    try:
        cfg = compose(f"{paper}/{experiment}", overrides)
    except HydraException as err:
        raise BadInput(f"{paper}/{experiment}: {err}".replace("\n", " ")) from None
    module = experiment_module(paper, experiment)
    job = cfg.job
    if job.profile not in profiles:
        raise BadInput(f"job.profile={job.profile!r} of {paper}/{experiment} is not in {PROFILES} "
                       f"(choices: {', '.join(profiles)})")
    profile = profiles[job.profile]
    job_name = f"{paper}-{experiment}{name_suffix}"
    extra = []
    if profile.get("gpus"):
        extra.append(f"#SBATCH --gres=gpu:{int(profile['gpus'])}")
    for key in ("partition", "account", "qos"):
        if value := _site_value(site, key, job.profile):
            extra.append(f"#SBATCH --{key}={value}")
    extra += [f"#SBATCH {line}" for line in site.get("extra_sbatch") or []]
    array_size, array_select, log_pattern = None, "", "%x_%j.out"
    if job.array:
        values = OmegaConf.select(cfg, job.array)
        if not OmegaConf.is_list(values) or len(values) == 0:
            raise BadInput(f"job.array={job.array!r} of {paper}/{experiment} must name a non-empty list key")
        array_size = len(values)
        extra.append(f"#SBATCH --array=0-{array_size - 1}")
        log_pattern = "%x_%A_%a.out"
        quoted = " ".join(shlex.quote(str(v)) for v in values)
        array_select = (f"VALUES=({quoted})\n"
                        f'ARRAY_OVERRIDE="{job.array}=[$${{VALUES[$$SLURM_ARRAY_TASK_ID]}}]"')
    engine = OmegaConf.select(cfg, "engine", default="hf")
    if engine not in VENVS:
        raise BadInput(f"engine={engine!r} of {paper}/{experiment} has no environment "
                       f"(choices: {', '.join(VENVS)})")
    venv, venv_setup = VENVS[engine]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{experiment}{name_suffix}.sbatch"
    text = Template(TEMPLATE.read_text()).substitute(
        paper=paper, experiment=experiment, profile=job.profile, scale=cfg.scale.name,
        script=path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path,
        job_name=job_name, log_pattern=log_pattern,
        cpus_per_task=profile["cpus_per_task"], mem=profile["mem"], time=profile["time"],
        sbatch_extra="\n".join(extra), require_env=" ".join(job.require_env),
        setup="\n".join(site.get("setup") or []), array_select=array_select, module=module,
        venv=venv, venv_setup=venv_setup,
        overrides=" ".join(shlex.quote(o) for o in overrides))
    write_atomic(path, text)
    path.chmod(0o755)
    return Rendered(path, job_name, module, array_size)


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


def render_experiment(paper: str, experiment: str, overrides: list[str], out_dir: Path | None = None,
                      name_suffix: str = "") -> Rendered:
    """Render one experiment with this site's values into out_dir (default jobs/generated/<paper>)."""
    site = read_site()
    (REPO_ROOT / "logs").mkdir(exist_ok=True)  # SLURM does not create the --output directory
    return render(paper, experiment, overrides, out_dir or JOBS_DIR / "generated" / paper, site,
                  _read_yaml(PROFILES, "profiles"), name_suffix)


def render_paper(paper: str, overrides: list[str], out_dir: Path | None = None) -> list[Rendered]:
    if paper not in PAPERS:
        raise BadInput(f"unknown paper {paper!r} (choices: {', '.join(PAPERS)})")
    experiments = sorted(p.stem for p in (CONF_DIR / paper).glob("*.yaml"))
    if not experiments:
        raise BadInput(f"papers/{paper} has no experiment configs under conf/{paper}/ yet")
    return [render_experiment(paper, exp, overrides, out_dir) for exp in experiments]


def overrides_digest(overrides: list[str]) -> str:
    return hashlib.sha1(" ".join(overrides).encode()).hexdigest()[:8] if overrides else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper")
    parser.add_argument("--scale", default="paper", help="scale the jobs run at (default: paper)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="hydra overrides passed to every experiment")
    args = parser.parse_intermixed_args(argv)
    try:
        rendered = render_paper(args.paper, [f"scale={args.scale}", *args.overrides], args.out)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in rendered:
        array = f" (array of {r.array_size})" if r.array_size else ""
        print(f"{r.path.relative_to(REPO_ROOT) if r.path.is_relative_to(REPO_ROOT) else r.path}"
              f"  ->  python -m {r.module}{array}")
    print(f"submit from {REPO_ROOT}: sbatch <script>; logs go to logs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
