"""Small pieces every dock widget uses: a scrolling body (docks never clip buttons), stable layer names,
compact combos and rows, and one way to ask where a mask goes."""
from __future__ import annotations

from pathlib import Path

import napari
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)


class _WidthFittingScroll(QScrollArea):
    """Scrolls vertically only: it is never narrower than its content, so napari sizes the dock to fit."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        width = content.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.minimumSizeHint().width()), hint.height())


def scrolling_body(widget: QWidget) -> QVBoxLayout:
    """Put the widget's content in a scroll area and return the content's layout: when docks stack,
    the content scrolls (vertically) instead of squeezing or clipping its buttons."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = _WidthFittingScroll(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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


def button_row(*widgets: QWidget) -> QWidget:
    """A compact row of buttons for a form."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget)
    return holder


def nifti_target(parent: QWidget, title: str, default: Path, path: str | Path | None = None) -> Path | None:
    """Where to save a mask: ``path``, else what a Save dialog gives (None if cancelled); with a NIfTI suffix."""
    if path is None:
        path, _ = QFileDialog.getSaveFileName(parent, title, str(default), "NIfTI (*.nii.gz *.nii)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return None
    return Path(path) if str(path).lower().endswith((".nii", ".nii.gz")) else Path(f"{path}.nii.gz")


def replace_confirmed(parent: QWidget, target: Path) -> bool:
    """True for a new file, or for an existing one the user agreed to replace (never silently)."""
    return not target.exists() or QMessageBox.question(
        parent, "Replace file?", f"{target} exists. Replace it?") == QMessageBox.StandardButton.Yes
