"""The project's vocabulary (``types``): one Detection, one Box, one run report, typed layer metadata,
and a writer hook that needs no viewer."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import blob_study

from napari_lightseg import cohort, engine, pcnn, postprocess
from napari_lightseg._writer import write_labels
from napari_lightseg.io import Geometry, StudyError, opened
from napari_lightseg.io.outputs import OutputError
from napari_lightseg.layers import METADATA_KEY, labels_layer, layer_meta, lightseg_metadata, study_layers
from napari_lightseg.pcnn.detect import detect_images, detection_report
from napari_lightseg.types import Box, Detection, LayerMeta, RunReport, Segmentation, Study

PACKAGE = Path(__file__).resolve().parents[1] / "napari_lightseg"


def test_one_detection_class_everywhere() -> None:
    assert engine.Detection is pcnn.Detection is Detection
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:5, 3:6, 4:8] = 2
    found = postprocess.find_components(labels, (1.0, 1.0, 1.0))
    assert [type(d) for d in found] == [Detection]
    assert found[0].box == Box((2, 3, 4), (4, 5, 7)) and found[0].source == "components" and found[0].found
    only = [c.name for c in ast.walk(ast.parse((PACKAGE / "pcnn" / "detect.py").read_text())) if isinstance(c, ast.ClassDef)]
    assert "Detection" not in only and "Detection" not in [
        c.name for c in ast.walk(ast.parse((PACKAGE / "engine.py").read_text())) if isinstance(c, ast.ClassDef)]


def test_box_is_one_type_and_reads_as_the_old_pair() -> None:
    box = Box.of(np.array([1, 2, 3]), [4, 5, 6])
    (z0, y0, x0), (z1, y1, x1) = box
    assert (z0, y0, x0, z1, y1, x1) == (1, 2, 3, 4, 5, 6) and type(z0) is int
    assert box.shape == (4, 4, 4) and box.as_lists() == [[1, 2, 3], [4, 5, 6]]
    assert box.contains((4, 5, 6)) and not box.contains((4, 5, 6.5))
    volume = np.zeros((8, 8, 8))
    volume[box.slices] = 1
    assert volume.sum() == 64
    with pytest.raises(ValueError, match="out of order"):
        Box.of((2, 0, 0), (1, 0, 0))


def test_pcnn_detection_without_a_box_is_explicit() -> None:
    empty = {seq: np.zeros((6, 12, 12), np.float32) for seq in ("flair", "t1", "t1ce", "t2")}
    nothing = detect_images(empty)  # no brain at all
    assert isinstance(nothing, Detection) and not nothing.found and nothing.box is None and nothing.source == "pcnn"
    assert not nothing.contains((0, 0, 0))
    flat = {seq: np.full((6, 12, 12), 100.0, np.float32) for seq in empty}  # a brain, but no slice qualifies
    assert not detect_images(flat).found
    study = Study("flat", flat, Geometry.from_image(nib.Nifti1Image(np.zeros((12, 12, 6), np.float32), np.eye(4))))
    report = detection_report(study, detect_images(flat))
    assert report["box3d_voxel"] is None and report["box3d_world"] is None and report["slice_boxes"] == []
    assert Detection.nothing("pcnn") == Detection(None, source="pcnn")


def test_layer_meta_round_trip() -> None:
    study = blob_study()
    meta = LayerMeta("blob", "labels", sequence=None, geometry=study.geometry, source="/data/blob_seg.nii.gz",
                     convention="brats2023", model="unet", extra={"edited": True, "series_table": [{"number": 4}]})
    stored = meta.to_dict()
    assert "sequence" not in stored and stored["edited"] is True and stored["geometry"] is study.geometry
    assert LayerMeta.from_dict(stored) == meta
    assert LayerMeta.of_layer(meta.layer_metadata()) == meta
    assert LayerMeta.of_layer({}) == LayerMeta() and LayerMeta.of_layer(None) == LayerMeta()
    with pytest.raises(TypeError, match="Geometry"):
        LayerMeta.from_dict({"geometry": "not a grid"})


def test_layer_builders_write_layer_meta() -> None:
    study = blob_study()
    layers = study_layers(study)
    for _, kwargs, kind in layers:
        meta = layer_meta(kwargs["metadata"])
        assert meta.geometry is study.geometry and meta.study == "blob"
        assert meta.role == ("labels" if kind == "labels" else "image")
        assert lightseg_metadata(kwargs["metadata"]) == meta.to_dict() == kwargs["metadata"][METADATA_KEY]
    _, kwargs, _ = labels_layer(study.labels, study.geometry, "x", convention="brats2021", extra={"model": "m", "k": 1})
    meta = layer_meta(kwargs["metadata"])
    assert (meta.convention, meta.model, meta.extra) == ("brats2021", "m", {"k": 1})


def _report() -> RunReport:
    return RunReport("case1", "unet", "onnxruntime", "CPUExecutionProvider", {"total": 1.5, "inference": 0.5, "read": 0.25},
                     {"NCR": 1.0, "ED": 2.0, "ET": 3.0, "WT": 6.0, "TC": 4.0}, slices=100,
                     detections=[Detection(Box((1, 2, 3), (4, 5, 6)), (2.0, 3.0, 4.0), 6.0)], notes=["a", "b"],
                     cpu_s=2.0, energy_j=30.0, energy_method="estimate: CPU time x 15 W/core")


def test_run_report_row_is_the_csv_columns() -> None:
    report = _report()
    row = report.row()
    assert tuple(row) == RunReport.COLUMNS
    assert row["register_s"] == "" and row["read_s"] == 0.25 and row["ms_per_slice"] == 5.0 and row["notes"] == "a; b"
    assert row["energy_j"] == 30.0 and row["energy_wh"] == pytest.approx(30 / 3600, abs=1e-6) and row["energy_method"]
    # the cohort table is the run report's columns with the cohort's own around them
    assert set(RunReport.COLUMNS) <= set(cohort.COLUMNS) and len(set(cohort.COLUMNS)) == len(cohort.COLUMNS)
    data = report.as_dict()
    assert data["detections"][0]["box_voxel_display"] == [[1, 2, 3], [4, 5, 6]] and data["energy_wh"] > 0


def test_engine_result_report_is_the_run_report() -> None:
    """A result holds its run report (one source of truth), never copies of the report's fields."""
    study = blob_study()
    fields = {f.name for f in dataclasses.fields(engine.Result)}
    assert fields & {f.name for f in dataclasses.fields(RunReport)} == set()
    report = RunReport("blob", "m", "numpy", "cpu", {"total": 1.0, "inference": 0.5},
                       {"NCR": 0.0, "ED": 1.0, "ET": 0.0, "WT": 1.0, "TC": 0.0}, slices=10, energy_j=5.0, energy_method="x")
    result = engine.Result(study.labels, study.geometry, report, study_convention="brats2023")
    assert result.report is report and tuple(result.report.row()) == RunReport.COLUMNS
    assert result.summary_line() == "m on numpy/cpu: total 1.00 s (inference 0.50 s), WT 1.0 mL"
    segmentation = result.segmentation
    assert isinstance(segmentation, Segmentation) and segmentation.convention == "brats2023" and segmentation.model == "m"
    with pytest.raises(ValueError, match="grid"):
        Segmentation(np.zeros((2, 2, 2), np.uint8), study.geometry)


