"""Cohorts: one model over many studies on dask.distributed, resumable, one failure never stops the rest.

Pure Python (no Qt). ``find_cases`` lists the studies, ``run_cohort`` segments them:

- **Where it runs**: a ``LocalCluster`` of worker processes by default (``default_layout``: workers x
  ONNX Runtime threads = cores, fewer workers when memory is short), or an existing cluster through
  ``scheduler`` (an address such as ``tcp://host:8786``, or a ``distributed.Client``): a
  dask-jobqueue ``SLURMCluster``/``PBSCluster`` is used this way. Each Dask task is one case, and each
  worker runs one task at a time (start external workers with ``--nthreads 1``), so one ONNX Runtime
  session per worker process serves all its cases (``backends.registry`` caches sessions per process).
- **Outputs** (one folder per case, as BraTS lays out its inputs)::

      OUT/<case>/<case>_seg.nii.gz      the mask in the FLAIR's grid (labels: ``labels``, default brats2021)
      OUT/<case>/<case>_report.json     engine report + the cohort row; written LAST (the "done" marker)
      OUT/cohort.csv, OUT/cohort.parquet   one row per case (``COLUMNS``); CSV rewritten as cases finish
      OUT/cohort_summary.json           totals: cases, ok/skipped/failed, wall, CPU seconds, energy

  Every file is written to a temporary name in its folder, then renamed (never half-written).
- **Resume**: a case is skipped when its report exists, its mask exists, and the report's
  ``card_sha256`` (sha256 of the model card's JSON, which holds the weights' sha256) and
  ``inputs_sha256`` (sha256 over the input files' names, sizes and modification times: cheap on
  hundreds of GB, and any rewrite of an input changes it) equal the current ones. ``force`` redoes.
  A case done earlier with another model or other inputs is redone and its old outputs replaced
  (the row's ``notes`` says so).
- **Failures**: a case that raises is a row with status ``failed`` and a one-line ``error``; a worker
  that dies is reported the same way. ``CohortResult.exit_code``: 0 all ok, 3 some failed.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import StudyError, is_nifti
from .io.outputs import write_atomically
from .models import CardError, ModelCard, get_card, load_card
from .types import RunReport

STATUS_OK, STATUS_SKIPPED, STATUS_FAILED, STATUS_CANCELLED = "ok", "skipped", "failed", "cancelled"
EXIT_OK, EXIT_BAD_ARGS, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130
CONNECT_TIMEOUT_S = 20  # to reach an existing scheduler
MEMORY_PER_WORKER_GB = 1.5  # one 240x240x155 case peaks near 0.5 GB in the engine; room for the worker itself
# one row per case: the run's own columns (``RunReport.COLUMNS``), with the cohort's status and identity
# around them; cpu_s and energy cover the whole task (reading and writing included), as task_s does
COLUMNS: tuple[str, ...] = (
    "case", "status", "error", *(c for c in RunReport.COLUMNS if c != "case"), "task_s",
    "card_sha256", "ort_threads", "worker", "session_reused", "inputs_sha256", "input", "seg_path", "report_path",
)
NUMERIC_COLUMNS = frozenset(c for c in COLUMNS if c.endswith(("_ml", "_s", "_j", "_wh", "_mb")) or c == "ms_per_slice")

Progress = Callable[[dict[str, Any], int, int, int], None]  # (row, done, failed, total)


@dataclass(frozen=True)
class CaseSpec:
    """One study of a cohort: ``paths`` (a case folder, a 4D file or its sequence files) and how to read it."""

    name: str
    paths: tuple[Path, ...]
    kind: str = "nifti"  # or "dicom": a DICOM study folder

    @property
    def input(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else ";".join(str(p) for p in self.paths)


@dataclass
class CohortResult:
    """Outcome of a cohort run: one row per case, the totals, the tables written, and the exit code."""
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    table_paths: list[Path] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if any(r["status"] == STATUS_FAILED for r in self.rows) else EXIT_OK


# ---------------------------------------------------------------------------------------------- cases

def find_cases(source: str | Path | Iterable[str | Path]) -> list[CaseSpec]:
    """Cases from a folder of case folders, a CSV (column ``path``, else the first; optional ``name``),
    a glob pattern (each match a case folder or a 4D file), or a list of such paths.

    Only lists candidates: a case with missing sequences fails later, in its own row.
    """
    if not isinstance(source, (str, Path)):
        return _unique([_case_from_path(Path(p)) for p in source])
    text = str(source)
    path = Path(source)
    if any(ch in text for ch in "*?[") and not path.exists():
        matches = sorted(glob.glob(text))
        if not matches:
            raise StudyError(f"{text}: the pattern matches no files or folders")
        return _unique([_case_from_path(Path(m)) for m in matches])
    if not path.exists():
        raise StudyError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return _unique(_cases_from_csv(path))
    if path.is_dir():
        if any(is_nifti(p) for p in path.iterdir() if p.is_file()):
            return [_case_from_path(path)]  # one case folder given: a cohort of one
        folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        cases = [_case_from_path(f) for f in folders if _holds_nifti(f)]
        cases += _dicom_cases([f for f in folders if not _holds_nifti(f)])
        if not cases:
            raise StudyError(f"{path}: holds no case folders with NIfTI files")
        return _unique(cases)
    if is_nifti(path):
        return [_case_from_path(path)]
    raise StudyError(f"{path}: not a cohort (a folder of case folders, a .csv of case paths, or a glob pattern)")


def _holds_nifti(folder: Path) -> bool:
    return any(is_nifti(p) for p in folder.iterdir() if p.is_file())


def _dicom_cases(folders: list[Path]) -> list[CaseSpec]:
    """Folders that hold a DICOM study (``clinical.dicom_folder``): one case each, named by the folder."""
    from .clinical import dicom_folder

    return [CaseSpec(folder.name, (folder,), kind="dicom") for folder in folders if dicom_folder([folder]) is not None]


def _case_from_path(path: Path) -> CaseSpec:
    from .io.naming import strip_nifti_suffix

    name = path.name if path.is_dir() else strip_nifti_suffix(path.name)
    return CaseSpec(name, (path,))


def _cases_from_csv(path: Path) -> list[CaseSpec]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: unreadable CSV ({exc})") from None
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    if not rows or not rows[0]:
        raise StudyError(f"{path}: CSV has no rows")
    columns = list(rows[0])
    column = next((c for c in columns if c.strip().lower() in ("path", "case_path", "folder")), columns[0])
    name_column = next((c for c in columns if c.strip().lower() in ("name", "case", "case_id")), None)
    cases = []
    for line, row in enumerate(rows, start=2):
        value = (row.get(column) or "").strip()
        if not value:
            raise StudyError(f"{path}: line {line} has no {column!r}")
        case_path = Path(value) if Path(value).is_absolute() else path.parent / value
        spec = _case_from_path(case_path)
        if name_column and name_column != column and (row.get(name_column) or "").strip():
            spec = CaseSpec(row[name_column].strip(), spec.paths)
        cases.append(spec)
    return cases


def _unique(cases: list[CaseSpec]) -> list[CaseSpec]:
    seen: dict[str, CaseSpec] = {}
    for case in cases:
        if "/" in case.name or "\\" in case.name or case.name in ("", ".", ".."):
            raise StudyError(f"{case.input}: case name {case.name!r} cannot name an output folder")
        if case.name in seen:
            raise StudyError(f"{case.input}: case name {case.name!r} also names {seen[case.name].input}; outputs would collide")
        seen[case.name] = case
    return list(seen.values())


# ---------------------------------------------------------------------------------------------- identity

def resolve_card(model: str | Path | ModelCard) -> ModelCard:
    """A card object, a card .json path, or a shipped model's name."""
    if isinstance(model, ModelCard):
        return model
    if str(model).lower().endswith(".json") and Path(model).is_file():
        return load_card(model)
    return get_card(str(model))


