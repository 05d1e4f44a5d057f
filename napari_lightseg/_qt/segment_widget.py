"""Dock widget: pick sequences, model and backend; run in a worker with progress and Cancel;
show the labels, the boxes and a timing table; switch to 3D."""
from __future__ import annotations

import threading

import napari
import numpy as np
from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import engine
from ..backends import backend_choices
from ..backends.registry import default_threads
from ..io import SEQUENCE_TITLES, SEQUENCES
from ..layers import boxes_layers, labels_layer, sequence_layers, study_from_layers
from ..models import list_cards
from ..progress import Cancelled
from .view3d import show_3d

RUN_COLUMNS = ("model", "backend", "provider", "total_s", "inference_s", "ms_per_slice", "NCR_ml", "ED_ml", "ET_ml", "WT_ml")


class _ProgressRelay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progressed = Signal(float, str)


class SegmentWidget(QWidget):
    runs: list[dict] = []  # runs since napari started, shared by all widget instances

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.cards = {c.name: c for c in list_cards()}
        self._cancel = threading.Event()
        self._worker = None
        self._activity = None
        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._on_progress)

        layout = QVBoxLayout(self)
        seq_box = QGroupBox("Sequences")
        seq_form = QFormLayout(seq_box)
        self.sequence_combos: dict[str, QComboBox] = {}
        for seq in SEQUENCES:
            combo = QComboBox()
            self.sequence_combos[seq] = combo
            seq_form.addRow(SEQUENCE_TITLES[seq], combo)
        layout.addWidget(seq_box)

        model_form = QFormLayout()
        self.model_combo = QComboBox()
        for card in self.cards.values():
            dice = card.validation.get("dice_WT")
            label = f"{card.name}  ({card.precision}, {card.file_mb:.2f} MB" + (f", val Dice WT {dice:.2f})" if dice is not None else ")")
            self.model_combo.addItem(label, card.name)
        self.backend_combo = QComboBox()
        self.threads = QSpinBox()
        self.threads.setRange(1, 256)
        self.threads.setValue(default_threads())
        model_form.addRow("Model", self.model_combo)
        model_form.addRow("Backend", self.backend_combo)
        model_form.addRow("Threads", self.threads)
        layout.addLayout(model_form)

        self.param_box = QGroupBox("PCNN parameters")
        self.param_form = QFormLayout(self.param_box)
        self.param_spins: dict[str, QDoubleSpinBox] = {}
        layout.addWidget(self.param_box)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.view3d_button = QPushButton("3D view")
        self.detect_button = QPushButton("Detect (PCNN)")
        self.detect_button.setToolTip("Training-free tumour box: selective search + PCNN signatures on FLAIR/T2")
        for b in (self.run_button, self.detect_button, self.cancel_button, self.view3d_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.table = QTableWidget(0, len(RUN_COLUMNS))
        self.table.setHorizontalHeaderLabels(RUN_COLUMNS)
        layout.addWidget(self.table)
        self.copy_button = QPushButton("Copy runs as CSV")
        layout.addWidget(self.copy_button)

        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.run_button.clicked.connect(self.run)
        self.detect_button.clicked.connect(self.detect)
        self.cancel_button.clicked.connect(self._cancel.set)
        self.view3d_button.clicked.connect(lambda: show_3d(self.viewer))
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.runs_csv()))
        self.viewer.layers.events.inserted.connect(self._refresh_sequences)
        self.viewer.layers.events.removed.connect(self._refresh_sequences)
        self._refresh_sequences()
        self._on_model_changed()
        self._refresh_table()

    # ----------------------------------------------------------------- state
    @property
    def card(self):
        return self.cards.get(self.model_combo.currentData())

    def _refresh_sequences(self, *_):
        found = sequence_layers(self.viewer.layers)
        names = [l.name for l in self.viewer.layers if l._type_string == "image"]
        for seq, combo in self.sequence_combos.items():
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("")
            combo.addItems(names)
            preferred = current if current in names else (found[seq][-1] if found[seq] else "")
            combo.setCurrentText(preferred)
            combo.blockSignals(False)

    def _on_model_changed(self, *_):
        card = self.card
        self.backend_combo.clear()
        if card is None:
            return
        self.backend_combo.addItems(backend_choices(card))
        while self.param_form.rowCount():
            self.param_form.removeRow(0)
        self.param_spins = {}
        numeric = {k: v for k, v in card.parameters.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key, value in numeric.items():
            spin = QDoubleSpinBox()
            spin.setDecimals(4)
            spin.setRange(-1e6, 1e6)
            spin.setValue(float(value))
            self.param_spins[key] = spin
            self.param_form.addRow(key, spin)
        self.param_box.setVisible(bool(numeric))

    def _set_running(self, running: bool):
        for w in (self.run_button, self.detect_button, self.model_combo, self.backend_combo, self.threads, self.param_box, *self.sequence_combos.values()):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    # ----------------------------------------------------------------- run
    def run(self):
        """Start the chosen model in a worker thread; returns the worker (tests wait on it)."""
        card = self.card
        if card is None:
            self.status.setText("No model available.")
            return None
        study = self._study(card.sequences)
        if study is None:
            return None
        if self.param_spins:
            card = _with_parameters(card, {k: s.value() for k, s in self.param_spins.items()})
        return self._start(card.name, engine.run, self._on_result, study, card, self.backend_combo.currentText() or None,
                           threads=self.threads.value())

    def detect(self):
        """PCNN signature detection in a worker; returns the worker."""
        from .. import pcnn

        study = self._study(("flair", "t2"))
        if study is None:
            return None
        return self._start("PCNN detection", pcnn.detect, lambda d: self._on_detection(d, study.geometry), study)

    def _study(self, sequences):
        chosen = {seq: combo.currentText() for seq, combo in self.sequence_combos.items()}
        try:
            return study_from_layers(self.viewer.layers, {s: chosen[s] for s in sequences if chosen.get(s)} or chosen)
        except ValueError as exc:
            self.status.setText(str(exc))
            return None

    def _start(self, title: str, function, on_result, *args, **kwargs):
        """Run ``function(*args, progress=..., cancel=..., **kwargs)`` in a worker thread."""
        self._cancel.clear()
        self._set_running(True)
        self.progress.setValue(0)
        self.status.setText(f"Running {title}…")
        relay = self._relay
        worker = create_worker(function, *args, progress=lambda f, m: relay.progressed.emit(f, m),
                               cancel=self._cancel.is_set, _ignore_errors=True, **kwargs)  # errors: the status line
        worker.returned.connect(on_result)
        worker.errored.connect(self._on_error)
        self._activity = progress(total=1000, desc=f"lightseg {title}")  # napari's activity dock
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()
        return worker

    def _on_detection(self, detection, geometry):
        rectangles = [np.array([(b.z, b.y0, b.x0), (b.z, b.y0, b.x1 + 1), (b.z, b.y1 + 1, b.x1 + 1), (b.z, b.y1 + 1, b.x0)], float)
                      for b in detection.slice_boxes]
        for data, kwargs, kind in boxes_layers([detection.box3d], geometry, "PCNN detection", color="magenta",
                                               slice_rectangles=rectangles):
            kwargs["visible"] = kwargs.get("visible", True) != (self.viewer.dims.ndisplay == 3)
            _add_or_replace(self.viewer, data, kwargs, kind)
        (z0, y0, x0), (z1, y1, x1) = detection.box3d
        self.viewer.dims.set_current_step(0, (z0 + z1) // 2)
        self.status.setText(f"PCNN detection: box z {z0}-{z1}, y {y0}-{y1}, x {x0}-{x1} (display voxels), "
                            f"{len(detection.slice_boxes)} slice boxes")

    def _on_progress(self, fraction: float, message: str):
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)
        if self._activity is not None:
            self._activity.n = int(fraction * 1000)
            self._activity.set_description(f"lightseg: {message}")

    def _on_finished(self):
        self._set_running(False)
        if self._activity is not None:
            self._activity.close()
            self._activity = None

    def _on_error(self, exc: Exception):
        self.status.setText("Cancelled." if isinstance(exc, Cancelled) else f"Error: {exc}")

    def _on_result(self, result: engine.Result):
        name = f"{result.model}"
        data, kwargs, _ = labels_layer(result.labels, result.geometry, name, study=result.study_name,
                                       convention=result.study_convention, extra={"model": result.model})
        _add_or_replace(self.viewer, data, kwargs, "labels")
        if result.detections:
            for bdata, bkwargs, kind in boxes_layers([d.box for d in result.detections], result.geometry, f"{name} boxes"):
                bkwargs["visible"] = bkwargs.get("visible", True) != (self.viewer.dims.ndisplay == 3)
                _add_or_replace(self.viewer, bdata, bkwargs, kind)
            self.viewer.dims.set_current_step(0, int(round(result.detections[0].centroid[0])))  # largest lesion
        t = result.timings_s
        v = result.volumes_ml
        self.runs.append({"model": result.model, "backend": result.backend, "provider": result.provider,
                          "total_s": round(t["total"], 3), "inference_s": round(t["inference"], 3),
                          "ms_per_slice": round(result.ms_per_slice, 2), "NCR_ml": round(v["NCR"], 2),
                          "ED_ml": round(v["ED"], 2), "ET_ml": round(v["ET"], 2), "WT_ml": round(v["WT"], 2)})
        self._refresh_table()
        notes = ("  " + "; ".join(result.notes)) if result.notes else ""
        self.status.setText(result.summary_line() + notes)

    def _refresh_table(self):
        self.table.setRowCount(len(self.runs))
        for r, row in enumerate(self.runs):
            for c, key in enumerate(RUN_COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(str(row[key])))

    def runs_csv(self) -> str:
        lines = [",".join(RUN_COLUMNS)] + [",".join(str(row[k]) for k in RUN_COLUMNS) for row in self.runs]
        return "\n".join(lines) + "\n"


def _with_parameters(card, parameters: dict):
    from dataclasses import replace

    return replace(card, parameters={**card.parameters, **parameters})


def _add_or_replace(viewer: napari.Viewer, data, kwargs: dict, layer_type: str):
    """Stable names: a re-run replaces the layer of the same name."""
    name = kwargs["name"]
    if name in viewer.layers:
        viewer.layers.remove(name)
    return getattr(viewer, f"add_{layer_type}")(data, **kwargs)
