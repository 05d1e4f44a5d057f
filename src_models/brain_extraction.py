"""Brain extraction nets: deepbet's two TorchScript models -> ONNX, compact weights, and their cards.

deepbet (Fisch et al., https://github.com/wwu-mmll/deepbet, MIT licence, version 1.0.2) ships a box
net (128^3 input) and a main net (box crop at 256^3), both 3D LinkNets with InstanceNorm, 2.1M
parameters each. Exported with opset 17 and dynamic spatial axes (the main net runs at any multiple
of 32), the 2-class Softmax head folded into one sigmoid channel, checked against PyTorch, then
shipped as ``fp32`` (float16-stored weights, lossless here) and ``int8`` (weight-only per-channel S8,
FP32 compute). Full static QDQ INT8 (U8 activations, MinMax calibration) is built and timed but not
shipped: with InstanceNorm after every conv it runs ~3x slower than FP32 on this CPU. Its calibration
inputs are prepared exactly as at inference (``napari_lightseg.preprocess.brain_extraction``): T1
volumes of brats18 *training* cases (skull-stripped), two of the same brains inside a synthetic head
(scalp, skull, noisy air: ``synthetic_head``) and nilearn's MNI152 2009 T1 template (also
skull-stripped; no whole-head T1 is available offline here).

    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python -m src_models.brain_extraction export --size 192
    LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_brain_extraction.py
    PYTHONPATH=. python -m src_models.brain_extraction cards     # cards from the two JSON files
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from napari_lightseg.models.cards import sha256_of
from napari_lightseg.preprocess import brain_extraction as bx

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = bx.BRAIN_MODEL_DIR
PARITY_JSON = ROOT / "benchmarks" / "brain_extraction_parity.json"
RESULTS_JSON = ROOT / "benchmarks" / "RESULTS_brain_extraction.json"
OPSET = 17
DEEPBET = {
    "name": "deepbet", "version": "1.0.2", "licence": "MIT",
    "repository": "https://github.com/wwu-mmll/deepbet",
    "authors": "Lukas Fisch, Stefan Zumdick, Carlotta Barkhau, Daniel Emden, Jan Ernsting, Ramona Leenings, "
               "Kelvin Sarink, Nils R. Winter, Benjamin Risse, Udo Dannlowski, Tim Hahn",
    "paper": "Fisch et al., deepbet: Fast brain extraction of T1-weighted MRI using Convolutional Neural "
             "Networks, Computers in Biology and Medicine (2024), arXiv:2308.07003",
}
CALIBRATION_CASES = ("Brats18_2013_11_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA01_201_1", "Brats18_TCIA13_623_1")
QUANTIZED_OPS = ["Conv", "ConvTranspose", "Add", "Relu", "MaxPool"]  # InstanceNorm/Softmax stay FP32


def deepbet_paths() -> dict[str, Path]:
    from deepbet.utils import DATA_PATH

    return {"box": Path(DATA_PATH) / "models" / "bbox_model.pt", "main": Path(DATA_PATH) / "models" / "model.pt"}


def export_onnx(pt_path: Path, onnx_path: Path) -> Path:
    """TorchScript -> ONNX opset 17 with dynamic depth/height/width (TorchScript exporter, not dynamo)."""
    import torch

    model = torch.jit.load(str(pt_path), map_location="cpu").eval()
    axes = {2: "depth", 3: "height", 4: "width"}
    torch.onnx.export(model, (torch.zeros(1, 1, 64, 64, 64),), str(onnx_path), input_names=["input"],
                      output_names=["probability"], dynamic_axes={"input": axes, "probability": axes},
                      opset_version=OPSET, dynamo=False)
    return onnx_path


# ------------------------------------------------------------------------------------- input volumes
def t1_display(case: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(T1 in display orientation, BraTS brain mask = any sequence non-zero, spacing) of a brats18 case."""
    from napari_lightseg.io import load_study
    from napari_lightseg.preprocess import brain_mask

    study = load_study(case, with_labels=False)
    return study.images["t1"], brain_mask(list(study.images.values())), study.geometry.spacing


