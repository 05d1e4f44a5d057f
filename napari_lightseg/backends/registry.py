"""Backend registry: availability, provider choice and cached inference sessions.

Sessions are cached twice: in memory per process (``lru_cache``: the GUI's repeated runs and each
Dask worker's cases reuse one session), and on disk for the CPU provider: the graph ONNX Runtime
optimizes at session creation is saved once (``SessionOptions.optimized_model_filepath``) under the
user cache folder (``LIGHTSEG_CACHE``, else ``$XDG_CACHE_HOME/napari-lightseg``, else
``~/.cache/napari-lightseg``; ``LIGHTSEG_CACHE=off`` disables it), and later processes load it with
graph optimization off. The file name holds the weights' sha256, the ONNX Runtime version and a hash
of the CPU's model and flags, since an optimized graph may use kernels of this CPU only; outputs are
bit-identical to optimizing afresh (checked by ``tests/test_session_cache.py`` and, on real cases, by
``benchmarks/bench_speed.py``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from ..models import ModelCard

CPU_PROVIDER = "CPUExecutionProvider"
NON_LOCAL_PROVIDERS = ("AzureExecutionProvider",)


class BackendError(RuntimeError):
    """A backend cannot run this model here; the message says why."""


@dataclass
class Inference:
    """A ready-to-run model: ``run(batch NCHW float32) -> logits NCHW``, and what actually runs it.

    ``parallel``: how many ``run`` calls to make at once (from that many threads) for full use of the cores."""

    run: Callable[[np.ndarray], np.ndarray]
    backend: str
    provider: str
    notes: list[str] = field(default_factory=list)
    parallel: int = 1


class Backend(Protocol):
    """What an inference engine offers: whether it can run here, its devices, and a loaded model."""
    name: str

    def available(self) -> tuple[bool, str]: ...
    def providers(self) -> list[str]: ...
    def load(self, card: ModelCard, provider: str | None, threads: int | None) -> Inference: ...


def split_threads(threads: int) -> tuple[int, int]:
    """(concurrent runs, ONNX Runtime threads per run) for ``threads`` cores on the CPU provider.

    Two batches at once, each on its own threads, beat one batch on all threads: a batch of small
    (depthwise) convolutions leaves threads waiting at every layer's join. On 2 cores, inference of a
    case: mnv3-lraspp-int8 0.25 vs 0.32 s, mnv3-lraspp-v2-int8 with flips 0.72 vs 1.01 s
    (``benchmarks/RESULTS_speed.md``); labels bit-identical (each batch's outputs do not
    depend on the thread count; ``benchmarks/check_identical.py``). ONNX Runtime sessions are safe to run
    from several threads at once."""
    parallel = 2 if threads >= 2 else 1
    return parallel, max(1, threads // parallel)


def default_threads() -> int:
    """Threads to use by default: the cores this process may run on (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class OnnxRuntimeBackend:
    """Runs the shipped ONNX models with ONNX Runtime on a local execution provider."""
    name = "onnxruntime"

    def available(self) -> tuple[bool, str]:
        ok = importlib.util.find_spec("onnxruntime") is not None
        return ok, "" if ok else "onnxruntime is not installed"

    def providers(self) -> list[str]:
        """Local execution providers, CPU first (the Azure provider calls remote endpoints: not ours)."""
        import onnxruntime as ort

        local = [p for p in ort.get_available_providers() if p not in NON_LOCAL_PROVIDERS]
        return sorted(local, key=lambda p: p != CPU_PROVIDER)

    def load(self, card: ModelCard, provider: str | None, threads: int | None) -> Inference:
        if card.kind != "cnn":
            raise BackendError(f"{card.name}: onnxruntime runs CNN models only")
        card.verify()
        threads = threads or default_threads()
        wanted = provider or CPU_PROVIDER
        notes: list[str] = []
        if wanted not in self.providers():
            notes.append(f"{wanted} is not available here; fell back to {CPU_PROVIDER}")
            wanted = CPU_PROVIDER
        parallel, per_run = split_threads(threads) if wanted == CPU_PROVIDER else (1, threads)
        try:
            session = _ort_session(str(card.path), wanted, per_run, card.sha256 or "")
        except Exception as exc:  # a provider that fails to initialise: fall back to CPU
            if wanted == CPU_PROVIDER:
                raise BackendError(f"{card.name}: onnxruntime could not load {card.file} ({exc})") from None
            notes.append(f"{wanted} failed ({str(exc).splitlines()[0][:120]}); fell back to {CPU_PROVIDER}")
            wanted = CPU_PROVIDER
            parallel, per_run = split_threads(threads)
            session = _ort_session(str(card.path), wanted, per_run, card.sha256 or "")
        actual = session.get_providers()[0]
        if actual != wanted:
            notes.append(f"{wanted} was requested but {actual} runs the model")
        input_name, output_name = card.inputs[0], card.outputs[0]

        def run(batch: np.ndarray) -> np.ndarray:
            return session.run([output_name], {input_name: batch})[0]

        if actual != CPU_PROVIDER:
            parallel = 1
        return Inference(run, self.name, actual, notes, parallel)


@lru_cache(maxsize=8)
def _ort_session(path: str, provider: str, threads: int, sha256: str = ""):
    """One session per (model, provider, threads) per process; the optimized graph cached on disk (CPU)."""
    import onnxruntime as ort

    def options(level):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = level
        opts.log_severity_level = 3
        # idle threads sleep instead of spinning: on cores shared with other work (batch workers, the GUI,
        # other processes) spinning costs CPU and slows the thread doing the work; same outputs
        # (benchmarks/RESULTS_speed.md)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    cached = optimized_model_path(sha256, provider)
    if cached is not None and cached.exists():
        try:
            return ort.InferenceSession(str(cached), sess_options=options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                        providers=[provider])
        except Exception:  # a damaged cache file: optimize afresh and replace it
            pass
    opts = options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    tmp = None
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ort-", suffix=".onnx", dir=cached.parent)
            os.close(fd)
            opts.optimized_model_filepath = tmp
        except OSError:  # no writable cache folder: run without one
            tmp = None
    try:
        session = ort.InferenceSession(path, sess_options=opts, providers=[provider])
        if tmp is not None and cached is not None and os.path.getsize(tmp) > 0:
            os.replace(tmp, cached)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return session


def cache_dir() -> Path | None:
    """Where optimized graphs are kept; None (no disk cache) when ``LIGHTSEG_CACHE`` is off, 0 or empty."""
    setting = os.environ.get("LIGHTSEG_CACHE")
    if setting is not None:
        return None if setting.strip().lower() in ("", "0", "off", "no", "false") else Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-lightseg"


def optimized_model_path(sha256: str, provider: str) -> Path | None:
    """The cache file for these weights on this ORT version and CPU; None when not cached (other providers)."""
    folder = cache_dir()
    if folder is None or provider != CPU_PROVIDER or not sha256:
        return None
    import onnxruntime as ort

    return folder / "ort" / f"{sha256[:16]}-ort{ort.__version__}-{_cpu_fingerprint()}.onnx"


@lru_cache(maxsize=1)
def _cpu_fingerprint() -> str:
    """Hash of the CPU model and its instruction-set flags: an optimized graph is valid on the same kind of CPU."""
    text = platform.machine() + platform.processor()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        text += "".join(sorted({line for line in info if line.startswith(("model name", "flags", "Features"))}))
    except OSError:
        pass
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class TorchBackend:
    """FP32 reference in PyTorch eager mode (research use; not a runtime dependency)."""

    name = "torch"

    def available(self) -> tuple[bool, str]:
        for module in ("torch", "onnx"):
            if importlib.util.find_spec(module) is None:
                return False, f"{module} is not importable (install the 'torch' extra)"
        return True, ""

    def providers(self) -> list[str]:
        return ["cpu"]

    def load(self, card: ModelCard, provider: str | None, threads: int | None) -> Inference:
        ok, why = self.available()
        if not ok:
            raise BackendError(f"torch backend unavailable: {why}")
        if card.kind != "cnn" or card.precision != "fp32":
            raise BackendError(f"{card.name}: the torch backend runs FP32 CNN models only")
        card.verify()
        import torch

        if threads:
            torch.set_num_threads(threads)
        model = _torch_model(str(card.path), card.architecture, card.in_channels, card.out_channels)

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(batch)).numpy()

        return Inference(run, self.name, "cpu", [])


