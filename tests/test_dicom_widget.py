"""A DICOM study in napari: the reader's fast path, the segment widget's Study group (series table,
overrides, brain extraction mode), the run through the worker with stage times, and saving on a
native grid. The study is built at test time: the synthetic blob study as DICOM series on their own grids."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from clinical_grids import ClinicalGrid, perturb
from dicom_factory import SEQUENCE_HEADERS, write_dicom_series
from helpers import blob_study
from pydicom.uid import generate_uid

from napari_lightseg._reader import get_reader, read_dicom_study, read_study
from napari_lightseg.clinical_view import (
    ASSIGNED_KEY,
    DICOM_FOLDER_KEY,
    INPUTS_KEY,
    SERIES_TABLE_KEY,
    check_overrides,
    clinical_source,
    series_choices,
    series_rows,
)
from napari_lightseg.io import StudyError
from napari_lightseg.io.dicom import find_dicom_series, read_series
from napari_lightseg.io.dicom_seg import read_dicom_seg
from napari_lightseg.io.grids import sitk_from_array
from napari_lightseg.io.labels import read_label_sidecar
from napari_lightseg.layers import METADATA_KEY

# each sequence on its own grid (the reference T1ce keeps the study's 1 mm grid)
GRIDS = {
    "flair": ClinicalGrid(spacing=(0.9, 0.9, 2.0)),
    "t1": ClinicalGrid(tilt_deg=(0.0, 0.0, 3.0), shift_mm=(2.0, 0.0, 0.0)),
    "t2": ClinicalGrid(spacing=(0.8, 0.8, 1.5)),
}
EXTRA_NUMBER = 9  # a series the header rules cannot place (no keyword, TR/TE inconclusive): override target


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PATIENT/STUDY/SE00N: FLAIR, T1, T1ce, T2 on different grids, plus one unidentified series."""
    study = blob_study(shape=(24, 40, 36))
    root = tmp_path_factory.mktemp("dicom") / "PATIENT"
    study_uid, frame_uid = generate_uid(), generate_uid()
    common = dict(study_uid=study_uid, frame_of_reference_uid=frame_uid, patient_id="PATIENT")
    for number, (sequence, data) in enumerate(study.images.items(), start=2):
        image = sitk_from_array(study.geometry.to_disk(data), study.geometry)
        if sequence in GRIDS:
            image = perturb(image, GRIDS[sequence])
        tags = dict(SEQUENCE_HEADERS[sequence])
        write_dicom_series(image, root / "STUDY" / f"SE{number:03d}", description=tags.pop("SeriesDescription"),
                           series_number=number, extra_tags=tags, **common)
    extra = perturb(sitk_from_array(study.geometry.to_disk(study.images["flair"]), study.geometry), GRIDS["t2"])
    write_dicom_series(extra, root / "STUDY" / f"SE{EXTRA_NUMBER:03d}", description="research 3D",
                       series_number=EXTRA_NUMBER, extra_tags={"RepetitionTime": 1500.0, "EchoTime": 40.0}, **common)
    return root


