"""``lightseg``: list models, segment, detect, compare and view from a terminal.

Errors are one line on stderr and a non-zero exit status.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .io import CONVENTIONS, StudyError
from .models import CardError
from .progress import Cancelled


class CLIError(Exception):
    """A user-facing error: printed as one line."""


def _terminal_progress(label: str):
    """A one-line progress bar on a terminal (nothing when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None

    def progress(fraction: float, message: str) -> None:
        filled = int(fraction * 30)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {message[:40]:<40}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return progress


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_cards

    cards = list_cards()
    if args.json:
        print(json.dumps([c.summary() for c in cards], indent=2))
        return 0
    print(f"{'name':22s} {'kind':5s} {'precision':13s} {'MB':>6s} {'params':>9s}  validation Dice WT/TC/ET")
    for c in cards:
        d = c.describe()
        print(f"{d['name']:22s} {d['kind']:5s} {d['precision']:13s} {d['MB']:>6s} {d['params']:>9s}  {d['dice']}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from . import engine
    from ._writer import save_labels
    from .models import get_card

    card = get_card(args.model)
    result = engine.segment_paths(args.inputs, card, backend=args.backend, threads=args.threads,
                                  progress=_terminal_progress("segment"))
    convention = args.labels or result.study_convention or "brats2021"
    out = save_labels(args.out, result.labels, result.geometry, convention, overwrite=True)
    if args.report:
        Path(args.report).write_text(json.dumps(result.report(), indent=2) + "\n")
    print(f"{out}: {result.summary_line()}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from .io import load_study
    from .pcnn import detect, detection_report

    study = load_study(args.inputs if len(args.inputs) > 1 else args.inputs[0], with_labels=False)
    detection = detect(study, progress=_terminal_progress("detect"))
    report = detection_report(study, detection)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.out}: box {report['box3d_voxel']} (voxels, file order)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_files, write_csv

    rows = compare_files(args.reference, args.segmentations)
    write_csv(rows, args.csv)
    for row in rows:
        print(f"{row['segmentation']}: Dice WT {row['dice_WT']:.3f} TC {row['dice_TC']:.3f} ET {row['dice_ET']:.3f}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from ._qt.viewer import open_viewer

    return open_viewer(case=args.case, sample=args.sample, model=args.model, three_d=args.three_d,
                       screenshot=args.screenshot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightseg", description="Brain-tumour segmentation on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the shipped models (their cards)")
    p.add_argument("--json", action="store_true", help="print the cards as a JSON list")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("segment", help="segment a study and write a NIfTI mask in the FLAIR's grid")
    p.add_argument("inputs", nargs="+", help="a case folder, a 4D file, or the sequence files")
    p.add_argument("--model", required=True)
    p.add_argument("--backend", default=None, help="e.g. onnxruntime, onnxruntime:CPUExecutionProvider, torch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="output .nii.gz")
    p.add_argument("--labels", choices=sorted(CONVENTIONS), default=None,
                   help="label convention (default: the study's own, else brats2021)")
    p.add_argument("--report", default=None, help="write timings and volumes as JSON")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("detect", help="PCNN tumour detection: a 3D box as JSON")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("compare", help="Dice / HD95 / volumes of segmentations against a reference, as CSV")
    p.add_argument("reference")
    p.add_argument("segmentations", nargs="+")
    p.add_argument("--csv", required=True)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("view", help="open napari with the plugin")
    p.add_argument("case", nargs="?", default=None)
    p.add_argument("--sample", action="store_true", help="open the built-in synthetic glioma")
    p.add_argument("--model", default=None, help="run this model on the study")
    p.add_argument("--3d", dest="three_d", action="store_true", help="show the result in 3D")
    p.add_argument("--screenshot", default=None, help="save the window as PNG and exit")
    p.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StudyError, CardError, CLIError, Cancelled, FileNotFoundError, ValueError) as exc:
        print(f"lightseg: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
