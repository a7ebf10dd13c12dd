"""Browser workflow store on SQLite and PostgreSQL: versions per name, executions whose
attempts start afresh, per-user reads, and the retention purge."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.browser import BrowserWorkflowStore, ExecutionStore, StepOutcome

STEPS = [{"action": "navigate", "url": "https://example.com"}]


async def test_each_save_of_a_name_is_a_new_version_of_one_workflow(
    sessionmaker: async_sessionmaker[AsyncSession],
):
    store = BrowserWorkflowStore(sessionmaker)
    first = await store.save("u-1", "export", STEPS)
    second = await store.save("u-1", "export", [*STEPS, {"action": "screenshot"}])
    other = await store.save("u-1", "import", STEPS)
    theirs = await store.save("u-2", "export", STEPS)
    assert second.workflow_id == first.workflow_id and (first.version, second.version) == (1, 2)
    assert len({first.workflow_id, other.workflow_id, theirs.workflow_id}) == 3
    newest = await store.get(first.workflow_id, user_id="u-1")
    assert newest is not None and newest.version == 2 and len(newest.steps) == 2
    pinned = await store.get(first.workflow_id, user_id="u-1", version=1)
    assert pinned is not None and pinned.steps == STEPS
    assert await store.get(first.workflow_id, user_id="u-2") is None
    assert await store.get(first.workflow_id, user_id="u-1", version=3) is None


async def test_concurrent_saves_of_a_name_take_distinct_versions(
    sessionmaker: async_sessionmaker[AsyncSession],
):
    store = BrowserWorkflowStore(sessionmaker)
    first = await store.save("u-3", "race", STEPS)
    saved = await asyncio.gather(*(store.save("u-3", "race", STEPS) for _ in range(4)))
    assert sorted(s.version for s in saved) == [2, 3, 4, 5]
    assert {s.workflow_id for s in saved} == {first.workflow_id}


async def test_an_attempt_starts_afresh_and_a_finished_run_is_purged_after_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
):
    workflows, executions = BrowserWorkflowStore(sessionmaker), ExecutionStore(sessionmaker)
    saved = await workflows.save("u-1", "run", STEPS)
    await executions.create("exec_1", job_id="job-1", user_id="u-1", workflow=saved, trigger_id="t")
    await executions.create("exec_1", job_id="job-1", user_id="u-1", workflow=saved, trigger_id="t")
    await executions.begin_attempt("exec_1", 1)
    await executions.record_step(
        "exec_1",
        StepOutcome(0, "screenshot", "succeeded", None, None, 12, "shot_1"),
        variables={"a": "1"},
        screenshot=("shot_1", b"\x89PNG..."),
        user_id="u-1",
    )
    await executions.begin_attempt("exec_1", 2)
    await executions.record_step(
        "exec_1", StepOutcome(0, "navigate", "failed", None, "HTTP 500", 30), user_id="u-1"
    )
    await executions.finish("exec_1", "failed", error="step 0 failed", failed_step=0)
    found = await executions.get("exec_1", user_id="u-1")
    assert found is not None
    row, steps = found
    assert (row.status, row.attempt, row.variables, row.failed_step) == ("failed", 2, {}, 0)
    assert [(s.action, s.status, s.error) for s in steps] == [("navigate", "failed", "HTTP 500")]
    assert await executions.screenshot("shot_1") is None  # the first attempt's, dropped
    assert await executions.get("exec_1", user_id="u-2") is None
    await executions.create(
        "exec_2", job_id="job-1", user_id="u-1", workflow=saved, trigger_id=None
    )
    assert await executions.of_job("job-1", user_id="u-1") == ["exec_2", "exec_1"]
    assert await executions.of_job("job-1", user_id="u-2") == []

    assert await executions.purge_finished(utcnow() - timedelta(days=1), 100) == 0
    assert await executions.purge_finished(utcnow() + timedelta(seconds=1), 100) == 1
    assert await executions.get("exec_1") is None and await executions.get("exec_2") is not None
