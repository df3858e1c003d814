"""One federation with every detector watching, under the runtime you choose:

    python -m papers.frida.detect                      # in-process (fast; the grid's runtime)
    python -m papers.frida.detect runtime=simulation   # Flower simulation runtime (Ray)
    python -m papers.frida.detect runtime=deployment   # 1 SuperLink + N SuperNodes on 127.0.0.1

The ServerApp's per-round records land in the run dir (rounds.jsonl, clients.jsonl); the summary
(ROC-AUC and flag metrics per detector, accuracy, timing) goes to the result store, keyed by runtime
and federation config.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from common.app import entrypoint
from papers.frida.config import DetectConfig, federation_from_cfg

log = logging.getLogger(__name__)


def run_federation_on(runtime: str, fed, out_dir, cfg, on_round=None):
    """The same ServerApp/ClientApp on one of three runtimes; records end up under out_dir.
    `on_round(summary, rows)` sees each round as it ends (in-process and simulation: the ServerApp
    runs in this process; deployment: read back at the end)."""
    from papers.frida.server_app import JsonlSink, read_result  # flwr and torch: imported where work starts

    if runtime == "inprocess":
        from papers.frida.client_app import make_client_app
        from papers.frida.local_grid import InProcessGrid
        from papers.frida.server_app import run_federation

        sink = JsonlSink(out_dir)

        def both(summary, rows):
            sink(summary, rows)
            if on_round is not None:
                on_round(summary, rows)

        run_federation(InProcessGrid(make_client_app(fed), fed.num_clients), fed, on_round=both)
        sink.finish()
        return read_result(out_dir)
    if runtime == "simulation":
        from papers.frida.simulation import run_in_simulation

        return run_in_simulation(
            fed, out_dir, num_cpus=cfg.sim_cpus, client_cpus=cfg.client_cpus, on_round=on_round
        )
    from papers.frida.deployment import run_in_deployment

    result = run_in_deployment(fed, out_dir / "deployment", timeout=cfg.deploy_timeout_s)
    for summary in result.rounds:
        if on_round is not None:
            on_round(summary, [r for r in result.clients if r["round"] == summary["round"]])
    return result


def round_scalars(summary: dict) -> dict:
    """What a round logs: the global model's accuracy and loss, each detector's ROC-AUC and time,
    and the replies that failed or were excluded."""
    return {
        k.replace(".", "/"): v
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "round"
    }


@entrypoint("frida/detect", schema=DetectConfig)
def main(cfg, run):
    fed = federation_from_cfg(cfg.fed)
    log.info(
        "FRIDA detect: %s runtime, %s/%s, %d clients (%d %s free-riders), %d rounds, on %s",
        cfg.runtime,
        fed.dataset,
        fed.model,
        fed.num_clients,
        fed.num_free_riders,
        fed.free_rider,
        fed.rounds,
        run.info["hardware"]["device"],
    )
    cell = {"runtime": cfg.runtime, **{k: v for k, v in asdict(fed).items() if k != "data_dir"}}

    def task():
        from papers.frida.metrics import summarize

        def on_round(summary, rows):  # as it happens: accuracy and every detector's AUC per round
            run.logger.log({"round": summary["round"], **round_scalars(summary)}, step=summary["round"])

        return summarize(run_federation_on(cfg.runtime, fed, run.dir, cfg, on_round))

    row = run.results.run_cell(cell, task, skip_done=False)
    metrics = row["metrics"]
    if row["status"] != "ok":
        raise RuntimeError(f"the federation failed: {row['error']}")

    def value(key):  # the result store keeps NaN as null
        return float("nan") if metrics.get(key) is None else metrics[key]

    for name in fed.detectors:
        log.info(
            "%-10s ROC-AUC %.3f  F1 %.3f  FPR %.3f",
            name,
            value(f"auc.{name}"),
            value(f"f1.{name}"),
            value(f"fpr.{name}"),
        )
    log.info("final test accuracy %.3f", metrics["final_accuracy"])
    return metrics


if __name__ == "__main__":
    main()
