"""GroupNorm vs BatchNorm in the DSC U-Net: ONNX Runtime FP32 seconds per brain-cropped volume.

Speed only (weights are random; accuracy is not the question here): BatchNorm folds into the
preceding convolution when ONNX Runtime loads the graph, GroupNorm stays a separate op and breaks
the blocked (NCHWc) layout. Needs the ``train`` extra (torch).

    python benchmarks/bench_norm.py [--threads 2] [--repeats 3]    # writes RESULTS_norm.md
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from src_models.archs import build, count_params
from src_models.export import export_onnx


def seconds_per_volume(path: Path, volume: np.ndarray, threads: int, repeats: int, batch: int = 16) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    best = float("inf")
    for _ in range(repeats + 1):
        t = time.perf_counter()
        for z in range(0, len(volume), batch):
            session.run(None, {"input": volume[z : z + batch]})
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    volume = np.random.default_rng(0).standard_normal((140, 4, 176, 208)).astype(np.float32)  # a brain crop
    load_start = os.getloadavg()[0]
    lines = ["| normalization | params | ORT FP32 s/volume |", "|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for norm in ("bn", "gn"):
            model = build("dsc-unet", norm)
            path = export_onnx(model, Path(tmp) / f"{norm}.onnx")
            lines.append(f"| {norm.upper()} | {count_params(model):,} | {seconds_per_volume(path, volume, args.threads, args.repeats):.2f} |")
            print(lines[-1], flush=True)
    text = (f"# GroupNorm vs BatchNorm in the DSC U-Net (`benchmarks/bench_norm.py`)\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, threads={args.threads}; load average "
            f"(1 min) {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end; {volume.shape[0]} slices of "
            f"{volume.shape[2]}x{volume.shape[3]}, random weights, best of {args.repeats}.\n\n" + "\n".join(lines) + "\n")
    (Path(__file__).resolve().parent / "RESULTS_norm.md").write_text(text)


if __name__ == "__main__":
    main()
