"""Workloads: fixed lengths and the client filters, ShareGPT parsing, sampled means, the stored request
list (a paper's own lengths and distribution are in its configs: tests/papers/batching/test_sweep.py)."""

import json

import numpy as np
import pytest

from common.serving.workloads import (
    CLIENT_FILTER,
    SampledLengths,
    WorkloadSpec,
    build_requests,
    gpt2_token_count,
    length_stats,
    sampled_sharegpt_lengths,
    sharegpt_lengths,
    sweep_requests,
)

SHAPE = SampledLengths(mean_prompt=110.6, mean_output=287.0, sigma_prompt=1.0, sigma_output=0.8)  # ShareGPT
OTHER = SampledLengths(50, 50, 1, 1)


def test_fixed_lengths_are_given_lengths_with_random_prompts():
    requests = build_requests(WorkloadSpec("fixed", 161, 338), 5, vocab_size=50272)
    assert {(r.prompt_len, r.output_len) for r in requests} == {(161, 338)}
    assert all(4 <= t < 50272 for r in requests for t in r.prompt_ids)
    assert len({r.prompt_ids for r in requests}) == 5  # random prompts, not one repeated


def test_sampled_lengths_have_the_asked_means_and_pass_the_filters():
    lengths = np.array(sampled_sharegpt_lengths(8000, SHAPE, seed=1))
    assert lengths[:, 0].mean() == pytest.approx(SHAPE.mean_prompt, rel=0.04)
    assert lengths[:, 1].mean() == pytest.approx(SHAPE.mean_output, rel=0.04)
    assert all(CLIENT_FILTER.keep(int(p), int(o)) for p, o in lengths)
    assert np.median(lengths[:, 0]) < lengths[:, 0].mean()  # ShareGPT's long right tail
    assert sampled_sharegpt_lengths(50, SHAPE, seed=3) == sampled_sharegpt_lengths(50, SHAPE, seed=3)
    assert sampled_sharegpt_lengths(50, SHAPE, seed=3) != sampled_sharegpt_lengths(50, SHAPE, seed=4)


def _conversation(human, gpt):
    return {
        "id": human[:8],
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}],
    }


def test_sharegpt_file_first_turns_filters_and_seeded_shuffle(tmp_path):
    def text(n):  # n GPT-2 tokens: "hello" then n - 1 times " hello"
        return " ".join(["hello"] * n)

    data = [
        _conversation(text(10), text(20)),  # kept
        _conversation(text(2), text(20)),  # prompt too short (2 + BOS < 4 tokens)
        _conversation(text(10), text(2)),  # output too short
        _conversation(text(1100), text(10)),  # prompt > 1024
        _conversation(text(1000), text(1100)),  # prompt + output > 2048
        {"id": "single", "conversations": [{"from": "human", "value": text(30)}]},  # no reply
        _conversation(text(30), text(40)),
    ]  # kept
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
    spec = WorkloadSpec(kind="sharegpt_sampled", seed=7, sampled=SHAPE)
    path = tmp_path / "requests.json"
    first = sweep_requests(path, spec, 20, vocab_size=1000)
    stamp = path.stat().st_mtime_ns
    again = sweep_requests(path, spec, 10, vocab_size=1000)
    assert again == first[:10] and path.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="drawn for"):
        sweep_requests(path, WorkloadSpec(kind="sharegpt_sampled", seed=8, sampled=SHAPE), 10, 1000)
    with pytest.raises(ValueError, match="drawn for"):
        sweep_requests(path, spec, 30, vocab_size=1000)  # too short for this sweep
    with pytest.raises(ValueError, match="drawn for"):  # another distribution: another list
        sweep_requests(path, WorkloadSpec(kind="sharegpt_sampled", seed=7, sampled=OTHER), 10, 1000)
    stats = length_stats(first)
    assert stats["n"] == 20 and stats["total_max"] <= 2048


def test_a_list_written_before_its_distribution_was_recorded_is_kept_when_it_is_the_same(tmp_path):
    """Old stores resume: a sampled list whose meta predates the `sampled` field is reread when drawing
    it again gives the same requests, and refused when it does not."""
    spec = WorkloadSpec(kind="sharegpt_sampled", seed=7, sampled=SHAPE)
    path = tmp_path / "requests.json"
    first = sweep_requests(path, spec, 20, vocab_size=1000)
    body = json.loads(path.read_text())
    del body["meta"]["sampled"]  # as written before
    path.write_text(json.dumps(body))
    assert sweep_requests(path, spec, 20, vocab_size=1000) == first
    other = WorkloadSpec(kind="sharegpt_sampled", seed=7, sampled=OTHER)
    with pytest.raises(ValueError, match="drawn for"):
        sweep_requests(path, other, 20, vocab_size=1000)
    fixed = WorkloadSpec("fixed", 8, 4)
    assert "sampled" not in fixed.meta()  # the other kinds keep the meta they had


def test_bad_workload_specs_are_refused():
    with pytest.raises(ValueError, match="kind"):
        WorkloadSpec(kind="poisson")
    with pytest.raises(ValueError, match="sharegpt_path"):
        WorkloadSpec(kind="sharegpt")
    with pytest.raises(ValueError, match="sampled"):
        WorkloadSpec(kind="sharegpt_sampled")
    with pytest.raises(ValueError, match="prompt_len"):
        WorkloadSpec(kind="fixed")
    assert WorkloadSpec(prompt_len=8, output_len=4).label == "fixed-8-4"