@lru_cache(maxsize=4)
def _torch_model(path: str, architecture: str, in_channels: int, out_channels: int):
    from .torch_archs import torch_model_from_onnx

    return torch_model_from_onnx(path, architecture, in_channels, out_channels)


class NumpyBackend:
    """The PCNN models run in NumPy; nothing to load."""

    name = "numpy"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def providers(self) -> list[str]:
        return ["cpu"]

    def load(self, card: ModelCard, provider: str | None, threads: int | None) -> Inference:
        raise BackendError("the numpy backend runs PCNN models through the engine, not as an inference session")


_BACKENDS: dict[str, Backend] = {b.name: b for b in (OnnxRuntimeBackend(), TorchBackend(), NumpyBackend())}


def get_backend(name: str) -> Backend:
    """Look a backend up by name, failing with the list of known ones."""
    if name not in _BACKENDS:
        raise BackendError(f"unknown backend {name!r}; one of {', '.join(_BACKENDS)}")
    return _BACKENDS[name]


def parse_backend(spec: str | None, card: ModelCard) -> tuple[str, str | None]:
    """``'onnxruntime:CUDAExecutionProvider'`` -> (backend, provider); default by model kind."""
    if not spec:
        return ("numpy" if card.kind == "pcnn" else "onnxruntime"), None
    name, _, provider = spec.partition(":")
    return name, provider or None


def available_backends(card: ModelCard | None = None) -> dict[str, tuple[bool, str]]:
    """Backend name -> (available, reason), restricted to those that can run ``card``'s kind."""
    out = {}
    for name, backend in _BACKENDS.items():
        if card is not None and (card.kind == "pcnn") != (name == "numpy"):
            continue
        if card is not None and name == "torch" and card.precision != "fp32":
            continue
        out[name] = backend.available()
    return out


def backend_choices(card: ModelCard) -> list[str]:
    """Selectable ``backend[:provider]`` strings for a model, available ones only."""
    choices = []
    for name, (ok, _) in available_backends(card).items():
        if not ok:
            continue
        if name == "onnxruntime":
            choices += [f"onnxruntime:{p}" for p in get_backend(name).providers()]
        else:
            choices.append(name)
    return choices
