"""Energy per run: RAPL counters when readable, else CPU time x a per-core figure; the engine reports both."""
from __future__ import annotations

import time

import pytest
from helpers import blob_study, tiny_onnx_card

from napari_lightseg import engine
from napari_lightseg.energy import DEFAULT_WATTS_PER_CORE, WATTS_ENV, EnergyMeter, measure, rapl_packages


@pytest.fixture(autouse=True)
def _private_session_cache(tmp_path, monkeypatch):
    """Optimized ONNX graphs go to this test's folder, not the user's cache."""
    monkeypatch.setenv("LIGHTSEG_CACHE", str(tmp_path / "ort-cache"))


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        sum(range(1000))


def _fake_powercap(root, values, max_range=1000):
    for name, value in values.items():
        zone = root / name
        zone.mkdir(parents=True)
        (zone / "energy_uj").write_text(f"{value}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return root


def test_cpu_time_estimate_uses_the_figure(monkeypatch):
    monkeypatch.setenv(WATTS_ENV, "10")
    with measure(use_rapl=False) as m:
        _busy(0.05)
    usage = m.usage
    assert usage.cpu_s >= 0.05 and usage.wall_s >= 0.04
    assert usage.energy_j == pytest.approx(usage.cpu_s * 10.0)
    assert usage.energy_wh == pytest.approx(usage.energy_j / 3600)
    assert usage.method == "estimate: cpu-time x 10 W/core"
    monkeypatch.setenv(WATTS_ENV, "not a number")
    assert EnergyMeter(use_rapl=False).start().stop().method == f"estimate: cpu-time x {DEFAULT_WATTS_PER_CORE:g} W/core"


def test_rapl_sums_packages_and_handles_wraparound(tmp_path):
    root = _fake_powercap(tmp_path, {"intel-rapl:0": 900, "intel-rapl:1": 100, "intel-rapl:0:0": 5})
    assert [z.name for z in rapl_packages(root)] == ["intel-rapl:0", "intel-rapl:1"]  # sub-zones not counted twice
    meter = EnergyMeter(root=root).start()
    (root / "intel-rapl:0" / "energy_uj").write_text("100\n")  # wrapped: 900 -> 1000 -> 100 = 200 uJ
    (root / "intel-rapl:1" / "energy_uj").write_text("400\n")  # +300 uJ
    usage = meter.stop()
    assert usage.energy_j == pytest.approx(500e-6)
    assert usage.method.startswith("rapl") and "whole machine" in usage.method


def test_unreadable_rapl_falls_back_to_the_estimate(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("")  # as an unreadable counter: no number
    assert rapl_packages(tmp_path) == []
    assert EnergyMeter(root=tmp_path).start().stop().method.startswith("estimate")


def test_engine_result_and_report_carry_energy(tmp_path):
    result = engine.run(blob_study(), tiny_onnx_card(tmp_path), threads=1)
    run = result.report
    assert run.cpu_s > 0 and run.energy_j > 0 and run.energy_method
    report = run.as_dict()
    assert report["cpu_s"] == pytest.approx(run.cpu_s, abs=1e-3)
    assert report["energy_j"] == pytest.approx(run.energy_j, abs=1e-2)
    assert report["energy_wh"] == pytest.approx(run.energy_j / 3600, abs=1e-5)
    assert report["energy_method"] == run.energy_method
