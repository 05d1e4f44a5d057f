"""Pulse-coupled neural networks: unsupervised tumour segmentation (``segment``) and detection (``detect``)."""
from .core import PCNNParameters, PCNNResult, SPCNNParameters, run_pcnn, run_spcnn
from .detect import DETECT_PARAMETERS, Detection, SliceBox, detect, detection_report
from .segment import DEFAULT_PARAMETERS, segment

__all__ = [
    "PCNNParameters", "PCNNResult", "SPCNNParameters", "run_pcnn", "run_spcnn",
    "DETECT_PARAMETERS", "Detection", "SliceBox", "detect", "detection_report",
    "DEFAULT_PARAMETERS", "segment",
]
