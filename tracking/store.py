"""The Redis adapter: job records, queue statistics and per-job event logs.

Every state change of a job is one atomic Lua call that moves the job between the
queue's counters and sorted sets and appends the event to the job's stream, so statistics
are O(1) reads with no scans and replayed or duplicated events cannot skew them (a job is
counted in exactly one state; finished jobs stay finished). Writes never fail a job: when
Redis is unreachable they are skipped for a short back-off and the reconciler
(``tracking.reconcile``) rebuilds the numbers from Temporal visibility once Redis answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from core.config import Settings
from core.logging import get_logger
from core.queues import QueueName, QueueSpec

log = get_logger(__name__)


class JobState(StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED})

# Event-log entries kept per job (a bounded stream; the job's record expires with it).
EVENTS_PER_JOB = 200


class Keys:
    """Every Redis key the system uses, in one place."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}events:{job_id}"

    def counts(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:counts"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:delayed"

    def completed(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:completed"

    def failed(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:failed"

    def open(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:open"

    def paused(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}:paused"

    def removed(self, job_id: str) -> str:
        return f"{self.prefix}removed:{job_id}"

    def history(self, queue: str, minute: int) -> str:
        """Completed and failed counts and the last waiting count of one minute (since the
        epoch), kept HISTORY_MS."""
        return f"{self.prefix}q:{queue}:hist:{minute}"

    @property
    def epoch(self) -> str:
        """Set by the reconciler; its absence means Redis lost its data."""
        return f"{self.prefix}meta:epoch"

    @property
    def reconcile_lock(self) -> str:
        return f"{self.prefix}meta:reconcile-lock"


# How long a queue's per-minute history is kept (the charts show the last 24 hours).
HISTORY_MS = 25 * 3600 * 1000

_TRANSITION = """
local job, counts, delayed, completed, failed, open, events =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, new, now, due, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local keep_done_ms, keep_done_count = tonumber(ARGV[6]), tonumber(ARGV[7])
local keep_failed_ms, prefix, event = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local nfields = tonumber(ARGV[11])
local old = redis.call('HGET', job, 'state')

local function add_event(state)
  if event == '' then return end
  local entry = {'event', event, 'state', state, 'ts', ARGV[3]}
  for i = 12, 11 + 2 * nfields do entry[#entry + 1] = ARGV[i] end
  redis.call('XADD', events, 'MAXLEN', '~', ARGV[12 + 2 * nfields], '*', unpack(entry))
end

local function set_fields(setter)
  for i = 12, 11 + 2 * nfields, 2 do
    local name, value = ARGV[i], ARGV[i + 1]
    if name == 'attempts' and setter == 'HSET' and mode ~= 'force' then
      -- A job of several activities made as many attempts as its most retried one: a
      -- later step's first attempt does not hide an earlier step's retries.
      local made = tonumber(redis.call('HGET', job, 'attempts')) or 0
      if (tonumber(value) or 0) > made then redis.call('HSET', job, name, value) end
    else
      redis.call(setter, job, name, value)
    end
  end
end

local function drop(ids)
  for _, x in ipairs(ids) do redis.call('DEL', prefix .. 'job:' .. x, prefix .. 'events:' .. x) end
end

local function trim(key, min_score, keep)
  local expired = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. min_score)
  if #expired > 0 then
    drop(expired)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. min_score)
  end
  if keep > 0 then
    local n = redis.call('ZCARD', key)
    if n > keep then
      drop(redis.call('ZRANGE', key, 0, n - keep - 1))
      redis.call('ZREMRANGEBYRANK', key, 0, n - keep - 1)
    end
  end
end

if mode == 'add' then
  redis.call('DEL', prefix .. 'removed:' .. id)  -- the id is in use again
end
if mode == 'add' and old then
  -- The worker got there first (it started the job before the producer recorded it):
  -- only fill in what the record lacks.
  set_fields('HSETNX')
  return 0
end
if old == 'completed' or old == 'failed' then
  if mode ~= 'force' then return 0 end  -- finished jobs stay finished
end
if new == '' then
  set_fields('HSET')
  add_event(old or '')
  return 1
end
if old == new and new ~= 'delayed' and mode ~= 'force' then
  set_fields('HSET')  -- e.g. the next activity of a running job
  return 0
end

if old == 'waiting' or old == 'active' then
  if redis.call('HINCRBY', counts, old, -1) < 0 then redis.call('HSET', counts, old, 0) end
elseif old == 'delayed' then redis.call('ZREM', delayed, id)
elseif old == 'completed' then redis.call('ZREM', completed, id)
elseif old == 'failed' then redis.call('ZREM', failed, id) end

if new == 'waiting' or new == 'active' then
  redis.call('HINCRBY', counts, new, 1)
elseif new == 'delayed' then
  redis.call('ZADD', delayed, due, id)
elseif new == 'completed' then
  redis.call('ZADD', completed, now, id)
  trim(completed, now - keep_done_ms, keep_done_count)
elseif new == 'failed' then
  redis.call('ZADD', failed, now, id)
  trim(failed, now - keep_failed_ms, 0)
end

redis.call('HSET', job, 'state', new, 'queue', ARGV[13 + 2 * nfields])
set_fields('HSET')
-- The queue's per-minute history (charts): jobs that ended this minute, and the waiting
-- count as it last was in it; a bounded number of small hashes, each expiring.
local history = prefix .. 'q:' .. ARGV[13 + 2 * nfields] .. ':hist:' .. math.floor(now / 60000)
if new == 'completed' or new == 'failed' or old == 'waiting' or new == 'waiting' then
  if new == 'completed' or new == 'failed' then redis.call('HINCRBY', history, new, 1) end
  redis.call('HSET', history, 'waiting', redis.call('HGET', counts, 'waiting') or 0)
  redis.call('PEXPIRE', history, HISTORY_MS)
end
if new == 'completed' or new == 'failed' then
  redis.call('ZREM', open, id)
  local ttl = keep_done_ms
  if new == 'failed' then ttl = keep_failed_ms end
  redis.call('PEXPIRE', job, ttl)
  add_event(new)
  redis.call('PEXPIRE', events, ttl)
else
  redis.call('ZADD', open, now, id)
  redis.call('PERSIST', job)
  redis.call('PERSIST', events)
  add_event(new)
end
return 1
""".replace("HISTORY_MS", str(HISTORY_MS))

_REMOVE = """
local job, counts, delayed, completed, failed, open, events =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id = ARGV[1]
local old = redis.call('HGET', job, 'state')
if old == 'waiting' or old == 'active' then
  if redis.call('HINCRBY', counts, old, -1) < 0 then redis.call('HSET', counts, old, 0) end
end
redis.call('ZREM', delayed, id)
redis.call('ZREM', completed, id)
redis.call('ZREM', failed, id)
redis.call('ZREM', open, id)
redis.call('DEL', job, events)
redis.call('SET', KEYS[8], '1', 'PX', ARGV[2])
return old
"""

# Tombstones of removed jobs outlive the server's background deletion of their history.
REMOVED_TOMBSTONE_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Transition:
    """One change to a job's record: a new state (or none), an event and fields to set."""

    job_id: str
    queue: str
    state: JobState | None
    event: str | None = None
    fields: Mapping[str, str | int | float] = field(default_factory=dict)
    due_ms: int | None = None
    mode: str = "move"  # "add" (only if absent), "move", or "force" (may leave a final state)


def now_ms() -> int:
    return int(time.time() * 1000)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def connect_redis(settings: Settings) -> aioredis.Redis:
    # Short timeouts: a stalled Redis must not hold up enqueues or job execution.
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.effective_redis_url,
        decode_responses=True,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=15,
    )
    return client


class JobTracker:
    """Writes job state changes to Redis and reads job records and statistics back."""

    # After a failed call, skip Redis for this long instead of paying a timeout per job.
    BACKOFF_S = 2.0

    def __init__(
        self, redis: aioredis.Redis, catalog: Mapping[QueueName, QueueSpec], prefix: str
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self._specs = {name.value: spec for name, spec in catalog.items()}
        self.keys = Keys(prefix)
        self._transition = redis.register_script(_TRANSITION)
        self._remove = redis.register_script(_REMOVE)
        self._skip_until = 0.0
        self.missed_writes = 0

    # -- writes ----------------------------------------------------------------------

    @property
    def reachable(self) -> bool:
        return time.monotonic() >= self._skip_until

    def mark_down(self, exc: BaseException, operation: str) -> None:
        """Note a failed Redis call: skip Redis for BACKOFF_S instead of timing out per job."""
        if self.reachable:
            log.warning("redis.unavailable", operation=operation, error=type(exc).__name__)
        self._skip_until = time.monotonic() + self.BACKOFF_S

    def _args(self, t: Transition, now: int) -> tuple[list[str], list[str | int | float]]:
        spec = self._specs.get(t.queue)
        keep_done = spec.keep_completed_for.total_seconds() if spec else 86400.0
        keep_count = spec.keep_completed_count if spec else 1000
        keep_failed = spec.keep_failed_for.total_seconds() if spec else 7 * 86400.0
        k = self.keys
        keys = [
            k.job(t.job_id),
            k.counts(t.queue),
            k.delayed(t.queue),
            k.completed(t.queue),
            k.failed(t.queue),
            k.open(t.queue),
            k.events(t.job_id),
        ]
        flat: list[str | int | float] = []
        for name, value in t.fields.items():
            flat += [name, value]
        args: list[str | int | float] = [
            t.job_id,
            t.state.value if t.state else "",
            now,
            t.due_ms if t.due_ms is not None else now,
            t.mode,
            _ms(keep_done),
            keep_count,
            _ms(keep_failed),
            k.prefix,
            t.event or "",
            len(t.fields),
            *flat,
            EVENTS_PER_JOB,
            t.queue,
        ]
        return keys, args

    async def apply(self, *transitions: Transition) -> bool:
        """Apply transitions in one round trip; False (and nothing raised) if Redis is down."""
        if not transitions:
            return True
        if not self.reachable:
            self.missed_writes += len(transitions)
            return False
        now = now_ms()
        calls = [self._args(t, now) for t in transitions]
        try:
            try:
                await self._evalsha_all(calls)
            except NoScriptError:
                # A restarted Redis forgot the script: load it once and go again.
                await self.redis.script_load(_TRANSITION)
                await self._evalsha_all(calls)
        except (RedisError, OSError) as exc:
            self.missed_writes += len(transitions)
            self.mark_down(exc, "transition")
            return False
        return True

    async def _evalsha_all(self, calls: list[tuple[list[str], list[str | int | float]]]) -> None:
        # EVALSHA directly: a pipelined redis-py Script would first ask SCRIPT EXISTS,
        # a second round trip on every job start and every enqueue.
        sha = self._transition.sha
        if len(calls) == 1:
            keys, args = calls[0]
            await self.redis.evalsha(sha, len(keys), *keys, *args)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            await pipe.execute()

    async def remove(self, job_id: str, queue: str) -> None:
        k = self.keys
        keys = [
            k.job(job_id),
            k.counts(queue),
            k.delayed(queue),
            k.completed(queue),
            k.failed(queue),
            k.open(queue),
            k.events(job_id),
            k.removed(job_id),
        ]
        await self._remove(keys=keys, args=[job_id, REMOVED_TOMBSTONE_MS])

    async def is_removed(self, job_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.removed(job_id)))

    async def set_paused(self, queue: str, paused: bool) -> None:
        if paused:
            await self.redis.set(self.keys.paused(queue), "1")
        else:
            await self.redis.delete(self.keys.paused(queue))

    # -- reads -----------------------------------------------------------------------

    async def job(self, job_id: str) -> dict[str, str] | None:
        record = await self.redis.hgetall(self.keys.job(job_id))
        return {str(k): str(v) for k, v in record.items()} or None

    async def events(
        self, job_id: str, after: str = "-", count: int = EVENTS_PER_JOB
    ) -> list[tuple[str, dict[str, str]]]:
        """The job's event log from just after offset ``after`` (``-`` = from the start)."""
        start = after if after == "-" else f"({after}"
        entries = await self.redis.xrange(self.keys.events(job_id), min=start, count=count)
        return [
            (str(offset), {str(k): str(v) for k, v in (fields or {}).items()})
            for offset, fields in entries or []
        ]

    async def history(self, queue: str, minutes: int) -> list[dict[str, int]]:
        """The last ``minutes`` minutes of the queue, oldest first: per minute (its start in
        epoch milliseconds) the jobs completed and failed in it and the waiting count."""
        last = now_ms() // 60_000
        span = range(last - minutes + 1, last + 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for minute in span:
                pipe.hmget(self.keys.history(queue, minute), "completed", "failed", "waiting")
            answers = await pipe.execute()
        return [
            {
                "minute": minute * 60_000,
                "completed": int(completed or 0),
                "failed": int(failed or 0),
                "waiting": int(waiting or 0),
            }
            for minute, (completed, failed, waiting) in zip(span, answers, strict=True)
        ]

    async def stats(self, queues: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Counts per queue in one round trip: no scans, a handful of O(log n) reads."""
        names = list(queues)
        now = now_ms()
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                spec = self._specs[name]
                pipe.hmget(k.counts(name), "waiting", "active")
                pipe.zcount(k.delayed(name), f"({now}", "+inf")
                pipe.zcount(k.delayed(name), "-inf", now)
                pipe.zcount(
                    k.completed(name), now - _ms(spec.keep_completed_for.total_seconds()), "+inf"
                )
                pipe.zcount(k.failed(name), now - _ms(spec.keep_failed_for.total_seconds()), "+inf")
                pipe.exists(k.paused(name))
            replies = await pipe.execute()
        out: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(names):
            (waiting, active), delayed, due, completed, failed, paused = replies[i * 6 : i * 6 + 6]
            out[name] = {
                # A delayed job whose time has come is waiting for a worker.
                "waiting": int(waiting or 0) + int(due),
                "active": int(active or 0),
                "completed": min(int(completed), self._specs[name].keep_completed_count),
                "failed": int(failed),
                "delayed": int(delayed),
                "paused": bool(paused),
                "available": True,
            }
        return out
