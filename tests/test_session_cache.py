"""ONNX Runtime sessions: the optimized graph is cached on disk and gives bit-identical outputs."""
from __future__ import annotations

import numpy as np
from helpers import tiny_onnx_card

from napari_lightseg.backends import registry
from napari_lightseg.backends.registry import CPU_PROVIDER, get_backend, optimized_model_path


def _logits(card):
    registry._ort_session.cache_clear()  # as a new process would
    batch = np.random.default_rng(0).standard_normal((3, 4, 16, 12)).astype(np.float32)
    return get_backend("onnxruntime").load(card, None, 1).run(batch)


def test_optimized_graph_is_cached_and_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEG_CACHE", str(tmp_path / "cache"))
    card = tiny_onnx_card(tmp_path)
    cached = optimized_model_path(card.sha256, CPU_PROVIDER)
    assert cached is not None and card.sha256[:16] in cached.name and not cached.exists()
    fresh = _logits(card)
    assert cached.exists() and cached.stat().st_size > 0
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".ort-")]  # no temporary left behind
    assert np.array_equal(_logits(card), fresh)  # loaded from the cache
    cached.write_bytes(b"damaged")
    assert np.array_equal(_logits(card), fresh)  # a damaged cache file is rebuilt
    assert cached.stat().st_size > len(b"damaged")


def test_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEG_CACHE", "off")
    assert optimized_model_path("ab" * 32, CPU_PROVIDER) is None
    monkeypatch.setenv("LIGHTSEG_CACHE", str(tmp_path))
    assert optimized_model_path("ab" * 32, "CUDAExecutionProvider") is None  # device graphs are not cached
    card = tiny_onnx_card(tmp_path)
    monkeypatch.setenv("LIGHTSEG_CACHE", "off")
    assert _logits(card).shape == (3, 4, 16, 12)
    assert not (tmp_path / "ort").exists()
