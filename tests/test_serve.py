"""``lightseg serve`` and the light client (``napari_lightseg._entry``): a served job is a local job, only faster."""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg import _entry, cli, serve
from napari_lightseg.models import list_cards

ROOT = Path(__file__).resolve().parents[1]
CNN_CARDS = [c.name for c in list_cards() if c.kind == "cnn"]
needs_cnn = pytest.mark.skipif(not CNN_CARDS, reason="no shipped CNN models")


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory):
    from napari_lightseg._sample_data import write_sample_case

    return write_sample_case(tmp_path_factory.mktemp("sample"), seed=1)


@pytest.fixture
def sock_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "run" / "serve.sock"
    monkeypatch.setenv("LIGHTSEG_SERVE_SOCKET", str(path))
    monkeypatch.delenv("LIGHTSEG_SERVE", raising=False)
    return path


@contextlib.contextmanager
def running_server(path: Path):
    server = serve.Server(str(path))
    server.bind()
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(10)
        server.close()


def _normal(text: str, *names: str) -> list[str]:
    """Output lines without the run's own numbers (timings) and output names."""
    for name in names:
        text = text.replace(name, "OUT")
    return [re.sub(r"\d+\.\d+", "#", line) for line in text.splitlines()]


def _labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


@needs_cnn
def test_served_segment_equals_local(sample_case, sock_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative paths are the client's
    with running_server(sock_path) as server:
        assert cli.main(["segment", str(sample_case), "--out", "local.nii.gz"]) == 0
        local = capsys.readouterr()
        assert _entry.main(["segment", str(sample_case), "--out", "served.nii.gz"]) == 0
        served = capsys.readouterr()
        assert server.jobs == 1
    assert _normal(served.out, "served.nii.gz") == _normal(local.out, "local.nii.gz")
    assert _normal(served.err) == _normal(local.err)
    assert np.array_equal(_labels(tmp_path / "served.nii.gz"), _labels(tmp_path / "local.nii.gz"))
    assert np.array_equal(nib.load(tmp_path / "served.nii.gz").affine, nib.load(tmp_path / "local.nii.gz").affine)
    sidecars = sorted(p.name.replace("served", "X") for p in tmp_path.iterdir() if p.name.startswith("served"))
    assert sidecars == sorted(p.name.replace("local", "X") for p in tmp_path.iterdir() if p.name.startswith("local"))


@needs_cnn
def test_served_errors_equal_local(sample_case, sock_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "exists.nii.gz"
    existing.write_bytes(b"keep")
    cases = [["segment", str(tmp_path / "no-such-case"), "--out", "x.nii.gz"],
             ["segment", str(sample_case), "--out", "exists.nii.gz"]]
    with running_server(sock_path) as server:
        for jobs, argv in enumerate(cases, start=1):
            local_rc = cli.main(argv)
            local = capsys.readouterr()
            served_rc = _entry.main(argv)
            served = capsys.readouterr()
            assert server.jobs == jobs
            assert served_rc == local_rc == 2
            assert served.out == local.out == ""
            assert served.err == local.err
            assert len(served.err.splitlines()) == 1 and served.err.startswith("lightseg: error: ")
    assert existing.read_bytes() == b"keep"
    assert not (tmp_path / "x.nii.gz").exists()


@needs_cnn
def test_no_server_runs_locally(sample_case, sock_path, tmp_path, capsys):
    out = tmp_path / "seg.nii.gz"
    assert not sock_path.exists()
    assert _entry.main(["segment", str(sample_case), "--out", str(out)]) == 0
    assert out.exists() and capsys.readouterr().out.startswith(str(out))


@needs_cnn
def test_stale_socket_runs_locally_and_is_replaced(sample_case, sock_path, tmp_path):
    sock_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))  # a socket file nobody listens on (a server that was killed)
    stale.close()
    assert sock_path.exists()
    out = tmp_path / "seg.nii.gz"
    assert _entry.main(["segment", str(sample_case), "--out", str(out)]) == 0
    assert out.exists()
    with running_server(sock_path) as server:
        assert serve.ping(str(sock_path))["pid"] == os.getpid()
        assert server.jobs == 0


