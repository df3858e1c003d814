"""Spec sheets (sanity against each other and the HBM arithmetic), sheets by device name, device memory,
the probe on tiny sizes, the profile's JSON round trip, and the commands' exit codes."""

import json
import math
import socket
import subprocess
import sys

import pytest

from common.config import compose, register_schema, run_task
from common.errors import BadInput
from common.hardware import (
    DTYPES,
    SPECS,
    DeviceSpec,
    device_memory,
    get_spec,
    hbm_bandwidth,
    host_memory_bytes,
    load_profile,
    profile_dir,
    save_profile,
    spec_for_device,
)
from common.hardware import probe as probe_command
from common.hardware.probe import probe
from common.hardware.table import spec_table
from common.repo import REPO_ROOT

REQUIRED = ("h100-sxm-80gb", "h100-64gb", "h200", "a100-40gb", "a100-80gb", "l4")


def test_all_required_devices_present_with_sources():
    assert set(REQUIRED) <= set(SPECS)
    for key in REQUIRED:
        spec = get_spec(key)
        assert {"fp32", "tf32", "bf16", "fp16"} <= set(spec.peak_flops) <= set(DTYPES)
        assert len(spec.source) > 30 and spec.mem_bytes > 16 * 2**30 and spec.measured is None


def test_dtype_rates_are_ordered_as_on_every_tensor_core_part():
    for spec in SPECS.values():
        f = spec.peak_flops
        assert f["fp32"] < f["tf32"] < f["bf16"] == f["fp16"]
        assert f["tf32"] == pytest.approx(f["bf16"] / 2, rel=0.01)  # dense tf32 is half of bf16 on these
        if "fp8" in f:
            assert f["fp8"] == pytest.approx(2 * f["bf16"], rel=0.01)


def test_ridge_points_are_plausible():
    for key, spec in SPECS.items():
        assert 100 < spec.ridge_point("bf16") < 700, key  # FLOP/B: modern accelerators sit at 150-600
        assert 5 < spec.ridge_point("fp32") < 150, key
    assert (
        get_spec("h200").ridge_point()
        < get_spec("h100-sxm-80gb").ridge_point()
        < get_spec("h100-64gb").ridge_point()
    )


def test_h100_64gb_is_the_sxm_compute_with_slower_smaller_memory():
    sxm, mn5 = get_spec("h100-sxm-80gb"), get_spec("h100-64gb")
    assert mn5.peak_flops == sxm.peak_flops
    assert mn5.mem_bandwidth < sxm.mem_bandwidth and mn5.mem_bytes < sxm.mem_bytes
    assert "1593 MHz" in mn5.source and "INFERRED" in mn5.source
    assert mn5.mem_bandwidth == pytest.approx(1.63e12, rel=0.01)
    h200 = get_spec("h200")
    assert h200.mem_bandwidth > sxm.mem_bandwidth and h200.peak_flops == sxm.peak_flops


def test_hbm_rule_reproduces_the_a100_80gb_datasheet():
    """The inference for the 64 GB H100 uses the rule that gives the A100 80GB's published bandwidth
    from the same 1593 MHz HBM2e clock on its 5-stack (5120-bit) bus."""
    assert hbm_bandwidth(1593e6, 5120) == pytest.approx(get_spec("a100-80gb").mem_bandwidth, rel=0.001)


def test_get_spec_names_and_errors(tmp_path):
    assert get_spec("H100_SXM_80GB") is SPECS["h100-sxm-80gb"]
    with pytest.raises(KeyError) as err:
        get_spec("h100")
    assert all(key in str(err.value) for key in REQUIRED) and "local" in str(err.value)
    with pytest.raises(FileNotFoundError, match="common.hardware.probe"):
        get_spec("local", profile_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="paths.results_dir"):  # no folder: no default to guess
        get_spec("local")
    assert profile_dir(tmp_path) == tmp_path / "hardware"


@pytest.mark.parametrize(
    "name,key",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm-80gb"),
        ("NVIDIA H100", "h100-64gb"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA L4", "l4"),
        ("Tesla T4", None),
    ],
)
def test_spec_sheet_by_device_name(name, key):
    """An H100 PCIe or NVL has other memory systems than the sheets here: no sheet rather than a wrong one."""
    found, spec = spec_for_device(name)
    assert found == key and (spec is None) == (key is None)


def test_cpu_device_memory_is_the_hosts_ram():
    mem = device_memory("cpu")
    assert mem.total_bytes == host_memory_bytes() > 2**30
    assert mem.name == "host RAM" and "sysconf" in mem.source


@pytest.fixture(scope="module")
def tiny_profile():
    return probe(device="cpu", threads=1, mem_mib=4, matmul_size=64, repeats=2)


def test_probe_measures_positive_finite_numbers(tiny_profile):
    p = tiny_profile
    assert set(p.peak_flops) == {"fp32", "bf16"}
    for value in (*p.peak_flops.values(), p.mem_bandwidth):
        assert math.isfinite(value) and value > 0
    m = p.measured
    assert m["torch_threads"] == 1 and m["host"] == socket.gethostname() and m["device"] == "cpu"
    assert m["copy"]["bytes_per_copy"] == 2 * 4 * 2**20
    assert m["copy"]["bandwidth"] == pytest.approx(m["copy"]["bytes_per_copy"] / m["copy"]["best_s"])
    assert m["matmul"]["fp32"]["flops"] == pytest.approx(2 * 64**3 / m["matmul"]["fp32"]["best_s"])
    assert len(m["matmul"]["fp32"]["times_s"]) == 2 and p.mem_bytes > 2**30


