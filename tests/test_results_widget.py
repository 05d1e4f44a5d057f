"""One result in focus, legend, hover names, orientation letters, Cancel in both widgets, 3D that shows ET."""
from __future__ import annotations

import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg._qt.compare_widget import CompareWidget
from napari_lightseg._qt.results import MARKERS_LAYER, focus_result
from napari_lightseg._qt.segment_widget import SegmentWidget
from napari_lightseg._qt.worker import CANCELLED_TEXT
from napari_lightseg.io import CLASS_COLORS, Geometry
from napari_lightseg.layers import labels_layer, study_layers
from napari_lightseg.progress import Cancelled

pytestmark = pytest.mark.viewer
TRUTH = "blob ground truth"


@pytest.fixture
def blob_viewer(make_napari_viewer):
    from helpers import blob_study

    viewer = make_napari_viewer()
    for data, kwargs, kind in study_layers(blob_study()):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


@pytest.fixture
def tiny_card(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from helpers import tiny_onnx_card

    return tiny_onnx_card(tmp_path)


def _run_tiny(widget: SegmentWidget, card, qtbot) -> None:
    widget.cards[card.name] = card
    widget.model_combo.addItem(card.short_label(), card.name)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(card.name))
    assert widget.run() is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)


def test_new_result_in_focus_with_legend_and_picker(blob_viewer, tiny_card, qtbot) -> None:
    viewer = blob_viewer
    widget = SegmentWidget(viewer)
    other = SegmentWidget(viewer)
    _run_tiny(widget, tiny_card, qtbot)
    result = viewer.layers[tiny_card.name]
    assert result.visible and viewer.layers.selection.active is result  # the labels, not a Shapes layer
    assert not viewer.layers[TRUTH].visible and TRUTH in viewer.layers  # hidden but kept
    assert all(not layer.visible for layer in viewer.layers if layer._type_string == "shapes")  # boxes off in 2D
    assert len(widget.runs) == 1 and other.runs == []  # per widget, not shared by the class
    assert widget.table.rowCount() == 1 and tiny_card.name in widget.runs_csv()

    legend = widget.results.legend.text()
    assert tiny_card.name in legend and all(color in legend for color in CLASS_COLORS.values())
    assert "NCR" in legend and "ET" in legend and "mL" in legend
    items = [widget.results.picker.itemText(i) for i in range(widget.results.picker.count())]
    assert TRUTH in items and tiny_card.name in items and widget.results.picker.currentText() == tiny_card.name

    widget.results.focus(TRUTH)  # the picker brings the ground truth back, the run steps aside
    assert viewer.layers[TRUTH].visible and not result.visible
    assert TRUTH in widget.results.legend.text()
    _run_tiny(widget, tiny_card, qtbot)  # a re-run replaces its layer and is focused again
    assert len(widget.runs) == 2 and [layer.name for layer in viewer.layers].count(tiny_card.name) == 1
    assert viewer.layers[tiny_card.name].visible and not viewer.layers[TRUTH].visible


def test_hover_names_the_class(blob_viewer) -> None:
    truth = blob_viewer.layers[TRUTH]
    voxel = np.argwhere(np.asarray(truth.data) == 2)[0]
    status = truth.get_status(tuple(float(v) for v in voxel), world=False)
    assert "class: ED" in str(status)


def test_orientation_markers_on_the_canvas(blob_viewer, qtbot) -> None:
    SegmentWidget(blob_viewer)
    markers = blob_viewer.layers[MARKERS_LAYER]
    letters = dict(zip(("top", "bottom", "left", "right"), markers.features["letter"], strict=True))
    assert letters == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert "radiological" in blob_viewer.text_overlay.text and blob_viewer.text_overlay.visible
    blob_viewer.dims.set_current_step(0, 5)
    assert set(np.round(markers.data[:, 0])) == {5}  # the letters follow the slice
    qtbot.wait(10)  # the markers move on top once the insert is done
    blob_viewer.add_labels(np.zeros((24, 40, 36), np.uint8), name="drawn")
    qtbot.waitUntil(lambda: blob_viewer.layers[-1].name == MARKERS_LAYER, timeout=2000)
    blob_viewer.dims.ndisplay = 3
    assert not markers.visible


def test_segment_cancel_returns_controls(blob_viewer, qtbot, monkeypatch) -> None:
    started = threading.Event()

    def wait_for_cancel(*args, progress=None, cancel=None, **kwargs):
        started.set()
        while not cancel():
            threading.Event().wait(0.01)
        raise Cancelled("cancelled by the user")

    monkeypatch.setattr("napari_lightseg.engine.run", wait_for_cancel)
    widget = SegmentWidget(blob_viewer)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("dsc-unet-int8"))
    assert widget.run() is not None, widget.status.text()
    assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(started.is_set, timeout=10_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=10_000)
    assert widget.status.text() == CANCELLED_TEXT and not widget.cancel_button.isEnabled()
    assert widget.runs == []


