"""Input checks on real cases: clean data unchanged, degenerate variants refused, fixed or flagged.

For each case: (1) ``preprocess.prepare`` on the sequences as loaded and on what
``quality.check_inputs`` hands on must be bit-identical, and ``engine.run`` with and without the
checks must give the same mask; (2) degenerate variants built from the case (intensities x1e30 and
x1e-30, background minus 2000, a blank FLAIR, FLAIR replaced by T2, a non-zero background filling
the volume) are run and their outcome (refusal, notes, voxels differing from the clean mask, WT Dice
against the clean mask) is tabulated; (3) every real case is checked for notes (false alarms).
Writes ``benchmarks/RESULTS_input_checks.md``.

    LIGHTSEG_DATA=../shared/data python benchmarks/check_input_checks.py [--model mnv3-lraspp-int8] [CASE ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_lightseg import engine
from napari_lightseg.io import Study, StudyError, load_study
from napari_lightseg.models import get_card
from napari_lightseg.preprocess import prepare, quality

DATA = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
CASES = ("brats18/Brats18_TCIA10_639_1", "other/AURORA-example-met")
RESULTS = Path(__file__).with_name("RESULTS_input_checks.md")


def _with(study: Study, change: Callable[[str, np.ndarray], np.ndarray]) -> Study:
    return dataclasses.replace(study, images={seq: change(seq, v).astype(np.float32) for seq, v in study.images.items()})


def _shift_with_noise(seq: str, volume: np.ndarray) -> np.ndarray:
    """Not skull-stripped, roughly: the background gets scanner-like noise instead of zeros."""
    noise = np.random.default_rng(0).normal(50, 10, volume.shape).astype(np.float32)
    return np.where(volume == 0, noise, volume)


VARIANTS: dict[str, Callable[[str, np.ndarray], np.ndarray]] = {
    "intensities x1e30": lambda seq, v: v * np.float32(1e30),
    "intensities x1e-30": lambda seq, v: v * np.float32(1e-30),
    "background minus 2000": lambda seq, v: v - 2000,
    "blank FLAIR": lambda seq, v: np.zeros_like(v) if seq == "flair" else v,
    "FLAIR replaced by T2": lambda seq, v: v,  # filled in below (needs the T2)
    "noisy background (not skull-stripped)": _shift_with_noise,
}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _without_checks(study: Study, card) -> np.ndarray:
    """engine.run as it was before the checks: quality functions replaced by no-ops."""
    saved = quality.check_inputs, quality.check_result
    quality.check_inputs = lambda s, seqs: (s, [])
    quality.check_result = lambda labels, s, seqs: []
    try:
        return engine.run(study, card).labels
    finally:
        quality.check_inputs, quality.check_result = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES))
    parser.add_argument("--model", default="mnv3-lraspp-int8")
    args = parser.parse_args()
    card = get_card(args.model)
    lines = ["# Input checks on real cases", "",
             f"`python benchmarks/check_input_checks.py --model {args.model} {' '.join(args.cases)}`", ""]
    for case in args.cases:
        study = load_study(DATA / case, with_labels=False)
        images = [study.images[s] for s in card.sequences]
        t = time.perf_counter()
        checked, notes = quality.check_inputs(study, card.sequences)
        check_s = time.perf_counter() - t
        before, _ = prepare(images)
        after, _ = prepare([checked.images[s] for s in card.sequences])
        clean = engine.run(study, card)
        baseline = _without_checks(study, card)
        lines += [f"## {case} ({args.model})", "",
                  f"- clean: prepare bit-identical: {_digest(before) == _digest(after)} ({_digest(before)}); "
                  f"same arrays handed on: {checked is study}; notes: {notes or 'none'}; "
                  f"mask identical to a run without checks: {np.array_equal(clean.labels, baseline)}; "
                  f"WT {clean.report.volumes_ml['WT']:.1f} mL; check time {check_s:.3f} s", "",
                  "| variant | outcome | voxels differing from clean | WT Dice vs clean | WT mL | notes |",
                  "|---|---|---:|---:|---:|---|"]
        for name, change in VARIANTS.items():
            if name == "FLAIR replaced by T2":
                variant = dataclasses.replace(study, images={**study.images, "flair": study.images["t2"].copy()})
            else:
                variant = _with(study, change)
            try:
                result = engine.run(variant, card)
            except StudyError as exc:
                lines.append(f"| {name} | refused: {str(exc).split(': ', 1)[-1]} | | | | |")
                continue
            differing = int(np.count_nonzero(result.labels != clean.labels))
            lines.append(f"| {name} | mask | {differing:,} | {_dice(result.labels, clean.labels):.4f} | "
                         f"{result.report.volumes_ml['WT']:.1f} | {'; '.join(result.report.notes) or 'none'} |")
        lines.append("")
    lines += ["## Every real case: notes from the input checks and from the result check on the ground truth", "",
              "| case | notes |", "|---|---|"]
    for folder in sorted(p for group in ("brats18", "other") for p in (DATA / group).iterdir() if p.is_dir()):
        study = load_study(folder)
        checked, notes = quality.check_inputs(study, card.sequences)
        if study.labels is not None:
            notes += quality.check_result(study.labels, study, card.sequences)
        lines.append(f"| {folder.parent.name}/{folder.name} | {'; '.join(notes) or 'none'}{'' if checked is study else ' (changed)'} |")
    lines.append("")
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
