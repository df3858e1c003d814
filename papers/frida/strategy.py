"""FedAvg that samples clients, checks every reply, and looks at the valid ones before averaging.

Each round the strategy samples `fed.sampled` partitions with a seeded generator (the same partitions
under every runtime: the node ids a SuperLink assigns are random, so nodes are first asked for their
partition id), sends them the global model, the training hyper-parameters and a fresh canary, and waits
at most `fed.round_timeout_s`. When the replies come back it

1. checks each one against the global model's structure before any detector sees it: error replies,
   a missing metrics or arrays record, a partition id that is not the one it was sent to (or twice),
   a bad example count, missing or extra tensor names, wrong shapes or dtypes, non-finite values and
   insane magnitudes (|w| > fed.reply_max_abs, |update| > fed.reply_max_update_ratio * max(|global|, 1))
   are each excluded with a logged reason, and a sampled client that never answered (it dropped out or
   its node died) is recorded as a time-out; the round goes on with the rest;
2. runs the configured detectors on the valid replies, in partition order;
3. records every client's scores and flags, and per round the accuracy and each detector's ROC-AUC;
4. averages (weighted by example count), leaving out the clients the mitigating detector flags when
   mitigation is on.

A round's records go to `on_round` as soon as the global model has been evaluated, so a run that dies
later loses nothing already recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from papers.frida.client_app import is_free_rider
from papers.frida.config import FederationConfig
from papers.frida.detectors.base import ClientUpdate, RoundView
from papers.frida.detectors.suite import DetectorSuite
from papers.frida.federated_data import CanarySampler, FederatedData
from papers.frida.metrics import roc_auc
from papers.frida.models import build_model, flatten, from_record, set_weights, to_record
from papers.frida.training import evaluate

log = logging.getLogger(__name__)
RoundCallback = Callable[[dict, list[dict]], None]


class BadReply(ValueError):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def check_reply(
    content: RecordDict, global_w: dict[str, np.ndarray], expected_pid: int | None, fed: FederationConfig
) -> tuple[int, int, dict[str, np.ndarray], dict]:
    """(partition id, example count, weights, metrics) of a reply that passes every check, or
    BadReply(status, reason). Nothing in the reply is trusted before it is checked."""
    try:
        metrics = content["metrics"]
        record = content["arrays"]
    except (KeyError, TypeError) as err:
        raise BadReply("malformed", f"no {err} record in the reply") from None
    if not isinstance(metrics, MetricRecord) or not isinstance(record, ArrayRecord):
        raise BadReply("malformed", "metrics/arrays records of the wrong type")
    try:
        pid, n = float(metrics["partition-id"]), float(metrics["num-examples"])
    except (KeyError, TypeError, ValueError) as err:
        raise BadReply("malformed", f"metrics lack {err}") from None
    if not (np.isfinite(pid) and pid == int(pid) and 0 <= pid < fed.num_clients):
        raise BadReply("malformed", f"partition-id {pid!r} is not one of the federation's")
    pid = int(pid)
    if expected_pid is not None and pid != expected_pid:
        raise BadReply("malformed", f"partition-id {pid} from the node of partition {expected_pid}")
    if not (np.isfinite(n) and n == int(n) and 1 <= n <= fed.max_examples):
        raise BadReply("bad_count", f"num-examples {n!r} is not an integer in [1, {fed.max_examples}]")
    names = list(record.keys())
    missing, extra = sorted(set(global_w) - set(names)), sorted(set(names) - set(global_w))
    if missing or extra:
        raise BadReply(
            "malformed", f"tensor names differ from the global model's: missing {missing}, extra {extra}"
        )
    weights = {}
    for name, ref in global_w.items():
        arr = record[name]
        if tuple(arr.shape) != ref.shape or arr.dtype != str(ref.dtype):
            raise BadReply(
                "malformed",
                f"{name}: {arr.dtype}{list(arr.shape)} where the global model has "
                f"{ref.dtype}{list(ref.shape)}",
            )
        try:
            value = arr.numpy()
        except Exception as err:  # noqa: BLE001 - undecodable bytes are a bad reply, not a crash
            raise BadReply("malformed", f"{name}: unreadable ({type(err).__name__})") from None
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise BadReply("malformed", f"{name}: decodes to {value.dtype}{list(value.shape)}")
        if not np.isfinite(value).all():
            raise BadReply("nan", f"{name}: non-finite weights")
        weights[name] = value
    biggest = max(float(np.abs(v).max(initial=0.0)) for v in weights.values())
    if biggest > fed.reply_max_abs:
        raise BadReply(
            "magnitude", f"a weight of magnitude {biggest:.3g} > fed.reply_max_abs={fed.reply_max_abs:g}"
        )
    g = flatten(global_w)
    ratio = float(np.linalg.norm(flatten(weights) - g)) / max(float(np.linalg.norm(g)), 1.0)
    if ratio > fed.reply_max_update_ratio:
        raise BadReply(
            "magnitude",
            f"update {ratio:.3g} times the global model's norm > "
            f"fed.reply_max_update_ratio={fed.reply_max_update_ratio:g}",
        )
    return pid, int(n), weights, dict(metrics)


class FridaFedAvg(FedAvg):
    def __init__(self, fed: FederationConfig, data: FederatedData, on_round: RoundCallback | None = None):
        super().__init__(
            fraction_train=fed.fraction_train, fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2
        )
        self.fed, self.data, self.on_round = fed, data, on_round
        self.model = build_model(fed.model, data.input_shape, data.num_classes, fed.hidden)
        self.suite = DetectorSuite(fed)
        self.canaries = (
            CanarySampler(len(data.canary_pool), fed.canary_size, fed.seed) if fed.canary_size else None
        )
        self._label_rng = np.random.default_rng(fed.seed + 65537)
        self.nonmember_y = self._labels(data.nonmembers.y)
        self.partition_of: dict[int, int] = {}  # node id -> partition id, learnt by asking the nodes
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

    # ---- which node holds which partition ----------------------------------------------------------
    def _discover(self, grid: Grid) -> dict[int, int]:
        """partition id -> node id of the nodes connected now; new nodes are asked for their id. Before
        the first round it waits (up to fed.round_timeout_s) for every client to connect; later a node
        that is gone is simply not sampled (its partition's row says so)."""
        deadline = time.monotonic() + self.fed.round_timeout_s
        nodes = list(grid.get_node_ids())
        while len(nodes) < self.fed.num_clients and not self.partition_of and time.monotonic() < deadline:
            time.sleep(0.5)
            nodes = list(grid.get_node_ids())
        unknown = [n for n in nodes if n not in self.partition_of]
        if unknown:
            ask = [
                Message(
                    RecordDict({"config": ConfigRecord({"ask": "partition-id"})}),
                    dst_node_id=node,
                    message_type=MessageType.QUERY,
                )
                for node in unknown
            ]
            for reply in grid.send_and_receive(ask, timeout=self.fed.round_timeout_s):
                if reply.has_error():
                    continue
                try:
                    pid = int(reply.content["metrics"]["partition-id"])
                except (KeyError, TypeError, ValueError):
                    continue
                if 0 <= pid < self.fed.num_clients and pid not in self.partition_of.values():
                    self.partition_of[reply.metadata.src_node_id] = pid
        live = set(nodes)
        return {pid: node for node, pid in self.partition_of.items() if node in live}

    # ---- sending --------------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        fed = self.fed
        self._global = from_record(arrays)
        nodes = self._discover(grid)
        rng = np.random.default_rng([fed.seed, server_round, 7])
        self._sampled = sorted(int(p) for p in rng.choice(fed.num_clients, fed.sampled, replace=False))
        self._sent = {nodes[p]: p for p in self._sampled if p in nodes}
        config["server-round"] = server_round
        config["lr"], config["local-epochs"], config["batch-size"] = fed.lr, fed.local_epochs, fed.batch_size
        config["canary-mode"], config["canary-per-batch"] = fed.canary_mode, fed.canary_per_batch
        content = {"arrays": arrays, "config": config}
        if self.canaries is not None:
            idx = self.canaries.next()
            self._canary = (self.data.canary_pool.x[idx], self._labels(self.data.canary_pool.y[idx]))
            content["canary"] = ArrayRecord({"x": Array(self._canary[0]), "y": Array(self._canary[1])})
        else:
            shape = (0, *self.data.input_shape)
            self._canary = (np.zeros(shape, self.data.test.x.dtype), np.zeros(0, np.int64))
        self._sent_at = time.perf_counter()
        log.info(
            "round %d: %d of %d partitions sampled, %d reachable",
            server_round,
            len(self._sampled),
            fed.num_clients,
            len(self._sent),
        )
        return [
            Message(RecordDict(content), dst_node_id=node, message_type=MessageType.TRAIN)
            for node in sorted(self._sent, key=self._sent.get)
        ]

    # ---- receiving ------------------------------------------------------------------------------
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        round_wall = time.perf_counter() - self._sent_at
        fed = self.fed
        rows: list[dict] = []
        accepted: dict[int, tuple[int, dict, dict]] = {}  # partition -> (examples, weights, metrics)
        answered = set()
        for msg in replies:
            node = msg.metadata.src_node_id
            expected = self._sent.get(node)
            answered.add(node)
            if msg.has_error():
                log.warning(
                    "round %d: partition %s (node %d) failed and is left out: %s",
                    server_round,
                    expected,
                    node,
                    msg.error.reason,
                )
                rows.append(self._row(server_round, node, expected, "error", error=str(msg.error.reason)))
                continue
            try:
                if expected is None:
                    raise BadReply("malformed", "a reply from a node that was not sampled")
                pid, n, weights, metrics = check_reply(msg.content, self._global, expected, fed)
                if pid in accepted:
                    raise BadReply("duplicate", f"a second reply for partition {pid}")
            except BadReply as bad:
                log.warning(
                    "round %d: partition %s (node %d) sent a bad reply, left out: %s: %s",
                    server_round,
                    expected,
                    node,
                    bad.status,
                    bad,
                )
                rows.append(self._row(server_round, node, expected, bad.status, error=str(bad)))
                continue
            accepted[pid] = (n, weights, metrics)
        for node, pid in sorted(self._sent.items(), key=lambda kv: kv[1]):
            if node not in answered:
                log.warning(
                    "round %d: partition %d (node %d): no reply within %.0f s, left out",
                    server_round,
                    pid,
                    node,
                    fed.round_timeout_s,
                )
                rows.append(self._row(server_round, node, pid, "timeout", error="no reply"))
        for pid in self._sampled:
            if pid not in self._sent.values():
                rows.append(self._row(server_round, -1, pid, "timeout", error="node not connected"))

        # replies arrive in completion order, which differs between runtimes and runs: score and
        # average them in partition order so every runtime gives the same numbers
        order = sorted(accepted)
        updates = [ClientUpdate(pid, accepted[pid][1], accepted[pid][0]) for pid in order]
        ok_rows = []
        for pid in order:
            n, _, metrics = accepted[pid]
            row = self._row(
                server_round,
                next(k for k, v in self._sent.items() if v == pid),
                pid,
                "ok",
                num_examples=n,
                train_time_s=float(metrics.get("train-time-s", float("nan"))),
                own_grads=float(metrics.get("own-grads", float("nan"))),
                canary_grads=float(metrics.get("canary-grads", float("nan"))),
            )
            ok_rows.append(row)
        start = time.perf_counter()
        outputs, seconds = {}, {}
        if updates and fed.detectors:
            view = RoundView(
                server_round,
                fed,
                self._global,
                updates,
                *self._canary,
                self.data.nonmembers.x,
                self.nonmember_y,
                self.data.num_classes,
                self.model,
            )
            outputs, seconds = self.suite.run(view)
        detect_s = time.perf_counter() - start
        for i, row in enumerate(ok_rows):
            for name, out in outputs.items():
                if name not in fed.detectors:
                    continue
                row[f"score.{name}"] = float(out.scores[i])
                row[f"flag.{name}"] = bool(out.flags[i])
                for key, values in out.extras.items():
                    row[f"{name}.{key}"] = float(values[i])
            row["excluded"] = bool(fed.mitigate and outputs[fed.mitigate_by].flags[i])
        rows = ok_rows + rows

        kept = [(u, r) for u, r in zip(updates, ok_rows) if not r["excluded"]]
        summary = {
            "round": server_round,
            "round_wall_s": round_wall,
            "detect_s": detect_s,
            **{f"detect_s.{k}": v for k, v in seconds.items() if k in fed.detectors},
            "client_train_s": float(sum(r.get("train_time_s", 0.0) for r in ok_rows)),
            "own_grads": float(sum(r.get("own_grads", 0.0) for r in ok_rows)),
            "canary_grads": float(sum(r.get("canary_grads", 0.0) for r in ok_rows)),
            "n_sampled": len(self._sampled),
            "n_replies": len(rows),
            "n_failed": len(rows) - len(ok_rows),
            "n_excluded": len(ok_rows) - len(kept),
        }
        labels = [r["free_rider"] for r in ok_rows]
        for name in fed.detectors:
            if name in outputs:
                summary[f"auc.{name}"] = roc_auc(labels, [r[f"score.{name}"] for r in ok_rows])
        self._pending = (summary, rows)
        if not kept:
            log.warning("round %d: no client left to aggregate; the global model stays", server_round)
            return None, None
        total = float(sum(u.num_examples for u, _ in kept))
        avg = {
            name: sum(u.weights[name].astype(np.float64) * (u.num_examples / total) for u, _ in kept).astype(
                ref.dtype
            )
            for name, ref in self._global.items()
        }
        losses = [
            (float(accepted[u.partition_id][2].get("train-loss", float("nan"))), u.num_examples)
            for u, _ in kept
        ]
        finite = [(v, w) for v, w in losses if np.isfinite(v)]
        train_loss = sum(v * w for v, w in finite) / sum(w for _, w in finite) if finite else float("nan")
        return to_record(avg), MetricRecord({"train-loss": train_loss, "clients": len(kept)})

    def _row(self, server_round: int, node: int, pid: int | None, status: str, **extra) -> dict:
        designated = pid is not None and is_free_rider(self.fed, pid)
        return {
            "round": server_round,
            "node_id": int(node),
            "partition_id": pid,
            "free_rider": bool(designated and server_round >= self.fed.free_ride_from),
            "designated": bool(designated),
            "status": status,
            "excluded": True,
            **extra,
        }

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
