"""FedAvg that looks at every reply before averaging it.

Each round the strategy sends the global model, the training hyper-parameters and a fresh canary;
when the replies come back it (1) logs and drops replies that carry an error or non-finite weights,
(2) runs the configured detectors on the rest, (3) records every client's scores and flags, and
(4) averages, leaving out the clients the mitigating detector flags when mitigation is on. A round's
records are handed to `on_round` as soon as the global model has been evaluated, so a run that dies
later loses nothing already recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from papers.frida.config import FederationConfig
from papers.frida.detectors.base import ClientUpdate, RoundView
from papers.frida.detectors.suite import DetectorSuite
from papers.frida.federated_data import CanarySampler, FederatedData
from papers.frida.free_riders import free_rider_ids
from papers.frida.models import build_model, from_record, set_weights
from papers.frida.training import evaluate

log = logging.getLogger(__name__)
RoundCallback = Callable[[dict, list[dict]], None]


def _train_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Weighted mean train loss over clients that report one; total client compute time."""
    metrics = [next(iter(r.metric_records.values())) for r in records]
    losses = [(float(m["train-loss"]), float(m[weight_key])) for m in metrics
              if np.isfinite(float(m["train-loss"]))]
    total = sum(w for _, w in losses)
    return MetricRecord({"train-loss": sum(v * w for v, w in losses) / total if total else float("nan"),
                         "train-time-s": sum(float(m["train-time-s"]) for m in metrics)})


def _partition_of(msg: Message) -> int:
    try:
        return int(msg.content["metrics"]["partition-id"])
    except (KeyError, TypeError, ValueError):
        return -1  # malformed: its row says so below


