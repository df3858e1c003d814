"""Benchmark: what the detectors and the canary protocol cost per round, against what the clients'
own training costs.

    python -m papers.frida.bench [repeats=3] [canary_modes=[none,every_batch]] [fed.num_clients=20] ...

Runs the federation `repeats` times per canary protocol (after one untimed warm-up round; the
protocols interleaved) on the in-process runtime (clients train one
after another in this process, so "client training" is the sum of the sampled clients' local training
times; in a real federation they train in parallel). `none` is the same federation without a canary
(and so without the membership detectors): the clients' training time with a protocol over that time
is the protocol's measured extra client compute, shown beside its count of extra sample-gradients.
Writes one result row per (protocol, repeat) and logs two tables: the canary's cost per protocol, and
each detector's seconds per round against the clients' training under fed.canary_mode.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from common.app import entrypoint
from papers.frida.cells import base_digest, run_cell
from papers.frida.config import BenchConfig, federation_from_cfg, federation_to_json

log = logging.getLogger(__name__)
MEMBERSHIP = ("mia_loss", "mia_grad")


def mode_federation(fed, mode: str):
    """The base federation under one canary protocol; `none`: no canary, no membership detectors."""
    if mode != "none":
        return replace(fed, canary_mode=mode)
    vote = [d for d in fed.vote if d not in MEMBERSHIP]
    detectors = [d for d in fed.detectors if d not in MEMBERSHIP and (d != "vote" or vote)]
    return replace(
        fed,
        canary_size=0,
        canary_per_batch=0,
        detectors=detectors,
        vote=vote or fed.vote,
        mitigate_by=fed.mitigate_by if fed.mitigate_by in detectors else detectors[0],
    )


def canary_cost_table(rows, modes: list[str]):
    """Per protocol: clients' training seconds per round, that over the no-canary run, and the canary's
    share of the sample-gradients the clients computed."""
    import pandas as pd

    none = rows[rows["canary_mode"] == "none"]["client_train_s"].mean() if "none" in modes else float("nan")
    records = []
    for mode in modes:
        g = rows[rows["canary_mode"] == mode]
        train = g["client_train_s"].mean()
        records.append(
            {
                "canary_mode": mode,
                "client_train_s_per_round": train,
                "ratio_to_no_canary": train / none,
                "extra_sample_gradients": g["canary_grads"].mean() / g["own_grads"].mean(),
                "detect_s_per_round": g["detect_s"].mean(),
            }
        )
    return pd.DataFrame.from_records(records)


def overhead_table(rows, detectors: list[str]):
    import pandas as pd

    train = rows["client_train_s"].mean()
    records = [
        {
            "detector": d,
            "seconds_per_round": rows[f"detect_s.{d}"].mean(),
            "ratio_to_training": rows[f"detect_s.{d}"].mean() / train,
        }
        for d in detectors
    ]
    records.append(
        {
            "detector": "all detectors",
            "seconds_per_round": rows["detect_s"].mean(),
            "ratio_to_training": rows["detect_s"].mean() / train,
        }
    )
    records.append(
        {
            "detector": "client training (sum over clients)",
            "seconds_per_round": train,
            "ratio_to_training": 1.0,
        }
    )
    return pd.DataFrame.from_records(records)


@entrypoint("frida/bench", schema=BenchConfig)
def main(cfg, run):
    fed = federation_from_cfg(cfg.fed)
    device = run.info["hardware"]["device"]
    modes = list(dict.fromkeys(cfg.canary_modes))
    log.info(
        "FRIDA overhead: %d repeats of %d rounds x canary protocols %s, %d clients (%d per round), %s "
        "on %s (in-process runtime)",
        cfg.repeats,
        fed.rounds,
        modes,
        fed.num_clients,
        fed.sampled,
        fed.model,
        device,
    )
    digest = base_digest(fed, axes=("canary_mode",))
    warm = False
    # protocols interleaved within each repeat, so a change of the machine's load touches them alike
    for repeat in range(cfg.repeats):
        for mode in modes:
            mfed = mode_federation(fed, mode)
            cell = {
                "repeat": repeat,
                "device": device,
                "base": digest,
                "canary_mode": mode,
                "free_rider": fed.free_rider,
                "num_clients": fed.num_clients,
                "rounds": fed.rounds,
                "model": fed.model,
                "dataset": fed.dataset,
            }
            if not warm and not run.results.done(cell):  # imports, data split, first-call compilation
                run_cell(federation_to_json(replace(mfed, rounds=1)))
                warm = True
            run.results.run_cell(cell, lambda f=mfed: run_cell(federation_to_json(f)))
    rows = run.results.load()
    rows = rows[(rows["base"] == digest) & (rows["device"] == device)]
    cost = canary_cost_table(rows, modes)
    own = rows[rows["canary_mode"] == (fed.canary_mode if fed.canary_mode in modes else modes[0])]
    table = overhead_table(own, [d for d in fed.detectors if f"detect_s.{d}" in own])
    run.logger.table("canary_cost", cost)
    run.logger.table("overhead", table)
    log.info("canary protocols on %s:\n%s", device, cost.to_string(index=False, float_format="%.4f"))
    log.info(
        "per-round detector cost on %s (%s):\n%s",
        device,
        fed.canary_mode,
        table.to_string(index=False, float_format="%.4f"),
    )
    return {"canary_cost": cost.to_dict(orient="records"), "overhead": table.to_dict(orient="records")}


if __name__ == "__main__":
    main()