def _files(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- reader (no viewer)
def test_reader_opens_a_dicom_folder_on_the_t1ce_grid(dicom_study: Path) -> None:
    reader = get_reader(str(dicom_study))
    assert reader is read_dicom_study
    layers = reader(str(dicom_study))
    assert len(layers) == 4 and {k for _, _, k in layers} == {"image"}
    metas = [kwargs["metadata"][METADATA_KEY] for _, kwargs, _ in layers]
    t1ce = next(read_series(s) for s in find_dicom_series(dicom_study) if s.series_number == 4)
    shapes = {np.shape(data) for data, _, _ in layers}
    assert shapes == {t1ce.size[::-1]}  # every sequence on the reference (T1ce) grid, display order z, y, x
    for meta in metas:
        assert meta[DICOM_FOLDER_KEY] == str(dicom_study) and meta["aligned"] == "scanner coordinates"
        assert meta[INPUTS_KEY] == [str(dicom_study)]
        numbers = [row["number"] for row in meta[SERIES_TABLE_KEY]]
        assert numbers == [2, 3, 4, 5, EXTRA_NUMBER]
        assert set(meta[ASSIGNED_KEY]) == {"flair", "t1", "t1ce", "t2"}
    by_uid = {row["series_uid"]: row["number"] for row in metas[0][SERIES_TABLE_KEY]}
    assert {seq: by_uid[uid] for seq, uid in metas[0][ASSIGNED_KEY].items()} == {"flair": 2, "t1": 3, "t1ce": 4, "t2": 5}
    assert read_study(str(dicom_study))[0][1]["name"] == layers[0][1]["name"]  # `lightseg view DICOM_FOLDER`


def test_reader_error_is_one_line_listing_the_series(dicom_study: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    for number in (2, 3, 4):  # no T2 series: a missing sequence
        (partial / f"SE{number:03d}").mkdir(parents=True)
        for f in (dicom_study / "STUDY" / f"SE{number:03d}").iterdir():
            (partial / f"SE{number:03d}" / f.name).symlink_to(f)
    with pytest.raises(StudyError) as info:
        get_reader(str(partial))(str(partial))
    message = str(info.value)
    assert "\n" not in message and "no T2 series found" in message and "AX T1 +C" in message


def test_series_table_rows_and_overrides() -> None:
    table = [{"number": 2, "description": "AX T2 FLAIR", "size": "36x40x12", "spacing_mm": "0.9x0.9x2",
              "sequence": "flair", "usable": True, "reason": "", "series_uid": "1.2"},
             {"number": 7, "description": "SCOUT", "size": "256x256x3", "usable": False, "reason": "localizer/scout",
              "series_uid": "1.7"},
             {"number": 9, "description": "research 3D", "size": "36x40x24", "usable": True, "sequence": None,
              "series_uid": "1.9"}]
    rows = series_rows(table, {"flair": "1.2"})
    assert [r["role"] for r in rows] == ["FLAIR", "unusable", "not used"]
    assert [r["role_detail"] for r in rows] == ["FLAIR", "unusable: localizer/scout", "not used"]
    assert rows[0]["size"] == "36x40x12" and rows[0]["spacing"] == "0.9x0.9x2 mm" and rows[0]["number"] == "2"
    table[0]["sequence"] = "t2"
    assert series_rows(table, {})[0]["role_detail"] == "not used (looks like T2)"
    assert series_choices(table) == [("#2 AX T2 FLAIR", "1.2"), ("#9 research 3D", "1.9")]  # no localizer
    assert check_overrides({"flair": "1.9", "t2": "1.2"}) == {"flair": "1.9", "t2": "1.2"}
    with pytest.raises(StudyError, match="#2 AX T2 FLAIR is chosen for FLAIR and T2"):
        check_overrides({"flair": "1.2", "t2": "1.2"}, table)
    assert clinical_source([{INPUTS_KEY: ["/a"]}, {INPUTS_KEY: ["/a"]}]) == {INPUTS_KEY: ["/a"]}
    assert clinical_source([{INPUTS_KEY: ["/a"]}, {INPUTS_KEY: ["/b"]}]) is None
    assert clinical_source([{INPUTS_KEY: ["/a"]}, {}]) is None and clinical_source([]) is None


# ----------------------------------------------------------------------------- widget (viewer)
@pytest.fixture
def tiny_card(tmp_path: Path):
    pytest.importorskip("onnx")
    from helpers import tiny_onnx_card

    return tiny_onnx_card(tmp_path)


@pytest.fixture
def dicom_widget(make_napari_viewer, dicom_study: Path, tiny_card):
    from napari_lightseg._qt.segment_widget import SegmentWidget

    viewer = make_napari_viewer()
    viewer.open(str(dicom_study), plugin="napari-lightseg")
    widget = SegmentWidget(viewer)
    widget.cards[tiny_card.name] = tiny_card
    widget.model_combo.addItem(tiny_card.short_label(), tiny_card.name)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(tiny_card.name))
    widget.study_panel.brain_combo.setCurrentText("skip")
    return viewer, widget, tiny_card


def _run(widget, qtbot) -> None:
    assert widget.run() is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)


@pytest.mark.viewer
def test_widget_shows_the_series_table_and_runs_in_the_worker(dicom_widget, qtbot) -> None:
    viewer, widget, card = dicom_widget
    panel = widget.study_panel
    assert not panel.isHidden() and panel.folder is not None
    assert panel.table.rowCount() == 5
    roles = [panel.table.item(r, 3).text() for r in range(5)]
    assert roles[:4] == ["FLAIR", "T1", "T1ce", "T2"] and roles[4].startswith("not used")
    assert [panel.table.item(r, 0).text() for r in range(5)] == ["2", "3", "4", "5", str(EXTRA_NUMBER)]
    assert not panel.save_button.isEnabled()  # only after a run
    assert "scanner coordinates" in panel.folder_label.text()
    flair = next(layer for layer in viewer.layers if layer.name.endswith("FLAIR"))
    before = np.array(flair.data, copy=True)

    _run(widget, qtbot)
    assert card.name in viewer.layers, widget.status.text()
    run = widget.runs[-1]
    assert run["read_s"] > 0 and run["register_s"] > 0 and run["extract_s"] == ""  # extraction skipped
    assert run["total_s"] >= run["read_s"] + run["register_s"] + run["inference_s"]
    assert run["cpu_s"] > 0 and "register_s" in widget.runs_csv().splitlines()[0]
    study = panel.study
    assert study is not None and study.alignment["flair"].registered and panel.save_button.isEnabled()
    assert "(registered)" in panel.folder_label.text()
    assert np.shape(flair.data) == before.shape and not np.array_equal(flair.data, before)  # registered image in place
    assert np.array_equal(flair.data, study.images["flair"])
    assert any("brain extraction skipped" in note for note in study.notes)


