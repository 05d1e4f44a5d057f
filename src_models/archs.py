"""The architectures live in the plugin (``napari_lightseg.backends.torch_archs``) so its torch backend
needs no training code; training imports them from there."""
from napari_lightseg.backends.torch_archs import *  # noqa: F403
from napari_lightseg.backends.torch_archs import IN_CHANNELS, build  # noqa: F401  (explicit for readers)
