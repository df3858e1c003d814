"""The repository's shape, READMEs and Makefile contract, as a newcomer meets them."""

import re
import subprocess

import pytest

from common.repo import PAPERS, REPO_ROOT

TITLES = {
    "batching": ("Mind the Memory Gap", "2503.08311"),
    "slm_energy": ("Towards Pareto Optimal Throughput in Small Language Model Serving", "2404.03353"),
    "frida": ("FRIDA", "2410.05020"),
    "mpt_lml": ("On Masked Pre-training and the Marginal Likelihood", "2306.00520"),
}
TARGETS = ["help", "setup", "setup-vllm", "test", "test-all", "lint", "reproduce", "gpu-check",
           "clean", "reproduce-<paper>", "figures-<paper>", "jobs-<paper>", "report-<paper>"]


def test_top_level_layout():
    for name in ("papers", "common", "conf", "jobs", "tests", "environment.yml", "Makefile",
                 "pyproject.toml", "README.md", ".ci/run"):
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
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_make_help_lists_every_target_once():
    out = _make("help").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert sorted(names) == sorted(TARGETS)


def test_unbuilt_targets_say_so_and_fail():
    for paper in PAPERS:
        if not (REPO_ROOT / "papers" / paper / "reproduce.sh").exists():
            proc = _make(f"reproduce-{paper}")
            assert proc.returncode != 0 and "not built yet" in proc.stdout
    if not (REPO_ROOT / "jobs" / "render.py").exists():
        proc = _make("jobs-frida")
        assert proc.returncode != 0 and "not built yet" in proc.stdout


def test_ci_script_runs_setup_lint_and_test_offline():
    text = (REPO_ROOT / ".ci" / "run").read_text()
    for needle in ("WANDB_MODE=offline", "HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1",
                   "make setup", "make lint", "make test"):
        assert needle in text
