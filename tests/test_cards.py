"""Every shipped model card: schema, weights present with the right sha256, ONNX I/O names."""
from __future__ import annotations

import json

import pytest

from napari_lightseg.models import CARD_DIR, CardError, list_cards, load_card

CARDS = list_cards()


def test_cards_exist():
    assert CARDS, f"no model cards in {CARD_DIR}"
    names = [c.name for c in CARDS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_card_is_consistent(card):
    card.verify()
    if card.kind == "pcnn":
        assert "pcnn" in card.name and card.file is None
        return
    import onnxruntime as ort

    assert card.name in (f"{card.architecture}-{card.precision}", f"{card.architecture}-v2-{card.precision}")
    session = ort.InferenceSession(str(card.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == card.inputs
    assert [o.name for o in session.get_outputs()] == card.outputs
    assert session.get_inputs()[0].shape[1] == card.in_channels  # sequences x context slices
    assert session.get_outputs()[0].shape[1] == card.out_channels  # classes, or WT/TC/ET regions
    assert session.get_inputs()[0].shape[1] == len(card.sequences) == 4
    for key in ("dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET"):
        assert key in card.validation
    assert card.reproduce and card.training.get("validation_cases")
    assert card.path.stat().st_size < 8 * 2**20


def test_tampered_weights_are_refused(tmp_path):
    cnn = [c for c in CARDS if c.kind == "cnn"]
    if not cnn:
        pytest.skip("no CNN cards")
    card = cnn[0]
    (tmp_path / card.file).write_bytes(card.path.read_bytes()[:-1] + b"\0")
    copy = tmp_path / f"{card.name}.json"
    copy.write_text(card.to_json())
    with pytest.raises(CardError, match="sha256"):
        load_card(copy).verify()


def test_malformed_card_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(CardError, match="lacks"):
        load_card(bad)
