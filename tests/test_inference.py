"""Slice inference shared by engine and training: 2.5D context order, region decoding, test-time flips."""
from __future__ import annotations

import numpy as np
import pytest

from napari_lightseg import inference


def test_context_is_offset_major_and_clamped_at_the_ends():
    slices = np.arange(5 * 2, dtype=np.float32).reshape(5, 2, 1, 1)  # (z, sequences, y, x): value = 2z + s
    stacked = inference.stack_context(slices, 0, 2, context=1)
    assert stacked.shape == (2, 6, 1, 1)
    # slice 0: neighbours z-1 (clamped to 0), 0, 1; channels [s0, s1] per offset
    assert stacked[0, :, 0, 0].tolist() == [0, 1, 0, 1, 2, 3]
    assert stacked[1, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert inference.stack_context(slices, 0, 5, context=0).shape == (5, 2, 1, 1)


def test_regions_decode_nested_classes():
    wt = np.array([[1, 1, 1, 0]], bool)
    tc = np.array([[0, 1, 1, 1]], bool)  # TC outside WT is ignored
    et = np.array([[0, 0, 1, 0]], bool)
    labels = inference.labels_from_regions(wt, tc, et)
    assert labels.tolist() == [[inference.ED, inference.NCR, inference.ET, 0]]
    logits = np.stack([np.where(m, 4.0, -4.0) for m in (wt, tc, et)])[None]  # (1, 3, 1, 4)
    assert inference.decode(logits, "regions").tolist() == [[[2, 1, 3, 0]]]


def test_flips_average_the_flipped_back_probabilities():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)

    def mirror_invariant(batch: np.ndarray) -> np.ndarray:
        """A model symmetric under left-right flips: flips must not change its labels."""
        both = batch[:, :4] + np.flip(batch[:, :4], -1)
        return np.concatenate([both.mean(1, keepdims=True), both[:, :3]], axis=1)

    plain = inference.predict_volume(mirror_invariant, image, batch=2)
    flipped = inference.predict_volume(mirror_invariant, image, batch=2, flips=["lr"])
    assert np.array_equal(plain, flipped)

    def shifted(batch: np.ndarray) -> np.ndarray:
        """A model that looks one column to the left: the lr flip really is applied and undone."""
        out = np.zeros((batch.shape[0], 4, *batch.shape[2:]), np.float32)
        out[:, 1, :, 1:] = batch[:, 0, :, :-1]
        return out

    one_way = inference.predict_volume(shifted, image, batch=3)
    averaged = inference.predict_volume(shifted, image, batch=3, flips=["lr", "ap"])
    assert one_way.shape == averaged.shape == (3, 8, 8)
    assert not np.array_equal(one_way, averaged)


def test_slices_without_brain_are_skipped_and_unknown_options_refused():
    image = np.zeros((4, 6, 4, 4), np.float32)
    image[:, 3] = 1.0
    calls = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return np.ones((batch.shape[0], 4, 4, 4), np.float32)

    inference.predict_volume(model, image, batch=2)
    assert calls == [2]  # only the chunk holding slice 3
    with pytest.raises(ValueError, match="flips"):
        inference.predict_volume(model, image, flips=["up"])


def test_cli_flips_option_runs_each_choice(tmp_path):
    from napari_lightseg._sample_data import write_sample_case
    from napari_lightseg.cli import FLIP_CHOICES, main

    case = write_sample_case(tmp_path / "sample", seed=1)
    for choice in FLIP_CHOICES:
        out = tmp_path / f"seg-{choice}.nii.gz"
        assert main(["segment", str(case), "--model", "mnv3-lraspp-v2-int8", "--flips", choice, "--out", str(out)]) == 0
        assert out.exists()


def test_v2_cards_declare_how_they_run():
    from napari_lightseg.models import get_card

    card = get_card("mnv3-lraspp-v2-int8")
    assert card.head == "regions" and card.out_channels == 3 and card.context_slices == 0
    assert set(card.test_time_flips) <= set(inference.FLIP_AXES)


def test_concurrent_batches_give_the_same_labels_in_order_and_cancel_stops_them():
    import threading

    from napari_lightseg.progress import Cancelled

    rng = np.random.default_rng(3)
    image = rng.standard_normal((4, 11, 8, 8)).astype(np.float32)
    threads: set[str] = set()

    def model(batch: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return np.concatenate([batch, batch[:, :1] * 0.5], axis=1)[:, :4]

    fractions: list[float] = []
    serial = inference.predict_volume(model, image, batch=2, context=1, flips=["lr"])
    parallel = inference.predict_volume(model, image, batch=2, context=1, flips=["lr"], workers=2,
                                        progress=lambda f, _m: fractions.append(f))
    assert np.array_equal(serial, parallel)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # reported in slice order
    assert any(name.startswith("lightseg-inference") for name in threads)

    calls: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return model(batch)

    with pytest.raises(Cancelled):
        inference.predict_volume(counting, image, batch=1, workers=2, cancel=lambda: len(calls) >= 2)
    assert len(calls) < image.shape[1]  # the batches not started when Cancel came never ran


def test_the_onnx_runtime_backend_runs_two_batches_at_once_on_two_cores():
    from napari_lightseg.backends.registry import split_threads

    assert split_threads(1) == (1, 1)
    assert split_threads(2) == (2, 1)
    assert split_threads(8) == (2, 4)
