"""Dock widget: run several models on the open study, load other masks, and compare them with a
reference (Dice / HD95 / volumes, disagreement map, side-by-side grid). A thin view over
``engine.run`` and ``compare``; the slow parts run in workers that never touch widgets."""
from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QWidget,
)

from .. import engine
from .._reader import prefer_lightseg_reader
from ..compare import run_names, write_csv
from ..compare_jobs import DISAGREEMENT, compare_masks, disagreement_layer, masks_from_files, run_models
from ..io import StudyError
from ..layers import grid_mismatch, labels_layer, lightseg_metadata, sequence_layers, study_from_layers
from .common import add_or_replace, button_row, compact_combo, scrolling_body
from .metrics_table import RUN_TIME, TABLE_COLUMNS, MetricsTable
from .pickers import JobList, ModelPicker, fill_mask_choices
from .results import focus_result, install_orientation_markers, study_image_layer
from .side_by_side import HELPER_ROLE, enter_side_by_side, leave_side_by_side
from .worker import TaskRunner

__all__ = ["DISAGREEMENT", "RUN_TIME", "TABLE_COLUMNS", "CompareWidget"]


class CompareWidget(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.run_times: dict[str, float] = {}  # layer name -> total run time of a model run from this widget
        self.rows: list[dict] = []
        self._names: list[str] = []
        self._saved_view: tuple[list[str], dict[str, bool]] | None = None

        layout = scrolling_body(self)
        runs = QGroupBox("Models to run on the open study")
        runs_layout = QFormLayout(runs)
        self.models = ModelPicker()
        self.cards, self.model_combo, self.backend_combo = self.models.cards, self.models.model_combo, self.models.backend_combo
        runs_layout.addRow(self.models)
        self.add_button, self.remove_button = QPushButton("Add"), QPushButton("Remove")
        self.job_list = JobList()
        self.run_button, self.cancel_button = QPushButton("Run all"), QPushButton("Cancel")
        self.load_button = QPushButton("Load masks…")
        self.load_button.setToolTip("Open segmentation files (BraTS 1/2/4 or 1/2/3) on the study's grid")
        runs_layout.addRow(button_row(self.add_button, self.remove_button))
        runs_layout.addRow(self.job_list)
        runs_layout.addRow(button_row(self.run_button, self.cancel_button))
        runs_layout.addRow(self.load_button)
        self.progress = QProgressBar()
        runs_layout.addRow(self.progress)
        layout.addWidget(runs)

        cmp_box = QGroupBox("Compare")
        cmp_layout = QFormLayout(cmp_box)
        self.reference_combo = compact_combo()
        cmp_layout.addRow("Reference", self.reference_combo)
        cmp_layout.addRow(QLabel("Masks to compare (click to toggle):"))
        self.mask_list = QListWidget()
        self.mask_list.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.mask_list.setMaximumHeight(100)
        cmp_layout.addRow(self.mask_list)
        self.compare_button = QPushButton("Compare")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.side_by_side = QCheckBox("Side by side")
        self.side_by_side.setToolTip("Grid view: the reference and each compared mask over its own FLAIR copy")
        cmp_layout.addRow(button_row(self.compare_button, self.export_button))
        cmp_layout.addRow(self.side_by_side)
        self.table_title = QLabel("")
        self.table_title.setWordWrap(True)
        cmp_layout.addRow(self.table_title)
        self.table = MetricsTable()
        cmp_layout.addRow(self.table)
        layout.addWidget(cmp_box)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.runner = TaskRunner(self.status, self.progress, (
            self.run_button, self.add_button, self.remove_button, *self.models.controls(),
            self.job_list, self.load_button, self.compare_button), self.cancel_button, parent=self)
        self.add_button.clicked.connect(lambda: self.add_job(self.models.name, self.models.backend))
        self.remove_button.clicked.connect(self.job_list.remove_selected)
        self.run_button.clicked.connect(self.run)
        self.load_button.clicked.connect(lambda: self.load_masks())
        self.compare_button.clicked.connect(self.compare)
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.side_by_side.toggled.connect(self.set_side_by_side)
        self.viewer.layers.events.inserted.connect(self._refresh_masks)
        self.viewer.layers.events.removed.connect(self._refresh_masks)
        self._refresh_masks()
        install_orientation_markers(self.viewer)
        prefer_lightseg_reader()  # from now on napari opens NIfTI with this plugin, no "Choose reader" dialog

    # ----------------------------------------------------------------- layers
    def _mask_layers(self) -> list[str]:
        """Labels layers a comparison can use (not the side-by-side copies)."""
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)
                and lightseg_metadata(layer.metadata).get("role") != HELPER_ROLE]

    def _refresh_masks(self, *_) -> None:
        fill_mask_choices(self.reference_combo, self.mask_list, self._mask_layers())

    def compared(self) -> list[str]:
        reference = self.reference_combo.currentText()
        return [i.text() for i in self.mask_list.selectedItems() if i.text() != reference]

    # ----------------------------------------------------------------- model runs
    def add_job(self, model: str, backend: str) -> None:
        if model not in self.cards:
            self.status.setText("No model chosen.")
            return
        self.job_list.add_job(model, backend)

    def jobs(self) -> list[tuple[str, str]]:
        return self.job_list.jobs()

    def run(self):
        """Run every listed (model, backend) in one worker; returns the worker (tests wait on it)."""
        jobs = self.jobs()
        if not jobs:
            self.status.setText("Add at least one model to run.")
            return None
        found = sequence_layers(self.viewer.layers)
        try:
            study = study_from_layers(self.viewer.layers, {s: names[-1] for s, names in found.items() if names})
        except (StudyError, ValueError) as exc:
            self.status.setText(f"No study to segment: {exc}")
            return None
        self._names = run_names(jobs)  # results arrive in job order
        return self.runner.start("compare", run_models, self._on_finished_runs, study,
                                 [(self.cards[m], b) for m, b in jobs], on_partial=self._on_result)

    def _on_result(self, result: engine.Result) -> None:
        name = self._names.pop(0)
        self.job_list.takeItem(0)  # done: a later "Run all" does not run it again
        run = result.report
        data, kwargs, _ = labels_layer(result.labels, result.geometry, name, study=run.case,
                                       convention=result.study_convention,
                                       extra={"model": run.model, "backend": f"{run.backend}:{run.provider}"})
        self.run_times[name] = round(run.timings_s["total"], 3)
        add_or_replace(self.viewer, data, kwargs, "labels")
        focus_result(self.viewer, name)
        self.status.setText(result.summary_line())

    def _on_finished_runs(self, count: int) -> None:
        self.status.setText(f"{count} model run(s) done: pick them in the list below and Compare.")

    # ----------------------------------------------------------------- masks from files
    def load_masks(self, paths: list[str] | None = None) -> list[str]:
        """Open segmentation files on the study's grid; returns the new layer names. Errors: one status line."""
        image = study_image_layer(self.viewer)
        geometry = lightseg_metadata(image.metadata).get("geometry") if image is not None else None
        if geometry is None:
            self.status.setText("Open a study with napari-lightseg first: masks are loaded on its grid.")
            return []
        if paths is None:
            source = lightseg_metadata(image.metadata).get("source")
            folder = str(Path(source).parent) if source else ""
            paths, _ = QFileDialog.getOpenFileNames(self, "Load segmentation masks", folder, "NIfTI (*.nii *.nii.gz)")
        layers, errors = masks_from_files(paths, geometry, lightseg_metadata(image.metadata).get("study", ""))
        added = []
        for data, kwargs, kind in layers:
            self.run_times.pop(kwargs["name"], None)  # a file, not a run from this widget
            add_or_replace(self.viewer, data, kwargs, kind)
            added.append(kwargs["name"])
        self.status.setText("; ".join(errors) if errors else f"Loaded {len(added)} mask(s).")
        return added

    # ----------------------------------------------------------------- comparison
    def compare(self):
        """Metrics of the chosen masks against the reference, in a worker (HD95 takes a while); returns it."""
        reference, names = self.reference_combo.currentText(), self.compared()
        if not reference or not names:
            self.status.setText("Choose a reference and at least one other mask.")
            return None
        layers = self.viewer.layers
        problem = grid_mismatch(layers[reference], [layers[n] for n in names])  # another grid: no Dice 0 by mistake
        if problem:
            self.status.setText(problem)
            return None
        geometry = lightseg_metadata(layers[reference].metadata).get("geometry")
        spacing = tuple(geometry.spacing) if geometry is not None else tuple(float(s) for s in layers[reference].scale)
        masks = {n: np.asarray(layers[n].data) for n in names}
        extra = {n: {RUN_TIME: self.run_times[n]} for n in names if n in self.run_times}
        return self.runner.start(f"metrics of {len(names)} mask(s) against {reference}", compare_masks,
                                 lambda out: self._on_compared(*out, reference=reference),
                                 reference, np.asarray(layers[reference].data), masks, spacing, extra)

    def _on_compared(self, rows: list[dict], counts: np.ndarray, reference: str) -> None:
        self.rows = rows
        self.table_title.setText(f"Against the reference: <b>{reference}</b> (Dice 1 = identical; HD95 in mm)")
        self.table.show_rows(rows)
        self.export_button.setEnabled(True)
        layer = self.viewer.layers[reference]
        geometry = lightseg_metadata(layer.metadata).get("geometry")
        add_or_replace(self.viewer, *disagreement_layer(counts, geometry, layer.scale, len(rows) + 1))
        self.status.setText(f"{len(rows)} mask(s) compared with {reference}.")

    def export_csv(self, path: str | None = None) -> Path | None:
        if not self.rows:
            self.status.setText("Compare first.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export comparison", "comparison.csv", "CSV (*.csv)")
            if not path:
                return None
        try:
            written = write_csv(self.rows, path)
        except OSError as exc:
            self.status.setText(f"Not written: {exc}")
            return None
        self.status.setText(f"Wrote {written}")
        return written

    # ----------------------------------------------------------------- side by side
    def set_side_by_side(self, on: bool) -> None:
        """Grid mode: each mask (reference first) over its own copy of the FLAIR; off restores the view."""
        if not on:
            leave_side_by_side(self.viewer, self._saved_view)
            self._saved_view = None
            return
        image = study_image_layer(self.viewer)
        masks = [n for n in [self.reference_combo.currentText(), *self.compared()] if n]
        if image is None or not masks:
            self.status.setText("Side by side needs a study image and at least one mask.")
            self.side_by_side.setChecked(False)
            return
        saved = enter_side_by_side(self.viewer, image, masks)
        self._saved_view = self._saved_view or saved

