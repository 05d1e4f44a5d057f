"""PCNN benchmark on the labelled BraTS 2018 cases: WT Dice, detection hit, seconds.

Usage: python benchmarks/bench_pcnn.py [--card pcnn-wt] [--json out.json]
Data: LIGHTSEG_DATA (default ../shared/data from the repository root), subfolder brats18/.
A detection "hits" when its 3D box contains the centroid of the true whole tumour.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_lightseg.io import load_study  # noqa: E402
from napari_lightseg.metrics import dice  # noqa: E402
from napari_lightseg.models.cards import get_card  # noqa: E402
from napari_lightseg.pcnn import detect, segment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="pcnn-wt", help="model card whose parameters configure segment()")
    parser.add_argument("--json", help="also write the per-case rows as JSON")
    args = parser.parse_args()
    data = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve() / "brats18"
    if not data.is_dir():
        print(f"no labelled cases at {data} (set LIGHTSEG_DATA)")
        return 1
    parameters = get_card(args.card).parameters
    rows = []
    print(f"card {args.card}; threads OMP={os.environ.get('OMP_NUM_THREADS', 'unset')}; cases in {data}\n")
    print("| case | WT Dice | ET Dice | detection hit | segment s | detect s |")
    print("|---|---|---|---|---|---|")
    for case in sorted(p for p in data.iterdir() if p.is_dir()):
        study = load_study(case)
        truth = study.labels > 0
        t0 = time.perf_counter()
        labels = segment(study, parameters)
        t1 = time.perf_counter()
        detection = detect(study)
        t2 = time.perf_counter()
        row = {"case": study.name, "dice_WT": dice(labels > 0, truth),
               "dice_ET": dice(labels == 3, study.labels == 3) if (labels == 3).any() else None,
               "hit": detection.contains(np.argwhere(truth).mean(0)), "segment_s": t1 - t0, "detect_s": t2 - t1}
        rows.append(row)
        et = "-" if row["dice_ET"] is None else f"{row['dice_ET']:.3f}"
        print(f"| {row['case']} | {row['dice_WT']:.3f} | {et} | {'yes' if row['hit'] else 'NO'} | "
              f"{row['segment_s']:.2f} | {row['detect_s']:.2f} |", flush=True)
    d = np.array([r["dice_WT"] for r in rows])
    print(f"\nWT Dice median {np.median(d):.3f}, mean {d.mean():.3f}, min {d.min():.3f}, max {d.max():.3f} (n = {len(d)})")
    ets = [r["dice_ET"] for r in rows if r["dice_ET"] is not None]
    if ets:
        print(f"ET Dice median {np.median(ets):.3f}, mean {np.mean(ets):.3f} (n = {len(ets)})")
    print(f"detection hit rate {np.mean([r['hit'] for r in rows]):.3f} ({sum(r['hit'] for r in rows)}/{len(rows)})")
    print(f"median seconds: segment {np.median([r['segment_s'] for r in rows]):.2f}, "
          f"detect {np.median([r['detect_s'] for r in rows]):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
