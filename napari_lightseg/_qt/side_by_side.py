"""Side-by-side grid: each mask over its own copy of the study image, one tile per mask, titled with
its name (napari's per-layer name overlay), the whole brain in every tile."""
from __future__ import annotations

import napari

from ..compare import interleave_for_grid
from ..io import SEQUENCE_TITLES
from ..layers import METADATA_KEY, lightseg_metadata
from .results import go_to_tumour

HELPER_ROLE = "side_by_side"
SavedView = tuple[list[str], dict[str, bool]]


def enter_side_by_side(viewer: napari.Viewer, image, masks: list[str]) -> SavedView:
    """Switch the canvas to a grid of (image copy, mask) pairs; returns the view to restore later."""
    layers = viewer.layers
    saved = ([layer.name for layer in layers], {layer.name: layer.visible for layer in layers})
    title = SEQUENCE_TITLES.get(str(lightseg_metadata(image.metadata).get("sequence")), "image")
    helper_of = {m: f"{m} | {title}" for m in masks}
    for name in helper_of.values():
        if name not in layers:
            viewer.add_image(image.data, name=name, colormap=image.colormap, contrast_limits=image.contrast_limits,
                             scale=image.scale, units=image.units, axis_labels=image.axis_labels,
                             metadata={METADATA_KEY: {"role": HELPER_ROLE}})
    order = interleave_for_grid(masks, helper_of)
    for i, name in enumerate(order):
        layers.move(layers.index(name), i)
    for layer in layers:
        layer.visible = layer.name in order
    for mask in masks:
        overlay = layers[mask].name_overlay  # the tile's title: the model's (mask's) name
        overlay.visible, overlay.font_size, overlay.color = True, 12, "white"
    grid = viewer.canvas.grid
    grid.stride = 2
    grid.spacing = 0.05
    grid.enabled = True
    viewer.reset_view()  # fit the whole brain in each tile
    go_to_tumour(viewer, layers[masks[0]])
    return saved


def leave_side_by_side(viewer: napari.Viewer, saved: SavedView | None) -> None:
    layers = viewer.layers
    viewer.canvas.grid.enabled = False
    for helper in [layer for layer in layers if lightseg_metadata(layer.metadata).get("role") == HELPER_ROLE]:
        layers.remove(helper)
    for layer in layers:
        layer.name_overlay.visible = False
    if saved is not None:
        order, visible = saved
        for i, name in enumerate(n for n in order if n in layers):
            layers.move(layers.index(name), i)
        for layer in layers:
            layer.visible = visible.get(layer.name, layer.visible)
    viewer.reset_view()
