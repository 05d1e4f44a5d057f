"""Release a trained run as shipped models: export -> parity check -> INT8 -> validation -> cards.

    python -m src_models.release runs/dsc-unet --name dsc-unet

Writes ``napari_lightseg/models/<name>-fp32.onnx|json`` and ``<name>-int8.onnx|json``. The
calibration method (MinMax vs Percentile) is the one with the better mean validation Dice; every
number in the cards is measured here through the plugin's own engine.
"""
from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_lightseg import engine
from napari_lightseg.inference import FLIP_OPTIONS
from napari_lightseg.io import CLASS_NAMES, SEQUENCES, load_study
from napari_lightseg.metrics import dice, region_scores
from napari_lightseg.models import CARD_DIR, ModelCard
from napari_lightseg.models.cards import sha256_of

from .archs import build, count_flops, count_params
from .data import VALIDATION_CASES, brats18_cases, load_case
from .export import export_onnx, load_checkpoint, parity
from .quantize import QUANTIZED_OPS, calibration_batches, quantize

NORMALIZATION = "per-sequence z-score inside the brain (any sequence non-zero), clipped to +-5; brain bounding-box crop"


MIN_FLIP_GAIN = 0.005  # mean WT/TC/ET Dice the flips must add on the validation split to be on by default


def draft_card(name: str, arch: str, precision: str, onnx_path: Path, config: dict) -> ModelCard:
    head, context = config.get("head", "classes"), config.get("context", 0)
    model = build(arch, config.get("norm", "bn"), len(SEQUENCES) * (2 * context + 1), 3 if head == "regions" else 4)
    return ModelCard(
        name=f"{name}-{precision}", kind="cnn", architecture=arch, precision=precision,
        sequences=list(SEQUENCES), label_map={"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}},
        validation={}, file=onnx_path.name, sha256=sha256_of(onnx_path), params=count_params(model),
        flops_per_slice=count_flops(model), normalization=NORMALIZATION, card_path=onnx_path.with_suffix(".json"),
        head=head, context_slices=context,
    )


def training_commands(run: Path, config: dict) -> list[str]:
    """The commands that made ``run``: ``commands.txt`` in the run folder when present (runs that were
    resumed with other settings), else rebuilt from its config."""
    recorded = run / "commands.txt"
    if recorded.exists():
        return [line for line in recorded.read_text().splitlines() if line.strip()]
    limit = f" --max-minutes {config['max_minutes']}" if config.get("max_minutes") else ""
    return [f"python -m src_models.train --arch {config['arch']} --norm {config.get('norm', 'bn')} --steps {config['steps']} "
            f"--batch {config['batch']} --patch {config['patch']} --lr {config['lr']} --seed {config['seed']} "
            f"--val-every {config.get('val_every', 250)} --threads 2{limit} --out {run}"]


def evaluate(card: ModelCard, studies: list, flips: list[str] | None = None) -> tuple[dict, list[np.ndarray]]:
    """Mean Dice/HD95 per region over validation studies, and the predicted label volumes."""
    rows, preds = [], []
    for study in studies:
        result = engine.run(study, card, "onnxruntime", threads=2, flips=flips)
        preds.append(result.labels)
        rows.append({**region_scores(result.labels, study.labels, study.geometry.spacing),
                     "seconds": result.report.timings_s["total"], "case": study.name})
    summary = {}
    for key in rows[0]:
        if key == "case":
            continue
        values = np.array([r[key] for r in rows], dtype=float)
        summary[key] = round(float(np.mean(values)), 4)
    summary["cases"] = [r["case"] for r in rows]
    summary["per_case"] = {r["case"]: {k: round(float(v), 4) for k, v in r.items() if k.startswith(("dice", "hd95"))} for r in rows}
    return summary, preds


def mean_dice(validation: dict) -> float:
    return float(np.mean([validation[f"dice_{r}"] for r in ("WT", "TC", "ET")]))


def flip_table(card: ModelCard, studies: list, fixed: list[str] | None = None) -> tuple[dict, dict, list[np.ndarray]]:
    """Validation Dice and seconds per test-time flip option; the default is the best option only if it
    adds ``MIN_FLIP_GAIN`` mean Dice over no flips. Returns (table, chosen validation, chosen predictions)."""
    table, runs = {}, {}
    for option, flips in FLIP_OPTIONS.items():
        val, preds = evaluate(card, studies, flips)
        runs[option] = (val, preds)
        table[option] = {**{k: val[k] for k in ("dice_WT", "dice_TC", "dice_ET", "seconds")}, "mean_dice": round(mean_dice(val), 4)}
        print(f"{card.name} flips {option}: mean Dice {table[option]['mean_dice']:.4f}, {val['seconds']:.2f} s", flush=True)
    best = max(table, key=lambda o: table[o]["mean_dice"])
    chosen = best if table[best]["mean_dice"] - table["none"]["mean_dice"] >= MIN_FLIP_GAIN else "none"
    if fixed is not None:  # an INT8 twin keeps its FP32 model's default; a release may fix it (--default-flips)
        chosen = next(option for option, flips in FLIP_OPTIONS.items() if flips == fixed)
    card.test_time_flips = FLIP_OPTIONS[chosen]
    table["default"] = chosen
    return table, runs[chosen][0], runs[chosen][1]


def machine(config: dict) -> str:
    """Where the run trained: recorded by train.py (device, CPU model, threads); older runs lack it."""
    if config.get("device"):
        return f"{config['device']} ({config.get('threads')} threads)"
    import torch

    from .train import describe_device

    return f"{describe_device(torch.device('cpu'))} (the release machine; the run did not record its own)"


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    """FP32-vs-INT8: voxel label agreement inside predicted tumour, and WT Dice between the two."""
    union = [(x > 0) | (y > 0) for x, y in zip(a, b)]
    return {
        "tumour_voxel_label_agreement": round(float(np.mean([(x[u] == y[u]).mean() if u.any() else 1.0 for x, y, u in zip(a, b, union)])), 4),
        "dice_WT_between": round(float(np.mean([dice(x > 0, y > 0) for x, y in zip(a, b)])), 4),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder with last.pt, config.json, log.jsonl")
    p.add_argument("--name", required=True, help="model name stem, e.g. dsc-unet")
    p.add_argument("--out", type=Path, default=CARD_DIR)
    p.add_argument("--methods", default="MinMax,Percentile")
    p.add_argument("--default-flips", choices=sorted(FLIP_OPTIONS), default=None,
                   help="the cards' default test-time flips, whatever they add (e.g. none for a speed tier); "
                        "default: the best option when it adds MIN_FLIP_GAIN mean Dice over none")
    p.add_argument("--about", default="", help="a sentence appended to the cards' description (what the model is for)")
    p.add_argument("--final-fit", action="store_true",
                   help="RUN trained on all labelled cases (train --all-cases) with the recipe of the shipped <name> "
                        "cards: replace their weights, keep their split numbers (see final_fit.py)")
    args = p.parse_args(argv)
    if args.final_fit:
        from .final_fit import release_final_fit

        release_final_fit(args.run, args.name, args.out)
        return

    model, config = load_checkpoint(args.run / "last.pt")
    train_dirs, val_dirs = brats18_cases()
    val_studies = [load_study(d) for d in val_dirs]
    train_cases = [load_case(d) for d in train_dirs]
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]

    fp32 = args.out / f"{args.name}-fp32.onnx"
    export_onnx(model, fp32)
    head, context = config.get("head", "classes"), config.get("context", 0)
    image, _ = load_case(val_dirs[0])
    mid = image.shape[1] // 2
    from napari_lightseg.inference import stack_context

    probe = stack_context(np.ascontiguousarray(image.transpose(1, 0, 2, 3), dtype=np.float32), mid - 8, mid + 8, context)
    check = parity(model, fp32, probe, head)
    card32 = draft_card(args.name, config["arch"], "fp32", fp32, config)
    fixed = FLIP_OPTIONS[args.default_flips] if args.default_flips else None
    flips32, val32, preds32 = flip_table(card32, val_studies, fixed=fixed)

    batches = calibration_batches(train_cases, context=context)
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            t = time.time()
            path = quantize(fp32, Path(tmp) / f"{method}.onnx", batches, method)
            trial = draft_card(args.name, config["arch"], "int8", path, config)
            val8, preds8 = evaluate(trial, val_studies, card32.test_time_flips)
            score = mean_dice(val8)
            print(f"{method}: mean Dice {score:.4f} ({time.time() - t:.0f} s)", flush=True)
            if best is None or score > best[0]:
                best = (score, method, path.read_bytes())
        _, method, blob = best
    int8 = args.out / f"{args.name}-int8.onnx"
    int8.write_bytes(blob)
    card8 = draft_card(args.name, config["arch"], "int8", int8, config)
    flips8, val8, preds8 = flip_table(card8, val_studies, fixed=card32.test_time_flips)

    training = {
        "data": "../shared/data/brats18 (BraTS 2018 training cases), fixed split in src_models/data.py",
        "train_cases": [d.name for d in train_dirs], "validation_cases": list(VALIDATION_CASES),
        "config": config, "final_log": log[-1], "device": machine(config),
    }
    if log[-1]["step"] < config["steps"]:
        training["note"] = (f"stopped on its time budget at step {log[-1]['step']} (learning rate annealed to 0 over the "
                            "budget), so the step count depends on the machine's speed")
    chosen = (f" --default-flips {args.default_flips}" if args.default_flips else "") + (
        f" --about {shlex.quote(args.about)}" if args.about else "")
    reproduce = [*training_commands(args.run, config), f"python -m src_models.release {args.run} --name {args.name}{chosen}"]
    recipe = [f"{head} head"] + ([f"2.5D (+-{context} slices)"] if context else []) + [f"{config.get('aug', 'basic')} augmentation"]
    for card, val, flips in ((card32, val32, flips32), (card8, val8, flips8)):
        card.validation = val
        card.training = training
        card.reproduce = reproduce
        card.description = (f"{config['arch']} ({', '.join(recipe)}) trained on {len(train_dirs)} BraTS 2018 cases; "
                            f"{card.precision.upper()} ONNX" + (f". {args.about}" if args.about else ""))
        card.extra = {"test_time_flips_validation": flips}
    card32.extra["onnx_vs_pytorch"] = check
    card8.quantization = {"format": "QDQ", "weights": "per-channel S8", "activations": "U8", "calibration": method,
                          "calibration_slices": int(sum(len(b) for b in batches)), "quantized_ops": QUANTIZED_OPS,
                          "fp32_vs_int8": agreement(preds32, preds8)}
    for card in (card32, card8):
        card.card_path.write_text(card.to_json())
        print(f"wrote {card.card_path}: Dice WT/TC/ET {card.validation['dice_WT']:.3f}/{card.validation['dice_TC']:.3f}/{card.validation['dice_ET']:.3f}")


if __name__ == "__main__":
    main()
