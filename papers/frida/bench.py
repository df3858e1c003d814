"""Benchmark: what the detectors cost per round, against what the round's training costs.

    python -m papers.frida.bench [repeats=3] [fed.num_clients=20] ...

Runs the federation `repeats` times on the in-process runtime (clients train one after another in
this process, so "round training" is the sum of the clients' local training times: on a real
federation they train in parallel, and the detectors' share of the server's time is what matters).
Writes one result row per repeat and logs a table: seconds per round for each detector, the
round's total client training time, and their ratio.
"""

from __future__ import annotations

import logging

import pandas as pd

from common.app import entrypoint
from common.errors import BadInput
from papers.frida.config import federation_from_cfg, federation_to_json
from papers.frida.cells import base_digest, run_cell

log = logging.getLogger(__name__)


def overhead_table(rows: pd.DataFrame, detectors: list[str]) -> pd.DataFrame:
    train = rows["client_train_s"].mean()
    records = [{"detector": d, "seconds_per_round": rows[f"detect_s.{d}"].mean(),
                "ratio_to_training": rows[f"detect_s.{d}"].mean() / train} for d in detectors]
    records.append({"detector": "all detectors", "seconds_per_round": rows["detect_s"].mean(),
                    "ratio_to_training": rows["detect_s"].mean() / train})
    records.append({"detector": "client training (sum over clients)", "seconds_per_round": train,
                    "ratio_to_training": 1.0})
    return pd.DataFrame.from_records(records)


@entrypoint("frida/bench")
def main(cfg, run):
    if cfg.repeats < 1:
        raise BadInput(f"repeats={cfg.repeats} must be >= 1")
    fed = federation_from_cfg(cfg.fed)
    device = run.info["hardware"]["device"]
    log.info("FRIDA detector overhead: %d repeats of %d rounds, %d clients, %s on %s (in-process runtime)",
             cfg.repeats, fed.rounds, fed.num_clients, fed.model, device)
    for repeat in range(cfg.repeats):
        cell = {"repeat": repeat, "device": device, "base": base_digest(fed), "free_rider": fed.free_rider,
                "num_clients": fed.num_clients, "rounds": fed.rounds, "model": fed.model}
        run.results.run_cell(cell, lambda: run_cell(federation_to_json(fed)))
    rows = run.results.load()
    rows = rows[(rows["base"] == base_digest(fed)) & (rows["device"] == device)]
    table = overhead_table(rows, [d for d in fed.detectors])
    run.logger.table("overhead", table)
    log.info("per-round cost on %s:\n%s", device, table.to_string(index=False, float_format="%.4f"))
    return table.to_dict(orient="records")


if __name__ == "__main__":
    main()
