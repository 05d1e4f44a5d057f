"""The correction widget's controls: the class palette (with its keys) and the operations box.

Kept apart so the widget itself only connects these controls to ``correction``'s array operations.
"""
from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..io import CLASSES

ERASE = 0
SHORTCUTS_HELP = ("On the edited layer, keys 1/2/3 choose NCR/ED/ET (paint mode) and 0 erases; they replace "
                  "napari's own 1-7 mode keys on that layer only. Ctrl+Z / Ctrl+Shift+Z undo and redo paint "
                  "strokes and the operations below.")


class ClassPalette(QGroupBox):
    """One checkable button per class in its colour, and Erase; ``chosen`` sends the value (0: erase)."""

    chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Class (keys 1/2/3, 0 erases)", parent)
        self.setToolTip(SHORTCUTS_HELP)
        row = QHBoxLayout(self)
        self.group = QButtonGroup(self)
        self.buttons: dict[int, QPushButton] = {}
        for cls in CLASSES:
            button = QPushButton(f"{cls.value} {cls.name}")
            button.setToolTip(f"{cls.long_name} (key {cls.value})")
            button.setStyleSheet(f"QPushButton {{ background-color: {cls.color}; color: black; }}"
                                 "QPushButton:checked { border: 3px solid white; font-weight: bold; }")
            self.buttons[cls.value] = button
        self.buttons[ERASE] = QPushButton("0 Erase")
        self.buttons[ERASE].setToolTip("Erase to background (key 0)")
        for value, button in self.buttons.items():
            button.setCheckable(True)
            self.group.addButton(button, value)
            row.addWidget(button)
        self.buttons[CLASSES[0].value].setChecked(True)
        self.group.idClicked.connect(self.chosen.emit)

    def bind_keys(self, layer) -> None:
        """Keys 0-3 on ``layer`` choose the class (napari's own 1-7 mode keys stay on other layers)."""
        for value in self.buttons:
            layer.bind_key(str(value), self._key_handler(value), overwrite=True)

    def _key_handler(self, value: int) -> Callable:
        def handler(_layer) -> None:
            self.chosen.emit(value)

        handler.__doc__ = f"LightSeg: choose class {value}" if value else "LightSeg: erase"
        return handler


class OperationsBox(QGroupBox):
    """Slice range + Interpolate, Remove smaller, Fill holes, Grow / Shrink, Keep largest; progress and Cancel.

    The operations run in a worker thread (``worker.TaskRunner``): the bar and Cancel show the running one.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Operations (undo: Ctrl+Z)", parent)
        grid = QGridLayout(self)
        self.first_slice, self.last_slice = QSpinBox(), QSpinBox()
        self.interpolate_button = QPushButton("Interpolate class")
        self.interpolate_button.setToolTip("Shape-based interpolation of the chosen class between the two slices")
        self.here_button = QPushButton("Current slice")
        self.here_button.setToolTip("Set the nearer end to the slice shown")
        # three columns (label | value | action): four overflowed napari's default dock width
        grid.addWidget(QLabel("Slices"), 0, 0)
        grid.addWidget(self.first_slice, 0, 1)
        grid.addWidget(self.last_slice, 0, 2)
        grid.addWidget(self.here_button, 1, 0)
        grid.addWidget(self.interpolate_button, 1, 1, 1, 2)
        self.min_ml = QDoubleSpinBox()
        self.min_ml.setRange(0.0, 1000.0)
        self.min_ml.setDecimals(2)
        self.min_ml.setSingleStep(0.1)
        self.min_ml.setValue(0.5)
        self.remove_button = QPushButton("Remove smaller")
        self.remove_button.setToolTip("Clear connected components of each class smaller than this volume")
        grid.addWidget(QLabel("Parts < mL"), 2, 0)
        grid.addWidget(self.min_ml, 2, 1)
        grid.addWidget(self.remove_button, 2, 2)
        self.fill_mode = QComboBox()
        self.fill_mode.addItems(["per slice", "3D"])
        self.fill_button = QPushButton("Fill holes")
        self.fill_button.setToolTip("Fill background enclosed by the tumour with the nearest tumour class")
        grid.addWidget(QLabel("Holes"), 3, 0)
        grid.addWidget(self.fill_mode, 3, 1)
        grid.addWidget(self.fill_button, 3, 2)
        self.grow_button, self.shrink_button = QPushButton("Grow +1"), QPushButton("Shrink -1")
        self.grow_button.setToolTip("Grow the chosen class by one voxel into background (other classes are kept)")
        self.shrink_button.setToolTip("Shrink the chosen class by one voxel")
        self.largest_button = QPushButton("Keep largest")
        self.largest_button.setToolTip("Keep only the largest connected tumour component")
        grid.addWidget(self.grow_button, 4, 0)
        grid.addWidget(self.shrink_button, 4, 1)
        grid.addWidget(self.largest_button, 4, 2)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running operation: its result is dropped, the mask stays as it is")
        grid.addWidget(self.progress, 5, 0, 1, 2)
        grid.addWidget(self.cancel_button, 5, 2)

    def buttons(self) -> tuple[QPushButton, ...]:
        return (self.interpolate_button, self.here_button, self.remove_button, self.fill_button,
                self.grow_button, self.shrink_button, self.largest_button)

    def set_slice_count(self, count: int) -> None:
        for spin in (self.first_slice, self.last_slice):
            spin.setRange(0, count - 1)

    def set_both_ends(self, index: int) -> None:
        self.first_slice.setValue(index)
        self.last_slice.setValue(index)

    def set_nearer_end(self, index: int) -> None:
        """The end nearer to ``index`` moves there (the other stays)."""
        nearer = min((self.first_slice, self.last_slice), key=lambda s: abs(s.value() - index))
        nearer.setValue(index)
