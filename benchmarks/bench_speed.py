"""Where one ``lightseg segment`` run spends its time, and what the on-disk ORT session cache changes.

Writes ``benchmarks/RESULTS_speed.md`` and ``benchmarks/results_speed.json``:

1. Imports: CPU seconds of ``import X`` in a fresh interpreter (median), for the packages the
   segment path loads, and for the package's own modules.
2. Session creation (in-process, median): optimizing the graph afresh vs loading the cached optimized
   graph (``backends.registry``; ``LIGHTSEG_CACHE``).
3. Whole process, ``lightseg segment`` with the fastest model, cache off (before) and on (after),
   interleaved so both see the same background load: wall and CPU (user+sys) seconds, median; the
   masks' sha256 must be equal (bit-identical outputs) on each case.
4. An experiment for the CLI: importing the engine (SciPy, ONNX Runtime) in a thread while the four
   files are read and inflated (gzip releases the GIL) vs one after the other.

    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_speed.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("LIGHTSEG_DATA", HERE.parent / ".." / "shared" / "data")).resolve()
CASES = ["Brats18_TCIA02_606_1", "Brats18_CBICA_ALU_1"]
MODEL = "mnv3-lraspp-int8"
IMPORTS = ["numpy", "onnxruntime", "pydicom", "nibabel", "scipy.ndimage", "napari_lightseg.io", "napari_lightseg.engine",
           "napari_lightseg.cli"]

OVERLAP = r"""
import sys, time
t = time.perf_counter()
import importlib, threading
from napari_lightseg.io import load_study
overlap = sys.argv[2] == "overlap"
if overlap:
    thread = threading.Thread(target=importlib.import_module, args=("napari_lightseg.engine",))
    thread.start()
study = load_study(sys.argv[1], with_labels=False)
if overlap:
    thread.join()
else:
    importlib.import_module("napari_lightseg.engine")
print(time.perf_counter() - t)
"""


def child(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall and CPU (user+sys) seconds of a child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:5])}: exit {proc.returncode}: {proc.stderr[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def import_costs(repeats: int) -> dict[str, float]:
    base = statistics.median(child([sys.executable, "-c", "pass"])[1] for _ in range(repeats))
    out = {"(interpreter start)": base}
    for module in IMPORTS:
        out[module] = statistics.median(child([sys.executable, "-c", f"import {module}"])[1] for _ in range(repeats)) - base
    return out


def session_costs(repeats: int) -> dict[str, float]:
    import onnxruntime as ort

    from napari_lightseg.backends import registry
    from napari_lightseg.models import get_card

    card = get_card(MODEL)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, setting in (("optimize afresh", "off"), ("load cached optimized graph", tmp)):
            os.environ["LIGHTSEG_CACHE"] = setting
            registry._ort_session.cache_clear()
            registry._ort_session(str(card.path), registry.CPU_PROVIDER, 2, card.sha256)  # fills the cache when on
            times = []
            for _ in range(repeats):
                registry._ort_session.cache_clear()
                t = time.process_time()
                registry._ort_session(str(card.path), registry.CPU_PROVIDER, 2, card.sha256)
                times.append(time.process_time() - t)
            out[label] = statistics.median(times)
    os.environ.pop("LIGHTSEG_CACHE", None)
    out["onnxruntime"] = ort.__version__
    return out


def whole_process(repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env_on = {"LIGHTSEG_CACHE": f"{tmp}/cache"}
        for case in CASES:
            runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            digests = {}
            for i in range(repeats + 1):  # the first round fills the cache and is not counted
                for label, env in (("before", {"LIGHTSEG_CACHE": "off"}), ("after", env_on)):
                    out = f"{tmp}/{label}.nii.gz"
                    wall, cpu, _ = child([sys.executable, "-m", "napari_lightseg.cli", "segment", str(DATA / "brats18" / case),
                                          "--model", MODEL, "--out", out], env)
                    digests[label] = hashlib.sha256(Path(out).read_bytes()).hexdigest()
                    if i:
                        runs[label].append((wall, cpu))
            rows.append({"case": case, **{f"{k}_wall_s": statistics.median(w for w, _ in v) for k, v in runs.items()},
                         **{f"{k}_cpu_s": statistics.median(c for _, c in v) for k, v in runs.items()},
                         "sha256_before": digests["before"], "sha256_after": digests["after"],
                         "identical": digests["before"] == digests["after"]})
    return rows


def overlap(repeats: int) -> dict[str, float]:
    case = str(DATA / "brats18" / CASES[0])
    out = {}
    for mode in ("serial", "overlap"):
        out[mode] = statistics.median(float(child([sys.executable, "-c", OVERLAP, case, mode])[2]) for _ in range(repeats))
    return out


def markdown(res: dict) -> str:
    lines = ["# Single-case speed (`benchmarks/bench_speed.py`)", "",
             f"{res['when']}; {os.cpu_count()} cores; load average (1 min) {res['load_start']:.2f} at start, "
             f"{res['load_end']:.2f} at end: **other engineers' jobs shared these cores**, so wall times are inflated "
             "and noisy; CPU seconds are steadier. Medians; model `" + MODEL + "`.", "",
             "## Imports (CPU s in a fresh interpreter, each including what it imports)", "", "| import | CPU s |", "|---|---:|"]
    lines += [f"| `{k}` | {v:.3f} |" for k, v in res["imports"].items()]
    s = res["session"]
    lines += ["", f"## ONNX Runtime session creation (ORT {s['onnxruntime']}, CPU s)", "", "| | CPU s |", "|---|---:|",
              f"| optimize afresh (before) | {s['optimize afresh']:.3f} |",
              f"| load the cached optimized graph (after) | {s['load cached optimized graph']:.3f} |", "",
              "## `lightseg segment` whole process, cache off (before) vs on (after)", "",
              "| case | before wall s | after wall s | before CPU s | after CPU s | masks bit-identical |",
              "|---|---:|---:|---:|---:|---|"]
    for r in res["whole"]:
        lines.append(f"| {r['case']} | {r['before_wall_s']:.2f} | {r['after_wall_s']:.2f} | {r['before_cpu_s']:.2f} | "
                     f"{r['after_cpu_s']:.2f} | {'yes' if r['identical'] else 'NO'} (`{r['sha256_after'][:12]}`) |")
    o = res["overlap"]
    lines += ["", "## Experiment: import the engine while reading (not wired into the CLI)", "",
              f"Importing `napari_lightseg.engine` (SciPy, ONNX Runtime) and reading the four files of {CASES[0]}: "
              f"one after the other {o['serial']:.2f} s, the import in a thread during the read {o['overlap']:.2f} s "
              f"(wall, median).", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    if not (DATA / "brats18").is_dir():
        sys.exit(f"bench_speed: no brats18 cases under {DATA} (set LIGHTSEG_DATA)")
    res: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": os.getloadavg()[0]}
    res["imports"] = import_costs(args.repeats)
    res["session"] = session_costs(max(args.repeats, 10))
    res["whole"] = whole_process(args.repeats)
    res["overlap"] = overlap(args.repeats)
    res["load_end"] = os.getloadavg()[0]
    (HERE / "results_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "RESULTS_speed.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
