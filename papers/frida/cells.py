"""The experiment grid: free-rider kinds x partitions x numbers of free-riders x seeds, plus the
mitigation runs and their free-rider-free references. Every detector scores every run, so detectors
are not a grid axis: they are columns of each cell's metrics.

A cell's key holds its own parameters and a digest of the rest of the federation config, so changing
any setting (rounds, learning rate, ...) re-runs the cells instead of reusing stale results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, replace

from common.errors import BadInput
from papers.frida.config import FederationConfig, validate

AXES = ("free_rider", "partition", "num_free_riders", "seed", "mitigate")


def partition_fields(label: str) -> dict:
    """'iid' or a Dirichlet alpha written as a number ('0.1')."""
    if label == "iid":
        return {"partition": "iid"}
    try:
        alpha = float(label)
    except ValueError:
        alpha = -1.0
    if not alpha > 0:
        raise BadInput(f"partitions entry {label!r} must be 'iid' or a Dirichlet alpha > 0 such as '0.1'")
    return {"partition": "dirichlet", "alpha": alpha}


def base_digest(fed: FederationConfig) -> str:
    axes = {"free_rider", "partition", "alpha", "num_free_riders", "seed", "mitigate", "data_dir"}
    rest = {k: v for k, v in asdict(fed).items() if k not in axes}
    return hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:10]


def grid_cells(base: FederationConfig, free_riders, partitions, num_free_riders, seeds,
               mitigation_partitions=(), mitigation_num_free_riders=()) -> list[dict]:
    common = {"dataset": base.dataset, "model": base.model, "num_clients": base.num_clients,
              "rounds": base.rounds, "base": base_digest(base)}
    cells = []

    def add(free_rider, partition, n, seed, mitigate):
        cells.append({"free_rider": free_rider, "partition": str(partition), "num_free_riders": int(n),
                      "seed": int(seed), "mitigate": bool(mitigate), **common})

    for fr in free_riders:
        for part in partitions:
            for n in num_free_riders:
                for seed in seeds:
                    add(fr, part, n, seed, False)
    for part in mitigation_partitions:
        for seed in seeds:
            add("none", part, 0, seed, False)  # the accuracy a federation without free-riders reaches
            for fr in free_riders:
                for n in mitigation_num_free_riders:
                    add(fr, part, n, seed, True)
    return cells


def cell_federation(base: FederationConfig, cell: dict) -> FederationConfig:
    return validate(replace(base, free_rider=cell["free_rider"], num_free_riders=cell["num_free_riders"],
                            seed=cell["seed"], mitigate=cell["mitigate"],
                            **partition_fields(cell["partition"])))


def run_cell(fed_json: str) -> dict:
    """One federation on the in-process runtime; returns its summary metrics. Runs in worker
    processes too, so it takes the config as JSON and sets up its own quiet logging."""
    import torch

    from papers.frida.client_app import make_client_app
    from papers.frida.config import federation_from_dict
    from papers.frida.local_grid import InProcessGrid
    from papers.frida.metrics import summarize
    from papers.frida.server_app import run_federation

    start = time.perf_counter()
    torch.set_num_threads(1)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    fed = federation_from_dict(json.loads(fed_json))
    result = run_federation(InProcessGrid(make_client_app(fed), fed.num_clients), fed)
    return {**summarize(result), "wall_s": time.perf_counter() - start}
