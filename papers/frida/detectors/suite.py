"""FRIDA's detectors (membership and property inference, majority vote) and the baselines, built
by name from the federation config and run together on each round."""

from __future__ import annotations

import time

from papers.frida.baselines import DAGMM, CosineToRandom, FoolsGold, L2Norm, UpdateStd
from papers.frida.config import FederationConfig
from papers.frida.detectors.base import DetectorOutput, RoundView
from papers.frida.detectors.membership import MiaGrad, MiaLoss
from papers.frida.detectors.property import PiaDist, PiaIncons
from papers.frida.detectors.vote import majority_vote


def _build(name: str, fed: FederationConfig):
    return {
        "mia_loss": MiaLoss,
        "mia_grad": MiaGrad,
        "pia_dist": PiaDist,
        "pia_incons": PiaIncons,
        "l2": L2Norm,
        "std": UpdateStd,
        "cosine": lambda: CosineToRandom(fed.seed),
        "foolsgold": FoolsGold,
        "dagmm": lambda: DAGMM(fed.seed, fed.dagmm_steps, "plain", fed.dagmm_dim),
        "std_dagmm": lambda: DAGMM(fed.seed, fed.dagmm_steps, "std", fed.dagmm_dim),
        "delta_dagmm": lambda: DAGMM(fed.seed, fed.dagmm_steps, "delta", fed.dagmm_dim),
    }[name]()


class DetectorSuite:
    """The configured detectors plus whatever the vote needs; `run` times each one."""

    def __init__(self, fed: FederationConfig):
        self.fed = fed
        needed = [d for d in fed.detectors if d != "vote"]
        if "vote" in fed.detectors:
            needed += [d for d in fed.vote if d not in needed]
        self.detectors = {name: _build(name, fed) for name in needed}

    def run(self, view: RoundView) -> tuple[dict[str, DetectorOutput], dict[str, float]]:
        outputs, seconds = {}, {}
        for name, detector in self.detectors.items():
            start = time.perf_counter()
            outputs[name] = detector(view)
            seconds[name] = time.perf_counter() - start
        if "vote" in self.fed.detectors:
            start = time.perf_counter()
            outputs["vote"] = majority_vote({d: outputs[d] for d in self.fed.vote})
            seconds["vote"] = time.perf_counter() - start
        return outputs, seconds