class FridaFedAvg(FedAvg):
    def __init__(self, fed: FederationConfig, data: FederatedData, on_round: RoundCallback | None = None):
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=fed.num_clients,
                         min_available_nodes=fed.num_clients, train_metrics_aggr_fn=_train_metrics)
        self.fed, self.data, self.on_round = fed, data, on_round
        self.model = build_model(fed.model, data.input_shape, data.num_classes, fed.hidden)
        self.suite = DetectorSuite(fed)
        self.free_riders = set(free_rider_ids(fed.num_clients, fed.num_free_riders, fed.seed)) \
            if fed.free_rider != "none" else set()
        self.canaries = CanarySampler(len(data.canary_pool), fed.canary_size, fed.seed) \
            if fed.canary_size else None
        self._label_rng = np.random.default_rng(fed.seed + 65537)
        self.nonmember_y = self._labels(data.nonmembers.y)
        self.rounds: list[dict] = []
        self.clients: list[dict] = []
        self._pending: tuple[dict, list[dict]] | None = None

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """Canary labels: the true ones, or a random wrong class per sample. A wrong label can only
        be fitted by training on that very sample, so a model that did not train on the canary
        cannot match an honest one by generalising (the canaries of privacy auditing)."""
        if self.fed.canary_labels == "true":
            return y
        shift = self._label_rng.integers(1, self.data.num_classes, size=len(y))
        return (y + shift) % self.data.num_classes

    # ---- sending --------------------------------------------------------------------------------
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        fed = self.fed
        self._global = from_record(arrays)
        config["lr"], config["local-epochs"] = fed.lr, fed.local_epochs
        config["batch-size"], config["canary-every-batch"] = fed.batch_size, fed.canary_every_batch
        messages = list(super().configure_train(server_round, arrays, config, grid))
        if self.canaries is not None:
            idx = self.canaries.next()
            self._canary = (self.data.canary_pool.x[idx], self._labels(self.data.canary_pool.y[idx]))
            canary = ArrayRecord({"x": Array(self._canary[0]), "y": Array(self._canary[1])})
            for msg in messages:
                msg.content["canary"] = canary
        else:
            shape = (0, *self.data.input_shape)
            self._canary = (np.zeros(shape, np.float32), np.zeros(0, np.int64))
        self._sent_at = time.perf_counter()
        return messages

    # ---- receiving ------------------------------------------------------------------------------
    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        round_wall = time.perf_counter() - self._sent_at
        valid, errors = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        rows: list[dict] = []
        for msg in errors:
            log.warning("round %d: node %d failed and is left out: %s", server_round,
                        msg.metadata.src_node_id, msg.error.reason)
            rows.append(self._row(server_round, msg.metadata.src_node_id, None, "error",
                                  error=str(msg.error.reason)))
        kept_msgs, updates = [], []
        # replies arrive in sampling/completion order, which differs between runtimes and runs:
        # score and average them in partition order so every runtime gives the same numbers
        valid.sort(key=_partition_of)
        for msg in valid:
            node = msg.metadata.src_node_id
            try:
                metrics = msg.content["metrics"]
                pid, n = int(metrics["partition-id"]), int(metrics["num-examples"])
                weights = from_record(msg.content["arrays"])
            except (KeyError, TypeError, ValueError) as err:
                log.warning("round %d: node %d sent a malformed reply, left out: %r", server_round, node, err)
                rows.append(self._row(server_round, node, None, "malformed", error=repr(err)))
                continue
            if not all(np.isfinite(v).all() for v in weights.values()):
                log.warning("round %d: partition %d sent non-finite weights, left out", server_round, pid)
                rows.append(self._row(server_round, node, pid, "nan", num_examples=n,
                                      error="non-finite weights"))
                continue
            kept_msgs.append(msg)
            updates.append(ClientUpdate(pid, weights, n))
            rows.append(self._row(server_round, node, pid, "ok", num_examples=n,
                                  train_time_s=float(metrics["train-time-s"])))

        ok_rows = [r for r in rows if r["status"] == "ok"]
        start = time.perf_counter()
        outputs, seconds = {}, {}
        if updates and self.fed.detectors:
            view = RoundView(server_round, self.fed, self._global, updates, *self._canary,
                             self.data.nonmembers.x, self.nonmember_y, self.data.num_classes,
                             self.model)
            outputs, seconds = self.suite.run(view)
        detect_s = time.perf_counter() - start
        for i, row in enumerate(ok_rows):
            for name, out in outputs.items():
                if name not in self.fed.detectors:
                    continue
                row[f"score.{name}"] = float(out.scores[i])
                row[f"flag.{name}"] = bool(out.flags[i])
                for key, values in out.extras.items():
                    row[f"{name}.{key}"] = float(values[i])
            row["excluded"] = bool(self.fed.mitigate and outputs[self.fed.mitigate_by].flags[i])

        kept = [m for m, r in zip(kept_msgs, ok_rows) if not r["excluded"]]
        summary = {"round": server_round, "round_wall_s": round_wall, "detect_s": detect_s,
                   **{f"detect_s.{k}": v for k, v in seconds.items() if k in self.fed.detectors},
                   "client_train_s": sum(r.get("train_time_s", 0.0) for r in ok_rows),
                   "n_replies": len(rows), "n_failed": len(rows) - len(ok_rows),
                   "n_excluded": len(ok_rows) - len(kept)}
        self._pending = (summary, rows)
        if not kept:
            log.warning("round %d: no client left to aggregate; the global model stays", server_round)
            return None, None
        contents = [m.content for m in kept]
        agg = aggregate_arrayrecords([RecordDict({"arrays": c["arrays"], "metrics": c["metrics"]})
                                      for c in contents], self.weighted_by_key)
        return agg, self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def _row(self, server_round: int, node: int, pid: int | None, status: str, **extra) -> dict:
        return {"round": server_round, "node_id": int(node), "partition_id": pid,
                "free_rider": None if pid is None else pid in self.free_riders, "status": status,
                "excluded": True, **extra}

    # ---- centralised evaluation closes the round -------------------------------------------------
    def evaluate_global(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = set_weights(self.model, from_record(arrays))
        loss, acc = evaluate(model, self.data.test.x, self.data.test.y)
        if server_round > 0 and self._pending is not None:
            summary, rows = self._pending
            summary.update({"test_loss": loss, "test_accuracy": acc})
            self.rounds.append(summary)
            self.clients.extend(rows)
            self._pending = None
            if self.on_round is not None:
                self.on_round(summary, rows)
        elif server_round == 0:
            self.rounds.append({"round": 0, "test_loss": loss, "test_accuracy": acc})
            if self.on_round is not None:
                self.on_round(self.rounds[-1], [])
        return MetricRecord({"test-loss": loss, "test-accuracy": acc})
