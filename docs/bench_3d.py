"""Time the pure parts of the 3D view on the synthetic sample (the surfaces built when *3D view* is pressed).

    PYTHONPATH=. python docs/bench_3d.py   # prints a table; best of 3 runs
"""
from __future__ import annotations

import time

from napari_lightseg._sample_data import make_sample_study
from napari_lightseg.display import brain_surface, class_surfaces, legend_rows


def best_of(runs: int, function, *args):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    study = make_sample_study(0)
    rows = []
    t, surfaces = best_of(3, class_surfaces, study.labels)
    rows.append(("class_surfaces (NCR, ED, ET)", t, sum(len(s.faces) for s in surfaces)))
    t, shell = best_of(3, brain_surface, study.images["flair"])
    rows.append(("brain_surface (step 2)", t, len(shell[1])))
    t, _ = best_of(3, legend_rows, study.labels, study.geometry.spacing)
    rows.append(("legend_rows", t, 0))
    print(f"sample {study.shape}, spacing {study.geometry.spacing} mm")
    print("| step | s (best of 3) | triangles |\n|---|---:|---:|")
    for name, seconds, triangles in rows:
        print(f"| {name} | {seconds:.3f} | {triangles:,d} |")


if __name__ == "__main__":
    main()
