"""Every module imports in the main environment, and none pulls in vLLM (it lives in .venv-vllm)."""

import importlib
import pkgutil
import subprocess
import sys

import common
import papers


def _modules():
    for pkg in (common, papers):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            if not info.name.endswith("__main__"):
                yield info.name


def test_every_module_imports_without_vllm():
    names = list(_modules())
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'vllm' not in sys.modules, 'vllm imported at import time'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_module_walk_sees_the_packages():
    assert "common.config" in set(_modules())
    importlib.import_module("common.results")
