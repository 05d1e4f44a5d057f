"""One result in focus, its legend, and orientation letters on the 2D canvas.

Several models and the ground truth blended at opacity 0.6 read as olive and brown: only the focused
mask is shown; the others stay in the layer list (hidden), and the picker brings any of them back.
The letters come from the study geometry through ``display.plane_markers`` (pure, unit-tested).
"""
from __future__ import annotations

import weakref

import napari
import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QCheckBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from ..display import legend_html, legend_rows, marker_positions, plane_markers, tumour_center_slice
from ..layers import METADATA_KEY, is_result_layer, lightseg_metadata, sequence_layers
from .common import compact_combo

MARKERS_LAYER = "orientation"
MARKER_ROLE = "orientation"
BOX_ROLES = ("boxes", "box-outlines")
_INSTALLED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # viewers that have the letters


def result_layers(viewer: napari.Viewer) -> list:
    return [layer for layer in viewer.layers if is_result_layer(layer)]


def focused_result(viewer: napari.Viewer):
    """The result in focus: the selected mask, else the top visible one, else None."""
    active = viewer.layers.selection.active
    if active is not None and is_result_layer(active):
        return active
    visible = [layer for layer in result_layers(viewer) if layer.visible]
    return visible[-1] if visible else None


def study_image_layer(viewer: napari.Viewer):
    """The FLAIR layer (or the newest 3D image): its grid is the study's and it is shown under the masks."""
    found = sequence_layers(viewer.layers)
    names = found["flair"] or [n for seq in found.values() for n in seq]
    return viewer.layers[names[-1]] if names else None


def go_to_tumour(viewer: napari.Viewer, layer=None) -> None:
    """Show the axial slice through the tumour's centre (of ``layer``, else the first mask that has one)."""
    for mask in [layer] if layer is not None else result_layers(viewer):
        center = tumour_center_slice(np.asarray(mask.data))
        if center is not None:
            viewer.dims.set_current_step(0, center)
            return


def focus_result(viewer: napari.Viewer, name: str, boxes_2d: bool = False) -> None:
    """Show and select ``name``; hide the other masks (kept) and the boxes of other results."""
    layer = viewer.layers[name]
    for other in result_layers(viewer):
        other.visible = other is layer
    for shapes in viewer.layers:
        role = lightseg_metadata(shapes.metadata).get("role")
        if role in BOX_ROLES:
            mine = shapes.name.startswith(f"{name} ")
            shapes.visible = mine and (role == "boxes") == (viewer.dims.ndisplay == 2) and (boxes_2d or role != "boxes")
    viewer.layers.selection.active = layer


def _study_geometry(viewer: napari.Viewer):
    for layer in viewer.layers:
        geometry = lightseg_metadata(layer.metadata).get("geometry")
        if geometry is not None and np.ndim(layer.data) == 3 and layer._type_string in ("image", "labels"):
            return geometry, layer
    return None, None


def update_orientation_markers(viewer: napari.Viewer) -> None:
    """(Re)place the R/L/A/P/S/I letters on the edges of the plane shown; hidden in 3D."""
    geometry, layer = _study_geometry(viewer)
    if geometry is None or viewer.dims.ndisplay != 2 or viewer.dims.ndim != 3 or viewer.canvas.grid.enabled:
        if MARKERS_LAYER in viewer.layers:
            viewer.layers[MARKERS_LAYER].visible = False
        if geometry is None:
            viewer.text_overlay.visible = False  # in 3D the 3D view writes its own note; in a grid the convention holds
        return
    displayed = tuple(viewer.dims.displayed)
    markers = plane_markers(geometry.display_affine, displayed)
    current = tuple(np.asarray(layer.world_to_data(viewer.dims.point)))
    positions = marker_positions(geometry.display_shape, displayed, current)
    data = np.array([positions[side] for side in positions])
    letters = [markers.as_dict()[side] for side in positions]
    if MARKERS_LAYER in viewer.layers:
        points = viewer.layers[MARKERS_LAYER]
        points.data = data
        points.features = {"letter": letters}
        points.visible = True
    else:
        previous = viewer.layers.selection.active  # adding selects the new layer: keep the user's selection
        viewer.add_points(data, name=MARKERS_LAYER, size=0.1, face_color="transparent", border_color="transparent",
                          border_width=0,
                          features={"letter": letters}, scale=layer.scale, translate=layer.translate,
                          units=layer.units, axis_labels=layer.axis_labels,
                          text={"string": "{letter}", "color": "yellow", "size": 16, "anchor": "center"},
                          metadata={METADATA_KEY: {"role": MARKER_ROLE}})
        viewer.layers.selection.active = previous
    convention = markers.convention
    viewer.text_overlay.text = f"{convention} convention (patient's {markers.left} on the screen's left)" if convention else ""
    viewer.text_overlay.visible = bool(convention)
    viewer.text_overlay.position = "bottom_left"


