"""Recorded histories must replay on the current workflow code (guards against
non-deterministic changes; change live code paths with ``workflow.patched``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import workflow_runner
from workflows.registry import all_workflows

pytestmark = pytest.mark.workflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


@pytest.fixture(params=HISTORIES, ids=lambda p: p.stem)
def history(request: pytest.FixtureRequest) -> WorkflowHistory:
    path: Path = request.param
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def test_recorded_history_replays(history: WorkflowHistory):
    replayer = Replayer(
        workflows=all_workflows(),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(strict=True),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_there_are_histories():
    assert HISTORIES, "tests/histories/ holds recorded workflow histories"
