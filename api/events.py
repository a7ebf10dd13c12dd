"""Live job events for Server-Sent Events streams: one Redis reader for every stream.

Each job's lifecycle events are a Redis stream (``tracking/store.py``), their ids the
offsets ``get_job_events`` returns. A stream first replays what the job's log holds after
the client's offset (``Last-Event-ID``), then follows. Following is done by one ``XREAD``
over the streams of every connected job at once (``EventHub``): an event is handed to its
subscribers as soon as Redis has it, and a thousand open streams cost one Redis
connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.logging import get_logger

log = get_logger("jobs.api.events")

# The events after which a job's stream ends.
FINAL_EVENTS = frozenset({"completed", "failed", "removed"})
# How long one XREAD waits; a stream subscribed meanwhile is read from the next call on.
BLOCK_MS = 100
# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0

Event = tuple[str, dict[str, str]]


class EventHub:
    """Reads the streams of every subscribed job with one blocking ``XREAD``."""

    def __init__(self, redis: aioredis.Redis, stream_key: Callable[[str], str]) -> None:
        self._redis = redis
        self._stream_key = stream_key
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}
        self._last: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def subscribe(self, job_id: str, after: str) -> Iterator[AsyncIteratorQueue]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        subscribers = self._subscribers.setdefault(job_id, set())
        subscribers.add(queue)
        current = self._last.get(job_id)
        if current is None or _older(after, current):
            self._last[job_id] = after
        self._wake.set()
        try:
            yield AsyncIteratorQueue(queue)
        finally:
            subscribers.discard(queue)
            if not subscribers:
                self._subscribers.pop(job_id, None)
                self._last.pop(job_id, None)

    async def _run(self) -> None:
        while True:
            if not self._subscribers:
                self._wake.clear()
                await self._wake.wait()
            streams = {self._stream_key(job): self._last[job] for job in list(self._subscribers)}
            jobs = {self._stream_key(job): job for job in self._subscribers}
            if not streams:
                continue  # the last subscriber left meanwhile
            try:
                answer: Any = await self._redis.xread(
                    {key: ("0-0" if last == "-" else last) for key, last in streams.items()},
                    block=BLOCK_MS,
                    count=100,
                )
            except RedisError as exc:
                log.warning("events.read_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for key, entries in answer or []:
                job = jobs.get(str(key))
                if job is None or job not in self._subscribers:
                    continue
                for offset, fields in entries:
                    event = (str(offset), {str(k): str(v) for k, v in fields.items()})
                    self._last[job] = event[0]
                    for queue in self._subscribers[job]:
                        queue.put_nowait(event)


def _older(offset: str, than: str) -> bool:
    """Whether stream id ``offset`` comes before ``than`` ("-" is before everything)."""
    if offset == "-":
        return True
    if than == "-":
        return False
    return _id(offset) < _id(than)


def _id(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


class AsyncIteratorQueue:
    """A subscriber's events, in order, none at or before an offset already seen."""

    def __init__(self, queue: asyncio.Queue[Event]) -> None:
        self._queue = queue

    async def next(self, after: str, timeout: float) -> Event | None:
        """The next event after ``after``, or None after ``timeout`` seconds of quiet."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                event = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                return None
            if _older(after, event[0]):
                return event


def sse(event: Event) -> str:
    """One event in the text/event-stream format: its offset as the id, its kind as the
    event name, its fields as JSON data."""
    offset, fields = event
    return f"id: {offset}\nevent: {fields.get('event', 'message')}\ndata: {json.dumps(fields)}\n\n"


async def stream(
    history: list[Event],
    hub: EventHub,
    job_id: str,
    after: str,
    closing: str | None = None,
) -> AsyncIterator[str]:
    """The job's events after ``after``: the log first, then live ones, until a final
    event; ``closing`` (the job's final state, when it has ended and its log does not say
    so) ends the stream after the log instead."""
    last = after
    with hub.subscribe(job_id, after) as live:
        for position, event in enumerate(history):
            last = event[0]
            yield sse(event)
            # A final event ends the stream when nothing came after it (a job retried after
            # it failed goes on: its log holds "failed", then "retried" and the new run).
            if event[1].get("event") in FINAL_EVENTS and position == len(history) - 1:
                return
        if closing is not None:
            yield closing
            return
        while True:
            arrived = await live.next(last, KEEPALIVE_S)
            if arrived is None:
                yield ": keep-alive\n\n"
                continue
            last = arrived[0]
            yield sse(arrived)
            if arrived[1].get("event") in FINAL_EVENTS:
                return
