"""One registry of inference backends, imported lazily.

- ``onnxruntime``: every execution provider ``onnxruntime.get_available_providers()`` reports;
  sessions are cached per (model file, provider, threads); a provider that fails falls back to CPU
  and the fallback is reported.
- ``torch``: FP32 reference, when torch and onnx are installed (the ``torch`` extra); the architectures
  ship in ``torch_archs`` and the weights are read from the FP32 ONNX file's initializers.
- ``numpy``: the PCNN models (no weights).
A backend name may carry a provider: ``onnxruntime:CUDAExecutionProvider``.
"""
from __future__ import annotations

from .registry import Backend, BackendError, Inference, available_backends, backend_choices, get_backend, parse_backend

__all__ = ["Backend", "BackendError", "Inference", "available_backends", "backend_choices", "get_backend", "parse_backend"]
