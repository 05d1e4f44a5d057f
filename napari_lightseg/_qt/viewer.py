"""``lightseg view``: napari with the plugin's dock, a study, optionally a model run and a screenshot.

Opens large (most of the screen) on the tumour's central axial slice, so the first picture a new
user sees has the tumour in it, with the legend and the orientation letters.
"""
from __future__ import annotations

from pathlib import Path

WINDOW_FRACTION = 0.9  # of the available screen
SCREENSHOT_SIZE = (1600, 1000)


def open_viewer(case: str | None = None, sample: bool = False, model: str | None = None, three_d: bool = False,
                screenshot: str | None = None) -> int:
    import napari

    from .. import engine
    from .._reader import prefer_for_case_folders, prefer_lightseg_reader, read_study
    from .._sample_data import sample_glioma
    from ..layers import sequence_layers, study_from_layers
    from ..models import get_card
    from .results import go_to_tumour
    from .segment_widget import SegmentWidget

    viewer = napari.Viewer(title="napari-lightseg", show=screenshot is None)
    layer_data = sample_glioma() if sample or case is None else read_study(case)
    for data, kwargs, kind in layer_data:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    if screenshot is None:
        prefer_lightseg_reader()
        if case and Path(case).is_dir():
            prefer_for_case_folders(Path(case).parent)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    size_window(viewer, SCREENSHOT_SIZE if screenshot else None)
    go_to_tumour(viewer)
    if model:
        card = get_card(model)
        widget.model_combo.setCurrentIndex(widget.model_combo.findData(card.name))
        found = sequence_layers(viewer.layers)
        study = study_from_layers(viewer.layers, {s: names[-1] for s, names in found.items() if names})
        widget._on_result(engine.run(study, card))
    if three_d:
        widget.view3d_button.setChecked(True)
    if screenshot:
        save_screenshot(viewer, screenshot)
        viewer.close()
        print(screenshot)
        return 0
    napari.run()
    return 0


def size_window(viewer, size: tuple[int, int] | None = None) -> None:
    """A large window: ``size`` if given (screenshots), else most of the screen."""
    window = viewer.window._qt_window
    if size is None:
        screen = window.screen().availableGeometry()
        size = (int(screen.width() * WINDOW_FRACTION), int(screen.height() * WINDOW_FRACTION))
    window.resize(*size)


def save_screenshot(viewer, path: str | Path, canvas_only: bool = False) -> Path:
    """The whole window (or the canvas) as PNG, written to a temporary file first, then renamed."""
    import os
    import tempfile

    from qtpy.QtWidgets import QApplication

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    QApplication.processEvents()
    fd, tmp = tempfile.mkstemp(prefix=".lightseg-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        viewer.screenshot(tmp, canvas_only=canvas_only, flash=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a screenshot is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
