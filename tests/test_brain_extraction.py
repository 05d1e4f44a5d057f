"""Brain extraction (deepbet's nets in ONNX Runtime): cards, masks, orientation, skull-stripped detection."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform
from scipy import ndimage

from napari_lightseg.io import StudyError, load_study
from napari_lightseg.metrics import dice
from napari_lightseg.models.cards import CardError, list_cards, load_card
from napari_lightseg.preprocess import brain_extraction as bx
from napari_lightseg.preprocess import brain_mask
from napari_lightseg.progress import Cancelled

TEST_SIZE = 128  # main-net cube edge for the synthetic tests (fast; the real-case test uses the default)
# measured: Brats18_TCIA02_606_1, int8 @192: Dice 0.982 vs its non-zero mask (benchmarks/RESULTS_brain_extraction.md)
REAL_CASE, REAL_MIN_DICE = "Brats18_TCIA02_606_1", 0.96


def phantom_head(shape=(120, 140, 120), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A T1-like head in display orientation: grey/white matter, a ventricle, CSF, dark bone, bright
    scalp fat, skin, Rayleigh-noise air. Returns (head, brain mask)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = np.array(shape, np.float32) / 2

    def ellipsoid(radii):
        return ((z - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((x - c[2]) / radii[2]) ** 2

    e = ellipsoid((0.36 * shape[0], 0.38 * shape[1], 0.34 * shape[2]))
    brain = e <= 1
    head = np.zeros(shape, np.float32)
    head[brain] = 100.0
    head[e <= 0.7] = 140.0
    head[ellipsoid((0.08 * shape[0], 0.05 * shape[1], 0.05 * shape[2])) <= 1] = 30.0
    r = np.sqrt(e)
    for lo, hi, level in ((1.0, 1.05, 30.0), (1.05, 1.15, 10.0), (1.15, 1.25, 180.0), (1.25, 1.3, 80.0)):
        head[(r > lo) & (r <= hi)] = level
    head *= rng.normal(1.0, 0.04, shape).astype(np.float32)
    air = r > 1.3
    head[air] = rng.rayleigh(4.0, int(air.sum()))
    return head.astype(np.float32), brain


@pytest.fixture(scope="module")
def head() -> tuple[np.ndarray, np.ndarray]:
    return phantom_head()


@pytest.fixture(scope="module")
def head_mask(head) -> np.ndarray:
    return bx.extract_brain(head[0], size=TEST_SIZE, threads=2)


def test_cards_load_and_verify(tmp_path):
    cards = bx.list_brain_cards()
    assert sorted(c.name for c in cards) == ["brain-box-fp32", "brain-box-int8", "brain-main-fp32", "brain-main-int8"]
    for card in cards:
        assert card.training["credit"]["repository"] == "https://github.com/wwu-mmll/deepbet"
        assert card.training["credit"]["licence"] == "MIT" and card.training["credit"]["version"] == "1.0.2"
        assert card.path.stat().st_size < 4.5 * 2**20
    assert bx.brain_card("main", "int8").path.stat().st_size < 3 * 2**20
    # not offered as tumour models
    assert not any(c.name.startswith("brain-") for c in list_cards())
    # a tampered weights file is refused
    card = bx.brain_card("box", "int8")
    shutil.copy(card.card_path, tmp_path / card.card_path.name)
    (tmp_path / card.file).write_bytes(card.path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CardError, match="sha256"):
        load_card(tmp_path / card.card_path.name).verify()
    with pytest.raises(CardError):
        bx.brain_card("main", "fp16")


def test_nearest_exact_indices_follow_torch_rule():
    assert bx.nearest_exact_indices(5, 3).tolist() == [0, 2, 4]
    assert bx.nearest_exact_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    assert bx.nearest_exact_indices(240, 128).max() == 239


def test_resample_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    volume = np.random.default_rng(0).random((37, 50, 23), dtype=np.float32)
    for shape in ((128, 128, 128), (16, 21, 9)):
        expected = torch.nn.functional.interpolate(torch.from_numpy(volume)[None, None], shape, mode="nearest-exact")[0, 0]
        np.testing.assert_array_equal(bx.resample_nearest(volume, shape), expected.numpy())


def test_mask_on_synthetic_head_is_plausible(head, head_mask):
    volume, brain = head
    assert head_mask.dtype == bool and head_mask.shape == volume.shape
    _, components = ndimage.label(head_mask, structure=np.ones((3, 3, 3)))
    assert components == 1
    assert np.array_equal(ndimage.binary_fill_holes(head_mask), head_mask)
    assert 0.8 < head_mask.sum() / brain.sum() < 1.3
    assert dice(head_mask, brain) > 0.9  # measured 0.944 at size 128


def test_orientation_is_handled(head, head_mask):
    """The same head given in RAS voxel order (a file's own order, told by its affine) gives the same
    mask, reoriented."""
    to_ras = ornt_transform(axcodes2ornt(("S", "P", "L")), axcodes2ornt(("R", "A", "S")))
    back = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(("S", "P", "L")))
    ras_mask = bx.extract_brain(apply_orientation(head[0], to_ras), np.diag([2.0, 2.0, 2.0, 1.0]), size=TEST_SIZE, threads=2)
    assert ras_mask.shape == head[0].shape[::-1]
    assert np.array_equal(apply_orientation(ras_mask, back), head_mask)
    assert bx.axis_codes(("L", "P", "S")) == ("L", "P", "S")
    assert bx.axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")


def test_looks_skull_stripped_synthetic(head):
    volume, brain = head
    assert not bx.looks_skull_stripped(volume)
    assert not bx.looks_skull_stripped({"t1": volume, "flair": volume})
    stripped = np.where(brain, volume, 0)
    assert bx.looks_skull_stripped(stripped)
    assert bx.looks_skull_stripped(stripped, spacing=(1.2, 1.2, 1.2))
    assert not bx.looks_skull_stripped(stripped, spacing=(3.0, 3.0, 3.0))  # 10 L: not a brain
    head_with_zeroed_air = np.where(volume > 20, volume, 0)  # scanner-zeroed air: head-sized
    assert not bx.looks_skull_stripped(head_with_zeroed_air, spacing=(1.5, 1.5, 1.5))


def test_apply_brain_mask_zeroes_outside_and_keeps_inputs():
    rng = np.random.default_rng(1)
    images = {"t1": rng.random((4, 5, 6)).astype(np.float32) + 1, "t2": rng.integers(1, 9, (4, 5, 6)).astype(np.int16)}
    mask = np.zeros((4, 5, 6), bool)
    mask[1:3, 1:4, 2:5] = True
    before = {k: v.copy() for k, v in images.items()}
    out = bx.apply_brain_mask(images, mask)
    for name in images:
        assert np.array_equal(images[name], before[name])
        assert out[name].dtype == images[name].dtype
        assert np.all(out[name][~mask] == 0) and np.array_equal(out[name][mask], images[name][mask])
    stack = np.stack(list(before.values())).astype(np.float32)
    assert np.count_nonzero(bx.apply_brain_mask(stack, mask)) == 2 * mask.sum()
    with pytest.raises(ValueError, match="shape"):
        bx.apply_brain_mask(images["t1"], mask[:3])


def test_cancel_raises_and_progress_reports(head):
    calls = []
    with pytest.raises(Cancelled):
        bx.extract_brain(head[0], size=TEST_SIZE, cancel=lambda: len(calls) >= 1, progress=lambda f, m: calls.append(f))
    assert calls and calls[0] < 0.5


def test_bad_input_is_one_line():
    with pytest.raises(StudyError, match=r"^scan\.nii: brain extraction needs a 3D volume"):
        bx.extract_brain(np.zeros((4, 4)), source="scan.nii")
    with pytest.raises(StudyError, match=r"^empty\.nii: brain extraction found no brain \(the volume is constant\)"):
        bx.extract_brain(np.zeros((40, 40, 40), np.float32), size=64, source="empty.nii")
    with pytest.raises(ValueError, match="multiple of 32"):
        bx.extract_brain(np.ones((40, 40, 40), np.float32), size=100)


def test_real_case_reproduces_brats_brain_mask(data_root):
    study = load_study(data_root / "brats18" / REAL_CASE, with_labels=False)
    reference = brain_mask(list(study.images.values()))
    assert bx.looks_skull_stripped(study.images, spacing=study.geometry.spacing)
    mask = bx.extract_brain(study.images["t1"], threads=2, source=REAL_CASE)
    assert dice(mask, reference) > REAL_MIN_DICE
