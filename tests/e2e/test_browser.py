"""Browser workflows end to end: JobQueue, real workers (in-process and ``worker.py``
processes), the dev server, PostgreSQL, Redis, real headless Chromium driven by Playwright,
the fixture website and the Browserbase emulator. A multi-step run with extraction, context
and a screenshot; a failing step kept with the steps before it, then a manual retry from
step 1 in a fresh browser; a cancel that closes the browser; a SIGKILLed worker's browser
reaped by the next worker; never more than three sessions across two worker processes; bad
definitions refused with the step named."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.base import JobInfo
from client.queue import JobQueue
from core.errors import InvalidArguments, InvalidJobData, NotFound
from core.queues import QueueName
from core.temporal import data_converter
from integrations.browsers import chromium_processes
from tests.e2e.conftest import Browsers
from tests.support import WorkerProcess, eventually, payloads_in, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration
PASSWORD = "correct-horse-battery-staple"


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def finished(queue: JobQueue, job_id: str, timeout: float = 60) -> JobInfo:
    return await eventually(
        lambda: queue.get_job(job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
    )


async def no_browsers_left(profiles_dir: str, timeout: float = 10) -> None:
    async def count() -> list[int]:
        return chromium_processes(profiles_dir)

    await eventually(count, lambda pids: pids == [], timeout=timeout)


def login_steps() -> list[dict[str, Any]]:
    return [
        {"action": "navigate", "url": "{{site}}/login"},
        {"action": "fill", "selector": "#name", "value": "{{name}}"},
        {"action": "fill", "selector": "#password", "value": "{{password}}"},
        {"action": "click", "selector": "#submit"},
        {"action": "wait_for", "text": "Welcome"},
        {"action": "extract", "selector": "#greeting", "into": "greeting"},
        {"action": "extract", "selector": "#profile", "attribute": "data-plan", "into": "plan"},
        {"action": "navigate", "url": "{{site}}/late"},
        {"action": "wait_for", "selector": "#ready", "timeoutMs": 5000},
        {"action": "screenshot", "fullPage": True},
        {"action": "assert", "text": "Report ready"},
    ]


async def test_a_multi_step_workflow_extracts_fills_in_context_and_takes_a_screenshot(
    browsers: Browsers,
):
    owner = user()
    queue = await JobQueue.connect(browsers.settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "login and report", login_steps())
        async with running_workers(browsers.settings, [QueueName.WORKFLOW]):
            job = await queue.add_job(
                "workflow",
                "workflow_execution",
                {
                    "userId": owner,
                    "workflowId": workflow_id,
                    "context": {"site": browsers.site_url, "name": "Ada"},
                    "secretContext": {"password": PASSWORD},
                },
            )
            info = await finished(queue, job.id)
            assert info.state is JobState.COMPLETED, info.failure_reason
            execution = await queue.get_workflow_execution(
                info.result["execution_id"], user_id=owner
            )
            events = await queue.get_job_events(job.id)
        assert execution["status"] == "completed"
        assert [s["status"] for s in execution["steps"]] == ["succeeded"] * 11
        assert [s["index"] for s in execution["steps"]] == list(range(11))
        assert execution["variables"] == {"greeting": "Welcome, Ada", "plan": "pro"}
        assert execution["steps"][7]["output"] == f"{browsers.site_url}/late"
        shot = execution["steps"][9]["screenshot"]
        png = await queue.get_screenshot(shot, user_id=owner)
        assert png.startswith(b"\x89PNG")
        assert info.result["steps_succeeded"] == 11 and info.progress == 100
        progress = [e for _, e in events if e.get("event") == "progress" and "step" in e]
        assert [int(e["step"]) for e in progress] == list(range(11))
        assert [int(e["progress"]) for e in progress] == sorted(
            int(e["progress"]) for e in progress
        )
        # Another user sees nothing of it.
        with pytest.raises(NotFound, match="no workflow execution"):
            await queue.get_workflow_execution(info.result["execution_id"], user_id=user())
        await no_browsers_left(browsers.profiles_dir)
        # The secret placeholder value reached the form, never the history.
        assert browsers.site.forms[-1]["password"] == PASSWORD
        codec = data_converter(browsers.settings).payload_codec
        assert codec is not None
        history = await queue.client.get_workflow_handle(job.id).fetch_history()
        decoded = await codec.decode([p for e in history.events for p in payloads_in(e)])
        assert any(b"Ada" in p.data for p in decoded)  # the check sees the plain context
        assert not any(PASSWORD.encode() in p.data for p in decoded)
    finally:
        await queue.close()


async def test_a_failed_step_keeps_the_steps_before_it_and_a_manual_retry_starts_afresh(
    browsers: Browsers,
):
    owner = user()
    steps = [
        {"action": "navigate", "url": "{{site}}/table"},
        {"action": "extract", "selector": "#total", "into": "total"},
        {"action": "assert", "selector": "#banner", "timeoutMs": 300},
        {"action": "extract", "selector": "#banner", "into": "banner"},
    ]
    queue = await JobQueue.connect(browsers.settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "banner check", steps)
        async with running_workers(browsers.settings, [QueueName.WORKFLOW]):
            job = await queue.add_job(
                "workflow",
                "workflow_execution",
                {
                    "userId": owner,
                    "workflowId": workflow_id,
                    "context": {"site": browsers.site_url},
                },
            )
            failed = await finished(queue, job.id)
            assert failed.state is JobState.FAILED
            assert failed.attempts_made == 3  # FR-034: 3 attempts
            assert "step 2 (assert) failed" in (failed.failure_reason or "")
            assert browsers.site.hits["/table"] == 3  # each attempt from step 1
            executions = await queue.list_workflow_executions(job.id, user_id=owner)
            first = await queue.get_workflow_execution(executions[0], user_id=owner)
            assert (first["status"], first["failed_step"], first["attempt"]) == ("failed", 2, 3)
            assert [s["status"] for s in first["steps"]] == ["succeeded", "succeeded", "failed"]
            assert "assertion failed" in first["steps"][2]["error"]
            assert first["variables"] == {"total": "3 products"}

            browsers.site.banner = "Winter sale"
            await queue.retry_job(job.id)
            retried = await eventually(
                lambda: queue.get_job(job.id),
                lambda info: info.state is JobState.COMPLETED,
                timeout=60,
            )
        second = await queue.get_workflow_execution(retried.result["execution_id"], user_id=owner)
        assert second["execution_id"] != first["execution_id"]
        assert [s["status"] for s in second["steps"]] == ["succeeded"] * 4
        assert second["variables"] == {"total": "3 products", "banner": "Winter sale"}
        assert browsers.site.hits["/table"] == 4
        await no_browsers_left(browsers.profiles_dir)
    finally:
        await queue.close()


async def test_a_cancelled_run_closes_its_browser(browsers: Browsers):
    owner = user()
    steps = [{"action": "navigate", "url": "{{site}}/slow", "timeoutMs": 60000}]
    queue = await JobQueue.connect(browsers.settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "slow page", steps)
        async with running_workers(browsers.settings, [QueueName.WORKFLOW]):
            job = await queue.add_job(
                "workflow",
                "workflow_execution",
                {
                    "userId": owner,
                    "workflowId": workflow_id,
                    "context": {"site": browsers.site_url},
                },
            )
            await eventually(_read(lambda: browsers.site.hits["/slow"]), lambda n: n >= 1)
            assert chromium_processes(browsers.profiles_dir)
            await queue.cancel_job(job.id)
            # The cancel reaches the attempt with its next heartbeat (throttled by the SDK).
            await no_browsers_left(browsers.profiles_dir, timeout=40)
            execution_ids = await eventually(
                lambda: queue.list_workflow_executions(job.id, user_id=owner), bool
            )
            cancelled = await eventually(
                lambda: queue.get_workflow_execution(execution_ids[0], user_id=owner),
                lambda e: e["status"] == "cancelled",
                timeout=40,
            )
        assert cancelled["steps"] == []
    finally:
        await queue.close()


def _read(value: Any) -> Any:
    async def probe() -> Any:
        return value()

    return probe


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


async def spawn(
    processes: list[WorkerProcess], env: dict[str, str], tmp_path: Path
) -> WorkerProcess:
    process = WorkerProcess(env, "workflow", log_dir=tmp_path)
    process.start()
    processes.append(process)
    await process.wait_ready(timeout=60)
    return process


async def test_the_browser_of_a_sigkilled_worker_is_reaped_by_the_next_worker(
    browsers: Browsers, processes: list[WorkerProcess], tmp_path: Path
):
    owner = user()
    steps = [{"action": "navigate", "url": "{{site}}/slow", "timeoutMs": 60000}]
    queue = await JobQueue.connect(browsers.settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "slow page", steps)
        doomed = await spawn(processes, browsers.env, tmp_path)
        job = await queue.add_job(
            "workflow",
            "workflow_execution",
            {"userId": owner, "workflowId": workflow_id, "context": {"site": browsers.site_url}},
        )
        await eventually(_read(lambda: browsers.site.hits["/slow"]), lambda n: n >= 1)
        orphans = set(chromium_processes(browsers.profiles_dir))
        assert orphans
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        assert await doomed.wait_exit() == -signal.SIGKILL
        assert orphans & set(chromium_processes(browsers.profiles_dir))  # left running
        await spawn(processes, browsers.env, tmp_path)
        assert not orphans & set(chromium_processes(browsers.profiles_dir))
        assert not any(
            name.startswith(f"bbjobs-browser-{doomed.proc.pid}.")
            for name in os.listdir(browsers.profiles_dir)
        )
        await queue.cancel_job(job.id)
        await no_browsers_left(browsers.profiles_dir, timeout=40)
    finally:
        await queue.close()


async def test_never_more_than_three_browser_sessions_across_two_workers(
    browsers: Browsers, processes: list[WorkerProcess], tmp_path: Path
):
    owner = user()
    browsers.site.late_ms = 600
    steps = [
        {"action": "navigate", "url": "{{site}}/late"},
        {"action": "wait_for", "selector": "#ready"},
    ]
    queue = await JobQueue.connect(browsers.remote_settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "late report", steps)
        await asyncio.gather(
            spawn(processes, browsers.remote_env, tmp_path),
            spawn(processes, browsers.remote_env, tmp_path),
        )
        jobs = [
            await queue.add_job(
                "workflow",
                "workflow_execution",
                {
                    "userId": owner,
                    "workflowId": workflow_id,
                    "context": {"site": browsers.site_url},
                },
            )
            for _ in range(8)
        ]
        infos = [await finished(queue, job.id, timeout=120) for job in jobs]
        assert all(info.state is JobState.COMPLETED for info in infos)
        # The limit was reached and never passed: the emulator never had to refuse one.
        assert browsers.browserbase.peak_running == 3
        assert browsers.browserbase.created == 8 == browsers.browserbase.released
        assert all(w.output().count("browser.session_created") >= 1 for w in processes)
        assert not browsers.browserbase.running()
    finally:
        await queue.close()


async def test_bad_definitions_and_jobs_are_refused_with_the_step_named(browsers: Browsers):
    owner = user()
    queue = await JobQueue.connect(browsers.settings)
    try:
        with pytest.raises(InvalidArguments) as refused:
            await queue.save_browser_workflow(
                owner,
                "broken",
                [
                    {"action": "navigate", "url": "https://example.com"},
                    {"action": "click"},
                    {"action": "teleport", "selector": "#x"},
                    {"action": "wait_for", "selector": "#a", "text": "b"},
                    {"action": "extract", "selector": "#a", "into": "no spaces"},
                    {"action": "navigate", "url": "ftp://example.com"},
                ],
            )
        problems = refused.value.problems
        assert set(problems) == {
            "steps[1].selector",
            "steps[2]",
            "steps[3]",
            "steps[4].into",
            "steps[5].url",
        }
        assert "unknown action" in problems["steps[2]"]
        assert "exactly one of selector and text" in problems["steps[3]"]

        workflow_id = await queue.save_browser_workflow(
            owner, "needs context", [{"action": "navigate", "url": "{{site}}/login"}]
        )
        with pytest.raises(InvalidJobData) as missing:
            await queue.add_job(
                "workflow", "workflow_execution", {"userId": owner, "workflowId": workflow_id}
            )
        assert "{{site}}" in missing.value.problems["steps[0].url"]
        with pytest.raises(InvalidJobData) as not_a_url:
            await queue.add_job(
                "workflow",
                "workflow_execution",
                {"userId": owner, "workflowId": workflow_id, "context": {"site": "nowhere"}},
            )
        assert "http or https" in not_a_url.value.problems["steps[0].url"]
        with pytest.raises(InvalidJobData) as someone_elses:
            await queue.add_job(
                "workflow",
                "workflow_execution",
                {"userId": user(), "workflowId": workflow_id, "context": {"site": "http://x"}},
            )
        assert "workflow_id" in someone_elses.value.problems
        stats = await queue.get_queue_stats("workflow")
        assert stats["waiting"] == 0 and stats["active"] == 0
    finally:
        await queue.close()


async def test_a_worker_stopped_mid_run_closes_its_browser_before_it_exits(
    browsers: Browsers, processes: list[WorkerProcess], tmp_path: Path
):
    owner = user()
    steps = [{"action": "navigate", "url": "{{site}}/slow", "timeoutMs": 60000}]
    queue = await JobQueue.connect(browsers.settings)
    try:
        workflow_id = await queue.save_browser_workflow(owner, "slow page", steps)
        worker = await spawn(
            processes, {**browsers.env, "WORKER_SHUTDOWN_GRACE_SECONDS": "2"}, tmp_path
        )
        job = await queue.add_job(
            "workflow",
            "workflow_execution",
            {"userId": owner, "workflowId": workflow_id, "context": {"site": browsers.site_url}},
        )
        await eventually(_read(lambda: browsers.site.hits["/slow"]), lambda n: n >= 1)
        assert chromium_processes(browsers.profiles_dir)
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0
        assert chromium_processes(browsers.profiles_dir) == []
        # Not the job's end: another worker takes the attempt up again.
        info = await queue.get_job(job.id)
        assert info.state is not JobState.FAILED
        executions = await queue.list_workflow_executions(job.id, user_id=owner)
        assert (await queue.get_workflow_execution(executions[0]))["status"] == "running"
        await queue.cancel_job(job.id)
    finally:
        await queue.close()
