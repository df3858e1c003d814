"""Run the FRIDA experiment grid through the result store (resumable; a failed cell is recorded and
the rest goes on). Federations run on the in-process runtime (local_grid.py), `workers` at a time.

    python -m papers.frida.grid [scale=paper] [workers=1] [seeds=[0,1]] ...
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.app import entrypoint
from common.errors import BadInput
from papers.frida.config import DETECTORS, federation_from_cfg, federation_to_json
from papers.frida.cells import cell_federation, grid_cells, run_cell

log = logging.getLogger(__name__)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


@entrypoint("frida/grid")
def main(cfg, run):
    base = federation_from_cfg(cfg.fed)
    if cfg.workers < 1:
        raise BadInput(f"workers={cfg.workers} must be >= 1")
    cells = grid_cells(base, cfg.free_riders, cfg.partitions, cfg.num_free_riders, cfg.seeds,
                       cfg.mitigation_partitions, cfg.mitigation_num_free_riders)
    jobs = {json.dumps(c, sort_keys=True): federation_to_json(cell_federation(base, c))
            for c in cells if not run.results.done(c)}
    log.info("FRIDA grid: %d cells (%d to run, %d done) of %d clients x %d rounds on %s, %d worker(s), "
             "in-process runtime", len(cells), len(jobs), len(cells) - len(jobs), base.num_clients,
             base.rounds, run.info["hardware"]["device"], cfg.workers)
    start = time.perf_counter()
    failed = 0
    with _progress() as progress:
        task = progress.add_task("frida grid", total=len(jobs))
        if cfg.workers == 1:
            for key, fed_json in jobs.items():
                row = run.results.run_cell(json.loads(key), lambda f=fed_json: run_cell(f))
                failed += row["status"] != "ok"
                progress.advance(task)
        else:
            # spawn, not fork: torch and Flower hold threads that a fork would copy half-alive
            with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(run_cell, fed_json): key for key, fed_json in jobs.items()}
                for fut in as_completed(futures):
                    cell = json.loads(futures[fut])
                    try:
                        metrics = fut.result()
                        run.results.append(cell, "ok", metrics, duration_s=metrics["wall_s"])
                    except Exception as err:  # noqa: BLE001 - a failed cell is data; the grid goes on
                        failed += 1
                        run.results.append(cell, "failed", error="".join(
                            traceback.format_exception_only(type(err), err)).strip())
                    progress.advance(task)
    elapsed = time.perf_counter() - start
    table = run.results.load()
    keep = [c for c in table.columns if c.split(".")[0] in ("auc", "free_rider", "partition",
                                                             "num_free_riders", "seed", "mitigate")]
    run.logger.table("grid", table[keep] if len(table) else table)
    run.logger.log({"cells": len(cells), "ran": len(jobs), "failed": failed, "grid_s": elapsed})
    log.info("grid done in %.1f s: %d cells ran, %d failed; results in %s", elapsed, len(jobs), failed,
             run.results.path)
    return {"detectors": list(DETECTORS), "elapsed_s": elapsed}


if __name__ == "__main__":
    main()
