"""Shared test machinery: private databases, Redis prefixes, settings and workers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from client.queue import JobQueue
from core.config import Settings, load_settings
from core.queues import QueueName, QueueSpec, load_catalog
from core.temporal import connect, data_converter
from db.session import create_engine
from devtools.devserver import free_port
from tracking.interceptor import JobTrackingInterceptor
from tracking.store import JobTracker, connect_redis
from worker import worker_runtime

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HISTORIES_DIR = PROJECT_ROOT / "tests" / "histories"
T = TypeVar("T")

# The payload key of the workflow tests and of the recorded histories (tests/histories):
# a fixed test key that protects nothing real.
HISTORY_KEY = base64.b64encode(bytes(range(32))).decode()


def project_converter() -> DataConverter:
    """The project's data converter (pydantic, encrypted), under the histories' test key."""
    return data_converter(load_settings({"PAYLOAD_ENCRYPTION_KEY": HISTORY_KEY}))


def test_env(
    *, temporal_address: str, database_url: str, redis_url: str, prefix: str, key: str
) -> dict[str, str]:
    """Environment for settings and worker subprocesses of one test session."""
    return {
        "APP_ENV": "test",
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": database_url,
        "PAYLOAD_ENCRYPTION_KEY": key,
        # Receivers in tests listen on loopback.
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "15",
        "JOB_CANCEL_GRACE_SECONDS": "3",
        "LOG_LEVEL": "INFO",
    }


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def settings_from(env: Mapping[str, str]) -> Settings:
    return load_settings(dict(env))


def fast_catalog(**overrides: Any) -> dict[QueueName, QueueSpec]:
    """The catalog with webhooks tuned for tests: short timeout, given overrides."""
    catalog = load_catalog({})
    catalog[QueueName.WEBHOOKS] = replace(catalog[QueueName.WEBHOOKS], **overrides)
    return catalog


async def make_queue(
    settings: Settings, catalog: dict[QueueName, QueueSpec] | None = None
) -> JobQueue:
    return await JobQueue.connect(settings, catalog=catalog or load_catalog({}))


@contextlib.asynccontextmanager
async def running_workers(
    settings: Settings,
    queues: list[QueueName],
    catalog: dict[QueueName, QueueSpec] | None = None,
) -> AsyncIterator[JobTrackingInterceptor]:
    """The workers worker.py runs, inside the test's event loop (no reconcile loop)."""
    async with worker_runtime(settings, queues, catalog or load_catalog({})) as runtime:
        async with contextlib.AsyncExitStack() as stack:
            for worker in runtime.all_workers():
                await stack.enter_async_context(worker)
            yield runtime.interceptor


@contextlib.asynccontextmanager
async def tracked_worker(
    settings: Settings, task_queue: str, **worker_options: Any
) -> AsyncIterator[Client]:
    """A plain Worker for test-defined workflows, with the product's job tracking."""
    client = await connect(settings)
    redis = connect_redis(settings)
    interceptor = JobTrackingInterceptor(
        JobTracker(redis, load_catalog({}), settings.redis_key_prefix)
    )
    await interceptor.start()
    try:
        async with Worker(
            client, task_queue=task_queue, interceptors=[interceptor], **worker_options
        ):
            yield client
    finally:
        await interceptor.stop()
        await redis.aclose()


async def terminate_open_jobs(settings: Settings, queue: str) -> None:
    """End every job still running on ``queue`` (e.g. abandoned auto-draft children), so the
    next test's workers do not pick up work meant for emulators that are gone."""
    client = await connect(settings)
    async for execution in client.list_workflows(
        f'TaskQueue="{queue}" AND ExecutionStatus="Running"'
    ):
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(execution.id).terminate(reason="test cleanup")


async def free_slots_of(settings: Settings, pool: str) -> None:
    """The session's database is shared: no slot of ``pool`` left held by an earlier test."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE concurrency_slots SET holder = NULL WHERE pool = :pool"),
                {"pool": pool},
            )
            await conn.execute(
                sa.text("DELETE FROM concurrency_waiters WHERE pool = :pool"), {"pool": pool}
            )
    finally:
        await engine.dispose()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until ``until(value)`` holds; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


class WorkerProcess:
    """``python worker.py`` as a real subprocess, for kill and signal tests."""

    def __init__(self, env: Mapping[str, str], *queues: str, log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.args = [sys.executable, str(PROJECT_ROOT / "worker.py")]
        for q in queues:
            self.args += ["--task-queue", q]
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=PROJECT_ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, timeout: float = 20.0) -> None:
        async def read() -> str:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return self.output()

        await eventually(read, lambda text: "worker.ready" in text, timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        proc = self.proc
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed")
    return path


class RedisServer:
    """A private redis-server on a free port (never the machine's own), for outage tests."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside a protobuf message (repeated and map fields too)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if isinstance(v, Message)]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            yield from payloads_in(item)
