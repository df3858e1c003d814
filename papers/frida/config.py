"""Typed configs of every FRIDA experiment, registered with Hydra on import.

`FederationConfig` is the one description of a federation (data, model, clients and their sampling,
free-riders, the canary protocol, detectors, the server's reply checks). The Flower apps receive it
as JSON inside the run config, so the simulation, deployment and in-process runtimes all read the same
fields; `federation_from_dict` is the gate for that JSON and checks it with the same rules as the
command line (common.validation): every key has a rule, and the cross-key rules live in `check()`.
All of it runs before a run directory exists, so a bad value exits 2 and leaves nothing behind.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from common.errors import BadInput
from common.schema import FiguresConfig, RunConfig, spec

# the names common.data serves (tests/papers/frida/test_config.py checks them against the registry)
DATASETS = (
    "digits",
    "mnist",
    "mnist1d",
    "fashion_mnist",
    "shakespeare",
    "synthetic_gaussian",
    "cifar10",
    "cifar100",
    "shakespeare_leaf",
)
TEXT_DATASETS = ("shakespeare", "shakespeare_leaf")
MODELS = ("mlp", "lenet5", "cifar_cnn", "gru")
PARTITIONS = ("iid", "dirichlet", "natural")
ATTACKS = ("plain", "disguised", "delta_weights", "gradient_noiser", "adaptive", "canary_aware")
FREE_RIDERS = ("none", *ATTACKS, "switching")
FRIDA_DETECTORS = ("mia_loss", "mia_grad", "pia_dist", "pia_incons", "vote")
BASELINE_DETECTORS = ("l2", "std", "cosine", "foolsgold", "dagmm", "std_dagmm", "delta_dagmm")
DETECTORS = FRIDA_DETECTORS + BASELINE_DETECTORS
FAULT_KINDS = (
    "raise",
    "nan",
    "inf",
    "huge",
    "shape",
    "missing",
    "extra",
    "dtype",
    "nometrics",
    "badcount",
    "drop",
)
CANARY_MODES = ("every_batch", "every_epoch", "every_round")
CANARY_LABELS = ("true", "random")
RUNTIMES = ("inprocess", "simulation", "deployment")


@dataclass
class FederationConfig:
    dataset: str = spec("digits", choices=DATASETS)
    model: str = spec("mlp", choices=MODELS)
    hidden: int = spec(64, ge=1)
    num_clients: int = spec(10, ge=2)
    fraction_train: float = spec(1.0, gt=0, le=1)  # clients sampled per round: ceil(fraction * num_clients)
    rounds: int = spec(10, ge=1)
    partition: str = spec("dirichlet", choices=PARTITIONS)
    alpha: float = spec(0.1, gt=0)
    min_partition_size: int = spec(10, ge=0)
    max_client_samples: int = spec(0, ge=0)  # 0: a client keeps its whole partition
    test_fraction: float = spec(0.2, gt=0, lt=1)
    pool_fraction: float = spec(0.2, gt=0, lt=1)
    nonmember_size: int = spec(40, ge=1)
    local_epochs: int = spec(5, ge=1)
    batch_size: int = spec(32, ge=0)
    lr: float = spec(0.3, gt=0)
    canary_size: int = spec(20, ge=0)
    canary_mode: str = spec("every_batch", choices=CANARY_MODES)
    canary_per_batch: int = spec(0, ge=0)  # every_batch: canary samples per batch (0: all of them)
    canary_labels: str = spec("true", choices=CANARY_LABELS)
    free_rider: str = spec("gradient_noiser", choices=FREE_RIDERS)
    num_free_riders: int = spec(2, ge=0)
    switch_round: int = spec(0, ge=0)  # switching free-riders free-ride from this round (0: half-way)
    switch_to: str = spec("gradient_noiser", choices=ATTACKS)
    disguise_m: float = spec(1.0, ge=0)
    disguise_gamma: float = spec(1.0, ge=0)
    detectors: list[str] = spec(factory=lambda: list(DETECTORS), choices=DETECTORS)
    vote: list[str] = spec(
        factory=lambda: ["mia_loss", "mia_grad", "pia_incons"],
        choices=tuple(d for d in DETECTORS if d != "vote"),
    )
    z_threshold: float = spec(2.0, gt=0)
    mia_alpha: float = spec(0.05, gt=0, lt=1)
    mia_threshold_mix: float = spec(0.5, gt=0, lt=1)
    pia_noise_samples: int = spec(256, ge=1)
    pia_dist_threshold: float = spec(0.01, gt=0, lt=1)
    dagmm_steps: int = spec(10, ge=1)
    dagmm_dim: int = spec(256, ge=0)
    mitigate: bool = spec(False, free="on or off")
    mitigate_by: str = spec("vote", choices=DETECTORS)
    faults: list[str] = spec(factory=list, free="'<partition>:<round>:<kind>' entries, parsed in check()")
    reply_max_abs: float = spec(1e4, gt=0)  # a reply holding a larger weight is refused
    reply_max_update_ratio: float = spec(100.0, gt=0)  # |update| / max(|global model|, 1) above: refused
    max_examples: int = spec(10_000_000, ge=1)  # a reply claiming more training examples is refused
    round_timeout_s: float = spec(600.0, gt=0)  # the server waits this long for a round's replies
    seed: int = spec(0, ge=0)
    data_dir: str = spec("", free="a directory (paths.data_dir); empty: nothing cached")

    # ---- derived --------------------------------------------------------------------------------
    @property
    def sampled(self) -> int:
        """Clients sampled per round."""
        return min(self.num_clients, max(1, math.ceil(self.fraction_train * self.num_clients - 1e-9)))

    @property
    def free_ride_from(self) -> int:
        """The round from which the free-riders free-ride (switching ones are honest before it)."""
        if self.free_rider != "switching":
            return 1
        return self.switch_round or self.rounds // 2 + 1

    @property
    def attack(self) -> str:
        """What a free-rider sends once it free-rides."""
        return self.switch_to if self.free_rider == "switching" else self.free_rider

    # ---- cross-key rules ------------------------------------------------------------------------
    def check(self) -> None:
        """Rules between keys; each error starts with the key to change."""
        text = self.dataset in TEXT_DATASETS
        if text != (self.model == "gru"):
            raise BadInput(
                f"fed.model: {self.model!r} does not fit fed.dataset={self.dataset!r} "
                f"(text datasets {', '.join(TEXT_DATASETS)} take gru, images the others)"
            )
        if self.model == "lenet5" and self.dataset in ("digits", "mnist1d"):
            raise BadInput(f"fed.model: lenet5 needs 28x28 or larger images, not {self.dataset}")
        if self.partition == "natural" and not text:
            raise BadInput(
                f"fed.partition: natural (one client per speaker) needs a text dataset, not {self.dataset}"
            )
        if self.sampled < 2:
            raise BadInput(
                f"fed.fraction_train: {self.fraction_train} samples {self.sampled} of "
                f"{self.num_clients} clients per round; the detectors compare at least 2"
            )
        if self.free_rider == "none" and self.num_free_riders:
            raise BadInput("fed.num_free_riders: must be 0 when fed.free_rider=none")
        if self.num_free_riders > self.sampled:
            raise BadInput(
                f"fed.num_free_riders: {self.num_free_riders} free-riders is more than the "
                f"{self.sampled} clients sampled per round (fed.num_clients x fed.fraction_train)"
            )
        if self.free_rider == "switching" and self.switch_round > self.rounds:
            raise BadInput(f"fed.switch_round: {self.switch_round} is after the last round ({self.rounds})")
        if "vote" in self.detectors and not self.vote:
            raise BadInput("fed.vote: names no detector, but fed.detectors has 'vote'")
        used = set(self.detectors) | (set(self.vote) if "vote" in self.detectors else set())
        needs_canary = {"mia_loss", "mia_grad"} & used
        if needs_canary and self.canary_size < 1:
            raise BadInput(
                f"fed.canary_size: must be >= 1 for the membership detectors {sorted(needs_canary)}"
            )
        if self.canary_per_batch > self.canary_size:
            raise BadInput(
                f"fed.canary_per_batch: {self.canary_per_batch} is more than the canary "
                f"(fed.canary_size={self.canary_size})"
            )
        if self.mitigate and self.mitigate_by not in self.detectors:
            raise BadInput(
                f"fed.mitigate_by: {self.mitigate_by!r} must be one of fed.detectors {self.detectors}"
            )
        for spec_ in self.faults:
            pid, _, _ = parse_fault(spec_)
            if pid >= self.num_clients:
                raise BadInput(f"fed.faults: entry {spec_!r} names partition {pid} of {self.num_clients}")


def parse_fault(spec_: str) -> tuple[int, int, str]:
    """'<partition>:<round>:<kind>' -> (partition, round, kind)."""
    parts = str(spec_).split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in FAULT_KINDS:
        raise BadInput(
            f"fed.faults: entry {spec_!r} must read '<partition>:<round>:<kind>', kind one of "
            f"{', '.join(FAULT_KINDS)}"
        )
    return int(parts[0]), int(parts[1]), parts[2]


def _partition_entries(key: str, labels: list[str]) -> None:
    for label in labels:
        if label in ("iid", "natural"):
            continue
        try:
            alpha = float(label)
        except ValueError:
            alpha = -1.0
        if not alpha > 0 or not math.isfinite(alpha):
            raise BadInput(
                f"{key}: entry {label!r} must be 'iid', 'natural' or a Dirichlet alpha > 0 such as '0.1'"
            )


@dataclass
class DetectConfig(RunConfig):
    fed: FederationConfig = field(default_factory=FederationConfig)
    runtime: str = spec("inprocess", choices=RUNTIMES)
    sim_cpus: int = spec(2, ge=1)
    client_cpus: float = spec(1.0, gt=0)
    deploy_timeout_s: float = spec(300.0, gt=0)


GRID_AXIS_OF = {
    "fed.dataset": "datasets",
    "fed.model": "datasets",
    "fed.free_rider": "free_riders",
    "fed.partition": "partitions",
    "fed.alpha": "partitions",
    "fed.num_free_riders": "num_free_riders",
}


@dataclass
class GridConfig(RunConfig):
    """The grid's axes: every combination of dataset x free-rider kind x partition x number of
    free-riders x seed is one federation (a cell), plus the mitigation runs."""

    fed: FederationConfig = field(default_factory=FederationConfig)
    datasets: list[str] = spec(factory=list, choices=DATASETS)  # empty: fed.dataset
    free_riders: list[str] = spec(factory=list, nonempty=True, choices=FREE_RIDERS[1:])
    partitions: list[str] = spec(factory=list, nonempty=True, free="'iid', 'natural' or an alpha; check()")
    num_free_riders: list[int] = spec(factory=list, nonempty=True, ge=0)
    seeds: list[int] = spec(factory=list, nonempty=True, ge=0)
    mitigation_partitions: list[str] = spec(factory=list, free="as partitions; empty: no mitigation runs")
    mitigation_num_free_riders: list[int] = spec(factory=list, ge=0)
    workers: int = spec(1, ge=1)

    def check(self) -> None:
        _partition_entries("partitions", self.partitions)
        _partition_entries("mitigation_partitions", self.mitigation_partitions)
        if self.mitigation_partitions and not self.mitigation_num_free_riders:
            raise BadInput(
                "mitigation_num_free_riders: must name at least one count when mitigation_partitions is set"
            )
        for key in ("num_free_riders", "mitigation_num_free_riders"):
            for n in getattr(self, key):
                if n > self.fed.sampled:
                    raise BadInput(
                        f"{key}: {n} free-riders is more than the {self.fed.sampled} clients "
                        f"sampled per round (fed.num_clients x fed.fraction_train)"
                    )
        for dataset in self.datasets:
            if (dataset in TEXT_DATASETS) != (self.fed.model == "gru"):
                raise BadInput(f"datasets: {dataset!r} does not fit fed.model={self.fed.model!r}")
        from papers.frida.cells import cell_federation, grid_cells

        cells = grid_cells(
            self.fed,
            self.free_riders,
            self.partitions,
            self.num_free_riders,
            self.seeds,
            self.mitigation_partitions,
            self.mitigation_num_free_riders,
            self.datasets,
        )
        for cell in cells:  # every cell's federation passes fed.check(), or the grid does not start
            try:
                cell_federation(self.fed, cell)
            except BadInput as err:
                axes = ", ".join(
                    f"{k}={cell[k]}" for k in ("dataset", "free_rider", "partition", "num_free_riders")
                )
                key = str(err).split(":")[0]
                axis = GRID_AXIS_OF.get(key, key)
                raise BadInput(f"{axis}: {str(err)[len(key) + 2 :]} (in the grid's cell {axes})") from None


@dataclass
class CanaryConfig(RunConfig):
    """The canary protocol as the measured variable: each axis is varied alone around `fed` (one
    factor at a time), for each free-rider kind, partition and seed."""

    fed: FederationConfig = field(default_factory=FederationConfig)
    canary_modes: list[str] = spec(factory=list, choices=CANARY_MODES)
    canary_sizes: list[int] = spec(factory=list, ge=1)
    canary_per_batch: list[int] = spec(factory=list, ge=0)
    local_epochs: list[int] = spec(factory=list, ge=1)
    lrs: list[float] = spec(factory=list, gt=0)
    free_riders: list[str] = spec(factory=list, nonempty=True, choices=FREE_RIDERS[1:])
    partitions: list[str] = spec(factory=list, nonempty=True, free="'iid' or an alpha; check()")
    seeds: list[int] = spec(factory=list, nonempty=True, ge=0)
    workers: int = spec(1, ge=1)

    def check(self) -> None:
        _partition_entries("partitions", self.partitions)
        from papers.frida.cells import CANARY_FACTORS, canary_cells, cell_federation

        sweep = {k: getattr(self, k) for k in CANARY_FACTORS}
        for cell in canary_cells(self.fed, sweep, self.free_riders, self.partitions, self.seeds):
            try:
                cell_federation(self.fed, cell)
            except BadInput as err:
                key = cell["factor"] if cell["factor"] != "base" else "fed"
                raise BadInput(f"{key}: {cell['value']!r}: {err}") from None


@dataclass
class BenchConfig(RunConfig):
    """What the detectors and the canary cost per round, against what the clients' training costs."""

    fed: FederationConfig = field(default_factory=FederationConfig)
    repeats: int = spec(3, ge=1)
    # none: the same federation without a canary (and without the membership detectors)
    canary_modes: list[str] = spec(
        factory=lambda: ["none", *CANARY_MODES], nonempty=True, choices=("none", *CANARY_MODES)
    )


