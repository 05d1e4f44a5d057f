"""The comparison widget on the synthetic sample: metrics table, disagreement, CSV, side by side, model runs."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_lightseg._qt.compare_widget import DISAGREEMENT, RUN_TIME, TABLE_COLUMNS, CompareWidget
from napari_lightseg._sample_data import sample_glioma
from napari_lightseg.compare import COLUMNS, interleave_for_grid, run_names
from napari_lightseg.correction import shrink_class
from napari_lightseg.io import save_labels
from napari_lightseg.layers import labels_layer, lightseg_metadata, study_layers

pytestmark = pytest.mark.viewer
TRUTH = "sample-glioma-0 ground truth"


@pytest.fixture(scope="module")
def sample_layers():
    return sample_glioma()


@pytest.fixture
def viewer(make_napari_viewer, sample_layers):
    viewer = make_napari_viewer()
    for data, kwargs, layer_type in sample_layers:
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    truth = viewer.layers[TRUTH]
    data, kwargs, _ = labels_layer(shrink_class(truth.data, 2, 2), lightseg_metadata(truth.metadata)["geometry"], "shrunk",
                                   study="sample-glioma-0")
    viewer.add_labels(data, **kwargs)
    return viewer


def _compare(widget: CompareWidget, qtbot) -> None:
    """Compare and wait: the button comes back when the worker has finished (a signal may come before waitSignal)."""
    assert widget.compare() is not None, widget.status.text()
    assert not widget.compare_button.isEnabled()
    qtbot.waitUntil(widget.compare_button.isEnabled, timeout=60_000)


def test_compare_csv_side_by_side_load(viewer, qtbot, tmp_path: Path) -> None:
    widget = CompareWidget(viewer)
    assert widget.reference_combo.currentText() == TRUTH
    assert widget.compared() == ["shrunk"]
    _compare(widget, qtbot)
    assert widget.table.rowCount() == 1
    assert widget.table.item(0, 0).text() == "shrunk"
    dice_wt = float(widget.table.item(0, TABLE_COLUMNS.index("dice_WT")).text())
    assert TRUTH in widget.table_title.text()  # the reference is named once, above the table
    assert "reference" not in TABLE_COLUMNS and TABLE_COLUMNS[1] == "dice_WT"
    assert 0.5 < dice_wt < 1.0
    counts = viewer.layers[DISAGREEMENT].data
    assert set(np.unique(counts)) == {0, 1}
    assert np.array_equal(counts == 1, viewer.layers[TRUTH].data != viewer.layers["shrunk"].data)

    path = widget.export_csv(str(tmp_path / "comparison.csv"))
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1][:2] == ["shrunk", TRUTH]

    _compare(widget, qtbot)  # a re-compute replaces the disagreement layer
    assert [layer.name for layer in viewer.layers].count(DISAGREEMENT) == 1

    before = [(layer.name, layer.visible) for layer in viewer.layers]
    widget.side_by_side.setChecked(True)
    grid = viewer.canvas.grid
    assert grid.enabled and grid.stride == 2
    names = [layer.name for layer in viewer.layers]
    assert names[:4] == [f"{TRUTH} | FLAIR", TRUTH, "shrunk | FLAIR", "shrunk"]
    assert grid.actual_shape(viewer.layers) == (1, 2)  # hidden layers take no viewbox
    assert grid.position(1, viewer.layers) == (0, 0) and grid.position(3, viewer.layers) == (0, 1)
    widget.side_by_side.setChecked(False)
    assert not grid.enabled
    assert [(layer.name, layer.visible) for layer in viewer.layers] == before

    truth = viewer.layers[TRUTH]
    geometry = lightseg_metadata(truth.metadata)["geometry"]
    good = save_labels(tmp_path / "other_seg.nii.gz", shrink_class(truth.data, 3, 1), geometry, "brats2023")
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    assert widget.load_masks([str(good), str(bad)]) == ["other_seg"]
    assert "broken.nii.gz" in widget.status.text() and "\n" not in widget.status.text()
    assert np.array_equal(viewer.layers["other_seg"].data, shrink_class(truth.data, 3, 1))
    assert "other_seg" in widget.compared()


def test_model_run_through_worker(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    """A tiny ONNX model on a small study: the run goes through the widget's worker and adds its run time."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from helpers import blob_study, tiny_onnx_card

    viewer = make_napari_viewer()
    for data, kwargs, layer_type in study_layers(blob_study()):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    card = tiny_onnx_card(tmp_path)
    widget = CompareWidget(viewer)
    widget.cards = {card.name: card}
    widget.add_job(card.name, "onnxruntime:CPUExecutionProvider")
    worker = widget.run()
    assert worker is not None, widget.status.text()
    assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    assert card.name in viewer.layers, widget.status.text()
    assert widget.run_times[card.name] > 0
    for i in range(widget.mask_list.count()):  # compare the model run only
        item = widget.mask_list.item(i)
        item.setSelected(item.text() == card.name)
    _compare(widget, qtbot)
    assert widget.rows[0]["segmentation"] == card.name
    assert widget.rows[0][RUN_TIME] == widget.run_times[card.name]
    assert widget.table.item(0, TABLE_COLUMNS.index(RUN_TIME)).text() != ""


def test_run_names_and_grid_order() -> None:
    assert run_names([("a", "onnxruntime:CPU"), ("b", "numpy"), ("a", "torch")]) == ["a (onnxruntime:CPU)", "b", "a (torch)"]
    assert interleave_for_grid(["ref", "m", "ref"], {"ref": "ref | FLAIR", "m": "m | FLAIR"}) == \
        ["ref | FLAIR", "ref", "m | FLAIR", "m"]


def test_docked_through_the_manifest(viewer, qtbot) -> None:
    _, widget = viewer.window.add_plugin_dock_widget("napari-lightseg", "Compare models")
    _compare(widget, qtbot)
    assert widget.table.rowCount() == 1 and DISAGREEMENT in viewer.layers
    widget.side_by_side.setChecked(True)
    assert viewer.canvas.grid.enabled
    widget.side_by_side.setChecked(False)
