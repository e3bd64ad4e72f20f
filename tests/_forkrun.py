"""Suite runs for the self-tests (``python -m pytest ...`` in a subprocess) started from a warm
interpreter. Hundreds of self-tests run the suite as a subprocess; half the CPU of a small run
was the interpreter's start and its imports of pytest, aiohttp, websockets and jsonschema.
``run`` hands such a command to a helper process (one per self-test process, started on first
use) that imported those libraries once and forks a child per run. The child does what
``python -m pytest ARGS`` does from there: the given cwd (also ``sys.path[0]``) and environment,
its own session and process group, pytest's console entry point with stdout and stderr to files, the
exit code. Pytest's plugins (this project's among them) and the cases are imported by the child,
as by a fresh interpreter, so that pytest still rewrites their asserts. Any other command, or a
helper that cannot start, runs as a plain ``subprocess.run``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest"]
START_DEADLINE_S = 30


def run(cmd: list[str], *, cwd: Path | str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, cwd=, env=, capture_output=True, text=True, timeout=)``, forked from
    the warm helper when ``cmd`` is ``python -m pytest ...``."""
    helper = _helper() if cmd[:3] == PYTEST else None
    if helper is None:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return helper.run(cmd, str(cwd), env, timeout)


class _Helper:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="selftest-forkrun-"))
        self.address = str(self.folder / "socket")
        self.proc = subprocess.Popen([sys.executable, __file__, self.address], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
        deadline = time.monotonic() + START_DEADLINE_S
        while not os.path.exists(self.address + ".ready"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise OSError("the fork helper did not start")
            time.sleep(0.02)
        self.serial = itertools.count(1)     # thread-safe under the GIL: file names of the runs

    def run(self, cmd: list[str], cwd: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        number = next(self.serial)
        out, err = (self.folder / f"{number}.{name}" for name in ("out", "err"))
        request = {"args": cmd[3:], "cwd": os.path.abspath(cwd), "env": env, "out": str(out), "err": str(err)}
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(START_DEADLINE_S)
            conn.connect(self.address)
            conn.sendall(json.dumps(request).encode() + b"\n")
            reader = conn.makefile("r", encoding="utf-8")
            pid = int(reader.readline())
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                line = reader.readline()
            except TimeoutError:
                line = None
            if not line:     # the deadline passed (or the child died without a word)
                _kill_group(pid)
                stdout, stderr = _read(out), _read(err)
                if line is None:
                    raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
                return subprocess.CompletedProcess(cmd, -signal.SIGKILL, stdout, stderr)
        return subprocess.CompletedProcess(cmd, int(line), _read(out), _read(err))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for path in self.folder.glob("*"):
            path.unlink(missing_ok=True)
        self.folder.rmdir()


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    path.unlink()
    return text


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_STARTED: list[_Helper | None] = []     # this process's helper, once started (or None: it could not)
_LOCK = threading.Lock()


def _helper() -> _Helper | None:
    with _LOCK:
        if not _STARTED:
            try:
                _STARTED.append(_Helper())
                atexit.register(_STARTED[0].stop)
            except OSError:
                _STARTED.append(None)
        return _STARTED[0]


# --- the helper process --------------------------------------------------------------------------

def _serve(address: str) -> None:
    # what every suite run imports and never changes; pytest's plugins and the project's own
    # modules stay out (the child imports them, so that pytest rewrites their asserts)
    import aiohttp.web  # noqa: F401
    import jsonschema  # noqa: F401
    import pytest  # noqa: F401
    import websockets.sync.client  # noqa: F401

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = os.getppid()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(address)
            listener.listen(16)
            listener.settimeout(0.5)
            Path(address + ".ready").touch()
            while os.getppid() == parent:      # the self-test process is gone: so is its helper
                _reap()
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                request = json.loads(conn.makefile("r", encoding="utf-8").readline())
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn, request)
                conn.sendall(f"{pid}\n".encode())
                conn.close()
    finally:
        deadline = time.monotonic() + 5
        while _reap() and time.monotonic() < deadline:
            time.sleep(0.05)


def _reap() -> bool:
    """Wait for the runs that ended (so that their CPU time counts in this process's children's,
    and so in the self-test's); True while some still run."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _child(conn: socket.socket, request: dict) -> None:
    code = 3
    try:
        import random

        os.setsid()                                   # its own group: a deadline kills all of it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        random.seed()                                 # not the helper's sequence
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]                  # as `python -m` puts the cwd first
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["out"]), (2, request["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        import pytest
        from _pytest.config import _console_main     # what `python -m pytest` runs

        sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *request["args"]]
        code = int(_console_main())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the caller gets an exit code
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"{code}\n".encode())
        finally:
            os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1])
