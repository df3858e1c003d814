"""The module-level Flower apps (the ones `flwr run` loads) driven in-process with a run config."""

import json

from flwr.app import Context, RecordDict

from papers.frida import client_app, server_app
from papers.frida.config import federation_to_json
from papers.frida.local_grid import InProcessGrid

from .conftest import tiny_fed


def test_deployment_apps_read_the_federation_from_the_run_config(tmp_path):
    fed = tiny_fed(
        "fed.num_clients=3",
        "fed.num_free_riders=1",
        "fed.free_rider=canary_aware",
        "fed.rounds=2",
        "fed.detectors=[mia_loss,pia_dist]",
    )
    run_config = {client_app.RUN_CONFIG_KEY: federation_to_json(fed), server_app.OUT_KEY: str(tmp_path)}
    grid = InProcessGrid(client_app.app, fed.num_clients, run_config=run_config)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config=run_config)
    server_app.app(grid, context)
    result = server_app.read_result(tmp_path)
    assert (tmp_path / server_app.DONE_FILE).exists()
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    free = [r for r in result.clients if r["free_rider"]]
    assert len(free) == 2 and all(r["status"] == "ok" for r in result.clients)
    # the canary-aware free-rider trained on the canary only: its canary loss is as low as honest ones'
    honest_loss = max(r["mia_loss.loss"] for r in result.clients if not r["free_rider"] and r["round"] == 2)
    assert next(r["mia_loss.loss"] for r in free if r["round"] == 2) < 2 * honest_loss
    assert json.loads(run_config[client_app.RUN_CONFIG_KEY])["rounds"] == 2


def test_free_riders_keep_the_previous_global_model_in_their_node_state():
    fed = tiny_fed("fed.num_clients=3", "fed.num_free_riders=1", "fed.rounds=2", "fed.detectors=[]")
    grid = InProcessGrid(client_app.make_client_app(fed), fed.num_clients)
    server_app.run_federation(grid, fed)
    assert all(client_app.PREV_GLOBAL in ctx.state for ctx in grid.contexts.values())
