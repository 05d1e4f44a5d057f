"""Cohorts on Dask: case discovery, outputs, resume, failure isolation, the table's schema, the CLI."""
from __future__ import annotations

import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest
from helpers import blob_study, tiny_onnx_card

from napari_lightseg.cli import main
from napari_lightseg.cohort import (
    COLUMNS,
    EXIT_OK,
    EXIT_SOME_FAILED,
    CaseSpec,
    default_layout,
    find_cases,
    inputs_sha256,
    run_cohort,
)
from napari_lightseg.io import StudyError

SHAPE = (20, 32, 28)  # display order (z, y, x); files are (x, y, z), RAS


def write_case(root, name, seed=0):
    """A synthetic BraTS-named case folder (FLAIR, T1, T1ce, T2)."""
    folder = root / name
    folder.mkdir(parents=True)
    study = blob_study(SHAPE, seed=seed)
    for seq, volume in study.images.items():
        nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4)), folder / f"{name}_{seq}.nii.gz")
    return folder


@pytest.fixture(autouse=True)
def _private_session_cache(tmp_path, monkeypatch):
    """Optimized ONNX graphs go to this test's folder, not the user's cache."""
    monkeypatch.setenv("LIGHTSEG_CACHE", str(tmp_path / "ort-cache"))


@pytest.fixture()
def cohort(tmp_path):
    """Three good cases and one whose FLAIR is not NIfTI at all."""
    root = tmp_path / "cohort"
    for i in range(3):
        write_case(root, f"case{i}", seed=i)
    bad = write_case(root, "corrupt", seed=9)
    (bad / "corrupt_flair.nii.gz").write_bytes(b"this is not gzip")
    return root


