"""gpu_metrics on CPU only: NVML through autospecced pynvml fakes, RAPL on a fake sysfs tree, the replay
backend on a small hand-made trace whose window energies are worked out by hand (and by scipy.quad)."""

import json
import os
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pynvml
import pytest
from scipy.integrate import quad

from common.errors import BadInput
from common.gpu_metrics import (
    TIMELINE_COLUMNS,
    BackendUnavailable,
    CPUBackend,
    Measurement,
    Monitor,
    Reading,
)
from common.gpu_metrics.cpu import RaplDomain, find_rapl_domains
from common.gpu_metrics.monitor import _energy, _peak_memory

TRACE = Path(__file__).parent / "data" / "gpu_trace.csv"


class ManualClock:
    """A clock the test sets; `step` > 0 makes every call advance it (for sampler threads)."""

    def __init__(self, t: float = 0.0, step: float = 0.0):
        self.t, self.step = t, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gpu_metrics-sampler"]


# ---- NVML, mocked ---------------------------------------------------------------------------------
class FakeGPUs:
    """State behind the autospecced pynvml functions; handles are the NVML indices."""

    def __init__(self, n: int, no_counter: tuple[int, ...] = (), clock: ManualClock | None = None):
        self.uuid = [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(n)]
        self.energy_mj = [1_000_000 * (i + 1) for i in range(n)]
        self.no_counter, self.clock = set(no_counter), clock
        self.power_w = lambda i, t: 100.0 + 10 * i  # power_w(index, clock time)

    def not_supported(self):
        return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def energy(self, h):
        if h in self.no_counter:
            raise self.not_supported()
        return self.energy_mj[h]

    def power(self, h):
        return round(1000 * self.power_w(h, self.clock.t if self.clock else 0.0))

    def functions(self) -> dict:
        return {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": lambda: len(self.uuid),
            "nvmlDeviceGetHandleByIndex": lambda i: i,
            "nvmlDeviceGetUUID": lambda h: self.uuid[h],
            "nvmlDeviceGetName": lambda h: "NVIDIA Fake H100",
            "nvmlDeviceGetTotalEnergyConsumption": self.energy,
            "nvmlDeviceGetPowerUsage": self.power,
            "nvmlDeviceGetUtilizationRates": lambda h: pynvml.c_nvmlUtilization_t(gpu=40 + h, memory=5),
            "nvmlDeviceGetMemoryInfo": lambda h, version=None: pynvml.c_nvmlMemory_t(
                total=80 << 30, free=(80 << 30) - ((h + 1) << 30), used=(h + 1) << 30
            ),
        }


@pytest.fixture
def fake_nvml(monkeypatch):
    """Install a FakeGPUs behind create_autospec'd pynvml functions; returns (install, mocks)."""
    mocks = {}

    def install(gpus: FakeGPUs, **overrides):
        for name, impl in {**gpus.functions(), **overrides}.items():
            mocks[name] = mock.create_autospec(getattr(pynvml, name), side_effect=impl)
            monkeypatch.setattr(pynvml, name, mocks[name])
        return mocks

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install


@pytest.mark.parametrize(
    "n_gpus, visible, nvml_indices",
    [
        (1, None, [0]),
        (2, None, [0, 1]),
        (4, "2,0", [2, 0]),
        (4, "GPU-00000003,1", [3, 1]),  # a UUID prefix, as CUDA accepts
        (3, "1,7,0", [1]),  # like CUDA, an entry naming no GPU hides it and all after it
    ],
)
def test_nvml_devices_follow_cuda_visible_devices(fake_nvml, monkeypatch, n_gpus, visible, nvml_indices):
    gpus = FakeGPUs(n_gpus)
    fake_nvml(gpus)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    clock = ManualClock(10.0)
    with Monitor("nvml", clock=clock) as mon:
        info = mon.describe()
        assert mon.devices == [f"cuda:{i}" for i in range(len(nvml_indices))]
        assert [info["gpus"][d]["nvml_index"] for d in mon.devices] == nvml_indices
        mon.begin_window("w")
        for i in range(n_gpus):  # each physical GPU spends a different, known energy
            gpus.energy_mj[i] += 1000 * (i + 1)
        clock.t = 12.0
        m = mon.end_window("w")
    assert m.energy_j == {d: pytest.approx(i + 1.0) for d, i in zip(mon.devices, nvml_indices)}
    assert m.total_energy_j == pytest.approx(sum(i + 1.0 for i in nvml_indices))
    assert m.time_s == pytest.approx(2.0)
    assert m.peak_memory_bytes == {d: (i + 1) << 30 for d, i in zip(mon.devices, nvml_indices)}
    assert m.utilization_pct == {d: pytest.approx(40.0 + i) for d, i in zip(mon.devices, nvml_indices)}
    assert set(m.energy_source.values()) == {"nvml_energy_counter"}


