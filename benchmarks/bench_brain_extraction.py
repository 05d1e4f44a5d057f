"""Brain extraction: deepbet in PyTorch (the original) vs our ONNX Runtime port, FP32 and INT8, at
several main-net sizes. Prints tables, writes ``RESULTS_brain_extraction.md`` and ``.json`` (the
cards take their numbers from the JSON: ``python -m src_models.brain_extraction cards``).

Cases: brats18 validation cases from four institutions plus TCIA03 (none used for calibration),
two of them wrapped in a synthetic head (``src_models.brain_extraction.synthetic_head``), and
nilearn's MNI152 template. The reference brain mask of a BraTS case is its non-zero voxels (any
sequence); of the template, its non-zero voxels. All run on the T1, in display orientation, as the
plugin does; torch gets the same array in RAS order, as deepbet's ``run`` does.

    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_brain_extraction.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_lightseg.metrics import dice  # noqa: E402
from napari_lightseg.preprocess import brain_extraction as bx  # noqa: E402
from src_models.brain_extraction import RESULTS_JSON, mni_template_display, synthetic_head, t1_display  # noqa: E402
from src_models.data import DATA_ROOT  # noqa: E402

CASES = ("Brats18_2013_20_1", "Brats18_CBICA_ALU_1", "Brats18_TCIA02_606_1", "Brats18_TCIA10_639_1", "Brats18_TCIA03_265_1")
HEADS = ("Brats18_CBICA_ALU_1", "Brats18_TCIA10_639_1")
CONFIGS = (("fp32", 256), ("int8", 256), ("int8", 224), ("int8", 192), ("int8", 160), ("fp32", 192))
THREADS = 2
OUT_MD = ROOT / "benchmarks" / "RESULTS_brain_extraction.md"


def volumes(root: Path, quick: bool):
    for name in CASES[:2] if quick else CASES:
        t1, ref, _ = t1_display(root / "brats18" / name)
        yield name, t1, ref
        if name in HEADS:
            head, inside = synthetic_head(t1, seed=1)
            yield f"{name} in synthetic head", head, inside
    if not quick:
        template = mni_template_display()
        yield "MNI152 2009 template", template, template != 0


def torch_deepbet(volume: np.ndarray):
    """deepbet's own run_model + threshold + postprocess on the RAS array; returns (mask, seconds)."""
    import torch
    from deepbet.bet import BrainExtraction
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    torch.set_num_threads(THREADS)
    to_ras = ornt_transform(axcodes2ornt(bx.DISPLAY_AXCODES), axcodes2ornt(bx.RAS))
    back = ornt_transform(axcodes2ornt(bx.RAS), axcodes2ornt(bx.DISPLAY_AXCODES))
    bet = BrainExtraction(no_gpu=True)
    x = np.ascontiguousarray(apply_orientation(volume.astype(np.float32), to_ras))
    t = time.perf_counter()
    mask = bet.postprocess(bet.run_model(x) > 0.5)
    seconds = time.perf_counter() - t
    return np.ascontiguousarray(apply_orientation(mask, back)).astype(bool), seconds


SPEED_CASE = "Brats18_TCIA02_606_1"


