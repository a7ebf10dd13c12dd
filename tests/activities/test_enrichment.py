"""The enrichment activity in an ActivityEnvironment, against the Apify emulator and real stores
on SQLite: leads sent batch_size at a time, each outcome recorded (one failing lead fails
only itself), leads with nothing to look up skipped, a 429 waited out instead of failing, a
retry resuming at the heartbeated batch, progress reported, another user's leads refused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.enrichment
from activities.enrichment import EnrichLeadsInput, EnrichmentActivities
from core.errors import AUTHENTICATION_FAILED, INVALID_CONFIGURATION, RESOURCE_NOT_FOUND
from db.enrichment import EnrichmentStore
from db.job_inputs import JobInputStore
from db.migrate import upgrade_database
from db.session import create_engine, create_sessionmaker
from emulators import apify as emulator
from emulators.server import Fault, serve
from integrations.apify import ApifyClient, FieldMapping


@dataclass
class Setup:
    apify: emulator.ApifyState
    client: ApifyClient
    inputs: JobInputStore
    results: EnrichmentStore

    def acts(self, actor_id: str = emulator.DEFAULT_ACTOR_ID) -> EnrichmentActivities:
        return EnrichmentActivities(
            self.client,
            self.inputs,
            self.results,
            actor_id=actor_id,
            mapping=FieldMapping.from_setting(""),
        )

    async def job(self, leads: list[dict[str, Any]], job_id: str = "job-1") -> EnrichLeadsInput:
        await self.inputs.put(job_id, "leads", "u-1", leads, needed_for=timedelta(days=1))
        return EnrichLeadsInput(
            job_id=job_id, user_id="u-1", batch_size=5, start=0, stop=len(leads), total=len(leads)
        )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    state = emulator.ApifyState()
    async with serve(emulator.create_app(state)) as base, httpx.AsyncClient(timeout=5) as http:
        yield Setup(
            state,
            ApifyClient(http, base_url=base, token=emulator.DEFAULT_TOKEN),
            JobInputStore(sessions),
            EnrichmentStore(sessions),
        )
    await engine.dispose()


def leads(n: int) -> list[dict[str, Any]]:
    return [{"id": f"l{i}", "email": f"lead{i}@acme.io"} for i in range(n)]


def environment(details: list[Any] | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, heartbeat_details=details or [], heartbeat_timeout=timedelta(seconds=60)
    )
    return env


async def test_leads_go_in_batches_and_each_outcome_is_recorded(setup: Setup):
    batch = leads(12)
    batch[3]["email"] = "fail.me@acme.io"  # the actor finds nothing for this one
    batch[7] = {"id": "l7"}  # nothing to look up
    setup.apify.failing.add("l10")
    input = await setup.job(batch)
    env = environment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    result = await env.run(setup.acts().enrich_leads, input)
    assert (result.position, result.enriched, result.failed, result.skipped) == (12, 9, 2, 1)
    assert [len(b) for b in setup.apify.batches] == [5, 4, 2]  # l7 was never sent
    assert [b["position"] for b in beats if b] == [5, 10, 12]
    counts = await setup.results.counts("job-1")
    assert counts == {"enriched": 9, "failed": 2, "skipped": 1}
    page = await setup.results.page("job-1", offset=0, limit=4)
    assert page[0].result is not None and page[0].result["person_email"] == "lead0@acme.io"
    assert page[0].result["company_domain"] == "acme.io"
    assert page[3].status == "failed" and page[3].error == "no match found"


async def test_a_rate_limit_slows_the_batch_down_instead_of_failing_it(setup: Setup):
    setup.apify.faults.add("run.start", emulator.rate_limited(1), emulator.rate_limited(1))
    input = await setup.job(leads(3))
    result = await environment().run(setup.acts().enrich_leads, input)
    assert result.enriched == 3 and result.slowed_s == 2.0
    assert setup.apify.rate_limited == 2


async def test_a_retry_resumes_at_the_heartbeated_batch(setup: Setup):
    input = await setup.job(leads(12))
    # The first attempt got through two batches, then its worker died.
    resumed = {"position": 10, "enriched": 10, "failed": 0, "skipped": 0, "slowed_s": 0.0}
    result = await environment(details=[resumed]).run(setup.acts().enrich_leads, input)
    assert (result.position, result.enriched) == (12, 12)
    assert setup.apify.batches == [["l10", "l11"]]


async def test_a_failed_run_fails_its_leads_and_the_job_goes_on(setup: Setup):
    setup.apify.failed_runs_for.add("l2")
    input = await setup.job(leads(7))
    result = await environment().run(setup.acts().enrich_leads, input)
    assert (result.enriched, result.failed) == (2, 5)
    page = await setup.results.page("job-1", offset=0, limit=1)
    assert "FAILED" in (page[0].error or "")


async def test_server_errors_retry_in_place_then_fail_the_attempt(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(activities.enrichment, "BATCH_TRIES", 2)
    setup.apify.faults.add("run.start", Fault(status=503), Fault(status=503))
    input = await setup.job(leads(2))
    with pytest.raises(ApplicationError) as failure:
        await environment().run(setup.acts().enrich_leads, input)
    assert not failure.value.non_retryable


async def test_configuration_and_ownership_are_permanent(setup: Setup):
    input = await setup.job(leads(2))
    with pytest.raises(ApplicationError) as no_actor:
        await environment().run(setup.acts(actor_id="").enrich_leads, input)
    assert no_actor.value.type == INVALID_CONFIGURATION
    with pytest.raises(ApplicationError) as wrong_actor:
        await environment().run(setup.acts(actor_id="someone~else").enrich_leads, input)
    assert wrong_actor.value.type == RESOURCE_NOT_FOUND and wrong_actor.value.non_retryable
    setup.apify.tokens.clear()
    with pytest.raises(ApplicationError) as token:
        await environment().run(setup.acts().enrich_leads, input)
    assert token.value.type == AUTHENTICATION_FAILED
    other = input.model_copy(update={"user_id": "u-2"})
    with pytest.raises(ApplicationError) as stolen:
        await environment().run(setup.acts().enrich_leads, other)
    assert stolen.value.type == RESOURCE_NOT_FOUND
