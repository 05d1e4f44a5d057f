"""``lightseg serve``: a warm process that runs ``lightseg segment`` jobs handed over by the light client.

A cold ``lightseg segment`` spends about half its time starting Python and importing NumPy, nibabel and ONNX
Runtime; a warm process has done that once and keeps its ONNX Runtime sessions (``backends.registry``). Like
mypy's ``dmypy``: ``lightseg serve`` listens on a Unix domain socket, and the console script
(``napari_lightseg._entry``) sends it ``segment`` jobs when one answers with the same code, else runs locally.

The socket: ``$LIGHTSEG_SERVE_SOCKET``, else ``$XDG_RUNTIME_DIR/napari-lightseg/serve.sock``, else
``/tmp/napari-lightseg-<uid>/serve.sock``; its folder is the user's own (0700, refused when owned by another
user), the socket itself 0600 and only the same user's connections are served.

The protocol: each message is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Requests:

- ``{"op": "run", "code": KEY, "argv": [...], "cwd": "..."}``: the server answers ``{"accepted": true}`` (or
  ``{"accepted": false, "reason": ...}``: the client then runs the job itself), runs ``cli.main(argv)`` in
  ``cwd`` with stdout and stderr captured, and answers ``{"rc": int, "stdout": str, "stderr": str}``. A client
  that closes the connection before the answer cancels the job: it stops without writing any output.
- ``{"op": "ping"}``: ``{"pid": int, "code": KEY, "jobs": int}``.
- ``{"op": "stop"}``: ``{"stopping": true}``, and the server exits.

KEY (``code_key``) names the code that runs: the package folder, the size and modification time of each of its
Python files and model files, and the interpreter; a server whose code differs from the client's is not used.

Only the standard library is imported at module level: the light client imports this module at every start.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
from typing import Any

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SOCKET_ENV = "LIGHTSEG_SERVE_SOCKET"
ENABLE_ENV = "LIGHTSEG_SERVE"  # "0" turns the client side off
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ServeError(RuntimeError):
    """The server cannot start or be reached (the socket folder, another server, a broken message)."""


def _uid() -> int:
    return os.getuid()


def default_socket_path() -> str:
    """``$LIGHTSEG_SERVE_SOCKET``, else ``$XDG_RUNTIME_DIR/napari-lightseg/serve.sock``, else a per-user /tmp folder."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return os.path.abspath(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "napari-lightseg", "serve.sock")
    return os.path.join("/tmp", f"napari-lightseg-{_uid()}", "serve.sock")


def code_key(package_dir: str = PACKAGE_DIR) -> str:
    """sha1 of the package folder, the interpreter, (name, mtime_ns, size) of every .py file and model file, and
    the installed distributions with their versions (the ``.dist-info`` names in site-packages: a server started
    before an install or upgrade holds the old versions in memory).

    Only ``stat`` calls: a few milliseconds at every client start.
    """
    entries: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        in_models = os.path.relpath(root, package_dir).split(os.sep)[0] == "models"
        for name in files:
            if name.endswith(".py") or (in_models and name.endswith((".json", ".onnx"))):
                path = os.path.join(root, name)
                st = os.stat(path)
                entries.append((os.path.relpath(path, package_dir), st.st_mtime_ns, st.st_size))
    try:
        from _sha1 import sha1  # CPython's own SHA-1: hashlib would load OpenSSL (~5 ms at every client start)
    except ImportError:  # pragma: no cover - other interpreters
        from hashlib import sha1
    digest = sha1()
    digest.update(json.dumps([package_dir, sys.prefix, sys.version, sorted(entries), _installed()]).encode())
    return digest.hexdigest()


def _installed() -> list[str]:
    """The ``*.dist-info`` / ``*.egg-info`` names (name and version) in the site-packages folders on ``sys.path``."""
    names: list[str] = []
    for folder in sorted({os.path.realpath(p) for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}):
        try:
            names += sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    return names


# --- messages -------------------------------------------------------------------------------------------------

