"""pyproject pins what the code imports and nothing else; test tools sit in the dev extra; the vLLM env
stays apart; `make setup`'s pinned uv is one that flwr accepts."""

import ast
import importlib.metadata as md
import re
import sys
import tomllib

from packaging.requirements import Requirement

from common.repo import REPO_ROOT

# Pinned though never imported: what each is needed for at run time (the comment beside its pin says so).
RUNTIME_ONLY = {
    "accelerate": "transformers refuses to load a GGUF file without it",
    "gguf": "transformers reads the SmolLM2 GGUF weights with it",
    "hydra-submitit-launcher": "the hydra/launcher=slurm_* plugin",
}
ELSEWHERE = {"vllm"}  # imported only inside .venv-vllm (requirements-vllm.txt)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _reqs(lines) -> dict[str, Requirement]:
    return {_norm(r.name): r for r in map(Requirement, lines)}


def _imports(*dirs: str) -> set[str]:
    """Top-level names of every absolute import, at module level or inside functions."""
    names = set()
    for d in dirs:
        for path in (REPO_ROOT / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    local = {"common", "papers", "jobs", "tests", "conftest", "browser", "wandb_records", "__future__"}
    return {n for n in names if n not in local and n not in sys.stdlib_module_names}


def _distributions(import_names: set[str]) -> dict[str, str]:
    """import name -> distribution that provides it in this environment."""
    provided = md.packages_distributions()
    return {n: _norm(provided[n][0]) for n in import_names if n in provided}


def test_every_pin_is_exact_and_torch_is_the_cpu_wheel_release():
    project = _pyproject()
    for line in project["dependencies"] + project["optional-dependencies"]["dev"]:
        (spec,) = Requirement(line).specifier
        assert spec.operator == "==", line
    assert "torch==2.13.0" in project["dependencies"]


def test_test_and_lint_tools_are_in_the_dev_extra_only():
    project = _pyproject()
    runtime, dev = _reqs(project["dependencies"]), _reqs(project["optional-dependencies"]["dev"])
    assert {"pytest", "ruff"} <= set(dev)
    assert not {"pytest", "ruff", "hypothesis"} & set(runtime)


def test_no_pin_of_a_package_the_code_never_imports():
    runtime = set(_reqs(_pyproject()["dependencies"]))
    imported = set(_distributions(_imports("common", "papers", "jobs")).values())
    unused = runtime - imported - set(RUNTIME_ONLY)
    assert not unused, f"pinned but never imported (drop them, or say why in RUNTIME_ONLY): {sorted(unused)}"
    assert not set(RUNTIME_ONLY) - runtime, "RUNTIME_ONLY names a package that is no longer pinned"


def test_every_import_is_declared():
    project = _pyproject()
    runtime = set(_reqs(project["dependencies"]))
    dev = set(_reqs(project["optional-dependencies"]["dev"]))
    code = _imports("common", "papers", "jobs") - ELSEWHERE
    tests = _imports("tests") - ELSEWHERE - code
    assert not code - set(_distributions(code)), "imported but not installed here"
    missing = {n: d for n, d in _distributions(code).items() if d not in runtime}
    assert not missing, f"the code imports these; pin them in pyproject's dependencies: {missing}"
    missing = {n: d for n, d in _distributions(tests).items() if d not in runtime | dev}
    assert not missing, f"the tests import these; pin them in the dev extra: {missing}"


def test_vllm_env_pins_vllm_and_leaves_torch_to_it():
    text = (REPO_ROOT / "requirements-vllm.txt").read_text()
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    reqs = _reqs([ln for ln in lines if ln])
    assert str(reqs["vllm"].specifier).startswith("=="), "a bare vllm would float with its own torch"
    assert "torch" not in reqs
    assert all(str(r.specifier).startswith("==") for r in reqs.values())


def test_the_pinned_uv_is_one_flwr_accepts():
    """flwr requires uv itself: `make setup` installs uv first, and the resolver must keep it."""
    (version,) = re.findall(r"^UV_VERSION\s*:?=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(), re.M)
    flwr_pin = _reqs(_pyproject()["dependencies"])["flwr"]
    (installed,) = [Requirement(r) for r in md.requires("flwr") or [] if _norm(Requirement(r).name) == "uv"]
    assert md.version("flwr") in flwr_pin.specifier
    assert installed.specifier.contains(version), (version, str(installed.specifier))
