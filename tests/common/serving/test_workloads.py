"""Workloads: the paper's lengths and filters, ShareGPT parsing, sampled means, the stored request list."""

import json

import numpy as np
import pandas as pd
import pytest

from common.repo import REPO_ROOT
from common.serving.workloads import (
    PAPER_FILTER,
    SHAREGPT_MEAN_OUTPUT,
    SHAREGPT_MEAN_PROMPT,
    WorkloadSpec,
    build_requests,
    gpt2_token_count,
    length_stats,
    sampled_sharegpt_lengths,
    sharegpt_lengths,
    sweep_requests,
)

BACKGROUND = REPO_ROOT / "papers" / "batching" / "reference" / "background_sweep.csv"


def test_fixed_lengths_are_the_paper_offline_profiler():
    requests = build_requests(WorkloadSpec(), 5, vocab_size=50272)
    assert {(r.prompt_len, r.output_len) for r in requests} == {(161, 338)}
    assert all(4 <= t < 50272 for r in requests for t in r.prompt_ids)
    assert len({r.prompt_ids for r in requests}) == 5  # random prompts, not one repeated


def test_sampled_lengths_have_the_paper_means_and_pass_its_filters():
    lengths = np.array(sampled_sharegpt_lengths(8000, seed=1))
    assert lengths[:, 0].mean() == pytest.approx(SHAREGPT_MEAN_PROMPT, rel=0.04)
    assert lengths[:, 1].mean() == pytest.approx(SHAREGPT_MEAN_OUTPUT, rel=0.04)
    assert all(PAPER_FILTER.keep(int(p), int(o)) for p, o in lengths)
    assert np.median(lengths[:, 0]) < lengths[:, 0].mean()  # ShareGPT's long right tail
    assert sampled_sharegpt_lengths(50, seed=3) == sampled_sharegpt_lengths(50, seed=3)
    assert sampled_sharegpt_lengths(50, seed=3) != sampled_sharegpt_lengths(50, seed=4)


def test_sampled_means_are_the_reference_sweep_realised_means():
    """The defaults are the paper's: OPT rows of the authors' background sweep."""
    opt = pd.read_csv(BACKGROUND).query("model.str.startswith('opt')")
    assert (opt.total_input_tokens / opt.num_prompts).round(1).unique().tolist() == [SHAREGPT_MEAN_PROMPT]
    outputs = opt.total_output_tokens / opt.num_prompts
    assert outputs.min() <= SHAREGPT_MEAN_OUTPUT <= outputs.max()


def _conversation(human, gpt):
    return {"id": human[:8],
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}


def test_sharegpt_file_first_turns_filters_and_seeded_shuffle(tmp_path):
    def text(n):  # n GPT-2 tokens: "hello" then n - 1 times " hello"
        return " ".join(["hello"] * n)

    data = [_conversation(text(10), text(20)),  # kept
            _conversation(text(2), text(20)),  # prompt too short (2 + BOS < 4 tokens)
            _conversation(text(10), text(2)),  # output too short
            _conversation(text(1100), text(10)),  # prompt > 1024
            _conversation(text(1000), text(1100)),  # prompt + output > 2048
            {"id": "single", "conversations": [{"from": "human", "value": text(30)}]},  # no reply
            _conversation(text(30), text(40))]  # kept
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data))
    assert gpt2_token_count(text(10)) == 11  # GPT-2 BPE (OPT's), plus OPT's BOS
    assert sorted(sharegpt_lengths(path, 2, seed=0)) == [(11, 21), (31, 41)]
    assert sharegpt_lengths(path, 2, seed=0) == sharegpt_lengths(path, 2, seed=0)
    with pytest.raises(ValueError, match="only 2 conversations pass"):
        sharegpt_lengths(path, 3)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        sharegpt_lengths(tmp_path / "bad.json", 1)


def test_request_list_is_drawn_once_and_reread(tmp_path):
    spec = WorkloadSpec(kind="sharegpt_sampled", seed=7)
    path = tmp_path / "requests.json"
    first = sweep_requests(path, spec, 20, vocab_size=1000)
    stamp = path.stat().st_mtime_ns
    again = sweep_requests(path, spec, 10, vocab_size=1000)
    assert again == first[:10] and path.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="drawn for"):
        sweep_requests(path, WorkloadSpec(kind="sharegpt_sampled", seed=8), 10, vocab_size=1000)
    with pytest.raises(ValueError, match="drawn for"):
        sweep_requests(path, spec, 30, vocab_size=1000)  # too short for this sweep
    stats = length_stats(first)
    assert stats["n"] == 20 and stats["total_max"] <= 2048


def test_bad_workload_specs_are_refused():
    with pytest.raises(ValueError, match="kind"):
        WorkloadSpec(kind="poisson")
    with pytest.raises(ValueError, match="sharegpt_path"):
        WorkloadSpec(kind="sharegpt")
    assert WorkloadSpec(prompt_len=8, output_len=4).label == "fixed-8-4"
