"""Wall time, CPU seconds and an energy figure for a run, with the method that produced it named.

Two methods, the better one when it is available:

- ``rapl``: the kernel's RAPL counters (``/sys/class/powercap/intel-rapl:N/energy_uj``, also used for
  AMD CPUs by recent kernels), summed over CPU packages. This is MEASURED package energy of the WHOLE
  machine over the interval (every process and idle power included), not of this run alone. Most
  kernels since 2020 make these files readable by root only (CVE-2020-8694), so it is rarely usable.
- ``cpu-time``: an ESTIMATE, process CPU seconds (all threads) x a power figure per busy core.
  This is the Green Algorithms method (Lannelongue, Grealey & Inouye 2021, *Advanced Science*
  8:2100707: core power = TDP / cores, energy = CPU time x core power). The default of
  ``DEFAULT_WATTS_PER_CORE`` = 6 W lies between a server core (AMD EPYC 7763: 280 W TDP / 64 cores
  = 4.4 W) and a laptop core (Intel Core i7-1185G7: 28 W TDP / 4 cores = 7 W), from the vendors'
  spec sheets. Memory, disk, the rest of the machine and idle power are left out, so it is the
  CPU's share of the run only. Set ``LIGHTSEG_WATTS_PER_CORE`` for your CPU (its TDP / its cores).

CodeCarbon is not used: version 3.3.2 declares 16 direct dependencies (pandas, pydantic, authlib,
requests, ...) that this plugin otherwise does not need, and without RAPL it falls back to the same
kind of TDP-based estimate as the ``cpu-time`` method here.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WATTS_PER_CORE = 6.0
WATTS_ENV = "LIGHTSEG_WATTS_PER_CORE"
POWERCAP = Path("/sys/class/powercap")
JOULES_PER_WH = 3600.0


@dataclass(frozen=True)
class Usage:
    """What a run cost: ``energy_j`` comes from ``method`` (see the module docstring)."""

    wall_s: float
    cpu_s: float
    energy_j: float
    method: str

    @property
    def energy_wh(self) -> float:
        return self.energy_j / JOULES_PER_WH

    def as_dict(self) -> dict[str, float | str]:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4), "energy_j": round(self.energy_j, 3),
                "energy_wh": round(self.energy_wh, 6), "energy_method": self.method}


def watts_per_core() -> float:
    """The per-core power figure: ``LIGHTSEG_WATTS_PER_CORE`` when set to a positive number, else the default."""
    try:
        value = float(os.environ.get(WATTS_ENV, ""))
    except ValueError:
        return DEFAULT_WATTS_PER_CORE
    return value if value > 0 else DEFAULT_WATTS_PER_CORE


def rapl_packages(root: Path = POWERCAP) -> list[Path]:
    """Package-level RAPL zones whose counter this process can read (sub-zones would double count)."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:  # intel-rapl:0:0 (core, dram) is part of intel-rapl:0
            continue
        try:
            int((zone / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


def _read_uj(zone: Path) -> int:
    return int((zone / "energy_uj").read_text())


def _range_uj(zone: Path) -> int:
    try:
        return int((zone / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        return 2**32


class EnergyMeter:
    """``start()`` then ``stop() -> Usage``; or use ``measure()``. Process CPU time covers all its threads."""

    def __init__(self, *, use_rapl: bool = True, root: Path = POWERCAP) -> None:
        self.zones = rapl_packages(root) if use_rapl else []
        self._wall = self._cpu = 0.0
        self._uj: list[int] = []

    def start(self) -> EnergyMeter:
        self._uj = [_read_uj(z) for z in self.zones]
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> Usage:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        if self.zones:
            try:
                joules = 0.0
                for zone, before in zip(self.zones, self._uj):
                    delta = _read_uj(zone) - before
                    joules += (delta if delta >= 0 else delta + _range_uj(zone)) / 1e6  # the counter wrapped
                return Usage(wall, cpu, joules, "rapl package energy (measured, whole machine)")
            except (OSError, ValueError):
                pass  # a counter vanished mid-run: fall back to the estimate
        figure = watts_per_core()
        return Usage(wall, cpu, cpu * figure, f"estimate: cpu-time x {figure:g} W/core")


@dataclass
class Measurement:
    """Filled in when the ``measure()`` block ends."""

    usage: Usage | None = None


@contextmanager
def measure(**kwargs) -> Iterator[Measurement]:
    """``with measure() as m: ...``; afterwards ``m.usage`` holds the ``Usage``."""
    meter = EnergyMeter(**kwargs)
    holder = Measurement()
    meter.start()
    try:
        yield holder
    finally:
        holder.usage = meter.stop()
