"""napari-lightseg: brain-tumour MRI segmentation on an ordinary CPU (compressed and INT8 CNNs, a PCNN) in napari."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-lightseg")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
