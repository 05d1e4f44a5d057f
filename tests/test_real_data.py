"""Every real case opens, its sequences are aligned, and labels written back match the source exactly.

Cases are checked one at a time (a loaded case is ~150 MB) and problems are gathered, so one run
names every failing case.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from napari_lightseg.io import SEQUENCES, Study, load_labels, load_study, save_labels

BRATS_SHAPE = (155, 240, 240)  # display order of the 240 x 240 x 155 BraTS grid


def _cases(root: Path, group: str) -> list[Path]:
    return sorted(p for p in (root / group).iterdir() if p.is_dir())


def _check_all(cases: list[Path], check: Callable[[Path], None]) -> None:
    assert cases, "no cases found"
    problems = []
    for case in cases:
        try:
            check(case)
        except Exception as exc:  # gather every failing case, not just the first
            problems.append(f"{case.name}: {type(exc).__name__}: {exc}")
    assert not problems, "\n".join(problems)


def _check_aligned(study: Study) -> None:
    """One grid for all sequences, and brain masks that overlap (a gross check: 2013 T1 masks differ)."""
    assert study.missing == [], study.missing
    assert study.shape == BRATS_SHAPE
    np.testing.assert_allclose(study.geometry.spacing, (1.0, 1.0, 1.0), atol=1e-4)
    masks = [study.images[s] > 0 for s in SEQUENCES]
    for seq, mask in zip(SEQUENCES, masks):
        assert study.images[seq].shape == study.shape
        dice = 2 * np.count_nonzero(mask & masks[0]) / (np.count_nonzero(mask) + np.count_nonzero(masks[0]))
        assert dice > 0.7, f"{seq} brain mask overlaps FLAIR's by Dice {dice:.2f}"


def _check_written_back(source: Path, classes: np.ndarray, study: Study, convention: str | None, out: Path) -> None:
    """Saving the loaded labels gives the source file's values, affine and sform/qform.

    ``out`` is an uncompressed .nii: the check is the same and compression would only cost time.
    """
    saved_path = save_labels(out, classes, study.geometry, convention or "brats2021", overwrite=True)
    original, saved = nib.load(str(source)), nib.load(str(saved_path))
    np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(original.dataobj))
    np.testing.assert_array_equal(saved.affine, original.affine)
    np.testing.assert_array_equal(saved.header.get_sform(), original.header.get_sform())
    np.testing.assert_array_equal(saved.header.get_qform(), original.header.get_qform())


def test_brats18_cases_open_and_write_back(data_root: Path, tmp_path: Path) -> None:
    def check(case: Path) -> None:
        study = load_study(case)
        _check_aligned(study)
        assert study.labels is not None and set(np.unique(study.labels)) <= {0, 1, 2, 3}
        assert study.convention in ("brats2021", None)
        assert study.name == case.name
        _check_written_back(study.files.segmentation, study.labels, study, study.convention, tmp_path / f"{case.name}.nii")

    _check_all(_cases(data_root, "brats18"), check)


def test_other_cases_open(data_root: Path) -> None:
    def check(case: Path) -> None:
        study = load_study(case)
        _check_aligned(study)
        assert study.labels is None

    cases = _cases(data_root, "other")
    assert {c.name for c in cases} >= {"BraTS-GLI-00001-000", "TCGA-FG-6692", "AURORA-example-met"}
    _check_all(cases, check)


def test_ras_case_is_shown_like_the_lps_ones(data_root: Path) -> None:
    """AURORA is stored RAS, the others LPS: in display order both have anterior at the top."""
    for name in ("AURORA-example-met", "TCGA-FG-6692"):
        study = load_study(data_root / "other" / name, with_labels=False)
        assert nib.aff2axcodes(study.geometry.display_affine) == ("S", "P", "L"), name


def test_tcga_segmentations_write_back(data_root: Path, tmp_path: Path) -> None:
    case = data_root / "other" / "TCGA-FG-6692"
    study = load_study(case)
    segmentations = sorted((case / "segmentations").glob("*.nii.gz"))
    assert len(segmentations) == 6

    def check(seg: Path) -> None:
        classes, convention, _ = load_labels(seg, study.geometry)
        assert classes.shape == study.shape and set(np.unique(classes)) <= {0, 1, 2, 3}
        _check_written_back(seg, classes, study, convention, tmp_path / seg.name.removesuffix(".gz"))

    _check_all(segmentations, check)
