"""The producer-facing job API (PRD-036 appendix B) over Temporal and the Redis adapter.

A job is a workflow execution whose id is the job id; its queue is the task queue of the
same name. Redis holds the job records and statistics for fast reads; Temporal stays the
source of truth and answers when Redis cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, ValidationError
from redis.exceptions import RedisError
from temporalio.api.common.v1 import WorkflowExecution as WorkflowExecutionRef
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    Priority,
    RawValue,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from core import temporal as admin
from core.config import Settings, get_settings
from core.crypto import TokenCipher, token_key
from core.errors import (
    InvalidArguments,
    InvalidJobData,
    InvalidJobState,
    JobNotFound,
    JobTypeNotAvailable,
    UnknownJobType,
    UnknownQueue,
    WrongQueue,
    describe_problems,
)
from core.failures import failure_reason
from core.jobs import JOB_DATA_MODELS, WORKFLOW_NAMES, JobData, JobType, NonEmptyId, user_id_of
from core.logging import get_logger
from core.queues import QUEUE_OF_JOB_TYPE, QueueName, QueueSpec, load_catalog
from core.runs import JobRun, run_options
from core.temporal import connect
from db.dedup import JobKeyStore
from db.email import EmailAccountStore
from db.session import create_engine, create_sessionmaker
from tracking.store import JobState, JobTracker, Transition, connect_redis, now_ms

log = get_logger("jobs.client")


@functools.cache
def available_job_types() -> frozenset[JobType]:
    """Job types whose workflow exists; the others are declared and validated but refused.

    Imported on first use: the workflow modules import worker-side modules that import this
    package, so importing the registry here at load time would be circular.
    """
    from workflows.registry import WORKFLOWS_BY_JOB_TYPE

    return frozenset(WORKFLOWS_BY_JOB_TYPE)


_JOB_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")

_CLOSED_STATE = {
    WorkflowExecutionStatus.COMPLETED: JobState.COMPLETED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
    WorkflowExecutionStatus.CANCELED: JobState.FAILED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
}


@dataclass(frozen=True, slots=True)
class Job:
    """Handle of an enqueued job."""

    id: str
    queue: str
    type: JobType
    run_id: str | None = None
    deduplicated: bool = False


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job's state as seen by producers and operators."""

    id: str
    queue: str
    type: str
    state: JobState
    progress: int
    attempts_made: int
    result: Any
    failure_reason: str | None
    added_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    user_id: str | None = None


def _ms_to_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(float(value)) / 1000, UTC)


def _validate_options(
    delay: int | timedelta | None,
    priority: int | None,
    attempts: int | None,
    job_id: str | None,
) -> dict[str, str]:
    problems: dict[str, str] = {}
    if delay is not None:
        if isinstance(delay, timedelta):
            if delay < timedelta(0):
                problems["delay"] = "must not be negative"
        elif isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            problems["delay"] = "must be milliseconds (int >= 0) or a timedelta"
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10
    ):
        problems["priority"] = "must be an integer from 1 (runs first) to 10"
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100
    ):
        problems["attempts"] = "must be an integer from 1 to 100"
    if job_id is not None and (not isinstance(job_id, str) or not _JOB_ID.match(job_id)):
        problems["job_id"] = "must be 1..200 characters of letters, digits and ._:@/+=-"
    return problems


def _coerce_data(job_type: JobType, data: JobData | Mapping[str, Any]) -> JobData:
    model = JOB_DATA_MODELS[job_type]
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        raise InvalidJobData(job_type.value, {"data": f"must be a mapping or {model.__name__}"})
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidJobData(job_type.value, describe_problems(exc.errors())) from None


def _state_from_description(desc: WorkflowExecutionDescription) -> JobState:
    if desc.status in _CLOSED_STATE:
        return _CLOSED_STATE[desc.status]
    pending = desc.raw_description.pending_activities
    if any(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending):
        return JobState.ACTIVE
    if any(a.attempt > 1 for a in pending):
        return JobState.DELAYED
    if desc.execution_time and desc.execution_time > datetime.now(UTC):
        return JobState.DELAYED
    return JobState.WAITING


class ConnectEmailAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: NonEmptyId
    provider: Literal["gmail", "outlook"]
    email_address: EmailStr
    access_token: str = Field(min_length=1, repr=False)
    refresh_token: str = Field(min_length=1, repr=False)
    expires_at: AwareDatetime


class VipSenders(BaseModel):
    user_id: NonEmptyId
    addresses: list[EmailStr] = Field(max_length=1000)


