"""``lightseg``: list models, segment, detect, compare and view from a terminal.

Every failure is one line on stderr, ``lightseg: error: <file>: <problem>`` (at most ``MAX_MESSAGE``
characters, no traceback unless ``--debug``), with exit status 2 for bad input (a study, a card, labels,
an argument, an unsafe output path), 1 for an internal error and 130 when cancelled (Ctrl+C).
Every output is planned before any work (``io.outputs.OutputPlan``): never an input, never an existing
file unless ``--overwrite``, all written atomically at the end, so a failed run leaves nothing behind.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import traceback
from pathlib import Path

from .cli_batch import add_batch_parser
from .inference import FLIP_OPTIONS
from .io import CONVENTIONS, SEQUENCES, LabelError, StudyError, discover, is_nifti, role_of
from .io.naming import is_junk
from .io.outputs import OutputPlan
from .models import RECOMMENDED, CardError, recommended_name
from .progress import CancelCallback, Cancelled, check_cancel

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
CANCEL_LINE = "lightseg: cancelled; no output was written"  # _entry repeats it (it must not import this module)
MAX_MESSAGE = 300


class UsageError(ValueError):
    """A bad command line (argparse's complaint), reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message + exit
        raise UsageError(f"{self.prog}: {message}")


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
    """List the shipped model cards as a table, or as JSON for scripts."""
    from .models import list_cards

    cards = list_cards()
    if args.json:
        print(json.dumps([c.summary() for c in cards], indent=2))
        return 0
    recommended = recommended_name(cards)
    print(f"{'name':22s} {'kind':5s} {'precision':13s} {'MB':>6s} {'params':>9s}  validation Dice WT/TC/ET")
    for c in cards:
        d = c.describe()
        mark = "  (default)" if c.name == recommended else ""
        print(f"{d['name']:22s} {d['kind']:5s} {d['precision']:13s} {d['MB']:>6s} {d['params']:>9s}  {d['dice']}{mark}")
    return 0


def _study_inputs(inputs: list[str]) -> list[str | Path]:
    """What a run must never write: the arguments (a folder protects every file in it), the discovered
    files, and the study files beside them (a ``_seg`` ground truth that was not named, for instance)."""
    paths: list[str | Path] = list(inputs)
    found = discover(paths if len(paths) > 1 else paths[0])
    return [*paths, *found.all_paths, *_study_files_beside(found.all_paths)]


def _study_files_beside(files: list[Path]) -> list[Path]:
    """NIfTI files named as a study file (a sequence or a segmentation) in the folders of ``files``."""
    beside: list[Path] = []
    for folder in {f.parent for f in files}:
        try:
            beside += [p for p in folder.iterdir() if is_nifti(p) and role_of(p) is not None and not is_junk(p)]
        except OSError:
            continue
    return beside


def _require_suffix(path: str, option: str, suffixes: tuple[str, ...]) -> None:
    """An output's kind shows in its name: a JSON report can never land on a .nii.gz."""
    if not path.lower().endswith(suffixes):
        raise UsageError(f"{path}: {option} must end in {' or '.join(suffixes)}")


# --flips: None keeps the card's own test-time flips (napari_lightseg.inference)
FLIP_CHOICES: dict[str, list[str] | None] = {"card": None, **FLIP_OPTIONS}


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment one study with a model and write the mask as NIfTI or DICOM-SEG."""
    import time

    from . import clinical, engine
    from .io.dicom import parse_sequence_overrides
    from .io.study import study_convention
    from .models import get_card

    kind = clinical.output_kind(args.out)
    overrides = parse_sequence_overrides(args.sequence or [])
    card = get_card(args.model or recommended_name())
    cancel: CancelCallback | None = getattr(args, "cancel", None)  # main(cancel=...): the server's client went away
    folder = clinical.dicom_folder(args.inputs)
    if kind == "dicom-seg" and folder is None:
        raise UsageError(f"{args.out}: a DICOM-SEG output needs a DICOM study folder as input")
    inputs = [folder] if folder is not None else _study_inputs(args.inputs)
    with OutputPlan(inputs, overwrite=args.overwrite) as plan:
        clinical.plan_mask_outputs(plan, args.out)
        if args.report:
            plan.add(args.report, "report")  # an input or the mask itself is named as such, before the suffix
            _require_suffix(args.report, "--report", (".json",))
        progress = _terminal_progress("segment")
        t = time.perf_counter()
        study = clinical.open_study(args.inputs, sequences=overrides, reference=args.reference, brain=args.brain,
                                    progress=progress, cancel=cancel)
        result = engine.run(study, card, args.backend, threads=args.threads, flips=FLIP_CHOICES[args.flips], progress=progress,
                            cancel=cancel, load_seconds=time.perf_counter() - t)
        t = time.perf_counter()
        # the study's own convention read now, as before: open_study may have left study.convention unset
        clinical.save_mask(plan, args.out, result.segmentation, study, grid=args.grid,
                           convention=args.labels or study_convention(study))
        result.report.timings_s["write"] = time.perf_counter() - t  # the mask (and sidecar), not yet renamed into place
        if args.report:
            report = result.report.as_dict()  # types.RunReport: the one shape of a run
            plan.write(args.report, lambda temp: temp.write_text(json.dumps(report, indent=2) + "\n"))
        check_cancel(cancel)  # the last moment a cancel keeps every output unwritten
        plan.commit()
    for note in result.report.notes:
        print(f"lightseg: note: {note}", file=sys.stderr)
    print(f"{args.out}: {result.summary_line()}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Locate the tumour and write its 3D bounding box (voxels) as JSON."""
    from .io import load_study
    from .pcnn import detect, detection_report

    with OutputPlan(_study_inputs(args.inputs), overwrite=args.overwrite) as plan:
        plan.add(args.out, "boxes")
        _require_suffix(args.out, "--out", (".json",))
        study = load_study(args.inputs if len(args.inputs) > 1 else args.inputs[0], with_labels=False)
        detection = detect(study, progress=_terminal_progress("detect"))
        report = detection_report(study, detection)
        plan.write(args.out, lambda temp: temp.write_text(json.dumps(report, indent=2) + "\n"))
        plan.commit()
    print(f"{args.out}: box {report['box3d_voxel']} (voxels, file order)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Score segmentations against a reference mask, write the Dice table as CSV and print a summary."""
    from .compare import compare_files, write_csv

    inputs = [args.reference, *args.segmentations]
    with OutputPlan([*inputs, *_study_files_beside([Path(p) for p in inputs])], overwrite=args.overwrite) as plan:
        plan.add(args.csv, "CSV")
        _require_suffix(args.csv, "--csv", (".csv",))
        rows = compare_files(args.reference, args.segmentations)
        write_csv(rows, args.csv, plan=plan)
        plan.commit()
    for row in rows:
        print(f"{row['segmentation']}: Dice WT {row['dice_WT']:.3f} TC {row['dice_TC']:.3f} ET {row['dice_ET']:.3f}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Open the study in napari, or save a PNG screenshot of it instead of showing the window."""
    from ._qt.viewer import open_viewer

    if not args.screenshot:
        return open_viewer(case=args.case, sample=args.sample, model=args.model, three_d=args.three_d)
    from .clinical import dicom_folder

    # a DICOM folder protects every file in it; NIfTI studies also protect the study files beside them
    inputs = ([args.case] if dicom_folder([args.case]) else _study_inputs([args.case])) if args.case else []
    with OutputPlan(inputs, overwrite=args.overwrite) as plan:
        temp = plan.add(args.screenshot, "screenshot")  # an input is named as such, before the suffix
        _require_suffix(args.screenshot, "--screenshot", (".png",))
        with contextlib.redirect_stdout(io.StringIO()):  # the viewer prints the (temp) file name
            code = open_viewer(case=args.case, sample=args.sample, model=args.model, three_d=args.three_d,
                               screenshot=str(temp))
        if code == 0:
            plan.commit()
    if code == 0:
        print(args.screenshot)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the warm server in the foreground, or ask one to stop, or say whether one runs."""
    from . import serve

    path = args.socket or serve.default_socket_path()
    if args.stop:
        if not serve.stop(path):
            print(f"lightseg serve: no server at {path}", file=sys.stderr)
            return 1
        print(f"lightseg serve: asked the server at {path} to stop")
        return 0
    if args.status:
        info = serve.ping(path, timeout=30.0)  # a server finishes its job before it answers
        if info is None:
            print(f"lightseg serve: no server answers at {path}")
            return 1
        same = "the same code" if info.get("code") == serve.code_key() else "other code (not used)"
        print(f"lightseg serve: a server runs at {path} (pid {info.get('pid')}, {info.get('jobs')} jobs, {same})")
        return 0
    if args.idle_exit is not None and args.idle_exit <= 0:
        raise UsageError("--idle-exit must be a positive number of seconds")
    try:
        serve.serve_forever(path, idle_exit=args.idle_exit, announce=True)
    except serve.ServeError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        pass  # Ctrl+C is how a foreground server ends
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Define the lightseg command line: its subcommands, their options and help."""
    parser = _Parser(prog="lightseg", description="Brain-tumour segmentation on a CPU.")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    overwrite_help = "replace existing output files (inputs are never replaced)"

    p = sub.add_parser("models", help="list the shipped models (their cards)")
    p.add_argument("--json", action="store_true", help="print the cards as a JSON list")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("segment", help="segment a study (NIfTI files or a DICOM folder) and write the mask")
    p.add_argument("inputs", nargs="+", help="a case folder, a DICOM study folder, a 4D file, or the sequence files")
    p.add_argument("--model", default=None, help=f"a model card's name (default: {RECOMMENDED}; see `lightseg models`)")
    p.add_argument("--backend", default=None, help="e.g. onnxruntime, onnxruntime:CPUExecutionProvider, torch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--flips", choices=sorted(FLIP_CHOICES), default="card",
                   help="test-time flips averaged: the card's default (card), none, lr, or lr+ap")
    p.add_argument("--out", required=True,
                   help="output mask: .nii.gz/.nii (NIfTI with a label-names .json beside it) or .dcm (DICOM-SEG)")
    p.add_argument("--grid", default=None, choices=SEQUENCES,
                   help="save on this sequence's own grid (default: the reference grid)")
    p.add_argument("--reference", default="t1ce", choices=SEQUENCES,
                   help="sequence whose grid the others are registered to when grids differ (default t1ce)")
    p.add_argument("--sequence", action="append", metavar="SEQ=SERIES",
                   help="DICOM: use this series (SeriesInstanceUID or SeriesNumber) for a sequence, e.g. flair=5")
    p.add_argument("--brain", choices=("auto", "force", "skip"), default="auto",
                   help="brain extraction: auto (unless already skull-stripped), force or skip")
    p.add_argument("--labels", choices=sorted(CONVENTIONS), default=None,
                   help="label convention of a NIfTI mask (default: the study's own, else brats2021)")
    p.add_argument("--report", default=None, help="write timings and volumes as JSON")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("detect", help="PCNN tumour detection: a 3D box as JSON")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("compare", help="Dice / HD95 / volumes of segmentations against a reference, as CSV")
    p.add_argument("reference")
    p.add_argument("segmentations", nargs="+")
    p.add_argument("--csv", required=True)
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("view", help="open napari with the plugin")
    p.add_argument("case", nargs="?", default=None)
    p.add_argument("--sample", action="store_true", help="open the built-in synthetic glioma")
    p.add_argument("--model", default=None, help="run this model on the study")
    p.add_argument("--3d", dest="three_d", action="store_true", help="show the result in 3D")
    p.add_argument("--screenshot", default=None, help="save the window as PNG and exit")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("serve", help="keep a warm process that runs `lightseg segment` jobs faster (foreground)")
    p.add_argument("--socket", default=None,
                   help="Unix socket path (default: $LIGHTSEG_SERVE_SOCKET, else $XDG_RUNTIME_DIR/napari-lightseg/serve.sock)")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS", help="exit after this long without a job")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--stop", action="store_true", help="ask the running server to exit")
    what.add_argument("--status", action="store_true", help="say whether a server runs (exit status 0) or not (1)")
    p.set_defaults(func=cmd_serve)
    add_batch_parser(sub)
    return parser


def one_line(message: object, limit: int = MAX_MESSAGE) -> str:
    """A message as one line of at most ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error(message: object, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"lightseg: error: {one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None, cancel: CancelCallback | None = None) -> int:
    """Run the command line and turn errors into messages and exit codes instead of tracebacks.

    ``cancel`` (``lightseg serve``): polled during ``segment``; once it answers True the run stops (exit 130)
    before any output is committed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.cancel = cancel
        return args.func(args)
    except (Cancelled, KeyboardInterrupt):
        print(CANCEL_LINE, file=sys.stderr)
        return EXIT_CANCELLED
    except (StudyError, CardError, LabelError, UsageError, ValueError) as exc:
        return _error(exc, EXIT_BAD_INPUT, debug)
    except FileNotFoundError as exc:
        return _error(f"{exc.filename}: {exc.strerror or 'no such file'}", EXIT_BAD_INPUT, debug)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}", EXIT_INTERNAL, debug)
    except SystemExit as exc:  # argparse's --help (0)
        return int(exc.code or 0) if isinstance(exc.code, (int, type(None))) else EXIT_BAD_INPUT
    except Exception as exc:
        return _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                      EXIT_INTERNAL, debug)


if __name__ == "__main__":
    sys.exit(main())
