"""Release a final fit: the shipped recipe retrained on all 15 labelled cases replaces a model's weights.

    python -m src_models.train --arch mnv3-lraspp --head regions --steps 3000 --all-cases --out runs/mnv3-v2-all
    python -m src_models.release runs/mnv3-v2-all --name mnv3-lraspp-v2 --final-fit

Once the recipe is fixed on the validation split, training on every labelled case uses all the data we have
(as nnU-Net's final models do). The validation split is then part of the training data, so the cards keep the
numbers the split run measured (``validation``, unchanged, and flagged as such) and add what can still be
measured honestly: both weights on the unseen TCGA case against its five-algorithm fusion, and the final
fit on the split cases marked as *seen in training*. The INT8 calibration method and the test-time flips
are the split run's choices (no untouched data is left to choose them again).

The final fit ships only if it is not worse on TCGA than the split model by more than ``MAX_TCGA_LOSS`` mean
Dice (a broken run must not replace a working model); the decision rule was fixed before the run.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from napari_lightseg import engine
from napari_lightseg.inference import stack_context
from napari_lightseg.io import load_labels, load_study
from napari_lightseg.metrics import region_scores
from napari_lightseg.models import ModelCard
from napari_lightseg.models.cards import load_card, sha256_of

from .data import DATA_ROOT, VALIDATION_CASES, brats18_cases, load_case
from .export import export_onnx, load_checkpoint, parity
from .quantize import calibration_batches, quantize
from .release import agreement

TCGA = "TCGA-FG-6692"
MAX_TCGA_LOSS = 0.02  # mean WT/TC/ET Dice vs the fusion the final fit may lose to the split model and still ship
REGIONS = ("WT", "TC", "ET")


def _scores(card: ModelCard, studies: list[tuple[str, object, np.ndarray]]) -> tuple[dict, list[np.ndarray]]:
    """Per-case and mean Dice/HD95 of ``card`` (its own flips) through the plugin's engine."""
    per_case, preds = {}, []
    for name, study, reference in studies:
        result = engine.run(study, card, "onnxruntime", threads=2)
        preds.append(result.labels)
        scores = region_scores(result.labels, reference, study.geometry.spacing)  # type: ignore[attr-defined]
        per_case[name] = {k: round(float(v), 4) for k, v in scores.items() if k.startswith(("dice", "hd95"))}
    mean = {k: round(float(np.mean([row[k] for row in per_case.values()])), 4) for k in next(iter(per_case.values()))}
    mean["mean_dice"] = round(float(np.mean([mean[f"dice_{r}"] for r in REGIONS])), 4)
    return {"mean": mean, "per_case": per_case}, preds


def _tcga() -> list[tuple[str, object, np.ndarray]]:
    folder = DATA_ROOT / "other" / TCGA
    study = load_study(folder, with_labels=False)
    reference, _, _ = load_labels(folder / "segmentations" / "fusion_mav.nii.gz", study.geometry)
    return [(TCGA, study, reference)]


def _split_cases() -> list[tuple[str, object, np.ndarray]]:
    _, val_dirs = brats18_cases()
    studies = [load_study(d) for d in val_dirs]
    return [(s.name, s, s.labels) for s in studies]


