"""napari layer data for studies and masks (LayerData tuples; no Qt, no viewer).

Every layer the plugin makes carries ``metadata["lightseg"]``, a ``types.LayerMeta``: the study name, the
role (``image``/``labels``), the sequence, the source ``Geometry`` (affine + header + orientation) and
the label convention, so that the writer restores the file's own grid exactly. The builders also record
each grid and source file in ``io.opened`` (what the writer protects, and the grid of a hand-drawn mask).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .display import class_features
from .io import CLASS_COLORS, SEQUENCE_TITLES, SEQUENCES, Geometry, Study, StudyError, role_of
from .io.opened import remember
from .io.outputs import source_file
from .types import Box, LayerMeta

METADATA_KEY = LayerMeta.KEY
AXIS_LABELS = ("I→S", "A→P", "R→L")
GROUND_TRUTH_SUFFIX = "ground truth"
LABELS_OPACITY = 0.7  # one result at a time: strong enough to read the classes, the anatomy still shows

LayerData = tuple[Any, dict[str, Any], str]


def label_colormap() -> dict:
    """Fixed class colours (NCR red, ED green, ET yellow); background and unknown transparent."""
    return {None: "transparent", 0: "transparent", **CLASS_COLORS}


def spatial_kwargs(geometry: Geometry) -> dict[str, Any]:
    """Layer arguments that place data in millimetres on the study's grid, so all layers align."""
    return {"scale": geometry.spacing, "axis_labels": AXIS_LABELS, "units": ("mm", "mm", "mm")}


def image_layer_name(study_name: str, sequence: str) -> str:
    """Layer name that tells the study and the sequence apart in the layer list."""
    return f"{study_name} {SEQUENCE_TITLES[sequence]}"


def image_layers(study: Study) -> list[LayerData]:
    """One grayscale image layer per sequence (FLAIR visible on top, others hidden below it)."""
    layers = []
    for seq in reversed(list(study.images)):  # FLAIR added last: it ends up on top
        data = study.images[seq]
        brain = data[data != 0]
        limits = (float(np.percentile(brain, 0.5)), float(np.percentile(brain, 99.5))) if brain.size else (0.0, 1.0)
        if limits[1] <= limits[0]:
            limits = (limits[0], limits[0] + 1.0)
        source = study.sources.get(seq)
        remember(study.geometry, [source])
        meta = LayerMeta(study.name, "image", sequence=seq, geometry=study.geometry, source=source)
        kwargs = dict(name=image_layer_name(study.name, seq), colormap="gray", contrast_limits=limits,
                      visible=seq == "flair", metadata=meta.layer_metadata(), **spatial_kwargs(study.geometry))
        layers.append((data, kwargs, "image"))
    return layers


def labels_layer(labels: np.ndarray, geometry: Geometry, name: str, *, study: str = "",
                 convention: str | None = None, extra: dict[str, Any] | None = None) -> LayerData:
    """A Labels layer of internal classes with the class colours and the study's grid.

    ``extra``: further metadata (``source``, ``model`` and any helper's keys), read through ``LayerMeta``."""
    meta = LayerMeta.from_dict({"study": study, "role": "labels", "geometry": geometry, "convention": convention,
                                **(extra or {})})
    remember(geometry, [meta.source])
    kwargs = dict(name=name, colormap=label_colormap(), opacity=LABELS_OPACITY, features=class_features(),
                  metadata=meta.layer_metadata(), **spatial_kwargs(geometry))
    return (np.asarray(labels, dtype=np.uint8), kwargs, "labels")


def is_result_layer(layer) -> bool:
    """A tumour mask the user looks at: a model result, the ground truth, a loaded or hand-drawn mask."""
    return getattr(layer, "_type_string", "") == "labels"


def study_layers(study: Study) -> list[LayerData]:
    """All layers a study opens with: its images, plus its ground-truth labels when it has them."""
    layers = image_layers(study)
    if study.labels is not None:
        layers.append(labels_layer(study.labels, study.geometry, f"{study.name} {GROUND_TRUTH_SUFFIX}",
                                   study=study.name, convention=study.convention,
                                   extra={"source": str(study.files.segmentation) if study.files else None}))
    return layers


def layer_meta(layer_metadata: dict | None) -> LayerMeta:
    """The plugin's metadata of a layer, typed (empty for layers made elsewhere)."""
    return LayerMeta.of_layer(layer_metadata)


def lightseg_metadata(layer_metadata: dict) -> dict:
    """The plugin's metadata of a layer as a flat dict ({} for layers made elsewhere): ``layer_meta().to_dict()``
    for code that reads helper keys; typed code uses ``layer_meta``."""
    stored = layer_metadata.get(METADATA_KEY)
    return LayerMeta.from_dict(stored).to_dict() if stored else {}


def layer_source_files(layers) -> list[str]:
    """Source files of the plugin's layers among ``layers`` (a viewer's layer list): inputs never to write."""
    files = [source_file(layer_meta(layer.metadata).source) for layer in layers]
    return [f for f in files if f]


def corrected_mask_path(meta: dict, layers) -> Path:
    """Where a corrected mask is saved by default: ``<study>_seg_corrected.nii.gz`` beside the study's files
    when they are known (not ``_seg``: the ground truth may be there, and it is an input), else in home."""
    sources = [meta.get("saved_path"), meta.get("source")]
    sources += [lightseg_metadata(layer.metadata).get("source") for layer in layers]
    folder = next((Path(s).parent for s in sources if s and Path(str(s).split("[")[0]).exists()), Path.home())
    return folder / f"{meta.get('study') or 'mask'}_seg_corrected.nii.gz"


