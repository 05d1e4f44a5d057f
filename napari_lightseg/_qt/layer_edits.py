"""Writes into napari layers on behalf of the correction widget (no Qt widgets here, but napari layers:
so this lives on the viewer side, and ``correction`` keeps only array operations).

``apply_to_layer`` writes only the changed voxels into a Labels layer through ``Labels.data_setitem``,
which napari records as ONE item of the layer's undo history: Ctrl+Z undoes a whole operation and redo
re-applies it.
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


def set_meta(layer: Any, **values: Any) -> None:
    """Update the plugin's metadata of a layer in place (``lightseg_metadata`` returns a copy)."""
    layer.metadata.setdefault(METADATA_KEY, {}).update(values)
