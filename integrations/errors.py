"""The one place that decides whether a provider's answer is worth retrying.

Provider clients raise these exceptions; activities turn them into Temporal failures at
their edge (``activities.errors.to_application_error``): transient ones are retried with the
queue's backoff, ``Retry-After`` honoured; permanent ones fail the job. The error type names
come from ``core.errors``. Nothing here knows about Temporal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from core.errors import (
    AUTHENTICATION_FAILED,
    INVALID_CONFIGURATION,
    PERMISSION_DENIED,
    PROVIDER_UNAVAILABLE,
    RATE_LIMITED,
    REAUTH_REQUIRED,
    REQUEST_REJECTED,
    RESOURCE_NOT_FOUND,
    SPEND_LIMIT_REACHED,
)

# A server asking for more than this is treated as asking for this.
MAX_RETRY_AFTER_S = 3600.0


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


class ConnectFailed(TransientProviderError):
    """No connection to the provider: the request never left, so it did nothing."""


def request_was_refused(exc: ProviderError) -> bool:
    """Whether the provider certainly did not act on the request: it answered with a client
    error (4xx but 408) or 503 (unavailable, refused before any work), or the request never
    left (no connection, no free connection). Another 5xx, a 408 or a read timeout leaves it
    unknown: a gateway may answer so after the provider acted."""
    if isinstance(exc, ConnectFailed):
        return True
    code = exc.status_code
    return code is not None and ((400 <= code < 500 and code != 408) or code == 503)


async def send(
    http: httpx.AsyncClient, provider: str, operation: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request; transport failures become transient errors that name only the operation
    (never the URL's query, the headers or the body)."""
    try:
        return await http.request(method, url, **kwargs)
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # No connection was made (or none was free): the request never left.
        raise ConnectFailed(provider, f"{operation} failed: {type(exc).__name__}") from None
    except httpx.TimeoutException:
        raise TransientProviderError(provider, f"{operation} timed out") from None
    except httpx.ConnectError as exc:
        raise ConnectFailed(provider, f"{operation} failed: {type(exc).__name__}") from None
    except httpx.TransportError as exc:
        raise TransientProviderError(
            provider, f"{operation} failed: {type(exc).__name__}"
        ) from None


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


__all__ = [
    "AUTHENTICATION_FAILED",
    "INVALID_CONFIGURATION",
    "PERMISSION_DENIED",
    "PROVIDER_UNAVAILABLE",
    "RATE_LIMITED",
    "REAUTH_REQUIRED",
    "REQUEST_REJECTED",
    "RESOURCE_NOT_FOUND",
    "SPEND_LIMIT_REACHED",
    "ConnectFailed",
    "CursorExpired",
    "PermanentProviderError",
    "ProviderError",
    "ReauthRequired",
    "TransientProviderError",
    "parse_retry_after",
    "request_was_refused",
    "send",
    "status_error",
]
