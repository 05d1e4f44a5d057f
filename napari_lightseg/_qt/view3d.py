"""3D view: tumour classes over a translucent brain, with a sensible oblique camera."""
from __future__ import annotations

import napari

from ..layers import lightseg_metadata


def show_3d(viewer: napari.Viewer) -> None:
    viewer.dims.ndisplay = 3
    for layer in viewer.layers:
        role = lightseg_metadata(layer.metadata).get("role")
        if role == "image" and layer.visible:
            layer.rendering = "translucent"
            layer.opacity = 0.15
        elif role == "labels":
            layer.opacity = 0.9
    viewer.reset_view()
    viewer.camera.angles = (0.0, -65.0, 120.0)
