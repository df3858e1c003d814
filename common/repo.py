"""Where the checkout is and what it holds: the repository root, its conf/ tree and the papers.

Directories the runs write (results, figures, data) are not here: `conf/paths/default.yaml` is their
one source, read through the config (or `common.settings` where hydra is absent).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
PAPERS = ("batching", "slm_energy", "frida", "mpt_lml")