def release_final_fit(run: Path, name: str, out: Path) -> None:
    """Replace ``<name>-fp32/-int8`` weights with the all-cases run in ``run``; cards say what changed."""
    model, config = load_checkpoint(run / "last.pt")
    if config.get("train_cases", 0) <= len(brats18_cases()[0]):
        raise SystemExit(f"{run}: trained on {config.get('train_cases')} cases; a final fit trains with --all-cases")
    split = {p: load_card(out / f"{name}-{p}.json") for p in ("fp32", "int8")}
    for card in split.values():
        if card.head != config.get("head", "classes") or card.architecture != config["arch"]:
            raise SystemExit(f"{card.name}: recipe differs from {run} ({card.architecture}/{card.head})")
    tcga = _tcga()
    split_tcga = {p: _scores(card, tcga)[0] for p, card in split.items()}

    train_dirs, val_dirs = brats18_cases()
    all_dirs = sorted(train_dirs + val_dirs)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        fp32_tmp = Path(tmp) / f"{name}-fp32.onnx"
        export_onnx(model, fp32_tmp)
        image, _ = load_case(val_dirs[0])
        mid = image.shape[1] // 2
        volume = np.ascontiguousarray(image.transpose(1, 0, 2, 3), dtype=np.float32)
        probe = stack_context(volume, mid - 8, mid + 8, split["fp32"].context_slices)
        check = parity(model, fp32_tmp, probe, split["fp32"].head)
        method = split["int8"].quantization.get("calibration", "MinMax")
        batches = calibration_batches([load_case(d) for d in all_dirs])
        int8_tmp = quantize(fp32_tmp, Path(tmp) / f"{name}-int8.onnx", batches, method)
        new = {}
        for precision, path in (("fp32", fp32_tmp), ("int8", int8_tmp)):
            new[precision] = dataclasses.replace(split[precision], file=path.name, sha256=sha256_of(path),
                                                 card_path=path.with_suffix(".json"))
        final_tcga = {p: _scores(card, tcga) for p, card in new.items()}
        loss = split_tcga["int8"]["mean"]["mean_dice"] - final_tcga["int8"][0]["mean"]["mean_dice"]
        print(f"TCGA mean Dice (INT8): split {split_tcga['int8']['mean']['mean_dice']:.4f}, "
              f"final fit {final_tcga['int8'][0]['mean']['mean_dice']:.4f}", flush=True)
        if loss > MAX_TCGA_LOSS:
            raise SystemExit(f"final fit loses {loss:.3f} mean Dice on {TCGA} (> {MAX_TCGA_LOSS}); not shipped")
        seen = {p: _scores(card, _split_cases()) for p, card in new.items()}
        fp32_vs_int8 = agreement(final_tcga["fp32"][1] + seen["fp32"][1], final_tcga["int8"][1] + seen["int8"][1])
        for precision, card in new.items():
            target = out / f"{name}-{precision}.onnx"
            target.write_bytes(Path(tmp, str(card.file)).read_bytes())
            card.card_path = target.with_suffix(".json")
            _describe(card, split[precision], config, log, all_dirs, run, name, final_tcga[precision][0],
                      split_tcga[precision], seen[precision][0])
            if precision == "fp32":
                card.extra["onnx_vs_pytorch"] = check
            else:
                card.quantization = {**split[precision].quantization, "calibration_slices": int(sum(len(b) for b in batches)),
                                     "calibration_cases": "all 15 labelled cases", "fp32_vs_int8": fp32_vs_int8}
            card.card_path.write_text(card.to_json())
            print(f"wrote {card.card_path}")


def _describe(card: ModelCard, split: ModelCard, config: dict, log: list[dict], all_dirs: list[Path], run: Path,
              name: str, tcga: dict, split_tcga: dict, seen: dict) -> None:
    """The card of the final fit: the split run's validation numbers kept, and flagged; what was measured on it."""
    card.validation = {**split.validation, "measured_on": (
        "the same recipe trained on the 11 training cases only (the split run, whose weights these replace): "
        "the shipped weights trained on these validation cases too, so their own Dice there is not a validation number")}
    card.training = {
        **split.training, "train_cases": [d.name for d in all_dirs], "validation_cases": list(VALIDATION_CASES),
        "final_fit": True, "config": config, "final_log": log[-1], "device": f"{config.get('device')} ({config.get('threads')} threads)",
        "split_run": {"config": split.training.get("config"), "final_log": split.training.get("final_log"),
                      "sha256": split.sha256, "reproduce": split.reproduce},
    }
    card.training.pop("note", None)
    card.reproduce = [f"python -m src_models.train --arch {config['arch']} --head {config.get('head', 'classes')} "
                      f"--context {config.get('context', 0)} --aug {config.get('aug', 'basic')} --steps {config['steps']} "
                      f"--val-every {config.get('val_every')} --threads {config.get('threads')} --all-cases --out {run}",
                      f"python -m src_models.release {run} --name {name} --final-fit"]
    card.description = (f"{config['arch']} ({config.get('head', 'classes')} head, {config.get('aug', 'basic')} augmentation) "
                        f"final fit on all {len(all_dirs)} labelled BraTS 2018 cases (recipe fixed on the 11-case split); "
                        f"{card.precision.upper()} ONNX")
    card.extra = {**split.extra, "final_fit": {
        "rule": f"ships only if TCGA mean Dice (vs fusion) is at most {MAX_TCGA_LOSS} below the split model's",
        "tcga_vs_fusion": {"final_fit": tcga, "split_model": split_tcga},
        "split_cases_seen_in_training": seen,
    }}
