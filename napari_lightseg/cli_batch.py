"""``lightseg batch COHORT --model M --out DIR``: a cohort on Dask (see ``napari_lightseg.cohort``).

Exit status: 0 every case ok (or already done), 3 some cases failed (see their rows), 2 bad
arguments (no cases, unknown model, unreachable scheduler), 130 interrupted (finished cases kept).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .io import CONVENTIONS
from .models import RECOMMENDED, recommended_name


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``batch`` subcommand and its options on the lightseg command line."""
    p = subparsers.add_parser("batch", help="segment a cohort on Dask: masks, reports and cohort.csv/.parquet")
    p.add_argument("cohort", help="a folder of case folders, a .csv with a 'path' column, or a quoted glob ('data/*')")
    p.add_argument("--model", default=None, help=f"a model card's name (default: {RECOMMENDED})")
    p.add_argument("--out", required=True, help="output folder: <case>/<case>_seg.nii.gz, <case>_report.json, cohort.csv")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786); "
                                                     "default: a local cluster")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: chosen for this machine)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per worker (default: cores / workers)")
    p.add_argument("--backend", default=None, help="e.g. onnxruntime, onnxruntime:CPUExecutionProvider")
    p.add_argument("--labels", choices=sorted(CONVENTIONS), default=None, help="label convention (default brats2021)")
    p.add_argument("--force", action="store_true", help="redo cases already done with this model and these inputs")
    p.set_defaults(func=cmd_batch)
    return p


def cmd_batch(args: argparse.Namespace) -> int:
    """Check the batch options and cohort, then segment every case on Dask and write the cohort tables."""
    from .cohort import EXIT_BAD_ARGS, find_cases, resolve_card, run_cohort
    from .io import StudyError
    from .models import CardError

    for option in ("workers", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            return _bad(f"--{option} must be at least 1, got {value}")
    try:
        cases = find_cases(args.cohort)
        card = resolve_card(args.model or recommended_name())
        if card.kind == "cnn":
            card.verify()
    except (StudyError, CardError) as exc:
        return _bad(str(exc))
    bar = _ProgressBar(len(cases))
    try:
        result = run_cohort(cases, card, args.out, backend=args.backend, scheduler=args.scheduler, workers=args.workers,
                            threads_per_worker=args.threads, force=args.force, progress=bar, labels=args.labels)
    except KeyboardInterrupt:  # while the cluster was starting: nothing ran
        print("lightseg: interrupted", file=sys.stderr)
        return 130
    except (OSError, TimeoutError) as exc:  # the scheduler address cannot be reached, or the output folder written
        return _bad(f"{args.scheduler or args.out}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                    EXIT_BAD_ARGS)
    finally:
        bar.close()
    t = result.totals
    for row in result.rows:
        if row["status"] == "failed":
            print(f"lightseg: failed: {row['error']}", file=sys.stderr)
    print(f"{args.out}: {t['ok']} ok, {t['skipped']} skipped, {t['failed']} failed, {t['cancelled']} cancelled "
          f"of {t['cases']} in {t['wall_s']:.1f} s ({t['cases_per_min']:.1f} cases/min); "
          f"CPU {t['cpu_s']:.1f} s, energy {t['energy_j']:.0f} J = {t['energy_wh']:.4f} Wh ({t['energy_method'] or 'none run'})")
    print("tables: " + ", ".join(str(p) for p in result.table_paths))
    if result.interrupted:
        print("lightseg: interrupted; finished cases are kept and listed in the table", file=sys.stderr)
    return result.exit_code


def _bad(message: str, code: int = 2) -> int:
    print(f"lightseg: error: {message}", file=sys.stderr)
    return code


class _ProgressBar:
    """tqdm on a terminal (with the live done/failed count), one line per case otherwise (logs, jobs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def __call__(self, row: dict[str, Any], done: int, failed: int, total: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"done {done - failed} failed {failed} / {total}", refresh=False)
            self.bar.update(done - self.bar.n)
        else:
            took = f" {float(row['task_s']):.1f} s" if row.get("task_s") not in ("", None) and row["status"] != "skipped" else ""
            print(f"[{done}/{total}, {failed} failed] {row['case']}: {row['status']}{took}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
