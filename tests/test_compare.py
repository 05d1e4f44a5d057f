"""Comparison: rows and CSV columns, file loading (both conventions, grid checks), the CLI, disagreement."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg import cli
from napari_lightseg.compare import COLUMNS, compare_files, compare_labels, disagreement, segmentation_name, write_csv
from napari_lightseg.io import StudyError

HEADER = ["segmentation", "reference", "dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET",
          "volume_WT_ml", "volume_TC_ml", "volume_ET_ml"]
AFFINE = np.diag([-1.0, -1.0, 2.0, 1.0])  # LPS-ish, 2 mm slices


def _labels(ncr: int = 0, et_shift: int = 0) -> np.ndarray:
    """Internal classes on a 12^3 grid: edema block, ET block (optionally shifted), an NCR slab."""
    data = np.zeros((12, 12, 12), np.uint8)
    data[2:10, 2:10, 2:10] = 2
    data[4 + et_shift:8 + et_shift, 4:8, 4:8] = 3
    data[4:6, 4:8, 4:4 + ncr] = 1
    return data


def _write(path: Path, internal: np.ndarray, convention: str = "brats2021", affine: np.ndarray = AFFINE) -> Path:
    values = internal.copy()
    if convention == "brats2021":
        values[internal == 3] = 4
    nib.save(nib.Nifti1Image(values.astype(np.int16), affine), str(path))
    return path


def test_compare_labels_rows():
    ref = _labels(ncr=2)
    rows = compare_labels(ref, {"same": ref, "shifted": _labels(ncr=2, et_shift=1)}, (1.0, 1.0, 2.0), "truth",
                          extra={"same": {"seconds": 1.5}})
    assert list(rows[0])[: len(COLUMNS)] == HEADER
    assert rows[0]["seconds"] == 1.5 and "seconds" not in rows[1]
    same, shifted = rows
    assert same["reference"] == "truth" and same["dice_ET"] == 1.0 and same["hd95_WT"] == 0.0
    assert same["volume_WT_ml"] == pytest.approx(8 ** 3 * 2 / 1000)
    assert shifted["dice_WT"] == 1.0 and shifted["dice_ET"] < 1.0 and shifted["hd95_ET"] == pytest.approx(1.0)
    empty = compare_labels(ref, {"empty": np.zeros_like(ref)})[0]
    assert empty["dice_WT"] == 0.0 and math.isinf(empty["hd95_WT"]) and empty["volume_WT_ml"] == 0.0


def test_compare_files_mixed_conventions_and_names(tmp_path):
    ref = _write(tmp_path / "ref.nii.gz", _labels(ncr=2), "brats2021")
    a = _write(tmp_path / "algo.a.nii", _labels(ncr=2), "brats2023")  # same classes, 1/2/3 in the file
    b = _write(tmp_path / "b.nii.gz", _labels(ncr=2, et_shift=1), "brats2021")
    rows = compare_files(ref, [a, b])
    assert [r["segmentation"] for r in rows] == ["algo.a", "b"]
    assert rows[0]["reference"] == "ref"
    assert rows[0]["dice_ET"] == 1.0 and rows[0]["dice_TC"] == 1.0
    assert rows[1]["hd95_ET"] == pytest.approx(1.0)  # shifted along the 1 mm axis
    assert rows[0]["volume_TC_ml"] == pytest.approx(4 ** 3 * 2 / 1000)  # 2 mm voxels from the affine


def test_compare_files_grid_mismatch_names_the_file(tmp_path):
    ref = _write(tmp_path / "ref.nii.gz", _labels())
    moved = _write(tmp_path / "moved.nii.gz", _labels(), affine=np.diag([-1.0, -1.0, 3.0, 1.0]))
    with pytest.raises(StudyError, match=r"moved\.nii\.gz: grid differs from the reference ref\.nii\.gz") as info:
        compare_files(ref, [moved])
    assert "\n" not in str(info.value)
    with pytest.raises(StudyError, match="already given"):
        compare_files(ref, [ref, tmp_path / "ref.nii.gz"])


def test_segmentation_name():
    assert segmentation_name("/x/y/isen-20.nii.gz") == "isen-20"
    assert segmentation_name("seg.v2.NII") == "seg.v2"


def test_write_csv_exact_columns_and_inf(tmp_path):
    rows = compare_labels(_labels(), {"empty": np.zeros((12, 12, 12), np.uint8)}, extra={"empty": {"seconds": 2}})
    path = write_csv(rows, tmp_path / "out.csv")
    with path.open(newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == HEADER
    assert table[1][:2] == ["empty", "reference"] and table[1][5] == "inf" and len(table[1]) == len(HEADER)


def test_cli_compare_writes_csv(tmp_path, capsys):
    ref = _write(tmp_path / "ref.nii.gz", _labels(ncr=2))
    seg1 = _write(tmp_path / "seg1.nii.gz", _labels(ncr=2), "brats2023")
    seg2 = _write(tmp_path / "seg2.nii.gz", _labels(ncr=1, et_shift=1))
    out = tmp_path / "out.csv"
    assert cli.main(["compare", str(ref), str(seg1), str(seg2), "--csv", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(HEADER)
    assert [line.split(",")[0] for line in lines[1:]] == ["seg1", "seg2"]
    assert "seg1: Dice WT 1.000 TC 1.000 ET 1.000" in capsys.readouterr().out

    bad = _write(tmp_path / "bad.nii.gz", _labels(), affine=np.eye(4))
    assert cli.main(["compare", str(ref), str(bad), "--csv", str(out), "--overwrite"]) == 2  # bad input
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightseg: error:") and "bad.nii.gz" in err and "\n" not in err


def test_disagreement():
    a = np.array([0, 1, 2, 3, 0, 2])
    b = np.array([0, 1, 2, 2, 1, 2])
    c = np.array([0, 1, 3, 3, 2, 2])
    out = disagreement([a, b, c])
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 1, 1, 2, 0]  # last-but-one: all differ, majority of 1
    assert disagreement([a]).tolist() == [0] * 6
    with pytest.raises(ValueError):
        disagreement([a, a[:3]])


def test_real_case_algorithms_against_fusion(data_root):
    folder = data_root / "other" / "TCGA-FG-6692" / "segmentations"
    algorithms = ["hnfnetv1-20", "isen-20", "sanet0-20", "scan-20", "yixinmpl-20"]
    rows = compare_files(folder / "fusion_mav.nii.gz", [folder / f"{name}.nii.gz" for name in algorithms])
    assert [r["segmentation"] for r in rows] == algorithms
    for row in rows:
        assert row["reference"] == "fusion_mav"
        assert row["dice_WT"] > 0.8, row
        assert all(0.0 <= row[f"dice_{r}"] <= 1.0 for r in ("TC", "ET"))
        assert all(0.0 <= row[f"hd95_{r}"] < 20.0 for r in ("WT", "TC", "ET")), row
        assert 5.0 < row["volume_WT_ml"] < 100.0 and row["volume_ET_ml"] <= row["volume_TC_ml"] <= row["volume_WT_ml"]