def test_nvml_counter_gives_exact_energy_without_sampler(fake_nvml):
    gpus = FakeGPUs(1)
    mocks = fake_nvml(gpus)
    clock = ManualClock(100.0)
    mon = Monitor("nvml", clock=clock)
    mon.begin_window("outer")
    gpus.energy_mj[0] += 12_345
    clock.t = 101.0
    mon.begin_window("inner")  # nested windows, each with its own edges
    gpus.energy_mj[0] += 7_000
    clock.t = 102.5
    inner = mon.end_window("inner")
    outer = mon.end_window("outer")
    assert not mon.describe()["sampler_running"]  # a counter needs no samples in between
    mon.close()
    assert inner.total_energy_j == pytest.approx(7.0, rel=1e-12)
    assert outer.total_energy_j == pytest.approx(19.345, rel=1e-12)
    assert outer.mean_power_w["cuda:0"] == pytest.approx(19.345 / 2.5, rel=1e-12)
    assert outer.energy_missing_reason is None
    mocks["nvmlShutdown"].assert_called_once_with()


def test_nvml_without_counter_integrates_sampled_power(fake_nvml):
    """Linear power makes the trapezoid rule exact however many samples land inside the window."""
    clock = ManualClock(0.0, step=0.01)
    gpus = FakeGPUs(2, no_counter=(1,), clock=clock)
    gpus.power_w = lambda i, t: 100.0 + 50.0 * t
    mocks = fake_nvml(gpus)
    with Monitor("nvml", sample_hz=200.0, clock=clock) as mon:
        assert mon.describe()["energy_source"] == {
            "cuda:0": "nvml_energy_counter",
            "cuda:1": "nvml_power_integration",
        }
        mon.begin_window("w")
        assert mon.describe()["sampler_running"]  # started by itself: integration needs points inside
        deadline = time.monotonic() + 120  # a wait bound, left at once on a quiet machine
        while len(mon.timeline()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        m = mon.end_window("w")
    t0, t1 = m.start_s, m.end_s
    assert m.n_samples >= 2
    expected, _ = quad(lambda t: 100.0 + 50.0 * t, t0, t1)
    assert m.energy_j["cuda:1"] == pytest.approx(expected, rel=1e-9)
    assert m.energy_source == {"cuda:0": "nvml_energy_counter", "cuda:1": "nvml_power_integration"}
    assert m.to_dict()["energy_source"] == "nvml_energy_counter+nvml_power_integration"
    # the counter device never had energy added, the fake's counter is flat: exactly 0 J
    assert m.energy_j["cuda:0"] == 0.0
    counter_calls = [c.args[0] for c in mocks["nvmlDeviceGetTotalEnergyConsumption"].call_args_list]
    assert counter_calls.count(1) == 1  # probed once at start, never polled again
    assert not sampler_threads()


def test_power_integration_matches_scipy_on_samples():
    times = np.linspace(0.0, 3.0, 31)
    points = [(t, Reading(power_w=float(np.sin(t) + 2))) for t in times]
    energy, source = _energy(points, None, "nvml")
    assert source == "nvml_power_integration"
    assert energy == pytest.approx(quad(lambda t: np.sin(t) + 2, 0, 3)[0], rel=1e-3)
    assert _energy([points[0], (1.0, Reading())], None, "nvml") == (None, None)  # no power at an edge


def test_peak_memory_uses_high_water_mark_only_when_it_rose():
    rss_edges = [(0.0, Reading(memory_bytes=100, memory_peak_bytes=500)), (0.5, Reading(memory_bytes=300))]
    # a spike freed before the window ended: only the process's high-water mark saw it
    assert _peak_memory([*rss_edges, (1.0, Reading(memory_bytes=100, memory_peak_bytes=900))]) == 900
    # the mark was set before the window: it says nothing about the window, the samples do
    assert _peak_memory([*rss_edges, (1.0, Reading(memory_bytes=100, memory_peak_bytes=500))]) == 300


def test_nvml_unavailable(fake_nvml, monkeypatch):
    def fail():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    fake_nvml(FakeGPUs(1), nvmlInit=fail)
    with pytest.raises(BackendUnavailable, match="backend='nvml' requested, but NVML cannot initialise"):
        Monitor("nvml")
    with Monitor("auto") as mon:
        assert mon.backend.name == "cpu"
        assert "NVML cannot initialise" in mon.describe()["fallback_reason"]
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed at all
    with pytest.raises(BackendUnavailable, match="nvidia-ml-py"):
        Monitor("nvml")
    assert Monitor("auto").backend.name == "cpu"


@pytest.mark.parametrize("visible, match", [("", "no GPU visible"), ("MIG-1234", "MIG")])
def test_nvml_hidden_gpus(fake_nvml, monkeypatch, visible, match):
    mocks = fake_nvml(FakeGPUs(2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with pytest.raises(BackendUnavailable, match=match):
        Monitor("nvml")
    assert mocks["nvmlShutdown"].call_count == 1  # nothing left initialised
    assert Monitor("auto").backend.name == "cpu"


def test_nvml_bad_devices_argument(fake_nvml):
    fake_nvml(FakeGPUs(2))
    with pytest.raises(ValueError, match="visible GPUs 0..1"):
        Monitor("nvml", devices=[2])
    with Monitor("nvml", devices=[1]) as mon:
        assert mon.devices == ["cuda:1"]


# ---- replay ---------------------------------------------------------------------------------------
def test_replay_window_energy_by_hand():
    """gpu0 has power only: 100 W on [0.5,1] + 100->200 W on [1,2] + 200 W on [2,2.5] = 50+150+100 J.
    gpu1 has a cumulative energy_j column, which wins over its power: E(2.5)-E(0.5) = 1160-1030 J."""
    clock = ManualClock(0.5)
    with Monitor("replay", replay_csv=TRACE, clock=clock) as mon:
        mon.begin_window("w")
        clock.t = 2.5
        m = mon.end_window("w")
    assert m.energy_j == {"gpu0": pytest.approx(300.0), "gpu1": pytest.approx(130.0)}
    assert m.total_energy_j == pytest.approx(430.0)
    assert m.total_mean_power_w == pytest.approx(215.0)
    assert m.energy_source == {"gpu0": "replay_power_integration", "gpu1": "replay_energy_column"}
    assert m.n_samples == 2  # the trace points at 1 s and 2 s
    assert m.peak_memory_bytes == {"gpu0": 3_000_000_000, "gpu1": 600_000_000}
    # time-weighted utilisation: gpu0 (0.5*(25+50)/2 + (50+100)/2 + 0.5*100) / 2 s
    assert m.utilization_pct == {"gpu0": pytest.approx(71.875), "gpu1": pytest.approx(30.0)}


def test_replay_matches_quad_and_windows_add_up():
    trace = pd.read_csv(TRACE)
    gpu0 = trace[trace.device == "gpu0"]
    clock = ManualClock()
    mon = Monitor("replay", devices=["gpu0"], replay_csv=TRACE, clock=clock)
    energies = {}
    for name, (t0, t1) in {"a": (0.3, 1.7), "b": (1.7, 3.9), "all": (0.3, 3.9)}.items():
        clock.t = t0
        mon.begin_window(name)
        clock.t = t1
        energies[name] = mon.end_window(name).total_energy_j
        kinks = [k for k in gpu0.time_s if t0 < k < t1]
        exact, _ = quad(lambda t: np.interp(t, gpu0.time_s, gpu0.power_w), t0, t1, points=kinks)
        assert energies[name] == pytest.approx(exact, rel=1e-9)
    assert energies["a"] + energies["b"] == pytest.approx(energies["all"])


def test_replay_constant_power_gives_power_times_time(tmp_path):
    csv = tmp_path / "flat.csv"
    pd.DataFrame({"time_s": [0.0, 5.0], "device": "gpu0", "power_w": 100.0}).to_csv(csv, index=False)
    clock = ManualClock(1.0)
    with Monitor("replay", replay_csv=csv, clock=clock) as mon:
        mon.begin_window("decode")
        clock.t = 3.0
        m = mon.end_window("decode")
    tokens = 50
    assert m.total_energy_j == pytest.approx(200.0)
    assert m.total_energy_j / tokens == pytest.approx(4.0)  # J per token
    row = m.to_dict()
    assert json.loads(json.dumps(row)) == row
    assert set(row) == {
        "backend",
        "devices",
        "time_s",
        "energy_j",
        "mean_power_w",
        "peak_memory_bytes",
        "utilization_pct",
        "energy_source",
        "energy_missing_reason",
    }
    assert row["peak_memory_bytes"] is None and row["mean_power_w"] == pytest.approx(100.0)


def test_replay_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,device\n0,gpu0\n1,gpu0\n")
    with pytest.raises(BadInput, match=r"bad.csv.*power_w"):
        Monitor("replay", replay_csv=bad)
    back = tmp_path / "back.csv"
    back.write_text("time_s,device,power_w\n0,gpu0,1\n2,gpu0,1\n1,gpu0,1\n")
    with pytest.raises(BadInput, match="increasing time_s"):
        Monitor("replay", replay_csv=back)
    with pytest.raises(BadInput, match="needs replay_csv"):
        Monitor("replay")
    with pytest.raises(BadInput, match=r"\['gpu9'\]"):
        Monitor("replay", devices=["gpu9"], replay_csv=TRACE)
    clock = ManualClock(3.0)
    mon = Monitor("replay", replay_csv=TRACE, clock=clock)
    mon.begin_window("w")
    clock.t = 4.5
    with pytest.raises(ValueError, match="outside the trace"):
        mon.end_window("w")


def test_window_names(tmp_path):
    clock = ManualClock(1.0)
    mon = Monitor("replay", replay_csv=TRACE, clock=clock)
    mon.begin_window("a")
    with pytest.raises(ValueError, match="already open"):
        mon.begin_window("a")
    with pytest.raises(ValueError, match=r"not open \(open: \['a'\]\)"):
        mon.end_window("b")
    clock.t = 2.0
    mon.begin_window("b")  # overlapping windows: a = [1, 3], b = [2, 4]
    clock.t = 3.0
    a = mon.end_window("a")
    clock.t = 4.0
    b = mon.end_window("b")
    assert (a.start_s, a.end_s, b.start_s, b.end_s) == (1.0, 3.0, 2.0, 4.0)
    assert a.energy_j["gpu0"] == pytest.approx(350.0) and b.energy_j["gpu0"] == pytest.approx(350.0)


# ---- CPU: RAPL on a fake sysfs tree, the real process otherwise ------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """The sampler thread may read at any moment: it must never see a half-written counter."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fake_rapl(root: Path, packages: dict[int, int], max_range: int = 1_000_000_000) -> Path:
    for i, energy in packages.items():
        zone = root / f"intel-rapl:{i}"
        (zone / f"intel-rapl:{i}:0").mkdir(parents=True)  # a core sub-zone, as in real trees
        (zone / "name").write_text(f"package-{i}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
        write_atomic(zone / "energy_uj", f"{energy}\n")
    dram = root / "intel-rapl:0" / "intel-rapl:0:1"
    dram.mkdir()
    (dram / "name").write_text("dram\n")
    return root


def test_rapl_window_sums_packages_and_undoes_wraparound(tmp_path):
    root = fake_rapl(tmp_path / "powercap", {0: 999_000_000, 1: 5_000_000})
    clock = ManualClock(0.0)
    with Monitor(CPUBackend(rapl_root=root), clock=clock) as mon:
        assert mon.describe()["rapl_domains"] == ["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]
        mon.begin_window("w")
        write_atomic(root / "intel-rapl:0" / "energy_uj", "2000000\n")  # wrapped: +1 J up to 1e9 uJ, +2 J
        write_atomic(root / "intel-rapl:1" / "energy_uj", "9000000\n")  # +4 J
        clock.t = 2.0
        m = mon.end_window("w")
    assert m.total_energy_j == pytest.approx(3.0 + 4.0)
    assert m.mean_power_w == {"cpu": pytest.approx(3.5)}
    assert m.energy_source == {"cpu": "rapl_package"} and m.energy_missing_reason is None
    assert not sampler_threads()


def test_rapl_counter_wraps_more_than_once(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    domain = RaplDomain(zone, "package-0", max_range_uj=1000)
    totals = []
    for raw in (900, 100, 800, 50, 60):
        (zone / "energy_uj").write_text(str(raw))
        totals.append(domain.read_uj())
    assert totals == [900, 1100, 1800, 2050, 2060]


def test_rapl_unreadable_gives_reason(tmp_path, monkeypatch):
    domains, reason = find_rapl_domains(tmp_path / "absent")
    assert domains == [] and "no RAPL domain readable under" in reason and "does not exist" in reason
    (tmp_path / "mmio" / "intel-rapl-mmio:0").mkdir(parents=True)
    assert "no intel-rapl package zone" in find_rapl_domains(tmp_path / "mmio")[1]
    root = fake_rapl(tmp_path / "powercap", {0: 1, 1: 2})
    read_text = Path.read_text

    def deny(self, *args, **kwargs):
        if self.name == "energy_uj" and self.parent.name == "intel-rapl:1":
            raise PermissionError(13, "Permission denied")
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    domains, reason = find_rapl_domains(root)
    assert domains == []  # one unreadable package: no partial sum passed off as the CPU's energy
    assert "intel-rapl:1: permission denied" in reason
    with Monitor(CPUBackend(rapl_root=root)) as mon:
        mon.begin_window("w")
        m = mon.end_window("w")
    assert m.energy_j is None and m.total_energy_j is None and m.total_mean_power_w is None
    assert m.energy_missing_reason == reason
    assert m.to_dict()["energy_missing_reason"] == reason


def test_auto_backend_never_fails_here():
    """Whatever this machine has: a measurement comes back, and missing energy says why."""
    with Monitor() as mon:
        mon.begin_window("work")
        block = np.ones(8 << 20)  # 64 MiB, touched, alive at the window's end
        deadline = time.process_time() + 0.1
        while time.process_time() < deadline:
            pass
        m = mon.end_window("work")
    assert isinstance(m, Measurement) and m.time_s > 0
    assert (m.total_energy_j is None) == (m.energy_missing_reason is not None)
    if m.backend == "cpu":
        assert 0 < m.utilization_pct["cpu"] <= 100.5
        assert m.peak_memory_bytes["cpu"] >= block.nbytes


def test_cpu_backend_rejects_gpu_devices():
    with pytest.raises(ValueError, match="one device 'cpu'"):
        CPUBackend(devices=[0])


# ---- sampler --------------------------------------------------------------------------------------
def test_sampler_timeline_and_clean_stop():
    with Monitor("cpu", sample_hz=50.0) as mon:
        mon.begin_window("w")
        mon.start_sampler()
        mon.start_sampler()  # idempotent: still one thread
        assert len(sampler_threads()) == 1
        deadline = time.monotonic() + 120  # a wait bound, left at once on a quiet machine
        while len(mon.timeline()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mon.describe()["buffered_samples"] >= 5  # an open window keeps its samples...
        assert mon.end_window("w").n_samples >= 5
        mon.stop_sampler()
        assert mon.describe()["buffered_samples"] == 1  # ...and they go once no window needs them
        frame = mon.timeline()
        assert not sampler_threads()
        time.sleep(0.05)
        assert len(mon.timeline()) == len(frame)  # stopped means no more rows
    assert list(frame.columns) == TIMELINE_COLUMNS
    assert len(frame) >= 5 and set(frame.device) == {"cpu"}
    assert frame.time_s.is_monotonic_increasing
    assert frame.utilization_pct.iloc[1:].notna().all()  # from CPU-time differences between samples
    assert (frame.memory_bytes > 0).all()
    assert not sampler_threads()


def test_sampler_error_is_raised_on_stop():
    clock = ManualClock(1.0)
    mon = Monitor("replay", replay_csv=TRACE, sample_hz=100.0, clock=clock)
    mon.start_sampler()
    clock.t = 9.0  # past the trace's end: the sampler's next read fails
    deadline = time.monotonic() + 120  # a wait bound, left at once on a quiet machine
    while sampler_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="sampler stopped early.*outside the trace"):
        mon.close()


def test_bad_arguments():
    with pytest.raises(BadInput, match="sample_hz"):
        Monitor("cpu", sample_hz=0)
    with pytest.raises(BadInput, match="choose one of"):
        Monitor("tpu")
