"""Speed and accuracy of every shipped CNN on this machine: prints a Markdown table.

For each card: params, GFLOPs per 240x240 slice, file size, seconds per full volume (inference on
the brain-cropped slices of a real 4x240x240x155 case) in PyTorch eager FP32 (FP32 models, when
torch + src_models are importable), ONNX Runtime FP32 and INT8, and the card's validation Dice.
Then the end-to-end wall time of ``lightseg segment`` (process start to NIfTI written). Writes the tables
to ``RESULTS_models.md`` (the README's model tables are copied from it, and a test checks they match).

    python benchmarks/bench_models.py [--case DIR] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_line  # benchmarks/ is on sys.path when this runs as a script

from napari_lightseg import engine
from napari_lightseg.backends import available_backends
from napari_lightseg.io import load_study
from napari_lightseg.models import list_cards

DATA = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
DEFAULT_CASE = DATA / "brats18" / "Brats18_TCIA02_606_1"


def best_inference(study, card, backend: str, threads: int, repeats: int) -> float:
    engine.run(study, card, backend, threads=threads)  # warm-up: session creation, caches
    return min(engine.run(study, card, backend, threads=threads).report.timings_s["inference"] for _ in range(repeats))


def cli_seconds(case: Path, model: str, threads: int, repeats: int) -> float:
    """Median wall seconds of ``lightseg segment`` as the console script runs it (no server), after one run
    that fills the optimized-graph cache."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LIGHTSEG_SERVE": "0", "LIGHTSEG_CACHE": f"{tmp}/cache"}
        for i in range(repeats + 1):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "napari_lightseg._entry", "segment", str(case), "--model", model,
                            "--threads", str(threads), "--out", f"{tmp}/seg.nii.gz", "--overwrite"], check=True,
                           capture_output=True, env=env)
            if i:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", type=Path, default=DEFAULT_CASE)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS_models.md")
    args = p.parse_args()
    study = load_study(args.case, with_labels=False)
    torch_ok = available_backends().get("torch", (False, ""))[0]
    cards = [c for c in list_cards() if c.kind == "cnn"]
    load_start = os.getloadavg()[0]
    lines: list[str] = []

    def emit(line: str = "") -> None:
        lines.append(line)
        print(line, flush=True)

    emit("| model | params | GFLOPs/slice | file MB | PyTorch FP32 s | ORT s | val Dice WT/TC/ET |")
    emit("|---|---:|---:|---:|---:|---:|---|")
    for card in cards:
        torch_s = "—"
        if torch_ok and card.precision == "fp32":
            torch_s = f"{best_inference(study, card, 'torch', args.threads, 1):.2f}"
        ort_s = best_inference(study, card, "onnxruntime", args.threads, args.repeats)
        v = card.validation
        emit(f"| {card.name} | {card.params:,} | {card.flops_per_slice / 1e9:.2f} | {card.file_mb:.2f} | {torch_s} | "
             f"{ort_s:.2f} | {v['dice_WT']:.3f}/{v['dice_TC']:.3f}/{v['dice_ET']:.3f} |")
    emit()
    emit("| model | `lightseg segment` wall s (process start to NIfTI written, no server) |")
    emit("|---|---:|")
    for card in cards:
        emit(f"| {card.name} | {cli_seconds(args.case, card.name, args.threads, args.repeats):.2f} |")
    header = (f"# Model speed (`benchmarks/bench_models.py`)\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{cpu_line()}, threads={args.threads}; load average "
              f"(1 min) {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end; case {args.case.name} "
              f"({'x'.join(map(str, study.shape))}); inference = best of {args.repeats} (cards' default test-time flips), "
              f"`lightseg segment` = median of {args.repeats} (the console script, no server, after one run that fills the "
              f"session cache); interpreter `{sys.executable}`; Dice from the cards.\n\n")
    args.out.write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