def card_sha256(card: ModelCard) -> str:
    """sha256 of the card's JSON: changes with the weights (their sha256 is in it) and with any parameter."""
    return hashlib.sha256(card.to_json().encode()).hexdigest()


def input_files(case: CaseSpec) -> list[Path]:
    """Every file a case reads, in a stable order, so its inputs can be fingerprinted."""
    files: list[Path] = []
    for p in case.paths:
        files.extend(sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p])
    return files


def inputs_sha256(case: CaseSpec) -> str:
    """sha256 over (name, size, mtime_ns) of every input file: a changed or replaced input changes it."""
    h = hashlib.sha256()
    for f in input_files(case):
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def output_paths(out_dir: Path, case: CaseSpec) -> tuple[Path, Path]:
    """Where a case's mask and report go inside the output folder."""
    folder = out_dir / case.name
    return folder / f"{case.name}_seg.nii.gz", folder / f"{case.name}_report.json"


def previous_row(out_dir: Path, case: CaseSpec, card_hash: str) -> tuple[dict[str, Any] | None, str]:
    """The stored row when the case is done with this card and these inputs, else (None, why it is redone)."""
    seg, report = output_paths(out_dir, case)
    if not report.exists():
        return None, "an earlier mask without its report was replaced" if seg.exists() else ""
    try:
        row = json.loads(report.read_text())["cohort_row"]
        current = inputs_sha256(case)
    except (OSError, ValueError, KeyError, TypeError):
        return None, "previous report unreadable; redone"
    if row.get("status") not in (STATUS_OK, STATUS_SKIPPED) or not seg.exists():
        return None, "previous output incomplete; redone"
    if row.get("card_sha256") != card_hash:
        return None, f"previous output was made by {row.get('model')} (another card); replaced"
    if row.get("inputs_sha256") != current:
        return None, "inputs changed since the previous output; replaced"
    return row, ""