def speed_table(volume: np.ndarray, rounds: int = 3) -> dict:
    """Warm, interleaved timing of each net alone (torch vs ORT FP32 vs ORT INT8), best of ``rounds``:
    the per-case torch column above is one cold run (TorchScript optimises during its first runs)."""
    import torch

    from src_models.brain_extraction import deepbet_paths, net_inputs

    torch.set_num_threads(THREADS)
    nets = {role: torch.jit.load(str(path), map_location="cpu").eval() for role, path in deepbet_paths().items()}
    cubes = {"box@128": net_inputs(volume, 192)[0], "main@192": net_inputs(volume, 192)[1],
             "main@256": net_inputs(volume, 256)[1]}
    runners: dict = {}
    for key, cube in cubes.items():
        role = key.split("@")[0]
        tensor = torch.from_numpy(cube)[None, None]

        def run_torch(net=nets[role], x=tensor):
            with torch.no_grad():
                net(x)

        runners[(key, "torch")] = run_torch
        for precision in bx.PRECISIONS:
            net = bx._net(role, precision, THREADS)
            runners[(key, f"ort {precision}")] = lambda r=net, c=cube: r(c)
    for run in runners.values():  # warm-up: TorchScript's profiling runs, ORT's first allocation
        run()
        run()
    best = dict.fromkeys(runners, np.inf)
    for _ in range(rounds):
        for key, run in runners.items():
            t = time.perf_counter()
            run()
            best[key] = min(best[key], time.perf_counter() - t)
    table: dict = {}
    for (key, engine), seconds in best.items():
        table.setdefault(key, {})[engine] = round(float(seconds), 2)
    print(json.dumps(table), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="two cases, for a smoke run")
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the saved .json")
    args = parser.parse_args()
    if args.markdown_only:
        saved = json.loads(RESULTS_JSON.read_text())
        OUT_MD.write_text(markdown(saved["rows"], saved["summary"], saved["machine"], saved["net_seconds_warm"]))
        print(OUT_MD.read_text())
        return
    rows = []
    for name, volume, ref in volumes(args.data, args.quick):
        torch_mask, torch_s = torch_deepbet(volume)
        row = {"case": name, "torch_s": round(torch_s, 2), "torch_vs_ref": round(dice(torch_mask, ref), 4), "configs": {}}
        for precision, size in CONFIGS:
            best = None
            for _ in range(2):
                result = bx.extract_brain_detailed(volume, model=precision, size=size, threads=THREADS)
                if best is None or result.seconds["total"] < best.seconds["total"]:
                    best = result
            row["configs"][f"{precision}@{size}"] = {
                "vs_torch": round(dice(best.mask, torch_mask), 4), "vs_ref": round(dice(best.mask, ref), 4),
                "seconds": {k: round(v, 2) for k, v in best.seconds.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    speed_cube = speed_table(t1_display(args.data / "brats18" / SPEED_CASE)[0])
    summary = summarize(rows)
    machine = f"{platform.processor() or platform.machine()}, {THREADS} threads; " + versions()
    results = {"machine": machine, "rows": rows, "summary": summary, "cards": card_numbers(summary), "speed": speed(summary, rows),
               "net_seconds_warm": speed_cube}
    if not args.quick:
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        OUT_MD.write_text(markdown(rows, summary, machine, speed_cube))
    print(markdown(rows, summary, machine, speed_cube))


def versions() -> str:
    import onnxruntime
    import torch

    return f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}"


def summarize(rows: list[dict]) -> dict:
    brats = [r for r in rows if r["case"].startswith("Brats18") and "head" not in r["case"]]
    summary = {"torch": {"vs_ref_mean_brats": round(float(np.mean([r["torch_vs_ref"] for r in brats])), 4),
                         "seconds_mean": round(float(np.mean([r["torch_s"] for r in rows])), 2)}}
    for key in rows[0]["configs"]:
        cells = [r["configs"][key] for r in rows]
        summary[key] = {
            "vs_torch_mean": round(float(np.mean([c["vs_torch"] for c in cells])), 4),
            "vs_torch_min": round(float(np.min([c["vs_torch"] for c in cells])), 4),
            "vs_ref_mean_brats": round(float(np.mean([r["configs"][key]["vs_ref"] for r in brats])), 4),
            "vs_ref_min_all": round(float(np.min([c["vs_ref"] for c in cells])), 4),
            "seconds_mean": {stage: round(float(np.mean([c["seconds"][stage] for c in cells])), 2) for stage in cells[0]["seconds"]},
        }
    return summary


def card_numbers(summary: dict) -> dict:
    """What each card's ``validation`` shows: the main net at each size it was measured, both nets' totals."""
    out: dict = {}
    for role in bx.ROLES:
        for precision in bx.PRECISIONS:
            out[f"{role}-{precision}"] = {k: v for k, v in summary.items() if k.startswith(f"{precision}@")}
    return out


def speed(summary: dict, rows: list[dict]) -> dict:
    return {"torch_original_256_s_mean": summary["torch"]["seconds_mean"],
            **{k: v["seconds_mean"] for k, v in summary.items() if k != "torch"}}


def markdown(rows: list[dict], summary: dict, machine: str, speed_cube: dict) -> str:
    keys = list(rows[0]["configs"])
    lines = ["# Brain extraction: deepbet (PyTorch) vs ONNX Runtime FP32 / INT8", "",
             f"Made by `LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_brain_extraction.py`; {machine}.",
             "`fp32` = FP32 compute (FP16-stored weights, lossless), `int8` = weight-only per-channel S8 (FP32 compute);",
             "`@N` = main-net cube edge (deepbet: 256). Seconds: best of 2 (sessions are cached after the first); torch is one run.",
             "Reference mask: non-zero voxels of the BraTS case (any sequence) / of the template.", "",
             "## Dice vs the PyTorch original (deepbet at 256^3)", "",
             "| case | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['case']} | " + " | ".join(f"{r['configs'][k]['vs_torch']:.4f}" for k in keys) + " |")
    lines += ["", "## Dice vs the reference brain mask", "",
              "| case | torch | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['case']} | {r['torch_vs_ref']:.4f} | " + " | ".join(f"{r['configs'][k]['vs_ref']:.4f}" for k in keys) + " |")
    lines += ["", "## Summary (means over all cases; vs-reference mean over the plain BraTS cases)", "",
              "| config | Dice vs torch mean | min | Dice vs ref (BraTS) | prepare s | box net s | main net s | postprocess s | total s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    t = summary["torch"]
    lines.append(f"| torch original @256 | 1 | 1 | {t['vs_ref_mean_brats']:.4f} | | | | | {t['seconds_mean']:.2f} |")
    for k in keys:
        s = summary[k]
        sec = s["seconds_mean"]
        lines.append(f"| {k} | {s['vs_torch_mean']:.4f} | {s['vs_torch_min']:.4f} | {s['vs_ref_mean_brats']:.4f} | "
                     f"{sec['prepare']:.2f} | {sec['box net']:.2f} | {sec['main net']:.2f} | {sec['postprocess']:.2f} | {sec['total']:.2f} |")
    lines += ["", "Pipeline seconds above include resampling and post-processing; the torch column is deepbet's",
              "`run_model` + `postprocess`, one cold run per case (model load and TorchScript's first, slow runs).",
              "", f"## Each net alone, warm (best of 3, interleaved; T1 of {SPEED_CASE})", "",
              "| net input | torch s | ORT FP32 s | ORT INT8 (weight-only) s |", "|---|---:|---:|---:|"]
    for key, cell in speed_cube.items():
        lines.append(f"| {key} | {cell['torch']:.2f} | {cell['ort fp32']:.2f} | {cell['ort int8']:.2f} |")
    lines += ["", "The CPU (2 cores) is shared with other jobs: seconds, torch's above all, varied up to 3x between runs.", ""]
    lines += choice(rows, summary)
    return "\n".join(lines)


def choice(rows: list[dict], summary: dict) -> list[str]:
    """The default main-net size: the smallest at which every case's Dice vs its reference mask is
    within 0.01 of what deepbet itself (256^3) gets."""
    sizes = sorted(int(k.split("@")[1]) for k in rows[0]["configs"] if k.startswith("int8@"))
    worst = {size: max(r["torch_vs_ref"] - r["configs"][f"int8@{size}"]["vs_ref"] for r in rows) for size in sizes}
    fits = [size for size in sizes if worst[size] <= 0.01]
    if not fits:
        return []
    size = fits[0]
    cell, full = summary[f"int8@{size}"], summary.get("int8@256", summary[f"int8@{size}"])
    drops = ", ".join(f"{s}: {worst[s]:+.4f}" for s in sizes)
    return ["## Default", "",
            f"Largest per-case drop in Dice vs the reference mask, relative to deepbet itself: {drops}.",
            f"Smallest size within 0.01 on every case: **{size}** (`preprocess.brain_extraction.DEFAULT_SIZE` = "
            f"{bx.DEFAULT_SIZE}). With INT8 weights there: mean Dice vs the BraTS masks {cell['vs_ref_mean_brats']:.4f} "
            f"(deepbet {summary['torch']['vs_ref_mean_brats']:.4f}), agreement with deepbet {cell['vs_torch_mean']:.4f} "
            f"(min {cell['vs_torch_min']:.4f}); pipeline {cell['seconds_mean']['total']:.2f} s vs "
            f"{full['seconds_mean']['total']:.2f} s at 256.", ""]


if __name__ == "__main__":
    main()
