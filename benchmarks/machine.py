"""The CPU a benchmark ran on, for its results header: model name and the vector extensions that decide
ONNX Runtime's INT8 speed (AVX-512 VNNI / AVX-VNNI make INT8 convolutions much faster than AVX2 alone)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_line() -> str:
    """E.g. 'AMD EPYC (avx2), 2 cores'."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    found = [e for e in EXTENSIONS if e in flags]
    return f"{name} ({', '.join(found) or 'no AVX2'}), {os.cpu_count()} cores"
