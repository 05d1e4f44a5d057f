"""``lightseg view``: napari with the plugin's dock, a study, optionally a model run and a screenshot."""
from __future__ import annotations

from pathlib import Path


def open_viewer(case: str | None = None, sample: bool = False, model: str | None = None, three_d: bool = False,
                screenshot: str | None = None) -> int:
    import napari

    from .. import engine
    from .._reader import read_study
    from .._sample_data import sample_glioma
    from ..layers import sequence_layers, study_from_layers
    from ..models import get_card
    from .segment_widget import SegmentWidget
    from .view3d import show_3d

    viewer = napari.Viewer(title="napari-lightseg", show=screenshot is None)
    layer_data = sample_glioma() if sample or case is None else read_study(case)
    for data, kwargs, kind in layer_data:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    if model:
        card = get_card(model)
        widget.model_combo.setCurrentIndex(widget.model_combo.findData(card.name))
        found = sequence_layers(viewer.layers)
        study = study_from_layers(viewer.layers, {s: names[-1] for s, names in found.items() if names})
        widget._on_result(engine.run(study, card))
    if three_d:
        show_3d(viewer)
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        viewer.window._qt_window.resize(1400, 900)
        viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
        viewer.close()
        print(screenshot)
        return 0
    napari.run()
    return 0
