"""What a job workflow receives: the job's data plus the run options resolved at enqueue.

Retry and timeout settings are resolved by the client from the queue catalog (with
configuration overrides and the job's own ``attempts``) and carried in the input, so the
workflow never reads configuration and every retry of a job uses the same settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.jobs import JobData, JobType
from core.queues import QueueSpec


class RetrySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    maximum_attempts: int = Field(ge=1)
    initial_interval_ms: int = Field(ge=1)
    backoff_coefficient: float = Field(ge=1)
    maximum_interval_ms: int = Field(ge=1)


class RunOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    queue: str
    job_type: JobType
    retry: RetrySettings
    start_to_close_ms: int = Field(ge=1)
    heartbeat_ms: int | None = None


DataT = TypeVar("DataT", bound=JobData)


class JobRun(BaseModel, Generic[DataT]):
    """The single input of every job workflow."""

    model_config = ConfigDict(frozen=True)

    data: DataT
    run: RunOptions


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def run_options(spec: QueueSpec, job_type: JobType, attempts: int | None = None) -> RunOptions:
    return RunOptions(
        queue=spec.name.value,
        job_type=job_type,
        retry=RetrySettings(
            maximum_attempts=attempts or spec.attempts,
            initial_interval_ms=_ms(spec.initial_backoff),
            backoff_coefficient=spec.backoff_coefficient,
            maximum_interval_ms=_ms(spec.max_backoff),
        ),
        start_to_close_ms=_ms(spec.start_to_close),
        heartbeat_ms=_ms(spec.heartbeat) if spec.heartbeat else None,
    )
