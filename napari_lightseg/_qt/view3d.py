"""3D view: tumour classes over a translucent brain, box outlines instead of per-slice rectangles."""
from __future__ import annotations

import napari

from ..layers import lightseg_metadata

CAMERA_ANGLES = (-20.0, 30.0, 100.0)  # oblique, from above and in front


def show_3d(viewer: napari.Viewer) -> None:
    viewer.dims.ndisplay = 3
    for layer in viewer.layers:
        role = lightseg_metadata(layer.metadata).get("role")
        if role == "image" and layer.visible:
            layer.rendering = "mip"
            layer.blending = "additive"
            layer.opacity = 0.35
        elif role == "labels":
            layer.blending = "translucent_no_depth"
            layer.opacity = 0.9
        elif role == "boxes":
            layer.visible = False
        elif role == "box-outlines":
            layer.visible = True
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    camera.angles = CAMERA_ANGLES
