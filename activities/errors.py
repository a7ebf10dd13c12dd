"""The activity edge: provider errors become Temporal failures here, and only here."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from integrations.errors import ProviderError


def to_application_error(exc: ProviderError) -> ApplicationError:
    """The Temporal failure for a provider error: permanent ones are non-retryable, and a
    transient one waits at least what the provider's ``Retry-After`` asked for."""
    return ApplicationError(
        str(exc),
        type=exc.error_type,
        non_retryable=not exc.retryable,
        next_retry_delay=(
            timedelta(seconds=exc.retry_after) if exc.retryable and exc.retry_after else None
        ),
    )
