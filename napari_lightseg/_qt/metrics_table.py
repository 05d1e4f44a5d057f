"""The compare widget's table: metrics first (the reference is named once, above it), HD95 explained."""
from __future__ import annotations

from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from ..compare import COLUMNS

RUN_TIME = "run_s"
TABLE_COLUMNS = (*(c for c in COLUMNS if c != "reference"), RUN_TIME)
HEADERS = {RUN_TIME: "run s", "segmentation": "mask"}
HD95_TIP = ("HD95: 95th percentile of the distances (mm) between the two masks' surfaces, both directions pooled "
            "(MedPy's definition); inf when one mask is empty and the other is not")


def _header(column: str) -> str:
    return HEADERS.get(column, column.replace("_ml", " mL").replace("volume_", "vol ").replace("_", " "))


def _cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:.3f}" if column.startswith("dice") else f"{value:.2f}"


class MetricsTable(QTableWidget):
    def __init__(self):
        super().__init__(0, len(TABLE_COLUMNS))
        self.setHorizontalHeaderLabels([_header(c) for c in TABLE_COLUMNS])
        for c, column in enumerate(TABLE_COLUMNS):
            if column.startswith("hd95"):
                self.horizontalHeaderItem(c).setToolTip(HD95_TIP)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMinimumHeight(100)

    def show_rows(self, rows: list[dict]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, column in enumerate(TABLE_COLUMNS):
                self.setItem(r, c, QTableWidgetItem(_cell(column, row.get(column))))
        self.resizeColumnsToContents()
