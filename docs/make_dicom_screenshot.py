"""Regenerate docs/dicom-study.png: a real case written as a DICOM study whose sequences have their own
grids (tests/clinical_grids.py: thick-slice FLAIR, tilted T1, other-matrix T2, patient motion), opened
through the plugin's reader, then segmented from the segment dock (registration in the worker).
Run under a display or xvfb-run; the DICOM files go to a temporary folder and are deleted:

    LIGHTSEG_DATA=../shared/data PYTHONPATH=.:tests python docs/make_dicom_screenshot.py [--case Brats18_CBICA_ALU_1]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

DOCK_WIDTH = 400  # pixels: a dock a user widens to read the series table (it elides when narrower)


def _wait(until, timeout_s: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("screenshot step did not finish")
        QApplication.processEvents()
        time.sleep(0.05)


def write_study(case_dir: Path, root: Path) -> Path:
    """The case as four DICOM series on clinical-like grids, with motion (as tests/test_clinical.py)."""
    from clinical_grids import perturbed_volumes
    from dicom_factory import SEQUENCE_HEADERS, write_dicom_series
    from pydicom.uid import generate_uid

    from napari_lightseg.io import discover

    volumes, _ = perturbed_volumes(discover(case_dir).sequences)
    study_uid, frame_uid = generate_uid(), generate_uid()
    for number, (sequence, volume) in enumerate(volumes.items(), start=2):
        tags = dict(SEQUENCE_HEADERS[sequence])
        write_dicom_series(volume.image, root / "STUDY" / f"SE{number:03d}", description=tags.pop("SeriesDescription"),
                           series_number=number, study_uid=study_uid, frame_of_reference_uid=frame_uid,
                           patient_id="PATIENT", extra_tags=tags)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="Brats18_CBICA_ALU_1")
    parser.add_argument("--model", default="unet-int8")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "dicom-study.png"))
    args = parser.parse_args(argv)
    data = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

    import napari
    from qtpy.QtCore import Qt

    from napari_lightseg._qt.results import go_to_tumour
    from napari_lightseg._qt.segment_widget import SegmentWidget
    from napari_lightseg._qt.viewer import SCREENSHOT_SIZE, save_screenshot, size_window

    with tempfile.TemporaryDirectory(prefix="lightseg-dicom-shot-") as scratch:
        folder = write_study(data / "brats18" / args.case, Path(scratch) / "PATIENT")
        viewer = napari.Viewer(title="napari-lightseg")
        viewer.open(str(folder), plugin="napari-lightseg")
        segment = SegmentWidget(viewer)
        dock = viewer.window.add_dock_widget(segment, name="Segment tumour", area="right")
        size_window(viewer, SCREENSHOT_SIZE)
        viewer.window._qt_window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)  # the series table reads
        segment.model_combo.setCurrentIndex(segment.model_combo.findData(args.model))
        segment.run()
        _wait(lambda: not segment.runner.running)
        viewer.reset_view()  # fit the canvas as resized by the dock
        go_to_tumour(viewer)
        print(save_screenshot(viewer, args.out))
        viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