def geometry_for_shape(layers, shape: tuple[int, ...]) -> Geometry | None:
    """The source grid of the first layer (of ``layers``) whose study grid has this display shape, or None.

    Why: a mask drawn by hand has no grid of its own; it borrows the one of the open study it was drawn on.
    """
    for layer in layers:
        geometry = layer_meta(layer.metadata).geometry
        if geometry is not None and geometry.display_shape == tuple(shape):
            return geometry
    return None


def box_shapes(boxes: list[Box]) -> list[np.ndarray]:
    """A rectangle on every slice each 3D box spans (inclusive display indices), so the box shows
    while scrolling through slices in 2D."""
    data = []
    for (z0, y0, x0), (z1, y1, x1) in boxes:
        corners = [(y0, x0), (y0, x1 + 1), (y1 + 1, x1 + 1), (y1 + 1, x0)]
        data += [np.array([(z, y, x) for y, x in corners], dtype=float) for z in range(z0, z1 + 1)]
    return data


def box_outlines(boxes: list[Box]) -> list[np.ndarray]:
    """The 12 edges of each 3D box, as lines: the outline for the 3D view."""
    lines = []
    for lo, hi in boxes:
        low, high = np.array(lo, float), np.array(hi, float) + (0, 1, 1)
        corners = [np.where([i & 4, i & 2, i & 1], high, low) for i in range(8)]
        lines += [np.array([corners[a], corners[b]]) for a in range(8) for b in range(a + 1, 8)
                  if bin(a ^ b).count("1") == 1]
    return lines


def boxes_layers(boxes: list[Box], geometry: Geometry, name: str,
                 color: str = "cyan", slice_rectangles: list[np.ndarray] | None = None) -> list[LayerData]:
    """Two Shapes layers: per-slice rectangles (``role: boxes``, for 2D; by default every slice of
    each box) and 3D outlines (``role: box-outlines``, hidden until the 3D view)."""
    common = dict(edge_color=color, face_color="transparent", edge_width=1.5, ndim=3, **spatial_kwargs(geometry))
    rectangles = box_shapes(boxes) if slice_rectangles is None else slice_rectangles
    return [
        (rectangles, dict(name=name, shape_type="rectangle", metadata=LayerMeta(role="boxes", geometry=geometry).layer_metadata(),
                          **common), "shapes"),
        (box_outlines(boxes), dict(name=f"{name} 3D", shape_type="line", visible=False,
                                   metadata=LayerMeta(role="box-outlines", geometry=geometry).layer_metadata(), **common), "shapes"),
    ]


def sequence_layers(layers) -> dict[str, list[str]]:
    """For each sequence, the names of image layers that hold it (the plugin's own tag first)."""
    found: dict[str, list[str]] = {s: [] for s in SEQUENCES}
    for layer in layers:
        if getattr(layer, "_type_string", "") != "image" or np.ndim(layer.data) != 3:
            continue
        seq = layer_meta(layer.metadata).sequence or role_of(layer.name + ".nii")
        if seq in found:
            found[seq].append(layer.name)
    return found


def study_from_layers(layers, chosen: dict[str, str]) -> Study:
    """A Study built from image layers chosen per sequence (names); they must share one grid."""
    images, geometry, name = {}, None, ""
    for seq, layer_name in chosen.items():
        if not layer_name:
            continue
        layer = layers[layer_name]
        info = layer_meta(layer.metadata)
        if geometry is None:
            geometry, name = info.geometry, info.study or layer_name
        images[seq] = np.asarray(layer.data, dtype=np.float32)
    shapes = {a.shape for a in images.values()}
    if len(shapes) > 1:
        raise StudyError(f"chosen layers differ in shape: {sorted(shapes)}")
    if geometry is None:
        raise StudyError("the chosen layers were not opened with napari-lightseg: no source grid (affine) known")
    return Study(name, images, geometry)


def grid_mismatch(reference, masks: list) -> str | None:
    """Why ``masks`` (layers) cannot be compared voxel by voxel with ``reference``: another shape or
    another source grid (affine). None when they can: a mask from elsewhere must not score Dice 0."""
    ref_shape, ref_geometry = np.shape(reference.data), layer_meta(reference.metadata).geometry
    for mask in masks:
        if np.shape(mask.data) != ref_shape:
            return f"{mask.name}: shape {np.shape(mask.data)} differs from {reference.name}'s {ref_shape}; not compared"
        geometry = layer_meta(mask.metadata).geometry
        if ref_geometry is not None and geometry is not None and not geometry.same_grid(ref_geometry):
            return (f"{mask.name}: on another grid than {reference.name} "
                    f"({geometry.describe_difference(ref_geometry)}); not compared")
    return None


def clinical_study_layers(study: Study, inputs: list[str], series_table: list[dict[str, Any]], *,
                          dicom_folder: str | None = None) -> list[LayerData]:
    """Layers of a study opened through the clinical path (a DICOM folder, or NIfTI files on different
    grids). Image layers also carry the inputs, the series table (every series found,
    ``SeriesInfo.as_row()``; for NIfTI one row per file) and which series each sequence uses, so the
    segment widget can show the table and re-open the study with registration and brain extraction."""
    assigned = {seq: record.volume.series_uid or record.volume.source for seq, record in study.alignment.items()}
    extra: dict[str, Any] = dict(clinical_inputs=list(inputs), series_table=series_table, series_assigned=assigned,
                                 reference=study.reference,
                                 aligned="registered" if any(r.registered for r in study.alignment.values()) else "scanner coordinates")
    if dicom_folder is not None:
        extra["dicom_folder"] = str(dicom_folder)
    remember(study.geometry, inputs)
    layers = study_layers(study)
    for _, kwargs, kind in layers:
        if kind == "image":
            meta = LayerMeta.of_layer(kwargs["metadata"])
            meta.extra.update(extra)
            kwargs["metadata"] = meta.layer_metadata()
    return layers
