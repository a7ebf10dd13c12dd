"""The queue catalog: job routing, PRD values and environment overrides."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest

from core.config import ConfigError
from core.queues import DEFAULT_CATALOG, QueueName, QueueSpec, load_catalog


def test_every_queue_has_a_spec_under_its_own_name() -> None:
    assert set(DEFAULT_CATALOG) == set(QueueName)
    for name, spec in DEFAULT_CATALOG.items():
        assert spec.name is name


@pytest.mark.parametrize(
    ("queue", "concurrency", "rate_per_second"),
    [
        (QueueName.EMAIL, 5, 10.0),  # FR-040
        (QueueName.VOICE, 3, 5.0),  # FR-041
        (QueueName.ENRICHMENT, 2, 10.0),  # FR-042
        (QueueName.WORKFLOW, 3, 10.0),  # FR-043
        (QueueName.MAINTENANCE, 2, 5 / 60),  # FR-044: 5 per minute
    ],
)
def test_concurrency_and_rate_follow_the_prd(
    queue: QueueName, concurrency: int, rate_per_second: float
) -> None:
    spec = DEFAULT_CATALOG[queue]
    assert spec.concurrency == concurrency
    assert spec.rate_per_second == pytest.approx(rate_per_second)


@pytest.mark.parametrize("queue", list(QueueName))
def test_retention_defaults(queue: QueueName) -> None:
    spec = DEFAULT_CATALOG[queue]
    assert spec.keep_completed_for == timedelta(hours=24)
    assert spec.keep_completed_count == 1000
    assert spec.keep_failed_for == timedelta(days=7)


@pytest.mark.parametrize("queue", list(QueueName))
def test_specs_are_internally_consistent(queue: QueueName) -> None:
    spec = DEFAULT_CATALOG[queue]
    assert spec.attempts >= 1
    assert spec.initial_backoff <= spec.max_backoff
    assert spec.concurrency >= 1
    assert spec.rate_per_second > 0
    if spec.heartbeat is not None:
        assert spec.heartbeat < spec.start_to_close


def test_no_overrides_gives_the_defaults() -> None:
    assert load_catalog({}) == DEFAULT_CATALOG
    assert load_catalog({"PATH": "/usr/bin", "QUEUEING": "x"}) == DEFAULT_CATALOG


def test_overrides_apply_to_one_queue_only() -> None:
    catalog = load_catalog(
        {
            "QUEUE_EMAIL_CONCURRENCY": "8",
            "QUEUE_EMAIL_RATE_PER_SECOND": "2.5",
            "QUEUE_EMAIL_MAX_BACKOFF": "90",
            "QUEUE_EMAIL_INITIAL_BACKOFF": "1.5",
            "QUEUE_EMAIL_KEEP_COMPLETED_FOR": "3600",
            "QUEUE_EMAIL_KEEP_COMPLETED_COUNT": "50",
        }
    )
    email = catalog[QueueName.EMAIL]
    assert email.concurrency == 8
    assert email.rate_per_second == 2.5
    assert email.max_backoff == timedelta(seconds=90)
    assert email.initial_backoff == timedelta(seconds=1.5)
    assert email.keep_completed_for == timedelta(hours=1)
    assert email.keep_completed_count == 50
    for name in QueueName:
        if name is not QueueName.EMAIL:
            assert catalog[name] == DEFAULT_CATALOG[name]
    # The defaults themselves are never modified.
    assert DEFAULT_CATALOG[QueueName.EMAIL].concurrency == 5


def test_every_tunable_field_can_be_overridden() -> None:
    tunable = {f.name for f in fields(QueueSpec)} - {"name"}
    env = {f"QUEUE_VOICE_{name.upper()}": "600" for name in tunable}
    spec = load_catalog(env)[QueueName.VOICE]
    for name in tunable:
        value = getattr(spec, name)
        assert value in (600, timedelta(seconds=600)), name


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QUEUE_FAX_CONCURRENCY": "2"}, "QUEUE_FAX_CONCURRENCY: unknown queue 'fax'"),
        ({"QUEUE_EMAIL_SPEED": "2"}, "QUEUE_EMAIL_SPEED: unknown setting 'speed'"),
        ({"QUEUE_EMAIL_NAME": "voice"}, "QUEUE_EMAIL_NAME: unknown setting 'name'"),
        ({"QUEUE_EMAIL_JOB_TYPES": "x"}, "QUEUE_EMAIL_JOB_TYPES: unknown setting"),
        ({"QUEUE_EMAIL_CONCURRENCY": "many"}, "QUEUE_EMAIL_CONCURRENCY: must be a number >= 1"),
        ({"QUEUE_EMAIL_CONCURRENCY": "0"}, "QUEUE_EMAIL_CONCURRENCY: must be a number >= 1"),
        ({"QUEUE_EMAIL_ATTEMPTS": "2.5"}, "QUEUE_EMAIL_ATTEMPTS: must be a number >= 1"),
        ({"QUEUE_EMAIL_RATE_PER_SECOND": "-1"}, "QUEUE_EMAIL_RATE_PER_SECOND: must be a number"),
        ({"QUEUE_EMAIL_START_TO_CLOSE": "soon"}, "QUEUE_EMAIL_START_TO_CLOSE: must be seconds"),
        ({"QUEUE_EMAIL_KEEP_FAILED_FOR": "-5"}, "QUEUE_EMAIL_KEEP_FAILED_FOR: must be seconds"),
        (
            {"QUEUE_EMAIL_MAX_BACKOFF": "1"},
            "QUEUE_EMAIL_MAX_BACKOFF: below the initial backoff",
        ),
        (
            {"QUEUE_MAINTENANCE_INITIAL_BACKOFF": "3600"},
            "QUEUE_MAINTENANCE_MAX_BACKOFF: below the initial backoff",
        ),
    ],
)
def test_bad_overrides_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(env)
    assert str(caught.value).startswith(message)


def test_bad_number_error_shows_the_value() -> None:
    with pytest.raises(ConfigError, match="got 'many'"):
        load_catalog({"QUEUE_EMAIL_CONCURRENCY": "many"})
