"""The canary protocol as a measured variable: how FRIDA's detection depends on how honest clients
train on the server's canary, one factor at a time around the base federation.

    python -m papers.frida.canary [scale=paper] [workers=2] ...

Factors: the protocol (a share of every batch, once per epoch, once per round), the canary's size,
canary samples per batch, local epochs and learning rate. Each changes alone; every other setting is
the base federation's (conf/frida/fed/default.yaml). Every detector scores every cell, so the sweep
also shows what the protocol does to the baselines (nothing, unless it changes the training), and the
clients' extra sample-gradients per protocol are recorded next to the detection numbers.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.frida.cells import CANARY_FACTORS, canary_cells, cell_federation
from papers.frida.config import CanaryConfig, federation_from_cfg, federation_to_json
from papers.frida.grid import run_cells

log = logging.getLogger(__name__)


@entrypoint("frida/canary", schema=CanaryConfig)
def main(cfg, run):
    base = federation_from_cfg(cfg.fed)
    sweep = {k: list(getattr(cfg, k)) for k in CANARY_FACTORS}
    cells = canary_cells(base, sweep, cfg.free_riders, cfg.partitions, cfg.seeds)
    feds = [(c, federation_to_json(cell_federation(base, c))) for c in cells]
    jobs = [(c, f) for c, f in feds if not run.results.done(c)]
    log.info(
        "FRIDA canary sweep: %d cells (%d to run) on %s, base protocol %s (%d samples), %d worker(s)",
        len(cells),
        len(jobs),
        base.dataset,
        base.canary_mode,
        base.canary_size,
        cfg.workers,
    )
    start = time.perf_counter()
    failed = run_cells(run, jobs, cfg.workers, "frida canary")
    elapsed = time.perf_counter() - start
    run.logger.log(
        {"grid/cells": len(cells), "grid/ran": len(jobs), "grid/failed": failed, "grid/s": elapsed}
    )
    return {"cells": len(cells), "failed": failed}


if __name__ == "__main__":
    main()
