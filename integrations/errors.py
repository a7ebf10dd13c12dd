"""The one place that decides whether a provider's answer is worth retrying.

Provider clients raise these exceptions; activities turn them into Temporal failures with
``to_application_error`` (transient: retried with the queue's backoff, ``Retry-After``
honoured; permanent: ``non_retryable`` with a type name from ``core.errors``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

from core.errors import AUTHENTICATION_FAILED, INVALID_CONFIGURATION, RESOURCE_NOT_FOUND

# A server asking for more than this is treated as asking for this.
MAX_RETRY_AFTER_S = 3600.0

RATE_LIMITED = "RateLimited"  # transient
PROVIDER_UNAVAILABLE = "ProviderUnavailable"  # transient
REAUTH_REQUIRED = "ReauthRequired"  # permanent: the user must connect the account again
PERMISSION_DENIED = "PermissionDenied"  # permanent
REQUEST_REJECTED = "RequestRejected"  # permanent
SPEND_LIMIT_REACHED = "SpendLimitReached"  # permanent until someone raises the limit


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at 1 hour."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


class ProviderError(Exception):
    """A failed call to an external provider; ``error_type`` names it for Temporal."""

    retryable: bool = False
    error_type: str = REQUEST_REJECTED

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        error_type: str | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        if error_type is not None:
            self.error_type = error_type
        status = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{provider}: {message}{status}")


class TransientProviderError(ProviderError):
    """Timeouts, connection errors, 408/429/5xx and provider rate limits: retry later."""

    retryable = True
    error_type = PROVIDER_UNAVAILABLE


class PermanentProviderError(ProviderError):
    """Retrying cannot help: bad request, missing resource, no permission."""


class ReauthRequired(PermanentProviderError):
    """The refresh token is dead (``invalid_grant``): mark the account and stop."""

    error_type = REAUTH_REQUIRED


class CursorExpired(Exception):
    """An incremental-sync cursor the provider no longer knows (Gmail 404, Graph 410)."""


def status_error(
    provider: str, status_code: int, message: str, retry_after_header: str | None = None
) -> ProviderError:
    """The default classification of an HTTP error status (providers refine it first)."""
    retry_after = parse_retry_after(retry_after_header)
    if status_code == 429:
        return TransientProviderError(
            provider,
            message,
            status_code=status_code,
            retry_after=retry_after,
            error_type=RATE_LIMITED,
        )
    if status_code in (408, 425) or status_code >= 500:
        return TransientProviderError(
            provider, message, status_code=status_code, retry_after=retry_after
        )
    if status_code == 401:
        return PermanentProviderError(
            provider, message, status_code=status_code, error_type=AUTHENTICATION_FAILED
        )
    if status_code == 403:
        return PermanentProviderError(
            provider, message, status_code=status_code, error_type=PERMISSION_DENIED
        )
    if status_code == 404:
        return PermanentProviderError(
            provider, message, status_code=status_code, error_type=RESOURCE_NOT_FOUND
        )
    return PermanentProviderError(provider, message, status_code=status_code)


def to_application_error(exc: ProviderError) -> ApplicationError:
    """The Temporal failure for a provider error, raised at the activity edge."""
    return ApplicationError(
        str(exc),
        type=exc.error_type,
        non_retryable=not exc.retryable,
        next_retry_delay=(
            timedelta(seconds=exc.retry_after) if exc.retryable and exc.retry_after else None
        ),
    )


__all__ = [
    "AUTHENTICATION_FAILED",
    "INVALID_CONFIGURATION",
    "RESOURCE_NOT_FOUND",
    "CursorExpired",
    "PermanentProviderError",
    "ProviderError",
    "ReauthRequired",
    "TransientProviderError",
    "parse_retry_after",
    "status_error",
    "to_application_error",
]
