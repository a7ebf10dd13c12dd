"""Adding jobs: validation of data and options, deduplication by job id, and the start of the
job's workflow with its run options, priority, fairness key and owner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from client.base import Job, QueueBase
from core import temporal
from core.catalog import JOB_KINDS
from core.errors import (
    InvalidArguments,
    InvalidJobData,
    JobTypeNotAvailable,
    WrongQueue,
    describe_problems,
)
from core.jobs import AdFileSource, JobData, JobType, WorkflowExecutionJobData, user_id_of
from core.logging import get_logger
from core.runs import JobRun, run_options
from db.job_inputs import InputOfAnotherUser
from tracking.store import JobState, Transition, now_ms

log = get_logger("jobs.client")

_JOB_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")
# Encoded job data refused above this size (see size_problems and README).
MAX_JOB_DATA_BYTES = 256 * 1024


def validate_options(
    delay: int | timedelta | None,
    priority: int | None,
    attempts: int | None,
    job_id: str | None,
) -> dict[str, str]:
    """Problems with add_job's options, by option name (empty when all are fine)."""
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


def coerce_data(job_type: JobType, data: JobData | Mapping[str, Any]) -> JobData:
    """The job's data as its validated model; InvalidJobData names every bad field."""
    model = JOB_KINDS[job_type].data
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


def secret_problems(data: JobData) -> dict[str, str]:
    """A producer gives each secret field and stored list, and never the id or count the
    system replaces it with."""
    problems: dict[str, str] = {}
    kind = type(data)
    for field, ref in {**kind.secret_fields, **kind.stored_lists}.items():
        if getattr(data, ref) is not None:
            problems[ref] = f"is set by the system; give {field}"
        if getattr(data, field) is None and field not in kind.optional_secrets:
            problems[field] = "Field required"
    return problems


def size_problems(data: JobData) -> dict[str, str]:
    """Job data over MAX_JOB_DATA_BYTES once encoded, named by its largest field.

    Temporal refuses a payload over about 2 MB and gRPC a message over 4 MB, with errors
    that name no field; far below that, large inputs bloat every history they are in.
    """
    size = len(data.model_dump_json(by_alias=False))
    if size <= MAX_JOB_DATA_BYTES:
        return {}
    fields = data.model_dump(mode="json")
    largest = max(fields, key=lambda name: len(json.dumps(fields[name])), default="data")
    return {
        largest: (
            f"job data is {size:,} bytes encoded, over the limit of {MAX_JOB_DATA_BYTES:,}; "
            "store large content elsewhere and pass its id or URL"
        )
    }


class Enqueue(QueueBase):
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
        """Validate and start a job; nothing is started or stored when validation fails.

        Raises UnknownQueue, UnknownJobType, WrongQueue, InvalidArguments (bad options),
        InvalidJobData (bad data, naming each field), JobTypeNotAvailable.
        """
        queue = self._queue(queue_name)
        kind_type = self._job_type(job_type)
        kind = JOB_KINDS[kind_type]
        if kind.queue != queue:
            raise WrongQueue(kind_type.value, queue.value, kind.queue.value)
        option_problems = validate_options(delay, priority, attempts, job_id)
        if option_problems:
            raise InvalidArguments("add_job", option_problems, kind="options")
        parsed = coerce_data(kind_type, data)
        problems = {**secret_problems(parsed), **size_problems(parsed)}
        if problems:
            raise InvalidJobData(kind_type.value, problems)
        if not kind.implemented:
            raise JobTypeNotAvailable(kind_type.value)
        if isinstance(parsed, WorkflowExecutionJobData):
            parsed = await self._pin_browser_workflow(parsed)
        if isinstance(getattr(parsed, "source", None), AdFileSource):
            await self._check_ad_file(parsed)

        start_delay = delay if isinstance(delay, timedelta) else timedelta(milliseconds=delay or 0)
        user_id = user_id_of(parsed)
        explicit_id = job_id is not None
        job_id = job_id or f"{kind_type.value}-{uuid.uuid4().hex}"
        spec = self.catalog[queue]

        if explicit_id and self.job_keys is not None:
            claim = await self.job_keys.claim(
                job_id,
                queue.value,
                kind_type.value,
                user_id,
                timedelta(seconds=self.settings.job_dedup_window_seconds),
            )
            if not claim.claimed:
                log.info("job.deduplicated", job_id=job_id, queue=queue.value, type=kind_type.value)
                return Job(job_id, queue.value, kind_type, deduplicated=True)
        needed_for = start_delay + 2 * spec.keep_failed_for + timedelta(days=1)
        try:
            parsed = await self._stash_secrets(parsed, user_id, needed_for)
            parsed = await self._store_lists(parsed, job_id, user_id, needed_for)
        except BaseException:
            if explicit_id and self.job_keys is not None:
                await self.job_keys.release(job_id)
            raise

        run_model: type[JobRun[Any]] = JobRun[type(parsed)]  # type: ignore[misc,assignment]
        search_attributes = (
            TypedSearchAttributes([SearchAttributePair(temporal.USER_ID_ATTRIBUTE, user_id)])
            if user_id
            else TypedSearchAttributes.empty
        )
        delayed = start_delay > timedelta(0)
        fields: dict[str, str | int | float] = {
            "type": kind_type.value,
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
                kind.workflow_name,
                # Parametrised so the job's own fields are serialised, not just the base's.
                run_model(data=parsed, run=run_options(spec, kind_type, attempts)),
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
            if type(parsed).stored_lists and self.inputs is not None:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self.inputs.remove(job_id)
            raise
        if recording is not None:
            await recording
        log.info(
            "job.added",
            job_id=job_id,
            queue=queue.value,
            type=kind_type.value,
            delay_ms=int(start_delay.total_seconds() * 1000),
            priority=priority,
        )
        return Job(job_id, queue.value, kind_type, run_id=handle.first_execution_run_id)

    async def _stash_secrets(
        self, data: JobData, user_id: str | None, needed_for: timedelta
    ) -> JobData:
        """The data with each secret stored and replaced by its id (db/secrets.py)."""
        fields = type(data).secret_fields
        if not fields:
            return data
        if self.secrets is None:
            raise RuntimeError("this JobQueue has no database for job secrets")
        update: dict[str, Any] = {}
        for field, ref in fields.items():
            value = getattr(data, field)
            if value is None:  # an optional secret left out
                continue
            # A secret made of several values (a dict) is stored as one JSON document.
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            update[ref] = await self.secrets.put(user_id or "", text, needed_for=needed_for)
            update[field] = None
        return data.model_copy(update=update)

    async def _store_lists(
        self, data: JobData, job_id: str, user_id: str | None, needed_for: timedelta
    ) -> JobData:
        """The data with each stored list written to the database and replaced by its count
        (db/job_inputs.py), so the job's input does not grow with the list."""
        fields = type(data).stored_lists
        if not fields:
            return data
        if self.inputs is None:
            raise RuntimeError("this JobQueue has no database for job inputs")
        update: dict[str, Any] = {}
        for field, count_field in fields.items():
            items = [item.model_dump(mode="json") for item in getattr(data, field)]
            try:
                update[count_field] = await self.inputs.put(
                    job_id, field, user_id or "", items, needed_for=needed_for
                )
            except InputOfAnotherUser:
                raise InvalidArguments(
                    "add_job", {"job_id": "is the id of another user's job"}, kind="options"
                ) from None
            update[field] = None
        return data.model_copy(update=update)
