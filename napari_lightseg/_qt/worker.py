"""One way to run slow work from a widget: a napari thread worker with progress, Cancel and a status line.

Why one helper: the widgets had two patterns, and the generator one never ended after a cancel
(napari's GeneratorWorker swallows a RuntimeError such as ``Cancelled``, so neither ``finished``
nor ``errored`` arrived and the controls stayed greyed). Here the work is always a plain function;
partial results (one per model in a batch) travel through ``deliver`` instead of ``yield``.
The worker never touches widgets: progress and results cross to the GUI thread as queued signals,
and the controls are re-enabled in one place whatever the outcome.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QWidget

from ..progress import Cancelled

CANCELLED_TEXT = "Cancelled."
PROGRESS_STEPS = 1000


class TaskRunner(QObject):
    """Starts ``function(*args, progress=..., cancel=..., **kwargs)`` in a thread for one widget.

    ``controls`` are disabled while the task runs and always re-enabled at its end; ``cancel_button``
    is enabled only while it runs. Errors and "Cancelled." go to ``status`` (one line). ``ended`` is
    emitted after the controls came back, whatever the outcome (a widget re-checks its own rules there).
    """

    progressed = Signal(float, str)
    delivered = Signal(object)
    ended = Signal()

    def __init__(self, status: QLabel, progress_bar: QProgressBar, controls: Sequence[QWidget],
                 cancel_button: QWidget | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.status, self.progress_bar = status, progress_bar
        self.controls, self.cancel_button = list(controls), cancel_button
        self.cancel_event = threading.Event()
        self.worker = None
        self._activity = None
        self._title = ""
        self._on_partial: Callable[[Any], None] | None = None
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.progressed.connect(self._on_progress)
        self.delivered.connect(self._on_delivered)
        if cancel_button is not None:
            cancel_button.setEnabled(False)
            cancel_button.clicked.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def cancel(self) -> None:
        self.cancel_event.set()

    def start(self, title: str, function: Callable[..., Any], on_result: Callable[[Any], None] | None, *args: Any,
              on_partial: Callable[[Any], None] | None = None, **kwargs: Any):
        """Run the function; ``on_partial`` (if given) receives what it passes to ``deliver=``. Returns the worker."""
        if self.running:
            self.status.setText(f"Busy: {title} waits until the current task ends.")
            return None
        self.cancel_event.clear()
        self._title = title
        self._on_partial = on_partial
        if on_partial is not None:
            kwargs["deliver"] = self.delivered.emit
        worker = create_worker(function, *args, progress=self.progressed.emit, cancel=self.cancel_event.is_set,
                               _ignore_errors=True, **kwargs)  # errors go to the status line, not a traceback dialog
        worker.returned.connect(lambda _: self._show_fraction(1.0))
        if on_result is not None:
            worker.returned.connect(on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._set_running(True)
        self.progress_bar.setRange(0, 0)  # busy until the task reports a fraction (one-call tasks never do)
        self.status.setText(f"Running {title}…")
        self._activity = napari_progress(total=PROGRESS_STEPS, desc=f"lightseg {title}")  # napari's activity dock
        self.worker = worker
        worker.start()
        return worker

    def _set_running(self, running: bool) -> None:
        for control in self.controls:
            control.setEnabled(not running)
        if self.cancel_button is not None:
            self.cancel_button.setEnabled(running)

    def _show_fraction(self, fraction: float) -> None:
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.progress_bar.setValue(int(fraction * PROGRESS_STEPS))

    def _on_progress(self, fraction: float, message: str) -> None:
        self._show_fraction(fraction)
        self.status.setText(message)
        if self._activity is not None:
            self._activity.n = int(fraction * PROGRESS_STEPS)
            self._activity.set_description(f"lightseg: {message}")

    def _on_delivered(self, item: Any) -> None:
        if self._on_partial is not None:
            self._on_partial(item)

    def _on_error(self, exc: BaseException) -> None:
        # the task's name first: "remove islands failed: ..." says which of several operations went wrong
        failed = f"{self._title} failed: {exc}".splitlines()[0]
        self.status.setText(CANCELLED_TEXT if isinstance(exc, Cancelled) else failed)

    def _on_finished(self) -> None:
        self.worker = None
        if self.progress_bar.maximum() == 0:  # ended (error, cancel) before any fraction: not busy any more
            self._show_fraction(0.0)
        self._set_running(False)
        if self._activity is not None:
            self._activity.close()
            self._activity = None
        self.ended.emit()
