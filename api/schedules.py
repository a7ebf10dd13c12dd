"""``/v1/schedules``, for operators: the system's schedules (the maintenance jobs' cron runs),
with pause, unpause and trigger now."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from api.auth import OperatorDep, job_queue

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


@router.get("")
async def list_schedules(request: Request, _operator: OperatorDep) -> list[dict[str, Any]]:
    """Each schedule: name, cron, paused, the workflow it starts, next and recent runs."""
    return await job_queue(request).list_schedules()


@router.post("/{name}/{action}", status_code=202)
async def act(
    request: Request,
    name: str,
    action: Literal["pause", "unpause", "trigger"],
    _operator: OperatorDep,
) -> dict[str, str]:
    """Pause or unpause a schedule, or run it now (an unknown name answers 404)."""
    await getattr(job_queue(request), f"{action}_schedule")(name)
    return {"schedule": name, "done": action}
