"""The job catalog: every job type routed to one queue, workflow names both ways, and every
implemented job type resolvable to a workflow and activities a worker can register."""

from __future__ import annotations

import pytest

from activities import build_activities
from core.catalog import (
    JOB_KINDS,
    JOB_TYPE_OF_WORKFLOW,
    QUEUE_OF_JOB_TYPE,
    WORKFLOW_NAMES,
    JobKind,
    implemented_queues,
    job_type_name,
    kinds_of,
    resolve,
)
from core.jobs import JobType, SeoAuditJobData
from core.queues import QueueName
from workflows.registry import all_workflows, workflow_class, workflows_of


def test_every_job_type_has_one_line_and_one_queue() -> None:
    assert set(JOB_KINDS) == set(JobType)
    assert all(kind.job_type is t for t, kind in JOB_KINDS.items())
    assert set(QUEUE_OF_JOB_TYPE) == set(JobType)
    assert sorted(t for q in QueueName for t in (k.job_type for k in kinds_of(q))) == sorted(
        JobType
    )


def test_workflow_names_map_both_ways() -> None:
    assert len(set(WORKFLOW_NAMES.values())) == len(JobType)
    assert WORKFLOW_NAMES[JobType.WEBHOOK_DELIVERY] == "webhook-delivery"
    for job_type, name in WORKFLOW_NAMES.items():
        assert JOB_TYPE_OF_WORKFLOW[name] is job_type
        assert job_type_name(name) == job_type.value
    assert job_type_name("some-test-workflow") == "some-test-workflow"


@pytest.mark.parametrize("kind", [k for k in JOB_KINDS.values() if k.implemented], ids=str)
def test_implemented_job_types_resolve(kind) -> None:
    cls = workflow_class(kind)
    assert getattr(cls, "__temporal_workflow_definition").name == kind.workflow_name
    assert kind.activities is not None and callable(resolve(kind.activities))


def test_every_job_type_of_the_prd_has_a_workflow() -> None:
    assert [k.job_type for k in JOB_KINDS.values() if not k.implemented] == []


def test_a_declared_job_type_has_no_workflow() -> None:
    with pytest.raises(LookupError):
        workflow_class(JobKind(JobType.SEO_AUDIT, QueueName.SEO, SeoAuditJobData))


def test_implemented_queues_and_their_workflows() -> None:
    assert set(implemented_queues()) == {
        QueueName.EMAIL,
        QueueName.VOICE,
        QueueName.SEO,
        QueueName.ADS,
        QueueName.ENRICHMENT,
        QueueName.WORKFLOW,
        QueueName.MAINTENANCE,
        QueueName.WEBHOOKS,
    }
    assert len(all_workflows()) == sum(1 for k in JOB_KINDS.values() if k.implemented)
    assert len(workflows_of(QueueName.SEO)) == 2


def test_build_activities_calls_each_builder_once(settings) -> None:
    import httpx

    from activities import Dependencies
    from db.session import create_engine, create_sessionmaker

    deps = Dependencies(
        settings=settings,
        http=httpx.AsyncClient(),
        sessions=create_sessionmaker(create_engine("sqlite+aiosqlite://")),
    )
    built = build_activities(deps, QueueName.EMAIL)
    names = [getattr(fn, "__temporal_activity_definition").name for fn in built]
    assert len(names) == len(set(names))
    assert "sync_email_pages" in names and "write_email_draft" in names
    seo = [
        getattr(fn, "__temporal_activity_definition").name
        for fn in build_activities(deps, QueueName.SEO)
    ]
    assert seo == ["crawl_site", "build_seo_report", "build_keyword_report", "run_pagespeed"]


def test_resolve_refuses_bad_references() -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        resolve("workflows.email_sync.EmailSyncWorkflow")