class JobQueue:
    """All queue operations; module-level functions use one shared instance."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        *,
        tracker: JobTracker | None,
        job_keys: JobKeyStore | None,
        catalog: Mapping[QueueName, QueueSpec] | None = None,
        accounts: EmailAccountStore | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.catalog = dict(catalog or load_catalog())
        self.tracker = tracker
        self.job_keys = job_keys
        self.accounts = accounts
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    async def connect(
        cls,
        settings: Settings | None = None,
        *,
        catalog: Mapping[QueueName, QueueSpec] | None = None,
    ) -> JobQueue:
        """A queue with its own Temporal, Redis and database connections (close() them)."""
        settings = settings or get_settings()
        catalog = dict(catalog) if catalog is not None else load_catalog()
        client = await connect(settings)
        redis = connect_redis(settings)
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        queue = cls(
            client,
            settings,
            tracker=JobTracker(redis, catalog, settings.redis_key_prefix),
            job_keys=JobKeyStore(sessions),
            catalog=catalog,
            accounts=EmailAccountStore(sessions, TokenCipher(token_key(settings))),
        )
        queue._closers = [redis.aclose, engine.dispose]
        return queue

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            try:
                await close()
            except (RedisError, OSError) as exc:
                log.warning("queue.close_failed", error=type(exc).__name__)

    # -- validation ------------------------------------------------------------------

    def _queue(self, name: object) -> QueueName:
        try:
            return QueueName(str(name))
        except ValueError:
            raise UnknownQueue(name, [q.value for q in QueueName]) from None

    @staticmethod
    def _job_type(name: object) -> JobType:
        try:
            return JobType(str(name))
        except ValueError:
            raise UnknownJobType(name, [t.value for t in JobType]) from None

    # -- producing -------------------------------------------------------------------

    async def add_job(
        self,
        queue_name: str,
        job_type: str | JobType,
        data: JobData | Mapping[str, Any],
        *,
        delay: int | timedelta | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        job_id: str | None = None,
    ) -> Job:
        queue = self._queue(queue_name)
        kind = self._job_type(job_type)
        expected = QUEUE_OF_JOB_TYPE[kind]
        if expected != queue:
            raise WrongQueue(kind.value, queue.value, expected.value)
        problems = _validate_options(delay, priority, attempts, job_id)
        try:
            parsed = _coerce_data(kind, data)
        except InvalidJobData as exc:
            problems = {**exc.problems, **problems}
        if problems:
            raise InvalidJobData(kind.value, problems)
        if kind not in available_job_types():
            raise JobTypeNotAvailable(kind.value)

        start_delay = delay if isinstance(delay, timedelta) else timedelta(milliseconds=delay or 0)
        user_id = user_id_of(parsed)
        explicit_id = job_id is not None
        job_id = job_id or f"{kind.value}-{uuid.uuid4().hex}"

        if explicit_id and self.job_keys is not None:
            claim = await self.job_keys.claim(
                job_id,
                queue.value,
                kind.value,
                user_id,
                timedelta(seconds=self.settings.job_dedup_window_seconds),
            )
            if not claim.claimed:
                log.info("job.deduplicated", job_id=job_id, queue=queue.value, type=kind.value)
                return Job(job_id, queue.value, kind, deduplicated=True)

        spec = self.catalog[queue]
        run_model: type[JobRun[Any]] = JobRun[type(parsed)]  # type: ignore[misc,assignment]
        search_attributes = (
            TypedSearchAttributes([SearchAttributePair(admin.USER_ID_ATTRIBUTE, user_id)])
            if user_id
            else TypedSearchAttributes.empty
        )
        delayed = start_delay > timedelta(0)
        fields: dict[str, str | int | float] = {
            "type": kind.value,
            "added_at": now_ms(),
            "attempts": 0,
            "progress": 0,
        }
        if user_id:
            fields["user_id"] = user_id
        if priority is not None:
            fields["priority"] = priority
        added = Transition(
            job_id=job_id,
            queue=queue.value,
            state=JobState.DELAYED if delayed else JobState.WAITING,
            event="added",
            fields=fields,
            due_ms=now_ms() + int(start_delay.total_seconds() * 1000),
            mode="add",
        )
        # The job record is written while the server starts the workflow, so the Redis
        # round trip adds nothing to enqueue latency; a failed start takes it back.
        recording = (
            asyncio.ensure_future(self.tracker.apply(added)) if self.tracker is not None else None
        )
        try:
            handle = await self.client.start_workflow(
                WORKFLOW_NAMES[kind],
                # Parametrised so the job's own fields are serialised, not just the base's.
                run_model(data=parsed, run=run_options(spec, kind, attempts)),
                id=job_id,
                task_queue=queue.value,
                start_delay=start_delay if delayed else None,
                priority=Priority(priority_key=priority, fairness_key=user_id),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=search_attributes,
            )
        except BaseException:
            if recording is not None and self.tracker is not None:
                await recording
                with contextlib.suppress(RedisError, OSError):
                    await self.tracker.remove(job_id, queue.value)
            if explicit_id and self.job_keys is not None:
                await self.job_keys.release(job_id)
            raise
        if recording is not None:
            await recording
        log.info(
            "job.added",
            job_id=job_id,
            queue=queue.value,
            type=kind.value,
            delay_ms=int(start_delay.total_seconds() * 1000),
            priority=priority,
        )
        return Job(job_id, queue.value, kind, run_id=handle.first_execution_run_id)

    # -- mailboxes -------------------------------------------------------------------

    async def connect_email_account(
        self,
        user_id: str,
        provider: str,
        email_address: str,
        access_token: str,
        refresh_token: str,
        expires_at: datetime,
    ) -> str:
        """Register a user's mailbox (tokens encrypted at rest); returns the account id that
        ``EmailSyncJobData.account_id`` names. Connecting it again replaces the tokens."""
        if self.accounts is None:
            raise RuntimeError("this JobQueue has no database for email accounts")
        try:
            account = ConnectEmailAccount(
                user_id=user_id,
                provider=provider,
                email_address=email_address,
                access_token=access_token,
                refresh_token=refresh_token,
                expires_at=expires_at,
            )
        except ValidationError as exc:
            raise InvalidArguments(
                "connect_email_account", describe_problems(exc.errors())
            ) from None
        account_id = await self.accounts.connect(**account.model_dump())
        log.info(
            "email_account.connected", account_id=account_id, provider=provider, user_id=user_id
        )
        return account_id

    async def set_vip_senders(self, user_id: str, addresses: list[str]) -> None:
        """Replace the user's VIP senders: their new mail always gets an auto-draft."""
        if self.accounts is None:
            raise RuntimeError("this JobQueue has no database for email accounts")
        try:
            vips = VipSenders(user_id=user_id, addresses=addresses)
        except ValidationError as exc:
            raise InvalidArguments("set_vip_senders", describe_problems(exc.errors())) from None
        await self.accounts.set_vip_senders(vips.user_id, [str(a) for a in vips.addresses])

    # -- reading ---------------------------------------------------------------------

    async def _record(self, job_id: str) -> dict[str, str] | None:
        if self.tracker is None or not self.tracker.reachable:
            return None
        try:
            return await self.tracker.job(job_id)
        except (RedisError, OSError):
            return None

    async def _removed(self, job_id: str) -> bool:
        if self.tracker is None or not self.tracker.reachable:
            return False
        try:
            return await self.tracker.is_removed(job_id)
        except (RedisError, OSError):
            return False

    async def _describe(self, job_id: str) -> WorkflowExecutionDescription | None:
        try:
            return await self.client.get_workflow_handle(job_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def get_job(self, job_id: str, *, user_id: str | None = None) -> JobInfo:
        """The job's state; with ``user_id``, only that user's jobs are visible."""
        record = await self._record(job_id)
        desc = None
        if record is None:
            # The server deletes removed jobs in the background; until it has, the
            # tombstone hides them.
            if await self._removed(job_id):
                raise JobNotFound(job_id)
            desc = await self._describe(job_id)
            if desc is None:
                raise JobNotFound(job_id)
        if record is not None:
            state = JobState(record["state"])
            queue = record.get("queue", "")
            kind = record.get("type", "")
            owner = record.get("user_id")
            info = JobInfo(
                id=job_id,
                queue=queue,
                type=kind,
                state=state,
                progress=int(record.get("progress", 0)),
                attempts_made=int(record.get("attempts", 0)),
                result=None,
                failure_reason=record.get("failed_reason") or None,
                added_at=_ms_to_dt(record.get("added_at")),
                started_at=_ms_to_dt(record.get("started_at")),
                finished_at=_ms_to_dt(record.get("finished_at")),
                user_id=owner,
            )
        else:
            assert desc is not None
            state = _state_from_description(desc)
            attrs = desc.typed_search_attributes
            owner = attrs.get(admin.USER_ID_ATTRIBUTE)
            pending = desc.raw_description.pending_activities
            info = JobInfo(
                id=job_id,
                queue=desc.task_queue,
                type=desc.workflow_type.replace("-", "_"),
                state=state,
                progress=100 if state is JobState.COMPLETED else 0,
                attempts_made=max((a.attempt for a in pending), default=0),
                result=None,
                failure_reason=None,
                added_at=desc.start_time,
                started_at=None,
                finished_at=desc.close_time,
                user_id=owner,
            )
        if user_id is not None and info.user_id != user_id:
            raise JobNotFound(job_id)
        if info.state in (JobState.COMPLETED, JobState.FAILED):
            result, reason = await self._outcome(job_id, info.state)
            info = replace(info, result=result, failure_reason=info.failure_reason or reason)
        return info

    async def _outcome(self, job_id: str, state: JobState) -> tuple[Any, str | None]:
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(job_id)
        try:
            return await handle.result(follow_runs=False), None
        except WorkflowFailureError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return None, failure_reason(cause)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None, None
            raise
        except Exception as exc:  # terminated or timed out runs end without a failure cause
            return None, failure_reason(exc) if state is JobState.FAILED else None

    async def get_job_events(
        self, job_id: str, after: str = "-", *, user_id: str | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """The job's lifecycle events after offset ``after``, oldest first (replayable).

        With ``user_id``, another user's job is not found (JobNotFound), as in get_job.
        """
        if user_id is not None:
            await self.get_job(job_id, user_id=user_id)
        if self.tracker is None:
            return []
        return await self.tracker.events(job_id, after)

    # -- statistics ------------------------------------------------------------------

    async def get_queue_stats(self, queue_name: str) -> dict[str, Any]:
        queue = self._queue(queue_name)
        return (await self._stats([queue.value]))[queue.value]

    async def get_all_queue_stats(self) -> dict[str, dict[str, Any]]:
        return await self._stats([q.value for q in QueueName])

    async def _stats(self, queues: list[str]) -> dict[str, dict[str, Any]]:
        if self.tracker is not None and self.tracker.reachable:
            try:
                return await self.tracker.stats(queues)
            except (RedisError, OSError) as exc:
                self.tracker.mark_down(exc, "stats")
        answers = await asyncio.gather(*(self._stats_from_temporal(q) for q in queues))
        return dict(zip(queues, answers, strict=True))

    async def _stats_from_temporal(self, queue: str) -> dict[str, Any]:
        """Counts from Temporal visibility when Redis cannot answer (slower, coarser)."""
        spec = self.catalog[QueueName(queue)]
        since_done = datetime.now(UTC) - spec.keep_completed_for
        since_failed = datetime.now(UTC) - spec.keep_failed_for
        base = f'TaskQueue="{queue}"'
        try:
            running, completed, failed, rate = await asyncio.wait_for(
                asyncio.gather(
                    self.client.count_workflows(f'{base} AND ExecutionStatus="Running"'),
                    self.client.count_workflows(
                        f'{base} AND ExecutionStatus="Completed" '
                        f'AND CloseTime > "{since_done.isoformat()}"'
                    ),
                    self.client.count_workflows(
                        f'{base} AND ExecutionStatus IN ("Failed","Canceled","Terminated",'
                        f'"TimedOut") AND CloseTime > "{since_failed.isoformat()}"'
                    ),
                    admin.get_queue_rate(self.client, self.settings.temporal_namespace, queue),
                ),
                timeout=5,
            )
        except (RPCError, TimeoutError, OSError) as exc:
            log.warning("stats.unavailable", queue=queue, error=type(exc).__name__)
            return {
                "waiting": 0,
                "active": 0,
                "completed": 0,
                "failed": 0,
                "delayed": 0,
                "paused": False,
                "available": False,
            }
        return {
            # Visibility cannot tell waiting from active jobs without a describe per job.
            "waiting": running.count,
            "active": 0,
            "completed": min(completed.count, spec.keep_completed_count),
            "failed": failed.count,
            "delayed": 0,
            "paused": rate.paused,
            "available": True,
        }

    # -- operating -------------------------------------------------------------------

    async def pause_queue(self, queue_name: str) -> None:
        """Stop dispatch of the queue to every worker; running jobs finish, nothing is lost."""
        queue = self._queue(queue_name)
        await admin.set_queue_rate(
            self.client, self.settings.temporal_namespace, queue.value, 0.0, admin.PAUSED_REASON
        )
        await self._set_paused_flag(queue.value, True)
        log.info("queue.paused", queue=queue.value)

    async def resume_queue(self, queue_name: str) -> None:
        queue = self._queue(queue_name)
        await admin.set_queue_rate(
            self.client,
            self.settings.temporal_namespace,
            queue.value,
            self.catalog[queue].rate_per_second,
            "resumed",
        )
        await self._set_paused_flag(queue.value, False)
        log.info("queue.resumed", queue=queue.value)

    async def _set_paused_flag(self, queue: str, paused: bool) -> None:
        if self.tracker is None:
            return
        try:
            await self.tracker.set_paused(queue, paused)
        except (RedisError, OSError) as exc:
            # The reconciler copies the server's state back into Redis.
            self.tracker.mark_down(exc, "pause")

    async def _finish(self, job_id: str, queue: str, state: JobState, reason: str) -> None:
        if self.tracker is None:
            return
        await self.tracker.apply(
            Transition(
                job_id=job_id,
                queue=queue,
                state=state,
                event="failed",
                fields={"failed_reason": reason, "finished_at": now_ms()},
            )
        )

    async def cancel_job(self, job_id: str) -> None:
        """Cancel a waiting, delayed or running job; it ends failed with reason 'cancelled'.

        A running job's activity sees the cancel through its heartbeat and cleans up; one
        that has not finished after the grace period is terminated.
        """
        desc = await self._describe(job_id)
        if desc is None:
            raise JobNotFound(job_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise InvalidJobState(f"job {job_id!r} is not waiting or running")
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(job_id)
        state = _state_from_description(desc)
        if state is JobState.ACTIVE:
            await handle.cancel()
            try:
                await asyncio.wait_for(
                    handle.result(follow_runs=False), self.settings.job_cancel_grace_seconds
                )
            except TimeoutError:
                log.warning("job.cancel_grace_expired", job_id=job_id, queue=desc.task_queue)
                await handle.terminate(reason="cancelled")
            except WorkflowFailureError:
                pass  # the expected end of a cancelled job
        else:
            # Nothing runs yet, so there is nothing to clean up.
            await handle.terminate(reason="cancelled")
        await self._finish(job_id, desc.task_queue, JobState.FAILED, "cancelled")
        log.info("job.cancelled", job_id=job_id, queue=desc.task_queue)

    async def retry_job(self, job_id: str) -> Job:
        """Run a failed job again under the same id, with its original input and options."""
        desc = await self._describe(job_id)
        if desc is None:
            raise JobNotFound(job_id)
        if desc.status is None or _CLOSED_STATE.get(desc.status) is not JobState.FAILED:
            raise InvalidJobState(f"only failed jobs can be retried; {job_id!r} is not failed")
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(
            job_id, run_id=desc.run_id
        )
        started = None
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                started = event.workflow_execution_started_event_attributes
            break
        if started is None:
            raise InvalidJobState(f"job {job_id!r} has no start event to retry from")
        payloads = list(started.input.payloads)
        codec = self.client.data_converter.payload_codec
        if codec is not None:
            payloads = await codec.decode(payloads)
        priority = started.priority if started.HasField("priority") else None
        await self.client.start_workflow(
            desc.workflow_type,
            RawValue(payloads[0]),
            id=job_id,
            task_queue=desc.task_queue,
            priority=(
                Priority(
                    priority_key=priority.priority_key or None,
                    fairness_key=priority.fairness_key or None,
                )
                if priority is not None
                else Priority.default
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=desc.typed_search_attributes,
        )
        if self.tracker is not None:
            await self.tracker.apply(
                Transition(
                    job_id=job_id,
                    queue=desc.task_queue,
                    state=JobState.WAITING,
                    event="retried",
                    fields={"attempts": 0, "progress": 0, "failed_reason": "", "finished_at": ""},
                    mode="force",
                )
            )
        log.info("job.retried", job_id=job_id, queue=desc.task_queue)
        return Job(job_id, desc.task_queue, self._job_type(desc.workflow_type.replace("-", "_")))

    async def remove_job(self, job_id: str) -> None:
        """Forget a job everywhere: a running one is terminated first."""
        desc = await self._describe(job_id)
        record = await self._record(job_id)
        if desc is None and record is None:
            raise JobNotFound(job_id)
        queue = desc.task_queue if desc is not None else (record or {}).get("queue", "")
        if desc is not None:
            if desc.status == WorkflowExecutionStatus.RUNNING:
                await self.client.get_workflow_handle(job_id).terminate(reason="removed")
            try:
                await self.client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self.settings.temporal_namespace,
                        workflow_execution=WorkflowExecutionRef(workflow_id=job_id),
                    )
                )
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        if self.tracker is not None and queue:
            await self.tracker.remove(job_id, queue)
        if self.job_keys is not None:
            await self.job_keys.release(job_id)
        log.info("job.removed", job_id=job_id, queue=queue)
