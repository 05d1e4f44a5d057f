"""OutputPlan: outputs never touch inputs, never replace silently, never half-written; modes follow umask."""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bad_inputs import hashes, synthetic_case
from helpers import blob_study

from napari_lightseg._writer import write_labels
from napari_lightseg.compare import write_csv
from napari_lightseg.io import save_labels, save_nifti_like
from napari_lightseg.io.outputs import TEMP_PREFIX, OutputError, OutputPlan, file_mode, write_atomically
from napari_lightseg.layers import METADATA_KEY


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return synthetic_case(tmp_path / "data")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_add_write_commit(tmp_path: Path, umask_022) -> None:
    out, report = tmp_path / "seg.nii.gz", tmp_path / "report.json"
    with OutputPlan() as plan:
        temp = plan.add(out, "mask")
        assert temp.parent == tmp_path and temp.name.startswith(TEMP_PREFIX) and temp.name.endswith(".nii.gz")
        temp.write_bytes(b"mask")
        plan.write(report, lambda t: t.write_text("{}"))
        assert not out.exists() and not report.exists()  # nothing visible before the commit
        assert plan.commit() == [out, report]
    assert out.read_bytes() == b"mask" and report.read_text() == "{}"
    assert _mode(out) == _mode(report) == 0o644 == file_mode()
    assert _leftovers(tmp_path) == []


def test_mode_follows_a_strict_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_atomically(tmp_path / "a.txt", lambda t: t.write_text("x"))
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_leaving_without_commit_removes_temps(tmp_path: Path) -> None:
    existing = tmp_path / "old.json"
    existing.write_text("keep me")
    with pytest.raises(RuntimeError), OutputPlan(overwrite=True) as plan:
        plan.write(existing, lambda t: t.write_text("new"))
        plan.add(tmp_path / "other.json")
        raise RuntimeError("the run failed")
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


@pytest.mark.parametrize("spelling", ["same", "relative", "dotdot", "symlink", "hardlink", "upper", "in-folder"])
def test_inputs_are_refused_in_every_spelling(case: Path, tmp_path: Path, monkeypatch, spelling: str) -> None:
    flair = case / "blob_flair.nii.gz"
    monkeypatch.chdir(tmp_path)
    before = hashes([case])
    inputs: list[Path | str] = [flair, case / "blob_t1.nii.gz"]
    if spelling == "same":
        target: Path | str = flair
    elif spelling == "relative":
        target = os.path.relpath(flair)
    elif spelling == "dotdot":
        target = case / ".." / case.name / flair.name
    elif spelling == "symlink":
        target = tmp_path / "link.nii.gz"
        target.symlink_to(flair)
    elif spelling == "hardlink":
        target = tmp_path / "hard.nii.gz"
        os.link(flair, target)
    elif spelling == "upper":
        target = case / flair.name.upper()
    else:  # an existing file inside an input folder (the ground truth)
        inputs, target = [case], case / "blob_seg.nii.gz"
    with pytest.raises(OutputError) as error, OutputPlan(inputs, overwrite=True) as plan:
        plan.add(target, "mask")
    message = str(error.value)
    assert "\n" not in message and len(message) < 300 and str(target) in message
    assert hashes([case]) == before
    assert _leftovers(case) == [] and _leftovers(tmp_path) == []


def test_refusals(tmp_path: Path) -> None:
    existing = tmp_path / "exists.csv"
    existing.write_text("x")
    with OutputPlan() as plan:
        with pytest.raises(OutputError, match="file exists; refusing to overwrite"):
            plan.add(existing)
        with pytest.raises(OutputError, match="is a folder"):
            plan.add(tmp_path)
        with pytest.raises(OutputError, match="does not exist"):
            plan.add(tmp_path / "missing" / "out.csv")
        plan.add(tmp_path / "a.csv", "CSV")
        with pytest.raises(OutputError, match="same path as the CSV output"):
            plan.add(tmp_path / "." / "a.csv", "report")
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(OutputError, match="file exists"), OutputPlan() as plan:
        plan.add(dangling)
    assert existing.read_text() == "x"


