"""Every shipped model on the fixed validation split and on the unseen TCGA case, with test-time flips.

For each CNN card (both generations) and each flip option (none, lr, lr+ap) and for each PCNN card:
Dice/HD95 per BraTS region through the plugin's engine (``engine.run``, post-processing on), against
the expert labels of the 4 validation cases of ``src_models/data.py`` and against the five-algorithm
fusion (``segmentations/fusion_mav``) of ``other/TCGA-FG-6692`` (no expert labels exist for it).
Writes ``RESULTS_generations.json`` and prints Markdown tables (``RESULTS_generations.md``).

    LIGHTSEG_DATA=../shared/data python benchmarks/bench_generations.py [--models a,b] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from napari_lightseg import engine
from napari_lightseg.inference import FLIP_OPTIONS
from napari_lightseg.io import load_labels, load_study
from napari_lightseg.metrics import region_scores
from napari_lightseg.models import list_cards

DATA = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
HERE = Path(__file__).resolve().parent
VALIDATION = ("Brats18_2013_20_1", "Brats18_CBICA_ALU_1", "Brats18_TCIA02_606_1", "Brats18_TCIA10_639_1")
TCGA = "TCGA-FG-6692"
KEYS = ("dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET")


def studies() -> dict[str, tuple[object, np.ndarray]]:
    """name -> (study, reference labels in internal classes on the study's grid)."""
    found = {}
    for name in VALIDATION:
        study = load_study(DATA / "brats18" / name)
        found[name] = (study, study.labels)
    tcga = DATA / "other" / TCGA
    study = load_study(tcga, with_labels=False)
    reference, _, geometry = load_labels(tcga / "segmentations" / "fusion_mav.nii.gz")
    if reference.shape != study.shape:
        raise SystemExit(f"{TCGA}: fusion grid {reference.shape} differs from the study's {study.shape}")
    found[TCGA] = (study, reference)
    return found


def measure(card, cases: dict, flips: list[str] | None, threads: int) -> dict[str, dict[str, float]]:
    rows = {}
    for name, (study, reference) in cases.items():
        result = engine.run(study, card, None, threads=threads, flips=flips)
        scores = region_scores(result.labels, reference, study.geometry.spacing)
        rows[name] = {**{k: round(float(scores[k]), 4) for k in KEYS},
                      "seconds": round(result.report.timings_s["total"], 3),
                      "inference_s": round(result.report.timings_s["inference"], 3)}
    return rows


def summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    val = [rows[c] for c in VALIDATION]
    out = {f"val_{k}": round(float(np.mean([r[k] for r in val])), 4) for k in (*KEYS, "seconds", "inference_s")}
    out.update({f"tcga_{k}": rows[TCGA][k] for k in KEYS})
    out["val_mean_dice"] = round(float(np.mean([out[f"val_dice_{r}"] for r in ("WT", "TC", "ET")])), 4)
    return out


def table(results: dict) -> str:
    lines = ["| model | flips | val WT | val TC | val ET | val mean | val s/case | TCGA WT | TCGA TC | TCGA ET |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model, by_flip in sorted(results["models"].items()):
        for option, entry in by_flip.items():
            s = entry["summary"]
            mark = " (default)" if entry.get("card_default") else ""
            seen = "({:.3f})" if entry.get("final_fit") else "{:.3f}"  # trained on the split: not validation numbers
            val = " | ".join(seen.format(s[k]) for k in ("val_dice_WT", "val_dice_TC", "val_dice_ET", "val_mean_dice"))
            lines.append(f"| {model} | {option}{mark} | {val} | {s['val_seconds']:.2f} | {s['tcga_dice_WT']:.3f} | "
                         f"{s['tcga_dice_TC']:.3f} | {s['tcga_dice_ET']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated card names (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_generations.json")
    args = p.parse_args()
    wanted = set(filter(None, args.models.split(",")))
    cards = [c for c in list_cards() if not wanted or c.name in wanted]
    cases = studies()
    results = json.loads(args.out.read_text()) if args.out.exists() else {"models": {}}
    results["machine"] = f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, threads={args.threads}"
    results["cases"] = {"validation": list(VALIDATION), "unseen": TCGA, "unseen_reference": "segmentations/fusion_mav.nii.gz"}
    for card in cards:
        options = FLIP_OPTIONS if card.kind == "cnn" else {"n/a": None}
        final_fit = bool(card.training.get("final_fit"))
        previous = results["models"].get(card.name, {})
        if final_fit and previous and not any(e.get("final_fit") for e in previous.values()):
            results["models"][f"{card.name} (split run)"] = previous  # the weights the final fit replaced
        results["models"][card.name] = {}
        for option, flips in options.items():
            rows = measure(card, cases, flips, args.threads)
            results["models"][card.name][option] = {"summary": summary(rows), "per_case": rows, "final_fit": final_fit,
                                                    "card_default": card.kind == "cnn" and flips == card.test_time_flips}
            print(f"{card.name} {option}: {results['models'][card.name][option]['summary']}", flush=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(table(results))


def markdown(results: dict) -> str:
    """RESULTS_generations.md: the table and how it was made."""
    return (f"# Every model, both generations, per test-time flip option (`benchmarks/bench_generations.py`)\n\n"
            f"Machine: {results['machine']} (a loaded 2-core CPU: seconds compare options, they are not speed figures). "
            f"Validation: mean over {', '.join(results['cases']['validation'])} (expert labels). TCGA: "
            f"{results['cases']['unseen']} against {results['cases']['unseen_reference']} (five-algorithm fusion, "
            "no expert labels). Through `engine.run` with post-processing; \"(default)\" marks each card's own flips. "
            "Validation Dice in parentheses: a final fit, trained on all 15 labelled cases, the validation split included, "
            "so those are training-set numbers; its card reports the split run's (\"(split run)\" rows: the weights it replaced).\n\n"
            + table(results) + "\n")


if __name__ == "__main__":
    main()
