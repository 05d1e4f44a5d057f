"""Model card schema (JSON beside the shipped .onnx files) and the card registry.

A card is the only way a model is loaded: its ``file`` and ``sha256`` name the weights, its
``inputs``/``outputs`` the ONNX I/O, ``sequences`` the channel order, ``label_map`` the classes.
PCNN cards (``kind: pcnn``) have no file; their ``parameters`` configure the network.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CARD_DIR = Path(__file__).resolve().parent
KINDS = ("cnn", "pcnn")
HEADS = ("classes", "regions")
REQUIRED = ("name", "kind", "architecture", "precision", "sequences", "label_map", "validation")
# What a user gets without choosing (the pickers' first choice, ``lightseg segment``/``batch`` without --model):
# the generations table (README, benchmarks/RESULTS_generations.md) picks it on validation Dice and speed.
RECOMMENDED = "mnv3-lraspp-v2-int8"


class CardError(ValueError):
    """A model card is missing, malformed, or does not match its weights."""


@dataclass
class ModelCard:
    """What is known about a shipped model: its file, inputs, labels, cost and validation scores."""
    name: str
    kind: str  # cnn | pcnn
    architecture: str
    precision: str  # fp32 | int8 | n/a
    sequences: list[str]
    label_map: dict[str, str]
    validation: dict[str, Any]
    description: str = ""
    file: str | None = None
    sha256: str | None = None
    params: int | None = None
    flops_per_slice: int | None = None
    inputs: list[str] = field(default_factory=lambda: ["input"])
    outputs: list[str] = field(default_factory=lambda: ["logits"])
    normalization: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    reproduce: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # How a CNN's slices go in and its outputs come out (napari_lightseg.inference): "classes" = softmax over
    # background/NCR/ED/ET, "regions" = sigmoid WT/TC/ET channels; context_slices = neighbours on each side
    # stacked as channels (2.5D); test_time_flips = in-plane flips averaged by default ("lr", "ap").
    head: str = "classes"
    context_slices: int = 0
    test_time_flips: list[str] = field(default_factory=list)
    card_path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> Path | None:
        """The weights file, next to the card."""
        if self.file is None:
            return None
        return (self.card_path.parent if self.card_path else CARD_DIR) / self.file

    @property
    def file_mb(self) -> float:
        return round(self.path.stat().st_size / 2**20, 3) if self.path and self.path.exists() else 0.0

    def verify(self) -> None:
        """Raise CardError unless the weights exist and match the card's sha256."""
        if self.kind == "pcnn":
            return
        if self.path is None or not self.path.exists():
            raise CardError(f"{self.name}: weights file {self.file} is missing")
        digest = sha256_of(self.path)
        if digest != self.sha256:
            raise CardError(f"{self.name}: {self.file} sha256 {digest[:12]}… does not match the card ({str(self.sha256)[:12]}…)")

    def summary(self) -> dict[str, Any]:
        """The short form the CLI's ``models --json`` prints."""
        return {"name": self.name, "kind": self.kind, "architecture": self.architecture, "precision": self.precision,
                "file_mb": self.file_mb, "params": self.params, "validation": self.validation}

    @property
    def in_channels(self) -> int:
        return len(self.sequences) * (2 * self.context_slices + 1)

    @property
    def out_channels(self) -> int:
        return 3 if self.head == "regions" else len(self.label_map)

    @property
    def training_free(self) -> bool:
        return self.kind == "pcnn"

    def short_label(self) -> str:
        """One line for pickers: ``unet-int8  (int8, 1.81 MB, val Dice WT 0.85)``; a PCNN is "training-free"."""
        if self.training_free:
            details = ["training-free"]
        else:
            details = [self.precision, f"{self.file_mb:.2f} MB"]
        dice = self.validation.get("dice_WT")
        if isinstance(dice, (int, float)) and dice == dice:  # not NaN
            details.append(f"val Dice WT {dice:.2f}")
        return f"{self.name}  ({', '.join(details)})"

    def describe(self) -> dict[str, str]:
        """Text columns for the CLI's table: no "n/a", "0.00" or "nan" for a training-free model."""
        v = self.validation
        dice = "/".join(f"{v[f'dice_{r}']:.2f}" if isinstance(v.get(f"dice_{r}"), (int, float)) else "-"
                        for r in ("WT", "TC", "ET"))
        return {"name": self.name, "kind": self.kind,
                "precision": "training-free" if self.training_free else self.precision,
                "MB": "-" if self.training_free else f"{self.file_mb:.2f}",
                "params": f"{self.params:,d}" if self.params else "-", "dice": dice}

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "card_path"}
        return json.dumps(data, indent=2) + "\n"


def sha256_of(path: Path) -> str:
    """Checksum of a file, read in chunks, to verify a model file against its card."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a model card JSON file, failing with a message that names what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: unreadable model card ({exc})") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CardError(f"{path}: model card lacks {', '.join(missing)}")
    if data["kind"] not in KINDS:
        raise CardError(f"{path}: kind must be one of {KINDS}, got {data['kind']!r}")
    if data["kind"] == "cnn" and not (data.get("file") and data.get("sha256")):
        raise CardError(f"{path}: a cnn card needs file and sha256")
    if data.get("head", "classes") not in HEADS:
        raise CardError(f"{path}: head must be one of {HEADS}, got {data['head']!r}")
    known = set(ModelCard.__dataclass_fields__) - {"card_path"}
    unknown = set(data) - known
    if unknown:
        raise CardError(f"{path}: unknown card fields {sorted(unknown)}")
    return ModelCard(**data, card_path=path)


@lru_cache(maxsize=4)
def _cards_in(folder: str) -> tuple[ModelCard, ...]:
    cards = [load_card(p) for p in sorted(Path(folder).glob("*.json"))]
    return tuple(sorted(cards, key=lambda c: (c.kind, c.architecture, c.precision, c.name)))


def list_cards(folder: Path = CARD_DIR) -> list[ModelCard]:
    """All model cards in a folder (the shipped ones by default)."""
    return list(_cards_in(str(folder)))


def recommended_name(cards: list[ModelCard] | None = None) -> str:
    """``RECOMMENDED`` when it ships, else the first card (a trimmed install still has a default)."""
    names = [c.name for c in (list_cards() if cards is None else cards)]
    return RECOMMENDED if RECOMMENDED in names or not names else names[0]


def get_card(name: str, folder: Path = CARD_DIR) -> ModelCard:
    """The model card of that name, or an error listing the available ones."""
    for card in list_cards(folder):
        if card.name == name:
            return card
    names = ", ".join(c.name for c in list_cards(folder)) or "none"
    raise CardError(f"no model named {name!r}; available: {names}")
