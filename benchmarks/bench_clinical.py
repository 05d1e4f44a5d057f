"""Stage times of the clinical path: a DICOM study (each sequence its own series, on clinical-like grids,
with patient motion) through ``lightseg segment ... --out seg.dcm`` as a whole process.

Usage: PYTHONPATH=. python benchmarks/bench_clinical.py [--cases N] [--model unet-int8] [--out benchmarks/RESULTS_clinical.md]
Data: LIGHTSEG_DATA (default ../shared/data), brats18/. Per case two studies are built in a temp folder:
the skull-stripped BraTS images (brain extraction detected as unnecessary and skipped), and the same
images wrapped in a synthetic head (``src_models.brain_extraction.synthetic_head``: scalp, skull, noisy
air), which the pipeline must brain-extract. Grids and motions: ``tests/clinical_grids`` (FLAIR 0.9x0.9x5 mm,
T1 tilted 3 degrees and shifted, T2 0.7x0.7x3 mm 300x300x56; T1ce 1 mm is the reference).
Columns: stages from the run report (read = DICOM headers + pixels, register + resample, extract,
segment = preprocess + inference + postprocess, write = DICOM-SEG), the whole process wall time, and the
WT Dice of the result against the expert labels next to the same model's on the unperturbed case.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import SimpleITK as sitk  # noqa: E402
from clinical_grids import perturbed_volumes  # noqa: E402
from dicom_factory import SEQUENCE_HEADERS, write_dicom_series  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from napari_lightseg.io.naming import discover  # noqa: E402
from src_models.brain_extraction import synthetic_head  # noqa: E402

CASES = ("Brats18_CBICA_ALU_1", "Brats18_TCIA02_606_1", "Brats18_2013_20_1")
DATA = Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve()


def write_study(case: Path, out: Path, full_head: bool) -> Path:
    files = discover(case)
    volumes, _ = perturbed_volumes(files.sequences)
    study_uid, frame_uid = generate_uid(), generate_uid()
    for number, (sequence, volume) in enumerate(volumes.items(), start=2):
        image = volume.image
        if full_head:
            head, _ = synthetic_head(sitk.GetArrayFromImage(image), seed=number, pad=0)
            wrapped = sitk.GetImageFromArray(head.astype(np.float32))
            wrapped.CopyInformation(image)
            image = wrapped
        tags = dict(SEQUENCE_HEADERS[sequence])
        description = tags.pop("SeriesDescription")
        write_dicom_series(image, out / "STUDY" / f"SE{number:03d}", description=description, series_number=number,
                           study_uid=study_uid, frame_of_reference_uid=frame_uid, patient_id=case.name[:60],
                           extra_tags=tags)
    return out


def wt_dice(labels: np.ndarray, truth: np.ndarray) -> float:
    a, b = labels > 0, truth > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def dicom_seg_dice(study: Path, seg: Path, case: Path) -> float:
    """WT Dice of the DICOM-SEG (read back on the T1ce series, whose grid is the case's own) vs the ground truth."""
    from napari_lightseg.io.dicom import find_dicom_series, read_series
    from napari_lightseg.io.dicom_seg import read_dicom_seg

    t1ce = next(read_series(s) for s in find_dicom_series(study) if s.sequence == "t1ce")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(discover(case).segmentation)))
    return wt_dice(read_dicom_seg(seg, t1ce), truth)


def original_dice(case: Path, model: str, out: Path) -> float:
    """WT Dice of the same model on the unperturbed NIfTI case."""
    subprocess.run([sys.executable, "-m", "napari_lightseg.cli", "segment", str(case), "--model", model, "--out", str(out)],
                   check=True, capture_output=True)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(discover(case).segmentation)))
    return wt_dice(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), truth)


def run(study: Path, model: str, out: Path) -> dict[str, float]:
    report = out.with_suffix(".json")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_lightseg.cli", "segment", str(study), "--model", model,
                    "--out", str(out), "--report", str(report)], check=True, capture_output=True)
    wall = time.perf_counter() - started
    t = json.loads(report.read_text())["timings_s"]
    return {"read": t.get("read", 0.0), "register": t.get("register", 0.0) + t.get("resample", 0.0),
            "extract": t.get("extract", 0.0),
            "segment": t.get("preprocess", 0.0) + t.get("inference", 0.0) + t.get("postprocess", 0.0),
            "write": t.get("write", 0.0), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--model", default="unet-int8")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_clinical.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES[: args.cases]:
            for full_head in (False, True):
                study = write_study(DATA / "brats18" / name, Path(tmp) / f"{name}-{full_head}", full_head)
                seg = Path(tmp) / f"{name}-{full_head}.dcm"
                times = run(study, args.model, seg)
                times["dice"] = dicom_seg_dice(study, seg, DATA / "brats18" / name)
                if not full_head:  # once per case
                    original = original_dice(DATA / "brats18" / name, args.model, Path(tmp) / f"{name}.nii.gz")
                times["original"] = original
                rows.append((name + (" (full head)" if full_head else " (skull-stripped)"), times))
                print(rows[-1][0], {k: round(v, 2) for k, v in times.items()}, flush=True)
    columns = ("read", "register", "extract", "segment", "write", "wall")
    accuracy = ("dice", "original")
    lines = [
        "# Clinical path: DICOM study -> DICOM-SEG (benchmarks/bench_clinical.py)", "",
        f"`lightseg segment DICOM_FOLDER --model {args.model} --out seg.dcm` as a whole process, per study; "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end. "
        "Stages from the run report; wall = process start to exit. Target: wall < 10 s.", "",
        "WT Dice: the DICOM-SEG read back on the T1ce series vs the expert labels; 'original': the same model on",
        "the unperturbed NIfTI case (the alignment target is >= 0.9x of it).", "",
        "| study | " + " | ".join(f"{c} s" for c in columns) + " | WT Dice | WT Dice original |",
        "|---|" + "---:|" * (len(columns) + len(accuracy)),
    ]
    lines += [f"| {name} | " + " | ".join(f"{t[c]:.2f}" for c in columns) + " | "
              + " | ".join(f"{t[c]:.3f}" for c in accuracy) + " |" for name, t in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
