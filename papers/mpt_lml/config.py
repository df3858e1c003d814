"""Typed schemas of every mpt_lml experiment; importing this module registers them with hydra.

Knob values live in conf/mpt_lml/<experiment>.yaml (with the paper's value beside each); the schemas
only fix names and types, so a misspelt key or a wrong type fails at compose time, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from common.config import register_schema
from common.schema import FiguresConfig, RunConfig

PAPER = "mpt_lml"


@dataclass
class ConvergenceConfig(RunConfig):
    dims: list[int] = MISSING
    latent: int = MISSING
    n_data: int = MISSING
    noise_std: float = MISSING
    masks_per_size: list[int] = MISSING
    replicates: int = MISSING


@dataclass
class CurveConfig(RunConfig):
    dim: int = MISSING
    latents: list[int] = MISSING
    n_data: int = MISSING
    noise_std: float = MISSING
    masks_per_size: list[int] = MISSING


@dataclass
class PpcaTrainingConfig(RunConfig):
    dim: int = MISSING
    latent: int = MISSING
    n_data: int = MISSING
    noise_std: float = MISSING
    objectives: list[str] = MISSING
    masks_per_size: int = MISSING
    steps: int = MISSING
    lr: float = MISSING
    eval_every: int = MISSING
    seeds: list[int] = MISSING


@dataclass
class NoiseToLmlConfig(RunConfig):
    dim: int = MISSING
    latent: int = MISSING
    n_data: int = MISSING
    noise_std: float = MISSING
    steps: int = MISSING
    lr: float = MISSING
    checkpoints: list[int] = MISSING
    curve_masks_per_size: int = MISSING


@dataclass
class BernoulliDigitsConfig(RunConfig):
    dataset: str = MISSING
    max_train: int = MISSING
    test_fraction: float = MISSING
    threshold: float = MISSING
    latent: int = MISSING
    nodes_per_dim: int = MISSING
    objectives: list[str] = MISSING
    steps: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    eval_every: int = MISSING


@dataclass
class TinyBertConfig:
    hidden: int = MISSING
    layers: int = MISSING
    heads: int = MISSING
    intermediate: int = MISSING
    dropout: float = MISSING


@dataclass
class MlmTrainConfig:
    objectives: list[str] = MISSING
    steps: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    warmup: int = MISSING


@dataclass
class MlmEvalConfig:
    sequences: int = MISSING
    rate_step: float = MISSING
    masks_per_size: int = MISSING
    collator_batch_size: int = MISSING


@dataclass
class MlmHmmConfig(RunConfig):
    hidden_states: int = MISSING
    symbols: int = MISSING
    seq_len: int = MISSING
    concentration: float = MISSING
    bert: TinyBertConfig = field(default_factory=TinyBertConfig)
    train: MlmTrainConfig = field(default_factory=MlmTrainConfig)
    eval: MlmEvalConfig = field(default_factory=MlmEvalConfig)


@dataclass
class MlmTextConfig(RunConfig):
    corpus: list[str] = MISSING
    seq_len: int = MISSING
    eval_fraction: float = MISSING
    bert: TinyBertConfig = field(default_factory=TinyBertConfig)
    train: MlmTrainConfig = field(default_factory=MlmTrainConfig)
    eval: MlmEvalConfig = field(default_factory=MlmEvalConfig)


@dataclass
class MlmGlueConfig(RunConfig):
    model_name: str = MISSING
    tasks: list[str] = MISSING
    chunk_len: int = MISSING
    max_chunks: int = MISSING
    device: str = MISSING
    batch_size: int = MISSING
    rate_step: float = MISSING
    masks_per_rate: int = MISSING
    collator_batch_size: int = MISSING


SCHEMAS = {
    "convergence": ConvergenceConfig,
    "curve": CurveConfig,
    "ppca_training": PpcaTrainingConfig,
    "noise_to_lml": NoiseToLmlConfig,
    "bernoulli_digits": BernoulliDigitsConfig,
    "mlm_hmm": MlmHmmConfig,
    "mlm_text": MlmTextConfig,
    "mlm_glue": MlmGlueConfig,
}
for _name, _cls in SCHEMAS.items():
    register_schema(f"{PAPER}/{_name}", _cls)

register_schema(f"{PAPER}/figures", FiguresConfig)


@dataclass
class BenchmarkConfig(RunConfig):
    """The batched MC MPT estimators against a per-mask loop over the same masks (a timing benchmark)."""

    dim: int = MISSING
    n: int = MISSING
    latent: int = MISSING
    masks: int = MISSING
    repeats: int = MISSING
    loop_repeats: int = MISSING


register_schema(f"{PAPER}/benchmark", BenchmarkConfig)
