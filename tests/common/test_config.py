"""Config composition, the entry point's exit-status contract, and the artefacts every run writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from common.config import compose, experiment_configs, run_task

PY = sys.executable


@pytest.mark.parametrize("name", experiment_configs())
@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_every_experiment_config_composes(name, scale):
    from jobs.routing import App, load

    load(App(name))  # the command's module registers its schema (in its config.py or its entrypoint)
    cfg = compose(name, [f"scale={scale}"])
    assert cfg.paper == name.split("/")[0]
    assert cfg.scale.name == scale
    assert Path(cfg.result_dir).is_absolute()


def test_scale_switch_and_overrides(demo_app):
    import app  # noqa: F401 - registers the demo schema

    conf = demo_app / "conf"
    assert compose("demo/exp", config_dir=conf).n == 3
    assert compose("demo/exp", ["scale=paper"], config_dir=conf).n == 30
    assert compose("demo/exp", ["scale=paper", "n=5"], config_dir=conf).n == 5
    assert compose("demo/exp", ["logger=wandb"], config_dir=conf).logger.backend == "wandb"


def test_unknown_key_and_wrong_type_name_the_key(demo_app):
    import app  # noqa: F401

    conf = demo_app / "conf"
    with pytest.raises(ConfigCompositionException) as err:
        compose("demo/exp", ["nn=3"], config_dir=conf)
    assert "nn" in str(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose("demo/exp", ["n=abc"], config_dir=conf)
    assert "full_key: n" in str(err.value.__cause__)
    # a misspelt key inside the YAML itself fails too, against the dataclass schema
    (conf / "demo" / "exp.yaml").write_text((conf / "demo" / "exp.yaml").read_text() + "nn: 4\n")
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        compose("demo/exp", config_dir=conf)
    assert "nn" in str(err.value) + str(err.value.__cause__)


def _run_app(demo_app, results, *overrides, env=None):
    return subprocess.run(
        [PY, str(demo_app / "app.py"), f"paths.results_dir={results}", *overrides],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=demo_app,
        env={**os.environ, **(env or {})},
    )


def test_unknown_key_exits_2_and_leaves_no_run_dir(demo_app, tmp_path):
    results = tmp_path / "results"
    proc = _run_app(demo_app, results, "nn=3")
    assert proc.returncode == 2, proc.stderr
    assert "nn" in proc.stderr
    assert not results.exists()


def test_bad_input_exits_2_and_removes_its_run_dir(demo_app, tmp_path):
    results = tmp_path / "results"
    proc = _run_app(demo_app, results, "n=-1")
    assert proc.returncode == 2, proc.stderr
    assert "n must be >= 0" in proc.stderr
    runs = results / "demo" / "exp" / "smoke" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_run_writes_artefacts_and_never_secrets(demo_app, tmp_path):
    results = tmp_path / "results"
    secret = "s3cr3t-value-never-written"
    proc = _run_app(
        demo_app,
        results,
        "logger=wandb",
        env={"MY_API_KEY": secret, "HF_TOKEN": secret, "DB_PASSWORD": secret, "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (results / "demo" / "exp" / "smoke" / "runs").iterdir()
    for name in ("config.yaml", "config_resolved.yaml", "runinfo.json", "metrics.jsonl"):
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "runinfo.json").read_text())
    assert {"git", "packages", "hardware", "slurm", "python"} <= info.keys()
    assert set(info["git"]) == {"sha", "dirty"}
    assert info["hardware"]["torch_threads"] == 2
    assert info["packages"]["torch"].startswith("2.13.0")
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    cells = [e["values"] for e in events if "cell/i" in e.get("values", {})]
    assert [c["metrics/square"] for c in cells] == [0, 1, 4]  # each finished cell is mirrored
    for path in results.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"


def test_run_task_in_process_resumes(demo_app, tmp_path):
    import app

    cfg = compose("demo/exp", [f"paths.results_dir={tmp_path}", "logger=none"], config_dir=demo_app / "conf")
    run_task(app.main.task, cfg, tmp_path / "run1")
    store = tmp_path / "demo" / "exp" / "smoke" / "results.jsonl"
    first = store.read_text().splitlines()
    assert len(first) == 3
    run_task(app.main.task, cfg, tmp_path / "run2")
    assert store.read_text().splitlines() == first  # nothing recomputed


def test_a_token_named_override_is_written_nowhere_and_warmup_tokens_is_kept(demo_app, tmp_path):
    """Secrets are keys that name one as a whole word: redacted in config files, result keys, logs and
    wandb; `warmup_tokens` (tokens, not a token) is recorded as it is."""
    results = tmp_path / "results"
    secret = "hf_s3cr3t_override_value"
    proc = _run_app(
        demo_app,
        results,
        "logger=wandb",
        f"+engine_options.hf_token={secret}",
        "warmup_tokens=7",
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (results / "demo" / "exp" / "smoke" / "runs").iterdir()
    written = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in written) and (run_dir / "config.yaml").is_file()
    assert not (run_dir / ".hydra").exists()
    for path in written:
        assert secret.encode() not in path.read_bytes(), f"secret written to {path}"
    for name in ("config.yaml", "config_resolved.yaml"):
        text = (run_dir / name).read_text()
        assert "warmup_tokens: 7" in text and "hf_token: <redacted>" in text, name
    rows = [json.loads(line) for line in (results / "demo/exp/smoke/results.jsonl").open()]
    assert rows[0]["cell"]["engine_options"] == {"hf_token": "<redacted>"}


def test_a_run_whose_every_cell_failed_exits_1(demo_app, tmp_path):
    proc = _run_app(demo_app, tmp_path, "fail_from=0", "logger=none")
    assert proc.returncode == 1, proc.stderr
    assert "every cell of this run failed (3 of 3)" in proc.stderr and "on purpose" in proc.stderr


def test_a_partly_failed_run_says_how_many_and_where(demo_app, tmp_path):
    proc = _run_app(demo_app, tmp_path, "n=3", "fail_from=1", "logger=none")
    assert proc.returncode == 0, proc.stderr
    assert "2 of 3 cells failed; their errors are in" in proc.stderr
