"""gzip for ``.nii.gz``: zlib-ng when it is importable, else Python's own zlib (through nibabel, as before).

Why: inflating the four sequences of a case was most of the read stage of ``lightseg segment``; zlib-ng
(python-zlib-ng, the python-isal authors' binding) inflates about twice as fast as stdlib zlib (stages
before and after in ``benchmarks/RESULTS_speed.md``). Its C gzip reader releases the GIL while it inflates, so the
threads of ``io.study.read_sequences`` run in parallel, and it decompresses straight into the array's
buffer (``readinto``), reading only the bytes the header asks for, as nibabel does.

Files written are standard gzip (RFC 1952, one member, mtime 0): nibabel, ITK-SNAP and ``gzip -d`` read
them. The compressed bytes differ from stdlib zlib's; the decompressed file is the same.
"""
from __future__ import annotations

import importlib
import io
from typing import IO, Any


def _import_zlib_ng() -> Any:
    """``zlib_ng.zlib_ng``, or None: pyproject requires it, a bare environment falls back to stdlib zlib."""
    try:
        module = importlib.import_module("zlib_ng.zlib_ng")
    except ImportError:
        return None
    return module if hasattr(module, "_GzipReader") else None  # the C gzip reader: zlib-ng >= 0.4


_zlib_ng = _import_zlib_ng()  # tests set it to None for the fallback

# zlib-ng's levels are not stdlib zlib's: its level 1 (deflate_quick, static Huffman codes) makes masks larger
# than stdlib level 1 (nibabel's default); its level 2 makes them no larger (on BraTS masks, smaller) and is faster
# (tests/test_gzip_io.py bounds the size by stdlib level 1's, with 20% slack).
WRITE_LEVEL = 2


def available() -> bool:
    """Whether zlib-ng is used (else stdlib zlib through nibabel)."""
    return _zlib_ng is not None


class GzipStream(io.RawIOBase):
    """A read-only file over one open ``.gz`` file, inflated by zlib-ng's C reader (an ``io.IOBase``:
    nibabel's openers take it as a file object). ``readinto`` fills the buffer unless the stream ends;
    seeking forward inflates and drops. Decompression errors are stdlib types: ``EOFError`` (truncated),
    ``gzip.BadGzipFile`` (an ``OSError``), or zlib-ng's own (in ``errors()``)."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        if _zlib_ng is None:
            raise RuntimeError("zlib-ng is not importable (check io._gzip.available() first)")
        self._reader = _zlib_ng._GzipReader(handle)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            count = self._reader.readinto(view[done:])
            if not count:
                break
            done += count
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._reader.seek(offset, whence))

    def tell(self) -> int:
        return int(self._reader.tell())


def compress(data: bytes | bytearray | memoryview) -> bytes | None:
    """One gzip member of ``data`` at ``WRITE_LEVEL``; None without zlib-ng (the caller lets nibabel write)."""
    if _zlib_ng is None:
        return None
    return _zlib_ng.compress(data, WRITE_LEVEL, 31)  # wbits 31: gzip header and CRC-32/size trailer


def errors() -> tuple[type[BaseException], ...]:
    """zlib-ng's own exception type (empty without zlib-ng); catch it beside ``zlib.error``."""
    return (_zlib_ng.error,) if _zlib_ng is not None else ()
