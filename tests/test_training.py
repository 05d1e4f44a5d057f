"""src_models: a tiny training run, export to ONNX with a parity check, INT8 quantization.

Skips cleanly when the ``train`` extra (torch) is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from src_models.archs import ARCHITECTURES, build, count_flops, count_params  # noqa: E402
from src_models.export import export_onnx, parity, torch_model_from_onnx  # noqa: E402
from src_models.quantize import calibration_batches, quantize  # noqa: E402
from src_models.train import train  # noqa: E402


@pytest.fixture(scope="module")
def synthetic_case():
    from napari_lightseg._sample_data import make_sample_study
    from napari_lightseg.io import SEQUENCES
    from napari_lightseg.preprocess import prepare

    study = make_sample_study(0)
    image, crop = prepare([study.images[s] for s in SEQUENCES])
    labels = np.zeros(image.shape[1:], np.uint8)
    z, y, x = crop.slices
    region = study.labels[z, y, x]
    labels[: region.shape[0], : region.shape[1], : region.shape[2]] = region
    # a thin slab around the tumour keeps the test fast
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    keep = slice(max(zs[0], 0), zs[0] + 6)
    return image[:, keep].astype(np.float16), labels[keep]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_shapes(arch):
    model = build(arch).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 4, 64, 96))
    assert out.shape == (1, 4, 64, 96)
    assert count_params(model) > 0 and count_flops(model, 64) > 0


def test_tiny_training_export_quantize(synthetic_case, tmp_path):
    last = train("mnv3-lraspp", [synthetic_case], [synthetic_case], tmp_path / "run", steps=3, batch=2, patch=64,
                 val_every=3, threads=1)
    assert last["step"] == 3 and np.isfinite(last["loss"]) and "dice_WT" in last
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "log.jsonl").exists()
    # resume continues from the checkpoint
    last = train("mnv3-lraspp", [synthetic_case], [], tmp_path / "run", steps=4, batch=2, patch=64, val_every=1,
                 resume=True, threads=1)
    assert last["step"] == 4

    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    model = build("mnv3-lraspp")
    model.load_state_dict(ckpt["model"])
    model.eval()
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx", size=64)
    image = synthetic_case[0]
    slices = np.ascontiguousarray(image[:, :4].transpose(1, 0, 2, 3), dtype=np.float32)
    check = parity(model, onnx_path, slices)
    assert check["max_abs_logit_diff"] < 1e-3 and check["label_agreement"] > 0.999

    rebuilt = torch_model_from_onnx(onnx_path, "mnv3-lraspp")
    with torch.no_grad():
        assert torch.allclose(rebuilt(torch.from_numpy(slices)), model(torch.from_numpy(slices)), atol=1e-5)

    int8 = quantize(onnx_path, tmp_path / "tiny-int8.onnx", calibration_batches([synthetic_case], slices=4, batch=2))
    import onnxruntime as ort

    out = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"input": slices})[0]
    assert out.shape == slices.shape
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(int8)).graph.node)


def test_fast_architecture_exports_for_any_crop(tmp_path):
    """mnv3-lraspp-fast halves the slice inside the graph: every crop the engine makes (a multiple of 16, so the
    half-size slice may be only a multiple of 8) must come back at full size, in ONNX as in PyTorch, and the
    exported graph must declare its channel count (its last Resize takes the size from a shape)."""
    import onnx
    import onnxruntime as ort

    model = build("mnv3-lraspp-fast", out_channels=3).eval()
    path = export_onnx(model, tmp_path / "fast.onnx", size=64)
    assert onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((2, 4, 80, 112), (1, 4, 176, 144), (1, 4, 16, 48)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        got = session.run(None, {"input": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == ref.shape == (shape[0], 3, *shape[2:])
        assert np.abs(got - ref).max() < 1e-4
