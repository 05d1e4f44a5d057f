"""Dock widget: correct a tumour mask by hand on an editable copy, with undoable operations and Save.

Every operation goes through ``correction.apply_to_layer``, so napari's own Ctrl+Z / Ctrl+Shift+Z
undo and redo it as one step. Volumes follow the layer live. Unsaved edits make napari ask before
its window closes (``LIGHTSEG_NO_CLOSE_PROMPT=1`` turns the question off, e.g. in tests).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .. import correction
from ..io import CLASSES, CONVENTIONS, DEFAULT_CONVENTION, StudyError, save_labels
from ..layers import METADATA_KEY, labels_layer, layer_source_files, lightseg_metadata
from ..metrics import class_volumes_ml
from .close_guard import _CloseGuard, close_prompt_enabled, install_close_guard, is_edited, unsaved_layers
from .common import scrolling_body

__all__ = ["CorrectionWidget", "_CloseGuard", "close_prompt_enabled", "is_edited", "unsaved_layers"]

EDITED_SUFFIX = " (edited)"
VOLUME_KEYS = ("NCR", "ED", "ET", "WT", "TC")
ERASE = 0
SHORTCUTS_HELP = ("On the edited layer, keys 1/2/3 choose NCR/ED/ET (paint mode) and 0 erases; they replace "
                  "napari's own 1-7 mode keys on that layer only. Ctrl+Z / Ctrl+Shift+Z undo and redo paint "
                  "strokes and the operations below.")


def _set_meta(layer, **values) -> None:
    """Update the plugin's metadata of a layer in place (``lightseg_metadata`` returns a copy)."""
    layer.metadata.setdefault(METADATA_KEY, {}).update(values)


