"""Where one ``lightseg segment`` run spends its time, before and after the speed work of issue #12.

Writes ``benchmarks/RESULTS_speed.md`` and ``benchmarks/results_speed.json``:

1. Imports: CPU seconds of ``import X`` in a fresh interpreter (median), for the packages the
   segment path loads and for the package's own modules, with the ``--before`` tree and this one.
2. Session creation (in-process, median): optimizing the graph afresh vs loading the cached optimized
   graph (``backends.registry``; ``LIGHTSEG_CACHE``).
3. Whole process, ``lightseg segment`` as the console script runs it (``python -m napari_lightseg._entry``,
   no server): ``MODEL`` with the package as of ``--before`` (a git ref, exported to a temporary folder) and
   as in this checkout, interleaved so both see the same background load, and the speed tier ``FAST``
   (this checkout only): wall and CPU (user+sys) seconds, median; ``MODEL``'s masks' sha256 must be equal
   (bit-identical outputs: the decoded label arrays, ``check_identical.label_digest``) on each case. Both trees are byte-compiled first, as an installed package
   is (this machine sets PYTHONDONTWRITEBYTECODE, which would charge ~0.1 s of compiling to every run).
4. ``lightseg segment`` as a client of a warm ``lightseg serve`` vs cold (``served``), with ``FAST``: client
   wall and CPU, the server's own CPU per job, bit-identical masks.

Every child process runs this interpreter: run the script with the Python a user would have (a plain,
non-editable install in a venv: an editable install or a sandbox's .pth files add to every Python start;
the header names the interpreter and its .pth files).

    LIGHTSEG_DATA=../shared/data PYTHONPATH=. VENV/bin/python benchmarks/bench_speed.py [--repeats 7] [--before REF]
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from check_identical import label_digest  # benchmarks/ is on sys.path when this runs as a script
from machine import cpu_line

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve()
CASES = ["Brats18_TCIA02_606_1", "Brats18_CBICA_ALU_1"]
MODEL = "mnv3-lraspp-int8"  # the fastest model before session 6: bit-identical masks before/after
FAST = "mnv3-lraspp-fast-int8"  # the speed tier (session 6): 2x2-averaged slices
BEFORE = "0b4a645"  # main before session 6's speed work
# children run here: ``python -c``/``-m`` put the working folder first on sys.path, before PYTHONPATH
NEUTRAL_DIR = tempfile.gettempdir()
IMPORTS = ["numpy", "onnxruntime", "pydicom", "nibabel", "scipy.ndimage", "SimpleITK", "napari_lightseg.io",
           "napari_lightseg.engine", "napari_lightseg.cli"]


STAGES = r"""
import json, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
from napari_lightseg import cli  # noqa: the CLI's own imports (nibabel, numpy, the io package)
mark("import the CLI (nibabel, numpy)")
from napari_lightseg import clinical, engine
from napari_lightseg.io import Segmentation
from napari_lightseg.io.outputs import OutputPlan
from napari_lightseg.io.study import study_convention
from napari_lightseg.metrics import class_volumes_ml
from napari_lightseg.models import get_card
from napari_lightseg.postprocess import clean_and_find
from napari_lightseg.preprocess import prepare, quality, uncrop
mark("import the engine (cc3d; ONNX Runtime loads with the session)")
case, out = sys.argv[1], sys.argv[2]
card = get_card(sys.argv[3])
study = clinical.load_nifti_study(case, with_labels=False)
mark("read 4 NIfTI (zlib-ng inflate in parallel)")
clinical.needs_brain_extraction(study)
mark("skull-stripped? (brain-extraction decision)")
study.convention = study_convention(study)
mark("label convention of the ground truth file")
study, _, brain = quality.inspect_inputs(study, card.sequences)  # the brain region, reused below
mark("input checks (and the brain region)")
inference = engine.get_backend("onnxruntime").load(card, None, None)
mark("ONNX Runtime import + session (cached graph)")
image, crop = prepare([study.images[s] for s in card.sequences], brain)
mark("preprocess (crop, z-score)")
labels = uncrop(engine._infer_slices(inference.run, image, engine.DEFAULT_BATCH, None, None, card, None,
                                     inference.parallel), crop)
