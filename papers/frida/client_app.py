"""The Flower ClientApp: an honest client or a free-rider, chosen by the federation config and the
node's partition id (node config `partition-id`, set by the simulation runtime or by
`flower-supernode --node-config`).

The federation config arrives as JSON in the run config (key `frida-fed`) under every runtime;
`make_client_app(fed)` binds it directly instead, for the Python-object simulation API, whose
runs carry no run config. Faults (`fed.faults`) make a chosen client send a broken reply in a chosen
round (raise, NaN or infinite weights, finite weights of 1e30, a wrong shape, a missing or an extra
tensor, a wrong dtype, no metrics, a bad example count, or no reply at all), to exercise the server's
reply checks. A query message asks a node for its partition id (the server samples by partition).
"""

from __future__ import annotations

import functools
import json
import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from papers.frida import free_riders as fr
from papers.frida.config import FederationConfig, federation_from_dict, parse_fault
from papers.frida.federated_data import federated_data
from papers.frida.models import build_model, flatten, from_record, get_weights, set_weights, to_record
from papers.frida.training import canary_schedule, evaluate, local_train, train_steps

RUN_CONFIG_KEY = "frida-fed"
PREV_GLOBAL = "frida-prev-global"
PREV_ROUND = "frida-prev-round"
ADAPTIVE_REF = "frida-adaptive-ref"


class DropReply(Exception):
    """Raised by a client told to drop out: the in-process grid then delivers no reply at all (as a
    node that died or timed out); under Flower's runtimes it becomes an error reply."""


@functools.lru_cache(maxsize=8)
def _parse(text: str) -> FederationConfig:
    return federation_from_dict(json.loads(text))


def federation_from_context(context: Context) -> FederationConfig:
    return _parse(str(context.run_config.get(RUN_CONFIG_KEY, "{}")))


def is_free_rider(fed: FederationConfig, partition_id: int) -> bool:
    ids = fr.free_rider_ids(fed.num_clients, fed.num_free_riders, fed.seed)
    return fed.free_rider != "none" and partition_id in ids


def behaviour(fed: FederationConfig, partition_id: int, server_round: int = 1) -> str:
    """'honest' or the attack this client runs in this round."""
    if is_free_rider(fed, partition_id) and server_round >= fed.free_ride_from:
        return fed.attack
    return "honest"


def _fault(fed: FederationConfig, partition_id: int, server_round: int) -> str | None:
    for spec in fed.faults:
        pid, rnd, kind = parse_fault(spec)
        if (pid, rnd) == (partition_id, server_round):
            return kind
    return None


def _break(reply: RecordDict, fault: str, weights: dict) -> RecordDict:
    """A reply damaged the way `fault` says (the server must refuse it and go on)."""
    metrics = reply["metrics"]
    first = next(iter(weights))
    if fault in ("nan", "inf", "huge"):
        fill = {"nan": np.nan, "inf": np.inf, "huge": 1e30}[fault]
        return RecordDict(
            {"arrays": to_record({k: np.full_like(v, fill) for k, v in weights.items()}), "metrics": metrics}
        )
    if fault == "shape":
        broken = {**weights, first: weights[first].reshape(-1)[:-1].copy()}
    elif fault == "missing":
        broken = {k: v for k, v in weights.items() if k != first}
    elif fault == "extra":
        broken = {**weights, "backdoor.weight": np.ones(3, np.float32)}
    elif fault == "dtype":
        broken = {**weights, first: weights[first].astype(np.float64)}
    elif fault == "nometrics":
        return RecordDict({"arrays": to_record(weights)})
    elif fault == "badcount":
        return RecordDict(
            {"arrays": to_record(weights), "metrics": MetricRecord({**dict(metrics), "num-examples": -5})}
        )
    else:
        raise ValueError(fault)
    return RecordDict({"arrays": to_record(broken), "metrics": metrics})


