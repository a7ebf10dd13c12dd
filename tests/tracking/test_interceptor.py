"""When the tracking interceptor expects a retry, and how failure chains read in job records."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    RetryState,
)
from temporalio.testing import ActivityEnvironment

from core.failures import failure_reason
from tracking.interceptor import next_retry_delay

POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=3.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=["DeliveryRejected", "KeyError"],
)


def _info(attempt: int = 1, policy: RetryPolicy | None = POLICY) -> activity.Info:
    return dataclasses.replace(ActivityEnvironment().info, attempt=attempt, retry_policy=policy)


def test_non_retryable_application_error_is_not_retried() -> None:
    exc = ApplicationError("gone", type="Transient", non_retryable=True)
    assert next_retry_delay(exc, _info()) is None


@pytest.mark.parametrize(
    "exc",
    [ApplicationError("rejected", type="DeliveryRejected"), KeyError("missing")],
)
def test_error_types_listed_by_the_policy_are_not_retried(exc: BaseException) -> None:
    assert next_retry_delay(exc, _info()) is None


def test_application_error_without_a_type_is_judged_by_its_class_name() -> None:
    policy = dataclasses.replace(POLICY, non_retryable_error_types=["ApplicationError"])
    assert next_retry_delay(ApplicationError("x"), _info(policy=policy)) is None
    assert next_retry_delay(ApplicationError("x", type="Other"), _info(policy=policy)) == (
        timedelta(seconds=2)
    )


def test_last_attempt_is_not_retried() -> None:
    assert next_retry_delay(ValueError("x"), _info(attempt=5)) is not None
    assert next_retry_delay(ValueError("x"), _info(attempt=6)) is None
    assert next_retry_delay(ValueError("x"), _info(attempt=7)) is None


def test_next_retry_delay_from_the_error_is_honoured() -> None:
    exc = ApplicationError("slow down", type="RateLimited", next_retry_delay=timedelta(minutes=7))
    # Above the policy's maximum interval: the server honours it as given.
    assert next_retry_delay(exc, _info(attempt=2)) == timedelta(minutes=7)


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 2), (2, 6), (3, 18), (4, 54), (5, 60)],
)
def test_exponential_backoff_capped_at_the_maximum_interval(attempt: int, seconds: int) -> None:
    assert next_retry_delay(RuntimeError("x"), _info(attempt=attempt)) == timedelta(seconds=seconds)


def test_unlimited_attempts_keep_retrying_at_the_cap() -> None:
    policy = dataclasses.replace(POLICY, maximum_attempts=0)
    assert next_retry_delay(RuntimeError("x"), _info(attempt=12, policy=policy)) == timedelta(
        seconds=60
    )


def test_late_attempts_do_not_overflow() -> None:
    policy = dataclasses.replace(POLICY, maximum_attempts=0)
    assert next_retry_delay(RuntimeError("x"), _info(attempt=40, policy=policy)) == timedelta(
        seconds=60
    )


def test_without_maximum_interval_the_cap_is_100_initial_intervals() -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0)
    assert next_retry_delay(RuntimeError("x"), _info(attempt=3, policy=policy)) == timedelta(
        seconds=4
    )
    assert next_retry_delay(RuntimeError("x"), _info(attempt=20, policy=policy)) == timedelta(
        seconds=100
    )


def test_without_a_policy_a_retry_is_assumed() -> None:
    assert next_retry_delay(RuntimeError("x"), _info(policy=None)) == timedelta(seconds=1)
    exc = ApplicationError("x", non_retryable=True)
    assert next_retry_delay(exc, _info(policy=None)) is None


async def test_cancellation_is_a_retry_only_when_the_worker_shuts_down() -> None:
    def delay() -> timedelta | None:
        return next_retry_delay(asyncio.CancelledError(), activity.info())

    env = ActivityEnvironment()
    assert env.run(delay) is None
    env.worker_shutdown()
    assert env.run(delay) == timedelta(0)


# --- failure_reason -------------------------------------------------------------------------


def _activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker-1",
        activity_type="deliver_webhook",
        activity_id="1",
        retry_state=RetryState.MAXIMUM_ATTEMPTS_REACHED,
    )
    error.__cause__ = cause
    return error


def _child_error(cause: BaseException) -> ChildWorkflowError:
    error = ChildWorkflowError(
        "Child Workflow execution failed",
        namespace="default",
        workflow_id="child",
        run_id="run",
        workflow_type="webhook-delivery",
        initiated_event_id=1,
        started_event_id=2,
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = cause
    return error


def test_failure_reason_reads_the_innermost_application_error() -> None:
    app = ApplicationError("HTTP 410: gone", type="DeliveryRejected", non_retryable=True)
    assert failure_reason(_activity_error(app)) == "DeliveryRejected: HTTP 410: gone"
    assert failure_reason(_child_error(_activity_error(app))) == "DeliveryRejected: HTTP 410: gone"


def test_failure_reason_stops_at_the_first_non_wrapper() -> None:
    inner = ApplicationError("root cause", type="Inner")
    outer = ApplicationError("wrapped", type="Outer")
    outer.__cause__ = inner
    assert failure_reason(_activity_error(outer)) == "Outer: wrapped"


def test_failure_reason_of_an_untyped_or_plain_error() -> None:
    assert failure_reason(_activity_error(ApplicationError("no type"))) == "no type"
    assert failure_reason(ValueError("bad value")) == "bad value"
    assert failure_reason(ValueError()) == "ValueError"
    # A wrapper without a cause is reported as itself.
    assert failure_reason(_activity_error(None)) == "Activity task failed"  # type: ignore[arg-type]


def test_failure_reason_is_redacted_and_bounded() -> None:
    app = ApplicationError(f"no mailbox for jane@example.com {'x' * 600}", type="NotFound")
    reason = failure_reason(_activity_error(app))
    assert reason.startswith("NotFound: no mailbox for [email] ")
    assert "jane@example.com" not in reason
    assert len(reason) == 500


@pytest.mark.parametrize(
    "exc",
    [
        asyncio.CancelledError(),
        CancelledError("cancelled by user"),
        _activity_error(CancelledError("Activity cancelled")),
        _child_error(_activity_error(CancelledError("Activity cancelled"))),
    ],
)
def test_cancellation_reads_cancelled(exc: BaseException) -> None:
    assert failure_reason(exc) == "cancelled"
