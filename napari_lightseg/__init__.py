"""napari-lightseg: brain-tumour MRI segmentation on an ordinary CPU (compressed and INT8 CNNs, a PCNN) in napari."""
from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__`` on first use: ``importlib.metadata`` costs ~30 ms at every CLI start otherwise."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("napari-lightseg")
    except PackageNotFoundError:  # a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
