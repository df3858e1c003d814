"""The experiments' cells: one federation each, identified by its parameters.

- the grid (grid.py, research.py, shakespeare.py): dataset x free-rider kind x partition x number of
  free-riders x seed, plus the mitigation runs and their free-rider-free references. Every detector
  scores every run, so detectors are not a grid axis: they are columns of each cell's metrics.
- the canary sweep (canary.py): one factor of the canary protocol changed at a time around the base
  federation, for each free-rider kind, partition and seed.

A cell's key holds its own parameters and a digest of the rest of the federation config, so changing
any setting (rounds, learning rate, ...) re-runs the cells instead of reusing stale results.
`run_cell` runs one federation on the in-process runtime (in a worker process, too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import MISSING, asdict, fields, replace

from common.errors import BadInput
from papers.frida.config import FederationConfig

AXES = ("dataset", "free_rider", "partition", "num_free_riders", "seed", "mitigate")
CANARY_FACTORS = {
    "canary_modes": "canary_mode",
    "canary_sizes": "canary_size",
    "canary_per_batch": "canary_per_batch",
    "local_epochs": "local_epochs",
    "lrs": "lr",
}


def partition_fields(label: str) -> dict:
    """'iid', 'natural' or a Dirichlet alpha written as a number ('0.1')."""
    if label in ("iid", "natural"):
        return {"partition": label}
    try:
        alpha = float(label)
    except ValueError:
        alpha = -1.0
    if not alpha > 0:
        raise BadInput(
            f"partitions: entry {label!r} must be 'iid', 'natural' or a Dirichlet alpha > 0 such as '0.1'"
        )
    return {"partition": "dirichlet", "alpha": alpha}


def _defaults() -> dict:
    return {
        f.name: f.default_factory() if f.default_factory is not MISSING else f.default
        for f in fields(FederationConfig)
    }


def base_digest(
    fed: FederationConfig,
    axes=("dataset", "free_rider", "partition", "alpha", "num_free_riders", "seed", "mitigate"),
) -> str:
    """A digest of the settings that are no axis of the cell. Settings at their schema default are
    left out, so adding a setting (with a default) keeps the stores of earlier runs valid."""
    defaults = _defaults()
    rest = {k: v for k, v in asdict(fed).items() if k not in set(axes) | {"data_dir"} and v != defaults[k]}
    return hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:10]


def grid_cells(
    base: FederationConfig,
    free_riders,
    partitions,
    num_free_riders,
    seeds,
    mitigation_partitions=(),
    mitigation_num_free_riders=(),
    datasets=(),
) -> list[dict]:
    common = {
        "model": base.model,
        "num_clients": base.num_clients,
        "fraction_train": base.fraction_train,
        "rounds": base.rounds,
        "base": base_digest(base),
    }
    cells = []

    def add(dataset, free_rider, partition, n, seed, mitigate):
        cells.append(
            {
                "dataset": dataset,
                "free_rider": free_rider,
                "partition": str(partition),
                "num_free_riders": int(n),
                "seed": int(seed),
                "mitigate": bool(mitigate),
                **common,
            }
        )

    # seeds outermost, so a grid cut short has every setting for its first seeds; cells sharing their
    # data (seed, dataset, partition) come one after another, so a worker builds each split once
    for seed in seeds:
        for dataset in list(datasets) or [base.dataset]:
            for part in partitions:
                for fr in free_riders:
                    for n in num_free_riders:
                        add(dataset, fr, part, n, seed, False)
            for part in mitigation_partitions:
                add(dataset, "none", part, 0, seed, False)  # the accuracy without free-riders
                for fr in free_riders:
                    for n in mitigation_num_free_riders:
                        add(dataset, fr, part, n, seed, True)
    return cells


def cell_federation(base: FederationConfig, cell: dict) -> FederationConfig:
    """The federation of a cell, checked (BadInput names what is wrong)."""
    fed = replace(
        base,
        dataset=cell.get("dataset", base.dataset),
        free_rider=cell["free_rider"],
        num_free_riders=cell["num_free_riders"],
        seed=cell["seed"],
        mitigate=cell.get("mitigate", False),
        **partition_fields(cell["partition"]),
    )
    if "factor" in cell and cell["factor"] != "base":
        fed = replace(fed, **{CANARY_FACTORS[cell["factor"]]: cell["value"]})
    fed.check()
    return fed


def canary_cells(
    base: FederationConfig, sweep: dict[str, list], free_riders, partitions, seeds
) -> list[dict]:
    """One factor of the canary protocol at a time: the base federation, then each value of each
    factor (a value equal to the base's is the base cell itself and is not repeated)."""
    common = {
        "dataset": base.dataset,
        "model": base.model,
        "num_clients": base.num_clients,
        "fraction_train": base.fraction_train,
        "rounds": base.rounds,
        "num_free_riders": base.num_free_riders,
        "base": base_digest(base, axes=("free_rider", "partition", "alpha", "seed")),
    }
    variants = [("base", None)]
    for factor, values in sweep.items():
        field_name = CANARY_FACTORS[factor]
        variants += [(factor, v) for v in values if v != getattr(base, field_name)]
    return [
        {
            "factor": factor,
            "value": value,
            "free_rider": fr,
            "partition": str(part),
            "seed": int(seed),
            **common,
        }
        for part in partitions
        for seed in seeds
        for factor, value in variants
        for fr in free_riders
    ]


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
    logging.getLogger("papers.frida.strategy").setLevel(logging.WARNING)  # bad replies, not every round
    fed = federation_from_dict(json.loads(fed_json))
    result = run_federation(InProcessGrid(make_client_app(fed), fed.num_clients), fed)
    return {**summarize(result), "wall_s": time.perf_counter() - start}
