"""Dock widget: pick sequences, model and backend; run in a worker with progress and Cancel;
show the result in focus with its legend, the boxes on demand, a timing table; switch to 3D."""
from __future__ import annotations

import napari
import numpy as np
from qtpy.QtWidgets import (
    QApplication,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from .. import engine
from .._reader import prefer_lightseg_reader
from ..clinical_view import clinical_source, open_and_segment
from ..display import slice_rectangles, tumour_center_slice
from ..io import StudyError
from ..layers import boxes_layers, labels_layer, lightseg_metadata, sequence_layers, study_from_layers
from .common import add_or_replace, scrolling_body
from .pickers import ModelPicker, ParameterBox, fill_layer_choices, sequence_combos
from .results import ResultPanel, focus_result, install_orientation_markers
from .runs_table import RUN_COLUMNS, RunsTable
from .study_panel import StudyPanel
from .view3d import show_2d, show_3d
from .worker import TaskRunner


class SegmentWidget(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.runs: list[dict] = []  # this widget's runs (per instance: two docks keep their own tables)
        layout = scrolling_body(self)

        seq_box = QGroupBox("Sequences")
        self.sequence_combos = sequence_combos(QFormLayout(seq_box))
        layout.addWidget(seq_box)
        self.study_panel = StudyPanel(self.viewer)  # shown for a DICOM study (or NIfTI on different grids)
        layout.addWidget(self.study_panel)
        self.models = ModelPicker(threads=True)
        self.cards, self.model_combo, self.backend_combo = self.models.cards, self.models.model_combo, self.models.backend_combo
        layout.addWidget(self.models)
        self.param_box = ParameterBox()
        layout.addWidget(self.param_box)

        buttons = QGridLayout()  # two rows of two: fits a narrow dock
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.detect_button = QPushButton("Detect")
        self.detect_button.setToolTip("Training-free tumour box (PCNN): selective search + PCNN signatures on FLAIR/T2")
        self.view3d_button = QPushButton("3D view")
        self.view3d_button.setCheckable(True)
        self.view3d_button.setToolTip("Classes of the shown result as surfaces: ET and NCR inside a translucent edema")
        for i, b in enumerate((self.run_button, self.cancel_button, self.detect_button, self.view3d_button)):
            buttons.addWidget(b, i // 2, i % 2)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.results = ResultPanel(self.viewer)
        layout.addWidget(self.results)

        self.table = RunsTable()
        layout.addWidget(self.table)
        self.copy_button = QPushButton("Copy runs as CSV")
        layout.addWidget(self.copy_button)
        layout.addStretch(1)

        self.runner = TaskRunner(self.status, self.progress, (
            self.run_button, self.detect_button, *self.models.controls(), self.param_box,
            *self.sequence_combos.values(), *self.study_panel.controls()), self.cancel_button, parent=self)
        self.models.changed.connect(lambda: self.param_box.show_card(self.card))
        self.run_button.clicked.connect(self.run)
        self.detect_button.clicked.connect(self.detect)
        self.view3d_button.toggled.connect(self.set_3d)
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.runs_csv()))
        self.viewer.layers.events.inserted.connect(self._refresh_sequences)
        self.viewer.layers.events.removed.connect(self._refresh_sequences)
        for combo in self.sequence_combos.values():
            combo.currentTextChanged.connect(self._refresh_study)
        self._refresh_sequences()
        self.param_box.show_card(self.card)
        self._refresh_table()
        install_orientation_markers(self.viewer)
        prefer_lightseg_reader()  # from now on napari opens NIfTI with this plugin, no "Choose reader" dialog

    # ----------------------------------------------------------------- state
    @property
    def card(self):
        return self.models.card

    @property
    def param_spins(self) -> dict:
        return self.param_box.spins

    @property
    def cancel_requested(self) -> bool:
        return self.runner.cancel_event.is_set()

    def _refresh_sequences(self, *_):
        names = [layer.name for layer in self.viewer.layers if layer._type_string == "image" and np.ndim(layer.data) == 3]
        fill_layer_choices(self.sequence_combos, names, sequence_layers(self.viewer.layers))
        self._refresh_study()

    def _refresh_study(self, *_):
        """The Study group follows the chosen layers: shown when they come from one DICOM folder (or NIfTI
        files on different grids)."""
        chosen = [self.viewer.layers[c.currentText()] for c in self.sequence_combos.values() if c.currentText() in self.viewer.layers]
        self.study_panel.show_source(clinical_source(lightseg_metadata(layer.metadata) for layer in chosen))

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
        card = self.param_box.applied_to(card)
        if self.study_panel.inputs:  # a clinical study: re-open it registered and brain-extracted, then segment
            try:
                overrides = self.study_panel.overrides()
            except StudyError as exc:
                self.status.setText(str(exc))
                return None
            return self.runner.start(card.name, open_and_segment, self._on_clinical_result, self.study_panel.inputs, card,
                                     self.models.backend or None, sequences=overrides,
                                     brain=self.study_panel.brain_mode(), threads=self.models.threads.value())
        return self.runner.start(card.name, engine.run, self._on_result, study, card,
                                 self.models.backend or None, threads=self.models.threads.value())

    def detect(self):
        """PCNN signature detection in a worker; returns the worker."""
        from .. import pcnn

        study = self._study(("flair", "t2"))
        if study is None:
            return None
        return self.runner.start("PCNN detection", pcnn.detect, lambda d: self._on_detection(d, study.geometry), study)

    def _study(self, sequences):
        chosen = {seq: combo.currentText() for seq, combo in self.sequence_combos.items()}
        try:
            return study_from_layers(self.viewer.layers, {s: chosen[s] for s in sequences if chosen.get(s)} or chosen)
        except ValueError as exc:
            self.status.setText(str(exc))
            return None

    def _on_detection(self, detection, geometry):
        if not detection.found:  # no slice qualified: say so, add nothing
            self.status.setText("PCNN detection: no tumour-like region found.")
            return
        for data, kwargs, kind in boxes_layers([detection.box], geometry, "PCNN detection", color="magenta",
                                               slice_rectangles=slice_rectangles(detection.slice_boxes)):
            kwargs["visible"] = kwargs.get("visible", True) != (self.viewer.dims.ndisplay == 3)  # asked for: shown
            add_or_replace(self.viewer, data, kwargs, kind)
        (z0, y0, x0), (z1, y1, x1) = detection.box
        self.viewer.dims.set_current_step(0, (z0 + z1) // 2)
        self.status.setText(f"PCNN detection: box z {z0}-{z1}, y {y0}-{y1}, x {x0}-{x1} (display voxels), "
                            f"{len(detection.slice_boxes)} slice boxes")

    def _on_clinical_result(self, outcome):
        study, result = outcome
        self.study_panel.adopt(study)  # registered (and brain-extracted) images replace the quick ones
        self._on_result(result)

    def _on_result(self, result: engine.Result):
        run = result.report
        name = f"{run.model}"
        data, kwargs, _ = labels_layer(result.labels, result.geometry, name, study=run.case,
                                       convention=result.study_convention, extra={"model": run.model})
        add_or_replace(self.viewer, data, kwargs, "labels")
        for bdata, bkwargs, kind in boxes_layers([d.box for d in run.detections], result.geometry, f"{name} boxes") \
                if run.detections else []:
            bkwargs["visible"] = False  # off by default: the picker's "Boxes in 2D" shows them
            add_or_replace(self.viewer, bdata, bkwargs, kind)
        focus_result(self.viewer, name, boxes_2d=self.results.boxes.isChecked())
        center = int(round(run.detections[0].centroid[0])) if run.detections else tumour_center_slice(result.labels)
        if center is not None:
            self.viewer.dims.set_current_step(0, center)  # the largest lesion's centre
        self.results.refresh()
        if self.viewer.dims.ndisplay == 3:
            show_3d(self.viewer, boxes=self.results.boxes.isChecked())
        self.runs.append(run.row())
        self._refresh_table()
        notes = ("  " + "; ".join(run.notes)) if run.notes else ""
        self.status.setText(result.summary_line() + notes)

    def set_3d(self, on: bool) -> None:
        """The 3D view of the shown result, or back to slices."""
        if on:
            show_3d(self.viewer, boxes=self.results.boxes.isChecked())
        else:
            show_2d(self.viewer)
        self.results.refresh()
        self.view3d_button.setText("2D view" if on else "3D view")

    # ----------------------------------------------------------------- timings
    def _refresh_table(self):
        self.table.show_runs(self.runs)

    def runs_csv(self) -> str:
        lines = [",".join(RUN_COLUMNS)] + [",".join(str(row[k]) for k in RUN_COLUMNS) for row in self.runs]
        return "\n".join(lines) + "\n"