@needs_cnn
def test_other_code_or_disabled_runs_locally(sample_case, sock_path, tmp_path, monkeypatch, capsys):
    with running_server(sock_path) as server:
        server.code = "another checkout"
        assert _entry.main(["segment", str(sample_case), "--out", str(tmp_path / "a.nii.gz")]) == 0
        assert (tmp_path / "a.nii.gz").exists() and server.jobs == 0
        server.code = serve.code_key()
        monkeypatch.setenv("LIGHTSEG_SERVE", "0")
        assert _entry.main(["segment", str(sample_case), "--out", str(tmp_path / "b.nii.gz")]) == 0
        assert (tmp_path / "b.nii.gz").exists() and server.jobs == 0
        monkeypatch.delenv("LIGHTSEG_SERVE")
        assert _entry.main(["models", "--json"]) == 0  # not a segment: never sent
        assert server.jobs == 0
        refused = serve.request(str(sock_path), {"op": "run", "code": server.code, "argv": ["models"], "cwd": "/"})
        assert refused["accepted"] is False
    capsys.readouterr()


def test_socket_permissions(sock_path):
    with running_server(sock_path):
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(sock_path.stat().st_mode)
    assert not sock_path.exists()  # removed on exit


def test_private_folder_made_private_and_foreign_folder_refused(tmp_path, monkeypatch):
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with running_server(folder / "serve.sock"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    monkeypatch.setattr(serve, "_uid", lambda: os.getuid() + 1)  # as if the folder were another user's
    with pytest.raises(serve.ServeError, match="another user"):
        serve.Server(str(folder / "serve.sock")).bind()


def test_default_socket_path(monkeypatch, tmp_path):
    monkeypatch.delenv("LIGHTSEG_SERVE_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert serve.default_socket_path() == str(tmp_path / "napari-lightseg" / "serve.sock")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert serve.default_socket_path() == f"/tmp/napari-lightseg-{os.getuid()}/serve.sock"
    monkeypatch.setenv("LIGHTSEG_SERVE_SOCKET", "rel.sock")
    assert serve.default_socket_path() == os.path.abspath("rel.sock")


def test_second_server_refused(sock_path, capsys):
    with running_server(sock_path):
        with pytest.raises(serve.ServeError, match="already runs"):
            serve.Server(str(sock_path)).bind()
        assert cli.main(["serve", "--socket", str(sock_path)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "already runs" in err
        assert serve.ping(str(sock_path)) is not None  # the first one still answers


def test_stop_and_status(sock_path, capsys):
    assert cli.main(["serve", "--status"]) == 1
    ready = threading.Event()
    thread = threading.Thread(target=serve.serve_forever, args=(str(sock_path),), kwargs={"ready_event": ready},
                              daemon=True)
    thread.start()
    assert ready.wait(10)
    assert cli.main(["serve", "--status"]) == 0
    assert "the same code" in capsys.readouterr().out
    assert cli.main(["serve", "--stop"]) == 0
    thread.join(10)
    assert not thread.is_alive() and not sock_path.exists()
    assert cli.main(["serve", "--stop"]) == 1


def test_idle_exit(sock_path):
    t = time.monotonic()
    serve.serve_forever(str(sock_path), idle_exit=0.3)
    assert time.monotonic() - t < 5 and not sock_path.exists()


@pytest.fixture
def blocking_run(monkeypatch):
    """engine.run waits (deterministically) until its job is cancelled, then runs: it stops at once."""
    from napari_lightseg import engine

    real, started, finished = engine.run, threading.Event(), threading.Event()

    def run(*args, cancel=None, **kwargs):
        started.set()
        try:
            deadline = time.monotonic() + 20
            while cancel is not None and not cancel() and time.monotonic() < deadline:
                time.sleep(0.01)
            return real(*args, cancel=cancel, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(engine, "run", run)
    return started, finished


@needs_cnn
def test_client_disconnect_cancels_without_output(sample_case, sock_path, tmp_path, blocking_run):
    started, finished = blocking_run
    out = tmp_path / "out" / "seg.nii.gz"
    out.parent.mkdir()
    with running_server(sock_path) as server:
        with serve.connect(str(sock_path)) as sock:
            serve.send_message(sock, {"op": "run", "code": server.code, "cwd": str(tmp_path),
                                      "argv": ["segment", str(sample_case), "--out", str(out), "--report", "r.json"]})
            assert serve.recv_message(sock)["accepted"]
            assert started.wait(20)
        assert finished.wait(20)  # the job saw the cancel
        deadline = time.monotonic() + 10
        while serve.ping(str(sock_path)) is None and time.monotonic() < deadline:  # answers again once the job ended
            time.sleep(0.05)
        assert server.jobs == 1
    assert list(out.parent.iterdir()) == [] and not (tmp_path / "r.json").exists()


@needs_cnn
def test_client_ctrl_c_cancels(sample_case, sock_path, tmp_path, monkeypatch, capsys, blocking_run):
    started, finished = blocking_run
    real, seen = serve.recv_message, []

    def recv(sock):  # the client's Ctrl+C while it waits for the result
        if threading.current_thread() is threading.main_thread() and seen:
            assert started.wait(20)
            raise KeyboardInterrupt
        message = real(sock)
        if threading.current_thread() is threading.main_thread():
            seen.append(message)
        return message

    monkeypatch.setattr(serve, "recv_message", recv)
    printed: list[tuple] = []  # in one process the server's capture of sys.stderr would swallow the client's line
    monkeypatch.setattr(_entry, "print", lambda *a, **k: printed.append(a), raising=False)
    out = tmp_path / "seg.nii.gz"
    with running_server(sock_path):
        assert _entry.main(["segment", str(sample_case), "--out", str(out)]) == 130
        assert finished.wait(20)
    assert printed == [(_entry.CANCEL_LINE,)]
    assert not out.exists() and list(tmp_path.glob("seg*")) == []


@needs_cnn
def test_cancel_checked_before_commit(sample_case, tmp_path, monkeypatch, capsys):
    """A cancel during the writing still leaves nothing: the plan is checked once more before it commits."""
    from napari_lightseg import clinical

    flag = threading.Event()
    real = clinical.save_mask

    def save_mask(*args, **kwargs):
        real(*args, **kwargs)
        flag.set()

    monkeypatch.setattr(clinical, "save_mask", save_mask)
    out = tmp_path / "seg.nii.gz"
    assert cli.main(["segment", str(sample_case), "--out", str(out)], cancel=flag.is_set) == 130
    assert capsys.readouterr().err == "lightseg: cancelled; no output was written\n"
    assert list(tmp_path.iterdir()) == []


@needs_cnn
def test_served_client_imports_no_numpy(sample_case, sock_path, tmp_path):
    """The served path of the console script loads no NumPy, nibabel, ONNX Runtime or the CLI."""
    probe = (f"import json, sys\nfrom napari_lightseg._entry import main\n"
             f"rc = main(['segment', {str(sample_case)!r}, '--out', 'seg.nii.gz'])\n"
             "heavy = [m for m in ('numpy', 'nibabel', 'onnxruntime', 'napari_lightseg.cli') if m in sys.modules]\n"
             "print(json.dumps({'rc': rc, 'heavy': heavy}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LIGHTSEG_SERVE_SOCKET": str(sock_path)}
    with running_server(sock_path) as server:
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)
        assert server.jobs == 1, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "heavy": []}
    assert (tmp_path / "seg.nii.gz").exists()


def test_abandoned_request_never_runs(sample_case, tmp_path):
    """A client that gave up waiting (a busy server) runs the job itself: the server must not run it too."""
    server = serve.Server(str(tmp_path / "unbound.sock"))
    client, end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    out = tmp_path / "seg.nii.gz"
    serve.send_message(client, {"op": "run", "code": server.code, "cwd": str(tmp_path),
                                "argv": ["segment", str(sample_case), "--out", str(out)]})
    client.close()
    with end:
        server._handle(end)
    assert server.jobs == 0 and not out.exists()


def test_the_client_speaks_as_the_cli_does() -> None:
    """_entry repeats the CLI's cancel line and exit codes (it must not import the CLI): they must not drift."""
    from napari_lightseg import _entry, cli

    assert (_entry.CANCEL_LINE, _entry.EXIT_INTERNAL, _entry.EXIT_CANCELLED) == (cli.CANCEL_LINE, cli.EXIT_INTERNAL,
                                                                                  cli.EXIT_CANCELLED)


@needs_cnn
def test_console_script_quick_exit_keeps_output_and_messages(sample_case, tmp_path):
    """``lightseg segment`` leaves with ``os._exit`` after a local run: the mask, its sidecar, the summary line
    and exit code are all there; a refused run still prints its one line and exits non-zero."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LIGHTSEG_SERVE": "0"}
    argv = [sys.executable, "-c", "from napari_lightseg._entry import script; script()", "segment", str(sample_case),
            "--out", "seg.nii.gz"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "seg.nii.gz" in done.stdout and "WT" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.labels.json", "seg.nii.gz"]  # no temporary left
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert refused.returncode != 0
    assert "exists" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_code_key_changes_when_a_package_is_installed(tmp_path, monkeypatch):
    """A server started before an upgrade holds the old dependencies in memory: the client's key must differ then,
    so the job runs locally with what is installed now. Python writing bytecode there changes nothing."""
    site = tmp_path / "lib" / "site-packages"
    (site / "numpy-1.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    before = serve.code_key()
    (site / "__pycache__").mkdir()
    assert serve.code_key() == before
    (site / "numpy-1.0.dist-info").rename(site / "numpy-9.9.dist-info")  # what an upgrade leaves behind
    assert serve.code_key() != before
