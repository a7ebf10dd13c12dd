"""The only module that builds Temporal retry policies and activity timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from core.errors import NON_RETRYABLE_ERROR_TYPES
    from core.runs import RetrySettings, RunOptions


class ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


def retry_policy(retry: RetrySettings) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=retry.initial_interval_ms),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=timedelta(milliseconds=retry.maximum_interval_ms),
        maximum_attempts=retry.maximum_attempts,
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


def job_activity(run: RunOptions) -> ActivityOptions:
    """Options for a job's main activity, from the queue's catalog entry."""
    return ActivityOptions(
        start_to_close_timeout=timedelta(milliseconds=run.start_to_close_ms),
        heartbeat_timeout=(timedelta(milliseconds=run.heartbeat_ms) if run.heartbeat_ms else None),
        retry_policy=retry_policy(run.retry),
        # Cancelling a job waits for the activity to clean up (it sees the cancel through
        # its heartbeat); cancel_job terminates the job if that takes longer than the grace.
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )
