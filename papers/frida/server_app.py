"""The Flower ServerApp, and `run_federation`, the one function every runtime ends up in.

Under the deployment runtime the ServerApp reads the federation config from the run config
(`frida-fed`, JSON) and writes its records as JSONL under `frida-out`; `make_server_app(fed, out)`
binds both directly for the simulation runtime's Python API. The in-process runtime calls
`run_federation` with `local_grid.InProcessGrid`, which delivers the same messages to the same
ClientApp without Ray or gRPC.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from papers.frida.client_app import RUN_CONFIG_KEY, federation_from_context
from papers.frida.config import FederationConfig
from papers.frida.federated_data import federated_data
from papers.frida.models import build_model, from_record, get_weights, to_record
from papers.frida.strategy import FridaFedAvg

OUT_KEY = "frida-out"
ROUNDS_FILE, CLIENTS_FILE, DONE_FILE = "rounds.jsonl", "clients.jsonl", "done.json"
log = logging.getLogger(__name__)


@dataclass
class FederationResult:
    rounds: list[dict] = field(default_factory=list)  # one per round (round 0: the initial model)
    clients: list[dict] = field(default_factory=list)  # one per client and round
    final_weights: dict | None = None  # the last global model (in-process runs only; not written out)


class JsonlSink:
    """Appends each round's records as they are made; `done.json` marks a finished run."""

    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, summary: dict, rows: list[dict]) -> None:
        with open(self.dir / ROUNDS_FILE, "a") as fh:
            fh.write(json.dumps(summary) + "\n")
        with open(self.dir / CLIENTS_FILE, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def finish(self) -> None:
        (self.dir / DONE_FILE).write_text(json.dumps({"done": True}) + "\n")


def read_result(out_dir: str | Path) -> FederationResult:
    out = Path(out_dir)

    def rows(name):
        path = out / name
        return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []

    return FederationResult(rows(ROUNDS_FILE), rows(CLIENTS_FILE))


def run_federation(grid: Grid, fed: FederationConfig, on_round=None) -> FederationResult:
    """The federation on any grid; a round waits at most fed.round_timeout_s for its replies."""
    data = federated_data(fed)
    strategy = FridaFedAvg(fed, data, on_round=on_round)
    initial = build_model(fed.model, data.input_shape, data.num_classes, fed.hidden, seed=fed.seed)
    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(get_weights(initial)),
        num_rounds=fed.rounds,
        timeout=fed.round_timeout_s,
        evaluate_fn=strategy.evaluate_global,
    )
    return FederationResult(strategy.rounds, strategy.clients, from_record(result.arrays))


def make_server_app(
    fed: FederationConfig | None = None, out_dir: str | Path | None = None, on_round=None
) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = fed or federation_from_context(context)
        out = out_dir or context.run_config.get(OUT_KEY) or None
        sink = JsonlSink(out) if out else None
        log.info(
            "FRIDA federation: %d clients, %d rounds, free-rider %s x%d, detectors %s",
            cfg.num_clients,
            cfg.rounds,
            cfg.free_rider,
            cfg.num_free_riders,
            cfg.detectors,
        )

        def each(summary, rows):
            if sink is not None:
                sink(summary, rows)
            if on_round is not None:
                on_round(summary, rows)

        run_federation(grid, cfg, on_round=each)
        if sink is not None:
            sink.finish()

    return app


app = make_server_app()
__all__ = ["RUN_CONFIG_KEY", "OUT_KEY", "FederationResult", "app", "make_server_app", "run_federation"]
