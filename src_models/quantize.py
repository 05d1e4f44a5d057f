"""Static post-training INT8 quantization with ONNX Runtime.

QDQ format, per-channel signed-8-bit weights, unsigned-8-bit activations (S8 activations were 2x
slower on this AMD CPU), ``quant_pre_process`` first (``skip_symbolic_shape=True``: these graphs
have dynamic spatial sizes). Calibration on training slices only. Ops without INT8 kernels in ONNX
Runtime (HardSwish, HardSigmoid, Resize, GlobalAveragePool, Sigmoid, GroupNorm) are left in FP32:
only Conv, Add, Mul, Concat, MaxPool and Relu are quantized.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

QUANTIZED_OPS = ["Conv", "Add", "Mul", "Concat", "MaxPool", "Relu"]
CALIBRATION_METHODS = ("MinMax", "Percentile", "Entropy")


class SliceReader:
    """Feeds calibration batches (N, 4, H, W) to the calibrator, one window of batches at a time.

    ``set_range`` + ``CalibStridedMinMax`` make ONNX Runtime's calibrators consume one batch per
    pass: the histogram calibrators otherwise keep every activation of every batch in memory.
    """

    def __init__(self, batches: list[np.ndarray]):
        self._batches = batches
        self.set_range(0, len(batches))

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._window = iter(self._batches[start_index:end_index])

    def get_next(self):
        batch = next(self._window, None)
        return None if batch is None else {"input": batch}


def calibration_batches(cases: list[tuple[np.ndarray, np.ndarray]], slices: int = 256, batch: int = 8, seed: int = 0,
                        context: int = 0) -> list[np.ndarray]:
    """About ``slices`` brain slices from training cases (with ``context`` neighbours stacked as at
    inference), zero-padded to one size (the histogram calibrators need equal shapes), in batches."""
    from napari_lightseg.inference import stack_context

    rng = np.random.default_rng(seed)
    per_case = max(1, slices // len(cases))
    height = max(image.shape[2] for image, _ in cases)
    width = max(image.shape[3] for image, _ in cases)
    chosen = []
    for image, _ in cases:
        brain = np.flatnonzero(np.any(image != 0, axis=(0, 2, 3)))
        slices_first = image.transpose(1, 0, 2, 3)
        for z in np.sort(rng.choice(brain, size=min(per_case, len(brain)), replace=False)):
            stacked = stack_context(slices_first, int(z), int(z) + 1, context)[0]
            padded = np.zeros((stacked.shape[0], height, width), dtype=np.float32)
            padded[:, : image.shape[2], : image.shape[3]] = stacked
            chosen.append(padded)
    return [np.stack(chosen[i : i + batch]) for i in range(0, len(chosen), batch)]


def quantize(fp32: Path, out: Path, batches: list[np.ndarray], method: str = "MinMax") -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    extra = {"CalibStridedMinMax": 1, **({"CalibPercentile": 99.99} if method == "Percentile" else {})}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), SliceReader(batches), quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
            calibrate_method=getattr(CalibrationMethod, method), op_types_to_quantize=QUANTIZED_OPS,
            extra_options=extra,
        )
    import onnx

    from .export import declare_channels

    return declare_channels(out, onnx.load(str(fp32)).graph.output[0].type.tensor_type.shape.dim[1].dim_value)
