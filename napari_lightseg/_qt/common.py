"""Small pieces every dock widget uses: a scrolling body (docks never clip buttons) and stable layer names."""
from __future__ import annotations

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFrame, QScrollArea, QVBoxLayout, QWidget


def scrolling_body(widget: QWidget) -> QVBoxLayout:
    """Put the widget's content in a scroll area and return the content's layout: when docks stack,
    the content scrolls instead of squeezing or clipping its buttons."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # rows are built to fit; never clip
    body = QWidget()
    scroll.setWidget(body)
    outer.addWidget(scroll)
    layout = QVBoxLayout(body)
    layout.setContentsMargins(6, 6, 6, 6)
    return layout


def add_or_replace(viewer: napari.Viewer, data, kwargs: dict, layer_type: str):
    """Stable names: a re-run replaces the layer of the same name (at the same place in the list)."""
    name = kwargs["name"]
    index = None
    if name in viewer.layers:
        index = viewer.layers.index(name)
        viewer.layers.remove(name)
    layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def compact_combo(min_characters: int = 10) -> QComboBox:
    """A combo box that does not widen the dock to its longest entry (layer and model names are long)."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(min_characters)
    return combo