def _markers_on_top(viewer: napari.Viewer) -> None:
    update_orientation_markers(viewer)
    if MARKERS_LAYER in viewer.layers:
        index = viewer.layers.index(MARKERS_LAYER)
        if index != len(viewer.layers) - 1:
            viewer.layers.move(index, len(viewer.layers))


def install_orientation_markers(viewer: napari.Viewer) -> None:
    """Keep the letters in step with the slice, the displayed axes and 2D/3D (once per viewer)."""
    real = getattr(viewer, "__wrapped__", viewer)  # plugins get a public-only proxy of the viewer
    if _INSTALLED.get(id(real)) is real:
        update_orientation_markers(viewer)
        return
    refresh = lambda *_: update_orientation_markers(viewer)  # noqa: E731
    for event in (viewer.dims.events.current_step, viewer.dims.events.order, viewer.dims.events.ndisplay):
        event.connect(refresh)
    # never change the layer list inside its own event: place the letters on top once the insert is done
    viewer.layers.events.inserted.connect(lambda *_: QTimer.singleShot(0, lambda: _markers_on_top(viewer)))
    _INSTALLED[id(real)] = real
    update_orientation_markers(viewer)


class ResultPanel(QWidget):
    """Result picker, legend (class, colour, mL) and boxes toggle for the focused result."""

    def __init__(self, viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.picker = compact_combo()
        self.picker.setToolTip("Show one mask; the others stay in the layer list, hidden")
        form.addRow("Result", self.picker)
        layout.addLayout(form)
        self.boxes = QCheckBox("Boxes in 2D")
        self.boxes.setToolTip("Per-slice tumour boxes of the shown result")
        layout.addWidget(self.boxes)
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.legend)
        self.picker.activated.connect(lambda _: self.focus(self.picker.currentText()))
        self.boxes.toggled.connect(lambda _: self.focus(self.picker.currentText()))
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self._on_active)
        self.refresh()

    def focus(self, name: str) -> None:
        if name in self.viewer.layers:
            focus_result(self.viewer, name, boxes_2d=self.boxes.isChecked())
        self.refresh()

    def _on_active(self, *_) -> None:
        active = self.viewer.layers.selection.active
        if active is not None and is_result_layer(active):
            self.refresh()

    def refresh(self, *_) -> None:
        names = [layer.name for layer in result_layers(self.viewer)]
        current = focused_result(self.viewer)
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.addItems(names)
        if current is not None:
            self.picker.setCurrentText(current.name)
        self.picker.blockSignals(False)
        self.legend.setText(self.legend_for(current))

    @staticmethod
    def legend_for(layer) -> str:
        if layer is None:
            return ""
        geometry = lightseg_metadata(layer.metadata).get("geometry")
        spacing = geometry.spacing if geometry is not None else tuple(float(s) for s in layer.scale)
        return legend_html(layer.name, legend_rows(np.asarray(layer.data), spacing))
