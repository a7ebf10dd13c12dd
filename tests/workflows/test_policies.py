"""The retry schedule of every queue, proved exactly on the time-skipping server."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.catalog import kinds_of
from core.errors import NON_RETRYABLE_ERROR_TYPES
from core.jobs import JobType
from core.queues import DEFAULT_CATALOG, QueueName, QueueSpec
from core.runs import RunOptions, run_options
from tests.workflows.conftest import assert_waits
from workflows import policies

pytestmark = pytest.mark.workflow


class ProbeInput(BaseModel):
    run: RunOptions
    error_type: str | None = None
    non_retryable: bool = False


class AttemptLog:
    def __init__(self) -> None:
        self.scheduled: list[datetime] = []


ATTEMPTS = AttemptLog()


@activity.defn(name="probe_fails")
async def probe_fails(input: ProbeInput) -> None:
    ATTEMPTS.scheduled.append(activity.info().started_time)
    raise ApplicationError(
        "receiver unavailable", type=input.error_type, non_retryable=input.non_retryable
    )


@workflow.defn(name="retry-probe")
class RetryProbe:
    @workflow.run
    async def run(self, input: ProbeInput) -> None:
        await workflow.execute_activity(probe_fails, input, **policies.http_call(input.run))


def expected_gaps(spec: QueueSpec, attempts: int) -> list[float]:
    gaps = []
    for n in range(1, attempts):
        delay = spec.initial_backoff * (spec.backoff_coefficient ** (n - 1))
        gaps.append(min(delay, spec.max_backoff).total_seconds())
    return gaps


async def run_probe(env: WorkflowEnvironment, input: ProbeInput) -> WorkflowFailureError:
    ATTEMPTS.scheduled.clear()
    queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[RetryProbe],
        activities=[probe_fails],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        with pytest.raises(WorkflowFailureError) as failure:
            await env.client.execute_workflow(
                RetryProbe.run, input, id=f"probe-{uuid.uuid4()}", task_queue=queue
            )
    return failure.value


def job_type_of(spec: QueueSpec) -> JobType:
    return kinds_of(spec.name)[0].job_type


@pytest.mark.parametrize("queue", list(QueueName), ids=lambda q: q.value)
async def test_queue_retry_schedule_is_exact(time_env: WorkflowEnvironment, queue: QueueName):
    spec = DEFAULT_CATALOG[queue]
    failure = await run_probe(time_env, ProbeInput(run=run_options(spec, job_type_of(spec))))

    assert len(ATTEMPTS.scheduled) == spec.attempts
    assert_waits(ATTEMPTS.scheduled, expected_gaps(spec, spec.attempts))
    # The failure chain names the activity's error type.
    assert isinstance(failure.cause, ActivityError)
    assert isinstance(failure.cause.cause, ApplicationError)
    assert failure.cause.cause.message == "receiver unavailable"


def test_prd_retry_numbers():
    """FR-030..034 and the webhook default of US-008."""
    table = {q: (s.attempts, s.initial_backoff.total_seconds()) for q, s in DEFAULT_CATALOG.items()}
    assert table[QueueName.EMAIL] == (3, 2)
    assert table[QueueName.VOICE] == (2, 5)
    assert table[QueueName.SEO] == (3, 10)
    assert table[QueueName.ENRICHMENT] == (3, 5)
    assert table[QueueName.WORKFLOW] == (3, 2)
    assert table[QueueName.WEBHOOKS] == (5, 2)
    assert all(s.backoff_coefficient == 2 for s in DEFAULT_CATALOG.values())


async def test_job_attempts_override_the_queue(time_env: WorkflowEnvironment):
    spec = DEFAULT_CATALOG[QueueName.WEBHOOKS]
    await run_probe(time_env, ProbeInput(run=run_options(spec, JobType.WEBHOOK_DELIVERY, 2)))
    assert len(ATTEMPTS.scheduled) == 2


@pytest.mark.parametrize("error_type", NON_RETRYABLE_ERROR_TYPES)
async def test_permanent_error_types_never_retry(time_env: WorkflowEnvironment, error_type: str):
    spec = DEFAULT_CATALOG[QueueName.EMAIL]
    failure = await run_probe(
        time_env, ProbeInput(run=run_options(spec, JobType.EMAIL_SYNC), error_type=error_type)
    )
    assert len(ATTEMPTS.scheduled) == 1
    assert isinstance(failure.cause, ActivityError)
    assert isinstance(failure.cause.cause, ApplicationError)
    assert failure.cause.cause.type == error_type


async def test_non_retryable_flag_never_retries(time_env: WorkflowEnvironment):
    spec = DEFAULT_CATALOG[QueueName.VOICE]
    await run_probe(
        time_env, ProbeInput(run=run_options(spec, JobType.VOICE_CALL), non_retryable=True)
    )
    assert len(ATTEMPTS.scheduled) == 1


def test_backoff_is_capped():
    spec = DEFAULT_CATALOG[QueueName.WEBHOOKS]
    long_run = expected_gaps(spec, 20)
    assert max(long_run) == spec.max_backoff.total_seconds()
    assert long_run[:4] == [2, 4, 8, 16]
    assert timedelta(seconds=sum(long_run[:4])) == timedelta(seconds=30)
