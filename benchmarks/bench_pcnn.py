"""PCNN benchmark: every variant tried, a bias-field stress test, and the cards' validation blocks.

Usage:
  python benchmarks/bench_pcnn.py                  # all variants + stress + cards -> results_pcnn.json
  python benchmarks/bench_pcnn.py --only cards     # just the shipped cards (segment, ET, detection)
  python benchmarks/bench_pcnn.py --write-cards    # copy the results' card blocks into models/pcnn-*.json

Cases (LIGHTSEG_DATA, default ../shared/data): the 15 labelled brats18 cases, split as the CNNs'
split (src_models/data.py): design decisions are taken on the 11 *decision* (training) cases only;
the 4 validation cases and TCGA-FG-6692 (scored against the majority fusion of five BraTS 2020
algorithms, not expert labels) are reported apart. The BraTS 2023 and AURORA cases have no labels:
only the segmented volume is reported.
The stress test multiplies every sequence by a smooth bias field exp(ln(1.25) r), r running -1..1
along one axis (x0.8 at one end, x1.25 at the other), and re-scores the labelled cases.
A detection "hits" when its 3D box contains the centroid of the true whole tumour.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_lightseg.io import Study, load_labels, load_study  # noqa: E402
from napari_lightseg.metrics import dice  # noqa: E402
from napari_lightseg.models.cards import CARD_DIR, get_card, load_card  # noqa: E402
from napari_lightseg.pcnn import detect, segment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results_pcnn.json"
CARDS = ("pcnn-wt", "pcnn-wt-et")
# the CNNs' fixed validation split (src_models/data.py, not imported: it needs torch)
VALIDATION_CASES = ("Brats18_2013_20_1", "Brats18_CBICA_ALU_1", "Brats18_TCIA02_606_1", "Brats18_TCIA10_639_1")
TCGA = "TCGA-FG-6692"
UNLABELLED = ("BraTS-GLI-00001-000", "AURORA-example-met")
BIAS_GAIN = 1.25
# every variant tried, in the order tried (parameters on top of the pcnn-wt card)
VARIANTS: dict[str, dict[str, Any]] = {
    "v0 size ranking (previous cards)": {"symmetry": False, "bias_shrink": 0},
    "v1 size ranking + slice_window 31": {"symmetry": False, "bias_shrink": 0, "slice_window": 31},
    "v2 asymmetry ranking, tolerance 0 mm": {"symmetry": True, "mirror_tolerance_mm": 0.0, "bias_shrink": 0},
    "v3 asymmetry ranking, tolerance 2 mm": {"symmetry": True, "mirror_tolerance_mm": 2.0, "bias_shrink": 0},
    "v4 asymmetry ranking, tolerance 4 mm": {"symmetry": True, "mirror_tolerance_mm": 4.0, "bias_shrink": 0},
    "v5 v3 + N4 bias field (shrink 8)": {"symmetry": True, "mirror_tolerance_mm": 2.0, "bias_shrink": 8},
    "v6 v0 + N4 bias field (shrink 8)": {"symmetry": False, "bias_shrink": 8},
}
STRESS_VARIANTS = ("v0 size ranking (previous cards)", "v3 asymmetry ranking, tolerance 2 mm",
                   "v5 v3 + N4 bias field (shrink 8)")


def data_root() -> Path:
    return Path(os.environ.get("LIGHTSEG_DATA", ROOT / ".." / "shared" / "data")).resolve()


def load_cases() -> list[Study]:
    """Labelled brats18 cases, TCGA with its fusion as labels, then the unlabelled cases."""
    root = data_root()
    studies = [load_study(p) for p in sorted((root / "brats18").iterdir()) if p.is_dir()]
    tcga = load_study(root / "other" / TCGA)
    tcga.labels = load_labels(root / "other" / TCGA / "segmentations" / "fusion_mav.nii.gz", tcga.geometry)[0]
    studies.append(tcga)
    studies += [load_study(root / "other" / name, with_labels=False) for name in UNLABELLED]
    return studies


def group_of(name: str) -> str:
    if name in VALIDATION_CASES:
        return "validation"
    if name.startswith("Brats18"):
        return "decision"
    return "tcga" if name == TCGA else "unlabelled"


def biased(study: Study, axis: int) -> Study:
    """The study under a smooth multiplicative bias field along ``axis`` (display order)."""
    ramp = np.linspace(-1.0, 1.0, study.shape[axis], dtype=np.float32)
    field = np.exp(np.float32(np.log(BIAS_GAIN)) * ramp).reshape([-1 if i == axis else 1 for i in range(3)])
    return Study(study.name, {k: v * field for k, v in study.images.items()}, study.geometry, labels=study.labels)


def score(study: Study, parameters: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    labels = segment(study, parameters)
    seconds = time.perf_counter() - t0
    row: dict[str, Any] = {"group": group_of(study.name), "volume_ml": round(float((labels > 0).sum()) / 1000.0, 1),
                           "segment_s": round(seconds, 2)}
    if study.labels is not None:
        row["dice_WT"] = round(dice(labels > 0, study.labels > 0), 4)
        if parameters.get("enhancing"):
            row["dice_ET"] = round(dice(labels == 3, study.labels == 3), 4) if (labels == 3).any() else 0.0
    return row


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Median / mean / min WT Dice per group; TCGA's Dice; median seconds."""
    out: dict[str, Any] = {}
    for group in ("decision", "validation"):
        d = [r["dice_WT"] for r in rows.values() if r["group"] == group]
        out[group] = {"n": len(d), "median": round(float(np.median(d)), 4), "mean": round(float(np.mean(d)), 4),
                      "min": round(float(np.min(d)), 4)}
    d15 = [r["dice_WT"] for r in rows.values() if r["group"] in ("decision", "validation")]
    out["all15"] = {"n": len(d15), "median": round(float(np.median(d15)), 4), "mean": round(float(np.mean(d15)), 4),
                    "min": round(float(np.min(d15)), 4)}
    if TCGA in rows:
        out["tcga_dice_WT"] = rows[TCGA]["dice_WT"]
    out["median_segment_s"] = round(float(np.median([r["segment_s"] for r in rows.values()])), 2)
    return out


