"""environment.yml must install this same project: python pin within pyproject's, no second list."""

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from common.repo import REPO_ROOT


def _env():
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _pip_section(env):
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return pip


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_python_pin_is_inside_pyproject_range():
    from packaging.specifiers import SpecifierSet

    (python,) = [d for d in _env()["dependencies"] if isinstance(d, str) and d.startswith("python")]
    version = python.split("=", 1)[1]
    assert version + ".0" in SpecifierSet(_pyproject()["project"]["requires-python"])


def test_pip_section_installs_the_project_and_only_pyproject_packages():
    pip = _pip_section(_env())
    assert "-e ." in pip or "." in pip
    declared = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    extra = [r for r in pip if r not in ("-e .", ".")]
    assert all(_name(r) in declared for r in extra), extra
    assert "torch==2.13.0" in _pyproject()["project"]["dependencies"]
    assert not any(_name(r) == "vllm" for r in _pyproject()["project"]["dependencies"])


def test_pip_section_resolves():
    pip = _pip_section(_env())
    args = [a for r in pip for a in r.split()]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "Could not fetch URL" in proc.stderr:
        pytest.skip("package index unreachable")
    assert proc.returncode == 0, proc.stderr[-2000:]
