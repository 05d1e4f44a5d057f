"""3D view that shows the core: per-class surfaces of the focused result inside a translucent edema,
a faint brain shell for context, the axes as an orientation cue, and a camera from the front.

A single Labels layer rendered in 3D shows only its outer shell (edema) and hides the enhancing rim
and necrosis; separate surfaces with class opacities let the eye see through the edema.
"""
from __future__ import annotations

import napari
import numpy as np

from ..display import brain_surface, class_surfaces
from ..layers import METADATA_KEY, lightseg_metadata, sequence_layers
from .results import focused_result, result_layers, update_orientation_markers

SURFACE_ROLE = "surface-3d"
CLASS_OPACITY = {"NCR": 1.0, "ET": 1.0, "ED": 0.25}  # see the core through the edema
BRAIN_OPACITY = 0.12
# Standard views in display axes (0 inferior->superior, 1 anterior->posterior, 2 right->left):
# (view direction, up direction) in napari's scene. "anterior": looking at the face, the patient's right
# on the left (checked on the screenshot: the R->L axis points right, I->S up). Add views the same way.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0)),
}
DEFAULT_VIEW = "anterior"
VIEW_NOTES = {"anterior": "3D seen from the front: patient's R on the screen's left, superior up"}


def _remove_surfaces(viewer: napari.Viewer) -> None:
    for layer in [layer for layer in viewer.layers if lightseg_metadata(layer.metadata).get("role") == SURFACE_ROLE]:
        viewer.layers.remove(layer)


def _brain_image(viewer: napari.Viewer):
    found = sequence_layers(viewer.layers)
    names = found["flair"] or [n for seq in found.values() for n in seq]
    return viewer.layers[names[-1]] if names else None


def set_camera_view(viewer: napari.Viewer, view: str = DEFAULT_VIEW) -> None:
    direction, up = VIEWS[view]
    viewer.camera.set_view_direction(direction, up)


def show_3d(viewer: napari.Viewer, view: str = DEFAULT_VIEW, boxes: bool = False) -> list[str]:
    """Switch to 3D on the focused result; returns the names of the surface layers added."""
    result = focused_result(viewer)
    image = _brain_image(viewer)
    _remove_surfaces(viewer)
    viewer.dims.ndisplay = 3
    for layer in result_layers(viewer):
        layer.visible = False  # the surfaces stand in for the focused mask
    for layer in viewer.layers:
        role = lightseg_metadata(layer.metadata).get("role")
        if role in ("image", "boxes"):
            layer.visible = False
        elif role == "box-outlines":
            layer.visible = boxes and result is not None and layer.name.startswith(f"{result.name} ")
    added = []
    if result is not None:
        surfaces = sorted(class_surfaces(np.asarray(result.data)), key=lambda s: CLASS_OPACITY[s.name] < 1)  # opaque first
        for surface in surfaces:
            name = f"{result.name} 3D {surface.name}"
            viewer.add_surface((surface.vertices, surface.faces, np.ones(len(surface.vertices), np.float32)), name=name,
                               colormap=_single_colour(surface.color), opacity=CLASS_OPACITY[surface.name],
                               blending="translucent" if CLASS_OPACITY[surface.name] < 1 else "opaque",
                               scale=result.scale, translate=result.translate, units=result.units, shading="smooth",
                               metadata={METADATA_KEY: {"role": SURFACE_ROLE, "class": surface.name}})
            added.append(name)
    if image is not None:
        shell = brain_surface(np.asarray(image.data))
        if shell is not None:
            viewer.add_surface(shell, name="brain 3D", colormap="gray", opacity=BRAIN_OPACITY, blending="translucent_no_depth",
                               scale=image.scale, translate=image.translate, units=image.units, shading="smooth",
                               metadata={METADATA_KEY: {"role": SURFACE_ROLE}})
            added.append("brain 3D")
    if result is not None:
        viewer.layers.selection.active = result  # hidden but selected: 2D comes back to it
    viewer.axes.visible = True
    viewer.axes.colored = True
    viewer.reset_view()
    set_camera_view(viewer, view)
    viewer.text_overlay.text = VIEW_NOTES[view]  # the cue in words, as the axes can leave the view when zooming
    viewer.text_overlay.visible = True
    return added


def show_2d(viewer: napari.Viewer) -> None:
    """Back to slices: the focused result and the FLAIR again, surfaces removed."""
    result = focused_result(viewer)
    if result is None:
        shown = [layer for layer in viewer.layers if lightseg_metadata(layer.metadata).get("role") == SURFACE_ROLE and layer.visible]
        name = shown[-1].name.split(" 3D ")[0] if shown else None
        result = viewer.layers[name] if name and name in viewer.layers else None
    _remove_surfaces(viewer)
    viewer.dims.ndisplay = 2
    viewer.axes.visible = False
    image = _brain_image(viewer)
    if image is not None:
        image.visible = True
    for layer in viewer.layers:
        if lightseg_metadata(layer.metadata).get("role") == "box-outlines":
            layer.visible = False
    if result is not None:
        result.visible = True
    viewer.reset_view()
    update_orientation_markers(viewer)


def _single_colour(color: str):
    from napari.utils.colormaps import Colormap

    return Colormap([color, color], name=f"lightseg {color}")