SCHEMAS = {
    "frida/detect": DetectConfig,
    "frida/grid": GridConfig,
    "frida/research": GridConfig,
    "frida/shakespeare": GridConfig,
    "frida/canary": CanaryConfig,
    "frida/bench": BenchConfig,
    "frida/figures": FiguresConfig,
}


def register_schemas() -> None:
    """Register every FRIDA schema with hydra (tests and tools compose configs directly); a command
    registers only its own, through `entrypoint(..., schema=...)`, which keeps `--help` fast."""
    from common.config import register_schema
    from common.report import ReportConfig

    for name, schema in {**SCHEMAS, "frida/report": ReportConfig}.items():
        register_schema(name, schema)


# ---- the federation as the Flower apps see it -----------------------------------------------------
def federation_from_dict(data: dict) -> FederationConfig:
    """The JSON the apps receive, checked by the same rules as the command line (names the key)."""
    from common.validation import build

    return build(FederationConfig, dict(data), "fed.")


def federation_to_json(fed: FederationConfig) -> str:
    return json.dumps(asdict(fed), sort_keys=True)


def federation_from_cfg(node) -> FederationConfig:
    """From the composed Hydra node (a DictConfig) to the plain dataclass the apps use."""
    from omegaconf import OmegaConf

    return federation_from_dict(OmegaConf.to_container(node, resolve=True))
