"""VOICE_CALL: place an outbound call through Vapi, follow it to its end, record the outcome.

One attempt of the job: take a call slot (at most ``VOICE_MAX_CALLS_IN_FLIGHT`` calls in
flight across all workers; while none is free the job waits in line and is woken by the job
that gives one back, with a re-check every ``SLOT_RECHECK`` in case it is not), place the
call, then follow it by polling ``GET /call/{id}`` every ``POLL_INTERVAL``, or at once when a
Vapi server message arrives (the ``call_update`` signal; the poll confirms it). A call still
running ``CALL_TIMEOUT`` after it was placed is ended and recorded as ``timeout`` (AC-003).

Busy, no answer and voicemail are outcomes, not failures. A call that failed to connect (a
carrier or provider fault) is tried again after the queue's backoff, up to the job's attempts
(FR-031: 2, 5 s); other failures fail the job at once. Every ending is written by
``finish_call``, which counts the call in its campaign exactly once and frees the slot.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

from workflows import policies
from workflows.slots import SlotLine, raise_if_cancelled

with workflow.unsafe.imports_passed_through():
    from activities.voice import (
        CallSnapshot,
        CheckCallInput,
        FinishCallInput,
        HangUpInput,
        PlaceCallInput,
        VoiceActivities,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.errors import CALL_FAILED
    from core.jobs import JobType, VoiceCallJobData
    from core.runs import JobRun
    from core.signals import CALL_UPDATE, SLOT_FREED, CallUpdate
    from tracking.progress import report_workflow_progress

CALL_TIMEOUT = timedelta(minutes=10)
POLL_INTERVAL = timedelta(seconds=10)
# A job in line for a call slot asks again after these waits (the last repeats) even when
# nobody wakes it; woken, it asks at once.
SLOT_RECHECKS = (timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120))
# A job waits in line for at most this many asks per run, then continues as new (about
# three hours), so a long wait for a slot never grows one history without bound.
ASKS_PER_RUN = 100


class VoiceCallInput(JobRun[VoiceCallJobData]):
    """The job's input; a run continued while waiting for a slot carries its attempt."""

    attempt: int = 1


class VoiceCallResult(BaseModel):
    call_id: str
    vapi_call_id: str | None
    outcome: str
    ended_reason: str | None
    duration_seconds: float | None
    transcript: str | None
    recording_url: str | None
    cost: float | None
    attempts: int


