"""ApifyClient and FieldMapping against the Apify emulator: a run started, waited for and read
in pages; 429 with Retry-After and 5xx transient, bad token, actor and input permanent; a run
that failed permanent and one that timed out transient; items mapped into our schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from core.errors import AUTHENTICATION_FAILED, RATE_LIMITED, RESOURCE_NOT_FOUND
from emulators import apify as emulator
from emulators.server import Fault, serve
from integrations.apify import ActorRun, ApifyClient, FieldMapping, run_error
from integrations.errors import PermanentProviderError, TransientProviderError

ACTOR = emulator.DEFAULT_ACTOR_ID


@dataclass
class Emulator:
    state: emulator.ApifyState
    client: ApifyClient
    url: str
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def apify() -> AsyncIterator[Emulator]:
    state = emulator.ApifyState()
    async with serve(emulator.create_app(state)) as url, httpx.AsyncClient(timeout=5) as http:
        yield Emulator(
            state, ApifyClient(http, base_url=url, token=emulator.DEFAULT_TOKEN), url, http
        )


def leads(n: int) -> list[dict[str, str]]:
    return [{"id": f"l{i}", "email": f"ann.lee{i}@acme.io"} for i in range(n)]


async def test_a_run_is_waited_for_and_its_items_read_in_pages(
    apify: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import integrations.apify

    monkeypatch.setattr(integrations.apify, "PAGE_SIZE", 2)
    run = await apify.client.start_run(ACTOR, {"leads": leads(5)})
    assert run.status == "SUCCEEDED" and run.dataset_id
    items = await apify.client.all_items(run.dataset_id)
    assert [item["leadId"] for item in items] == ["l0", "l1", "l2", "l3", "l4"]
    mapped = FieldMapping.from_setting("").read(items[0])
    assert mapped is not None and mapped.lead_id == "l0"
    assert (mapped.person_email, mapped.company_domain) == ("ann.lee0@acme.io", "acme.io")
    assert mapped.person_linkedin == "https://www.linkedin.com/in/ann-lee0"


async def test_a_slow_run_is_polled_until_it_ends(apify: Emulator) -> None:
    apify.state.run_s = 0.3
    run = await apify.client.start_run(ACTOR, {"leads": leads(1)}, wait_s=0)
    assert run.status == "RUNNING" and not run.finished
    done = await apify.client.get_run(run.id, wait_s=5)
    assert done.status == "SUCCEEDED"


async def test_rate_limits_and_server_errors_are_transient(apify: Emulator) -> None:
    apify.state.faults.add("run.start", emulator.rate_limited(7), Fault(status=502))
    with pytest.raises(TransientProviderError) as limited:
        await apify.client.start_run(ACTOR, {"leads": leads(1)})
    assert limited.value.error_type == RATE_LIMITED and limited.value.retry_after == 7
    with pytest.raises(TransientProviderError):
        await apify.client.start_run(ACTOR, {"leads": leads(1)})


async def test_bad_token_actor_and_input_are_permanent(apify: Emulator) -> None:
    bad = ApifyClient(apify.http, base_url=apify.url, token="nope")
    with pytest.raises(PermanentProviderError) as token:
        await bad.start_run(ACTOR, {"leads": leads(1)})
    assert token.value.error_type == AUTHENTICATION_FAILED and "nope" not in str(token.value)
    with pytest.raises(PermanentProviderError) as actor:
        await apify.client.start_run("someone~else", {"leads": leads(1)})
    assert actor.value.error_type == RESOURCE_NOT_FOUND
    with pytest.raises(PermanentProviderError) as invalid:
        await apify.client.start_run(ACTOR, {"people": []})
    assert invalid.value.status_code == 400 and "invalid-input" in str(invalid.value)


def test_failed_runs_are_permanent_and_timed_out_ones_transient() -> None:
    failed = run_error(ActorRun(id="r", status="FAILED", status_message="bad input"))
    assert isinstance(failed, PermanentProviderError) and "bad input" in str(failed)
    assert isinstance(run_error(ActorRun(id="r", status="TIMED-OUT")), TransientProviderError)


def test_the_field_mapping_is_configurable_and_checked() -> None:
    mapping = FieldMapping.from_setting('{"lead_id": "input.ref", "person_name": "fullName"}')
    item = {"input": {"ref": "L-9"}, "fullName": "Ann Lee", "company": {"name": "Acme"}}
    lead = mapping.read(item)
    assert lead is not None and (lead.lead_id, lead.person_name, lead.company_name) == (
        "L-9",
        "Ann Lee",
        "Acme",
    )
    assert mapping.read({"fullName": "no id"}) is None
    with pytest.raises(ValueError, match="unknown fields"):
        FieldMapping.from_setting('{"shoe_size": "x"}')
    with pytest.raises(ValueError, match="JSON"):
        FieldMapping.from_setting("{nope")