# ---------------------------------------------------------------------------------------------- one case

def process_case(case: CaseSpec, card: ModelCard, out_dir: str | Path, *, backend: str | None = None,
                 threads: int | None = None, labels: str | None = None, notes: str = "") -> dict[str, Any]:
    """Load, segment and write one case; return its cohort row. Never raises for a bad case: a failed row."""
    from . import engine
    from .energy import EnergyMeter
    from .io import save_segmentation

    out_dir = Path(out_dir)
    seg, report_path = output_paths(out_dir, case)
    row = _empty_row(case, card)
    row.update(ort_threads=threads or "", worker=_worker_name(), notes=notes)
    meter = EnergyMeter().start()
    try:
        row["inputs_sha256"] = inputs_sha256(case)
        hits = _session_hits()
        t = time.perf_counter()
        study = _load_case(case)
        read_s = time.perf_counter() - t
        result = engine.run(study, card, backend, threads=threads, load_seconds=read_s)
        row["session_reused"] = _session_hits() > hits if card.kind == "cnn" else ""
        t = time.perf_counter()
        seg.parent.mkdir(parents=True, exist_ok=True)
        # an output folder inside the cohort must never replace a case's own files (e.g. its ground truth)
        save_segmentation(seg, result.segmentation, labels, overwrite=True, inputs=case.paths)
        run_report = result.report
        run_report.timings_s.update(read=read_s, write=time.perf_counter() - t)  # the whole load, and the mask
        run_report.notes = [n for n in (notes, *run_report.notes) if n]
        row.update({**run_report.row(), "case": case.name}, status=STATUS_OK, seg_path=str(seg), report_path=str(report_path))
        report = run_report.as_dict()
    except Exception as exc:  # any failure of this case becomes its row; the cohort goes on
        row.update(status=STATUS_FAILED, error=one_line_error(case, exc))
        report = None
    usage = meter.stop()
    row.update(task_s=round(usage.wall_s, 4), cpu_s=round(usage.cpu_s, 4), energy_j=round(usage.energy_j, 3),
               energy_wh=round(usage.energy_wh, 6), energy_method=usage.method)
    if report is not None:
        try:
            write_text_atomic(report_path, json.dumps({**report, "cohort_row": row}, indent=2) + "\n")
        except OSError as exc:
            row.update(status=STATUS_FAILED, error=one_line_error(case, exc), report_path="")
    return row


