"""Engine and backends on a tiny ONNX model and, when present, on shipped models."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import blob_study, tiny_onnx_card

from napari_lightseg import engine
from napari_lightseg.backends import available_backends, backend_choices, parse_backend
from napari_lightseg.models import list_cards
from napari_lightseg.postprocess import find_components, remove_small_components
from napari_lightseg.progress import Cancelled

pytest.importorskip("onnx")


@pytest.fixture
def tiny_card(tmp_path):
    return tiny_onnx_card(tmp_path)


def test_engine_runs_tiny_model(tiny_card):
    study = blob_study()
    seen = []
    result = engine.run(study, tiny_card, progress=lambda f, m: seen.append(f))
    assert result.labels.shape == study.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 1, 2, 3}
    assert result.labels[study.labels == 2].mean() > 0  # the bright FLAIR blob is found
    assert result.report.backend == "onnxruntime" and result.report.provider == "CPUExecutionProvider"
    assert set(result.report.timings_s) == {"load", "preprocess", "inference", "postprocess", "total"}
    assert set(result.report.volumes_ml) == {"NCR", "ED", "ET", "WT", "TC"}
    assert result.report.detections and result.report.detections[0].volume_ml > 0
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_outside_brain_is_background(tiny_card):
    study = blob_study()
    result = engine.run(study, tiny_card)
    assert not result.labels[study.images["flair"] == 0].any()


def test_unavailable_provider_falls_back_to_cpu(tiny_card):
    result = engine.run(blob_study(), tiny_card, "onnxruntime:NoSuchExecutionProvider")
    assert result.report.provider == "CPUExecutionProvider"
    assert any("fell back" in note for note in result.report.notes)


def test_cancel_stops_the_run(tiny_card):
    with pytest.raises(Cancelled):
        engine.run(blob_study(), tiny_card, cancel=lambda: True)


def test_missing_sequence_is_a_clear_error(tiny_card):
    study = blob_study()
    del study.images["t1ce"]
    with pytest.raises(ValueError, match="t1ce"):
        engine.run(study, tiny_card)


def test_backend_registry(tiny_card):
    assert parse_backend(None, tiny_card) == ("onnxruntime", None)
    assert parse_backend("onnxruntime:CPUExecutionProvider", tiny_card) == ("onnxruntime", "CPUExecutionProvider")
    assert "onnxruntime:CPUExecutionProvider" in backend_choices(tiny_card)
    assert "numpy" not in available_backends(tiny_card)


def test_small_components_are_dropped():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:10, 2:10, 2:10] = 2
    labels[15, 15, 15] = 1
    out = remove_small_components(labels, 0.01, (1.0, 1.0, 1.0), per_class=False)
    assert out[15, 15, 15] == 0 and (out[2:10, 2:10, 2:10] == 2).all()
    dets = find_components(out, (1.0, 1.0, 1.0))
    assert len(dets) == 1 and tuple(dets[0].box) == ((2, 2, 2), (9, 9, 9)) and dets[0].volume_ml == pytest.approx(0.512)


CNN_CARDS = [c for c in list_cards() if c.kind == "cnn"]


@pytest.mark.skipif(not CNN_CARDS, reason="no shipped CNN models")
@pytest.mark.parametrize("card", CNN_CARDS, ids=lambda c: c.name)
def test_shipped_model_on_sample(card):
    from napari_lightseg._sample_data import make_sample_study

    study = make_sample_study(0)
    result = engine.run(study, card, threads=2)
    assert result.labels.shape == study.shape
    assert result.report.volumes_ml["WT"] > 0.0


def test_torch_backend_matches_onnxruntime():
    """The FP32 PyTorch reference (rebuilt from the ONNX file) gives the ONNX Runtime labels."""
    pytest.importorskip("torch")
    from napari_lightseg._sample_data import make_sample_study
    from napari_lightseg.models import get_card

    fp32 = [c for c in CNN_CARDS if c.precision == "fp32"]
    if not fp32 or not available_backends(fp32[0]).get("torch", (False, ""))[0]:
        pytest.skip("torch backend unavailable here")
    card = min(fp32, key=lambda c: c.flops_per_slice or 0)
    study = make_sample_study(0)
    ort_labels = engine.run(study, card, "onnxruntime", threads=2).labels
    torch_result = engine.run(study, get_card(card.name), "torch", threads=2)
    assert torch_result.report.backend == "torch"
    assert (torch_result.labels == ort_labels).mean() > 0.999


def test_brain_region_is_computed_once_per_run(tiny_card, monkeypatch):
    """The input checks compute the brain region once; preprocessing and the result check reuse that array."""
    from napari_lightseg import preprocess
    from napari_lightseg.preprocess import quality

    calls = {"brain_mask": 0, "inspect_inputs": 0, "background_offset": 0}
    seen: dict[str, object] = {}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    def prepare_spy(volume, mask=None, _prepare=engine.prepare):
        seen["prepare"] = mask
        return _prepare(volume, mask)

    def check_result_spy(labels, study, sequences, brain=None, _check=quality.check_result):
        seen["check_result"] = brain
        return _check(labels, study, sequences, brain)

    monkeypatch.setattr(preprocess, "brain_mask", counted("brain_mask", preprocess.brain_mask))
    monkeypatch.setattr(quality, "inspect_inputs", counted("inspect_inputs", quality.inspect_inputs))
    monkeypatch.setattr(quality, "background_offset", counted("background_offset", quality.background_offset))
    monkeypatch.setattr(engine, "prepare", prepare_spy)
    monkeypatch.setattr(quality, "check_result", check_result_spy)
    study = blob_study()
    result = engine.run(study, tiny_card)
    assert calls == {"brain_mask": 0, "inspect_inputs": 1, "background_offset": len(tiny_card.sequences)}
    brain = seen["prepare"]
    assert isinstance(brain, np.ndarray) and seen["check_result"] is brain
    assert np.array_equal(brain, preprocess.brain_mask([study.images[s] for s in tiny_card.sequences]))
    assert result.labels.any()


def test_clean_and_find_equals_removal_then_detection():
    """The engine's one-labelling post-processing gives the labels and detections of the two separate calls."""
    from napari_lightseg.metrics import class_volumes_ml
    from napari_lightseg.postprocess import clean_and_find

    rng = np.random.default_rng(3)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(3, 20, size=3))
        labels = ((rng.random(shape) < rng.uniform(0.0, 0.3)) * rng.integers(1, 4, size=shape)).astype(np.uint8)
        spacing = tuple(float(s) for s in rng.uniform(0.5, 2.0, size=3))
        min_ml = float(rng.uniform(0.0, 0.02))
        expected = remove_small_components(labels, min_ml, spacing, per_class=False)
        cleaned, detections = clean_and_find(labels, min_ml, spacing)
        assert cleaned.dtype == expected.dtype and np.array_equal(cleaned, expected)
        assert detections == find_components(expected, spacing)
        assert class_volumes_ml(cleaned, spacing) == class_volumes_ml(cleaned.astype(np.int16), spacing)
