"""Human-readable failure reasons from Temporal failure chains."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
)

from core.logging import redact_text


def failure_reason(exc: BaseException) -> str:
    """The innermost meaningful message of a failure chain, redacted and bounded."""
    if isinstance(exc, asyncio.CancelledError | CancelledError):
        return "cancelled"
    inner: BaseException = exc
    while isinstance(inner, ActivityError | ChildWorkflowError) and inner.cause is not None:
        inner = inner.cause
    if isinstance(inner, CancelledError):
        return "cancelled"
    message = inner.message if isinstance(inner, FailureError) else str(inner)
    kind = inner.type if isinstance(inner, ApplicationError) and inner.type else None
    text = f"{kind}: {message}" if kind else message
    return redact_text(text)[:500] or type(inner).__name__
