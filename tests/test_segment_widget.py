"""The segment dock widget in a real viewer: run a model in a worker, get the labels layer."""
from __future__ import annotations

import pytest

from napari_lightseg._sample_data import sample_glioma
from napari_lightseg.models import list_cards

pytestmark = pytest.mark.viewer


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_glioma():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


def _pick(widget, kind):
    names = [c.name for c in list_cards() if c.kind == kind]
    if not names:
        pytest.skip(f"no {kind} model shipped")
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(names[0]))
    return names[0]


@pytest.mark.parametrize("kind", ["cnn", "pcnn"])
def test_run_model_adds_labels(viewer_with_sample, qtbot, kind):
    from napari_lightseg._qt.segment_widget import SegmentWidget

    widget = SegmentWidget(viewer_with_sample)
    assert all(c.currentText() for c in widget.sequence_combos.values())  # auto-filled from the study
    name = _pick(widget, kind)
    worker = widget.run()
    assert worker is not None and not widget.run_button.isEnabled()
    qtbot.waitUntil(lambda: name in viewer_with_sample.layers, timeout=120_000)
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=10_000)
    layer = viewer_with_sample.layers[name]
    assert layer.data.shape == viewer_with_sample.layers["sample-glioma-0 FLAIR"].data.shape
    assert tuple(layer.scale) == tuple(viewer_with_sample.layers["sample-glioma-0 FLAIR"].scale)
    assert layer.data.max() > 0
    assert widget.table.rowCount() >= 1 and name in widget.runs_csv()
    _check_runs_table_is_the_run_report(widget)
    # a re-run replaces the layer instead of adding another
    count = len(viewer_with_sample.layers)
    widget.run()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled() and len(widget.runs) == 2, timeout=120_000)
    assert len(viewer_with_sample.layers) == count


def test_cancel(viewer_with_sample, qtbot):
    from napari_lightseg._qt.segment_widget import SegmentWidget

    widget = SegmentWidget(viewer_with_sample)
    name = _pick(widget, "cnn")
    widget.run()
    widget.cancel_button.click()  # checked before every batch of slices
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60_000)
    assert "Cancelled" in widget.status.text()
    assert name not in viewer_with_sample.layers


def test_3d_view(viewer_with_sample):
    from napari_lightseg._qt.view3d import show_3d

    show_3d(viewer_with_sample)
    assert viewer_with_sample.dims.ndisplay == 3


def test_pcnn_detection_adds_boxes(viewer_with_sample, qtbot):
    from napari_lightseg._qt.segment_widget import SegmentWidget

    widget = SegmentWidget(viewer_with_sample)
    widget.detect()
    qtbot.waitUntil(lambda: "PCNN detection" in viewer_with_sample.layers, timeout=120_000)
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=10_000)
    assert len(viewer_with_sample.layers["PCNN detection"].data) >= 1
    assert len(viewer_with_sample.layers["PCNN detection 3D"].data) == 12


def test_pcnn_detection_without_a_box_says_so(viewer_with_sample):
    from napari_lightseg._qt.segment_widget import SegmentWidget
    from napari_lightseg.pcnn import Detection

    widget = SegmentWidget(viewer_with_sample)
    before = len(viewer_with_sample.layers)
    widget._on_detection(Detection.nothing("pcnn"), None)
    assert "no tumour-like region" in widget.status.text()
    assert len(viewer_with_sample.layers) == before


def _check_runs_table_is_the_run_report(widget):
    """The runs table, its tooltip and CSV are ``RunReport.row()``; the energy estimate is a visible column
    whose header names the method (issue #12)."""
    from napari_lightseg._qt.runs_table import RUN_COLUMNS, TABLE_COLUMNS
    from napari_lightseg.types import RunReport

    assert RUN_COLUMNS == RunReport.COLUMNS
    assert widget.runs_csv().splitlines()[0] == ",".join(RunReport.COLUMNS)
    row = widget.runs[-1]
    assert tuple(row) == RunReport.COLUMNS and row["energy_j"] > 0 and row["energy_method"]
    column = [key for key, _ in TABLE_COLUMNS].index("energy_j")
    header = widget.table.horizontalHeaderItem(column)
    assert header.text().split() == ["energy", "J"] and row["energy_method"] in header.toolTip()
    assert widget.table.item(widget.table.rowCount() - 1, column).text() == f"{row['energy_j']:.1f}"  # rounded for reading
    assert str(row["energy_j"]) in widget.table.item(widget.table.rowCount() - 1, column).toolTip()  # every digit kept