def train_reply(fed: FederationConfig, msg: Message, context: Context) -> RecordDict:
    pid = int(context.node_config["partition-id"])
    cfg = msg.content["config"]
    rnd = int(cfg["server-round"])
    fault = _fault(fed, pid, rnd)
    if fault == "raise":
        raise RuntimeError(f"injected fault: partition {pid} raises in round {rnd}")
    if fault == "drop":
        raise DropReply(f"partition {pid} drops out in round {rnd}")
    data = federated_data(fed)
    local = data.clients[pid]
    global_w = from_record(msg.content["arrays"])
    canary = msg.content.get("canary")
    cx, cy = (canary["x"].numpy(), canary["y"].numpy()) if canary is not None else (None, None)
    prev = context.state.get(PREV_GLOBAL)
    prev_w = from_record(prev) if prev is not None else None
    prev_round = int(context.state[PREV_ROUND]["round"]) if PREV_ROUND in context.state else rnd - 1
    elapsed = max(rnd - prev_round, 1)
    context.state[PREV_GLOBAL] = to_record(global_w)
    context.state[PREV_ROUND] = ConfigRecord({"round": rnd})
    rng = np.random.default_rng([fed.seed, pid, rnd])
    lr, epochs, batch = float(cfg["lr"]), int(cfg["local-epochs"]), int(cfg["batch-size"])
    mode, per_batch = str(cfg["canary-mode"]), int(cfg["canary-per-batch"])
    k = 0 if cx is None else len(cx)
    kind = behaviour(fed, pid, rnd)

    def honest_train() -> tuple[dict, float]:
        model = set_weights(build_model(fed.model, data.input_shape, data.num_classes, fed.hidden), global_w)
        loss = local_train(
            model,
            local.x,
            local.y,
            lr=lr,
            epochs=epochs,
            batch_size=batch,
            seed=fed.seed * 100003 + pid * 1009 + rnd,
            canary_x=cx,
            canary_y=cy,
            canary_mode=mode,
            canary_per_batch=per_batch,
        )
        return get_weights(model), loss

    start = time.perf_counter()
    loss = float("nan")
    schedule = canary_schedule(len(local), k, batch, epochs, mode, per_batch)
    own, extra = schedule.own_grads, schedule.canary_grads  # sample-gradients this client computed
    if kind == "honest":
        weights, loss = honest_train()
    elif kind == "plain":
        weights, own, extra = fr.plain(global_w), 0, 0
    elif kind == "disguised":
        weights, own, extra = (
            fr.disguised(global_w, prev_w, rnd, fed.disguise_m, fed.disguise_gamma, rng, elapsed),
            0,
            0,
        )
    elif kind == "delta_weights":
        weights, own, extra = fr.delta_weights(global_w, prev_w, elapsed), 0, 0
    elif kind == "gradient_noiser":
        weights, own, extra = fr.gradient_noiser(global_w, prev_w, rng, elapsed), 0, 0
    elif kind == "canary_aware":
        model = set_weights(build_model(fed.model, data.input_shape, data.num_classes, fed.hidden), global_w)
        own = 0
        if cx is not None:  # as many steps as an honest client would take, on the canary alone
            loss = train_steps(model, cx, cy, lr=lr, steps=schedule.steps)
            extra = schedule.steps * k
        weights = get_weights(model)
    else:  # adaptive
        weights, loss, trained = _adaptive(context, global_w, prev_w, rng, honest_train, elapsed)
        own, extra = (own, extra) if trained else (0, 0)
    elapsed_s = time.perf_counter() - start
    metrics = MetricRecord(
        {
            "num-examples": len(local),
            "partition-id": pid,
            "train-loss": loss,
            "train-time-s": elapsed_s,
            "own-grads": own,
            "canary-grads": extra,
        }
    )
    reply = RecordDict({"arrays": to_record(weights), "metrics": metrics})
    return _break(reply, fault, weights) if fault else reply


def _adaptive(context: Context, global_w, prev_w, rng, honest_train, elapsed):
    """First participation: train honestly and keep the update as the reference. Later: calibrate on
    the first global step once, then fake steps that match the reference's norm and cosine."""
    ref = context.state.get(ADAPTIVE_REF)
    if ref is None or prev_w is None:
        weights, loss = honest_train()
        context.state[ADAPTIVE_REF] = ArrayRecord(
            {"update": Array(flatten(weights) - flatten(global_w)), "stats": Array(np.zeros(3))}
        )
        return weights, loss, True
    stats = ref["stats"].numpy()
    if stats[0] == 0:  # first call after the honest one: the reference meets its global step
        update, step = ref["update"].numpy(), fr.global_step(global_w, prev_w, elapsed)
        stats = np.array([np.linalg.norm(update), fr.cosine(update, step), np.linalg.norm(step)])
        context.state[ADAPTIVE_REF] = ArrayRecord({"update": ref["update"], "stats": Array(stats)})
    return fr.adaptive(global_w, prev_w, *(float(s) for s in stats), rng, elapsed), float("nan"), False


def evaluate_reply(fed: FederationConfig, msg: Message, context: Context) -> RecordDict:
    pid = int(context.node_config["partition-id"])
    data = federated_data(fed)
    local = data.clients[pid]
    model = set_weights(
        build_model(fed.model, data.input_shape, data.num_classes, fed.hidden),
        from_record(msg.content["arrays"]),
    )
    loss, acc = evaluate(model, local.x, local.y)
    return RecordDict(
        {"metrics": MetricRecord({"num-examples": len(local), "eval-loss": loss, "eval-acc": acc})}
    )


def make_client_app(fed: FederationConfig | None = None) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return Message(train_reply(fed or federation_from_context(context), msg, context), reply_to=msg)

    @app.evaluate()
    def evaluate_(msg: Message, context: Context) -> Message:
        return Message(evaluate_reply(fed or federation_from_context(context), msg, context), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"metrics": MetricRecord({"partition-id": pid})}), reply_to=msg)

    return app


app = make_client_app()