def _load_case(case: CaseSpec):
    """The clinical path for every case: DICOM or NIfTI, sequences on any grids, full head or stripped."""
    from .clinical import open_study

    return open_study(list(case.paths))


def one_line_error(case: CaseSpec, exc: BaseException) -> str:
    """The exception as one line that names the case's input (StudyError messages already name the file)."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, (StudyError, CardError)) and text:
        return text
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{case.input}: {type(exc).__name__}{at}: {text}" if text else f"{case.input}: {type(exc).__name__}{at}"


def _empty_row(case: CaseSpec, card: ModelCard) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(case=case.name, model=card.name, card_sha256=card_sha256(card), input=case.input)
    return row


def _session_hits() -> int:
    from .backends.registry import _ort_session

    return _ort_session.cache_info().hits


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid{os.getpid()}"


# ---------------------------------------------------------------------------------------------- cohort

def default_layout(cores: int | None = None, memory_gb: float | None = None) -> tuple[int, int]:
    """(workers, ONNX Runtime threads per worker) with workers x threads = cores.

    One ORT thread per worker on small machines (whole cases in parallel overlap reading, gzip and
    writing, which one multi-threaded session cannot), two on larger ones; fewer workers when memory
    allows fewer cases at once.
    """
    from .backends.registry import default_threads

    cores = cores or default_threads()
    memory_gb = memory_gb if memory_gb is not None else _memory_gb()
    threads = 1 if cores <= 4 else 2
    workers = max(1, min(cores // threads, int(memory_gb // MEMORY_PER_WORKER_GB)))
    return workers, max(1, cores // workers)


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 8.0


def run_cohort(cases: list[CaseSpec], card_name: str | Path | ModelCard, out_dir: str | Path, *,
               backend: str | None = None, scheduler: Any = None, workers: int | None = None,
               threads_per_worker: int | None = None, force: bool = False, progress: Progress | None = None,
               labels: str | None = None, processes: bool = True) -> CohortResult:
    """Segment ``cases`` with one model on Dask; see the module docstring for outputs, resume and failures.

    ``scheduler``: None (a LocalCluster: ``workers`` processes, ``threads_per_worker`` ORT threads each,
    defaults from ``default_layout``; ``processes=False`` keeps the workers in this process, for tests),
    an address string, or a ``distributed.Client``. ``progress(row, done, failed, total)`` is called
    as each case finishes (skipped ones first).
    """
    from distributed import Client, LocalCluster, as_completed

    card = resolve_card(card_name)
    if card.kind == "cnn":
        card.verify()  # a wrong model is one error now, not one per case
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card_hash = card_sha256(card)
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    todo: list[tuple[CaseSpec, str]] = []
    failed = 0
    for case in cases:
        previous, why = (None, "") if force else previous_row(out_dir, case, card_hash)
        if previous is not None:
            rows[case.name] = {**dict.fromkeys(COLUMNS, ""), **previous, "status": STATUS_SKIPPED}
            if progress:
                progress(rows[case.name], len(rows), failed, len(cases))
        else:
            todo.append((case, why))
    writer = _TableWriter(out_dir, [c.name for c in cases])
    writer.write(rows)
    interrupted = False
    cluster = client = None
    ort_threads = threads_per_worker
    futures: dict[Any, CaseSpec] = {}
    try:
        if todo:
            if scheduler is None:
                n_workers, default_threads = default_layout()
                if workers:
                    n_workers, default_threads = workers, max(1, n_workers * default_threads // workers)
                ort_threads = threads_per_worker or default_threads
                with _workers_ignore_sigint():
                    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                                           dashboard_address=":0", silence_logs=40)
                client = Client(cluster)
            elif isinstance(scheduler, Client):
                client = scheduler
            else:
                client = Client(str(scheduler), timeout=CONNECT_TIMEOUT_S)
            futures = {client.submit(process_case, case, card, str(out_dir), backend=backend, threads=ort_threads,
                                     labels=labels, notes=why, key=f"lightseg-{case.name}-{card_hash[:8]}",
                                     pure=False): case for case, why in todo}
            for future in as_completed(list(futures)):
                case = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # the worker died or the task could not run: this case failed
                    row = {**_empty_row(case, card), "status": STATUS_FAILED, "error": one_line_error(case, exc)}
                rows[case.name] = row
                failed += row["status"] == STATUS_FAILED
                writer.write(rows)
                if progress:
                    progress(row, len(rows), failed, len(cases))
    except KeyboardInterrupt:
        interrupted = True
        if client is not None:
            client.cancel(list(futures))
    finally:
        if client is not None and client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
    for case in cases:
        if case.name not in rows:
            rows[case.name] = {**_empty_row(case, card), "status": STATUS_CANCELLED, "error": "interrupted before it finished"}
    totals = cohort_totals(list(rows.values()), time.perf_counter() - started)
    paths = writer.write(rows, final=True)
    write_text_atomic(out_dir / "cohort_summary.json", json.dumps(totals, indent=2) + "\n")
    return CohortResult([rows[c.name] for c in cases], totals, paths, interrupted)


@contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Worker processes started here inherit an ignored SIGINT, so Ctrl+C in a terminal (sent to the
    whole process group) reaches only this process, which cancels the futures and closes the cluster."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cohort_totals(rows: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """Counts by status, run wall time, throughput, and the sums of CPU seconds and energy of cases run now."""
    ran = [r for r in rows if r["status"] in (STATUS_OK, STATUS_FAILED) and r.get("cpu_s") != ""]
    count = {s: sum(r["status"] == s for r in rows) for s in (STATUS_OK, STATUS_SKIPPED, STATUS_FAILED, STATUS_CANCELLED)}
    done_now = count[STATUS_OK] + count[STATUS_FAILED]
    methods = sorted({r["energy_method"] for r in ran if r.get("energy_method")})
    return {
        "cases": len(rows), **count, "wall_s": round(wall_s, 3),
        "cases_per_min": round(60.0 * done_now / wall_s, 3) if wall_s > 0 and done_now else 0.0,
        "cpu_s": round(sum(float(r["cpu_s"]) for r in ran), 3),
        "energy_j": round(sum(float(r["energy_j"]) for r in ran), 3),
        "energy_wh": round(sum(float(r["energy_j"]) for r in ran) / 3600.0, 6),
        "energy_method": "; ".join(methods),
    }


class _TableWriter:
    """cohort.csv after every case (an interrupted run keeps its rows); cohort.parquet at the end."""

    def __init__(self, out_dir: Path, order: list[str]) -> None:
        self.out_dir, self.order = out_dir, order

    def write(self, rows: dict[str, dict[str, Any]], final: bool = False) -> list[Path]:
        ordered = [rows[name] for name in self.order if name in rows]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(ordered)
        paths = [write_text_atomic(self.out_dir / "cohort.csv", buffer.getvalue())]
        if final:
            parquet = write_parquet(self.out_dir / "cohort.parquet", ordered)
            if parquet is not None:
                paths.append(parquet)
        return paths


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path | None:
    """The table as Parquet when pyarrow is importable (numbers as float, the rest as text), else None."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    data = {c: [(float(r[c]) if r.get(c, "") != "" else None) if c in NUMERIC_COLUMNS else str(r.get(c, "")) for r in rows]
            for c in COLUMNS}
    table = pa.table({c: pa.array(v, type=pa.float64() if c in NUMERIC_COLUMNS else pa.string()) for c, v in data.items()})
    try:
        return write_atomically(path, lambda temp: pq.write_table(table, str(temp)), overwrite=True, kind="Parquet table")
    except (pa.ArrowException, OSError):  # the CSV is the table of record; Parquet is a convenience
        return None


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` atomically (``io.outputs``): readers of a live table never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"), overwrite=True)
