"""worker.py refuses bad configuration and arguments before touching anything."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import worker
from core.queues import QueueName
from worker import parse_queues

ROOT = Path(__file__).resolve().parent.parent


def run_worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A database of its own, never the project's var/jobs.db.
    default = Path(tempfile.gettempdir()) / f"bj-worker-cli-{os.getpid()}.db"
    database = env.pop("DATABASE_URL", None) or f"sqlite:///{default}"
    return subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), *args],
        env={**os.environ, "DATABASE_URL": database, **env},
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


def test_unreachable_temporal_exits_non_zero(tmp_path: Path):
    done = run_worker(
        "--task-queue",
        "webhooks",
        TEMPORAL_ADDRESS="127.0.0.1:1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
    )
    assert done.returncode == 1
    assert "worker.start_failed" in done.stderr


def test_schema_behind_with_migrate_on_start_off_names_the_command(tmp_path: Path):
    database = tmp_path / "fresh.db"
    done = run_worker(
        "--task-queue",
        "webhooks",
        DATABASE_URL=f"sqlite:///{database}",
        DB_MIGRATE_ON_START="false",
        TEMPORAL_ADDRESS="127.0.0.1:1",  # never reached: the schema is checked first
    )
    assert done.returncode == 3
    assert "python -m db.migrate" in done.stderr
    assert "empty (no tables)" in done.stderr
    assert "worker.ready" not in done.stderr


SERVED = "email, voice, seo, ads, enrichment, workflow, maintenance, webhooks"


def test_queue_without_job_types_is_nothing_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # Every queue has job types now; a queue whose job types are only declared is refused.
    monkeypatch.setattr(worker, "implemented_queues", lambda: [QueueName.EMAIL])
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'j.db'}")
    assert worker.main(["--task-queue", "seo"]) == worker.EXIT_NOTHING_TO_RUN
    assert "queues with job types: email" in capsys.readouterr().err
    assert not (tmp_path / "j.db").exists()  # refused before touching anything


def test_help_lists_the_queues_with_job_types():
    done = run_worker("--help")
    assert done.returncode == 0
    assert f"queues with job types: {SERVED}" in done.stdout
    assert "``" not in done.stdout
    assert "Exit codes" in done.stdout


def test_queue_selection():
    assert parse_queues(["--all"]) == [
        QueueName.EMAIL,
        QueueName.VOICE,
        QueueName.SEO,
        QueueName.ADS,
        QueueName.ENRICHMENT,
        QueueName.WORKFLOW,
        QueueName.MAINTENANCE,
        QueueName.WEBHOOKS,
    ]
    assert parse_queues(["--task-queue", "email", "--task-queue", "email"]) == [QueueName.EMAIL]
    with pytest.raises(SystemExit):
        parse_queues([])
