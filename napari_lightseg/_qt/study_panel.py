"""The "Study" group of the segment widget: shown when the chosen sequences come from a DICOM folder.

It shows what the reader found (series table: number, description, size, role), lets the user give a
sequence another series and choose brain extraction, and, after a run, saves the focused result on the
grid of any source series (NIfTI + sidecar or DICOM-SEG). Saving needs the run's clinical ``Study``
(its alignment maps the reference grid back to each series), so it is offered only after a run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import clinical
from ..clinical_view import (
    ASSIGNED_KEY,
    DICOM_FOLDER_KEY,
    INPUTS_KEY,
    SERIES_COLUMNS,
    SERIES_TABLE_KEY,
    check_overrides,
    nifti_series_table,
    series_choices,
    series_rows,
)
from ..io import SEQUENCE_TITLES, Segmentation, StudyError
from ..io.study import Study
from ..layers import METADATA_KEY, clinical_study_layers, layer_source_files, lightseg_metadata
from .common import add_or_replace, compact_combo
from .pickers import fill_data_choices, sequence_combos
from .results import focused_result

SAVE_FILTER = "DICOM-SEG (*.dcm);;NIfTI + label sidecar (*.nii.gz *.nii)"


class StudyPanel(QGroupBox):
    """Series table, per-sequence series, brain extraction and "Save result…" for a clinical study."""

    def __init__(self, viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__("Study", parent)
        self.viewer = viewer
        self.source: dict[str, Any] | None = None  # plugin metadata of the chosen layers' clinical study
        self.study: Study | None = None  # the last run's clinical Study: saving needs its alignment
        layout = QVBoxLayout(self)
        self.folder_label = QLabel("")
        self.folder_label.setWordWrap(True)
        layout.addWidget(self.folder_label)
        self.table = QTableWidget(0, len(SERIES_COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _, title in SERIES_COLUMNS])
        header = self.table.horizontalHeader()  # the description takes what is left, elided: no sideways scrolling
        assert header is not None and self.table.verticalHeader() is not None  # a QTableWidget always has both
        for column in range(len(SERIES_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setWordWrap(False)  # one line per series; the full text is in the row's tooltip
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setToolTip("Every series in the folder; hover a row for spacing, TR/TE/TI and how its role was decided")
        layout.addWidget(self.table)
        self.series_box = QWidget()  # DICOM only: NIfTI files are named by sequence, nothing to choose
        series_form = QFormLayout(self.series_box)
        series_form.setContentsMargins(0, 0, 0, 0)
        series_form.addRow(QLabel("Series used:"))
        self.series_combos = sequence_combos(series_form, 8, "The series used as {title} (the header rules chose the first)")
        for combo in self.series_combos.values():
            combo.currentIndexChanged.connect(self._refresh_roles)
        layout.addWidget(self.series_box)
        form = QFormLayout()
        self.brain_combo = compact_combo(6)
        self.brain_combo.addItems(clinical.BRAIN_MODES)
        self.brain_combo.setToolTip("Brain extraction. auto: extract unless the images look skull-stripped; force; skip")
        form.addRow("Brain", self.brain_combo)
        save_row = QHBoxLayout()
        self.grid_combo = compact_combo(4)
        self.grid_combo.setToolTip("Save on this series' own grid (native voxel size and orientation)")
        self.save_button = QPushButton("Save result…")
        self.save_button.setToolTip("The shown result on a source series' grid: .dcm (DICOM-SEG) or .nii.gz (+ sidecar)")
        self.save_button.clicked.connect(lambda: self.save_result())
        save_row.addWidget(self.save_button, 1)
        save_row.addWidget(self.grid_combo, 1)
        layout.addLayout(form)
        layout.addLayout(save_row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self._set_saving(False)
        self.setVisible(False)

    # ----------------------------------------------------------------- state
    @property
    def folder(self) -> str | None:
        """The DICOM folder (None for NIfTI files on different grids)."""
        return self.source.get(DICOM_FOLDER_KEY) if self.source else None

    @property
    def inputs(self) -> list[str]:
        """What ``clinical.open_study`` re-opens: [the DICOM folder] or the NIfTI files; [] when hidden."""
        return list(self.source.get(INPUTS_KEY) or []) if self.source else []

    def controls(self) -> list[QWidget]:
        """What a running task must disable."""
        return [*self.series_combos.values(), self.brain_combo, self.grid_combo, self.save_button]

    def show_source(self, source: dict[str, Any] | None) -> None:
        """Show (or hide, for None) the clinical study the chosen layers come from; a new study resets the panel.
        The same study again (any layer added, e.g. a result) keeps the user's series choices."""
        if source is not None and self.source is not None and _same_study(source, self.source):
            self.source = source
            return
        if list((source or {}).get(INPUTS_KEY) or []) != self.inputs:
            self.study = None
            self._set_saving(False)
            self.message.setText("")
        self.source = source
        self.setVisible(source is not None)
        if source is None:
            return
        self._show_header()
        self.series_box.setVisible(DICOM_FOLDER_KEY in source)
        choices = series_choices(source.get(SERIES_TABLE_KEY, []))
        assigned = source.get(ASSIGNED_KEY, {})
        for seq, combo in self.series_combos.items():
            fill_data_choices(combo, choices, assigned.get(seq))
        self._refresh_roles()

    def _show_header(self) -> None:
        source = self.source or {}
        how = "registered" if source.get("aligned") == "registered" else "scanner coordinates; Run registers"
        reference = SEQUENCE_TITLES.get(source.get("reference") or "", "reference")
        kind = f"DICOM {Path(self.folder).name}" if self.folder else f"NIfTI {source.get('study', '')} (grids differ)"
        self.folder_label.setText(f"{kind}: on the {reference} grid ({how})")
        self.folder_label.setToolTip("\n".join(self.inputs))

    def overrides(self) -> dict[str, str]:
        """Sequence -> SeriesInstanceUID as chosen in the combos (all four: what you see is what runs);
        {} for NIfTI files (their names say the sequence)."""
        if not self.folder:
            return {}
        chosen = {seq: combo.currentData() for seq, combo in self.series_combos.items() if combo.currentData()}
        return check_overrides(chosen, (self.source or {}).get(SERIES_TABLE_KEY, []))

    def brain_mode(self) -> str:
        return self.brain_combo.currentText()

    def _refresh_roles(self, *_: Any) -> None:
        table = (self.source or {}).get(SERIES_TABLE_KEY, [])
        chosen = {seq: combo.currentData() for seq, combo in self.series_combos.items() if combo.currentData()}
        rows = series_rows(table, chosen)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _title) in enumerate(SERIES_COLUMNS):
                item = QTableWidgetItem(row[key])
                item.setToolTip(row["tooltip"])
                self.table.setItem(r, c, item)
        self._fit_table()

    def _fit_table(self) -> None:
        """Tall enough for every row (up to a cap): header and row heights are only final once shown."""
        self.table.resizeRowsToContents()
        header = self.table.horizontalHeader()
        rows_height = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        header_height = max(header.height(), header.sizeHint().height()) if header else 0
        self.table.setFixedHeight(min(max(header_height + rows_height + 2 * self.table.frameWidth() + 8, 60), 240))

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        QTimer.singleShot(0, self._fit_table)

    def _set_saving(self, enabled: bool) -> None:
        self.save_button.setEnabled(enabled)
        self.grid_combo.setEnabled(enabled)

    # ----------------------------------------------------------------- after a run
    def adopt(self, study: Study) -> None:
        """Keep the run's Study (for saving) and show its registered, brain-extracted images in place of the
        quick ones: same names, same reference grid, so the data is swapped in place when the shape matches."""
        self.study = study
        source = self.source or {}
        table = source.get(SERIES_TABLE_KEY, []) if self.folder else nifti_series_table(study)
        layers = clinical_study_layers(study, self.inputs, table, dicom_folder=self.folder)
        for data, kwargs, kind in layers:
            name = kwargs["name"]
            if name in self.viewer.layers and np.shape(self.viewer.layers[name].data) == np.shape(data):
                layer = self.viewer.layers[name]
                layer.data = data
                layer.metadata = kwargs["metadata"]
                layer.contrast_limits = kwargs["contrast_limits"]
            else:
                add_or_replace(self.viewer, data, kwargs, kind)
        if layers:
            self.source = {**source, **layers[0][1]["metadata"][METADATA_KEY]}
            self._show_header()
        self.grid_combo.clear()
        for seq in study.alignment:
            self.grid_combo.addItem(f"on {SEQUENCE_TITLES.get(seq, seq)}", seq)
        self.grid_combo.setCurrentIndex(max(self.grid_combo.findData(study.reference), 0))
        self._set_saving(True)
        self.message.setText("; ".join(study.notes))

    def save_result(self, path: str | Path | None = None, grid: str | None = None) -> Path | None:
        """Save the focused result on ``grid``'s own grid (default: the grid combo); the format follows the
        suffix. Without ``path`` a file dialog asks. Returns the file, or None (message says why)."""
        layer = focused_result(self.viewer)
        if self.study is None or layer is None:
            self.message.setText("Run a model first: saving on a series' grid needs the registered study.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save result on a source grid", "", SAVE_FILTER)
            if not path:
                return None
        sequence: str = grid or self.grid_combo.currentData() or self.study.reference or ""
        meta = lightseg_metadata(layer.metadata)
        convention = meta.get("convention") or self.study.convention  # the study's own labels (None: the default)
        inputs = [p for p in (*self.inputs, *layer_source_files(self.viewer.layers)) if p]
        try:
            mask = Segmentation(np.asarray(layer.data), self.study.geometry, convention, meta.get("model") or layer.name)
            saved = clinical.save_mask_file(path, mask, self.study, grid=sequence, inputs=inputs)
        except (StudyError, OSError) as exc:
            self.message.setText(f"Not saved: {exc}".splitlines()[0])
            return None
        self.message.setText(f"Saved {layer.name} on the {SEQUENCE_TITLES.get(sequence, sequence)} grid: {saved}")
        return saved


def _same_study(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in (INPUTS_KEY, ASSIGNED_KEY, "aligned"))
