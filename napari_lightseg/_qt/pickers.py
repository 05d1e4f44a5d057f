"""The pickers every dock shares: one combo per sequence, model + backend (+ threads, + parameters),
the list of (model, backend) jobs to run, and the reference + masks to compare.

Why one module: the segment and compare docks (and the study panel's per-sequence series) each built
their own combos and kept the backend list in step with the model by hand; here that is done once,
so every dock lists the same models with the same labels and the same backends.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QWidget,
)

from ..backends import backend_choices
from ..backends.registry import default_threads
from ..io import SEQUENCE_TITLES, SEQUENCES
from ..models import ModelCard, list_cards, recommended_name
from .common import compact_combo


def sequence_combos(form: QFormLayout, min_characters: int = 10, tooltip: str = "") -> dict[str, QComboBox]:
    """One compact combo per sequence (FLAIR, T1, T1c, T2), added to ``form`` under the sequence's title."""
    combos = {}
    for seq in SEQUENCES:
        combos[seq] = compact_combo(min_characters)
        if tooltip:
            combos[seq].setToolTip(tooltip.format(title=SEQUENCE_TITLES[seq]))
        form.addRow(SEQUENCE_TITLES[seq], combos[seq])
    return combos


def fill_layer_choices(combos: Mapping[str, QComboBox], names: list[str], found: Mapping[str, list[str]]) -> None:
    """Offer ``names`` (3D image layers) in every sequence combo: keep the user's choice while its layer
    exists, else take the newest layer tagged with that sequence (``found``); no change signals."""
    for seq, combo in combos.items():
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(["", *names])
        combo.setCurrentText(current if current in names else (found[seq][-1] if found.get(seq) else ""))
        combo.blockSignals(False)


def fill_data_choices(combo: QComboBox, choices: list[tuple[str, Any]], chosen: Any = None) -> None:
    """Replace a combo's (label, data) entries and select ``chosen`` (else the first); no change signals."""
    combo.blockSignals(True)
    combo.clear()
    for label, data in choices:
        combo.addItem(label, data)
    combo.setCurrentIndex(max(combo.findData(chosen), 0))
    combo.blockSignals(False)


def fill_mask_choices(reference_combo: QComboBox, mask_list: QListWidget, names: list[str]) -> None:
    """Offer the masks ``names`` as the reference (kept if still there, else the ground truth, else the
    first) and as masks to compare (earlier picks kept; new masks join, the reference does not)."""
    previous = {mask_list.item(i).text(): mask_list.item(i).isSelected() for i in range(mask_list.count())}
    reference = reference_combo.currentText()
    reference_combo.clear()
    reference_combo.addItems(names)
    truth = [n for n in names if "ground truth" in n]
    reference_combo.setCurrentText(reference if reference in names else (truth[0] if truth else (names[0] if names else "")))
    mask_list.clear()
    for name in names:
        item = QListWidgetItem(name)
        mask_list.addItem(item)
        item.setSelected(previous.get(name, name != reference_combo.currentText()))


class ModelPicker(QWidget):
    """Model (its card's one-line label; the card name as data), its backends, and optionally threads.

    ``cards`` is a plain dict: tests and callers may add a card and an entry for it.
    """

    changed = Signal()

    def __init__(self, threads: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.cards: dict[str, ModelCard] = {c.name: c for c in list_cards()}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.model_combo, self.backend_combo = compact_combo(), compact_combo()
        for card in self.cards.values():
            self.model_combo.addItem(card.short_label(), card.name)
        self.model_combo.setCurrentIndex(max(self.model_combo.findData(recommended_name(list(self.cards.values()))), 0))
        form.addRow("Model", self.model_combo)
        form.addRow("Backend", self.backend_combo)
        self.threads: QSpinBox | None = None
        if threads:
            self.threads = QSpinBox()
            self.threads.setRange(1, 256)
            self.threads.setValue(default_threads())
            form.addRow("Threads", self.threads)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self._on_model_changed()

    @property
    def name(self) -> str:
        return self.model_combo.currentData() or ""

    @property
    def card(self) -> ModelCard | None:
        return self.cards.get(self.name)

    @property
    def backend(self) -> str:
        """The chosen backend ("" = the card's default)."""
        return self.backend_combo.currentText()

    def controls(self) -> list[QWidget]:
        """What a running task must disable."""
        return [self.model_combo, self.backend_combo, *([self.threads] if self.threads is not None else [])]

    def _on_model_changed(self, *_: Any) -> None:
        self.backend_combo.clear()
        if self.card is not None:
            self.backend_combo.addItems(backend_choices(self.card))
        self.changed.emit()


class ParameterBox(QGroupBox):
    """Spin boxes for a card's numeric parameters (the PCNN's); hidden for cards without any."""

    def __init__(self, title: str = "PCNN parameters", parent: QWidget | None = None):
        super().__init__(title, parent)
        self.form = QFormLayout(self)
        self.spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self.setVisible(False)

    def show_card(self, card: ModelCard | None) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.spins = {}
        parameters = card.parameters if card is not None else {}
        for key, value in parameters.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.spins[key] = _parameter_spin(value)
                self.form.addRow(key, self.spins[key])
        self.setVisible(bool(self.spins))

    def applied_to(self, card: ModelCard) -> ModelCard:
        """The card with the edited parameter values (unchanged when there are none)."""
        if not self.spins:
            return card
        return replace(card, parameters={**card.parameters, **{k: s.value() for k, s in self.spins.items()}})


def _parameter_spin(value: int | float) -> QSpinBox | QDoubleSpinBox:
    """Integers edit as integers; real parameters with the decimals they need."""
    if isinstance(value, int):
        integer = QSpinBox()
        integer.setRange(-1_000_000, 1_000_000)
        integer.setValue(value)
        return integer
    real = QDoubleSpinBox()
    real.setDecimals(3)
    real.setRange(-1e6, 1e6)
    real.setSingleStep(0.1)
    real.setValue(float(value))
    return real


class JobList(QListWidget):
    """The (model, backend) runs still to do, in order; each leaves the list when its result is in."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMaximumHeight(80)
        self.setToolTip("Jobs still to run: each leaves the list when its result is in")

    def add_job(self, model: str, backend: str) -> None:
        item = QListWidgetItem(f"{model}  ·  {backend or 'default'}")
        item.setData(Qt.ItemDataRole.UserRole, (model, backend))
        self.addItem(item)

    def remove_selected(self) -> None:
        for item in self.selectedItems():
            self.takeItem(self.row(item))

    def jobs(self) -> list[tuple[str, str]]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]
