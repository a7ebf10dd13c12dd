"""The activity edge: provider errors as the Temporal failures the retry policy knows."""

from __future__ import annotations

from datetime import timedelta

from activities.errors import to_application_error
from core.errors import NON_RETRYABLE_ERROR_TYPES, REAUTH_REQUIRED
from core.runs import RetrySettings
from integrations.errors import ReauthRequired, status_error
from workflows.policies import retry_policy


def test_permanent_errors_are_non_retryable_under_their_type():
    for status in (400, 401, 403, 404):
        failure = to_application_error(status_error("gmail", status, "boom"))
        assert failure.non_retryable and failure.type in NON_RETRYABLE_ERROR_TYPES
    failure = to_application_error(ReauthRequired("google", "invalid_grant"))
    assert failure.non_retryable and failure.type == REAUTH_REQUIRED


def test_transient_errors_retry_and_honour_retry_after():
    failure = to_application_error(status_error("graph", 429, "slow down", "7"))
    assert not failure.non_retryable
    assert failure.next_retry_delay == timedelta(seconds=7)
    assert to_application_error(status_error("graph", 503, "down")).next_retry_delay is None


def test_the_retry_policy_lists_every_permanent_type():
    policy = retry_policy(
        RetrySettings(
            maximum_attempts=3,
            initial_interval_ms=1000,
            backoff_coefficient=2,
            maximum_interval_ms=10_000,
        )
    )
    assert set(policy.non_retryable_error_types or []) == set(NON_RETRYABLE_ERROR_TYPES)
