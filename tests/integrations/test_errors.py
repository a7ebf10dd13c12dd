"""The one classification of provider errors: retryable or not, and under which type name."""

from __future__ import annotations

import pytest

from core.errors import (
    AUTHENTICATION_FAILED,
    NON_RETRYABLE_ERROR_TYPES,
    PERMISSION_DENIED,
    RATE_LIMITED,
    RESOURCE_NOT_FOUND,
)
from integrations.errors import ReauthRequired, TransientProviderError, status_error


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
    assert (error_type in NON_RETRYABLE_ERROR_TYPES) is (not retryable)


def test_retry_after_is_kept_in_seconds():
    assert status_error("graph", 429, "slow down", "7").retry_after == 7.0
    assert status_error("graph", 503, "down").retry_after is None


def test_reauth_and_transient_types():
    assert not ReauthRequired("google", "invalid_grant").retryable
    assert TransientProviderError.error_type not in NON_RETRYABLE_ERROR_TYPES
    assert RATE_LIMITED not in NON_RETRYABLE_ERROR_TYPES