def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """One message: a 4-byte big-endian length, then the UTF-8 JSON."""
    data = json.dumps(message).encode("utf-8")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ServeError("the connection closed in the middle of a message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any]:
    """The next message, or ServeError when the peer closed the connection or sent something else."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise ServeError(f"a message of {size} bytes (at most {MAX_MESSAGE_BYTES})")
    try:
        message = json.loads(_recv_exact(sock, size).decode("utf-8"))
    except ValueError as exc:
        raise ServeError(f"not a JSON message: {exc}") from exc
    if not isinstance(message, dict):
        raise ServeError("a message must be a JSON object")
    return message


def _peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux), or None where unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def connect(path: str, timeout: float | None = 2.0) -> socket.socket:
    """A connection to the server at ``path`` (OSError when nobody listens), checked to be the same user's."""
    st = os.stat(path)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != _uid():
        raise ServeError(f"{path}: not a socket of this user")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        peer = _peer_uid(sock)
        if peer is not None and peer != _uid():
            raise ServeError(f"{path}: the server runs as another user")
    except BaseException:
        sock.close()
        raise
    return sock


def request(path: str, message: dict[str, Any], timeout: float | None = 5.0) -> dict[str, Any]:
    """Send one message to the server at ``path`` and return its answer."""
    with connect(path, timeout) as sock:
        send_message(sock, message)
        return recv_message(sock)


def ping(path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's ``ping`` answer, or None when no server answers at ``path`` within ``timeout`` seconds."""
    try:
        return request(path, {"op": "ping"}, timeout=timeout)
    except (OSError, ServeError):
        return None


# --- the server -----------------------------------------------------------------------------------------------

def _secure_folder(folder: str) -> None:
    """Create the socket's folder 0700; refuse one owned by another user, and make ours private."""
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if st.st_uid != _uid():
        raise ServeError(f"{folder}: the socket folder belongs to another user (uid {st.st_uid})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)


class Server:
    """A foreground server on one Unix socket: one job at a time, each in a worker thread it can cancel."""

    def __init__(self, path: str | None = None, *, idle_exit: float | None = None) -> None:
        self.path = os.path.abspath(path) if path else default_socket_path()
        self.idle_exit = idle_exit
        self.code = code_key()
        self.jobs = 0  # jobs accepted (tests and --status)
        self._listener: socket.socket | None = None
        self._lock_fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._stopping = False

    # setup and teardown
    def bind(self) -> None:
        """Take the socket path: refuse when a server runs there, replace a stale socket file, bind 0600."""
        import fcntl

        folder = os.path.dirname(self.path)
        _secure_folder(folder)
        lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise ServeError(f"{self.path}: a lightseg server already runs there") from None
        try:
            if os.path.lexists(self.path):
                if ping(self.path) is not None:  # a server that took no lock (or another program)
                    raise ServeError(f"{self.path}: a lightseg server already runs there")
                if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    raise ServeError(f"{self.path}: exists and is not a socket")
                os.unlink(self.path)  # stale: nobody listens
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_mask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
            try:
                listener.bind(self.path)
            finally:
                os.umask(old_mask)
            os.chmod(self.path, 0o600)
            listener.listen(8)
        except BaseException:
            os.close(lock_fd)
            raise
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self._listener, self._lock_fd = listener, lock_fd

    def close(self) -> None:
        """Stop listening and remove the socket (if it is still ours)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            except OSError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # the loop
    def serve_forever(self, stop_event: Any = None) -> None:
        """Answer requests until a stop request, ``idle_exit`` seconds without one, or ``stop_event`` is set."""
        import contextlib
        import select
        import time

        assert self._listener is not None, "bind() first"
        last = time.monotonic()
        while not self._stopping and not (stop_event is not None and stop_event.is_set()):
            ready, _, _ = select.select([self._listener], [], [], 0.2)
            if not ready:
                if self.idle_exit is not None and time.monotonic() - last >= self.idle_exit:
                    break
                continue
            conn, _ = self._listener.accept()
            with conn, contextlib.suppress(OSError, ServeError):  # a client that went away or spoke nonsense
                self._handle(conn)
            last = time.monotonic()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        peer = _peer_uid(conn)
        if peer is not None and peer != _uid():
            return
        message = recv_message(conn)
        op = message.get("op", "run")
        if op == "ping":
            send_message(conn, {"pid": os.getpid(), "code": self.code, "jobs": self.jobs, "socket": self.path})
        elif op == "stop":
            self._stopping = True
            send_message(conn, {"stopping": True})
        elif op == "run":
            self._run(conn, message)
        else:
            send_message(conn, {"error": f"unknown op {op!r}"})

    def _run(self, conn: socket.socket, message: dict[str, Any]) -> None:
        argv, cwd = message.get("argv"), message.get("cwd")
        reason = None
        if message.get("code") != self.code:
            reason = "the server runs other code"
        elif not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and argv[:1] == ["segment"]):
            reason = "the server runs only `segment`"
        elif not (isinstance(cwd, str) and os.path.isdir(cwd)):
            reason = "no such working folder"
        if reason is not None:
            send_message(conn, {"accepted": False, "reason": reason})
            return
        if _closed(conn):  # a client that gave up waiting (it runs the job itself): never run it twice
            return
        assert isinstance(argv, list) and isinstance(cwd, str)
        send_message(conn, {"accepted": True})
        self.jobs += 1
        send_message(conn, run_job(argv, cwd, conn))


def _closed(conn: socket.socket) -> bool:
    """True when the client has closed its end (it sends nothing after its request)."""
    import select

    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable)


def run_job(argv: list[str], cwd: str, conn: socket.socket | None = None) -> dict[str, Any]:
    """``cli.main(argv)`` in ``cwd`` with stdout/stderr captured, in a worker thread; cancelled once ``conn`` closes.

    The client sends nothing after its request, so the connection turning readable means it closed (Ctrl+C):
    the job's cancel callback then answers True and the run stops before its outputs are committed.
    """
    import contextlib
    import io
    import select
    import threading
    import warnings

    from .cli import main

    cancelled = threading.Event()
    result: dict[str, Any] = {}
    out, err = io.StringIO(), io.StringIO()

    def work() -> None:
        previous = os.open(".", os.O_RDONLY)  # the server's folder, even one that was renamed meanwhile
        try:
            os.chdir(cwd)
            # catch_warnings: each job shows its warnings again, as its own process would
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                result["rc"] = main(argv, cancel=cancelled.is_set)
        except BaseException as exc:  # main turns errors into exit codes; this is a last resort
            result["rc"] = 1
            err.write(f"lightseg: error: internal error in the server: {type(exc).__name__}: {exc}\n")
        finally:
            os.fchdir(previous)
            os.close(previous)

    done_r, done_w = os.pipe()  # the worker's last act: the waiting loop wakes at once, not at its next poll

    def job() -> None:
        try:
            work()
        finally:
            os.write(done_w, b"x")

    worker = threading.Thread(target=job, name="lightseg-job", daemon=True)
    try:
        worker.start()
        watched: list[Any] = [done_r] if conn is None else [done_r, conn]
        while worker.is_alive():
            readable, _, _ = select.select(watched, [], [], 1.0)
            if done_r in readable:
                break
            if conn is not None and conn in readable:  # EOF or a reset (or bytes the protocol never sends)
                cancelled.set()  # the client is gone: the job stops before it commits anything
                watched = [done_r]
    except KeyboardInterrupt:  # the server's own Ctrl+C: cancel the job (joined below), then stop
        cancelled.set()
        raise
    finally:
        worker.join()
        os.close(done_r)
        os.close(done_w)
    return {"rc": int(result.get("rc", 1)), "stdout": out.getvalue(), "stderr": err.getvalue()}


def _warm_up() -> None:
    """Import what every job needs before the first one arrives (the sessions come with each model's first job)."""
    import contextlib
    import importlib

    from . import cli, clinical, engine  # noqa: F401

    with contextlib.suppress(ImportError):  # a torch-only install: its backend loads with its first job
        importlib.import_module("onnxruntime")


def serve_forever(socket_path: str | None = None, *, idle_exit: float | None = None, ready_event: Any = None,
                  stop_event: Any = None, announce: bool = False) -> Server:
    """Bind and serve until stopped; ``ready_event`` is set once the socket accepts connections."""
    server = Server(socket_path, idle_exit=idle_exit)
    server.bind()
    try:
        _warm_up()
        if announce:
            print(f"lightseg serve: listening on {server.path} (pid {os.getpid()}); Ctrl+C to stop", flush=True)
        if ready_event is not None:
            ready_event.set()
        server.serve_forever(stop_event)
    finally:
        server.close()
    return server


def stop(path: str, timeout: float = 60.0) -> bool:
    """Ask the server at ``path`` to exit (after the job it runs, if any); False when none answers."""
    try:
        return bool(request(path, {"op": "stop"}, timeout=timeout).get("stopping"))
    except (OSError, ServeError):
        return False
