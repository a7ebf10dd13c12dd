"""The Redis job tracker against the real Redis: counts, retention, events and outages.

Each test writes under its own key prefix and deletes it afterwards. Time is a fake clock
(``tracking.store.now_ms``), so due times and retention windows need no waiting.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

import tracking.store as tracking
from core.config import load_settings
from core.queues import DEFAULT_CATALOG, QueueName, QueueSpec
from tracking.store import JobState, JobTracker, Transition, connect_redis

REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE = QueueName.WEBHOOKS.value
START_MS = 1_700_000_000_000

TrackerFactory = Callable[..., JobTracker]


class Clock:
    def __init__(self) -> None:
        self.ms = START_MS

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(tracking, "now_ms", fake)
    return fake


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    value = f"bjunit-{uuid.uuid4().hex}:"
    try:
        yield value
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{value}*", count=500)]
        if keys:
            await redis.delete(*keys)


@pytest.fixture
def make_tracker(redis: aioredis.Redis, prefix: str) -> TrackerFactory:
    def make(catalog: Mapping[QueueName, QueueSpec] = DEFAULT_CATALOG) -> JobTracker:
        return JobTracker(redis, catalog, prefix)

    return make


@pytest.fixture
def tracker(make_tracker: TrackerFactory) -> JobTracker:
    return make_tracker()


def move(
    job_id: str, state: JobState | None, event: str | None = None, **kwargs: Any
) -> Transition:
    kwargs.setdefault("queue", QUEUE)
    return Transition(job_id=job_id, state=state, event=event, **kwargs)


def counts(
    waiting: int = 0, active: int = 0, completed: int = 0, failed: int = 0, delayed: int = 0
) -> dict[str, Any]:
    return {
        "waiting": waiting,
        "active": active,
        "completed": completed,
        "failed": failed,
        "delayed": delayed,
        "paused": False,
        "available": True,
    }


async def webhook_stats(tracker: JobTracker) -> dict[str, Any]:
    return (await tracker.stats([QUEUE]))[QUEUE]


# --- state transitions ----------------------------------------------------------------------


async def test_lifecycle_counts_are_exact_at_every_step(tracker: JobTracker, clock: Clock) -> None:
    job = "job-1"
    assert await webhook_stats(tracker) == counts()

    assert await tracker.apply(move(job, JobState.WAITING, "added", mode="add"))
    assert await webhook_stats(tracker) == counts(waiting=1)

    assert await tracker.apply(move(job, JobState.ACTIVE, "started", fields={"attempts": 1}))
    assert await webhook_stats(tracker) == counts(active=1)

    retry_at = clock.ms + 60_000
    assert await tracker.apply(move(job, JobState.DELAYED, "retrying", due_ms=retry_at))
    assert await webhook_stats(tracker) == counts(delayed=1)

    assert await tracker.apply(move(job, JobState.ACTIVE, "started", fields={"attempts": 2}))
    assert await webhook_stats(tracker) == counts(active=1)

    assert await tracker.apply(move(job, JobState.COMPLETED, "completed", fields={"progress": 100}))
    assert await webhook_stats(tracker) == counts(completed=1)

    record = await tracker.job(job)
    assert record is not None
    assert (record["state"], record["queue"], record["attempts"], record["progress"]) == (
        "completed",
        QUEUE,
        "2",
        "100",
    )


async def test_attempts_keep_the_most_any_step_made_until_a_retry_resets_them(
    tracker: JobTracker,
) -> None:
    job = "job-steps"
    await tracker.apply(move(job, JobState.WAITING, "added", mode="add"))
    await tracker.apply(move(job, JobState.ACTIVE, "started", fields={"attempts": 3}))
    # The next activity of the job starts at its own first attempt.
    await tracker.apply(move(job, JobState.ACTIVE, "started", fields={"attempts": 1}))
    assert (await tracker.job(job) or {})["attempts"] == "3"
    await tracker.apply(move(job, JobState.FAILED, "failed"))
    # retry_job starts the count again.
    await tracker.apply(
        move(job, JobState.WAITING, "retried", fields={"attempts": 0}, mode="force")
    )
    await tracker.apply(move(job, JobState.ACTIVE, "started", fields={"attempts": 1}))
    assert (await tracker.job(job) or {})["attempts"] == "1"


async def test_failed_jobs_are_counted(tracker: JobTracker, clock: Clock) -> None:
    await tracker.apply(move("job-f", JobState.ACTIVE), move("job-f", JobState.FAILED, "failed"))
    assert await webhook_stats(tracker) == counts(failed=1)
    assert (await tracker.job("job-f") or {})["state"] == "failed"


async def test_duplicated_and_replayed_transitions_do_not_double_count(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-d", JobState.WAITING, mode="add"))
    await tracker.apply(move("job-d", JobState.WAITING, mode="add"))
    assert await webhook_stats(tracker) == counts(waiting=1)

    started = move("job-d", JobState.ACTIVE, "started")
    await tracker.apply(started, started)
    await tracker.apply(started)
    assert await webhook_stats(tracker) == counts(active=1)

    done = move("job-d", JobState.COMPLETED, "completed")
    await tracker.apply(done)
    # The whole history replayed, as after a reconnect or a redelivered outbox batch.
    await tracker.apply(move("job-d", JobState.WAITING, mode="add"), started, done, done)
    assert await webhook_stats(tracker) == counts(completed=1)
    events = [fields["event"] for _, fields in await tracker.events("job-d")]
    assert events == ["started", "completed"]


async def test_stale_active_after_completed_is_ignored(tracker: JobTracker, clock: Clock) -> None:
    await tracker.apply(move("job-s", JobState.ACTIVE), move("job-s", JobState.COMPLETED))
    # A late "started" from a previous attempt, delivered after the workflow finished.
    await tracker.apply(move("job-s", JobState.ACTIVE, "started", fields={"attempts": 9}))
    assert await webhook_stats(tracker) == counts(completed=1)
    record = await tracker.job("job-s")
    assert record is not None
    assert record["state"] == "completed"
    assert "attempts" not in record


async def test_add_after_the_worker_started_keeps_active_and_fills_missing_fields(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-a", JobState.ACTIVE, "started", fields={"attempts": 1}))
    await tracker.apply(
        move(
            "job-a",
            JobState.WAITING,
            "added",
            mode="add",
            fields={"attempts": 0, "name": "webhook_delivery", "user_id": "u1"},
        )
    )
    assert await webhook_stats(tracker) == counts(active=1)
    record = await tracker.job("job-a")
    assert record is not None
    assert record["state"] == "active"
    assert record["attempts"] == "1"  # the worker's value wins
    assert (record["name"], record["user_id"]) == ("webhook_delivery", "u1")
    assert [f["event"] for _, f in await tracker.events("job-a")] == ["started"]


async def test_force_moves_a_failed_job_back_to_waiting(tracker: JobTracker, clock: Clock) -> None:
    await tracker.apply(move("job-r", JobState.ACTIVE), move("job-r", JobState.FAILED, "failed"))
    await tracker.apply(move("job-r", JobState.WAITING, "retried"))  # without force: ignored
    assert await webhook_stats(tracker) == counts(failed=1)

    await tracker.apply(move("job-r", JobState.WAITING, "retried", mode="force"))
    assert await webhook_stats(tracker) == counts(waiting=1)
    assert (await tracker.job("job-r") or {})["state"] == "waiting"
    # The record no longer expires like a finished job.
    assert await tracker.redis.ttl(tracker.keys.job("job-r")) == -1


async def test_a_delayed_job_whose_time_has_come_counts_as_waiting(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-later", JobState.DELAYED, due_ms=clock.ms + 5_000))
    assert await webhook_stats(tracker) == counts(delayed=1)
    clock.advance(4_999)
    assert await webhook_stats(tracker) == counts(delayed=1)
    clock.advance(1)
    assert await webhook_stats(tracker) == counts(waiting=1)


async def test_state_less_transition_records_an_event_and_fields(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-p", JobState.ACTIVE, "started"))
    await tracker.apply(move("job-p", None, "progress", fields={"progress": 40}))
    assert await webhook_stats(tracker) == counts(active=1)
    assert (await tracker.job("job-p") or {})["progress"] == "40"
    [_, (_, progress)] = await tracker.events("job-p")
    assert (progress["event"], progress["state"], progress["progress"]) == (
        "progress",
        "active",
        "40",
    )


# --- retention ------------------------------------------------------------------------------


async def test_completed_jobs_are_kept_up_to_the_count(
    make_tracker: TrackerFactory, clock: Clock
) -> None:
    catalog = dict(DEFAULT_CATALOG)
    catalog[QueueName.WEBHOOKS] = replace(catalog[QueueName.WEBHOOKS], keep_completed_count=3)
    tracker = make_tracker(catalog)
    jobs = [f"job-{i}" for i in range(5)]
    for job in jobs:
        clock.advance(1_000)
        await tracker.apply(
            move(job, JobState.ACTIVE, "started"), move(job, JobState.COMPLETED, "completed")
        )

    assert await webhook_stats(tracker) == counts(completed=3)
    completed_key = tracker.keys.completed(QUEUE)
    assert await tracker.redis.zrange(completed_key, 0, -1) == jobs[2:]
    for job in jobs[:2]:  # the oldest two are gone, record and event log
        assert await tracker.job(job) is None
        assert await tracker.events(job) == []
    for job in jobs[2:]:
        assert (await tracker.job(job) or {})["state"] == "completed"


async def test_completed_jobs_are_kept_up_to_the_age(
    make_tracker: TrackerFactory, clock: Clock
) -> None:
    catalog = dict(DEFAULT_CATALOG)
    catalog[QueueName.WEBHOOKS] = replace(
        catalog[QueueName.WEBHOOKS], keep_completed_for=timedelta(hours=1)
    )
    tracker = make_tracker(catalog)
    await tracker.apply(move("old", JobState.ACTIVE), move("old", JobState.COMPLETED))
    # The record expires with the retention window.
    ttl_ms = await tracker.redis.pttl(tracker.keys.job("old"))
    assert 3_590_000 < ttl_ms <= 3_600_000

    clock.advance(3_600_000)
    assert await webhook_stats(tracker) == counts(completed=1)
    clock.advance(1)
    assert await webhook_stats(tracker) == counts()  # outside the window, even before a trim

    await tracker.apply(move("new", JobState.ACTIVE), move("new", JobState.COMPLETED))
    assert await webhook_stats(tracker) == counts(completed=1)
    assert await tracker.redis.zrange(tracker.keys.completed(QUEUE), 0, -1) == ["new"]
    assert await tracker.job("old") is None


async def test_failed_jobs_are_kept_for_their_own_window(tracker: JobTracker, clock: Clock) -> None:
    await tracker.apply(move("f1", JobState.ACTIVE), move("f1", JobState.FAILED))
    clock.advance(int(timedelta(days=7).total_seconds() * 1000) + 1)
    assert await webhook_stats(tracker) == counts()
    await tracker.apply(move("f2", JobState.ACTIVE), move("f2", JobState.FAILED))
    assert await webhook_stats(tracker) == counts(failed=1)
    assert await tracker.job("f1") is None


# --- removal and events ---------------------------------------------------------------------


async def test_remove_deletes_the_job_and_leaves_a_tombstone(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-x", JobState.WAITING, "added", mode="add"))
    assert not await tracker.is_removed("job-x")

    await tracker.remove("job-x", QUEUE)
    assert await tracker.is_removed("job-x")
    assert await tracker.job("job-x") is None
    assert await tracker.events("job-x") == []
    assert await webhook_stats(tracker) == counts()

    # Removing twice changes nothing; adding the id again lifts the tombstone.
    await tracker.remove("job-x", QUEUE)
    assert await webhook_stats(tracker) == counts()
    await tracker.apply(move("job-x", JobState.WAITING, "added", mode="add"))
    assert not await tracker.is_removed("job-x")
    assert await webhook_stats(tracker) == counts(waiting=1)


@pytest.mark.parametrize(
    "steps",
    [
        [JobState.DELAYED],
        [JobState.ACTIVE],
        [JobState.ACTIVE, JobState.COMPLETED],
        [JobState.ACTIVE, JobState.FAILED],
    ],
)
async def test_remove_from_every_state(
    tracker: JobTracker, clock: Clock, steps: list[JobState]
) -> None:
    await tracker.apply(*(move("job-y", s, due_ms=clock.ms + 60_000) for s in steps))
    assert await webhook_stats(tracker) != counts()
    await tracker.remove("job-y", QUEUE)
    assert await webhook_stats(tracker) == counts()
    assert await tracker.job("job-y") is None


async def test_events_are_kept_in_order_and_read_after_an_offset(
    tracker: JobTracker, clock: Clock
) -> None:
    await tracker.apply(move("job-e", JobState.WAITING, "added", mode="add"))
    await tracker.apply(move("job-e", JobState.ACTIVE, "started", fields={"attempts": 1}))
    await tracker.apply(
        move(
            "job-e",
            JobState.DELAYED,
            "retrying",
            fields={"last_error": "HTTP 503"},
            due_ms=clock.ms + 2_000,
        )
    )
    await tracker.apply(move("job-e", JobState.ACTIVE, "started", fields={"attempts": 2}))
    await tracker.apply(move("job-e", JobState.COMPLETED, "completed"))

    events = await tracker.events("job-e")
    assert [(f["event"], f["state"]) for _, f in events] == [
        ("added", "waiting"),
        ("started", "active"),
        ("retrying", "delayed"),
        ("started", "active"),
        ("completed", "completed"),
    ]
    assert events[1][1]["attempts"] == "1"
    assert events[2][1]["last_error"] == "HTTP 503"
    assert all(f["ts"] == str(START_MS) for _, f in events)

    offsets = [offset for offset, _ in events]
    assert offsets == sorted(offsets, key=lambda o: tuple(int(p) for p in o.split("-")))
    assert await tracker.events("job-e", after=offsets[1]) == events[2:]
    assert await tracker.events("job-e", after=offsets[-1]) == []
    assert await tracker.events("job-e", count=2) == events[:2]
    assert await tracker.events("never-seen") == []


# --- Redis outages --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_apply_reports_false_and_backs_off_when_redis_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"})
    down = connect_redis(settings)
    try:
        tracker = JobTracker(down, DEFAULT_CATALOG, f"bjunit-{uuid.uuid4().hex}:")
        assert tracker.reachable
        assert await tracker.apply(move("job-1", JobState.ACTIVE)) is False
        assert tracker.missed_writes == 1
        assert not tracker.reachable

        # During the back-off Redis is not even asked.
        calls: list[object] = []
        monkeypatch.setattr(down, "pipeline", lambda *a, **k: calls.append(a) or None)
        monkeypatch.setattr(down, "evalsha", lambda *a, **k: calls.append(a) or None)
        first, second = move("job-2", JobState.WAITING), move("job-3", JobState.WAITING)
        assert await tracker.apply(first, second) is False
        assert calls == []
        assert tracker.missed_writes == 3
        assert await tracker.apply() is True  # nothing to write is never a failure
    finally:
        await down.aclose()


async def test_apply_tries_again_after_the_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"})
    down = connect_redis(settings)
    real_evalsha = down.evalsha
    calls: list[bool] = []

    def counting_evalsha(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return real_evalsha(*args, **kwargs)

    monkeypatch.setattr(down, "evalsha", counting_evalsha)
    try:
        tracker = JobTracker(down, DEFAULT_CATALOG, f"bjunit-{uuid.uuid4().hex}:")
        monkeypatch.setattr(tracker, "BACKOFF_S", 0.0)
        assert await tracker.apply(move("job-1", JobState.ACTIVE)) is False
        assert tracker.reachable  # a zero back-off is over at once
        assert await tracker.apply(move("job-1", JobState.ACTIVE)) is False
        assert len(calls) == 2
    finally:
        await down.aclose()


# --- statistics -----------------------------------------------------------------------------


async def test_stats_of_every_queue_in_one_call(tracker: JobTracker, clock: Clock) -> None:
    await tracker.apply(
        move("e1", JobState.WAITING, queue="email"),
        move("e2", JobState.ACTIVE, queue="email"),
        move("v1", JobState.DELAYED, queue="voice", due_ms=clock.ms + 1_000),
        move("m1", JobState.ACTIVE, queue="maintenance"),
        move("m1", JobState.COMPLETED, queue="maintenance"),
        move("s1", JobState.ACTIVE, queue="seo"),
        move("s1", JobState.FAILED, queue="seo"),
    )
    await tracker.set_paused("ads", True)

    stats = await tracker.stats([name.value for name in QueueName])
    assert list(stats) == [name.value for name in QueueName]
    expected = {name.value: counts() for name in QueueName}
    expected["email"] = counts(waiting=1, active=1)
    expected["voice"] = counts(delayed=1)
    expected["maintenance"] = counts(completed=1)
    expected["seo"] = counts(failed=1)
    expected["ads"] = dict(counts(), paused=True)
    assert stats == expected

    await tracker.set_paused("ads", False)
    assert (await tracker.stats(["ads"]))["ads"]["paused"] is False


async def test_stats_reject_an_unknown_queue(tracker: JobTracker) -> None:
    with pytest.raises(KeyError):
        await tracker.stats(["fax"])


async def test_prefixes_keep_trackers_apart(
    tracker: JobTracker, redis: aioredis.Redis, clock: Clock
) -> None:
    other_prefix = f"bjunit-{uuid.uuid4().hex}:"
    other = JobTracker(redis, DEFAULT_CATALOG, other_prefix)
    try:
        await other.apply(move("job-o", JobState.WAITING))
        assert await webhook_stats(tracker) == counts()
        assert await webhook_stats(other) == counts(waiting=1)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{other_prefix}*")]
        await redis.delete(*keys)


async def test_transition_script_is_reloaded_after_redis_forgets_it(tracker: JobTracker) -> None:
    await tracker.redis.script_flush()
    assert await tracker.apply(move("job-flushed", JobState.WAITING)) is True
    assert (await tracker.job("job-flushed") or {}).get("state") == "waiting"


async def test_the_queue_history_counts_each_minute(
    tracker: JobTracker, clock: Clock, redis: aioredis.Redis, prefix: str
) -> None:
    clock.ms = (clock.ms // 60_000) * 60_000 + 5_000  # early in a minute
    await tracker.apply(
        move("h1", JobState.WAITING, "added", mode="add"),
        move("h2", JobState.WAITING, "added", mode="add"),
        move("h3", JobState.WAITING, "added", mode="add"),
    )
    await tracker.apply(move("h1", JobState.ACTIVE), move("h1", JobState.COMPLETED, "completed"))
    clock.advance(60_000)
    await tracker.apply(move("h2", JobState.ACTIVE), move("h2", JobState.FAILED, "failed"))
    await tracker.apply(move("h3", JobState.ACTIVE), move("h3", JobState.COMPLETED, "completed"))
    points = await tracker.history(QUEUE, 3)
    assert [(p["completed"], p["failed"], p["waiting"]) for p in points] == [
        (0, 0, 0),
        (1, 0, 2),
        (1, 1, 0),
    ]
    assert points[-1]["minute"] == (clock.ms // 60_000) * 60_000
    # Bounded: each minute's hash expires after the history's span.
    key = tracker.keys.history(QUEUE, clock.ms // 60_000)
    assert 0 < await redis.pttl(key) <= tracking.HISTORY_MS
