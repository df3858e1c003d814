"""Tiny FRIDA federations composed from the real configs (conf/frida) with small overrides."""

from __future__ import annotations

import logging

import pytest
import torch

from common.config import compose
from papers.frida.config import federation_from_cfg, register_schemas

register_schemas()  # the commands register only their own schema; tests compose any of them


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    level = logging.getLogger("flwr").level
    logging.getLogger("flwr").setLevel(logging.ERROR)
    yield
    torch.set_num_threads(threads)
    logging.getLogger("flwr").setLevel(level)


def tiny_fed(*overrides: str):
    """The detect experiment's federation with `fed.*` overrides (e.g. 'fed.rounds=2')."""
    return federation_from_cfg(compose("frida/detect", list(overrides)).fed)


@pytest.fixture
def run_inprocess():
    from papers.frida.client_app import make_client_app
    from papers.frida.local_grid import InProcessGrid
    from papers.frida.server_app import run_federation

    def run(fed, on_round=None):
        return run_federation(InProcessGrid(make_client_app(fed), fed.num_clients), fed, on_round=on_round)

    return run