def mni_template_display() -> np.ndarray:
    """nilearn's bundled MNI152 2009 T1 (skull-stripped, RAS) in display orientation (S, P, L)."""
    import nibabel as nib
    from nilearn.datasets import MNI152_FILE_PATH  # a file inside the package: no download

    img = nib.as_closest_canonical(nib.load(MNI152_FILE_PATH))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, ::-1, ::-1])  # RAS -> S,P,L


def synthetic_head(brain: np.ndarray, seed: int = 0, pad: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A skull-stripped T1 (zeros outside the brain) wrapped in a crude T1 head: dark CSF, dark bone,
    bright scalp fat, skin, Rayleigh-noise air; padded by ``pad`` voxels per side. Returns (head,
    brain mask) on the padded grid. No face or neck: easier than a real head (said in the results)."""
    rng = np.random.default_rng(seed)
    brain = np.pad(brain.astype(np.float32), pad)
    inside = ndimage.binary_fill_holes(brain != 0)
    level = float(np.median(brain[inside]))
    distance = ndimage.distance_transform_edt(~inside)
    head = brain.copy()
    for lo, hi, fraction in ((0, 3, 0.25), (3, 9, 0.08), (9, 14, 1.3), (14, 17, 0.7)):
        shell = (distance > lo) & (distance <= hi)
        head[shell] = fraction * level
    tissue = distance <= 17
    head[tissue] *= rng.normal(1.0, 0.04, size=int(tissue.sum())).astype(np.float32)
    air = ~tissue
    head[air] = rng.rayleigh(0.03 * level, size=int(air.sum())).astype(np.float32)
    return head, inside


def calibration_volumes(root: Path) -> list[np.ndarray]:
    """Display-orientation T1 volumes the calibrator sees (none is a benchmark case)."""
    volumes = []
    for i, name in enumerate(CALIBRATION_CASES):
        t1, _, _ = t1_display(root / "brats18" / name)
        volumes.append(t1)
        if i % 2 == 0:
            volumes.append(synthetic_head(t1, seed=i)[0])
    volumes.append(mni_template_display())
    return volumes


def net_inputs(volume: np.ndarray, size: int, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """The (box-net, main-net) input cubes of a display-orientation volume, exactly as at inference."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    x = apply_orientation(volume.astype(np.float32), ornt_transform(axcodes2ornt(bx.DISPLAY_AXCODES), axcodes2ornt(bx.RAS)))
    small = bx.resample_nearest(x, bx.BOX_NET_SHAPE)
    low, high = bx.intensity_range(small)
    box_cube = bx.normalize(small, low, high)
    small_mask = bx.largest_component(bx._net("box", precision, None)(box_cube) > bx.THRESHOLD)
    box = bx.box_with_margin(small_mask.astype(np.float32), x.shape)
    return box_cube, bx.normalize(bx.resample_nearest(x[box], (size, size, size)), low, high)


class CubeReader:
    """Feeds one (1, 1, D, H, W) cube per calibration pass."""

    def __init__(self, cubes: list[np.ndarray]):
        self._cubes = cubes
        self.set_range(0, len(cubes))

    def __len__(self) -> int:
        return len(self._cubes)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._window = iter(self._cubes[start_index:end_index])

    def get_next(self):
        cube = next(self._window, None)
        return None if cube is None else {"input": cube[None, None]}


def quantize_static_qdq(fp32: Path, out: Path, cubes: list[np.ndarray]) -> Path:
    """Full static INT8 (activations too). Measured, not shipped: InstanceNorm after every conv forces
    a dequantize/quantize round trip on large 3D tensors, and it runs slower than FP32 here."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), CubeReader(cubes), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=QUANTIZED_OPS,
                        extra_options={"CalibStridedMinMax": 1})
    return out


def sigmoid_head(model) -> float:
    """Replace the last ConvTranspose (2 classes) + Softmax(axis=1) by a 1-channel ConvTranspose giving
    z1 - z0, + Sigmoid: the same brain probability (softmax of two = sigmoid of the difference), and
    ONNX Runtime's Softmax over a non-last axis took ~40% of the main net's time. Returns the largest
    rounding change of the folded weights when stored as float16 (0 = still float16-exact)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    softmax = graph.node[-1]
    last = next(n for n in graph.node if softmax.input[0] in n.output)
    if softmax.op_type != "Softmax" or last.op_type != "ConvTranspose":
        raise ValueError(f"unexpected head {last.op_type} -> {softmax.op_type}")
    initializers = {i.name: i for i in graph.initializer}
    weight = numpy_helper.to_array(initializers[last.input[1]])  # (C_in, 2, k, k, k)
    bias = numpy_helper.to_array(initializers[last.input[2]])
    folded_w = (weight[:, 1:2] - weight[:, 0:1]).astype(np.float32)
    folded_b = (bias[1:2] - bias[0:1]).astype(np.float32)
    for name, value in ((last.input[1], folded_w), (last.input[2], folded_b)):
        graph.initializer.remove(initializers[name])
        graph.initializer.append(numpy_helper.from_array(value, name))
    sigmoid = helper.make_node("Sigmoid", [softmax.input[0]], [softmax.output[0]], name="brain_probability")
    graph.node.remove(softmax)
    graph.node.append(sigmoid)
    output = graph.output[0]
    output.type.tensor_type.shape.dim[1].dim_value = 1
    return float(np.abs(folded_w.astype(np.float16).astype(np.float32) - folded_w).max())


def _rewrite_weights(fp32: Path, out: Path, mode: str) -> dict[str, float]:
    """Store the Conv/ConvTranspose weights compactly; compute stays FP32.

    ``fp16``: float16 initializers + Cast (ONNX Runtime folds the Cast at load; lossless here because
    deepbet's weights are float16 values). ``none``: FP32 as exported, head folded. ``int8``: per-output-channel symmetric S8 + DequantizeLinear
    (weight-only INT8: 4x smaller, same FP32 kernels)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32))
    head_fp16_change = sigmoid_head(model)
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    new_nodes, worst = [], 0.0
    for node in graph.node:
        if mode == "none" or node.op_type not in ("Conv", "ConvTranspose") or node.input[1] not in initializers:
            continue
        name = node.input[1]
        weight = numpy_helper.to_array(initializers[name])
        if mode == "fp16" and np.any(weight.astype(np.float16).astype(np.float32) != weight):
            continue  # keep float32 what float16 would round (the folded head): stays lossless
        graph.initializer.remove(initializers[name])
        if mode == "fp16":
            stored = weight.astype(np.float16)
            graph.initializer.append(numpy_helper.from_array(stored, f"{name}_fp16"))
            new_nodes.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT))
            restored = stored.astype(np.float32)
        else:
            axis = 0 if node.op_type == "Conv" else 1  # output channels
            reduce = tuple(a for a in range(weight.ndim) if a != axis)
            scale = (np.abs(weight).max(axis=reduce) / 127.0).astype(np.float32)
            scale[scale == 0] = 1.0
            shape = [1] * weight.ndim
            shape[axis] = -1
            q = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
            graph.initializer.extend([numpy_helper.from_array(q, f"{name}_s8"), numpy_helper.from_array(scale, f"{name}_scale"),
                                      numpy_helper.from_array(np.zeros_like(q, shape=scale.shape), f"{name}_zero")])
            new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_s8", f"{name}_scale", f"{name}_zero"], [name], axis=axis))
            restored = q.astype(np.float32) * scale.reshape(shape)
        worst = max(worst, float(np.abs(restored - weight).max()))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return {"max_weight_error": worst, "folded_head_fp16_rounding": head_fp16_change}


def torch_parity(pt_path: Path, onnx_path: Path, cube: np.ndarray) -> dict[str, float]:
    """Max |probability| difference and thresholded agreement, PyTorch vs ONNX Runtime, on one cube."""
    import onnxruntime as ort
    import torch

    model = torch.jit.load(str(pt_path), map_location="cpu").eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(cube)[None, None])[0, 1].numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": cube[None, None]})[0][0, -1]
    a, b = ref > 0.5, got > 0.5
    return {"max_abs_diff": float(np.abs(ref - got).max()), "voxels_disagreeing": int((a != b).sum()),
            "mask_dice": float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))}


def _seconds(path: Path, cube: np.ndarray, repeats: int = 2) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    session.run(None, {"input": cube[None, None]})
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {"input": cube[None, None]})
        best = min(best, time.perf_counter() - t)
    return round(float(best), 2)


def export_all(root: Path, size: int, out_dir: Path = OUT_DIR) -> dict:
    """Export, check against PyTorch, write the shipped files (``fp32``: FP16-stored weights, ``int8``:
    weight-only S8), and time full static QDQ INT8 against them (not shipped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = deepbet_paths()
    report: dict = {"size": size, "calibration": {"brats18_t1": list(CALIBRATION_CASES),
                    "synthetic_heads_of": list(CALIBRATION_CASES[::2]), "template": "nilearn MNI152 2009 T1 (skull-stripped)"}}
    with tempfile.TemporaryDirectory() as tmp:
        for role in bx.ROLES:
            full = export_onnx(paths[role], Path(tmp) / f"{role}-softmax.onnx")
            _rewrite_weights(full, Path(tmp) / f"{role}.onnx", "none")  # plain FP32, sigmoid head: for static QDQ
            report[f"{role}_fp16_storage"] = _rewrite_weights(full, out_dir / f"brain-{role}-fp32.onnx", "fp16")
            report[f"{role}_int8_weights"] = _rewrite_weights(full, out_dir / f"brain-{role}-int8.onnx", "int8")
        _write_provisional_cards(out_dir)  # the plugin's preprocessing (box net included) prepares calibration
        volumes = calibration_volumes(root)
        inputs = [net_inputs(v, size) for v in volumes]
        cubes = {"box": [a for a, _ in inputs], "main": [b for _, b in inputs]}
        for role in bx.ROLES:
            shipped = out_dir / f"brain-{role}-fp32.onnx"
            report[f"{role}_parity_fp32_vs_torch"] = torch_parity(paths[role], shipped, cubes[role][0])
            report[f"{role}_parity_int8_vs_torch"] = torch_parity(paths[role], out_dir / f"brain-{role}-int8.onnx", cubes[role][0])
            qdq = quantize_static_qdq(Path(tmp) / f"{role}.onnx", Path(tmp) / f"{role}-qdq.onnx", cubes[role])
            cube = cubes[role][0]
            report[f"{role}_seconds_at_{cube.shape[0]}"] = {
                "fp32": _seconds(shipped, cube), "int8_weights": _seconds(out_dir / f"brain-{role}-int8.onnx", cube),
                "static_qdq_int8 (not shipped)": _seconds(qdq, cube)}
            report[f"{role}_parity_static_qdq_vs_torch"] = torch_parity(paths[role], qdq, cube)
    _write_provisional_cards(out_dir)
    PARITY_JSON.write_text(json.dumps(report, indent=2) + "\n")
    return report


# -------------------------------------------------------------------------------------------- cards
def count_params(path: Path) -> int:
    """Weights and biases in an exported file (quantization scales and zero points not counted)."""
    import onnx
    from onnx import TensorProto

    kinds = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8)
    return sum(int(np.prod(i.dims)) for i in onnx.load(str(path)).graph.initializer
               if i.data_type in kinds and not i.name.endswith(("_scale", "_zero")))


def _card(role: str, precision: str, out_dir: Path, parity: dict, results: dict | None) -> dict:
    path = out_dir / f"brain-{role}-{precision}.onnx"
    what = ("box net: brain probability on the whole volume resampled to 128^3, gives the crop" if role == "box"
            else "main net: brain probability on the box crop resampled to a cube (deepbet: 256^3)")
    card: dict[str, Any] = {
        "name": f"brain-{role}-{precision}", "kind": "cnn", "architecture": f"deepbet-{role} (3D LinkNet, InstanceNorm)",
        "precision": precision, "sequences": ["t1"], "label_map": {"0": "background", "1": "brain"},
        "description": f"Brain extraction, {what}. Exported from deepbet 1.0.2 (MIT). Not a tumour model.",
        "file": path.name, "sha256": sha256_of(path), "params": count_params(path),
        "inputs": ["input"], "outputs": ["probability"],
        "normalization": "clip to the 0.5/99.5 percentiles of the 128^3 cube, z-score (unbiased std), *0.226+0.449",
        "parameters": {"threshold": bx.THRESHOLD, "box_margin": bx.BOX_MARGIN, "box_net_shape": list(bx.BOX_NET_SHAPE),
                       "default_size": bx.DEFAULT_SIZE, "orientation": "RAS voxel order (nib.as_closest_canonical)"},
        "quantization": ({"format": "weight-only: per-output-channel symmetric S8 + DequantizeLinear, FP32 compute",
                          "why_not_static_qdq": "InstanceNorm follows every conv; full QDQ INT8 measured slower "
                                                "than FP32 (see extra.speed_static_qdq)", "weight_error": parity.get(f"{role}_int8_weights")}
                         if precision == "int8" else {"format": "float16-stored weights + Cast, FP32 compute (lossless: "
                                                      "deepbet's weights are float16 values)",
                                                      "weight_error": parity.get(f"{role}_fp16_storage")}),
        "validation": {}, "training": {"credit": DEEPBET, "trained_by": "the deepbet authors (not retrained here)"},
        "reproduce": ["LIGHTSEG_DATA=../shared/data PYTHONPATH=. python -m src_models.brain_extraction export --size 192",
                      "LIGHTSEG_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_brain_extraction.py",
                      "PYTHONPATH=. python -m src_models.brain_extraction cards"],
        "extra": {"parity_vs_torch": parity.get(f"{role}_parity_{precision}_vs_torch"),
                  "speed_static_qdq": {k: v for k, v in parity.items() if k.startswith(f"{role}_seconds")},
                  "static_qdq_calibration": parity.get("calibration")},
    }
    if results:
        summary = results["summary"]
        card["validation"] = {
            "what": "whole pipeline (box + main net at this precision) on the T1; reference = non-zero voxels of "
                    "the BraTS case / template; torch = deepbet 1.0.2 itself at 256^3",
            "cases": [r["case"] for r in results["rows"]],
            "results_file": "benchmarks/RESULTS_brain_extraction.md",
            "torch_original_dice_vs_brats_mask_mean": summary["torch"]["vs_ref_mean_brats"],
            **{f"main_net_size_{key.split('@')[1]}": {
                "dice_vs_torch_mean": cell["vs_torch_mean"], "dice_vs_torch_min": cell["vs_torch_min"],
                "dice_vs_brats_mask_mean": cell["vs_ref_mean_brats"], "seconds_total_mean": cell["seconds_mean"]["total"]}
               for key, cell in summary.items() if key.startswith(f"{precision}@")},
        }
        card["extra"]["speed_pipeline_seconds_mean"] = results.get("speed", {})
        card["extra"]["speed_each_net_warm"] = results.get("net_seconds_warm", {})
        card["extra"]["measured_on"] = results.get("machine", "")
    return card


def _write_provisional_cards(out_dir: Path, results: dict | None = None) -> None:
    parity = json.loads(PARITY_JSON.read_text()) if PARITY_JSON.exists() else {}
    for role in bx.ROLES:
        for precision in bx.PRECISIONS:
            if (out_dir / f"brain-{role}-{precision}.onnx").exists():
                card = _card(role, precision, out_dir, parity, results)
                target = out_dir / f"brain-{role}-{precision}.json"
                tmp = target.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(card, indent=2) + "\n")
                tmp.replace(target)
    bx._session.cache_clear()
    bx._verified_card.cache_clear()


def write_cards(out_dir: Path = OUT_DIR) -> None:
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else None
    _write_provisional_cards(out_dir, results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="ONNX FP32 + INT8 into napari_lightseg/models/brain")
    export.add_argument("--size", type=int, default=bx.DEFAULT_SIZE, help="main-net cube edge used for calibration")
    export.add_argument("--data", type=Path, default=None, help="data root (default LIGHTSEG_DATA or ../shared/data)")
    sub.add_parser("cards", help="rewrite the cards with the benchmark's numbers")
    args = parser.parse_args(argv)
    if args.command == "export":
        from .data import DATA_ROOT

        print(json.dumps(export_all(args.data or DATA_ROOT, args.size), indent=2))
    else:
        write_cards()


if __name__ == "__main__":
    main()
