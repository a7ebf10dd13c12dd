"""The workflow classes of the job catalog, resolved for workers and replayers.

Worker-side only: resolving imports the workflow modules.
"""

from __future__ import annotations

from core.catalog import JOB_KINDS, JobKind, kinds_of, resolve
from core.queues import QueueName


def workflow_class(kind: JobKind) -> type:
    """The workflow class of an implemented job type, checked against its catalog line."""
    if kind.workflow is None:
        raise LookupError(f"job type {kind.job_type.value!r} has no workflow")
    cls = resolve(kind.workflow)
    definition = getattr(cls, "__temporal_workflow_definition", None)
    if definition is None:
        raise TypeError(f"{kind.workflow} is not a @workflow.defn class")
    if definition.name != kind.workflow_name:
        raise TypeError(
            f"{kind.workflow} is registered as {definition.name!r}, "
            f"the catalog expects {kind.workflow_name!r}"
        )
    if not isinstance(cls, type):
        raise TypeError(f"{kind.workflow} is not a class")
    return cls


def workflows_of(queue: QueueName) -> list[type]:
    """The workflows a worker of ``queue`` registers."""
    return [workflow_class(kind) for kind in kinds_of(queue) if kind.implemented]


def all_workflows() -> list[type]:
    """Every implemented workflow (for the replayer)."""
    return [workflow_class(kind) for kind in JOB_KINDS.values() if kind.implemented]
