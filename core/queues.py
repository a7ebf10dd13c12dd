"""The queue catalog: the one place that declares each queue's job types, retry policy,
timeouts, worker concurrency, dispatch rate and retention of finished jobs.

Values follow PRD-036 FR-030..046 and can be overridden per queue by environment
variables ``QUEUE_<NAME>_<SETTING>`` (e.g. ``QUEUE_EMAIL_CONCURRENCY=8``), validated at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from enum import StrEnum

from core.config import ConfigError
from core.jobs import JobType


class QueueName(StrEnum):
    EMAIL = "email"
    VOICE = "voice"
    SEO = "seo"
    ADS = "ads"
    ENRICHMENT = "enrichment"
    WORKFLOW = "workflow"
    MAINTENANCE = "maintenance"
    WEBHOOKS = "webhooks"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Everything a queue needs: retry, timeouts, concurrency, rate and retention.

    ``rate_per_second`` is enforced by the Temporal server on the queue's activity task
    queue, so it holds across every worker process of the queue.
    """

    name: QueueName
    job_types: tuple[JobType, ...]
    attempts: int
    initial_backoff: timedelta
    max_backoff: timedelta
    start_to_close: timedelta
    heartbeat: timedelta | None
    concurrency: int
    rate_per_second: float
    backoff_coefficient: float = 2.0
    keep_completed_for: timedelta = timedelta(hours=24)
    keep_completed_count: int = 1000
    keep_failed_for: timedelta = timedelta(days=7)


_S = timedelta(seconds=1)

DEFAULT_CATALOG: dict[QueueName, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(
            name=QueueName.EMAIL,
            job_types=(JobType.EMAIL_SYNC, JobType.EMAIL_DRAFT),
            attempts=3,
            initial_backoff=2 * _S,
            max_backoff=5 * 60 * _S,
            # Mailbox syncs page for minutes; the heartbeat catches a dead worker in 30 s.
            start_to_close=30 * 60 * _S,
            heartbeat=30 * _S,
            concurrency=5,
            rate_per_second=10,
        ),
        QueueSpec(
            name=QueueName.VOICE,
            job_types=(JobType.VOICE_CALL,),
            attempts=2,
            initial_backoff=5 * _S,
            max_backoff=5 * 60 * _S,
            # A call is polled for up to 10 minutes (AC-003), plus set-up.
            start_to_close=15 * 60 * _S,
            heartbeat=30 * _S,
            concurrency=3,
            rate_per_second=5,
        ),
        QueueSpec(
            name=QueueName.SEO,
            job_types=(JobType.SEO_AUDIT, JobType.KEYWORD_ANALYSIS),
            attempts=3,
            initial_backoff=10 * _S,
            max_backoff=10 * 60 * _S,
            start_to_close=10 * 60 * _S,
            heartbeat=60 * _S,
            concurrency=2,
            rate_per_second=2,
        ),
        QueueSpec(
            name=QueueName.ADS,
            job_types=(JobType.AD_ANALYSIS, JobType.AD_AUTOMATION),
            attempts=3,
            initial_backoff=10 * _S,
            max_backoff=10 * 60 * _S,
            start_to_close=10 * 60 * _S,
            heartbeat=60 * _S,
            concurrency=2,
            rate_per_second=2,
        ),
        QueueSpec(
            name=QueueName.ENRICHMENT,
            job_types=(JobType.LEAD_ENRICHMENT,),
            attempts=3,
            initial_backoff=5 * _S,
            max_backoff=5 * 60 * _S,
            start_to_close=30 * 60 * _S,
            heartbeat=60 * _S,
            concurrency=2,
            rate_per_second=10,
        ),
        QueueSpec(
            name=QueueName.WORKFLOW,
            job_types=(JobType.WORKFLOW_EXECUTION,),
            attempts=3,
            initial_backoff=2 * _S,
            max_backoff=5 * 60 * _S,
            start_to_close=30 * 60 * _S,
            heartbeat=30 * _S,
            concurrency=3,
            rate_per_second=10,
        ),
        QueueSpec(
            name=QueueName.MAINTENANCE,
            job_types=(JobType.MEMORY_CLEANUP, JobType.MEMORY_CONSOLIDATION),
            attempts=3,
            initial_backoff=30 * _S,
            max_backoff=30 * 60 * _S,
            start_to_close=30 * 60 * _S,
            heartbeat=60 * _S,
            concurrency=2,
            rate_per_second=5 / 60,
        ),
        QueueSpec(
            name=QueueName.WEBHOOKS,
            job_types=(JobType.WEBHOOK_DELIVERY,),
            attempts=5,
            initial_backoff=2 * _S,
            # Receivers may be down for a while; later attempts wait up to an hour apart.
            max_backoff=60 * 60 * _S,
            # The POST itself times out after 10 s; the rest is signing and recording.
            start_to_close=30 * _S,
            # Only deliveries slower than half of this heartbeat (to see a cancel); a dead
            # worker's delivery is retried elsewhere after 5 s instead of 30.
            heartbeat=5 * _S,
            concurrency=20,
            rate_per_second=100,
        ),
    )
}

QUEUE_OF_JOB_TYPE: dict[JobType, QueueName] = {
    job_type: spec.name for spec in DEFAULT_CATALOG.values() for job_type in spec.job_types
}

_DURATION_FIELDS = {
    "initial_backoff",
    "max_backoff",
    "start_to_close",
    "heartbeat",
    "keep_completed_for",
    "keep_failed_for",
}
_INT_FIELDS = {"attempts", "concurrency", "keep_completed_count"}
_FLOAT_FIELDS = {"rate_per_second", "backoff_coefficient"}


def _override(spec: QueueSpec, field: str, raw: str, var: str) -> QueueSpec:
    value: timedelta | int | float
    try:
        if field in _DURATION_FIELDS:
            seconds = float(raw)
            if seconds < 0:
                raise ValueError
            value = timedelta(seconds=seconds)
        elif field in _INT_FIELDS:
            value = int(raw)
            if value < 1:
                raise ValueError
        else:
            value = float(raw)
            if value < 0:
                raise ValueError
    except ValueError:
        kind = "seconds >= 0" if field in _DURATION_FIELDS else "a number >= 1"
        if field in _FLOAT_FIELDS:
            kind = "a number >= 0"
        raise ConfigError(f"{var}: must be {kind}, got {raw!r}") from None
    return replace(spec, **{field: value})  # type: ignore[arg-type]


def load_catalog(environ: Mapping[str, str] | None = None) -> dict[QueueName, QueueSpec]:
    """The catalog with ``QUEUE_<NAME>_<FIELD>`` overrides applied (durations in seconds)."""
    env = os.environ if environ is None else environ
    tunable = {f.name for f in fields(QueueSpec)} - {"name", "job_types"}
    catalog = dict(DEFAULT_CATALOG)
    for var, raw in env.items():
        if not var.startswith("QUEUE_"):
            continue
        rest = var[len("QUEUE_") :].lower()
        queue_part, _, field = rest.partition("_")
        if queue_part not in catalog:
            raise ConfigError(f"{var}: unknown queue {queue_part!r}")
        if field not in tunable:
            raise ConfigError(f"{var}: unknown setting {field!r}; one of {sorted(tunable)}")
        name = QueueName(queue_part)
        catalog[name] = _override(catalog[name], field, raw, var)
    for spec in catalog.values():
        if spec.max_backoff < spec.initial_backoff:
            raise ConfigError(f"QUEUE_{spec.name.upper()}_MAX_BACKOFF: below the initial backoff")
    return catalog
