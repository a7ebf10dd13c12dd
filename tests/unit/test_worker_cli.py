"""worker.py refuses bad configuration and arguments before touching anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.queues import QueueName
from worker import parse_queues

ROOT = Path(__file__).resolve().parents[2]


def run_worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_variable_is_named_and_nothing_starts():
    done = run_worker("--task-queue", "webhooks", REDIS_URL="http://cache:6379")
    assert done.returncode == 2
    assert "REDIS_URL" in done.stderr and "redis://" in done.stderr
    assert "worker.ready" not in done.stderr


def test_bad_queue_override_is_named():
    done = run_worker("--all", QUEUE_EMAIL_CONCURRENCY="many")
    assert done.returncode == 2
    assert "QUEUE_EMAIL_CONCURRENCY" in done.stderr


def test_unknown_queue_is_refused():
    done = run_worker("--task-queue", "mail")
    assert done.returncode == 2
    assert "invalid choice: 'mail'" in done.stderr


def test_unreachable_temporal_exits_non_zero():
    done = run_worker("--task-queue", "webhooks", TEMPORAL_ADDRESS="127.0.0.1:1")
    assert done.returncode == 1
    assert "worker.start_failed" in done.stderr


def test_queue_selection():
    assert parse_queues(["--all"]) == list(QueueName)
    assert parse_queues(["--task-queue", "email", "--task-queue", "email"]) == [QueueName.EMAIL]
    with pytest.raises(SystemExit):
        parse_queues([])