mark("inference + argmax")
spacing = study.geometry.spacing
labels, _ = clean_and_find(labels, engine.MIN_COMPONENT_ML, spacing)  # one labelling: removal + detections
class_volumes_ml(labels, spacing)
quality.check_result(labels, study, card.sequences, brain)
mark("postprocess (components, volumes, checks)")
with OutputPlan([case], overwrite=True) as plan:
    clinical.plan_mask_outputs(plan, out)
    clinical.save_mask(plan, out, Segmentation(labels, study.geometry, study.convention), study)
    plan.commit()
mark("write mask (zlib-ng level 2) + sidecar")
print(json.dumps([(n, w - marks[i][1], c - marks[i][2]) for i, (n, w, c) in enumerate(marks[1:])]))
"""


def stage_costs(repeats: int, tree: Path) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of each stage of the segment path, in one fresh process per repeat (median)."""
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):  # the first run fills the session cache and is not counted
            _, _, text = child([sys.executable, "-c", STAGES, str(DATA / "brats18" / CASES[0]), f"{tmp}/stage.nii.gz",
                                FAST], {"PYTHONPATH": str(tree), "LIGHTSEG_CACHE": f"{tmp}/cache"})
            for name, wall, cpu in json.loads(text.strip().splitlines()[-1]) if i else ():
                runs.setdefault(name, []).append((wall, cpu))
    return {name: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v)}
            for name, v in runs.items()}


def export_tree(ref: str, dest: Path) -> Path:
    """The package as of git ``ref``, extracted under ``dest`` (for PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "napari_lightseg"],
                             capture_output=True, check=True).stdout
    archive_path = dest / "tree.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(dest, filter="data")
    return dest


def child(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall and CPU (user+sys) seconds of a child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=NEUTRAL_DIR)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:5])}: exit {proc.returncode}: {proc.stderr[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def import_costs(repeats: int, trees: dict[str, Path]) -> dict[str, dict[str, float]]:
    """CPU seconds of each import above the bare interpreter, per tree (interleaved)."""
    base = statistics.median(child([sys.executable, "-c", "pass"])[1] for _ in range(repeats))
    out: dict[str, dict[str, float]] = {"(interpreter start)": dict.fromkeys(trees, base)}
    for module in IMPORTS:
        runs: dict[str, list[float]] = {label: [] for label in trees}
        for _ in range(repeats):
            for label, tree in trees.items():
                runs[label].append(child([sys.executable, "-c", f"import {module}"], {"PYTHONPATH": str(tree)})[1])
        out[module] = {label: statistics.median(v) - base for label, v in runs.items()}
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


def spinning(repeats: int) -> dict[str, dict[str, float]]:
    """Inference of one case with ONNX Runtime's idle threads spinning (its default) or sleeping (ours),
    in-process and interleaved: wall and CPU seconds (median); labels must be equal."""
    import numpy as np
    import onnxruntime as ort

    from napari_lightseg import engine
    from napari_lightseg.io import load_study
    from napari_lightseg.models import get_card
    from napari_lightseg.preprocess import prepare

    card = get_card(MODEL)
    study = load_study(DATA / "brats18" / CASES[0], with_labels=False)
    image, _ = prepare([study.images[s] for s in card.sequences])
    runs: dict[str, list[tuple[float, float]]] = {"spinning": [], "sleeping": []}
    labels = {}
    for _ in range(repeats):
        for label, spin in (("spinning", "1"), ("sleeping", "0")):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 2, 1, 3
            opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
            session = ort.InferenceSession(str(card.path), sess_options=opts, providers=["CPUExecutionProvider"])

            def run(batch, session=session):
                return session.run([card.outputs[0]], {card.inputs[0]: batch})[0]

            t, c = time.perf_counter(), time.process_time()
            labels[label] = engine._infer_slices(run, image, engine.DEFAULT_BATCH, None, None)
            runs[label].append((time.perf_counter() - t, time.process_time() - c))
    out = {k: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v)}
           for k, v in runs.items()}
    out["identical"] = {"labels": float(np.array_equal(labels["spinning"], labels["sleeping"]))}
    return out


GUI_MODELS = (FAST, MODEL, "mnv3-lraspp-v2-int8")


def concurrency(repeats: int) -> dict[str, dict[str, float]]:
    """Inference of one case, in-process and interleaved: one batch at a time on a 2-thread session (before)
    vs two batches at once on a 1-thread session (``registry.split_threads``); wall and CPU s (median),
    labels must be equal. Each model with its card's flips."""
    import numpy as np

    from napari_lightseg import engine
    from napari_lightseg.backends import registry
    from napari_lightseg.io import load_study
    from napari_lightseg.models import get_card
    from napari_lightseg.preprocess import prepare

    study = load_study(DATA / "brats18" / CASES[0], with_labels=False)
    out: dict[str, dict[str, float]] = {}
    for name in GUI_MODELS:
        card = get_card(name)
        image, _ = prepare([study.images[s] for s in card.sequences])
        setups = {"1 batch x 2 threads": (2, 1), "2 batches x 1 thread": (1, 2)}
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in setups}
        labels = {}
        for _ in range(repeats):
            for label, (threads, workers) in setups.items():
                session = registry._ort_session(str(card.path), registry.CPU_PROVIDER, threads, card.sha256 or "")

                def run(batch, session=session, names=(card.inputs[0], card.outputs[0])):
                    return session.run([names[1]], {names[0]: batch})[0]

                t, c = time.perf_counter(), time.process_time()
                labels[label] = engine._infer_slices(run, image, engine.DEFAULT_BATCH, None, None, card, None, workers)
                runs[label].append((time.perf_counter() - t, time.process_time() - c))
        first, second = setups
        for label, v in runs.items():
            out[f"{name} | {label}"] = {"wall_s": statistics.median(w for w, _ in v),
                                        "cpu_s": statistics.median(c for _, c in v),
                                        "identical": float(np.array_equal(labels[first], labels[second]))}
    return out



