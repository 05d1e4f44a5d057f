"""Every number the README's model table shows that a card holds must equal the card (no hand-copied drift)."""
from __future__ import annotations

from pathlib import Path

import pytest

from napari_lightseg.models import list_cards

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| model | params | GFLOPs/slice | file MB | PyTorch FP32 s | ORT s | val Dice WT/TC/ET |"


def _model_rows() -> dict[str, list[str]]:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2  # header, then the |---| line
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


CNN_CARDS = [card for card in list_cards() if card.kind == "cnn"]


def test_every_shipped_cnn_has_a_row() -> None:
    assert set(_model_rows()) == {card.name for card in CNN_CARDS}


@pytest.mark.parametrize("card", CNN_CARDS, ids=lambda card: card.name)
def test_row_equals_card(card) -> None:
    _, params, gflops, file_mb, _, _, dice = _model_rows()[card.name]
    assert int(params.replace(",", "")) == card.params
    assert gflops == f"{card.flops_per_slice / 1e9:.2f}"
    assert file_mb == f"{card.file_mb:.2f}"
    assert dice == "/".join(f"{card.validation[f'dice_{r}']:.3f}" for r in ("WT", "TC", "ET"))


RESULTS = [README.parent / "benchmarks", README.parent / "docs"]
DOCUMENTATION_TABLES = ("| finding | action |",)  # tables that explain, with no measured number


def _measured_rows() -> list[tuple[int, str]]:
    """README table rows holding a digit, outside documentation tables, with their line numbers."""
    rows, documentation = [], False
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if not line.startswith("|"):
            documentation = False
            continue
        if line.startswith(DOCUMENTATION_TABLES):
            documentation = True
        if not documentation and not line.startswith("|---") and any(ch.isdigit() for ch in line):
            rows.append((number, line))
    return rows


def test_every_measured_readme_row_is_in_a_results_file() -> None:
    """Every number in a README table comes from a results file that a committed script wrote: the row is
    copied verbatim (a hand-edited or stale row fails here)."""
    written = "\n".join(p.read_text() for folder in RESULTS for p in sorted(folder.glob("*.md"))
                        if p.name.upper().startswith("RESULTS") or "results" in p.name)
    missing = [f"README.md:{n}: {line}" for n, line in _measured_rows() if line not in written]
    assert missing == [], "\n".join(missing)