def test_unwritable_folder(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: make the folder refuse new files another way
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write in folder") as error, OutputPlan() as plan:
            plan.add(folder / "seg.nii.gz", "mask")
        assert "seg.nii.gz" in str(error.value)
    finally:
        folder.chmod(0o755)


def test_file_appearing_during_the_run_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "seg.json"
    with OutputPlan() as plan:
        plan.write(out, lambda t: t.write_text("ours"))
        out.write_text("someone else's")
        with pytest.raises(OutputError, match="appeared"):
            plan.commit()
    assert out.read_text() == "someone else's" and _leftovers(tmp_path) == []


def test_failed_commit_removes_what_it_created(tmp_path: Path) -> None:
    first, later = tmp_path / "a.json", tmp_path / "sub" / "b.json"
    later.parent.mkdir()
    with OutputPlan() as plan:
        plan.write(first, lambda t: t.write_text("a"))
        plan.write(later, lambda t: t.write_text("b"))
        later.mkdir()  # something takes the second name meanwhile: its commit fails
        with pytest.raises(OutputError, match="appeared"):
            plan.commit()
    assert not first.exists() and later.is_dir() and list(later.iterdir()) == []
    assert _leftovers(tmp_path) == [] and _leftovers(later.parent) == []


def test_overwrite_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("untouched")
    link = tmp_path / "link.json"
    link.symlink_to(elsewhere)
    write_atomically(link, lambda t: t.write_text("new"), overwrite=True)
    assert not link.is_symlink() and link.read_text() == "new" and elsewhere.read_text() == "untouched"


def test_save_nifti_like_refuses_inputs_and_existing(tmp_path: Path) -> None:
    study = blob_study()
    data = study.geometry.to_disk(study.labels)
    path = save_nifti_like(tmp_path / "seg.nii.gz", data, study.geometry)
    assert nib.load(str(path)).shape == study.geometry.disk_shape
    with pytest.raises(OutputError, match="file exists"):
        save_nifti_like(path, data, study.geometry)
    with pytest.raises(OutputError, match="is an input"):
        save_nifti_like(path, data, study.geometry, overwrite=True, inputs=[path])
    save_nifti_like(path, data, study.geometry, overwrite=True)
    assert _leftovers(tmp_path) == []


def test_save_labels_keeps_a_backup_but_never_touches_an_input(tmp_path: Path) -> None:
    study = blob_study()
    path = save_labels(tmp_path / "mask.nii.gz", study.labels, study.geometry)
    with pytest.warns(UserWarning, match="kept as mask.bak1.nii.gz"):
        save_labels(path, study.labels, study.geometry, keep_existing=True)
    assert (tmp_path / "mask.bak1.nii.gz").exists()
    before = hashes([tmp_path])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no backup made either
        with pytest.raises(OutputError, match="is an input"):
            save_labels(path, study.labels, study.geometry, keep_existing=True, inputs=[path])
    assert hashes([tmp_path]) == before


def test_npe2_writer_refuses_the_layers_own_source(case: Path) -> None:
    study = blob_study()
    seg = case / "blob_seg.nii.gz"
    before = hashes([case])
    meta = {"metadata": {METADATA_KEY: {"geometry": study.geometry, "convention": "brats2021", "source": str(seg)}}}
    with pytest.raises(OutputError, match="is an input"):
        write_labels(str(seg), study.labels, meta)
    assert hashes([case]) == before
    written = write_labels(str(case.parent / "edited.nii.gz"), study.labels, meta)
    assert np.array_equal(np.asarray(nib.load(written[0]).dataobj), np.asarray(nib.load(str(seg)).dataobj))


def test_write_csv_refuses_its_reference(tmp_path: Path) -> None:
    reference = tmp_path / "ref.nii.gz"
    reference.write_bytes(b"not really")
    with pytest.raises(OutputError, match="is an input"):
        write_csv([], reference, inputs=[reference])
    assert reference.read_bytes() == b"not really"
    assert write_csv([], tmp_path / "rows.csv").read_text().startswith("segmentation,reference")


def test_an_output_never_written_fails_the_commit(tmp_path: Path) -> None:
    with OutputPlan() as plan:
        plan.write(tmp_path / "a.json", lambda t: t.write_text("a"))
        plan.add(tmp_path / "b.json", "report")
        with pytest.raises(RuntimeError, match="b.json \\(report\\): planned but never written"):
            plan.commit()
    assert list(tmp_path.iterdir()) == []