@pytest.mark.viewer
def test_override_changes_the_assignment(dicom_widget, qtbot) -> None:
    viewer, widget, _ = dicom_widget
    panel = widget.study_panel
    combo = panel.series_combos["flair"]
    combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemText(i).startswith(f"#{EXTRA_NUMBER} ")))
    roles = [panel.table.item(r, 3).text() for r in range(5)]
    assert roles[0].startswith("not used") and roles[4] == "FLAIR"
    viewer.add_points([[0, 0, 0]], name="marker")  # another layer must not reset the user's choice
    assert combo.currentText().startswith(f"#{EXTRA_NUMBER} ")
    _run(widget, qtbot)
    assert panel.study is not None, widget.status.text()
    assert panel.study.alignment["flair"].volume.series_number == EXTRA_NUMBER
    panel.series_combos["t2"].setCurrentIndex(combo.currentIndex())  # one series for two sequences: refused
    assert widget.run() is None and "chosen for FLAIR and T2" in widget.status.text()


@pytest.mark.viewer
def test_cancel_returns_the_controls(dicom_widget, qtbot) -> None:
    viewer, widget, card = dicom_widget
    assert widget.run() is not None
    assert not widget.study_panel.brain_combo.isEnabled()
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60_000)
    assert "Cancelled" in widget.status.text() and card.name not in viewer.layers
    assert widget.study_panel.brain_combo.isEnabled() and widget.study_panel.series_combos["t2"].isEnabled()


@pytest.mark.viewer
def test_cancel_during_registration_returns_the_controls(dicom_widget, qtbot) -> None:
    """Cancel pressed while the sequences register side by side (worker threads of the worker): every registration
    stops, the controls come back, nothing is added, and ITK's thread setting is put back."""
    import SimpleITK as sitk

    viewer, widget, card = dicom_widget
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    assert widget.run() is not None
    qtbot.waitUntil(lambda: "registering" in widget.status.text(), timeout=60_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60_000)
    assert "Cancelled" in widget.status.text() and card.name not in viewer.layers
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads


@pytest.mark.viewer
def test_save_on_native_grids(dicom_widget, dicom_study: Path, qtbot, tmp_path: Path) -> None:
    viewer, widget, card = dicom_widget
    panel = widget.study_panel
    assert panel.save_result(tmp_path / "early.dcm") is None and "Run a model first" in panel.message.text()
    _run(widget, qtbot)
    result = np.asarray(viewer.layers[card.name].data)
    assert result.max() > 0
    inputs = _files(dicom_study)

    seg = panel.save_result(tmp_path / "seg.dcm", grid="flair")
    assert seg is not None and seg.is_file(), panel.message.text()
    flair = next(read_series(s) for s in find_dicom_series(dicom_study) if s.series_number == 2)
    native = read_dicom_seg(seg, flair)
    assert native.shape == flair.size[::-1] and native.max() > 0  # the FLAIR series' own (thick-slice) grid

    nifti = panel.save_result(tmp_path / "seg_t1ce.nii.gz", grid="t1ce")
    assert nifti is not None and nib.load(nifti).shape == tuple(panel.study.geometry.disk_shape)
    sidecar = read_label_sidecar(nifti)
    assert sidecar is not None and sidecar["grid"] == "t1ce" and sidecar["model"] == card.name
    on_disk = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti)))
    assert int((on_disk > 0).sum()) == int((result > 0).sum())  # reference grid: the same voxels

    victim = next(dicom_study.rglob("*.dcm"))
    assert panel.save_result(victim, grid="t1ce") is None
    assert "Not saved" in panel.message.text() and victim.name in panel.message.text()
    assert panel.save_result(tmp_path / "seg.dcm", grid="flair") is None  # never overwrites silently
    assert _files(dicom_study) == inputs  # inputs untouched

    layer = viewer.layers[card.name]  # a result of a study labelled in BraTS 2023 values is saved in them
    layer.metadata = {"lightseg": {**layer.metadata.get("lightseg", {}), "convention": "brats2023"}}
    in_2023 = panel.save_result(tmp_path / "seg_2023.nii.gz", grid="t1ce")
    assert in_2023 is not None and read_label_sidecar(in_2023)["convention"] == "brats2023"
    values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(in_2023)))).tolist())
    assert 4 not in values and (3 in values) == bool((result == 3).any())


