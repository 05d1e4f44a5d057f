"""The correction widget: edited copy, class keys, undoable operations, live volumes, save and reload."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import blob_study
from qtpy.QtWidgets import QFileDialog, QMessageBox

from napari_lightseg import correction
from napari_lightseg._qt import correction_widget as cw
from napari_lightseg._qt.correction_widget import CorrectionWidget, unsaved_layers
from napari_lightseg._reader import read_study
from napari_lightseg.layers import lightseg_metadata, study_layers

pytestmark = pytest.mark.viewer
TRUTH = "blob ground truth"


@pytest.fixture(autouse=True)
def no_close_prompt(monkeypatch):
    monkeypatch.setenv("LIGHTSEG_NO_CLOSE_PROMPT", "1")


def _labels() -> np.ndarray:
    """The blob's edema plus: ET on slices 8 and 14 (to interpolate), a 2-voxel island, a hole, a second component."""
    labels = blob_study().labels.copy()
    labels[8, 10:14, 10:14] = 3
    labels[14, 10:16, 10:16] = 3
    labels[2, 2, 2:4] = 1
    labels[12, 14:19, 19:24] = 0  # inside the blob: a hole on that slice
    labels[20:23, 30:34, 5:9] = 2  # a second, smaller component
    return labels


def _run(qtbot, widget, button) -> None:
    """Click an operation and wait for its worker (operations run off the GUI thread)."""
    button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)


def _held(monkeypatch, name: str) -> tuple[threading.Event, list[threading.Thread]]:
    """Make ``correction.<name>`` wait for the returned event, recording the thread it runs in."""
    release, threads = threading.Event(), []
    original = getattr(correction, name)

    def held(*args, **kwargs):
        threads.append(threading.current_thread())
        assert release.wait(30), "the test never released the operation"
        return original(*args, **kwargs)

    monkeypatch.setattr(correction, name, held)
    return release, threads


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    study = blob_study()
    study.labels = _labels()
    for data, kwargs, layer_type in study_layers(study):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    viewer.layers.selection.active = viewer.layers[TRUTH]
    return viewer


def test_edit_copy_and_class_keys(viewer) -> None:
    widget = CorrectionWidget(viewer)
    assert not widget.grow_button.isEnabled()
    edited = widget.edit_copy()
    assert edited.name == f"{TRUTH} (edited)"
    assert viewer.layers.selection.active is edited and edited.mode == "paint"
    meta, source_meta = lightseg_metadata(edited.metadata), lightseg_metadata(viewer.layers[TRUTH].metadata)
    assert meta["edited"] and meta["geometry"] is source_meta["geometry"] and meta["convention"] == source_meta["convention"]
    assert np.array_equal(edited.data, viewer.layers[TRUTH].data) and edited.data is not viewer.layers[TRUTH].data
    assert widget.grow_button.isEnabled() and "ED" in widget.volumes_label.text()

    keys = viewer.window._qt_viewer._key_map_handler  # what a key press on the canvas goes through
    for key, value in (("2", 2), ("3", 3), ("1", 1)):
        keys.press_key(key)
        keys.release_key(key)
        assert edited.selected_label == value and edited.mode == "paint"
        assert widget.class_buttons[value].isChecked() and widget.label == value
    keys.press_key("0")
    keys.release_key("0")
    assert edited.mode == "erase" and widget.label == 1
    widget.class_buttons[3].click()
    assert edited.selected_label == 3 and edited.mode == "paint"

    viewer.layers.selection.active = viewer.layers[TRUTH]
    assert not widget.grow_button.isEnabled()
    assert widget.edit_copy() is edited  # a second press reuses the copy, keeping its edits


def test_operations_undo_redo(viewer, qtbot) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    widget.choose_class(1)  # NCR is on neither slice: a status line, nothing changes
    widget.first_slice.setValue(8)
    widget.last_slice.setValue(14)
    before = edited.data.copy()
    _run(qtbot, widget, widget.interpolate_button)
    assert "holds no NCR" in widget.status.text()
    assert widget.status.text().startswith("interpolate"), widget.status.text()  # names the operation that failed
    assert np.array_equal(edited.data, before) and unsaved_layers(viewer.layers) == []

    widget.choose_class(3)
    widget.fill_mode.setCurrentText("per slice")
    widget.min_ml.setValue(0.01)
    for button in ("interpolate_button", "fill_button", "grow_button", "shrink_button", "remove_button", "largest_button"):
        before = edited.data.copy()
        volumes_before = widget.volumes_label.text()
        _run(qtbot, widget, getattr(widget, button))
        after = edited.data.copy()
        assert not np.array_equal(after, before), f"{button}: {widget.status.text()}"
        assert widget.volumes_label.text() != volumes_before, button
        assert unsaved_layers(viewer.layers) == [edited.name]
        edited.undo()
        assert np.array_equal(edited.data, before), button
        edited.redo()
        assert np.array_equal(edited.data, after), button


