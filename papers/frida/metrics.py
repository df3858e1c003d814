"""From a federation's records to the numbers the paper reports.

- ROC-AUC of each detector's continuous scores (sklearn), per round and then averaged over the
  rounds where both classes are present ("auc"), and over all client-rounds pooled ("auc_pooled").
- accuracy, precision, recall, F1, FPR and FNR of each detector's flags over all client-rounds, and
  F1 per round (for the per-round figure).
- the global model's test accuracy per round and at the end (with mitigation when it was on).
- detector wall time per round against the round's training wall time.
Only replies that reached the detectors (status "ok") are scored; failed ones are counted apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from papers.frida.server_app import FederationResult


def detector_names(clients: pd.DataFrame) -> list[str]:
    return [c.split(".", 1)[1] for c in clients.columns if c.startswith("score.")]


def roc_auc(labels, scores) -> float:
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(scores)
    labels, scores = labels[keep], scores[keep]
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
    return {"accuracy": ratio(tp + tn, len(y)), "precision": precision, "recall": recall, "f1": f1,
            "fpr": ratio(fp, fp + tn), "fnr": ratio(fn, fn + tp)}


def summarize(result: FederationResult) -> dict:
    """Flat metrics of one federation run (lists for per-round curves)."""
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
    for det in detector_names(clients):
        per_round = [roc_auc(g["free_rider"].astype(bool), g[f"score.{det}"]) for _, g in ok.groupby("round")]
        finite = [a for a in per_round if np.isfinite(a)]
        out[f"auc.{det}"] = float(np.mean(finite)) if finite else float("nan")
        out[f"auc_pooled.{det}"] = roc_auc(labels, ok[f"score.{det}"])
        flags = ok[f"flag.{det}"].astype(bool)
        for key, value in flag_metrics(labels, flags).items():
            out[f"{key}.{det}"] = value
        out[f"f1_by_round.{det}"] = [
            flag_metrics(g["free_rider"].astype(bool), g[f"flag.{det}"].astype(bool))["f1"]
            for _, g in ok.groupby("round")]
        flagged_fr = ok[labels & flags]
        out[f"first_flag_round.{det}"] = int(flagged_fr["round"].min()) if len(flagged_fr) else None
        if f"detect_s.{det}" in trained:
            out[f"detect_s.{det}"] = float(trained[f"detect_s.{det}"].mean())
    out["detect_s"] = float(trained["detect_s"].mean())
    out["round_wall_s"] = float(trained["round_wall_s"].mean())
    out["client_train_s"] = float(trained["client_train_s"].mean())
    return out
