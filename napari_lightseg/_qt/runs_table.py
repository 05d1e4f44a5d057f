"""The segment dock's table of this session's runs: what a radiologist compares at a glance, rounded to fit
a narrow dock; every field of each run (``types.RunReport.row``) in the row's tooltip and the CSV."""
from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..types import RunReport

RUN_COLUMNS = RunReport.COLUMNS  # the CSV and each row's tooltip: one run's report
TABLE_COLUMNS = (("model", "model"), ("total_s", "total\ns"), ("energy_j", "energy\nJ"),
                 ("WT_ml", "WT\nmL"))  # two-line titles: the columns fit a narrow dock
CELL_FORMATS = {"total_s": "{:.2f}", "energy_j": "{:.1f}", "WT_ml": "{:.1f}"}  # the tooltip keeps every digit
ENERGY_TIP = "Energy of the run in joules ({method}); CPU seconds and Wh in the row's tooltip and the CSV"


class RunsTable(QTableWidget):
    """One row per run; the energy column's header names how energy was measured or estimated."""

    def __init__(self) -> None:
        super().__init__(0, len(TABLE_COLUMNS))
        self.setHorizontalHeaderLabels([title for _, title in TABLE_COLUMNS])
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # the rounded numbers fit a narrow dock
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)  # the model name: wider, user-resizable
        header.resizeSection(0, 110)
        self.verticalHeader().setVisible(False)  # no row numbers: room for the numbers instead
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "mnv3-lr…v2-int8" keeps what tells models apart
        self.setWordWrap(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setToolTip("Runs of this session; hover a row for every timing and volume, or copy them as CSV")
        self.setMinimumHeight(90)

    def show_runs(self, runs: list[dict[str, Any]]) -> None:
        self.setRowCount(len(runs))
        methods = sorted({str(row["energy_method"]) for row in runs if row["energy_method"]})
        energy = self.horizontalHeaderItem([key for key, _ in TABLE_COLUMNS].index("energy_j"))
        if energy is not None:  # the method (measured or estimated) names itself where the number is
            energy.setToolTip(ENERGY_TIP.format(method="; ".join(methods) or "method shown after a run"))
        for r, row in enumerate(runs):
            tip = "\n".join(f"{key}: {row[key]}" for key in RUN_COLUMNS)
            for c, (key, _) in enumerate(TABLE_COLUMNS):
                item = QTableWidgetItem(cell_text(key, row[key]))
                item.setToolTip(tip)
                if key in CELL_FORMATS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(r, c, item)
        self.resizeRowsToContents()


def cell_text(key: str, value: object) -> str:
    """A cell: numbers rounded for reading (``CELL_FORMATS``), anything else as it is."""
    if key in CELL_FORMATS and isinstance(value, (int, float)):
        return CELL_FORMATS[key].format(value)
    return str(value)
