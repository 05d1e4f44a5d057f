"""DICOM path timings on a real case exported as a DICOM study: find, identify, read, DICOM-SEG write/read.

Usage: python benchmarks/bench_dicom.py [--case Brats18_CBICA_ALU_1] [--repeat 3] [--out benchmarks/RESULTS_dicom.md]
Data: LIGHTSEG_DATA (default ../shared/data), subfolder brats18/. The case's four NIfTI sequences are
written as four DICOM series (one file per slice, tests/dicom_factory.py) into a temporary folder,
with T2 resampled onto an oblique 1.4x1.4x4 mm grid as a clinical T2 would be; the ground truth
(BraTS labels) is written as a DICOM-SEG on the FLAIR series. Seconds are the best of --repeat runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dicom_factory import write_study_from_case  # noqa: E402

from napari_lightseg.io.dicom import find_dicom_series, identify_sequences, load_dicom_series_volumes  # noqa: E402
from napari_lightseg.io.dicom_seg import package_version, read_dicom_seg, write_dicom_seg  # noqa: E402


def best_of(repeat: int, step: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return min(times), result


def oblique_t2_grid(reference: sitk.Image) -> sitk.Image:
    """A 160x160x40 grid of 1.4x1.4x4 mm tilted 12 degrees, inside the reference volume."""
    grid = sitk.Image([160, 160, 40], sitk.sitkFloat32)
    grid.SetSpacing((1.4, 1.4, 4.0))
    a = np.radians(12.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    grid.SetDirection((np.array(reference.GetDirection()).reshape(3, 3) @ rotation).flatten().tolist())
    grid.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint((10.0, 10.0, 40.0)))
    return grid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="Brats18_CBICA_ALU_1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args()
    case = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve() / "brats18" / args.case
    if not case.is_dir():
        print(f"no case at {case} (set LIGHTSEG_DATA)")
        return 1
    flair = sitk.ReadImage(str(case / f"{args.case}_flair.nii.gz"))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"{args.case}_seg.nii.gz")))
    labels = np.select([truth == 1, truth == 2, truth == 4], [1, 2, 3], 0).astype(np.uint8)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        start = time.perf_counter()
        written = write_study_from_case(case, export, grids={"t2": oblique_t2_grid(flair)})
        n_files = sum(len(v) for v in written.values())
        rows.append(("write the study (test factory, pydicom)", time.perf_counter() - start, f"{n_files} files, 4 series"))
        seconds, series = best_of(args.repeat, lambda: find_dicom_series(export))
        rows.append(("find_dicom_series (headers only)", seconds, f"{len(series)} series"))  # type: ignore[arg-type]
        seconds, chosen = best_of(args.repeat, lambda: identify_sequences(find_dicom_series(export)))
        rows.append(("find + identify_sequences", seconds, ", ".join(f"{k}=#{v.series_number}" for k, v in chosen.items())))  # type: ignore[union-attr]
        seconds, volumes = best_of(args.repeat, lambda: load_dicom_series_volumes(export))
        sizes = ", ".join(f"{k} {'x'.join(map(str, v.size))}" for k, v in volumes.items())  # type: ignore[union-attr]
        rows.append(("load_dicom_series_volumes (find + identify + read 4)", seconds, sizes))
        source = volumes["flair"]  # type: ignore[index]
        out = Path(tmp) / "seg.dcm"
        seconds, _ = best_of(args.repeat, lambda: write_dicom_seg(out, labels, source, model_name="ground-truth", overwrite=True))
        rows.append(("write_dicom_seg (3 segments, 155 slices)", seconds, f"{out.stat().st_size / 1e6:.2f} MB"))
        seconds, back = best_of(args.repeat, lambda: read_dicom_seg(out, source))
        rows.append(("read_dicom_seg", seconds, "voxels identical" if np.array_equal(back, labels) else "VOXELS DIFFER"))
    lines = [
        f"case {args.case}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; napari-lightseg "
        f"{package_version()}; SimpleITK {sitk.Version.VersionString()}; best of {args.repeat}",
        "",
        "| step | seconds | result |",
        "|---|---:|---|",
        *[f"| {name} | {seconds:.2f} | {result} |" for name, seconds, result in rows],
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("# DICOM path timings (`python benchmarks/bench_dicom.py`)\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
