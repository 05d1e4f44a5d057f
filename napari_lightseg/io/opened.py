"""What this process opened through the plugin: input files that must never be written, and study grids.

Why: napari's writer hook is handed one layer (its data and state), not the viewer, and a hook that
reached for ``napari.current_viewer()`` would depend on a global GUI object (and see nothing in a
script or a test). The plugin's layer builders (``layers``) record here each file they read and each
grid they place a layer on; the writer then protects every file opened in this session, and a mask
drawn by hand in napari (a Labels layer without the plugin's metadata) can borrow the grid of the
study of its shape. Pure Python, thread-safe (readers run in worker threads).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from .naming import StudyError
from .nifti import Geometry
from .outputs import source_file

MAX_GRIDS = 64  # recent grids kept; older ones are forgotten (a session rarely opens more studies)

_lock = threading.Lock()
_inputs: dict[str, None] = {}  # insertion-ordered set
_grids: list[Geometry] = []


def remember(geometry: Geometry | None = None, sources: Iterable[str | Path | None] = ()) -> None:
    """Record a grid a layer was placed on and the files it was read from."""
    with _lock:
        for source in sources:
            file = source_file(source)  # a 4D file's volume "<file>[i]" protects the file
            if file:
                _inputs[file] = None
        if geometry is not None:
            for i, known in enumerate(_grids):
                if known is geometry:
                    del _grids[i]
                    break
            _grids.append(geometry)
            del _grids[:-MAX_GRIDS]


def opened_inputs() -> list[str]:
    """Every file opened through the plugin in this process: never an output."""
    with _lock:
        return list(_inputs)


def grid_for_shape(shape: tuple[int, ...]) -> Geometry:
    """The grid of a mask without metadata: the most recently opened grid of that display shape.

    Refuses when opened grids of that shape differ (two studies of one size): guessing would put the
    mask on the wrong affine without a word.
    """
    shape = tuple(int(n) for n in shape)
    with _lock:
        matching = [g for g in _grids if g.display_shape == shape]
    if not matching:
        raise StudyError(f"labels of shape {shape} have no source grid: open the study with napari-lightseg first")
    latest = matching[-1]
    if any(not g.same_grid(latest) for g in matching[:-1]):
        raise StudyError(f"labels of shape {shape} have no source grid of their own, and studies on different grids "
                         "of that shape are open: make the mask from a study layer (e.g. in Correct segmentation)")
    return latest


def forget() -> None:
    """Clear the record (tests; a fresh session)."""
    with _lock:
        _inputs.clear()
        _grids.clear()
