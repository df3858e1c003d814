"""Run the FRIDA experiment grid through the result store (resumable; a failed cell is recorded and
the rest goes on). Federations run on the in-process runtime (local_grid.py), `workers` at a time.

    python -m papers.frida.grid [scale=paper] [workers=1] [seeds=[0,1]] ...

The default is the CPU-sized grid of `make reproduce-frida` (digits); `python -m papers.frida.research`
is the same command on full MNIST and Fashion-MNIST with 100 sampled clients, and
`python -m papers.frida.shakespeare` on Shakespeare's speakers. Each cell is claimed in the result
store before it is computed (also when `workers` > 1: the parent claims, then submits), so two runs on
one store never compute a cell twice; the workers die with the grid, even when it is SIGKILLed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from common.app import entrypoint
from common.processes import die_with_parent
from papers.frida.cells import cell_federation, grid_cells, run_cell
from papers.frida.config import DETECTORS, GridConfig, federation_from_cfg, federation_to_json

log = logging.getLogger(__name__)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def run_cells(run, jobs: list[tuple[dict, str]], workers: int, label: str) -> int:
    """Compute each (cell, federation JSON) not finished yet; returns how many failed. A cell is
    claimed before it is computed: with one worker by `ResultStore.run_cell`, with several by the
    parent before it submits the cell, and released once its row is written."""
    failed = 0
    with _progress() as progress:
        task = progress.add_task(label, total=len(jobs))
        if workers == 1:
            for cell, fed_json in jobs:
                row = run.results.run_cell(cell, lambda f=fed_json: run_cell(f))
                failed += row is not None and row["status"] != "ok"
                progress.advance(task)
            return failed
        queue = list(jobs)
        running: dict = {}  # future -> (cell, its claim's context manager)
        # spawn, not fork: torch and Flower hold threads that a fork would copy half-alive
        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent
        ) as pool:
            try:
                while queue or running:
                    while queue and len(running) < workers:
                        cell, fed_json = queue.pop(0)
                        claim = run.results.claim(cell)
                        if not claim.__enter__():
                            claim.__exit__(None, None, None)
                            run.results.claimed_elsewhere.append(dict(cell))
                            progress.advance(task)
                            continue
                        if run.results.done(cell):  # finished elsewhere between listing and claiming
                            claim.__exit__(None, None, None)
                            progress.advance(task)
                            continue
                        running[pool.submit(run_cell, fed_json)] = (cell, claim)
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        cell, claim = running.pop(fut)
                        try:
                            metrics = fut.result()
                            run.results.append(cell, "ok", metrics, duration_s=metrics["wall_s"])
                        except Exception as err:  # noqa: BLE001 - a failed cell is data; the grid goes on
                            failed += 1
                            run.results.append(
                                cell,
                                "failed",
                                error="".join(traceback.format_exception_only(type(err), err)).strip(),
                            )
                        finally:
                            claim.__exit__(None, None, None)
                        progress.advance(task)
            finally:
                for _cell, claim in running.values():
                    claim.__exit__(None, None, None)
    return failed


def run_grid(cfg, run) -> dict:
    """The grid task shared by grid.py, research.py and shakespeare.py (they differ in config only)."""
    base = federation_from_cfg(cfg.fed)
    cells = grid_cells(
        base,
        cfg.free_riders,
        cfg.partitions,
        cfg.num_free_riders,
        cfg.seeds,
        cfg.mitigation_partitions,
        cfg.mitigation_num_free_riders,
        cfg.datasets,
    )
    feds = [(c, federation_to_json(cell_federation(base, c))) for c in cells]  # BadInput before any cell
    jobs = [(c, f) for c, f in feds if not run.results.done(c)]
    log.info(
        "FRIDA %s: %d cells (%d to run, %d done) of %d clients (%d sampled per round) x %d rounds on "
        "%s, %d worker(s), in-process runtime",
        cfg.experiment,
        len(cells),
        len(jobs),
        len(cells) - len(jobs),
        base.num_clients,
        base.sampled,
        base.rounds,
        run.info["hardware"]["device"],
        cfg.workers,
    )
    start = time.perf_counter()
    failed = run_cells(run, jobs, cfg.workers, f"frida {cfg.experiment}")
    elapsed = time.perf_counter() - start
    table = run.results.load()
    keep = [
        c
        for c in table.columns
        if c.split(".")[0]
        in ("auc", "dataset", "free_rider", "partition", "num_free_riders", "seed", "mitigate")
    ]
    run.logger.table("grid", table[keep] if len(table) else table)
    run.logger.log(
        {"grid/cells": len(cells), "grid/ran": len(jobs), "grid/failed": failed, "grid/s": elapsed}
    )
    log.info(
        "%s done in %.1f s: %d cells ran, %d failed; results in %s",
        cfg.experiment,
        elapsed,
        len(jobs),
        failed,
        run.results.path,
    )
    return {"detectors": list(DETECTORS), "elapsed_s": elapsed}


@entrypoint("frida/grid", schema=GridConfig, x_axis="num_free_riders")
def main(cfg, run):
    return run_grid(cfg, run)


if __name__ == "__main__":
    main()
