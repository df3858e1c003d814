"""The batching paper's workload values live in its configs: they are the authors' own numbers."""

import pandas as pd
import pytest

import papers.batching.config  # noqa: F401 - registers the schemas
from common.config import compose
from common.repo import REPO_ROOT
from common.serving.config import workload_spec

BACKGROUND = REPO_ROOT / "papers" / "batching" / "reference" / "background_sweep.csv"


@pytest.mark.parametrize("config", ["batching/sweep", "batching/replicate"])
def test_sampled_means_are_the_reference_sweep_realised_means(config):
    """kind=sharegpt_sampled draws the ShareGPT lengths of the authors' background sweep (OPT rows)."""
    sampled = compose(config, ["workload.kind=sharegpt_sampled"]).workload
    assert workload_spec(sampled).sampled.mean_prompt == sampled.mean_prompt  # the kind takes them
    opt = pd.read_csv(BACKGROUND).query("model.str.startswith('opt')")
    assert (opt.total_input_tokens / opt.num_prompts).round(1).unique().tolist() == [sampled.mean_prompt]
    outputs = opt.total_output_tokens / opt.num_prompts
    assert outputs.min() <= sampled.mean_output <= outputs.max()


def test_paper_scale_is_the_authors_offline_profiler():
    """161 prompt and 338 output tokens: benchmarks_simple/decoding_offline_profiler.py."""
    spec = workload_spec(compose("batching/sweep", ["scale=paper"]).workload)
    assert (spec.kind, spec.prompt_len, spec.output_len) == ("fixed", 161, 338)
