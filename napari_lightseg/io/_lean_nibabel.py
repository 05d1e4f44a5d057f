"""Import nibabel without pydicom: imported by ``napari_lightseg.io`` before anything that uses nibabel.

Why: ``nibabel.nifti1`` imports pydicom whenever it is installed, only to parse NIfTI DICOM header
extensions (code 2), which nothing here reads; without it nibabel keeps them as raw bytes. pydicom in
turn pulls in ``requests``: ~0.2 CPU s at every ``lightseg`` start (``benchmarks/RESULTS_speed.md``).
pydicom stays importable: the DICOM reader imports it when it reads a study. A process that loaded
pydicom or nibabel before this module is left as it is.
"""
from __future__ import annotations

import importlib
import sys


def import_nibabel_without_pydicom() -> None:
    """Import nibabel while ``import pydicom`` raises ImportError, then make pydicom importable again."""
    if "nibabel.nifti1" in sys.modules or "pydicom" in sys.modules:
        return
    sys.modules["pydicom"] = None  # type: ignore[assignment]  # Python's marker for "cannot be imported"
    try:
        importlib.import_module("nibabel")
    finally:
        if "pydicom" in sys.modules and sys.modules["pydicom"] is None:
            del sys.modules["pydicom"]


import_nibabel_without_pydicom()
