"""Flower's simulation runtime (Ray): every client runs in a Ray actor with `client_cpus` CPUs.

The ServerApp runs in a thread of this process and writes its records under `out_dir`, which is
read back once the simulation ends. Ray is started and shut down by Flower within the call.
"""

from __future__ import annotations

from pathlib import Path

from papers.frida.client_app import make_client_app
from papers.frida.config import FederationConfig
from papers.frida.server_app import FederationResult, make_server_app, read_result


def run_in_simulation(
    fed: FederationConfig, out_dir: str | Path, num_cpus: int = 2, client_cpus: float = 1.0, on_round=None
) -> FederationResult:
    from flwr.simulation import run_simulation

    backend = {
        "client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": num_cpus, "num_gpus": 0, "include_dashboard": False},
    }
    run_simulation(
        server_app=make_server_app(fed, out_dir, on_round),
        client_app=make_client_app(fed),
        num_supernodes=fed.num_clients,
        backend_config=backend,
    )
    return read_result(out_dir)
