"""npe2 labels writer hook: a tumour mask back into its source file's grid, voxel order and affine.

Only the thin hook lives here; saving itself is ``io.save_segmentation`` (used by the CLI, cohorts and widgets).
The hook reads everything it needs from the layer it is handed, never from the viewer: the grid and
label convention from the layer's metadata (``types.LayerMeta``), and, for a mask drawn by hand without
that metadata, the grid of the study of its shape opened in this session (``io.opened``).
Never silently overwrites: an existing file is kept as ``<name>.bak<N>.nii.gz`` and a warning says so
(napari's Save dialog has already asked). Never writes onto an input: the layer's own source file and
every file the plugin opened in this session are refused (``io.outputs``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .io import Segmentation, save_segmentation
from .io.opened import grid_for_shape, opened_inputs
from .io.outputs import source_file
from .types import LayerMeta


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """napari's writer hook: ``meta`` is the layer's state (its ``metadata`` among it)."""
    info = LayerMeta.of_layer(meta.get("metadata"))
    geometry = info.geometry or grid_for_shape(np.shape(data))
    inputs = [source_file(info.source), *opened_inputs()]
    segmentation = Segmentation(np.asarray(data), geometry, info.convention, info.model or "")
    return [str(save_segmentation(path, segmentation, keep_existing=True, inputs=inputs))]
