"""Writes into napari layers on behalf of the correction widget (no Qt widgets here, but napari layers:
so this lives on the viewer side, and ``correction`` keeps only array operations).

``apply_to_layer`` writes only the changed voxels into a Labels layer through ``Labels.data_setitem``,
which napari records as ONE item of the layer's undo history: Ctrl+Z undoes a whole operation and redo
re-applies it. ``apply_if_unchanged`` does the same for a result computed in a worker thread on a
snapshot, and only when the layer is still open and still holds that snapshot (never over the user's paint).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..correction import Change, diff
from ..layers import METADATA_KEY


def apply_to_layer(layer: Any, new_data: np.ndarray) -> Change:
    """Write ``new_data`` into a napari Labels layer as one undoable step; only changed voxels are written.

    Nothing is recorded when nothing changed. Returns the change (``.size`` voxels).
    """
    change = diff(np.asarray(layer.data), new_data)
    if change.size:
        with layer.block_history():  # one history item, even if napari splits the write internally
            layer.data_setitem(change.indices, change.new.astype(layer.data.dtype, copy=False))
    return change


def apply_if_unchanged(layers: Any, layer: Any, snapshot: np.ndarray, new_data: np.ndarray, what: str) -> str:
    """Write ``new_data`` (computed from ``snapshot``) as one undo step if ``layer`` is open and unchanged.

    Returns the status line. A layer closed, or painted / undone / replaced while the work ran, is left
    alone: its user's edits win over a result computed from older data.
    """
    if layer not in layers:
        return f"{what}: not applied, {layer.name} was closed while it ran."
    current = np.asarray(layer.data)
    if current.shape != snapshot.shape or not np.array_equal(current, snapshot):
        return f"{what}: not applied, {layer.name} changed while it ran (your edits are kept); run it again."
    change = apply_to_layer(layer, new_data)
    if change.size:
        set_meta(layer, unsaved=True)
    return f"{what}: {change.size} voxels changed" + (" (Ctrl+Z undoes)" if change.size else "")


def set_meta(layer: Any, **values: Any) -> None:
    """Update the plugin's metadata of a layer in place (``lightseg_metadata`` returns a copy)."""
    layer.metadata.setdefault(METADATA_KEY, {}).update(values)
