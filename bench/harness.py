"""The frame of a product benchmark: a private dev server (SQLite file in a temp dir), a private
PostgreSQL database (migrated), a private Redis key prefix, and clean-up of all of them and
of every child process, whether the run ends, fails or is interrupted."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from temporalio.client import Client

from bench.measure import PROJECT_ROOT, Child, RssSampler, machine_facts, replace_section
from bench.run import clean_up, create_database, log, product_env, wait_polling
from core.logging import configure_logging
from db.migrate import upgrade_database
from devtools.devserver import DevServer, temporal_cli_path

T = TypeVar("T")
Body = Callable[[dict[str, str], Path, list[Child]], Coroutine[Any, Any, T]]


async def start_worker(
    queue: str, env: dict[str, str], tmp: Path, children: list[Child], client: Client
) -> tuple[RssSampler, asyncio.Task[None]]:
    """Start ``worker.py --task-queue <queue>`` and wait until it polls; an RSS sampler of it
    and the task running the sampler (cancel it when the measurement ends)."""
    worker = Child(
        f"{queue}-worker",
        [sys.executable, str(PROJECT_ROOT / "worker.py"), "--task-queue", queue],
        {**os.environ, **env},
        tmp / "worker.log",
    )
    children.append(worker)
    worker.start()
    await wait_polling(client, queue, worker)
    rss = RssSampler(worker.pid)
    return rss, asyncio.create_task(rss.run())


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_isolated(name: str, body: Body[T], *, keep: bool = False) -> T | None:
    """Run ``body(env, tmp, children)`` on private infrastructure; None when interrupted."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix=f"bj{name}bench-"))
    prefix = f"bj{name}bench-{uuid.uuid4().hex[:12]}:"
    children: list[Child] = []
    db_name: str | None = None
    server: DevServer | None = None
    try:
        db_name, db_url = create_database()
        upgrade_database(db_url)
        server = DevServer(
            headless=True, db_filename=str(tmp / "temporal.db"), log_path=tmp / "server.log"
        )
        server.start()
        log(f"dev server on {server.address}")
        env = product_env(server.address, db_url, prefix)
        return asyncio.run(body(env, tmp, children))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; cleaning up")
        return None
    finally:
        clean_up(children, server, db_name, prefix, tmp, keep=keep)


def bench_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    name: str,
    title: str,
    marks: tuple[str, str],
    size_option: str,
    sizes: tuple[int, int],
    body_for: Callable[[int, bool], Body[T]],
    render: Callable[[T, dict[str, str], str], str],
) -> int:
    """The command line every product benchmark shares: ``--quick`` (the second of
    ``sizes``), ``--<size_option> N``, ``--write`` / ``--no-write``, ``--keep``; runs the body on
    private infrastructure, prints its section and puts it into BENCHMARKS.md."""
    full, quick = sizes
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=f"{quick:,} instead of {full:,}")
    parser.add_argument(f"--{size_option}", type=int, dest="size", help=f"default {full:,}")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md even if quick")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    opts = parser.parse_args(argv)
    size = opts.size or (quick if opts.quick else full)
    configure_logging(json_logs=False, level="WARNING")
    facts = machine_facts(temporal_cli_path())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = run_isolated(name, body_for(size, opts.quick), keep=opts.keep)
    if results is None:
        return 130
    section = render(results, facts, when)
    print(section)
    if not opts.no_write and (not opts.quick or opts.write):
        path = PROJECT_ROOT / "BENCHMARKS.md"
        replace_section(path, section, *marks)
        log(f"wrote the {title} section of {path}")
    return 0
