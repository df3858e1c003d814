"""Typed configs of every FRIDA experiment, registered with Hydra on import.

`FederationConfig` is the one description of a federation (data, model, clients, free-riders,
detectors). The Flower apps receive it as JSON inside the run config, so the simulation, deployment
and in-process runtimes all read the same fields; `federation_from_dict` is the gate for that JSON
and names any unknown key or bad value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from common.config import register_schema
from common.errors import BadInput
from common.schema import FiguresConfig, RunConfig

MODELS = ("mlp", "lenet5", "cifar_cnn")
PARTITIONS = ("iid", "dirichlet")
FREE_RIDERS = ("none", "plain", "disguised", "gradient_noiser", "adaptive", "canary_aware")
FRIDA_DETECTORS = ("mia_loss", "mia_grad", "pia_dist", "pia_incons", "vote")
BASELINE_DETECTORS = ("l2", "std", "cosine", "dagmm", "std_dagmm")
DETECTORS = FRIDA_DETECTORS + BASELINE_DETECTORS
FAULT_KINDS = ("raise", "nan")
CANARY_LABELS = ("true", "random")
RUNTIMES = ("inprocess", "simulation", "deployment")


@dataclass
class FederationConfig:
    dataset: str = "digits"
    model: str = "mlp"
    hidden: int = 64
    num_clients: int = 10
    rounds: int = 10
    partition: str = "dirichlet"
    alpha: float = 0.1
    min_partition_size: int = 10
    test_fraction: float = 0.2
    pool_fraction: float = 0.2
    nonmember_size: int = 40
    local_epochs: int = 5
    batch_size: int = 32
    lr: float = 0.3
    canary_size: int = 20
    canary_every_batch: bool = True
    canary_labels: str = "true"
    free_rider: str = "gradient_noiser"
    num_free_riders: int = 2
    disguise_m: float = 1.0
    disguise_gamma: float = 1.0
    detectors: list[str] = field(default_factory=lambda: list(DETECTORS))
    vote: list[str] = field(default_factory=lambda: ["mia_loss", "mia_grad", "pia_incons"])
    z_threshold: float = 2.0
    mia_alpha: float = 0.05
    mia_threshold_mix: float = 0.5
    pia_noise_samples: int = 256
    pia_dist_threshold: float = 0.01
    dagmm_steps: int = 10
    dagmm_dim: int = 256
    mitigate: bool = False
    mitigate_by: str = "vote"
    faults: list[str] = field(default_factory=list)
    seed: int = 0
    data_dir: str = ""


@dataclass
class DetectConfig(RunConfig):
    fed: FederationConfig = field(default_factory=FederationConfig)
    runtime: str = "inprocess"
    sim_cpus: int = 2
    client_cpus: float = 1.0
    deploy_timeout_s: float = 300.0


@dataclass
class GridConfig(RunConfig):
    fed: FederationConfig = field(default_factory=FederationConfig)
    free_riders: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    num_free_riders: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    mitigation_partitions: list[str] = field(default_factory=list)
    mitigation_num_free_riders: list[int] = field(default_factory=list)
    workers: int = 1


@dataclass
class BenchConfig(RunConfig):
    fed: FederationConfig = field(default_factory=FederationConfig)
    repeats: int = 3


register_schema("frida/detect", DetectConfig)
register_schema("frida/grid", GridConfig)
register_schema("frida/bench", BenchConfig)
register_schema("frida/figures", FiguresConfig)


# ---- the federation as the Flower apps see it -----------------------------------------------------
def _fail(key: str, value, choices) -> BadInput:
    return BadInput(f"fed.{key}={value!r} is not one of {', '.join(map(str, choices))}")


def validate(fed: FederationConfig) -> FederationConfig:
    """Values a typo would otherwise turn into a crash deep inside a client process."""
    if fed.model not in MODELS:
        raise _fail("model", fed.model, MODELS)
    if fed.partition not in PARTITIONS:
        raise _fail("partition", fed.partition, PARTITIONS)
    if fed.canary_labels not in CANARY_LABELS:
        raise _fail("canary_labels", fed.canary_labels, CANARY_LABELS)
    if fed.free_rider not in FREE_RIDERS:
        raise _fail("free_rider", fed.free_rider, FREE_RIDERS)
    for key in ("detectors", "vote"):
        for name in getattr(fed, key):
            if name not in DETECTORS:
                raise _fail(key, name, DETECTORS)
    if "vote" in fed.vote:
        raise BadInput("fed.vote lists the detectors that vote; it cannot contain 'vote' itself")
    if "vote" in fed.detectors and not fed.vote:
        raise BadInput("fed.detectors has 'vote' but fed.vote names no detector to vote")
    used = set(fed.detectors) | (set(fed.vote) if "vote" in fed.detectors else set())
    needs_canary = {"mia_loss", "mia_grad"} & used
    if needs_canary and fed.canary_size < 1:
        raise BadInput(f"fed.canary_size must be >= 1 for the membership detectors {sorted(needs_canary)}")
    if fed.mitigate and fed.mitigate_by not in fed.detectors:
        raise BadInput(f"fed.mitigate_by={fed.mitigate_by!r} must be one of fed.detectors {fed.detectors}")
    if not 0 <= fed.num_free_riders <= fed.num_clients:
        raise BadInput(f"fed.num_free_riders={fed.num_free_riders} must be in [0, fed.num_clients]")
    if fed.num_clients < 2 or fed.rounds < 1:
        raise BadInput("fed.num_clients must be >= 2 and fed.rounds >= 1")
    if fed.lr <= 0 or fed.local_epochs < 1 or fed.batch_size < 0:
        raise BadInput("fed.lr > 0, fed.local_epochs >= 1 and fed.batch_size >= 0 (0 = full batch) needed")
    for spec in fed.faults:
        parse_fault(spec)
    return fed


def parse_fault(spec: str) -> tuple[int, int, str]:
    """'<partition>:<round>:<raise|nan>' -> (partition, round, kind)."""
    parts = str(spec).split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in FAULT_KINDS:
        raise BadInput(f"fed.faults entry {spec!r} must read '<partition>:<round>:<raise|nan>'")
    return int(parts[0]), int(parts[1]), parts[2]


def federation_from_dict(data: dict) -> FederationConfig:
    known = {f.name for f in fields(FederationConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInput(f"unknown federation key(s) {unknown}; known: {', '.join(sorted(known))}")
    return validate(FederationConfig(**data))


def federation_to_json(fed: FederationConfig) -> str:
    return json.dumps(asdict(fed), sort_keys=True)


def federation_from_cfg(node) -> FederationConfig:
    """From the composed Hydra node (a DictConfig) to the plain dataclass the apps use."""
    from omegaconf import OmegaConf

    return federation_from_dict(OmegaConf.to_container(node, resolve=True))
