"""From a federation's records to the numbers the paper reports.

- ROC-AUC of each detector's continuous scores (sklearn), per round and then averaged over the
  rounds where both classes are present ("auc"), and over all client-rounds pooled ("auc_pooled").
  Scores are rounded to 9 decimals first, so values equal in exact arithmetic tie exactly and the
  AUC does not depend on float rounding (an even number of clients puts pairs at the same distance
  from the median). For the baselines the same AUCs of the flipped score ("auc_flipped.*") tell how
  the statistic would do in the other direction, a choice only labels can make (after the fact).
- accuracy, precision, recall, F1, FPR and FNR of each detector's flags over all client-rounds, and
  F1 per round (for the per-round figure).
- rounds to detect: for each free-rider, the rounds from the first round it free-rides to the first
  round a detector flags it (1: at once); the mean over the free-riders it catches, and the share it
  catches at all ("detected").
- the global model's test accuracy per round and at the end (with mitigation when it was on).
- detector wall time per round against the round's training wall time, and the clients' sample-
  gradients on their own data and on the canary (the canary protocol's extra compute).
A client-round's label is whether that client free-rides in that round (a switching free-rider is
honest before it switches). Only replies that reached the detectors (status "ok") are scored; failed
ones are counted apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from papers.frida.server_app import FederationResult

DECIMALS = 9


def detector_names(clients) -> list[str]:
    return [c.split(".", 1)[1] for c in clients.columns if c.startswith("score.")]


def roc_auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(scores)
    labels, scores = labels[keep], np.round(scores[keep], DECIMALS)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def flag_metrics(labels, flags) -> dict[str, float]:
    y, f = np.asarray(labels, dtype=bool), np.asarray(flags, dtype=bool)
    tp, fp = int((y & f).sum()), int((~y & f).sum())
    fn, tn = int((y & ~f).sum()), int((~y & ~f).sum())

    def ratio(a, b):
        return a / b if b else float("nan")

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "accuracy": ratio(tp + tn, len(y)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": ratio(fp, fp + tn),
        "fnr": ratio(fn, fn + tp),
    }


def _mean_auc(ok, column: str, sign: float = 1.0) -> float:
    per_round = [roc_auc(g["free_rider"].astype(bool), sign * g[column]) for _, g in ok.groupby("round")]
    finite = [a for a in per_round if np.isfinite(a)]
    return float(np.mean(finite)) if finite else float("nan")


def rounds_to_detect(ok, detector: str) -> tuple[float, float]:
    """(mean rounds from the first free-riding round to the first flag, over the free-riders caught;
    share of free-riders caught at all)."""
    riding = ok[ok["free_rider"].astype(bool)]
    if riding.empty:
        return float("nan"), float("nan")
    delays = []
    for _, g in riding.groupby("partition_id"):
        flagged = g[g[f"flag.{detector}"].astype(bool)]
        if len(flagged):
            delays.append(int(flagged["round"].min()) - int(g["round"].min()) + 1)
    n = riding["partition_id"].nunique()
    return (float(np.mean(delays)) if delays else float("nan")), len(delays) / n


def summarize(result: FederationResult) -> dict:
    """Flat metrics of one federation run (lists for per-round curves)."""
    import pandas as pd

    from papers.frida.config import BASELINE_DETECTORS

    rounds = pd.DataFrame(result.rounds)
    clients = pd.DataFrame(result.clients)
    out: dict = {}
    trained = rounds[rounds["round"] > 0]
    out["final_accuracy"] = float(rounds["test_accuracy"].iloc[-1])
    out["accuracy_by_round"] = [float(a) for a in rounds["test_accuracy"]]
    if clients.empty:
        return out
    out["n_failed_replies"] = int((clients["status"] != "ok").sum())
    out["n_excluded"] = int(clients["excluded"].sum())
    ok = clients[clients["status"] == "ok"]
    labels = ok["free_rider"].astype(bool)
    out["free_rider_rounds"] = int(labels.sum())
    for det in detector_names(clients):
        column = f"score.{det}"
        out[f"auc.{det}"] = _mean_auc(ok, column)
        out[f"auc_pooled.{det}"] = roc_auc(labels, ok[column])
        if det in BASELINE_DETECTORS:
            out[f"auc_flipped.{det}"] = _mean_auc(ok, column, -1.0)
            out[f"auc_pooled_flipped.{det}"] = roc_auc(labels, -ok[column])
        flags = ok[f"flag.{det}"].astype(bool)
        for key, value in flag_metrics(labels, flags).items():
            out[f"{key}.{det}"] = value
        out[f"f1_by_round.{det}"] = [
            flag_metrics(g["free_rider"].astype(bool), g[f"flag.{det}"].astype(bool))["f1"]
            for _, g in ok.groupby("round")
        ]
        out[f"auc_by_round.{det}"] = [
            roc_auc(g["free_rider"].astype(bool), g[column]) for _, g in ok.groupby("round")
        ]
        out[f"rounds_to_detect.{det}"], out[f"detected.{det}"] = rounds_to_detect(ok, det)
        if f"detect_s.{det}" in trained:
            out[f"detect_s.{det}"] = float(trained[f"detect_s.{det}"].mean())
    out["detect_s"] = float(trained["detect_s"].mean())
    out["round_wall_s"] = float(trained["round_wall_s"].mean())
    out["client_train_s"] = float(trained["client_train_s"].mean())
    for key in ("own_grads", "canary_grads"):
        if key in trained:
            out[key] = float(trained[key].mean())
    return out
