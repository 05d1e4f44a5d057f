"""Regenerate the README screenshots from the synthetic sample (run under a display or xvfb-run):

    PYTHONPATH=. python docs/make_screenshots.py [--model dsc-unet-int8] [--out docs]

sample-2d.png       the segment dock after a run: legend, orientation letters, the tumour's central slice
sample-3d.png       the 3D view: ET and NCR surfaces inside a translucent edema, axes, seen from the front
sample-compare.png  the compare dock: ground truth and two models side by side, titled, metrics table
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def _wait(viewer, until, timeout_s: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("screenshot step did not finish")
        QApplication.processEvents()
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dsc-unet-int8")
    parser.add_argument("--second-model", default="unet-int8")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args(argv)
    out = Path(args.out)

    import napari

    from napari_lightseg._qt.compare_widget import CompareWidget
    from napari_lightseg._qt.results import go_to_tumour
    from napari_lightseg._qt.segment_widget import SegmentWidget
    from napari_lightseg._qt.viewer import SCREENSHOT_SIZE, save_screenshot, size_window
    from napari_lightseg._sample_data import sample_glioma

    viewer = napari.Viewer(title="napari-lightseg")
    for data, kwargs, kind in sample_glioma():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment tumour", area="right")
    size_window(viewer, SCREENSHOT_SIZE)
    go_to_tumour(viewer)

    segment.model_combo.setCurrentIndex(segment.model_combo.findData(args.model))
    segment.run()
    _wait(viewer, lambda: not segment.runner.running)
    print(save_screenshot(viewer, out / "sample-2d.png"))

    segment.view3d_button.setChecked(True)
    print(save_screenshot(viewer, out / "sample-3d.png"))
    segment.view3d_button.setChecked(False)

    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare, name="Compare models", area="right", tabify=True)
    compare.add_job(args.second_model, "")
    compare.run()
    _wait(viewer, lambda: not compare.runner.running)
    for i in range(compare.mask_list.count()):
        item = compare.mask_list.item(i)
        item.setSelected(item.text() in (args.model, args.second_model))
    compare.compare()
    _wait(viewer, lambda: not compare.runner.running)
    compare.side_by_side.setChecked(True)
    print(save_screenshot(viewer, out / "sample-compare.png"))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