def _failure_reason(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return str(getattr(cause, "message", None) or cause)


@workflow.defn(name=WORKFLOW_NAMES[JobType.VOICE_CALL])
class VoiceCallWorkflow:
    def __init__(self) -> None:
        self._vapi_call_id: str | None = None
        self._status = "queued"
        self._nudged = False
        self._line = SlotLine(SLOT_RECHECKS, ASKS_PER_RUN)

    @workflow.signal(name=SLOT_FREED)
    def slot_freed(self) -> None:
        self._line.woken()

    @workflow.signal(name=CALL_UPDATE)
    def call_update(self, update: CallUpdate) -> None:
        if self._vapi_call_id is None or update.vapi_call_id == self._vapi_call_id:
            self._status = update.status
            self._nudged = True

    @workflow.query(name="call_status")
    def call_status(self) -> str:
        return self._status

    @workflow.run
    async def run(self, job: VoiceCallInput) -> VoiceCallResult:
        data = job.data
        if data.phone_number_id is None:
            raise ApplicationError("the job has no stored phone number", non_retryable=True)
        attempts = job.run.retry.maximum_attempts
        attempt = job.attempt
        backoff = timedelta(milliseconds=job.run.retry.initial_interval_ms) * (
            job.run.retry.backoff_coefficient ** (attempt - 1)
        )
        try:
            while True:
                snapshot = await self._one_attempt(job, attempt)
                last_try = attempt >= attempts
                if snapshot.outcome == "failed" and snapshot.retryable and not last_try:
                    await self._finish(job, snapshot, final=False)
                    await workflow.sleep(backoff)
                    backoff *= job.run.retry.backoff_coefficient
                    attempt += 1
                    continue
                await self._finish(job, snapshot, final=True)
                if snapshot.outcome == "failed":
                    raise ApplicationError(
                        f"call failed: {snapshot.ended_reason or 'unknown reason'}",
                        type=CALL_FAILED,
                        non_retryable=True,
                    )
                return VoiceCallResult(
                    call_id=data.call_id,
                    vapi_call_id=snapshot.vapi_call_id,
                    outcome=snapshot.outcome or "failed",
                    ended_reason=snapshot.ended_reason,
                    duration_seconds=(
                        snapshot.duration_ms / 1000 if snapshot.duration_ms is not None else None
                    ),
                    transcript=snapshot.transcript,
                    recording_url=snapshot.recording_url,
                    cost=snapshot.cost,
                    attempts=attempt,
                )
        except BaseException as error:
            if is_cancelled_exception(error):
                await self._hang_up_on_cancel(job)
                await self._record_failure(job, "cancelled")
            elif isinstance(error, ActivityError):
                # Placing or following the call failed for good: record why, free the slot.
                await self._record_failure(job, _failure_reason(error))
            raise

    async def _hang_up_on_cancel(self, job: VoiceCallInput) -> None:
        """A cancelled job hangs up its call before it ends. The cancel may have cut the wait
        for place_call's answer, so without the call's id here the call row is asked."""
        if self._status == "ended":
            return
        try:
            await workflow.execute_activity_method(
                VoiceActivities.hang_up,
                HangUpInput(
                    job_id=workflow.info().workflow_id,
                    call_id=job.data.call_id,
                    user_id=job.data.user_id,
                    vapi_call_id=self._vapi_call_id,
                ),
                **policies.http_call(job.run),
            )
        except ActivityError:
            workflow.logger.warning("voice.end_on_cancel_failed")

    async def _one_attempt(self, job: VoiceCallInput, attempt: int) -> CallSnapshot:
        data = job.data
        self._vapi_call_id, self._status, self._nudged = None, "queued", False
        while True:
            self._line.asking()
            placed = await workflow.execute_activity_method(
                VoiceActivities.place_call,
                PlaceCallInput(
                    job_id=workflow.info().workflow_id,
                    call_id=data.call_id,
                    user_id=data.user_id,
                    campaign_id=data.campaign_id,
                    assistant_id=data.assistant_id,
                    phone_number_id=data.phone_number_id or "",
                    attempt=attempt,
                    metadata=data.metadata,
                ),
                **policies.http_call(job.run),
            )
            if placed.placed and placed.vapi_call_id is not None:
                self._vapi_call_id = placed.vapi_call_id
                self._status = placed.status or "queued"
                raise_if_cancelled()
                break
            raise_if_cancelled()
            # Still in line (holder and place are the job id's): a continued run keeps both.
            await self._line.wait(lambda: job.model_copy(update={"attempt": attempt}))
        report_workflow_progress(10)
        deadline = workflow.now() + CALL_TIMEOUT
        check = CheckCallInput(
            job_id=workflow.info().workflow_id,
            call_id=data.call_id,
            vapi_call_id=placed.vapi_call_id,
        )
        while True:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return await self._time_out(job, check)
            try:
                await workflow.wait_condition(
                    lambda: self._nudged, timeout=min(POLL_INTERVAL, remaining)
                )
            except TimeoutError:
                pass
            self._nudged = False
            try:
                snapshot = await workflow.execute_activity_method(
                    VoiceActivities.check_call, check, **policies.http_call(job.run)
                )
            except ActivityError as error:
                if isinstance(error.cause, ApplicationError) and error.cause.non_retryable:
                    raise
                # A poll that failed is only a missed look; the next one follows.
                workflow.logger.warning("voice.check_failed")
                raise_if_cancelled()
                continue
            raise_if_cancelled()
            if snapshot.status != self._status:
                self._status = snapshot.status
                report_workflow_progress(50 if snapshot.status == "in-progress" else 20)
            if snapshot.ended:
                return snapshot

    async def _time_out(self, job: JobRun[VoiceCallJobData], check: CheckCallInput) -> CallSnapshot:
        snapshot = await workflow.execute_activity_method(
            VoiceActivities.end_call, check, **policies.http_call(job.run)
        )
        self._status = "ended"
        if snapshot.ended and snapshot.ended_reason != "manually-canceled":
            # It had ended on its own just before: that ending stands.
            return snapshot
        # Ended by us: one more look picks up its final cost and times, when Vapi has them.
        for _ in range(3):
            if snapshot.ended and snapshot.ended_at is not None:
                break
            await workflow.sleep(timedelta(seconds=2))
            try:
                look = await workflow.execute_activity_method(
                    VoiceActivities.check_call, check, **policies.http_call(job.run)
                )
            except ActivityError:
                break
            if look.ended:
                snapshot = look
        return snapshot.model_copy(
            update={
                "outcome": "timeout",
                "retryable": False,
                "ended_reason": snapshot.ended_reason or "timeout",
            }
        )

    async def _finish(
        self, job: JobRun[VoiceCallJobData], snapshot: CallSnapshot, *, final: bool
    ) -> None:
        failure = (
            f"call failed: {snapshot.ended_reason or 'unknown reason'}"
            if snapshot.outcome == "failed"
            else None
        )
        ending = snapshot.model_dump(
            include={
                "vapi_call_id",
                "ended_reason",
                "transcript",
                "recording_url",
                "cost",
                "duration_ms",
                "started_at",
                "ended_at",
            }
        )
        await self._end(
            job,
            final=final,
            outcome=snapshot.outcome or "failed",
            failure_reason=failure,
            **ending,
        )

    async def _record_failure(self, job: JobRun[VoiceCallJobData], reason: str) -> None:
        await self._end(
            job,
            final=True,
            outcome="failed",
            vapi_call_id=self._vapi_call_id,
            failure_reason=reason[:500],
        )

    async def _end(self, job: JobRun[VoiceCallJobData], **ending: Any) -> None:
        """Write an attempt's ending (finish_call frees the slot) and wake who waits for it."""
        ended = await workflow.execute_activity_method(
            VoiceActivities.finish_call,
            FinishCallInput(
                job_id=workflow.info().workflow_id,
                call_id=job.data.call_id,
                user_id=job.data.user_id,
                **ending,
            ),
            **policies.db_step(job.run),
        )
        await self._wake(ended.wake)

    async def _wake(self, job_ids: list[str]) -> None:
        """Tell the jobs in line for a call slot that one is free."""
        me = workflow.info().workflow_id
        for job_id in job_ids:
            if job_id == me:
                continue
            try:
                await workflow.get_external_workflow_handle(job_id).signal(SLOT_FREED)
            except FailureError:
                # It ended meanwhile; the next one in line is woken with the next slot.
                workflow.logger.info("voice.waiter_gone")
