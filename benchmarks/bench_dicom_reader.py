"""Seconds the napari reader takes to show a DICOM study (fast path: headers, four series, resampling
through the scanner's coordinates) next to the full opening the segment widget's Run does in its worker
(``clinical.open_study``: registration, brain extraction when full-head). Prints a table and writes it to
benchmarks/RESULTS_dicom_reader.md. The study is a real case written as DICOM series on clinical-like
grids with patient motion (tests/clinical_grids.py), in a temporary folder:

    LIGHTSEG_DATA=../shared/data PYTHONPATH=.:tests python benchmarks/bench_dicom_reader.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "docs")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="Brats18_CBICA_ALU_1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_dicom_reader.md"))
    args = parser.parse_args(argv)
    data = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data"))

    from make_dicom_screenshot import write_study

    from napari_lightseg import clinical
    from napari_lightseg._reader import get_reader

    rows = []
    with tempfile.TemporaryDirectory(prefix="lightseg-bench-reader-") as scratch:
        folder = write_study(data / "brats18" / args.case, Path(scratch) / "PATIENT")
        fast, full, stages = [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            reader = get_reader(str(folder))
            assert reader is not None
            layers = reader(str(folder))
            fast.append(time.perf_counter() - t)
            t = time.perf_counter()
            study = clinical.open_study(folder)
            full.append(time.perf_counter() - t)
            stages.append(study.timings_s)
        rows.append(("reader fast path (get_reader + read, 4 layers)", statistics.median(fast)))
        rows.append(("clinical.open_study (Run, in the worker)", statistics.median(full)))
        for stage in ("read", "register", "resample", "extract"):
            values = [s[stage] for s in stages if stage in s]
            if values:
                rows.append((f"  of which {stage}", statistics.median(values)))
        shape = layers[0][0].shape
    lines = [f"# DICOM study in napari: reader fast path vs. full opening ({args.case}, display shape {shape}, "
             f"median of {args.repeats}, {os.cpu_count()} CPUs)", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(text)
    os.replace(temp, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