def test_profile_round_trips_through_json(tiny_profile, tmp_path, monkeypatch):
    path = save_profile(tiny_profile, tmp_path / f"{socket.gethostname()}.json")
    assert load_profile(path) == tiny_profile
    assert get_spec("local", profile_dir=tmp_path) == tiny_profile
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temp file
    assert "local" in spec_table({"local": tiny_profile})


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "not a JSON"),
        (json.dumps({"name": "x", "peak_flops": {}}), "lacks mem_bandwidth, mem_bytes, source"),
        (json.dumps(DeviceSpec("x", {"fp32": -1.0}, 1.0, 1, "s").to_dict()), "positive"),
    ],
)
def test_bad_profile_names_the_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BadInput, match=match) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def _cli(tmp_path, command, *args):
    return subprocess.run(
        [sys.executable, "-m", f"common.hardware.{command}", f"paths.results_dir={tmp_path}", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_table_prints_every_device(tmp_path):
    out = _cli(tmp_path, "table")
    assert out.returncode == 0, out.stderr
    assert all(key in out.stdout for key in REQUIRED) and "ridge" in out.stdout


def test_probe_saves_a_loadable_profile_where_the_table_finds_it(tmp_path):
    path = tmp_path / "sub" / "p.json"
    tiny = ("threads=1", "mem_mib=4", "size=64", "repeats=2", "device=cpu")
    out = _cli(tmp_path, "probe", f"out={path}", *tiny)
    assert out.returncode == 0, out.stderr
    assert "copy bandwidth" in out.stderr and str(path) in out.stderr
    assert load_profile(path).measured["torch_threads"] == 1
    out = _cli(tmp_path, "probe", *tiny)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "hardware" / f"{socket.gethostname()}.json").is_file()  # ${paths.results_dir}/hardware
    assert "local" in _cli(tmp_path, "table").stdout


def test_an_unknown_key_exits_2(tmp_path):
    out = _cli(tmp_path, "table", "bogus=1")
    assert out.returncode == 2 and "bogus" in out.stderr


def _probe_run(tmp_path, *overrides):
    register_schema("common/hardware/probe", probe_command.ProbeConfig)
    cfg = compose("common/hardware/probe", ["logger=none", f"paths.results_dir={tmp_path}", *overrides])
    return run_task(probe_command.main.task, cfg, tmp_path / "run")


@pytest.mark.parametrize("args", [("bogus=1",), ("size=x",)])
def test_overrides_that_do_not_compose_name_the_key(tmp_path, args):
    with pytest.raises(Exception, match=args[0].split("=")[0]):
        _probe_run(tmp_path, *args)


@pytest.mark.parametrize(
    "args, key",
    [
        (("threads=0",), "threads"),
        (("device=tpu",), "device"),
        (("repeats=-1",), "repeats"),
        (("mem_mib=0",), "mem_mib"),
    ],
)
def test_bad_values_exit_2_naming_the_key(tmp_path, capsys, args, key):
    with pytest.raises(SystemExit) as exit_:
        _probe_run(tmp_path, *args)
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith(f"error: {key}")
    assert not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_exits_2(tmp_path, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit_:
        _probe_run(tmp_path, "device=cuda", f"out={tmp_path / 'p.json'}")
    assert exit_.value.code == 2 and "cuda" in caplog.text and not (tmp_path / "p.json").exists()


@pytest.mark.gpu
def test_cuda_probe_stays_under_the_vendor_peaks():
    """On a cluster GPU: tensor-core dtypes beat fp32, and nothing exceeds the datasheet."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    p = probe(device="cuda", mem_mib=1024, matmul_size=4096, repeats=3)
    assert p.peak_flops["bf16"] > 2 * p.peak_flops["fp32"] and "fp8" in p.measured["missing"]
    name = p.name.lower()
    key = next(
        (
            k
            for k, needle in [
                ("h200", "h200"),
                ("h100-sxm-80gb", "h100 80gb hbm3"),
                ("h100-64gb", "h100 64gb"),
                ("a100-80gb", "a100-sxm4-80gb"),
                ("a100-40gb", "a100-sxm4-40gb"),
                ("l4", "l4"),
            ]
            if needle in name
        ),
        None,
    )
    if key is not None:
        spec = get_spec(key)
        assert p.mem_bandwidth < 1.05 * spec.mem_bandwidth
        for dtype, flops in p.peak_flops.items():
            assert flops < 1.05 * spec.peak_flops[dtype], dtype


def test_probe_restores_the_callers_thread_count():
    import torch

    before = torch.get_num_threads()
    probe(
        device="cpu",
        threads=max(1, before - 1) if before > 1 else 2,
        mem_mib=1,
        matmul_size=16,
        repeats=1,
        dtypes=("fp32",),
    )
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="bad probe arguments"):
        probe(device="cpu", dtypes=("int8",))
    with pytest.raises(ValueError, match="bad probe arguments"):
        probe(device="cpu", mem_mib=0)
