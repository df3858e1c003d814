"""vLLM's offline engine behind the common interface (GPU nodes, in .venv-vllm: `make setup-vllm`).

As the paper's offline profiler: requests as token ids (no tokenizer), `ignore_eos`, random weights
with `load_format="dummy"`, and the engine stepped by hand so each step can be timed: with enough
token budget all prefills run in the first step(s) and then every step decodes the whole batch.
vLLM is imported only here, only when this engine is built; where it is absent, `VLLMUnavailable`
says so (tests skip on it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common.serving.engine import (
    DECODE_START,
    DRAIN_START,
    RUN_END,
    BatchResult,
    Engine,
    Hook,
    RequestRecord,
    StepRecord,
    per_request_lengths,
)
from common.serving.models import ARCHS, get_config
from common.serving.roofline import kv_bytes_per_token, model_shape

BLOCK_SIZE = 16  # vLLM's default KV block (tokens); the paper's runs use it


class VLLMUnavailable(ImportError):
    """vLLM is not installed in this environment."""


def import_vllm():
    """The vllm module; VLLMUnavailable, saying where vLLM lives, when it is not installed here."""
    try:
        import vllm
    except ImportError as err:
        raise VLLMUnavailable(
            f"vLLM is not installed here ({err}); it lives in .venv-vllm on GPU nodes (`make setup-vllm`)"
        ) from None
    return vllm


def model_dir_for(name: str, root: str | Path) -> str:
    """A directory vLLM can load: our architecture's config.json (weights come from load_format=dummy),
    or the name itself for a real checkpoint."""
    if name not in ARCHS:
        return name
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = get_config(name)
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]  # vLLM picks by it
    path = Path(root) / name
    config.save_pretrained(path)
    return str(path)


class VLLMEngine(Engine):
    """vLLM's offline LLMEngine stepped by hand, so its steps are timed like the hf engine's (GPU only).

    Step times are host wall time around LLMEngine.step(); peak memory is all device memory in use, as vLLM
    preallocates its KV cache.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        dtype: str = "fp16",
        max_num_seqs: int = 256,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        max_model_len: int = 2048,
        max_num_batched_tokens: int | None = None,
        seed: int = 0,
        device: str = "auto",
        **llm_kwargs,
    ):
        """device is accepted for the harness's uniform call; vLLM always runs on the GPU."""
        vllm = import_vllm()
        self.model_name, self.dtype = model, dtype
        self._tmp = tempfile.TemporaryDirectory(prefix="vllm_model_")
        random_weights = model in ARCHS
        self.llm = vllm.LLM(
            model=model_dir_for(model, self._tmp.name),
            dtype={"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype],
            max_num_seqs=max_num_seqs,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
            max_model_len=max_model_len,
            max_num_batched_tokens=max_num_batched_tokens,
            seed=seed,
            load_format="dummy" if random_weights else "auto",
            skip_tokenizer_init=True,
            **llm_kwargs,
        )
        self.settings = {
            "max_num_seqs": max_num_seqs,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "max_model_len": max_model_len,
            "max_num_batched_tokens": max_num_batched_tokens,
        }
        self.weights = "random" if random_weights else "pretrained"
        self.kv_per_token = kv_bytes_per_token(model_shape(model), dtype)
        self.vllm_version = vllm.__version__

    def describe(self) -> dict:
        """Model, weights, size, GPU, precision, vLLM version and settings: every result row's columns."""
        import torch

        shape = model_shape(self.model_name)
        return {
            "engine": self.name,
            "model": self.model_name,
            "weights": self.weights,
            "n_params": shape.n_params,
            "vocab_size": get_config(self.model_name).vocab_size,
            "device": "cuda",
            "device_name": torch.cuda.get_device_name(0),
            "precision": self.dtype,
            "vllm_version": self.vllm_version,
            **self.settings,
        }

    def run(
        self, prompts: list[list[int]], max_new_tokens: int | Sequence[int], hook: Hook | None = None
    ) -> BatchResult:
        """Add every prompt as a request and step until all finish, timing each step on the host."""
        import torch
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        lengths = per_request_lengths(prompts, max_new_tokens)
        engine = self.llm.llm_engine
        for i, (p, n) in enumerate(zip(prompts, lengths)):
            engine.add_request(
                str(i),
                TokensPrompt(prompt_token_ids=list(p)),
                SamplingParams(max_tokens=n, ignore_eos=True, temperature=0.0, detokenize=False),
            )
        produced = [0] * len(prompts)
        token_times: list[list[float]] = [[] for _ in prompts]
        steps: list[StepRecord] = []
        notify = hook or (lambda phase: None)
        decoding = draining = False
        start = time.perf_counter()
        while engine.has_unfinished_requests():
            t0 = time.perf_counter()
            outputs = engine.step()
            now = time.perf_counter()
            new_first = new_tokens = got = 0
            for out in outputs:
                i = int(out.request_id)
                count = len(out.outputs[0].token_ids)  # cumulative
                if count > produced[i]:
                    got += 1
                    new_first += produced[i] == 0
                    new_tokens += count - produced[i]
                    token_times[i].extend([now - start] * (count - produced[i]))
                    produced[i] = count
            kind = "prefill" if new_first == got else ("decode" if new_first == 0 else "mixed")
            steps.append(
                StepRecord(
                    len(steps),
                    kind,
                    now - t0,
                    batch=got,
                    tokens=new_tokens,
                    context=max(len(p) for p in prompts) + max(produced),
                )
            )
            if not decoding and all(produced):
                decoding = True
                notify(DECODE_START)
            if (
                decoding
                and not draining
                and any(p == n for p, n in zip(produced, lengths))
                and engine.has_unfinished_requests()
            ):
                draining = True
                notify(DRAIN_START)
        total = time.perf_counter() - start
        notify(RUN_END)
        free, device_total = torch.cuda.mem_get_info()
        # KV held at the end: every sequence's tokens, rounded up to whole blocks as vLLM allocates them
        kv = sum(-(-(len(p) + n) // BLOCK_SIZE) * BLOCK_SIZE for p, n in zip(prompts, lengths))
        requests = [RequestRecord(i, len(p), produced[i], token_times[i]) for i, p in enumerate(prompts)]
        return BatchResult(
            engine=self.name,
            model=self.model_name,
            device="cuda",
            dtype=self.dtype,
            steps=steps,
            requests=requests,
            total_time_s=total,
            peak_memory_bytes=device_total - free,
            kv_cache_bytes=kv * self.kv_per_token,
            extra={
                "timing": "host wall time around LLMEngine.step()",
                "peak_memory_method": "device memory in use (vLLM preallocates its KV)",
            },
        )

    def close(self) -> None:
        """Free the GPU (drop the LLM) and remove the temporary model directory."""
        del self.llm
        self._tmp.cleanup()