def test_edit_save_reload(viewer, tmp_path: Path, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    edited.data_setitem((np.array([3, 3]), np.array([5, 5]), np.array([5, 6])), 1)  # a brush stroke's write
    edited.events.paint(value=None)  # what napari sends after a stroke
    assert unsaved_layers(viewer.layers) == [edited.name]
    target = tmp_path / "blob_seg.nii.gz"
    target.write_bytes(b"old")
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes))
    widget.convention_combo.setCurrentText("brats2023")
    widget.save_button.click()
    assert asked, "overwriting must be confirmed"
    assert unsaved_layers(viewer.layers) == []
    data, kwargs, _ = read_study(str(target))[0]
    assert kwargs["metadata"]["lightseg"]["convention"] == "brats2023"
    assert np.array_equal(data, edited.data) and data[3, 5, 6] == 1


def test_close_asks_while_unsaved(viewer, monkeypatch, qtbot) -> None:
    monkeypatch.delenv("LIGHTSEG_NO_CLOSE_PROMPT")
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    _run(qtbot, widget, widget.grow_button)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.No))
    window = viewer.window._qt_window
    assert window.close() is False
    assert asked and edited.name in asked[0][2]
    cw._set_meta(edited, unsaved=False)
    asked.clear()
    CorrectionWidget(viewer)  # a second widget adds no second guard
    assert len(window.findChildren(cw._CloseGuard)) == 1


def test_docked_through_the_manifest(viewer, qtbot) -> None:
    """napari hands plugin widgets a public-only viewer proxy: the widget and its close guard must cope."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-lightseg", "Correct mask")
    assert len(viewer.window._qt_window.findChildren(cw._CloseGuard)) == 1
    edited = widget.edit_copy()
    assert edited is not None, widget.status.text()
    _run(qtbot, widget, widget.grow_button)
    assert unsaved_layers(viewer.layers) == [edited.name]


def test_save_never_replaces_an_input_even_when_confirmed(viewer, tmp_path: Path, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    truth = tmp_path / "blob_seg.nii.gz"
    truth.write_bytes(b"the expert's ground truth")
    source_layer = next(layer for layer in viewer.layers if layer is not edited and "lightseg" in layer.metadata)
    source_layer.metadata = {**source_layer.metadata, "lightseg": {**source_layer.metadata["lightseg"], "source": str(truth)}}
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    assert widget.save(str(truth)) is None
    assert truth.read_bytes() == b"the expert's ground truth"
    assert "Not saved" in widget.status.text() and "input" in widget.status.text()


def test_operation_runs_off_the_gui_thread_as_one_undo_step(viewer, qtbot, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    widget.choose_class(3)
    release, threads = _held(monkeypatch, "grow_class")
    before, volumes_before = edited.data.copy(), widget.volumes_label.text()
    widget.grow_button.click()
    qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    assert threads[0] is not threading.main_thread()
    assert widget.runner.running and widget.cancel_button.isEnabled()
    assert not any(b.isEnabled() for b in (widget.grow_button, widget.interpolate_button, widget.save_button))
    assert np.array_equal(edited.data, before)  # nothing is written while the worker computes
    assert widget.ops.progress.maximum() == 0  # one call reports no fraction: the bar shows "busy", not a frozen 0 %
    release.set()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert widget.grow_button.isEnabled() and widget.save_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert widget.ops.progress.maximum() > 0 and widget.ops.progress.value() == widget.ops.progress.maximum()
    after = edited.data.copy()
    assert not np.array_equal(after, before) and "voxels changed" in widget.status.text()
    assert widget.volumes_label.text() != volumes_before and unsaved_layers(viewer.layers) == [edited.name]
    edited.undo()  # the whole operation is one history step
    assert np.array_equal(edited.data, before)
    edited.redo()
    assert np.array_equal(edited.data, after)


def test_cancel_returns_the_controls_and_drops_the_result(viewer, qtbot, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    release, threads = _held(monkeypatch, "keep_largest_component")
    before = edited.data.copy()
    widget.largest_button.click()
    qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    widget.cancel_button.click()
    release.set()
    qtbot.waitUntil(widget.largest_button.isEnabled, timeout=30_000)
    assert "Cancelled" in widget.status.text() and not widget.runner.running
    assert widget.save_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert widget.ops.progress.maximum() > 0  # no busy bar left behind
    assert np.array_equal(edited.data, before) and unsaved_layers(viewer.layers) == []
    _run(qtbot, widget, widget.largest_button)  # and the next run works
    assert not np.array_equal(edited.data, before)


def test_paint_during_an_operation_is_kept_and_the_result_refused(viewer, qtbot, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    widget.choose_class(3)
    release, threads = _held(monkeypatch, "grow_class")
    widget.grow_button.click()
    qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    stroke = (np.array([3, 3]), np.array([5, 5]), np.array([5, 6]))
    edited.data_setitem(stroke, 1)  # the user paints while the operation computes
    edited.events.paint(value=None)
    painted = edited.data.copy()
    release.set()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert np.array_equal(edited.data, painted) and (edited.data[stroke] == 1).all()
    status = widget.status.text()
    assert "not applied" in status and "changed" in status and "\n" not in status
    assert widget.grow_button.isEnabled()


def test_a_layer_closed_during_an_operation_is_left_alone(viewer, qtbot, monkeypatch) -> None:
    widget = CorrectionWidget(viewer)
    edited = widget.edit_copy()
    release, threads = _held(monkeypatch, "grow_class")
    widget.grow_button.click()
    qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    viewer.layers.remove(edited)
    release.set()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert "not applied" in widget.status.text() and "closed" in widget.status.text()
    assert not widget.grow_button.isEnabled()  # no edited layer is active any more
