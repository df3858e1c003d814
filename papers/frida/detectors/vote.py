"""Majority vote: a client is flagged when more than half of the member detectors flag it. The score
is the fraction of members that flag, with the members' clipped z-scores as a small tie-breaker so
that ROC-AUC is not computed on a handful of distinct values."""

from __future__ import annotations

import numpy as np

from papers.frida.detectors.base import DetectorOutput, robust_z


def majority_vote(outputs: dict[str, DetectorOutput]) -> DetectorOutput:
    flags = np.stack([o.flags for o in outputs.values()]).astype(np.float64)
    fraction = flags.mean(0)
    z = np.stack([np.clip(np.nan_to_num(robust_z(o.scores), nan=0.0), -10, 10) for o in outputs.values()])
    return DetectorOutput(fraction + 1e-3 * z.mean(0), fraction > 0.5, {"fraction": fraction})
