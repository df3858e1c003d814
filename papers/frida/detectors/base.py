"""What every detector sees of a round, and what it returns.

A detector turns a round's client models into a suspicion score per client (higher = more likely a
free-rider, in the direction the detector was designed for; continuous, for ROC-AUC) and a flag per
client (its own decision rule, for precision, recall and mitigation). Detectors may keep state across
rounds (inconsistency, FoolsGold, DAGMM), keyed by partition id, since clients are sampled.

Scores are rounded to 9 decimals (`robust_z`, `DetectorOutput`): values that are equal in exact
arithmetic (two clients equally far from an even count's median) then tie exactly, so ROC-AUC and
flags do not depend on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from papers.frida.config import FederationConfig
from papers.frida.models import flatten, set_weights
from papers.frida.training import CanarySchedule, canary_schedule

DECIMALS = 9

Weights = dict[str, np.ndarray]


@dataclass
class ClientUpdate:
    partition_id: int
    weights: Weights
    num_examples: int


@dataclass
class RoundView:
    server_round: int
    fed: FederationConfig
    global_weights: Weights
    clients: list[ClientUpdate]
    canary_x: np.ndarray
    canary_y: np.ndarray
    nonmember_x: np.ndarray
    nonmember_y: np.ndarray
    num_classes: int
    model: nn.Module  # a template; detectors load weights into it, never train it in place
    cache: dict = field(default_factory=dict)  # per-round results shared between detectors

    def schedule(self, client: ClientUpdate) -> CanarySchedule:
        """The round an honest client of this size trains under the canary protocol."""
        fed = self.fed
        return canary_schedule(
            client.num_examples,
            len(self.canary_y),
            fed.batch_size,
            fed.local_epochs,
            fed.canary_mode,
            fed.canary_per_batch,
        )

    @property
    def updates(self) -> np.ndarray:
        """[clients, parameters]: each client's model minus the global model."""
        if "updates" not in self.cache:
            g = flatten(self.global_weights)
            self.cache["updates"] = np.stack([flatten(c.weights) - g for c in self.clients])
        return self.cache["updates"]

    def load(self, weights: Weights) -> nn.Module:
        return set_weights(self.model, weights)


@dataclass
class DetectorOutput:
    scores: np.ndarray  # float, higher = more suspicious; NaN where undefined (e.g. round 1)
    flags: np.ndarray  # bool
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # per-client diagnostics worth logging

    def __post_init__(self):
        self.scores = np.round(np.asarray(self.scores, dtype=np.float64), DECIMALS)


def robust_z(values) -> np.ndarray:
    """(x - median) / (1.4826 MAD): a z-score that a minority of free-riders cannot drag."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.full_like(x, np.nan)
    med = np.median(x[finite])
    mad = 1.4826 * np.median(np.abs(x[finite] - med))
    scale = max(mad, 1e-6 * abs(med), 1e-12)
    return np.round((x - med) / scale, DECIMALS)


def outlier_flags(z: np.ndarray, threshold: float) -> np.ndarray:
    return np.nan_to_num(z, nan=-np.inf) > threshold