def run_variants(studies: list[Study], base: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, overrides in VARIANTS.items():
        parameters = {**base, **overrides}
        rows = {s.name: score(s, parameters) for s in studies}
        out[name] = {"parameters": overrides, "cases": rows, "summary": summarise(rows)}
        print(f"{name}: {out[name]['summary']}", flush=True)
    return out


def run_stress(studies: list[Study], base: dict[str, Any]) -> dict[str, Any]:
    labelled = [s for s in studies if s.labels is not None]
    out: dict[str, Any] = {}
    for name in STRESS_VARIANTS:
        parameters = {**base, **VARIANTS[name]}
        out[name] = {}
        for axis, axis_name in enumerate(("inferior-superior", "anterior-posterior", "right-left")):
            rows = {s.name: score(biased(s, axis), parameters) for s in labelled}
            out[name][axis_name] = {"cases": {k: r["dice_WT"] for k, r in rows.items()}, "summary": summarise(rows)}
            print(f"stress {name} / {axis_name}: {out[name][axis_name]['summary']}", flush=True)
    return out


def card_block(studies: list[Study], card_name: str) -> dict[str, Any]:
    """The card's validation block and per-case extras, from one run of the shipped parameters."""
    card = get_card(card_name)
    rows: dict[str, dict[str, Any]] = {}
    for study in studies:
        row = score(study, card.parameters)
        if study.labels is not None and study.name != TCGA:
            t0 = time.perf_counter()
            row["detection_hit"] = bool(detect(study).contains(np.argwhere(study.labels > 0).mean(0)))
            row["detect_s"] = round(time.perf_counter() - t0, 2)
        rows[study.name] = row
    summary = summarise(rows)
    labelled = {k: r for k, r in rows.items() if r["group"] in ("decision", "validation")}
    wt = [r["dice_WT"] for r in labelled.values()]
    validation: dict[str, Any] = {
        "dataset": "brats18 (15 labelled BraTS 2018 training cases; unsupervised; design decisions on the 11 "
                   "cases outside the CNN validation split) + TCGA-FG-6692 against its algorithm fusion",
        "n_cases": len(wt),
        "dice_WT": summary["all15"]["mean"],
        "median_dice_WT": summary["all15"]["median"],
        "mean_dice_WT": summary["all15"]["mean"],
        "min_dice_WT": summary["all15"]["min"],
        "median_dice_WT_decision_cases": summary["decision"]["median"],
        "dice_WT_on_cnn_validation_cases": summary["validation"]["mean"],
        "cnn_validation_cases": {k: round(r["dice_WT"], 3) for k, r in labelled.items() if r["group"] == "validation"},
        "dice_WT_TCGA_vs_fusion": summary["tcga_dice_WT"],
        "detection_hit_rate": round(float(np.mean([r["detection_hit"] for r in labelled.values()])), 4),
    }
    extra: dict[str, Any] = {"per_case_dice_WT": {k: r["dice_WT"] for k, r in labelled.items()}}
    if card.parameters.get("enhancing"):
        et = [r["dice_ET"] for r in labelled.values()]
        validation["dice_ET"] = round(float(np.mean(et)), 4)
        validation["median_dice_ET"] = round(float(np.median(et)), 4)
        extra["per_case_dice_ET"] = {k: r["dice_ET"] for k, r in labelled.items()}
    extra["volume_ml_unlabelled"] = {k: r["volume_ml"] for k, r in rows.items() if r["group"] == "unlabelled"}
    extra["seconds_per_volume_median"] = summary["median_segment_s"]
    extra["timing_note"] = f"240x240x155, 2-core CPU, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    return {"validation": validation, "extra": extra, "cases": rows}


def write_cards(results: dict[str, Any]) -> None:
    """Copy each card's generated blocks into its JSON, written whole to a temporary file first."""
    for name in CARDS:
        path = CARD_DIR / f"{name}.json"
        data = json.loads(path.read_text())
        block = results["cards"][name]
        data["validation"] = block["validation"]
        data["extra"] = {**data.get("extra", {}), **block["extra"]}
        data["reproduce"] = ["OMP_NUM_THREADS=1 python benchmarks/bench_pcnn.py",
                             "python benchmarks/bench_pcnn.py --write-cards"]
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        load_card(tmp)  # the schema still holds
        tmp.replace(path)
        print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("variants", "stress", "cards"), help="run one part; the others keep their results")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--write-cards", action="store_true", help="only copy the results' card blocks into the cards")
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    if args.write_cards:
        write_cards(results)
        return 0
    if not (data_root() / "brats18").is_dir():
        print(f"no labelled cases under {data_root()} (set LIGHTSEG_DATA)")
        return 1
    studies = load_cases()
    base = get_card("pcnn-wt").parameters
    results["decision_cases"] = sorted(s.name for s in studies if group_of(s.name) == "decision")
    results["validation_cases"] = list(VALIDATION_CASES)
    results["threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    if args.only in (None, "variants"):
        results["variants"] = run_variants(studies, base)
    if args.only in (None, "stress"):
        results["stress"] = run_stress(studies, base)
    if args.only in (None, "cards"):
        results["cards"] = {name: card_block(studies, name) for name in CARDS}
        for name in CARDS:
            print(name, json.dumps(results["cards"][name]["validation"]), flush=True)
    tmp = args.results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(args.results)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
