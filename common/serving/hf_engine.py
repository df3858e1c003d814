"""The default engine: transformers + torch, one prefill forward, then a greedy decode loop over the KV cache.

Written as a bare loop rather than `model.generate` so that every step can be timed and the batch's
phases announced, and so that nothing runs per step besides the forward and an argmax (generate's
logits processors, stopping criteria and bookkeeping cost time at small batches). The benchmark
`common.serving.bench.generate_ratio` checks that it is at least as fast as generate.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import DynamicCache, StaticCache

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
from common.serving.models import LoadedModel, dtype_name, load_model

log = logging.getLogger(__name__)
CACHES = ("dynamic", "static")
TIMINGS = ("auto", "events", "sync")


class StepTimer:
    """Step boundaries on the device's clock.

    On CPU every op has finished when Python gets control back, so perf_counter is exact. On CUDA the
    default records an event per step and reads them after one final synchronise, so marking a step does
    not stop the host from queueing the next one; "sync" synchronises at every step instead.
    """

    def __init__(self, device: torch.device, mode: str = "auto", per_step: bool = True):
        if mode not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, not {mode!r}")
        self.cuda = device.type == "cuda"
        self.events = self.cuda and mode in ("auto", "events")
        self.per_step = per_step
        self._marks: list = []

    def sync(self) -> None:
        """Wait for queued CUDA work; nothing to wait for on a CPU."""
        if self.cuda:
            torch.cuda.synchronize()

    def _now(self):
        if self.events:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        self.sync()
        return time.perf_counter()

    def start(self) -> None:
        """Synchronise and mark the run's start; call it before the first forward."""
        self.sync()
        self._wall0 = time.perf_counter()
        self._marks = [self._now()]

    def mark(self) -> None:
        """End of a step; does nothing when only the run's two ends are timed (per_step=False)."""
        if self.per_step:
            self._marks.append(self._now())

    def stop(self) -> tuple[float, list[float]]:
        """(wall time since start, per-step durations); synchronises once."""
        if not self.per_step:
            self._marks.append(self._now())
        self.sync()
        total = time.perf_counter() - self._wall0
        if self.events:
            steps = [a.elapsed_time(b) / 1e3 for a, b in zip(self._marks, self._marks[1:])]
        else:
            steps = [b - a for a, b in zip(self._marks, self._marks[1:])]
        return total, steps


def _reset_host_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux `clear_refs` 5) so VmHWM covers one run."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _host_peak_bytes() -> int | None:
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def cache_bytes(cache) -> int:
    """Bytes the KV tensors hold (a static cache holds its full length from the start)."""
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