class CorrectionWidget(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.label = CLASSES[0].value  # the class that operations and painting use
        self._watched: set[int] = set()
        self._volume_timer = QTimer(self)
        self._volume_timer.setSingleShot(True)
        self._volume_timer.setInterval(100)  # paint/scroll events come in bursts: count once per burst
        self._volume_timer.timeout.connect(self.refresh_volumes)
        self.setToolTip(SHORTCUTS_HELP)

        layout = scrolling_body(self)  # stacked docks scroll instead of clipping the operation buttons
        top = QHBoxLayout()
        self.edit_button = QPushButton("Edit a copy")
        self.edit_button.setToolTip("Copy the selected labels layer to '<name> (edited)' and paint on the copy")
        top.addWidget(self.edit_button)
        self.target_label = QLabel("")
        self.target_label.setWordWrap(True)
        top.addWidget(self.target_label, 1)
        layout.addLayout(top)

        palette = QGroupBox("Class (keys 1/2/3, 0 erases)")
        palette.setToolTip(SHORTCUTS_HELP)
        row = QHBoxLayout(palette)
        self.class_group = QButtonGroup(self)
        self.class_buttons: dict[int, QPushButton] = {}
        for cls in CLASSES:
            button = QPushButton(f"{cls.value} {cls.name}")
            button.setToolTip(f"{cls.long_name} (key {cls.value})")
            button.setStyleSheet(f"QPushButton {{ background-color: {cls.color}; color: black; }}"
                                 "QPushButton:checked { border: 3px solid white; font-weight: bold; }")
            self.class_buttons[cls.value] = button
        self.class_buttons[ERASE] = QPushButton("0 Erase")
        self.class_buttons[ERASE].setToolTip("Erase to background (key 0)")
        for value, button in self.class_buttons.items():
            button.setCheckable(True)
            self.class_group.addButton(button, value)
            row.addWidget(button)
        self.class_buttons[self.label].setChecked(True)
        layout.addWidget(palette)

        ops = QGroupBox("Operations (undo: Ctrl+Z)")
        grid = QGridLayout(ops)
        self.first_slice, self.last_slice = QSpinBox(), QSpinBox()
        self.interpolate_button = QPushButton("Interpolate class")
        self.interpolate_button.setToolTip("Shape-based interpolation of the chosen class between the two slices")
        self.here_button = QPushButton("Current slice")
        self.here_button.setToolTip("Set the nearer end to the slice shown")
        grid.addWidget(QLabel("Slices"), 0, 0)
        grid.addWidget(self.first_slice, 0, 1)
        grid.addWidget(self.last_slice, 0, 2)
        grid.addWidget(self.here_button, 0, 3)
        grid.addWidget(self.interpolate_button, 1, 0, 1, 4)
        self.min_ml = QDoubleSpinBox()
        self.min_ml.setRange(0.0, 1000.0)
        self.min_ml.setDecimals(2)
        self.min_ml.setSingleStep(0.1)
        self.min_ml.setValue(0.5)
        self.remove_button = QPushButton("Remove smaller")
        self.remove_button.setToolTip("Clear connected components of each class smaller than this volume")
        grid.addWidget(QLabel("Parts < mL"), 2, 0)
        grid.addWidget(self.min_ml, 2, 1)
        grid.addWidget(self.remove_button, 2, 2, 1, 2)
        self.fill_mode = QComboBox()
        self.fill_mode.addItems(["per slice", "3D"])
        self.fill_button = QPushButton("Fill holes")
        self.fill_button.setToolTip("Fill background enclosed by the tumour with the nearest tumour class")
        grid.addWidget(QLabel("Holes"), 3, 0)
        grid.addWidget(self.fill_mode, 3, 1)
        grid.addWidget(self.fill_button, 3, 2, 1, 2)
        self.grow_button, self.shrink_button = QPushButton("Grow class +1"), QPushButton("Shrink class -1")
        self.largest_button = QPushButton("Keep largest")
        self.largest_button.setToolTip("Keep only the largest connected tumour component")
        grid.addWidget(self.grow_button, 4, 0, 1, 2)
        grid.addWidget(self.shrink_button, 4, 2)
        grid.addWidget(self.largest_button, 4, 3)
        layout.addWidget(ops)

        self.volumes_label = QLabel("")
        layout.addWidget(self.volumes_label)
        save_row = QFormLayout()
        self.convention_combo = QComboBox()
        save_row.addRow("Save labels as", self.convention_combo)
        layout.addLayout(save_row)
        self.save_button = QPushButton("Save…")
        layout.addWidget(self.save_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._op_buttons = (self.interpolate_button, self.here_button, self.remove_button, self.fill_button,
                            self.grow_button, self.shrink_button, self.largest_button, self.save_button)

        self.edit_button.clicked.connect(self.edit_copy)
        self.class_group.idClicked.connect(self.choose_class)
        self.here_button.clicked.connect(self._set_current_slice)
        self.interpolate_button.clicked.connect(self.interpolate)
        self.remove_button.clicked.connect(lambda: self.apply(correction.remove_small_components, self.min_ml.value(),
                                                              self.spacing, what="remove small components"))
        self.fill_button.clicked.connect(lambda: self.apply(correction.fill_holes, None,
                                                            self.fill_mode.currentText() == "per slice", what="fill holes"))
        self.grow_button.clicked.connect(lambda: self.apply(correction.grow_class, self.label, 1, what="grow"))
        self.shrink_button.clicked.connect(lambda: self.apply(correction.shrink_class, self.label, 1, what="shrink"))
        self.largest_button.clicked.connect(lambda: self.apply(correction.keep_largest_component, what="keep largest"))
        self.save_button.clicked.connect(lambda: self.save())
        self.viewer.layers.selection.events.active.connect(self._on_active)
        install_close_guard(self.viewer)
        self._on_active()

    # ----------------------------------------------------------------- target layer
    @property
    def layer(self):
        """The edited mask the widget works on: the active layer when it is an edited copy."""
        active = self.viewer.layers.selection.active
        return active if is_edited(active) else None

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.layer.scale)

    def _on_active(self, *_) -> None:
        layer = self.layer
        for button in self._op_buttons:
            button.setEnabled(layer is not None)
        self.convention_combo.clear()
        if layer is None:
            self.target_label.setText("Select a labels layer and press Edit a copy.")
            self.volumes_label.setText("")
            return
        self.target_label.setText(f"Editing: {layer.name}")
        own = lightseg_metadata(layer.metadata).get("convention") or DEFAULT_CONVENTION
        self.convention_combo.addItem(f"study default ({own})", own)
        for name in CONVENTIONS:
            self.convention_combo.addItem(name, name)
        for spin in (self.first_slice, self.last_slice):
            spin.setRange(0, layer.data.shape[0] - 1)
        self._watch(layer)
        self.refresh_volumes()

    def _watch(self, layer) -> None:
        """Volumes follow paint strokes, data changes and undo/redo (which only refresh the layer)."""
        if id(layer) in self._watched:
            return
        self._watched.add(id(layer))
        layer.events.paint.connect(lambda _: _set_meta(layer, unsaved=True))
        for event in (layer.events.paint, layer.events.data, layer.events.set_data):
            event.connect(self._schedule_volumes)

    def _schedule_volumes(self, *_) -> None:
        self._volume_timer.start()

    def edit_copy(self):
        """Make (or select) '<name> (edited)' from the selected labels layer; returns it."""
        source = self.viewer.layers.selection.active
        if not isinstance(source, Labels):
            self.status.setText("Select a labels layer first.")
            return None
        if is_edited(source):
            edited = source
        elif source.name + EDITED_SUFFIX in self.viewer.layers:  # never overwrite earlier edits
            edited = self.viewer.layers[source.name + EDITED_SUFFIX]
        else:
            meta = lightseg_metadata(source.metadata)
            geometry = meta.get("geometry") or self._geometry_for(np.shape(source.data))
            if geometry is None:
                self.status.setText(f"{source.name}: no study of its shape is open, so it could not be saved; "
                                    "open the study with napari-lightseg first.")
                return None
            data, kwargs, _ = labels_layer(np.array(source.data, dtype=np.uint8), geometry, source.name + EDITED_SUFFIX,
                                           study=meta.get("study", ""), convention=meta.get("convention"),
                                           extra={**meta, "geometry": geometry, "edited": True, "unsaved": False,
                                                  "edited_from": source.name})
            edited = self.viewer.add_labels(data, **kwargs)
            source.visible = False
            self._bind_keys(edited)
        self.viewer.layers.selection.active = edited
        edited.mode = "paint"
        edited.selected_label = self.label
        current = self.viewer.dims.current_step[0]
        self.first_slice.setValue(current)
        self.last_slice.setValue(current)
        self.status.setText(f"Editing {edited.name}. {SHORTCUTS_HELP}")
        return edited

    def _geometry_for(self, shape: tuple[int, ...]):
        """A mask drawn by hand has no grid: borrow the one of an open study layer of its shape."""
        for layer in self.viewer.layers:
            geometry = lightseg_metadata(layer.metadata).get("geometry")
            if geometry is not None and geometry.display_shape == tuple(shape):
                return geometry
        return None

    def _bind_keys(self, layer) -> None:
        for value in self.class_buttons:
            layer.bind_key(str(value), self._key_handler(value), overwrite=True)

    def _key_handler(self, value: int) -> Callable:
        def handler(_layer) -> None:
            self.choose_class(value)

        handler.__doc__ = f"LightSeg: choose class {value}" if value else "LightSeg: erase"
        return handler

    def choose_class(self, value: int) -> None:
        """Palette button or key: paint with this class (0: erase)."""
        self.class_buttons[value].setChecked(True)
        if value != ERASE:
            self.label = value
        layer = self.layer
        if layer is None:
            return
        if value == ERASE:
            layer.mode = "erase"
        else:
            layer.selected_label = value
            layer.mode = "paint"

    # ----------------------------------------------------------------- operations
    def _set_current_slice(self) -> None:
        current = self.viewer.dims.current_step[0]
        nearer = min((self.first_slice, self.last_slice), key=lambda s: abs(s.value() - current))
        nearer.setValue(current)

    def interpolate(self) -> None:
        self.apply(correction.interpolate_class, self.label, self.first_slice.value(), self.last_slice.value(),
                   self.spacing, what="interpolate")

    def apply(self, operation: Callable, *args, what: str) -> correction.Change | None:
        """Run a pure operation on the edited mask and write it as one undo step; errors go to the status line."""
        layer = self.layer
        if layer is None:
            self.status.setText("Select an edited mask (Edit a copy) first.")
            return None
        try:
            change = correction.apply_to_layer(layer, operation(np.asarray(layer.data), *args))
        except ValueError as exc:
            self.status.setText(f"{what}: {exc}")
            return None
        if change.size:
            _set_meta(layer, unsaved=True)
        self.status.setText(f"{what}: {change.size} voxels changed" + (" (Ctrl+Z undoes)" if change.size else ""))
        self.refresh_volumes()
        return change

    def refresh_volumes(self) -> None:
        layer = self.layer
        if layer is None:
            return
        volumes = class_volumes_ml(np.asarray(layer.data), self.spacing)
        self.volumes_label.setText("   ".join(f"{k} {volumes[k]:.3f}" for k in VOLUME_KEYS) + "  mL")

    # ----------------------------------------------------------------- save
    def save(self, path: str | None = None) -> Path | None:
        """Save in the source grid and the chosen label convention; asks before replacing a file."""
        layer = self.layer
        if layer is None:
            return None
        meta = lightseg_metadata(layer.metadata)
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save corrected mask", str(self._default_path(meta)),
                                                  "NIfTI (*.nii.gz *.nii)",
                                                  options=QFileDialog.Option.DontConfirmOverwrite)
            if not path:
                return None
        target = Path(path) if str(path).lower().endswith((".nii", ".nii.gz")) else Path(f"{path}.nii.gz")
        if target.exists() and QMessageBox.question(
                self, "Replace file?", f"{target} exists. Replace it?") != QMessageBox.StandardButton.Yes:
            self.status.setText("Not saved.")
            return None
        if meta.get("geometry") is None:
            self.status.setText("No source grid known for this mask: open the study with napari-lightseg.")
            return None
        convention = self.convention_combo.currentData() or DEFAULT_CONVENTION
        try:
            # the study's files (its ground truth too) are inputs: never replaced, even after "Replace?"
            inputs = [f for f in layer_source_files(self.viewer.layers) if f != meta.get("saved_path")]
            saved = save_labels(target, np.asarray(layer.data), meta["geometry"], convention, overwrite=True,
                                inputs=inputs)
        except (StudyError, OSError) as exc:
            self.status.setText(f"Not saved: {exc}")
            return None
        _set_meta(layer, unsaved=False, saved_path=str(saved), saved_convention=convention)
        self.status.setText(f"Saved {saved} ({convention})")
        return saved

    def _default_path(self, meta: dict) -> Path:
        """``<study>_seg_corrected.nii.gz`` beside the study's files when they are known (not ``_seg``: the
        ground truth may be there, and it is an input)."""
        sources = [meta.get("saved_path"), meta.get("source")]
        sources += [lightseg_metadata(layer.metadata).get("source") for layer in self.viewer.layers]
        folder = next((Path(s).parent for s in sources if s and Path(str(s).split("[")[0]).exists()), Path.home())
        return folder / f"{meta.get('study') or 'mask'}_seg_corrected.nii.gz"
