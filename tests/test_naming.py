"""Study discovery for every supported naming form, on tiny synthetic NIfTI files."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg.io import SEQUENCES, StudyError, discover, load_study, role_of

SHAPE = (8, 8, 6)
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# each sequence gets its own constant value so a mix-up is visible after loading
VALUE = {"flair": 10, "t1": 20, "t1ce": 30, "t2": 40}


def write(path: Path, data: np.ndarray | None = None, fill: int = 0) -> Path:
    data = np.full(SHAPE, fill, dtype=np.int16) if data is None else data
    nib.save(nib.Nifti1Image(data, LPS), str(path))
    return path


def make_case(folder: Path, names: dict[str, str], seg: str | None = None) -> Path:
    """Write one file per sequence (``names``: sequence -> file name) and optionally a segmentation."""
    folder.mkdir(parents=True, exist_ok=True)
    for seq, name in names.items():
        write(folder / name, fill=VALUE[seq])
    if seg:
        labels = np.zeros(SHAPE, dtype=np.uint8)
        labels[2:4, 2:4, 2:4] = 4
        write(folder / seg, labels)
    return folder


def assert_roles(folder: Path, names: dict[str, str], seg: str | None = None) -> None:
    files = discover(folder)
    assert {s: p.name for s, p in files.sequences.items()} == names
    assert (files.segmentation.name if files.segmentation else None) == seg
    assert files.missing == []
    study = load_study(folder)
    for seq in SEQUENCES:
        assert np.all(study.images[seq] == VALUE[seq]), seq


FORMS = {
    "brats2021": ({s: f"Brats18_2013_11_1_{s}.nii.gz" for s in SEQUENCES}, "Brats18_2013_11_1_seg.nii.gz", "Brats18_2013_11_1"),
    "brats2023": ({"flair": "BraTS-GLI-00001-000-t2f.nii.gz", "t1": "BraTS-GLI-00001-000-t1n.nii.gz",
                   "t1ce": "BraTS-GLI-00001-000-t1c.nii.gz", "t2": "BraTS-GLI-00001-000-t2w.nii.gz"},
                  "BraTS-GLI-00001-000-seg.nii.gz", "BraTS-GLI-00001-000"),
    "toolkit": ({"flair": "TCGA-FG-6692_fla_bet.nii.gz", "t1": "TCGA-FG-6692_t1_bet.nii.gz",
                 "t1ce": "TCGA-FG-6692_t1c_bet.nii.gz", "t2": "TCGA-FG-6692_t2_bet.nii.gz"}, None, "TCGA-FG-6692"),
    "plain": ({"flair": "flair.nii.gz", "t1": "t1.nii.gz", "t1ce": "t1ce.nii.gz", "t2": "t2.nii.gz"}, None, "case"),
    "upper-case-nii": ({s: f"CASE7_{s.upper()}.NII" for s in SEQUENCES}, "CASE7_SEG.NII", "CASE7"),
    "uncompressed": ({s: f"p1_{s}.nii" for s in SEQUENCES}, "p1_seg.nii", "p1"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_folder_forms(tmp_path: Path, form: str) -> None:
    names, seg, case = FORMS[form]
    folder = make_case(tmp_path / case, names, seg)  # a folder study is named after its folder
    assert_roles(folder, names, seg)
    assert discover(folder).name == case
    assert discover(sorted(folder.iterdir())).name == case  # ... and a list of files after the file stems


@pytest.mark.parametrize("t1ce_name", ["t1ce.nii.gz", "t1c.nii.gz", "t1gd.nii.gz", "T1Gd.nii"])
def test_plain_contrast_names(tmp_path: Path, t1ce_name: str) -> None:
    names = {"flair": "flair.nii.gz", "t1": "t1.nii.gz", "t1ce": t1ce_name, "t2": "t2.nii.gz"}
    assert_roles(make_case(tmp_path, names), names)


@pytest.mark.parametrize(("name", "role"), [
    ("x_FLAIR.nii.gz", "flair"), ("x-T2F.NII.GZ", "flair"), ("x_Fla_BET.nii", "flair"),
    ("x_t1.nii.gz", "t1"), ("x-t1n.nii.gz", "t1"), ("x_t1ce.nii.gz", "t1ce"), ("x-t1c.nii.gz", "t1ce"),
    ("x_t2.nii.gz", "t2"), ("x-t2w.nii.gz", "t2"), ("x_seg.nii.gz", "seg"), ("x-seg.nii", "seg"),
    ("brain.nii.gz", None),
])
def test_role_of(name: str, role: str | None) -> None:
    assert role_of(name) == role


def test_list_of_files(tmp_path: Path) -> None:
    names = {s: f"c_{s}.nii.gz" for s in SEQUENCES}
    make_case(tmp_path, names, "c_seg.nii.gz")
    (tmp_path / "unrelated.txt").write_text("not an image")
    paths = [tmp_path / n for n in reversed(list(names.values()))] + [tmp_path / "c_seg.nii.gz"]
    files = discover(paths)
    assert {s: p.name for s, p in files.sequences.items()} == names
    assert files.segmentation.name == "c_seg.nii.gz"
    assert files.name == "c"
    study = load_study([str(p) for p in paths])
    assert all(np.all(study.images[s] == VALUE[s]) for s in SEQUENCES)
    assert study.labels is not None and set(np.unique(study.labels)) == {0, 3}


def test_single_4d_file_in_model_order(tmp_path: Path) -> None:
    data = np.stack([np.full(SHAPE, VALUE[s], dtype=np.int16) for s in SEQUENCES], axis=-1)
    path = write(tmp_path / "BRATS_001.nii.gz", data)
    files = discover(path)
    assert files.multichannel == path and files.missing == [] and files.name == "BRATS_001"
    study = load_study(path)
    assert list(study.images) == list(SEQUENCES)
    assert all(np.all(study.images[s] == VALUE[s]) for s in SEQUENCES)
    assert study.stack().shape == (4, *study.shape)


def test_4d_file_with_wrong_volume_count(tmp_path: Path) -> None:
    path = write(tmp_path / "multi.nii.gz", np.zeros((*SHAPE, 3), dtype=np.int16))
    with pytest.raises(StudyError, match="multi.nii.gz.*4 volumes"):
        load_study(path)


def test_two_flairs_is_ambiguous(tmp_path: Path) -> None:
    make_case(tmp_path, {s: f"a_{s}.nii.gz" for s in SEQUENCES})
    write(tmp_path / "b_flair.nii.gz", fill=1)
    with pytest.raises(StudyError) as info:
        discover(tmp_path)
    message = str(info.value)
    assert "a_flair.nii.gz" in message and "b_flair.nii.gz" in message and "flair" in message
    assert "\n" not in message


def test_missing_sequence_is_named(tmp_path: Path) -> None:
    make_case(tmp_path, {s: f"a_{s}.nii.gz" for s in ("flair", "t1", "t1ce")})
    assert discover(tmp_path).missing == ["t2"]
    study = load_study(tmp_path)
    assert study.missing == ["t2"]
    assert study.stack(("flair", "t1")).shape == (2, *study.shape)
    with pytest.raises(StudyError, match="t2"):
        study.stack()


def test_no_recognised_names(tmp_path: Path) -> None:
    write(tmp_path / "one.nii.gz")
    write(tmp_path / "two.nii.gz")
    with pytest.raises(StudyError, match="no FLAIR/T1/T1ce/T2"):
        discover(tmp_path)
