"""Test helpers: tiny ONNX models with cards, and small synthetic studies."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from napari_lightseg.io import Geometry, Study
from napari_lightseg.models import ModelCard
from napari_lightseg.models.cards import sha256_of


def tiny_onnx_card(folder: Path, name: str = "tiny-fp32") -> ModelCard:
    """A 1x1-conv 'model' (logits = a fixed mix of the 4 channels) with its card, written to ``folder``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((4, 4, 1, 1), dtype=np.float32)
    weight[0, :, 0, 0] = -0.25  # background when all sequences are low
    weight[1, 2, 0, 0] = 1.0     # NCR follows T1ce... (arbitrary but deterministic)
    weight[2, 0, 0, 0] = 1.0     # ED follows FLAIR
    weight[3, 3, 0, 0] = 1.0     # ET follows T2
    bias = np.array([0.5, -1.0, -1.0, -1.0], dtype=np.float32)
    node = helper.make_node("Conv", ["input", "w", "b"], ["logits"])
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4, "h", "w"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    card = ModelCard(name=name, kind="cnn", architecture="tiny", precision="fp32", sequences=["flair", "t1", "t1ce", "t2"],
                     label_map={"0": "background", "1": "NCR", "2": "ED", "3": "ET"}, validation={},
                     file=path.name, sha256=sha256_of(path), card_path=path.with_suffix(".json"))
    card.card_path.write_text(card.to_json())
    return card


def blob_study(shape: tuple[int, int, int] = (24, 40, 36), seed: int = 0) -> Study:
    """A small synthetic brain (ellipsoid) with a bright FLAIR blob; RAS 1 mm grid."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = np.array(shape) / 2
    brain = ((z - c[0]) / (0.45 * shape[0])) ** 2 + ((y - c[1]) / (0.45 * shape[1])) ** 2 + ((x - c[2]) / (0.45 * shape[2])) ** 2 < 1
    blob = (z - c[0]) ** 2 + (y - c[1] + 4) ** 2 + (x - c[2] - 3) ** 2 < 16
    images = {}
    for seq in ("flair", "t1", "t1ce", "t2"):
        vol = (100 + 10 * rng.standard_normal(shape)) * brain
        if seq in ("flair", "t2"):
            vol[blob] += 150
        images[seq] = vol.astype(np.float32)
    labels = np.where(blob, 2, 0).astype(np.uint8)
    # a RAS file of shape (x, y, z) is shown as (z, y, x): the arrays above are in display order
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros(shape[::-1], np.float32), np.eye(4)))
    return Study("blob", images, geometry, labels=labels, convention="brats2021")
