"""Dock widget: run several models on the open study, load other masks, and compare them with a
reference (Dice / HD95 / volumes, disagreement map, side-by-side grid). A thin view over
``engine.run`` and ``compare``; the slow parts run in workers that never touch widgets."""
from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QWidget,
)

from .. import engine
from .._reader import prefer_lightseg_reader
from ..backends import backend_choices
from ..compare import run_names, segmentation_name, write_csv
from ..compare_jobs import compare_masks, run_models
from ..io import StudyError, load_labels
from ..layers import (
    METADATA_KEY,
    grid_mismatch,
    labels_layer,
    lightseg_metadata,
    sequence_layers,
    spatial_kwargs,
    study_from_layers,
)
from ..models import ModelCard, list_cards
from .common import add_or_replace, compact_combo, scrolling_body
from .metrics_table import RUN_TIME, TABLE_COLUMNS, MetricsTable
from .results import focus_result, install_orientation_markers
from .side_by_side import HELPER_ROLE, enter_side_by_side, leave_side_by_side
from .worker import TaskRunner

DISAGREEMENT = "disagreement"
__all__ = ["DISAGREEMENT", "RUN_TIME", "TABLE_COLUMNS", "CompareWidget"]
# metrics first; the reference is named once, above the table
class CompareWidget(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.cards: dict[str, ModelCard] = {c.name: c for c in list_cards()}
        self.run_times: dict[str, float] = {}  # layer name -> total run time of a model run from this widget
        self.rows: list[dict] = []
        self._names: list[str] = []
        self._saved_view: tuple[list[str], dict[str, bool]] | None = None

        layout = scrolling_body(self)
        runs = QGroupBox("Models to run on the open study")
        runs_layout = QFormLayout(runs)
        self.model_combo = compact_combo()
        self.model_combo.addItems(list(self.cards))
        self.backend_combo = compact_combo()
        runs_layout.addRow("Model", self.model_combo)
        runs_layout.addRow("Backend", self.backend_combo)
        self.add_button, self.remove_button = QPushButton("Add"), QPushButton("Remove")
        self.job_list = QListWidget()
        self.job_list.setMaximumHeight(80)
        self.job_list.setToolTip("Jobs still to run: each leaves the list when its result is in")
        self.run_button, self.cancel_button = QPushButton("Run all"), QPushButton("Cancel")
        self.load_button = QPushButton("Load masks…")
        self.load_button.setToolTip("Open segmentation files (BraTS 1/2/4 or 1/2/3) on the study's grid")
        runs_layout.addRow(_row(self.add_button, self.remove_button))
        runs_layout.addRow(self.job_list)
        runs_layout.addRow(_row(self.run_button, self.cancel_button))
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
        cmp_layout.addRow(_row(self.compare_button, self.export_button))
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
            self.run_button, self.add_button, self.remove_button, self.model_combo, self.backend_combo,
            self.job_list, self.load_button, self.compare_button), self.cancel_button, parent=self)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.add_button.clicked.connect(lambda: self.add_job(self.model_combo.currentText(), self.backend_combo.currentText()))
        self.remove_button.clicked.connect(self._remove_jobs)
        self.run_button.clicked.connect(self.run)
        self.load_button.clicked.connect(lambda: self.load_masks())
        self.compare_button.clicked.connect(self.compare)
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.side_by_side.toggled.connect(self.set_side_by_side)
        self.viewer.layers.events.inserted.connect(self._refresh_masks)
        self.viewer.layers.events.removed.connect(self._refresh_masks)
        self._on_model_changed()
        self._refresh_masks()
        install_orientation_markers(self.viewer)
        prefer_lightseg_reader()  # from now on napari opens NIfTI with this plugin, no "Choose reader" dialog

    # ----------------------------------------------------------------- layers
    def _mask_layers(self) -> list[str]:
        """Labels layers a comparison can use (not the side-by-side copies)."""
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)
                and lightseg_metadata(layer.metadata).get("role") != HELPER_ROLE]

    def _refresh_masks(self, *_) -> None:
        names = self._mask_layers()
        previous = {self.mask_list.item(i).text(): self.mask_list.item(i).isSelected() for i in range(self.mask_list.count())}
        reference = self.reference_combo.currentText()
        self.reference_combo.clear()
        self.reference_combo.addItems(names)
        truth = [n for n in names if "ground truth" in n]
        self.reference_combo.setCurrentText(reference if reference in names else (truth[0] if truth else (names[0] if names else "")))
        self.mask_list.clear()
        for name in names:
            item = QListWidgetItem(name)
            self.mask_list.addItem(item)
            item.setSelected(previous.get(name, name != self.reference_combo.currentText()))  # new masks join

    def compared(self) -> list[str]:
        reference = self.reference_combo.currentText()
        return [i.text() for i in self.mask_list.selectedItems() if i.text() != reference]

    def _image_layer(self):
        """The FLAIR layer (or the first 3D image): its grid is the study's and it is shown under the masks."""
        found = sequence_layers(self.viewer.layers)
        names = found["flair"] or [n for seq in found.values() for n in seq]
        return self.viewer.layers[names[-1]] if names else None

    # ----------------------------------------------------------------- model runs
    def _on_model_changed(self, *_) -> None:
        self.backend_combo.clear()
        card = self.cards.get(self.model_combo.currentText())
        if card is not None:
            self.backend_combo.addItems(backend_choices(card))

    def add_job(self, model: str, backend: str) -> None:
        if model not in self.cards:
            self.status.setText("No model chosen.")
            return
        item = QListWidgetItem(f"{model}  ·  {backend or 'default'}")
        item.setData(Qt.ItemDataRole.UserRole, (model, backend))
        self.job_list.addItem(item)

    def _remove_jobs(self) -> None:
        for item in self.job_list.selectedItems():
            self.job_list.takeItem(self.job_list.row(item))

    def jobs(self) -> list[tuple[str, str]]:
        return [self.job_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.job_list.count())]

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
        data, kwargs, _ = labels_layer(result.labels, result.geometry, name, study=result.study_name,
                                       convention=result.study_convention,
                                       extra={"model": result.model, "backend": f"{result.backend}:{result.provider}"})
        self.run_times[name] = round(result.timings_s["total"], 3)
        add_or_replace(self.viewer, data, kwargs, "labels")
        focus_result(self.viewer, name)
        self.status.setText(result.summary_line())

    def _on_finished_runs(self, count: int) -> None:
        self.status.setText(f"{count} model run(s) done: pick them in the list below and Compare.")

    # ----------------------------------------------------------------- masks from files
    def load_masks(self, paths: list[str] | None = None) -> list[str]:
        """Open segmentation files on the study's grid; returns the new layer names. Errors: one status line."""
        image = self._image_layer()
        geometry = lightseg_metadata(image.metadata).get("geometry") if image is not None else None
        if geometry is None:
            self.status.setText("Open a study with napari-lightseg first: masks are loaded on its grid.")
            return []
        if paths is None:
            source = lightseg_metadata(image.metadata).get("source")
            folder = str(Path(source).parent) if source else ""
            paths, _ = QFileDialog.getOpenFileNames(self, "Load segmentation masks", folder, "NIfTI (*.nii *.nii.gz)")
        study = lightseg_metadata(image.metadata).get("study", "")
        added, errors = [], []
        for path in paths:
            try:
                classes, convention, _ = load_labels(path, geometry)
            except (StudyError, OSError, ValueError) as exc:
                errors.append(str(exc))
                continue
            name = segmentation_name(path)
            data, kwargs, _ = labels_layer(classes, geometry, name, study=study, convention=convention, extra={"source": str(path)})
            self.run_times.pop(name, None)
            add_or_replace(self.viewer, data, kwargs, "labels")
            added.append(name)
        self.status.setText("; ".join(errors) if errors else f"Loaded {len(added)} mask(s).")
        return added

    # ----------------------------------------------------------------- comparison
    def grid_problem(self, reference: str, names: list[str]) -> str | None:
        """Why these masks cannot be compared voxel by voxel (another grid), or None."""
        layers = self.viewer.layers
        return grid_mismatch(layers[reference], [layers[n] for n in names])

    def compare(self):
        """Metrics of the chosen masks against the reference, in a worker (HD95 takes a while); returns it."""
        reference, names = self.reference_combo.currentText(), self.compared()
        if not reference or not names:
            self.status.setText("Choose a reference and at least one other mask.")
            return None
        problem = self.grid_problem(reference, names)
        if problem:
            self.status.setText(problem)
            return None
        layers = self.viewer.layers
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
        self._show_disagreement(counts, reference, len(rows) + 1)
        self.status.setText(f"{len(rows)} mask(s) compared with {reference}.")
    def _show_disagreement(self, counts: np.ndarray, reference: str, n_masks: int) -> None:
        """Voxel counts of masks that differ from the majority: black (agree) to bright, added over the image."""
        layer = self.viewer.layers[reference]
        geometry = lightseg_metadata(layer.metadata).get("geometry")
        spatial = spatial_kwargs(geometry) if geometry is not None else {"scale": layer.scale}
        kwargs = dict(name=DISAGREEMENT, colormap="inferno", blending="additive", contrast_limits=(0, max(n_masks - 1, 1)),
                      metadata={METADATA_KEY: {"role": DISAGREEMENT, "geometry": geometry}}, **spatial)
        add_or_replace(self.viewer, counts, kwargs, "image")

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
        image = self._image_layer()
        masks = [n for n in [self.reference_combo.currentText(), *self.compared()] if n]
        if image is None or not masks:
            self.status.setText("Side by side needs a study image and at least one mask.")
            self.side_by_side.setChecked(False)
            return
        saved = enter_side_by_side(self.viewer, image, masks)
        self._saved_view = self._saved_view or saved


def _row(*widgets: QWidget) -> QWidget:
    """A compact row of buttons for a form."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget)
    return holder
