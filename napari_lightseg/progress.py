"""Progress reporting and cooperative cancel for long work (engine, PCNN), free of Qt."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[float, str], None]  # (fraction 0..1, message)
CancelCallback = Callable[[], bool]  # True when the user asked to stop


class Cancelled(RuntimeError):
    """The user cancelled the run; nothing was produced."""


def report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """Pass progress on to the caller's callback, if any, with the fraction clamped to [0, 1]."""
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), message)


def check_cancel(cancel: CancelCallback | None) -> None:
    """Stop the work with Cancelled once the caller asks for it."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")


def cancellable_call(function: Callable[..., Any], *args: Any, progress: ProgressCallback | None = None,
                     cancel: CancelCallback | None = None, **kwargs: Any) -> Any:
    """Run a function that knows no progress or cancel (one array operation) in a worker.

    Cancel is checked before and after it: a cancel during the call drops its result (Cancelled).
    ``progress`` is accepted for the worker's calling convention; one call has no steps to report.
    """
    check_cancel(cancel)
    result = function(*args, **kwargs)
    check_cancel(cancel)
    return result
