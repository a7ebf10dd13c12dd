"""Error vocabulary shared by the client, workflows and activities.

Permanent failures travel through Temporal as ``ApplicationError(type=<name>, non_retryable=True)``;
the names below are the ``type`` strings. Everything else is transient and retried with backoff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


class JobError(Exception):
    """Base class of errors raised to producers by the client library."""


class InvalidJobData(JobError, ValueError):
    """Job data or options failed validation; ``problems`` maps each bad field to its rule."""

    def __init__(self, job_type: str, problems: dict[str, str]) -> None:
        self.job_type = job_type
        self.problems = problems
        detail = "; ".join(f"{field}: {rule}" for field, rule in problems.items())
        super().__init__(f"invalid data for job type {job_type!r}: {detail}")


class InvalidArguments(JobError, ValueError):
    """Arguments of a client call (other than job data) failed validation; names each field.

    ``kind`` says what they are: "arguments", or "options" for add_job's delay, priority,
    attempts and job_id.
    """

    def __init__(self, operation: str, problems: dict[str, str], kind: str = "arguments") -> None:
        self.operation = operation
        self.problems = problems
        detail = "; ".join(f"{field}: {rule}" for field, rule in problems.items())
        preposition = "for" if kind == "options" else "to"
        super().__init__(f"invalid {kind} {preposition} {operation}: {detail}")


class UnknownQueue(JobError, ValueError):
    def __init__(self, name: object, known: list[str]) -> None:
        super().__init__(f"unknown queue {name!r}; known queues: {', '.join(known)}")


class UnknownJobType(JobError, ValueError):
    def __init__(self, name: object, known: list[str]) -> None:
        super().__init__(f"unknown job type {name!r}; known job types: {', '.join(known)}")


class WrongQueue(JobError, ValueError):
    def __init__(self, job_type: str, queue: str, expected: str) -> None:
        super().__init__(f"job type {job_type!r} runs on queue {expected!r}, not {queue!r}")


class JobTypeNotAvailable(JobError):
    """The job type is declared but no workflow implements it yet."""

    def __init__(self, job_type: str) -> None:
        super().__init__(f"job type {job_type!r} has no workflow implementation yet")


class JobNotFound(JobError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")


class NotFound(JobError, LookupError):
    """A record of a job that does not exist or belongs to another user (a browser workflow
    execution, a screenshot)."""

    def __init__(self, what: str, record_id: str) -> None:
        super().__init__(f"no {what} with id {record_id!r}")


class InvalidJobState(JobError):
    """The operation does not apply to the job's current state (e.g. retrying a running job)."""


class SchemaNotReady(JobError):
    """The database is not at the schema this version needs; the message says what to run."""


class DatabaseUnavailable(JobError):
    """The database could not be reached or answered with an error."""


class TemporalUnavailable(JobError):
    """The Temporal server could not be reached."""


# The ``type`` names of ApplicationErrors, declared here and nowhere else.
# Permanent: never retried (the retry policy lists them, and they are raised non_retryable).
INVALID_JOB_DATA = "InvalidJobData"
AUTHENTICATION_FAILED = "AuthenticationFailed"
RESOURCE_NOT_FOUND = "ResourceNotFound"
INVALID_CONFIGURATION = "InvalidConfiguration"
DELIVERY_REJECTED = "DeliveryRejected"  # the webhook receiver refused the message
# The endpoint answered 410 Gone before: nothing is sent until it is enabled again.
ENDPOINT_DISABLED = "EndpointDisabled"
TARGET_FORBIDDEN = "TargetForbidden"  # the webhook target is not a public address
REAUTH_REQUIRED = "ReauthRequired"  # the user must connect the account again
PERMISSION_DENIED = "PermissionDenied"
REQUEST_REJECTED = "RequestRejected"
SPEND_LIMIT_REACHED = "SpendLimitReached"  # until someone raises the limit
# A call request that may have reached the provider with no answer recorded: placing the
# call again could ring the customer twice, so the job stops and says so.
CALL_PLACEMENT_UNKNOWN = "CallPlacementUnknown"
# The call was placed and failed to connect (a carrier or provider fault): the job's next
# attempt places a new call.
CALL_FAILED = "CallFailed"
# Transient: retried with the queue's backoff (Retry-After honoured).
RATE_LIMITED = "RateLimited"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
DELIVERY_FAILED = "DeliveryFailed"  # a webhook attempt that may succeed later
# A browser workflow step failed (an assertion, a selector that never appeared, an error
# page): the next attempt starts again from step 1 in a fresh session.
STEP_FAILED = "StepFailed"

NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (
    INVALID_JOB_DATA,
    AUTHENTICATION_FAILED,
    RESOURCE_NOT_FOUND,
    INVALID_CONFIGURATION,
    DELIVERY_REJECTED,
    ENDPOINT_DISABLED,
    TARGET_FORBIDDEN,
    REAUTH_REQUIRED,
    PERMISSION_DENIED,
    REQUEST_REJECTED,
    SPEND_LIMIT_REACHED,
    CALL_PLACEMENT_UNKNOWN,
)


def describe_problems(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Turn pydantic error dicts into ``{"field.path": "rule"}``."""
    problems: dict[str, str] = {}
    for err in errors:
        loc = ".".join(str(part) for part in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        # A rule across fields names its field first ("source.kind: ..."): key it there.
        named = _NAMED_RULE.match(message)
        if named is not None:
            field, message = named.group(1), named.group(2)
            loc = f"{loc}.{field}" if loc else field
        problems[loc or "data"] = message
    return problems


_NAMED_RULE = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.DOTALL)