@pytest.mark.viewer
@pytest.mark.slow
def test_real_case_dicom_study_in_the_widget(make_napari_viewer, data_root: Path, tmp_path: Path, qtbot,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A real case as DICOM series on clinical grids with patient motion: dragged in, run, registered result."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "docs"))
    from make_dicom_screenshot import write_study  # the study the README's screenshot shows

    from napari_lightseg import engine
    from napari_lightseg._qt.segment_widget import SegmentWidget
    from napari_lightseg.io import to_internal
    from napari_lightseg.metrics import region_scores
    from napari_lightseg.models import get_card

    case = "Brats18_CBICA_ALU_1"
    folder = write_study(data_root / "brats18" / case, tmp_path / "PATIENT")
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-lightseg")
    widget = SegmentWidget(viewer)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("unet-int8"))
    _run(widget, qtbot)
    result = np.asarray(viewer.layers["unet-int8"].data)
    truth = to_internal(sitk.GetArrayFromImage(sitk.ReadImage(str(data_root / "brats18" / case / f"{case}_seg.nii.gz"))))[0]

    def wt_dice(labels: np.ndarray, geometry) -> float:  # in the seg file's (SimpleITK z, y, x) order
        return region_scores(geometry.to_disk(labels).transpose(2, 1, 0), truth, geometry.spacing)["dice_WT"]

    dicom = wt_dice(result, widget.study_panel.study.geometry)  # T1ce kept the case's own grid
    original = engine.segment_paths(data_root / "brats18" / case, get_card("unet-int8"))
    unperturbed = wt_dice(original.labels, original.geometry)
    print(f"WT Dice: DICOM study {dicom:.3f}, original case {unperturbed:.3f}; run: {widget.runs[-1]}")
    assert dicom >= 0.9 * unperturbed and widget.runs[-1]["register_s"] > 0


@pytest.mark.viewer
def test_nifti_on_different_grids_goes_the_same_way(make_napari_viewer, tiny_card, qtbot, tmp_path: Path) -> None:
    """NIfTI files on their own grids open on the T1ce grid (no refusal), and Run registers them."""
    from napari_lightseg._qt.segment_widget import SegmentWidget

    study = blob_study(shape=(24, 40, 36))
    case = tmp_path / "case"
    case.mkdir()
    for sequence, data in study.images.items():
        image = sitk_from_array(study.geometry.to_disk(data), study.geometry)
        sitk.WriteImage(perturb(image, GRIDS[sequence]) if sequence in GRIDS else image, str(case / f"c_{sequence}.nii.gz"))
    layers = get_reader(str(case))(str(case))
    meta = layers[0][1]["metadata"][METADATA_KEY]
    assert DICOM_FOLDER_KEY not in meta and len(meta[INPUTS_KEY]) == 4 and len(meta[SERIES_TABLE_KEY]) == 4
    assert {np.shape(data) for data, _, _ in layers} == {study.images["t1ce"].shape}

    viewer = make_napari_viewer()
    viewer.open(str(case), plugin="napari-lightseg")
    widget = SegmentWidget(viewer)
    widget.cards[tiny_card.name] = tiny_card
    widget.model_combo.addItem(tiny_card.short_label(), tiny_card.name)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(tiny_card.name))
    panel = widget.study_panel
    assert not panel.isHidden() and panel.series_box.isHidden() and panel.overrides() == {}
    assert "NIfTI" in panel.folder_label.text()
    assert [panel.table.item(r, 1).text() for r in range(4)] == [f"c_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
    _run(widget, qtbot)
    assert panel.study is not None and panel.study.alignment["flair"].registered, widget.status.text()
    assert widget.runs[-1]["register_s"] > 0
    flair_grid = panel.save_result(tmp_path / "on_flair.nii.gz", grid="flair")
    assert flair_grid is not None and nib.load(flair_grid).shape == nib.load(case / "c_flair.nii.gz").shape
    assert panel.save_result(tmp_path / "seg.dcm") is None and "DICOM" in panel.message.text()