def test_writer_hook_needs_no_viewer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (PACKAGE / "_writer.py").read_text()
    assert "current_viewer" not in source and "import napari" not in source
    import napari

    def no_viewer():
        raise AssertionError("the writer must not look for a viewer")

    monkeypatch.setattr(napari, "current_viewer", no_viewer)
    opened.forget()
    study = blob_study()
    data, kwargs, _ = labels_layer(study.labels, study.geometry, "mask", convention="brats2023",
                                   extra={"source": str(tmp_path / "blob_seg.nii.gz")})
    written = write_labels(str(tmp_path / "out.nii.gz"), data, kwargs)  # grid and convention from the layer
    assert set(np.unique(np.asarray(nib.load(written[0]).dataobj))) == {0, 2}
    with pytest.raises(OutputError, match="is an input"):  # the layer's own source, and every opened file
        write_labels(str(tmp_path / "blob_seg.nii.gz"), data, kwargs)
    hand_drawn = {"metadata": {}, "name": "Labels"}  # napari's "new labels layer": no plugin metadata
    written = write_labels(str(tmp_path / "drawn.nii.gz"), np.asarray(data), hand_drawn)  # the opened study's grid
    assert nib.load(written[0]).shape == study.geometry.disk_shape
    with pytest.raises(StudyError, match="no source grid"):
        write_labels(str(tmp_path / "odd.nii.gz"), np.zeros((3, 3, 3), np.uint8), hand_drawn)
    other = Geometry.from_image(nib.Nifti1Image(np.zeros(study.geometry.disk_shape, np.float32), np.diag([2.0, 2.0, 2.0, 1.0])))
    opened.remember(other)  # two studies of one shape on different grids: no guessing
    with pytest.raises(StudyError, match="different grids"):
        write_labels(str(tmp_path / "drawn2.nii.gz"), np.asarray(data), hand_drawn)
    opened.forget()
