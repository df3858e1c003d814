"""One interface over serving engines, and the per-step, per-request records every engine returns.

A static batch of token-id prompts runs to a fixed number of new tokens (EOS ignored), so each engine
does the same work for the same call and its records can be compared step by step. Records hold raw
times; the statistics (TTFT, TPOT, ITL, throughput) are computed once, in `serving.metrics`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Phases an engine announces to its hook, so a caller can open and close measurement windows (energy
# of the steady state) at the right step without the engine knowing about monitors.
DECODE_START = "decode_start"  # the prefill is done; every request is decoding (batch full)
DRAIN_START = "drain_start"  # the first request finished; the batch is no longer full
RUN_END = "run_end"  # the last token is out
Hook = Callable[[str], None]


@dataclass
class StepRecord:
    """One engine step (a forward over the batch) and its duration in seconds, for step-time statistics."""

    index: int
    kind: str  # "prefill" | "decode" | "mixed" (an engine that prefills while it decodes)
    time_s: float
    batch: int  # requests still generating in this step
    tokens: int  # tokens produced in this step for requests still generating
    context: int  # longest sequence held in the KV cache after this step


@dataclass
class RequestRecord:
    """One request's token times, in seconds since the batch started; TTFT, TPOT and ITL come from them."""

    index: int
    prompt_len: int
    output_len: int  # tokens produced
    token_times_s: list[float]  # time of each produced token since the batch started

    @property
    def ttft_s(self) -> float:
        """Seconds to the first token (the prefill included) since the batch started."""
        return self.token_times_s[0]

    @property
    def e2e_s(self) -> float:
        """Seconds to the last token since the batch started."""
        return self.token_times_s[-1]


@dataclass
class BatchResult:
    """What one Engine.run returns: raw times, memory and KV bytes; serving.metrics makes the statistics.

    peak_memory_bytes is None where the engine cannot read it; extra["peak_memory_method"] says how it was.
    """

    engine: str
    model: str
    device: str  # torch device type of the run: "cpu" | "cuda"
    dtype: str
    steps: list[StepRecord]
    requests: list[RequestRecord]
    total_time_s: float  # wall time around the whole run (prefill + decode, synchronised)
    peak_memory_bytes: int | None
    kv_cache_bytes: int  # bytes the KV cache held at its largest
    output_ids: list[list[int]] | None = None  # generated tokens per request, where the engine keeps them
    extra: dict = field(default_factory=dict)

    @property
    def prefill_time_s(self) -> float:
        """Seconds in prefill-only steps (a mixed step counts as decode)."""
        return sum(s.time_s for s in self.steps if s.kind == "prefill")

    @property
    def decode_time_s(self) -> float:
        """Seconds in every step but the prefill-only ones (decode and mixed steps)."""
        return sum(s.time_s for s in self.steps if s.kind != "prefill")

    @property
    def input_tokens(self) -> int:
        """Prompt tokens over the batch."""
        return sum(r.prompt_len for r in self.requests)

    @property
    def output_tokens(self) -> int:
        """Tokens produced over the batch."""
        return sum(r.output_len for r in self.requests)


class Engine(abc.ABC):
    """What the harness needs of a serving engine (hf, vllm), so one sweep measures each alike.

    A hook, when given to run, is called with DECODE_START, DRAIN_START and RUN_END as the batch gets there.
    """

    name: str

    @abc.abstractmethod
    def run(
        self, prompts: list[list[int]], max_new_tokens: int | Sequence[int], hook: Hook | None = None
    ) -> BatchResult:
        """Generate exactly max_new_tokens (one count, or one per prompt) for every prompt, as one batch."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """Model, device name, precision and engine settings, for result rows."""

    def close(self) -> None:  # noqa: B027 - most engines hold nothing that needs releasing
        """Release the device (a server process, GPU memory)."""


def per_request_lengths(prompts: Sequence[Sequence[int]], max_new_tokens: int | Sequence[int]) -> list[int]:
    """max_new_tokens as one count per prompt.

    ValueError for no prompts, a list of counts that does not match the prompts, an empty prompt or a count
    below 1.
    """
    if not prompts:
        raise ValueError("run needs at least one prompt")
    if isinstance(max_new_tokens, int):
        lengths = [max_new_tokens] * len(prompts)
    else:
        lengths = [int(n) for n in max_new_tokens]
        if len(lengths) != len(prompts):
            raise ValueError(f"{len(lengths)} max_new_tokens for {len(prompts)} prompts")
    if min(lengths) < 1 or min(len(p) for p in prompts) < 1:
        raise ValueError("every prompt needs a token and every request at least one new token")
    return lengths


def make_engine(kind: str, model: str, **options) -> Engine:
    """The engine by name; vLLM is imported only when asked for (it lives in .venv-vllm on GPU nodes)."""
    if kind == "hf":
        from common.serving.hf_engine import HFEngine

        return HFEngine(model, **options)
    if kind == "vllm":
        from common.serving.vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    raise ValueError(f"engine must be 'hf' or 'vllm', not {kind!r}")
