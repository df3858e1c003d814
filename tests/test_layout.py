"""The repository's shape, READMEs and Makefile contract, as a newcomer meets them."""

import re
import subprocess
import sys

import pytest

from common.repo import PAPERS, REPO_ROOT

TITLES = {
    "batching": ("Mind the Memory Gap", "2503.08311"),
    "slm_energy": ("Towards Pareto Optimal Throughput in Small Language Model Serving", "2404.03353"),
    "frida": ("FRIDA", "2410.05020"),
    "mpt_lml": ("On Masked Pre-training and the Marginal Likelihood", "2306.00520"),
}
TARGETS = [
    "help",
    "setup",
    "setup-vllm",
    "test",
    "test-all",
    "lint",
    "reproduce",
    "figures",
    "report",
    "jobs",
    "gpu-check",
    "clean",
    "reproduce-<paper>",
    "figures-<paper>",
    "jobs-<paper>",
    "report-<paper>",
]


def test_top_level_layout():
    for name in (
        "papers",
        "common",
        "conf",
        "jobs",
        "tests",
        "environment.yml",
        "Makefile",
        "pyproject.toml",
        "README.md",
        ".ci/run",
    ):
        assert (REPO_ROOT / name).exists(), name
    for paper in PAPERS:
        assert (REPO_ROOT / "papers" / paper / "__init__.py").is_file(), paper


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_readme_names_the_paper_and_its_claim(paper):
    text = (REPO_ROOT / "papers" / paper / "README.md").read_text()
    title, arxiv = TITLES[paper]
    assert title.lower() in text.lower() and arxiv in text
    assert re.search(r"^#+ .*claim", text, re.IGNORECASE | re.MULTILINE)
    assert re.search(r"^#+ .*reproduc", text, re.IGNORECASE | re.MULTILINE)


def test_root_readme_gives_the_two_commands_and_the_table():
    text = (REPO_ROOT / "README.md").read_text()
    assert "make reproduce" in text and "make test" in text
    for paper in PAPERS:
        assert f"make reproduce-{paper}" in text


def _make(*args):
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_make_help_lists_every_target_once():
    out = _make("help").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert sorted(names) == sorted(TARGETS)


@pytest.mark.parametrize("paper", PAPERS)
def test_reproduce_target_runs_the_papers_pipeline(paper):
    """make reproduce-<paper> ARGS=... reaches jobs.pipeline; its dry run names every step's command."""
    import yaml

    proc = _make(f"reproduce-{paper}", "ARGS=dry_run=true")
    assert proc.returncode == 0, proc.stderr
    steps = yaml.safe_load((REPO_ROOT / "conf" / "pipeline" / f"{paper}.yaml").read_text())["steps"]
    commands = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("python -m")]
    assert len(commands) == len(steps) and f"python -m papers.{paper}.figures" in commands


def test_ci_script_runs_setup_lint_and_test_offline():
    text = (REPO_ROOT / ".ci" / "run").read_text()
    for needle in (
        "WANDB_MODE=offline",
        "HF_HUB_OFFLINE=1",
        "HF_DATASETS_OFFLINE=1",
        "make setup",
        "make lint",
        "make test",
    ):
        assert needle in text


# ---- the layering of issue 12: common never reaches into a paper; the bottom layer needs no hydra -------
def _imports(path) -> set[str]:
    """Every module an AST imports, at any depth (lazy imports inside functions included)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_common_never_imports_a_paper():
    offenders = {
        str(p.relative_to(REPO_ROOT)): sorted(n for n in _imports(p) if n.split(".")[0] == "papers")
        for p in (REPO_ROOT / "common").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


HYDRA_LAYER = {"common.config"}  # the one module of common/ that imports hydra at import time


def test_the_bottom_layer_imports_without_hydra_or_omegaconf():
    """As on the GPU nodes (no hydra, no omegaconf): every other module of common/ imports."""
    import pkgutil

    import common

    names = [
        m.name for m in pkgutil.walk_packages(common.__path__, prefix="common.") if m.name not in HYDRA_LAYER
    ]
    code = (
        "import importlib, sys\n"
        "sys.modules['hydra'] = None\nsys.modules['omegaconf'] = None\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


# ---- point 5: every command is named as its config ------------------------------------------------------
def _command_configs() -> list[str]:
    """conf/<paper>/<name>.yaml and conf/{common,jobs}/**.yaml: every config a command runs from."""
    from common.repo import CONF_DIR

    names = [f"{paper}/{p.stem}" for paper in PAPERS for p in (CONF_DIR / paper).glob("*.yaml")]
    for top in ("common", "jobs"):
        names += [
            str(p.relative_to(CONF_DIR).with_suffix(""))
            for p in (CONF_DIR / top).rglob("*.yaml")
            if "defaults" in p.read_text() and "/schema_" in p.read_text()
        ]
    return sorted(names)


@pytest.mark.parametrize("config_name", _command_configs())
def test_each_config_is_run_by_the_module_named_as_it(config_name):
    import importlib

    from common.schema import module_of

    module = importlib.import_module(module_of(config_name))
    if module.__name__ == "jobs.render":
        return  # the renderer reads conf/jobs/render.yaml through compose (its own keys only)
    assert getattr(module.main, "config_name", None) == config_name


def test_each_entry_point_has_its_config():
    """The other way round: no command whose config is missing or named otherwise."""
    import importlib
    import pkgutil

    import common
    import papers

    configs = set(_command_configs())
    for pkg in (common, papers):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            main = getattr(importlib.import_module(info.name), "main", None)
            name = getattr(main, "config_name", None)
            if name is not None:
                assert name in configs, f"{info.name} runs conf/{name}.yaml, which does not exist"


def test_the_default_results_path_is_spelt_once():
    """conf/paths/default.yaml is the one source of the run directories."""
    hits = subprocess.run(
        ["grep", "-rn", '"results"', "common", "papers", "jobs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    defaults = [h for h in hits if "REPO_ROOT" in h or '/ "results"' in h]
    assert defaults == [], defaults
    assert "results_dir: ${paths.root}/results" in (REPO_ROOT / "conf/paths/default.yaml").read_text()


def test_no_shell_script_parses_hydra_overrides():
    """Scripts forward "$@"; only Python (jobs/routing.py) decides which override goes where."""
    for folder in ("papers", "jobs", "scripts"):
        for script in (REPO_ROOT / folder).rglob("*.sh"):
            text = script.read_text()
            assert not re.search(r'case\s+"?\$\w+"?\s+in|\$\{\w+#\w+=\}|for \w+ in "\$@"', text), script
