"""Export a trained checkpoint to ONNX (opset 17, dynamic batch and size), checked against PyTorch.

BatchNorm is kept as nodes (``TrainingMode.PRESERVE`` in eval mode) so the ONNX initializers carry
the state-dict names: the torch backend rebuilds the FP32 model from the same file. ONNX Runtime
fuses BatchNorm into the convolutions when it loads the graph, so this costs no speed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_lightseg.backends.torch_archs import IN_CHANNELS, build, torch_model_from_onnx  # noqa: F401

OPSET = 17


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    config = ckpt["config"]
    model = build(config["arch"], config.get("norm", "bn"), IN_CHANNELS * (2 * config.get("context", 0) + 1),
                  3 if config.get("head", "classes") == "regions" else 4)
    model.load_state_dict(ckpt["model"])
    return model.eval(), config


def export_onnx(model: torch.nn.Module, path: Path, size: int = 160) -> Path:
    model = model.eval()
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    dummy = torch.zeros(2, first_conv.in_channels, size, size)
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(model, dummy, str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": axes, "logits": axes}, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, dynamo=False)
    with torch.no_grad():
        channels = int(model(dummy).shape[1])
    return declare_channels(path, channels)


def declare_channels(path: Path, channels: int) -> Path:
    """Write the output's channel count into the graph when the exporter left it symbolic (a Resize to a
    size taken from a tensor's shape hides it): model cards and the plugin read it from there."""
    import onnx

    graph = onnx.load(str(path))
    dim = graph.graph.output[0].type.tensor_type.shape.dim[1]
    if not dim.HasField("dim_value"):
        dim.dim_value = channels
        onnx.save(graph, str(path))
    return path


def parity(model: torch.nn.Module, onnx_path: Path, slices: np.ndarray, head: str = "classes") -> dict[str, float]:
    """Max |logit| difference and label agreement between PyTorch and ONNX Runtime on ``slices``."""
    import onnxruntime as ort

    from napari_lightseg.inference import decode

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(slices)).numpy()
    got = session.run(["logits"], {"input": slices})[0]
    return {"max_abs_logit_diff": float(np.abs(ref - got).max()),
            "label_agreement": float((decode(ref, head) == decode(got, head)).mean())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    model, config = load_checkpoint(args.checkpoint)
    export_onnx(model, args.out)
    from .data import brats18_cases, load_case

    _, val = brats18_cases()
    image, _ = load_case(val[0])
    mid = image.shape[1] // 2
    slices = np.ascontiguousarray(image[:, mid - 8 : mid + 8].transpose(1, 0, 2, 3), dtype=np.float32)
    print(json.dumps({"onnx": str(args.out), **parity(model, args.out, slices)}))


if __name__ == "__main__":
    main()