def test_compare_cancel_returns_controls_and_keeps_the_job(blob_viewer, qtbot, monkeypatch) -> None:
    """The generator worker used to swallow the cancel: controls stayed greyed for good."""
    started = threading.Event()

    def wait_for_cancel(*args, progress=None, cancel=None, **kwargs):
        started.set()
        while not cancel():
            threading.Event().wait(0.01)
        raise Cancelled("cancelled by the user")

    monkeypatch.setattr("napari_lightseg.engine.run", wait_for_cancel)
    widget = CompareWidget(blob_viewer)
    widget.add_job("dsc-unet-int8", "")
    assert widget.run() is not None, widget.status.text()
    assert not widget.run_button.isEnabled() and not widget.compare_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(started.is_set, timeout=10_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=10_000)
    assert widget.status.text() == CANCELLED_TEXT
    assert widget.compare_button.isEnabled() and widget.add_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert widget.jobs() == [("dsc-unet-int8", "")]  # not run: still listed
    assert widget.progress.value() < 1000


def test_compare_runs_each_job_once(blob_viewer, tiny_card, qtbot) -> None:
    widget = CompareWidget(blob_viewer)
    widget.cards = {tiny_card.name: tiny_card}
    widget.add_job(tiny_card.name, "onnxruntime:CPUExecutionProvider")
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert tiny_card.name in blob_viewer.layers and widget.jobs() == []
    assert blob_viewer.layers.selection.active is blob_viewer.layers[tiny_card.name]
    assert widget.run() is None and "Add at least one model" in widget.status.text()


def test_compare_refuses_a_mask_on_another_grid(blob_viewer) -> None:
    other = Geometry.from_image(nib.Nifti1Image(np.zeros((36, 40, 24), np.float32), np.diag([2.0, 1.0, 1.0, 1.0])))
    data, kwargs, _ = labels_layer(np.asarray(blob_viewer.layers[TRUTH].data), other, "elsewhere")
    blob_viewer.add_labels(data, **kwargs)
    widget = CompareWidget(blob_viewer)
    assert widget.reference_combo.currentText() == TRUTH and widget.compared() == ["elsewhere"]
    assert widget.compare() is None
    assert "elsewhere" in widget.status.text() and "grid" in widget.status.text() and widget.rows == []


def test_side_by_side_tiles_are_titled(blob_viewer, qtbot) -> None:
    truth = blob_viewer.layers[TRUTH]
    data, kwargs, _ = labels_layer(np.asarray(truth.data), truth.metadata["lightseg"]["geometry"], "copy")
    blob_viewer.add_labels(data, **kwargs)
    widget = CompareWidget(blob_viewer)
    widget.side_by_side.setChecked(True)
    assert blob_viewer.canvas.grid.enabled
    assert truth.visible and blob_viewer.layers["copy"].visible
    assert truth.name_overlay.visible and blob_viewer.layers["copy"].name_overlay.visible
    assert not blob_viewer.layers[MARKERS_LAYER].visible  # no stray tile for the letters
    widget.side_by_side.setChecked(False)
    assert not truth.name_overlay.visible and not blob_viewer.canvas.grid.enabled


@pytest.mark.slow
def test_3d_view_of_the_sample_shows_enhancing_tumour(make_napari_viewer, qtbot) -> None:
    from napari_lightseg._sample_data import sample_glioma

    viewer = make_napari_viewer(show=True)
    for data, kwargs, kind in sample_glioma():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = SegmentWidget(viewer)
    focus_result(viewer, "sample-glioma-0 ground truth")
    widget.view3d_button.setChecked(True)
    assert viewer.dims.ndisplay == 3 and viewer.axes.visible and "from the front" in viewer.text_overlay.text
    names = [layer.name for layer in viewer.layers]
    assert {"sample-glioma-0 ground truth 3D ET", "sample-glioma-0 ground truth 3D NCR"} <= set(names)
    assert widget.results.picker.currentText() == "sample-glioma-0 ground truth"
    qtbot.wait(200)
    pixels = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3].astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    yellowish = (r > 110) & (g > 110) & (b < 80) & (np.abs(r - g) < 90)  # ET (#ffff00), shaded, under 30% edema
    assert yellowish.sum() > 200, f"{yellowish.sum()} ET-coloured pixels in the 3D view"
    widget.view3d_button.setChecked(False)
    assert viewer.dims.ndisplay == 2 and viewer.layers["sample-glioma-0 ground truth"].visible
    assert not any("3D ET" in layer.name for layer in viewer.layers)


def test_pcnn_shows_training_free_and_integer_parameters(blob_viewer) -> None:
    from qtpy.QtWidgets import QDoubleSpinBox, QSpinBox

    widget = SegmentWidget(blob_viewer)
    index = widget.model_combo.findData("pcnn-wt")
    if index < 0:
        pytest.skip("no pcnn-wt card shipped")
    assert "training-free" in widget.model_combo.itemText(index) and "n/a" not in widget.model_combo.itemText(index)
    widget.model_combo.setCurrentIndex(index)
    iterations, z_max = widget.param_spins["max_iterations"], widget.param_spins["z_max"]
    assert isinstance(iterations, QSpinBox) and iterations.value() == widget.card.parameters["max_iterations"]
    assert isinstance(z_max, QDoubleSpinBox) and z_max.value() == pytest.approx(widget.card.parameters["z_max"])
