"""The production compose file, its dynamic config and the dev server agree.

The Temporal server ignores unknown dynamic-config keys silently, so drift between
dev and production would only show up as wrong dispatch order; these tests catch it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.devserver import DYNAMIC_CONFIG, DevServer, devserver_args

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WORKER_SERVICES = {
    "worker-email",
    "worker-voice",
    "worker-analysis",
    "worker-enrichment",
    "worker-workflow",
    "worker-maintenance",
}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "temporal-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _task_queues(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--task-queue"]


def test_compose_has_every_service() -> None:
    services = set(_compose()["services"])
    expected = {
        "postgresql",
        "temporal",
        "temporal-ui",
        "temporal-admin-tools",
        "redis",
    }
    assert expected | WORKER_SERVICES <= services


def test_workers_cover_every_queue_exactly_once() -> None:
    from core.queues import QueueName

    services = _compose()["services"]
    queues: list[str] = []
    for name in WORKER_SERVICES:
        queues += _task_queues(services[name]["command"])
    # Each queue in exactly one worker group: a queue served twice would split its
    # concurrency budget, a queue served nowhere would never run.
    assert sorted(queues) == sorted({q.value for q in QueueName})


def test_workers_are_production_shaped() -> None:
    services = _compose()["services"]
    for name in WORKER_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["TEMPORAL_NAMESPACE"] == "default"
        assert env["APP_ENV"] == "production"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["REDIS_URL"].startswith("redis://")
        assert env["PAYLOAD_ENCRYPTION_KEY"] == "${PAYLOAD_ENCRYPTION_KEY:?set it}"
        assert svc["stop_grace_period"] == "60s"
        assert svc["restart"] == "unless-stopped"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["worker-email"]["deploy"]["replicas"] == 2


def test_production_dynamic_config_matches_devserver() -> None:
    services = _compose()["services"]
    env = services["temporal"]["environment"]
    assert env["DYNAMIC_CONFIG_FILE_PATH"] == "config/dynamicconfig/production.yaml"
    raw = yaml.safe_load((DEPLOY / "dynamicconfig" / "production.yaml").read_text())
    production = {}
    for key, entries in raw.items():
        assert len(entries) == 1 and entries[0]["constraints"] == {}, key
        production[key] = entries[0]["value"]
    assert production == DYNAMIC_CONFIG


def test_devserver_args_carry_priority_settings() -> None:
    args = devserver_args(port=17233, ui_port=None, db_filename=None, headless=True)
    values = {
        args[i + 1].partition("=")[0]: json.loads(args[i + 1].partition("=")[2])
        for i, arg in enumerate(args)
        if arg == "--dynamic-config-value"
    }
    assert values == DYNAMIC_CONFIG
    assert values["matching.priorityLevels"] == 10
    assert values["matching.numTaskqueueReadPartitions"] == 1
    assert values["matching.numTaskqueueWritePartitions"] == 1
    assert args[1:3] == ["server", "start-dev"]
    assert "--headless" in args and "--db-filename" not in args
    assert "--sqlite-pragma" not in args  # pragmas only make sense with a db file


def test_devserver_args_with_db_file_and_ui() -> None:
    args = devserver_args(port=17233, ui_port=18233, db_filename="/tmp/t.db")
    assert args[args.index("--ui-port") + 1] == "18233"
    assert args[args.index("--db-filename") + 1] == "/tmp/t.db"
    assert "journal_mode=wal" in args and "synchronous=normal" in args


@pytest.mark.integration
def test_devserver_accepts_queue_pause() -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import RateLimit, TaskQueue
    from temporalio.api.workflowservice.v1 import (
        DescribeTaskQueueRequest,
        UpdateTaskQueueConfigRequest,
    )
    from temporalio.client import Client

    async def pause_and_describe(address: str, task_queue: str) -> Any:
        client = await Client.connect(address)
        # Exactly how the system pauses a queue: activity dispatch rate limit 0.
        await client.workflow_service.update_task_queue_config(
            UpdateTaskQueueConfigRequest(
                namespace="default",
                task_queue=task_queue,
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                update_queue_rate_limit=UpdateTaskQueueConfigRequest.RateLimitUpdate(
                    rate_limit=RateLimit(requests_per_second=0.0), reason="paused"
                ),
            )
        )
        return await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default",
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                report_config=True,
            )
        )

    started = time.monotonic()
    with DevServer(db_filename=None) as server:
        assert server.ui_port is not None and server.pid > 0
        desc = asyncio.run(pause_and_describe(server.address, f"pause-{uuid.uuid4()}"))
    # A rate limit of 0 is proto3's default, so check the field is set, not just 0.
    limit = desc.config.queue_rate_limit
    assert limit.HasField("rate_limit")
    assert limit.rate_limit.requests_per_second == 0.0
    assert limit.metadata.reason == "paused"
    assert time.monotonic() - started < 20