@pytest.fixture()
def card(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    return tiny_onnx_card(models)


def _run(cases, card, out, **kwargs):
    return run_cohort(cases, card, out, workers=1, threads_per_worker=1, processes=False, **kwargs)


def _csv_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_find_cases_folder_csv_glob(cohort, tmp_path):
    names = [c.name for c in find_cases(cohort)]
    assert names == ["case0", "case1", "case2", "corrupt"]
    assert [c.name for c in find_cases(str(cohort / "case*"))] == ["case0", "case1", "case2"]
    table = tmp_path / "list.csv"
    table.write_text("name,path\nfirst,cohort/case1\n,cohort/case2\n")  # relative to the CSV's folder
    cases = find_cases(table)
    assert [c.name for c in cases] == ["first", "case2"]
    assert cases[0].paths == (cohort / "case1",)
    assert [c.name for c in find_cases(cohort / "case0")] == ["case0"]  # one case folder: a cohort of one
    with pytest.raises(StudyError, match="matches no files"):
        find_cases(str(tmp_path / "nothing*"))
    dup = tmp_path / "dup.csv"
    dup.write_text("path\ncohort/case1\ncohort/case1\n")
    with pytest.raises(StudyError, match="collide"):
        find_cases(dup)


def test_default_layout_fills_the_cores():
    assert default_layout(2, 16.0) == (2, 1)
    assert default_layout(8, 64.0) == (4, 2)
    assert default_layout(8, 3.0) == (2, 4)  # memory for two cases at once: fewer workers, more threads
    assert default_layout(1, 0.5) == (1, 1)


def test_batch_isolates_failure_resumes_and_forces(cohort, card, tmp_path):
    out = tmp_path / "out"
    cases = find_cases(cohort)
    seen = []
    result = _run(cases, card, out, progress=lambda row, done, failed, total: seen.append((row["case"], done, failed, total)))

    assert result.exit_code == EXIT_SOME_FAILED
    status = {r["case"]: r["status"] for r in result.rows}
    assert status == {"case0": "ok", "case1": "ok", "case2": "ok", "corrupt": "failed"}
    bad = next(r for r in result.rows if r["case"] == "corrupt")
    assert "corrupt_flair.nii.gz" in bad["error"] and "\n" not in bad["error"]
    assert sorted(s[0] for s in seen) == ["case0", "case1", "case2", "corrupt"] and seen[-1][1:] == (4, 1, 4)
    for r in result.rows[:3]:
        seg = nib.load(r["seg_path"])
        assert seg.shape == SHAPE[::-1] and np.allclose(seg.affine, np.eye(4))
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4}
        report = json.loads((out / r["case"] / f"{r['case']}_report.json").read_text())
        assert report["cohort_row"]["inputs_sha256"] == inputs_sha256(CaseSpec(r["case"], (cohort / r["case"],)))
        assert r["WT_ml"] == pytest.approx(r["NCR_ml"] + r["ED_ml"] + r["ET_ml"], abs=0.01) and r["WT_ml"] > 0
        assert r["cpu_s"] > 0 and r["energy_j"] > 0 and r["energy_method"]
        assert r["inference_s"] > 0 and r["write_s"] > 0 and r["read_s"] > 0
    assert not (out / "corrupt" / "corrupt_seg.nii.gz").exists()

    # the table: exact columns, one row per case, in the cases' order; Parquet the same
    header, rows = _csv_rows(out / "cohort.csv")
    assert tuple(header) == COLUMNS
    assert [r["case"] for r in rows] == ["case0", "case1", "case2", "corrupt"]
    import pyarrow.parquet as pq

    table = pq.read_table(out / "cohort.parquet")
    assert tuple(table.column_names) == COLUMNS and table.num_rows == 4
    summary = json.loads((out / "cohort_summary.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == 1
    assert summary["energy_j"] == pytest.approx(sum(r["energy_j"] for r in result.rows), rel=1e-3)

    # resume: done cases are skipped (masks untouched), the failed one is tried again
    mtime = os.stat(out / "case0" / "case0_seg.nii.gz").st_mtime_ns
    again = _run(cases, card, out)
    assert [r["status"] for r in again.rows] == ["skipped", "skipped", "skipped", "failed"]
    assert again.exit_code == EXIT_SOME_FAILED
    assert os.stat(out / "case0" / "case0_seg.nii.gz").st_mtime_ns == mtime
    assert again.rows[0]["WT_ml"] == result.rows[0]["WT_ml"]  # the skipped row keeps its numbers

    # a changed input is redone; force redoes everything
    flair = cohort / "case1" / "case1_flair.nii.gz"
    os.utime(flair, ns=(flair.stat().st_atime_ns, flair.stat().st_mtime_ns + 10**9))
    good = cases[:3]
    changed = _run(good, card, out)
    assert [r["status"] for r in changed.rows] == ["skipped", "ok", "skipped"]
    assert "inputs changed" in changed.rows[1]["notes"]
    assert changed.exit_code == EXIT_OK
    forced = _run(good, card, out, force=True)
    assert [r["status"] for r in forced.rows] == ["ok", "ok", "ok"]
    assert os.stat(out / "case0" / "case0_seg.nii.gz").st_mtime_ns != mtime


def test_another_model_replaces_previous_outputs(cohort, card, tmp_path):
    out = tmp_path / "out"
    cases = find_cases(cohort)[:1]
    assert _run(cases, card, out).rows[0]["status"] == "ok"
    other = tiny_onnx_card(tmp_path / "models", name="tiny-other")
    row = _run(cases, other, out).rows[0]
    assert row["status"] == "ok" and "another card" in row["notes"]


def test_cli_batch_end_to_end(cohort, card, tmp_path, capsys):
    out = tmp_path / "cli-out"
    code = main(["batch", str(cohort), "--model", str(card.card_path), "--out", str(out), "--workers", "1", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "3 ok, 0 skipped, 1 failed" in captured.out
    assert "corrupt_flair.nii.gz" in captured.err
    _, rows = _csv_rows(out / "cohort.csv")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert main(["batch", str(cohort / "case*"), "--model", str(card.card_path), "--out", str(out)]) == 0  # all done
    assert main(["batch", str(tmp_path / "absent"), "--model", str(card.card_path), "--out", str(out)]) == 2
    assert main(["batch", str(cohort), "--model", "no-such-model", "--out", str(out)]) == 2
    assert "no model named" in capsys.readouterr().err


def test_dicom_studies_are_cases(tmp_path, card):
    """A folder of DICOM study folders beside NIfTI cases: each study is a case, read through the clinical path."""
    from dicom_factory import SEQUENCE_HEADERS, write_dicom_series
    from pydicom.uid import generate_uid

    from napari_lightseg.io.grids import sitk_from_array

    root = tmp_path / "mixed"
    write_case(root, "nifti0")
    study = blob_study(SHAPE)
    study_uid, frame_uid = generate_uid(), generate_uid()
    for number, (sequence, image) in enumerate(study.images.items(), start=2):
        tags = dict(SEQUENCE_HEADERS[sequence])
        description = tags.pop("SeriesDescription")
        write_dicom_series(sitk_from_array(study.geometry.to_disk(image), study.geometry), root / "study-dcm" / f"SE{number}",
                           description=description, series_number=number, study_uid=study_uid,
                           frame_of_reference_uid=frame_uid, patient_id="P1", extra_tags=tags)
    cases = find_cases(root)
    assert [(c.name, c.kind) for c in cases] == [("nifti0", "nifti"), ("study-dcm", "dicom")]
    rows = _run(cases, card, tmp_path / "out").rows
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert float(rows[1]["WT_ml"]) == pytest.approx(float(rows[0]["WT_ml"]), rel=0.05)  # the same study, read from DICOM


def test_batch_on_a_given_scheduler_address(cohort, card, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        result = run_cohort(find_cases(str(cohort / "case*")), card, tmp_path / "out", scheduler=cluster.scheduler_address,
                            threads_per_worker=1)
    assert [r["status"] for r in result.rows] == ["ok", "ok", "ok"]
    assert result.exit_code == EXIT_OK and result.totals["ok"] == 3