class HFEngine(Engine):
    """Static-batch greedy decoding with transformers, timed per step: the default engine, and CPUs' one.

    Prompts of unequal length are left-padded, so every sequence's next token lands in the same column.
    """

    name = "hf"

    def __init__(
        self,
        model: str | LoadedModel,
        device: str = "auto",
        dtype: str = "fp32",
        cache: str = "dynamic",
        compile_mode: str | None = None,
        timing: str = "auto",
        seed: int = 0,
        attn_implementation: str = "sdpa",
    ):
        """compile_mode: None (eager), or a torch.compile mode for the decode step; "reduce-overhead"
        captures it in CUDA graphs. Compiling needs the static cache (fixed shapes) and equal prompts."""
        if cache not in CACHES:
            raise ValueError(f"cache must be one of {CACHES}, not {cache!r}")
        if compile_mode is not None and cache != "static":
            raise ValueError("compile_mode needs cache='static' (a dynamic cache changes shape every step)")
        self.lm = (
            model
            if isinstance(model, LoadedModel)
            else load_model(model, device, dtype, seed=seed, attn_implementation=attn_implementation)
        )
        self.device, self.cache, self.timing = self.lm.device, cache, timing
        self.compile_mode = compile_mode
        params = inspect.signature(self.lm.model.forward).parameters
        # transformers renamed past_key_values to cache in 5.2x; GPU nodes may run an older 5.x
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._decode = self.lm.model
        if compile_mode is not None:
            self._decode = torch.compile(self.lm.model, mode=compile_mode, dynamic=False)
        self._cudagraphs = compile_mode is not None and "reduce-overhead" in compile_mode
        pad = self.lm.config.pad_token_id
        self.pad_id = 0 if pad is None else int(pad)

    def describe(self) -> dict:
        """Model, weights, size, device, precision, cache and compile settings: every result row's columns."""
        if self.device.type == "cuda":
            device_name = torch.cuda.get_device_name(self.device)
        else:
            from common.runinfo import cpu_model

            device_name = f"CPU: {cpu_model()} ({torch.get_num_threads()} threads)"
        return {
            "engine": self.name,
            "model": self.lm.name,
            "weights": self.lm.weights,
            "n_params": self.lm.n_params,
            "vocab_size": self.lm.config.vocab_size,
            "device": self.device.type,
            "device_name": device_name,
            "precision": dtype_name(self.lm.dtype),
            "cache": self.cache,
            "compile_mode": self.compile_mode,
            "attn_implementation": self.lm.config._attn_implementation,
        }

    def _new_cache(self, max_len: int):
        if self.cache == "static":
            return StaticCache(config=self.lm.config, max_cache_len=max_len)
        return DynamicCache(config=self.lm.config)

    def _forward(self, fn, ids, mask, positions, cache, cache_position):
        kwargs = {self._cache_kwarg: cache}
        return fn(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            cache_position=cache_position,
            logits_to_keep=1,
            **kwargs,
        ).logits[:, -1]

    @torch.inference_mode()
    def run(
        self,
        prompts: list[list[int]],
        max_new_tokens: int | Sequence[int],
        hook: Hook | None = None,
        per_step_timing: bool = True,
    ) -> BatchResult:
        """per_step_timing=False marks only the run's two ends (the overhead benchmark's baseline); its
        steps and token times are then NaN."""
        lengths = per_request_lengths(prompts, max_new_tokens)
        batch, prompt_max, n_max = len(prompts), max(len(p) for p in prompts), max(lengths)
        padded = any(len(p) != prompt_max for p in prompts)
        if padded and self.compile_mode is not None:
            raise ValueError("a compiled decode step needs prompts of equal length (no padding mask)")
        dev = self.device
        ids = torch.full((batch, prompt_max), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, prompt_max + n_max), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: every sequence's next token lands in one column
            ids[i, prompt_max - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, prompt_max - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask[:, :prompt_max].cumsum(-1) - 1).clamp_(min=0)
        cache_position = torch.arange(prompt_max, device=dev)
        cache = self._new_cache(prompt_max + n_max)
        out_ids = torch.empty((batch, n_max), dtype=torch.long, device=dev)
        timer = StepTimer(dev, self.timing, per_step=per_step_timing)
        notify = (lambda phase: (timer.sync(), hook(phase))) if hook else (lambda phase: None)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            host_reset = False
        else:
            host_reset = _reset_host_peak()

        timer.start()
        logits = self._forward(
            self.lm.model, ids, mask[:, :prompt_max] if padded else None, positions, cache, cache_position
        )
        next_ids = logits.argmax(-1)
        out_ids[:, 0] = next_ids
        timer.mark()
        if n_max > 1:
            notify(DECODE_START)
        positions = positions[:, -1:].clone()
        cache_position = cache_position[-1:].clone()
        first_done = min(lengths)
        for step in range(1, n_max):
            if step == first_done:
                notify(DRAIN_START)
            positions += 1
            cache_position += 1
            if self._cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            logits = self._forward(
                self._decode,
                next_ids[:, None],
                mask[:, : prompt_max + step] if padded else None,
                positions,
                cache,
                cache_position,
            )
            next_ids = logits.argmax(-1)
            out_ids[:, step] = next_ids
            timer.mark()
        total, step_times = timer.stop()
        notify(RUN_END)

        if dev.type == "cuda":
            peak, peak_method = torch.cuda.max_memory_allocated(dev), "torch.cuda.max_memory_allocated"
        else:
            peak = _host_peak_bytes()
            peak_method = "VmHWM since reset" if host_reset else "VmHWM over the process lifetime"
        if not per_step_timing:
            step_times = [math.nan] * n_max
        steps = [
            StepRecord(
                index=s,
                kind="prefill" if s == 0 else "decode",
                time_s=t,
                batch=sum(n > s for n in lengths),
                tokens=sum(n > s for n in lengths),
                context=prompt_max + s,
            )
            for s, t in enumerate(step_times)
        ]
        clock = torch.tensor(step_times, dtype=torch.float64).cumsum(0).tolist()
        requests = [
            RequestRecord(index=i, prompt_len=len(p), output_len=n, token_times_s=clock[:n])
            for i, (p, n) in enumerate(zip(prompts, lengths))
        ]
        outputs = out_ids.cpu().tolist()
        return BatchResult(
            engine=self.name,
            model=self.lm.name,
            device=dev.type,
            dtype=dtype_name(self.lm.dtype),
            steps=steps,
            requests=requests,
            total_time_s=total,
            peak_memory_bytes=peak,
            kv_cache_bytes=cache_bytes(cache),
            output_ids=[row[:n] for row, n in zip(outputs, lengths)],
            extra={"peak_memory_method": peak_method, "padded": padded, "per_step_timing": per_step_timing},
        )
