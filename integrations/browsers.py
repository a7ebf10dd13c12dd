"""Browser sessions for WORKFLOW_EXECUTION: local headless Chromium or Browserbase, both
handed out as a CDP URL that Playwright connects to (``connect_over_cdp``).

A local browser runs in its own process group with a fresh profile directory named after
the worker process that launched it (``<pid>.<start time>-<id>``), so a browser whose
worker was killed (SIGKILL, OOM) is recognised by the next worker on the host and reaped:
its process group killed, its profile removed. A Browserbase session carries the job id and
the same owner in its ``userMetadata``; the reaper releases the ones whose owner is gone or
whose job no longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.errors import INVALID_CONFIGURATION
from core.logging import get_logger
from integrations.browserbase import BrowserbaseClient
from integrations.errors import PermanentProviderError, TransientProviderError

log = get_logger(__name__)

PROFILE_PREFIX = "bbjobs-browser-"
LAUNCH_TIMEOUT_S = 20.0
STOP_GRACE_S = 3.0

IsJobLive = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class BrowserSession:
    id: str
    cdp_url: str
    provider: str


class BrowserProvider(Protocol):
    name: str

    async def open(self, job_id: str) -> BrowserSession: ...

    async def release(self, session: BrowserSession) -> None: ...

    async def reap(self, is_job_live: IsJobLive) -> int:
        """Release the sessions left by dead workers or ended jobs; how many."""
        ...

    async def close(self) -> None: ...


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (guards against a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its ')'.
    return stat.rpartition(")")[2].split()[19]


def process_owner(pid: int | None = None) -> str:
    """The owner name of a process (this one by default): its pid and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_start_time(pid) or '0'}"


def owner_alive(owner: str) -> bool:
    pid_text, _, started = owner.partition(".")
    if not pid_text.isdigit():
        return False
    return _start_time(int(pid_text)) == started


class LocalChromium:
    """Headless Chromium processes on this host, one per session."""

    name = "local"

    def __init__(self, chromium_path: str, profiles_dir: str = "") -> None:
        self._chromium = chromium_path
        self._root = Path(profiles_dir or tempfile.gettempdir())
        self._owner = process_owner()
        self._processes: dict[str, asyncio.subprocess.Process] = {}

    def _arguments(self, profile: Path) -> list[str]:
        arguments = [
            "--headless=new",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--mute-audio",
        ]
        if os.geteuid() == 0:
            # Chromium's sandbox refuses to run as root (as in a container).
            arguments.append("--no-sandbox")
        return [*arguments, "about:blank"]

    async def open(self, job_id: str) -> BrowserSession:
        if not os.access(self._chromium, os.X_OK):
            raise PermanentProviderError(
                "chromium",
                f"no Chromium at CHROMIUM_PATH={self._chromium} (install Debian's chromium)",
                error_type=INVALID_CONFIGURATION,
            )
        self._root.mkdir(parents=True, exist_ok=True)
        session_id = uuid.uuid4().hex
        profile = self._root / f"{PROFILE_PREFIX}{self._owner}-{session_id}"
        profile.mkdir()
        process = await asyncio.create_subprocess_exec(
            self._chromium,
            *self._arguments(profile),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Its own process group: renderers and helpers go with it on release or reap.
            start_new_session=True,
        )
        self._processes[session_id] = process
        session = BrowserSession(session_id, "", self.name)
        try:
            url = await self._debugging_url(profile, process)
        except BaseException:
            await self.release(session)
            raise
        log.info("browser.launched", job_id=job_id, session_id=session_id, pid=process.pid)
        return BrowserSession(session_id, url, self.name)

    async def _debugging_url(self, profile: Path, process: asyncio.subprocess.Process) -> str:
        # Chromium writes the port it chose and the browser's path once it listens.
        port_file = profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LAUNCH_TIMEOUT_S
        while loop.time() < deadline:
            if process.returncode is not None:
                raise TransientProviderError(
                    "chromium", f"Chromium exited at start (code {process.returncode})"
                )
            with contextlib.suppress(OSError, ValueError):
                port, path = port_file.read_text().split()[:2]
                return f"ws://127.0.0.1:{int(port)}{path}"
            await asyncio.sleep(0.05)
        raise TransientProviderError(
            "chromium", f"Chromium did not listen within {LAUNCH_TIMEOUT_S} s"
        )

    async def release(self, session: BrowserSession) -> None:
        process = self._processes.pop(session.id, None)
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        # Helpers that outlived the browser process go too, and are gone before this returns:
        # the session's slot is given back next, and a new browser may start at once.
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)
        profiles = list(self._root.glob(f"{PROFILE_PREFIX}*-{session.id}"))
        await _gone(self._root, {str(p) for p in profiles})
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)

    async def reap(self, is_job_live: IsJobLive) -> int:  # noqa: ARG002 - by owner, not job
        """Kill the browsers of dead worker processes on this host and remove their
        profiles (a live worker's browsers are its own to release)."""
        reaped = 0
        for pid, profile_path in _chromium_processes(self._root):
            owner = _owner_of(profile_path)
            if owner is None or owner == self._owner or owner_alive(owner):
                continue
            with contextlib.suppress(OSError):
                _signal_group(os.getpgid(pid), signal.SIGKILL)
                reaped += 1
                log.info("browser.reaped", pid=pid, owner=owner)
        for leftover in self._root.glob(f"{PROFILE_PREFIX}*"):
            owner = _owner_of(leftover.name)
            if owner is not None and owner != self._owner and not owner_alive(owner):
                shutil.rmtree(leftover, ignore_errors=True)
        return reaped

    async def close(self) -> None:
        for session_id in list(self._processes):
            await self.release(BrowserSession(session_id, "", self.name))

    def running(self) -> int:
        return sum(1 for p in self._processes.values() if p.returncode is None)


