"""Property inference: the label distribution a client's update reveals.

With softmax cross-entropy, the gradient of the last layer's bias for class c is the batch mean of
(p_c - y_c). Summed over SGD steps, the bias change is

    delta_b_c = -(lr / B) * sum over steps and samples of (p_c - y_c),

so the number of times label c was trained on is  Y_c = sum p_c + B * delta_b_c / lr.  The unknown
sum of predictions is estimated from random-noise inputs (mean softmax of the global and the client
model on noise: no real data needed), in the spirit of LLG (Wainakh et al. 2022). Subtracting the
canary's known share leaves the client's own label counts. For one full-batch step with a model whose
predictions do not depend on the input, the formula is exact (tests/papers/frida: hand-built case).

- `PiaDist`: an honest client's counts reflect its own data; a free-rider's reflect nothing, or the
  global step it copied. The dist-score is the Jensen-Shannon distance of the inferred distribution
  to the nearest of {global distribution, uniform, no-signal}; small distance = suspicious. "No
  signal" is what this estimator infers from an unchanged bias (the noise-calibrated prediction
  term alone): it plays the role uniform plays for estimators that assume uniform predictions, so
  an update that carries no label information is recognised as such.
- `PiaIncons`: a client's data do not change, so its inferred distribution should not either;
  the distance between consecutive rounds measures how much it moves.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from papers.frida.detectors.base import DetectorOutput, RoundView, outlier_flags, robust_z
from papers.frida.models import random_inputs
from papers.frida.training import canary_schedule

HEAD_BIAS = "head.bias"


@torch.no_grad()
def mean_noise_prediction(model: torch.nn.Module, noise: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.softmax(model(noise), dim=1).mean(0).double().numpy()


def infer_label_counts(
    bias_change: np.ndarray,
    p_mean: np.ndarray,
    num_examples: int,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    canary_y: np.ndarray | None = None,
    canary_mode: str = "every_batch",
    canary_per_batch: int = 0,
) -> np.ndarray:
    """Label counts of a client's own data from its last-layer bias change (see module docstring);
    the canary's share is known from the protocol (training.canary_schedule) and subtracted."""
    num_classes = len(bias_change)
    k = 0 if canary_y is None else len(canary_y)
    sched = canary_schedule(num_examples, k, batch_size, epochs, canary_mode, canary_per_batch)
    canary_counts = (
        np.bincount(canary_y, weights=sched.uses, minlength=num_classes) if k else np.zeros(num_classes)
    )
    trained = sched.total_grads  # sample-gradients in total
    label_sums = trained * p_mean + sched.mean_batch * bias_change / lr
    label_sums -= canary_counts
    return np.clip(label_sums / epochs, 0.0, None)


def to_distribution(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))


def inferred_distributions(view: RoundView) -> np.ndarray:
    """[clients, classes], computed once per round and shared by the two property detectors; the
    no-signal distribution of each client goes to view.cache["pia_q0"]."""
    if "pia_q" in view.cache:
        return view.cache["pia_q"]
    fed = view.fed
    noise = random_inputs(
        view.model,
        fed.pia_noise_samples,
        view.nonmember_x.shape[1:],
        fed.seed + view.server_round,
        view.num_classes,
    )
    p_global = mean_noise_prediction(view.load(view.global_weights), noise)
    rows, priors = [], []
    for c in view.clients:
        p_mean = 0.5 * (p_global + mean_noise_prediction(view.load(c.weights), noise))
        change = c.weights[HEAD_BIAS].astype(np.float64) - view.global_weights[HEAD_BIAS]
        for out, delta in ((rows, change), (priors, np.zeros_like(change))):
            out.append(
                to_distribution(
                    infer_label_counts(
                        delta,
                        p_mean,
                        c.num_examples,
                        lr=fed.lr,
                        epochs=fed.local_epochs,
                        batch_size=fed.batch_size,
                        canary_y=view.canary_y,
                        canary_mode=fed.canary_mode,
                        canary_per_batch=fed.canary_per_batch,
                    )
                )
            )
    view.cache["pia_q"], view.cache["pia_q0"] = np.array(rows), np.array(priors)
    return view.cache["pia_q"]


class PiaDist:
    name = "pia_dist"

    def __call__(self, view: RoundView) -> DetectorOutput:
        q = inferred_distributions(view)
        weights = np.array([c.num_examples for c in view.clients], dtype=np.float64)
        global_q = to_distribution((q * weights[:, None]).sum(0))
        uniform = np.full(q.shape[1], 1.0 / q.shape[1])
        dist = np.array(
            [
                min(jensenshannon(row, global_q), jensenshannon(row, uniform), jensenshannon(row, q0))
                for row, q0 in zip(q, view.cache["pia_q0"])
            ]
        )
        # flagged when {global, uniform, no-signal} explain the inferred labels almost exactly
        return DetectorOutput(-dist, dist < view.fed.pia_dist_threshold, {"dist": dist})


class PiaIncons:
    name = "pia_incons"

    def __init__(self):
        self.previous: dict[int, np.ndarray] = {}

    def __call__(self, view: RoundView) -> DetectorOutput:
        q = inferred_distributions(view)
        moved = np.array(
            [
                jensenshannon(row, self.previous[c.partition_id])
                if c.partition_id in self.previous
                else np.nan
                for c, row in zip(view.clients, q)
            ]
        )
        for c, row in zip(view.clients, q):
            self.previous[c.partition_id] = row
        z = robust_z(moved)
        return DetectorOutput(moved, outlier_flags(z, view.fed.z_threshold), {"moved": moved})
