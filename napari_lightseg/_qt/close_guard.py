"""Ask before napari's window closes while an edited mask is unsaved (see ``correction_widget``)."""
from __future__ import annotations

import os

import napari
from napari.layers import Labels
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMessageBox

from ..layers import lightseg_metadata


def close_prompt_enabled() -> bool:
    return os.environ.get("LIGHTSEG_NO_CLOSE_PROMPT", "") != "1"


def is_edited(layer) -> bool:
    return isinstance(layer, Labels) and bool(lightseg_metadata(layer.metadata).get("edited"))


def unsaved_layers(layers) -> list[str]:
    """Names of edited masks with changes since their last save."""
    return [layer.name for layer in layers if is_edited(layer) and lightseg_metadata(layer.metadata).get("unsaved")]


class _CloseGuard(QObject):
    """Asks before napari's main window closes while an edited mask is unsaved.

    napari 0.9 has no plugin hook to veto closing (its closeEvent only asks about running tasks, and
    only for window-manager closes), so this event filter sits on the main window. A programmatic
    ``viewer.close()`` closes the QtViewer first and tears the window down regardless: then it stays quiet.
    """

    def __init__(self, viewer: napari.Viewer):
        window = viewer.window._qt_window
        super().__init__(window)
        self.viewer = viewer
        self._tearing_down = False
        window.installEventFilter(self)
        viewer.window._qt_viewer.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.Close:
            return False
        if obj is not self.parent():
            self._tearing_down = True  # the QtViewer closes: viewer.close() is under way
            return False
        names = unsaved_layers(self.viewer.layers) if close_prompt_enabled() and not self._tearing_down else []
        if names and QMessageBox.question(
                self.parent(), "Unsaved mask edits",
                f"Edits not saved: {', '.join(names)}.\nClose napari anyway?") != QMessageBox.StandardButton.Yes:
            event.ignore()
            return True
        return False


def install_close_guard(viewer: napari.Viewer) -> None:
    """One guard per napari window, however many correction widgets are opened."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # plugins get a public-only proxy; Qt needs the real window
    window = viewer.window._qt_window
    if window.findChild(_CloseGuard) is None:
        _CloseGuard(viewer)