def opened_study_runs(repeats: int) -> dict[str, dict[str, float]]:
    """What the segment widget's Run costs on a study already open in napari: ``engine.run`` in-process on a
    loaded study with the session already made (the widget keeps it), each model with its card's flips (median)."""
    from napari_lightseg import engine
    from napari_lightseg.io import load_study
    from napari_lightseg.models import get_card

    study = load_study(DATA / "brats18" / CASES[0], with_labels=False)
    out = {}
    for name in GUI_MODELS:
        card = get_card(name)
        engine.run(study, card, None, threads=2)  # the first Run makes the session
        times = []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            engine.run(study, card, None, threads=2)
            times.append((time.perf_counter() - t, time.process_time() - c))
        flips = "+".join(card.test_time_flips) or "none"
        out[f"{name} (flips: {flips})"] = {"wall_s": statistics.median(w for w, _ in times),
                                           "cpu_s": statistics.median(c for _, c in times)}
    return out


def whole_process(repeats: int, trees: dict[str, Path]) -> list[dict]:
    """``lightseg segment`` as the console script runs it (no server), per case: ``MODEL`` with each tree and
    ``FAST`` with this one, interleaved; medians, fastest run and the masks' sha256 (decoded labels)."""
    runners = {"before": (trees["before"], MODEL), "after": (trees["after"], MODEL), "fast": (trees["after"], FAST)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            runs: dict[str, list[tuple[float, float]]] = {label: [] for label in runners}
            digests = {}
            for i in range(repeats + 1):  # the first round fills the session cache and is not counted
                for label, (tree, model) in runners.items():
                    out = f"{tmp}/{label}.nii.gz"
                    wall, cpu, _ = child([sys.executable, "-m", "napari_lightseg._entry", "segment",
                                          str(DATA / "brats18" / case), "--model", model, "--out", out, "--overwrite"],
                                         {"PYTHONPATH": str(tree), "LIGHTSEG_CACHE": f"{tmp}/cache", "LIGHTSEG_SERVE": "0"})
                    digests[label] = label_digest(Path(out))  # the decoded labels: gzip bytes may differ
                    if i:
                        runs[label].append((wall, cpu))
            rows.append({"case": case, **{f"{k}_wall_s": statistics.median(w for w, _ in v) for k, v in runs.items()},
                         **{f"{k}_cpu_s": statistics.median(c for _, c in v) for k, v in runs.items()},
                         **{f"{k}_wall_min_s": min(w for w, _ in v) for k, v in runs.items()},
                         "sha256_before": digests["before"], "sha256_after": digests["after"],
                         "identical": digests["before"] == digests["after"]})
    return rows


def _process_cpu(pid: int) -> float:
    """User+system CPU seconds a running process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def served(repeats: int, case: str = CASES[0]) -> dict:
    """``lightseg segment`` as a whole client process with a warm ``lightseg serve`` vs cold (LIGHTSEG_SERVE=0),
    interleaved; medians of the client's wall and CPU seconds and of the server's CPU seconds per job; the
    masks' decoded labels must be equal. The first round (sessions made, caches filled) is not counted."""
    from napari_lightseg import serve

    compileall.compile_dir(str(ROOT / "napari_lightseg"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        sock = f"{tmp}/serve.sock"
        env = {"PYTHONPATH": str(ROOT), "LIGHTSEG_SERVE_SOCKET": sock, "LIGHTSEG_CACHE": f"{tmp}/cache"}
        server = subprocess.Popen([sys.executable, "-m", "napari_lightseg.cli", "serve", "--socket", sock],
                                  env={**os.environ, **env}, cwd=NEUTRAL_DIR, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while serve.ping(sock) is None:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"lightseg serve did not start (exit {server.poll()})")
                time.sleep(0.05)
            runs: dict[str, list[tuple[float, float, float]]] = {"served": [], "cold": []}
            digests = {}
            for i in range(repeats + 1):
                for label, extra in (("served", {}), ("cold", {"LIGHTSEG_SERVE": "0"})):
                    out = f"{tmp}/{label}.nii.gz"
                    before = _process_cpu(server.pid)
                    wall, cpu, _ = child([sys.executable, "-m", "napari_lightseg._entry", "segment",
                                          str(DATA / "brats18" / case), "--model", FAST, "--out", out, "--overwrite"],
                                         {**env, **extra})
                    server_cpu = _process_cpu(server.pid) - before
                    digests[label] = label_digest(Path(out))
                    if i:
                        runs[label].append((wall, cpu, server_cpu))
            jobs = (serve.ping(sock) or {}).get("jobs")
        finally:
            if not serve.stop(sock):
                server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    med = {f"{k}_{name}": statistics.median(r[j] for r in v) for k, v in runs.items()
           for j, name in enumerate(("wall_s", "cpu_s", "server_cpu_s"))}
    return {"case": case, **med, "served_wall_min_s": min(r[0] for r in runs["served"]),
            "jobs_served": jobs, "runs": repeats + 1, "identical": digests["served"] == digests["cold"],
            "sha256": digests["served"]}


def interpreter(repeats: int) -> tuple[str, float]:
    """What this interpreter loads at start (``site``'s .pth files) and its bare start-up wall time (median)."""
    import site

    pth = sorted(p.name for d in site.getsitepackages() for p in Path(d).glob("*.pth"))
    start = statistics.median(child([sys.executable, "-c", "pass"])[0] for _ in range(max(repeats, 5)))
    return ", ".join(pth) or "none", start


def served_only(repeats: int) -> None:
    """The warm-server table alone, for this interpreter; also what its start-up loads (``site``'s .pth files:
    an editable install adds an import finder to every Python start)."""
    pth, start = interpreter(repeats)
    load = os.getloadavg()[0]
    r = served(repeats)
    head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip()
    title = "# `lightseg segment` with a warm `lightseg serve` (`benchmarks/bench_speed.py --served-only`)\n\nOne section a run, newest last.\n"
    text = "\n".join([
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        f"{cpu_line()}; load average (1 min) {load:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; code of this checkout ({head}); interpreter `{sys.executable}` "
        f"(prefix `{sys.prefix}`); its site-packages' .pth files: {pth}; "
        f"`python -c pass` {start:.3f} s wall (median). Medians of {repeats}, interleaved, {r['case']}, `{FAST}`.", "",
        "| run | client process wall s | client CPU s | server CPU s |", "|---|---:|---:|---:|",
        f"| warm server | {r['served_wall_s']:.3f} (fastest {r['served_wall_min_s']:.3f}) | {r['served_cpu_s']:.3f} | "
        f"{r['served_server_cpu_s']:.3f} |",
        f"| cold (local) | {r['cold_wall_s']:.3f} | {r['cold_cpu_s']:.3f} | - |", "",
        f"Jobs served: {r['jobs_served']} of {r['runs']}. Masks bit-identical (decoded labels): "
        f"{'yes' if r['identical'] else 'NO'} (`{r['sha256'][:12]}`).", ""])
    path = HERE / "RESULTS_speed_served.md"
    earlier = path.read_text() if path.exists() else title
    path.write_text(earlier.rstrip("\n") + "\n\n" + text)  # runs vary a lot here: keep every one
    print(text)


def markdown(res: dict) -> str:
    lines = ["# Single-case speed (`benchmarks/bench_speed.py`)", "",
             f"{res['when']}; {res.get('cpu', f'{os.cpu_count()} cores')}; load average (1 min) {res['load_start']:.2f} at start, "
             f"{res['load_end']:.2f} at end (the benchmark itself keeps up to 2 cores busy; "
             f"{res.get('others', 'other jobs shared these cores')}): wall times are noisy, CPU seconds steadier. Medians of "
             f"{res['repeats']}; *before* = `{res['before']}` (main before session 6), *after* = this checkout "
             f"({res['after']}). Interpreter `{res.get('python', '?')}` (its site-packages' .pth files: "
             f"{res.get('pth', '?')}; `python -c pass` {res.get('python_start_s', float('nan')):.3f} s wall, median).", "",
             f"What changed since *before* (session 6): the speed tier `{FAST}` (the v2 recipe on 2x2-averaged slices, "
             "logits upsampled inside the graph: a quarter of the FLOPs, less than half the inference; its own card and "
             "Dice); the console "
             "script leaves with `os._exit` after a local `segment` once the mask is committed and the streams flushed "
             "(`_entry.script`: no interpreter teardown). "
             f"`{MODEL}`'s masks are bit-identical before and after. Session 5: two concurrent 1-thread inference "
             "batches, zlib-ng, cc3d instead of SciPy, `lightseg serve`. Earlier: the brain region once per run, one "
             "labelling for post-processing, nibabel without pydicom, SimpleITK only where needed, ONNX Runtime threads "
             "sleep, the cached optimized graph.", "",
             "## Imports (CPU s in a fresh interpreter, each including what it imports)", "",
             "| import | before CPU s | after CPU s |", "|---|---:|---:|"]
    lines += [f"| `{k}` | {v['before']:.3f} | {v['after']:.3f} |" for k, v in res["imports"].items()]
    s = res["session"]
    lines += ["", f"## ONNX Runtime session creation (ORT {s['onnxruntime']}, CPU s, after)", "", "| | CPU s |", "|---|---:|",
              f"| optimize afresh | {s['optimize afresh']:.3f} |",
              f"| load the cached optimized graph | {s['load cached optimized graph']:.3f} |", "",
              "## ONNX Runtime idle threads: spinning (its default, before) vs sleeping (after)", "",
              f"Inference of {CASES[0]} in-process, 2 threads, interleaved (median):", "",
              "| idle threads | wall s | CPU s |", "|---|---:|---:|",
              *[f"| {k} | {res['spinning'][k]['wall_s']:.3f} | {res['spinning'][k]['cpu_s']:.3f} |"
                for k in ("spinning", "sleeping")], "",
              f"Labels identical: {'yes' if res['spinning']['identical']['labels'] else 'NO'}.", "",
              "## Inference: one batch on 2 threads (before) vs two batches at once, 1 thread each (after)", "",
              f"{CASES[0]} in-process, interleaved (median); each model with its card's flips:", "",
              "| model | setup | wall s | CPU s | labels identical |", "|---|---|---:|---:|---|",
              *[f"| {k} | {v['wall_s']:.3f} | {v['cpu_s']:.3f} | {'yes' if v['identical'] else 'NO'} |"
                for k, v in res["concurrency"].items()], "",
              "## `lightseg segment` whole process (the console script, no server), before vs after", "",
              f"`{MODEL}` with both trees (masks must be bit-identical) and the speed tier `{FAST}` (after only).", "",
              "| case | model | before wall s | after wall s | after fastest wall s | before CPU s | after CPU s | masks bit-identical |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in res["whole"]:
        lines.append(f"| {r['case']} | {MODEL} | {r['before_wall_s']:.2f} | {r['after_wall_s']:.2f} | {r['after_wall_min_s']:.2f} | "
                     f"{r['before_cpu_s']:.2f} | {r['after_cpu_s']:.2f} | "
                     f"{'yes' if r['identical'] else 'NO'} (`{r['sha256_after'][:12]}`) |")
    for r in res["whole"]:
        lines.append(f"| {r['case']} | {FAST} | - | {r['fast_wall_s']:.2f} | {r['fast_wall_min_s']:.2f} | - | "
                     f"{r['fast_cpu_s']:.2f} | - |")
    st = res["stages"]
    lines += ["", f"## Where the time goes now (after, `{FAST}`; {CASES[0]}; in-process stages, median)", "",
              "Interpreter start is not included (see the first import row).", "",
              "| stage | wall s | CPU s |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['wall_s']:.3f} | {v['cpu_s']:.3f} |" for k, v in st.items()]
    lines.append(f"| **sum** | {sum(v['wall_s'] for v in st.values()):.3f} | {sum(v['cpu_s'] for v in st.values()):.3f} |")
    if "opened" in res:
        lines += ["", f"## Run on a study already open (the segment widget's Run; {CASES[0]}; in-process, median)", "",
                  "`engine.run` on a loaded study with the model's session already made: input checks, preprocessing, "
                  "inference, post-processing; no reading, no imports, no writing.", "",
                  "| model | wall s | CPU s |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['wall_s']:.3f} | {v['cpu_s']:.3f} |" for k, v in res["opened"].items()]
    if "served" in res:
        r = res["served"]
        lines += ["", "## `lightseg segment` with a warm `lightseg serve` vs cold", "",
                  f"{r['case']}, `{FAST}`, interleaved (median): the whole client process (`python -m "
                  f"napari_lightseg._entry segment ...`) handing its job to a running server, vs the same command "
                  f"with `LIGHTSEG_SERVE=0` (a cold local run). The server's CPU is its own, per job "
                  f"({r['jobs_served']} of {r['runs']} jobs served).", "",
                  "| run | client process wall s | client CPU s | server CPU s |", "|---|---:|---:|---:|",
                  f"| warm server | {r['served_wall_s']:.3f} (fastest {r['served_wall_min_s']:.3f}) | "
                  f"{r['served_cpu_s']:.3f} | {r['served_server_cpu_s']:.3f} |",
                  f"| cold (local) | {r['cold_wall_s']:.3f} | {r['cold_cpu_s']:.3f} | - |", "",
                  f"Masks bit-identical (decoded labels): {'yes' if r['identical'] else 'NO'} (`{r['sha256'][:12]}`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--before", default=BEFORE, help="git ref of the package to compare with")
    p.add_argument("--others", default="", help="what else ran on the machine, for the header (default: unknown)")
    p.add_argument("--served-only", action="store_true",
                   help="only the warm-server table, into RESULTS_speed_served.md: run it with another interpreter "
                        "(e.g. a venv with a plain, non-editable install) to see its start-up cost")
    args = p.parse_args()
    if not (DATA / "brats18").is_dir():
        sys.exit(f"bench_speed: no brats18 cases under {DATA} (set LIGHTSEG_DATA)")
    if args.served_only:
        served_only(args.repeats)
        return
    head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip()
    res: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": os.getloadavg()[0],
                 "repeats": args.repeats, "before": args.before, "after": head,
                 "cpu": cpu_line(), "others": args.others or "other jobs may have shared these cores",
                 "python": sys.executable}
    res["pth"], res["python_start_s"] = interpreter(args.repeats)
    global NEUTRAL_DIR
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "before").mkdir()
        (Path(tmp) / "run").mkdir()
        NEUTRAL_DIR = str(Path(tmp) / "run")
        trees = {"before": export_tree(args.before, Path(tmp) / "before"), "after": ROOT}
        for tree in trees.values():
            compileall.compile_dir(str(tree / "napari_lightseg"), quiet=1)
        res["imports"] = import_costs(args.repeats, trees)
        res["session"] = session_costs(max(args.repeats, 10))
        res["spinning"] = spinning(args.repeats)
        res["concurrency"] = concurrency(args.repeats)
        res["whole"] = whole_process(args.repeats, trees)
        res["served"] = served(args.repeats)
        res["stages"] = stage_costs(args.repeats, ROOT)
        res["opened"] = opened_study_runs(args.repeats)
    res["load_end"] = os.getloadavg()[0]
    (HERE / "results_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "RESULTS_speed.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
