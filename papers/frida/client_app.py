"""The Flower ClientApp: an honest client or a free-rider, chosen by the federation config and the
node's partition id (node config `partition-id`, set by the simulation runtime or by
`flower-supernode --node-config`).

The federation config arrives as JSON in the run config (key `frida-fed`) under every runtime;
`make_client_app(fed)` binds it directly instead, for the Python-object simulation API, whose
runs carry no run config. Faults (`fed.faults`) make a chosen client raise or return NaN weights in a
chosen round, to exercise the server's handling of broken replies.
"""

from __future__ import annotations

import functools
import json
import time

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from papers.frida import free_riders as fr
from papers.frida.config import FederationConfig, federation_from_dict, parse_fault
from papers.frida.federated_data import federated_data
from papers.frida.models import build_model, flatten, from_record, get_weights, set_weights, to_record
from papers.frida.training import evaluate, local_train, num_steps, train_steps

RUN_CONFIG_KEY = "frida-fed"
PREV_GLOBAL = "frida-prev-global"
ADAPTIVE_REF = "frida-adaptive-ref"


@functools.lru_cache(maxsize=8)
def _parse(text: str) -> FederationConfig:
    return federation_from_dict(json.loads(text))


def federation_from_context(context: Context) -> FederationConfig:
    return _parse(str(context.run_config.get(RUN_CONFIG_KEY, "{}")))


def behaviour(fed: FederationConfig, partition_id: int) -> str:
    ids = fr.free_rider_ids(fed.num_clients, fed.num_free_riders, fed.seed)
    return fed.free_rider if fed.free_rider != "none" and partition_id in ids else "honest"


def _fault(fed: FederationConfig, partition_id: int, server_round: int) -> str | None:
    for spec in fed.faults:
        pid, rnd, kind = parse_fault(spec)
        if (pid, rnd) == (partition_id, server_round):
            return kind
    return None


def train_reply(fed: FederationConfig, msg: Message, context: Context) -> RecordDict:
    pid = int(context.node_config["partition-id"])
    cfg = msg.content["config"]
    rnd = int(cfg["server-round"])
    fault = _fault(fed, pid, rnd)
    if fault == "raise":
        raise RuntimeError(f"injected fault: partition {pid} raises in round {rnd}")
    data = federated_data(fed)
    local = data.clients[pid]
    global_w = from_record(msg.content["arrays"])
    canary = msg.content.get("canary")
    cx, cy = (canary["x"].numpy(), canary["y"].numpy()) if canary is not None else (None, None)
    prev = context.state.get(PREV_GLOBAL)
    prev_w = from_record(prev) if prev is not None else None
    context.state[PREV_GLOBAL] = to_record(global_w)
    rng = np.random.default_rng([fed.seed, pid, rnd])
    lr, epochs, batch = float(cfg["lr"]), int(cfg["local-epochs"]), int(cfg["batch-size"])
    kind = behaviour(fed, pid)

    def honest_train() -> tuple[dict, float]:
        model = set_weights(build_model(fed.model, data.input_shape, data.num_classes, fed.hidden), global_w)
        loss = local_train(model, local.x, local.y, lr=lr, epochs=epochs, batch_size=batch,
                           seed=fed.seed * 100003 + pid * 1009 + rnd, canary_x=cx, canary_y=cy,
                           canary_every_batch=bool(cfg["canary-every-batch"]))
        return get_weights(model), loss

    start = time.perf_counter()
    loss = float("nan")
    if kind == "honest":
        weights, loss = honest_train()
    elif kind == "plain":
        weights = fr.plain(global_w)
    elif kind == "disguised":
        weights = fr.disguised(global_w, prev_w, rnd, fed.disguise_m, fed.disguise_gamma, rng)
    elif kind == "gradient_noiser":
        weights = fr.gradient_noiser(global_w, prev_w, rng)
    elif kind == "canary_aware":
        model = set_weights(build_model(fed.model, data.input_shape, data.num_classes, fed.hidden), global_w)
        if cx is not None:
            loss = train_steps(model, cx, cy, lr=lr, steps=num_steps(len(local), batch, epochs))
        weights = get_weights(model)
    else:  # adaptive
        weights, loss = _adaptive(context, global_w, prev_w, rng, honest_train)
    elapsed = time.perf_counter() - start
    if fault == "nan":
        weights = {k: np.full_like(v, np.nan) for k, v in weights.items()}
    metrics = MetricRecord({"num-examples": len(local), "partition-id": pid, "train-loss": loss,
                            "train-time-s": elapsed})
    return RecordDict({"arrays": to_record(weights), "metrics": metrics})


def _adaptive(context: Context, global_w, prev_w, rng, honest_train):
    """Round 1: train honestly and keep the update as the reference. Later: calibrate on the first
    global step once, then fake steps that match the reference's norm and cosine."""
    ref = context.state.get(ADAPTIVE_REF)
    if ref is None or prev_w is None:
        weights, loss = honest_train()
        context.state[ADAPTIVE_REF] = ArrayRecord(
            {"update": Array(flatten(weights) - flatten(global_w)), "stats": Array(np.zeros(3))})
        return weights, loss
    stats = ref["stats"].numpy()
    if stats[0] == 0:  # first call after round 1: the reference meets its global step
        update, step = ref["update"].numpy(), fr.global_step(global_w, prev_w)
        stats = np.array([np.linalg.norm(update), fr.cosine(update, step), np.linalg.norm(step)])
        context.state[ADAPTIVE_REF] = ArrayRecord({"update": ref["update"], "stats": Array(stats)})
    return fr.adaptive(global_w, prev_w, *(float(s) for s in stats), rng), float("nan")


def evaluate_reply(fed: FederationConfig, msg: Message, context: Context) -> RecordDict:
    pid = int(context.node_config["partition-id"])
    data = federated_data(fed)
    local = data.clients[pid]
    model = set_weights(build_model(fed.model, data.input_shape, data.num_classes, fed.hidden),
                        from_record(msg.content["arrays"]))
    loss, acc = evaluate(model, local.x, local.y)
    return RecordDict({"metrics": MetricRecord({"num-examples": len(local), "eval-loss": loss,
                                                "eval-acc": acc})})


def make_client_app(fed: FederationConfig | None = None) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return Message(train_reply(fed or federation_from_context(context), msg, context), reply_to=msg)

    @app.evaluate()
    def evaluate_(msg: Message, context: Context) -> Message:
        return Message(evaluate_reply(fed or federation_from_context(context), msg, context), reply_to=msg)

    return app


app = make_client_app()
