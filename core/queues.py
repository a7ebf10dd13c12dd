"""The queue catalog: the one place that declares each queue's retry policy, timeouts, worker
concurrency, dispatch rate and retention of finished jobs (its job types are in core.catalog).

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

    ``attempts`` and the backoff fields make the retry policy of every activity of the
    queue's jobs (``workflows.policies``). ``start_to_close`` and ``heartbeat`` bound the
    queue's long, heartbeating steps (a mailbox sync, a crawl); quick calls have fixed
    timeouts of their own. ``rate_per_second`` is enforced by the Temporal server on the
    queue's activity task queue, so it holds across every worker process of the queue.
    """

    name: QueueName
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
_MIN = timedelta(minutes=1)
Q = QueueName

# PRD-036 FR-030..046. Long steps: a mailbox sync pages for minutes, a call is followed for
# up to 10 minutes (AC-003); a heartbeat catches a dead worker within its timeout.
DEFAULT_CATALOG: dict[QueueName, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(Q.EMAIL, attempts=3, initial_backoff=2 * _S, max_backoff=5 * _MIN,
                  start_to_close=30 * _MIN, heartbeat=30 * _S, concurrency=5, rate_per_second=10),
        QueueSpec(Q.VOICE, attempts=2, initial_backoff=5 * _S, max_backoff=5 * _MIN,
                  start_to_close=15 * _MIN, heartbeat=30 * _S, concurrency=3, rate_per_second=5),
        QueueSpec(Q.SEO, attempts=3, initial_backoff=10 * _S, max_backoff=10 * _MIN,
                  start_to_close=10 * _MIN, heartbeat=60 * _S, concurrency=2, rate_per_second=2),
        QueueSpec(Q.ADS, attempts=3, initial_backoff=10 * _S, max_backoff=10 * _MIN,
                  start_to_close=10 * _MIN, heartbeat=60 * _S, concurrency=2, rate_per_second=2),
        QueueSpec(Q.ENRICHMENT, attempts=3, initial_backoff=5 * _S, max_backoff=5 * _MIN,
                  start_to_close=30 * _MIN, heartbeat=60 * _S, concurrency=2, rate_per_second=10),
        QueueSpec(Q.WORKFLOW, attempts=3, initial_backoff=2 * _S, max_backoff=5 * _MIN,
                  start_to_close=30 * _MIN, heartbeat=30 * _S, concurrency=3, rate_per_second=10),
        QueueSpec(Q.MAINTENANCE, attempts=3, initial_backoff=30 * _S, max_backoff=30 * _MIN,
                  start_to_close=30 * _MIN, heartbeat=60 * _S, concurrency=2,
                  rate_per_second=5 / 60),
        # Receivers may be down for a while: later attempts wait up to an hour apart.
        QueueSpec(Q.WEBHOOKS, attempts=5, initial_backoff=2 * _S, max_backoff=60 * _MIN,
                  start_to_close=10 * _MIN, heartbeat=30 * _S, concurrency=20,
                  rate_per_second=100),
    )
}  # fmt: skip

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
    tunable = {f.name for f in fields(QueueSpec)} - {"name"}
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
