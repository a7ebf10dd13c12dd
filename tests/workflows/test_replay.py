"""Recorded histories must replay on the current workflow code (guards against
non-deterministic changes; change live code paths with ``workflow.patched``).

Replays run with the project's data converter, in the sandbox the workers use and in the
strict one (workflow modules re-imported per run), so a non-deterministic call in workflow
code fails here even though production passes the workflows package through. Histories
are recorded by the workflow tests with RECORD_HISTORIES=1 (tests/workflows/conftest.py);
the oldest ones predate encrypted histories and stand for jobs in flight at an upgrade.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support import HISTORIES_DIR, project_converter
from worker import workflow_runner
from workflows.registry import all_workflows

pytestmark = pytest.mark.workflow

HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))


@pytest.fixture(params=HISTORIES, ids=lambda p: p.stem)
def history(request: pytest.FixtureRequest) -> WorkflowHistory:
    path: Path = request.param
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("strict", [True, False], ids=["strict-sandbox", "worker-sandbox"])
async def test_recorded_history_replays(history: WorkflowHistory, strict: bool):
    replayer = Replayer(
        workflows=all_workflows(),
        data_converter=project_converter(),
        workflow_runner=workflow_runner(strict=strict),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_every_workflow_has_a_recorded_history():
    recorded = {
        json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"][
            "workflowType"
        ]["name"]
        for path in HISTORIES
    }
    names = {getattr(wf, "__temporal_workflow_definition").name for wf in all_workflows()}
    assert names <= recorded, f"no recorded history of {sorted(names - recorded)}"
