"""The ``lightseg`` console script: hand a ``segment`` job to a warm ``lightseg serve``, else run the CLI here.

The served path imports only the standard library (and ``serve``'s protocol, itself stdlib-only): no NumPy,
nibabel or ONNX Runtime, which is what makes it fast. Anything else runs ``napari_lightseg.cli.main`` locally,
exactly as without a server: other commands, ``--debug``/``--help``, ``LIGHTSEG_SERVE=0``, no socket, nobody
listening, a server running other code, or any failure before the server accepted the job.
"""
from __future__ import annotations

import contextlib
import os
import sys

CANCEL_LINE = "lightseg: cancelled; no output was written"  # as cli.main prints it
EXIT_INTERNAL, EXIT_CANCELLED = 1, 130
_LOCAL_ONLY = {"--debug", "-h", "--help"}


def _local(argv: list[str]) -> int:
    from .cli import main as cli_main

    return cli_main(argv)


def _served(argv: list[str]) -> int | None:
    """The job's exit status from the server, or None when it should run locally (nothing was done)."""
    from . import serve

    path = serve.default_socket_path()
    if not os.path.exists(path):
        return None
    try:
        sock = serve.connect(path, timeout=2.0)
    except (OSError, serve.ServeError):
        return None  # nobody listens (a stale socket), or not this user's
    with sock:
        try:
            serve.send_message(sock, {"op": "run", "code": serve.code_key(), "argv": argv, "cwd": os.getcwd()})
            if not serve.recv_message(sock).get("accepted"):
                return None  # other code, or a job the server does not take
        except (OSError, ValueError, serve.ServeError):
            return None
        try:
            sock.settimeout(None)  # a job takes as long as it takes
            reply = serve.recv_message(sock)
        except KeyboardInterrupt:
            sock.close()  # the server sees the connection close and cancels the job before it writes anything
            print(CANCEL_LINE, file=sys.stderr)
            return EXIT_CANCELLED
        except (OSError, serve.ServeError) as exc:
            print(f"lightseg: error: the lightseg server stopped during the job ({exc}); run again", file=sys.stderr)
            return EXIT_INTERNAL
    sys.stderr.write(str(reply.get("stderr", "")))
    sys.stdout.write(str(reply.get("stdout", "")))
    sys.stdout.flush()
    return int(reply.get("rc", EXIT_INTERNAL))


def main(argv: list[str] | None = None) -> int:
    """``lightseg``: served when a warm server with the same code answers, else the CLI in this process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["segment"] and not _LOCAL_ONLY.intersection(argv) and os.environ.get("LIGHTSEG_SERVE", "1") != "0":
        try:
            code = _served(argv)
        except KeyboardInterrupt:  # before the job was sent: nothing started
            print(CANCEL_LINE, file=sys.stderr)
            return EXIT_CANCELLED
        if code is not None:
            return code
    return _local(argv)


def script() -> None:
    """The console script: ``main``, then, after a local ``segment``, leave without tearing the interpreter down.

    By then the mask is committed (renamed into place) or nothing was written. What is skipped is the
    freeing of every module, array and the ONNX Runtime session: 0.05-0.08 s of a ~1.2 s run
    (``benchmarks/RESULTS_speed.md``, before vs after). ``atexit`` handlers still run (temporary folders, logging) and the
    standard streams are flushed; other commands exit normally (a Dask cluster shuts down its own way).
    """
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] != ["segment"]:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    script()
