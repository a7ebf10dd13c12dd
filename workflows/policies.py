"""The only module that builds Temporal retry policies, activity timeouts and child-job options.

Presets are named after the failure profile of the step, not after a job. Every preset takes
the job's ``RunOptions``, which carry its queue's retry settings from the catalog (attempts,
initial backoff, coefficient, maximum backoff, with the job's own ``attempts``), so every
step of a job retries on its queue's schedule. A preset with a heartbeat timeout is only for
activities that heartbeat (``activities.heartbeat.auto_heartbeat`` or their own beats); the
workflow tests check it for every activity.

    await workflow.execute_activity_method(Acts.post, PostInput(...), **policies.http_call(job.run))
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from core.errors import NON_RETRYABLE_ERROR_TYPES
    from core.runs import RetrySettings, RunOptions

# A quick HTTP call: the HTTP client times out after WEBHOOK_TIMEOUT_SECONDS (at most 25 s),
# so 30 s bounds an attempt, and an attempt lost with a dead worker is retried after it. No
# heartbeat timeout: it would be one more server timer on every job (about 8 % of the
# server's CPU per webhook job in the benchmark) to notice dead workers sooner. The
# activities still heartbeat (auto_heartbeat), so a cancel reaches a slow call.
HTTP_TIMEOUT = timedelta(seconds=30)
# One LLM request: long generations take a minute or two.
LLM_TIMEOUT = timedelta(minutes=3)
LLM_HEARTBEAT = timedelta(seconds=30)
# One slow provider request (a PageSpeed Insights run takes tens of seconds).
SLOW_CALL_TIMEOUT = timedelta(minutes=3)
SLOW_CALL_HEARTBEAT = timedelta(seconds=30)
# Our own database: a statement that takes longer than this is stuck.
DB_TIMEOUT = timedelta(seconds=30)
# Bookkeeping after a side effect must land: it keeps trying at least this often.
DB_MIN_ATTEMPTS = 10
# A job started by another job (an auto-draft of a mailbox sync).
CHILD_JOB_TIMEOUT = timedelta(hours=1)


class ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


class ChildJobOptions(TypedDict):
    task_queue: str
    execution_timeout: timedelta
    parent_close_policy: ParentClosePolicy
    id_reuse_policy: WorkflowIDReusePolicy


def retry_policy(retry: RetrySettings, *, min_attempts: int = 1) -> RetryPolicy:
    """The queue's exponential backoff, with the permanent error types never retried."""
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=retry.initial_interval_ms),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=timedelta(milliseconds=retry.maximum_interval_ms),
        maximum_attempts=max(retry.maximum_attempts, min_attempts),
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


def _options(
    run: RunOptions, timeout: timedelta, heartbeat: timedelta | None, *, min_attempts: int = 1
) -> ActivityOptions:
    return ActivityOptions(
        start_to_close_timeout=timeout,
        heartbeat_timeout=heartbeat,
        retry_policy=retry_policy(run.retry, min_attempts=min_attempts),
        # Cancelling a job waits for the activity to clean up (it sees the cancel through
        # its heartbeat); cancel_job terminates the job if that takes longer than the grace.
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


def http_call(run: RunOptions) -> ActivityOptions:
    """One outbound HTTP exchange (a webhook POST, a provider API call, a token refresh)."""
    return _options(run, HTTP_TIMEOUT, None)


def llm_call(run: RunOptions) -> ActivityOptions:
    """One request to a language model."""
    return _options(run, LLM_TIMEOUT, LLM_HEARTBEAT)


def slow_call(run: RunOptions) -> ActivityOptions:
    """One provider request that takes tens of seconds (PageSpeed Insights)."""
    return _options(run, SLOW_CALL_TIMEOUT, SLOW_CALL_HEARTBEAT)


def long_step(run: RunOptions) -> ActivityOptions:
    """A long loop that heartbeats its resume point (a mailbox sync's pages, a crawl): the
    queue's catalog bounds it (``start_to_close``, ``heartbeat``)."""
    timeout = timedelta(milliseconds=run.start_to_close_ms)
    heartbeat = timedelta(milliseconds=run.heartbeat_ms) if run.heartbeat_ms else None
    return _options(run, timeout, heartbeat)


def db_step(run: RunOptions) -> ActivityOptions:
    """Writes to our own database only (bookkeeping), no heartbeat; it retries more often
    than the queue's attempts, since giving up would lose the record of work already done."""
    return _options(run, DB_TIMEOUT, None, min_attempts=DB_MIN_ATTEMPTS)


def child_job(run: RunOptions) -> ChildJobOptions:
    """A job started by a running job: on the parent's queue, outliving the parent, and
    started once per id (a closed child's id is not reused while Temporal keeps it)."""
    return ChildJobOptions(
        task_queue=run.queue,
        execution_timeout=CHILD_JOB_TIMEOUT,
        parent_close_policy=ParentClosePolicy.ABANDON,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
