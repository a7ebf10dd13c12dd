"""The shared classification of provider errors and its mapping onto Temporal failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.errors import to_application_error
from core.errors import AUTHENTICATION_FAILED, NON_RETRYABLE_ERROR_TYPES, RESOURCE_NOT_FOUND
from core.runs import RetrySettings
from integrations.errors import (
    PERMISSION_DENIED,
    RATE_LIMITED,
    REAUTH_REQUIRED,
    ReauthRequired,
    TransientProviderError,
    status_error,
)
from workflows.policies import retry_policy


@pytest.mark.parametrize(
    ("status", "retryable", "error_type"),
    [
        (408, True, "ProviderUnavailable"),
        (425, True, "ProviderUnavailable"),
        (429, True, RATE_LIMITED),
        (500, True, "ProviderUnavailable"),
        (503, True, "ProviderUnavailable"),
        (400, False, "RequestRejected"),
        (401, False, AUTHENTICATION_FAILED),
        (403, False, PERMISSION_DENIED),
        (404, False, RESOURCE_NOT_FOUND),
        (422, False, "RequestRejected"),
    ],
)
def test_status_classification(status: int, retryable: bool, error_type: str):
    error = status_error("gmail", status, "boom")
    assert error.retryable is retryable
    assert error.error_type == error_type
    failure = to_application_error(error)
    assert failure.non_retryable is (not retryable)
    assert failure.type == error_type


def test_retry_after_becomes_the_next_retry_delay():
    failure = to_application_error(status_error("graph", 429, "slow down", "7"))
    assert failure.next_retry_delay == timedelta(seconds=7)
    assert to_application_error(status_error("graph", 503, "down")).next_retry_delay is None


def test_reauth_is_permanent():
    failure = to_application_error(ReauthRequired("google", "invalid_grant"))
    assert failure.non_retryable and failure.type == REAUTH_REQUIRED


def test_transient_error_types_are_not_in_the_non_retryable_policy_list():
    policy = retry_policy(
        RetrySettings(
            maximum_attempts=3,
            initial_interval_ms=1000,
            backoff_coefficient=2,
            maximum_interval_ms=10_000,
        )
    )
    assert TransientProviderError.error_type not in (policy.non_retryable_error_types or [])
    assert RATE_LIMITED not in NON_RETRYABLE_ERROR_TYPES