async def _gone(root: Path, profiles: set[str], timeout_s: float = STOP_GRACE_S) -> None:
    """Wait until no process runs with one of ``profiles`` (killed helpers take a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if not any(profile in profiles for _, profile in _chromium_processes(root)):
            return
        await asyncio.sleep(0.02)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _owner_of(profile_name: str) -> str | None:
    name = profile_name.rsplit("/", 1)[-1]
    if not name.startswith(PROFILE_PREFIX):
        return None
    owner, sep, _session = name.removeprefix(PROFILE_PREFIX).rpartition("-")
    return owner if sep and owner else None


def _chromium_processes(root: Path) -> list[tuple[int, str]]:
    """(pid, profile directory) of every process started with a profile under ``root``."""
    marker = f"--user-data-dir={root / PROFILE_PREFIX}"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for argument in arguments:
            text = argument.decode(errors="replace")
            if text.startswith(marker):
                found.append((int(entry.name), text.removeprefix("--user-data-dir=")))
                break
    return found


def chromium_processes(root: str = "") -> list[int]:
    """Pids of the session browsers (and their helpers) under ``root``: for tests and the
    benchmark, which check that none is left."""
    return [pid for pid, _ in _chromium_processes(Path(root or tempfile.gettempdir()))]


class BrowserbaseSessions:
    """Remote browsers from Browserbase."""

    name = "browserbase"

    def __init__(self, client: BrowserbaseClient) -> None:
        self._client = client
        self._owner = f"{socket.gethostname()}/{process_owner()}"

    async def open(self, job_id: str) -> BrowserSession:
        session = await self._client.create_session({"jobId": job_id, "owner": self._owner})
        assert session.connect_url is not None
        log.info("browser.session_created", job_id=job_id, session_id=session.id)
        return BrowserSession(session.id, session.connect_url, self.name)

    async def release(self, session: BrowserSession) -> None:
        await self._client.release_session(session.id)

    async def reap(self, is_job_live: IsJobLive) -> int:
        """Release the running sessions of dead workers on this host, and of jobs that no
        longer run (wherever their worker was)."""
        host = socket.gethostname()
        reaped = 0
        for session in await self._client.running_sessions():
            owner = str(session.user_metadata.get("owner", ""))
            job_id = str(session.user_metadata.get("jobId", ""))
            if not owner or owner == self._owner:
                continue
            owner_host, _, process = owner.partition("/")
            dead_owner = owner_host == host and not owner_alive(process)
            if dead_owner or (job_id and not await is_job_live(job_id)):
                await self._client.release_session(session.id)
                reaped += 1
                log.info("browser.session_reaped", session_id=session.id, job_id=job_id)
        return reaped

    async def close(self) -> None:
        return None
