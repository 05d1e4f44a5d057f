"""Dock widget: correct a tumour mask by hand on an editable copy, with undoable operations and Save.

Every operation is an array function of ``correction``, run in a worker thread (``worker.TaskRunner``) on a
snapshot of the mask and written back on the GUI thread through ``layer_edits.apply_if_unchanged``, so
napari's own Ctrl+Z / Ctrl+Shift+Z undo and redo it as one step (and paint made meanwhile is never lost).
Volumes follow the layer live. Unsaved edits make napari ask before its window closes (``LIGHTSEG_NO_CLOSE_PROMPT=1`` turns the question off, e.g. in tests).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from .. import correction
from ..io import CLASSES, CONVENTIONS, DEFAULT_CONVENTION, Segmentation, StudyError, save_segmentation
from ..layers import corrected_mask_path, geometry_for_shape, labels_layer, layer_source_files, lightseg_metadata
from ..metrics import class_volumes_ml
from ..progress import cancellable_call
from .close_guard import _CloseGuard, close_prompt_enabled, install_close_guard, is_edited, unsaved_layers
from .common import nifti_target, replace_confirmed, scrolling_body
from .correction_controls import ERASE, SHORTCUTS_HELP, ClassPalette, OperationsBox
from .layer_edits import apply_if_unchanged
from .layer_edits import set_meta as _set_meta
from .worker import TaskRunner

__all__ = ["CorrectionWidget", "_CloseGuard", "close_prompt_enabled", "is_edited", "unsaved_layers"]

EDITED_SUFFIX = " (edited)"
VOLUME_KEYS = ("NCR", "ED", "ET", "WT", "TC")


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

        self.palette = ClassPalette()
        self.class_buttons = self.palette.buttons
        layout.addWidget(self.palette)
        self.ops = ops = OperationsBox()
        self.first_slice, self.last_slice, self.min_ml, self.fill_mode = ops.first_slice, ops.last_slice, ops.min_ml, ops.fill_mode
        self.interpolate_button, self.remove_button, self.fill_button = ops.interpolate_button, ops.remove_button, ops.fill_button
        self.grow_button, self.shrink_button, self.largest_button = ops.grow_button, ops.shrink_button, ops.largest_button
        layout.addWidget(ops)

        self.volumes_label = QLabel("")
        self.volumes_label.setWordWrap(True)
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
        self._op_buttons = (*ops.buttons(), self.save_button)
        self.cancel_button, self.progress = ops.cancel_button, ops.progress
        self.runner = TaskRunner(self.status, ops.progress, self._op_buttons, ops.cancel_button, parent=self)
        self.runner.ended.connect(self._enable_ops)

        self.edit_button.clicked.connect(self.edit_copy)
        self.palette.chosen.connect(self.choose_class)
        ops.here_button.clicked.connect(lambda: ops.set_nearer_end(self.viewer.dims.current_step[0]))
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

    def _enable_ops(self) -> None:
        for button in self._op_buttons:  # an operation's end brings them back (TaskRunner.ended)
            button.setEnabled(self.layer is not None and not self.runner.running)

    def _on_active(self, *_) -> None:
        layer = self.layer
        self._enable_ops()
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
        self.ops.set_slice_count(layer.data.shape[0])
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
            geometry = meta.get("geometry") or geometry_for_shape(self.viewer.layers, np.shape(source.data))
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
            self.palette.bind_keys(edited)
        self.viewer.layers.selection.active = edited
        edited.mode = "paint"
        edited.selected_label = self.label
        self.ops.set_both_ends(self.viewer.dims.current_step[0])
        self.status.setText(f"Editing {edited.name}. {SHORTCUTS_HELP}")
        return edited

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
    def interpolate(self) -> None:
        self.apply(correction.interpolate_class, self.label, self.first_slice.value(), self.last_slice.value(),
                   self.spacing, what="interpolate")

    def apply(self, operation: Callable, *args, what: str):
        """Run a pure operation on a snapshot of the edited mask in a worker; returns the worker (None if none).

        The result is written on the GUI thread as one undo step, unless the layer changed meanwhile."""
        layer = self.layer
        if layer is None:
            self.status.setText("Select an edited mask (Edit a copy) first.")
            return None
        snapshot = np.array(layer.data, copy=True)
        snapshot.flags.writeable = False  # the worker reads it; the check on return compares with it
        return self.runner.start(what, cancellable_call, lambda new: self._applied(layer, snapshot, new, what),
                                 operation, snapshot, *args)

    def _applied(self, layer, snapshot: np.ndarray, new_data: np.ndarray, what: str) -> None:
        cancelled = self.runner.cancel_event.is_set()  # pressed after the work returned: still drop it
        self.status.setText(f"{what}: cancelled." if cancelled else
                            apply_if_unchanged(self.viewer.layers, layer, snapshot, new_data, what))
        self.refresh_volumes()

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
        target = nifti_target(self, "Save corrected mask", corrected_mask_path(meta, self.viewer.layers), path)
        if target is None:
            return None
        if not replace_confirmed(self, target):
            self.status.setText("Not saved.")
            return None
        if meta.get("geometry") is None:
            self.status.setText("No source grid known for this mask: open the study with napari-lightseg.")
            return None
        convention = self.convention_combo.currentData() or DEFAULT_CONVENTION
        try:
            # the study's files (its ground truth too) are inputs: never replaced, even after "Replace?"
            inputs = [f for f in layer_source_files(self.viewer.layers) if f != meta.get("saved_path")]
            mask = Segmentation(np.asarray(layer.data), meta["geometry"], meta.get("convention"), str(meta.get("model") or ""))
            saved = save_segmentation(target, mask, convention, overwrite=True, inputs=inputs)  # the chosen convention wins
        except (StudyError, OSError) as exc:
            self.status.setText(f"Not saved: {exc}")
            return None
        _set_meta(layer, unsaved=False, saved_path=str(saved), saved_convention=convention)
        self.status.setText(f"Saved {saved} ({convention})")
        return saved
