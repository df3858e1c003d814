"""Suite-wide settings (offline services, nothing written outside tmp dirs) and the demo experiment:
A throw-away experiment ('demo/exp') composed from a copy of the real shared conf groups."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")


import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from common.repo import CONF_DIR

DEMO_YAML = """\
# @package _global_
defaults:
  - /schema_demo_exp
  - /base
  - _self_
  - optional /demo/scale@_global_: exp_${scale}
paper: demo
experiment: exp
n: 3  # paper: 30
warmup_tokens: 4
engine_options: {}
fail_from: -1
"""

DEMO_APP = """\
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import BadInput

from common.app import entrypoint
from common.config import register_schema
from common.schema import RunConfig, spec


@dataclass
class Exp(RunConfig):
    n: int = spec(1, free="checked by the task: bad input found late")
    warmup_tokens: int = spec(4, ge=0)
    engine_options: dict[str, Any] = spec(factory=dict, free="passed through")
    fail_from: int = spec(-1, ge=-1)  # cells i >= fail_from raise (-1: none)


register_schema("demo/exp", Exp)


@entrypoint("demo/exp", config_dir=Path(__file__).parent / "conf", x_axis="i")
def main(cfg, run):
    if cfg.n < 0:
        raise BadInput(f"n must be >= 0, got {cfg.n}")
    def cell(i):
        if 0 <= cfg.fail_from <= i:
            raise RuntimeError(f"cell {i} fails on purpose")
        return {"square": i * i, "draw": random.Random(cfg.seed * 1000 + i).random()}

    for i in range(cfg.n):
        run.results.run_cell({"i": i, "seed": cfg.seed, "engine_options": dict(cfg.engine_options)},
                             lambda i=i: cell(i))
    run.logger.log({"n": cfg.n}, step=0)


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def demo_app(tmp_path: Path) -> Path:
    """A directory with conf/ (shared groups + demo/exp.yaml) and app.py using entrypoint."""
    root = tmp_path / "demo_app"
    conf = root / "conf"
    for item in CONF_DIR.iterdir():
        if item.is_dir() and item.name in {"paths", "logger", "scale"}:
            shutil.copytree(item, conf / item.name)
        elif item.name == "base.yaml":
            conf.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, conf / item.name)
    (conf / "demo" / "scale").mkdir(parents=True)
    (conf / "demo" / "exp.yaml").write_text(DEMO_YAML)
    (conf / "demo" / "scale" / "exp_paper.yaml").write_text("n: 30\n")
    (root / "app.py").write_text(textwrap.dedent(DEMO_APP))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("app", None)
