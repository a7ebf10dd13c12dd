"""The HTTP API end to end: the app served on loopback with its lifespan, real workers, the
dev server, PostgreSQL and Redis. API keys and the isolation matrix (every endpoint, both
roles, another user's job answering 404), adding jobs with every refusal named, SSE that
resumes with Last-Event-ID losing and repeating nothing and ends with the job, listing with
a cursor, retry, cancel, removal, queue operations, and readiness."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import create_app
from client.queue import JobQueue
from core.config import Settings
from core.queues import QueueName
from core.schedules import DECLARED, sync_schedules
from core.temporal import connect
from db.api_keys import ApiKeyStore
from db.session import create_engine, create_sessionmaker
from emulators.server import serve
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.e2e.conftest import Enrichment
from tests.support import eventually, running_workers

pytestmark = pytest.mark.integration


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    user: str
    other: str
    keys: dict[str, str]  # "user", "other", "operator" -> bearer key

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def get(self, path: str, who: str = "user", **kw: Any) -> httpx.Response:
        return await self.http.get(self.url + path, headers=self.auth(who), **kw)

    async def post(self, path: str, who: str = "user", **kw: Any) -> httpx.Response:
        return await self.http.post(self.url + path, headers=self.auth(who), **kw)

    async def delete(self, path: str, who: str = "user") -> httpx.Response:
        return await self.http.delete(self.url + path, headers=self.auth(who))

    async def finished(self, job_id: str, who: str = "user") -> dict[str, Any]:
        async def state() -> dict[str, Any]:
            body: dict[str, Any] = (await self.get(f"/v1/jobs/{job_id}", who)).json()
            return body

        return await eventually(
            state, lambda b: b.get("state") in ("completed", "failed"), timeout=60, interval=0.1
        )


async def _serve_api(settings: Settings) -> AsyncIterator[Api]:
    engine = create_engine(settings.database_url)
    keys = ApiKeyStore(create_sessionmaker(engine))
    tag = uuid.uuid4().hex[:6]
    user, other = f"api-user-{tag}", f"api-other-{tag}"
    made = {
        "user": (await keys.create(user, "user"))[1],
        "other": (await keys.create(other, "user"))[1],
        "operator": (await keys.create(f"ops-{tag}", "operator"))[1],
    }
    await engine.dispose()
    async with (
        serve(create_app(settings), lifespan="on") as url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield Api(url, http, user, other, made)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for served in _serve_api(settings):
        yield served


def hook(api: Api, receiver: WebhookReceiver, path: str = "/api") -> dict[str, Any]:
    return {
        "queue": "webhooks",
        "type": "webhook_delivery",
        "data": {
            "url": receiver.url(path),
            "eventType": "lead.created",
            "payload": {"lead": "L-1"},
            "secret": receiver.secret,
        },
    }


async def test_no_key_or_a_bad_key_is_401(api: Api):
    for headers in ({}, {"Authorization": "Bearer bbk_nope_nope"}, {"Authorization": "Basic x"}):
        answer = await api.http.get(api.url + "/v1/jobs", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert (await api.http.get(api.url + "/healthz")).json() == {"status": "ok"}


async def test_a_job_is_added_read_and_followed_to_its_end(
    api: Api, settings: Settings, receiver: WebhookReceiver
):
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        added = await api.post("/v1/jobs", json=hook(api, receiver))
        assert added.status_code == 202, added.text
        job_id = added.json()["id"]
        assert added.headers["location"] == f"/v1/jobs/{job_id}"
        done = await api.finished(job_id)
    assert done["state"] == "completed" and done["progress"] == 100
    assert done["links"]["temporal_ui"].endswith(f"/namespaces/default/workflows/{job_id}")
    # The user key's job is its user's: the data's userId was filled in.
    info = await JobQueue.connect(settings)
    try:
        assert (await info.get_job(job_id)).user_id == api.user
    finally:
        await info.close()
    # A client that comes after the end gets the whole history and the end at once.
    async with api.http.stream(
        "GET", f"{api.url}/v1/jobs/{job_id}/events", headers=api.auth("user")
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await _read_events(response)
    assert [e["event"] for e in events] == ["added", "started", "completed"]
    assert all(e["id"] for e in events)


async def _read_events(
    response: httpx.Response, stop_after: int | None = None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if current:
                events.append(current)
                current = {}
                if stop_after is not None and len(events) >= stop_after:
                    break
            continue
        field, _, value = line.partition(": ")
        current[field] = json.loads(value) if field == "data" else value
    return events


async def test_bad_input_is_refused_naming_the_field_and_starts_nothing(
    api: Api, receiver: WebhookReceiver
):
    body = hook(api, receiver)
    bad = {**body, "data": {**body["data"], "url": "not a url", "eventType": ""}}
    answer = await api.post("/v1/jobs", json=bad)
    assert answer.status_code == 422
    assert set(answer.json()["problems"]) == {"url", "eventType"}
    options = await api.post("/v1/jobs", json={**body, "options": {"priority": 11}})
    assert options.status_code == 422 and "priority" in options.json()["problems"]
    shape = await api.post("/v1/jobs", json={"queue": "webhooks"})
    assert shape.status_code == 422 and "type" in shape.json()["problems"]
    assert (await api.post("/v1/jobs", json={**body, "queue": "fax"})).status_code == 400
    assert (await api.post("/v1/jobs", json={**body, "type": "send_fax"})).status_code == 400
    # A user key adds jobs for its own user only.
    theirs = {**body, "data": {**body["data"], "userId": api.other}}
    assert (await api.post("/v1/jobs", json=theirs)).status_code == 403
    upkeep = {"queue": "maintenance", "type": "memory_cleanup", "data": {}}
    assert (await api.post("/v1/jobs", json=upkeep)).status_code == 403
    listed = await api.get("/v1/jobs?queue=webhooks")
    assert listed.status_code == 200 and listed.json()["jobs"] == []


async def test_a_duplicate_job_id_answers_200_with_the_existing_job(
    api: Api, receiver: WebhookReceiver
):
    job_id = f"api-dedup-{uuid.uuid4().hex[:8]}"
    body = {**hook(api, receiver), "options": {"job_id": job_id, "delay": 60_000}}
    first = await api.post("/v1/jobs", json=body)
    again = await api.post("/v1/jobs", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["deduplicated"] is True and again.json()["job"]["state"] == "delayed"
    assert (await api.post(f"/v1/jobs/{job_id}/cancel")).json()["state"] == "failed"


async def test_another_users_job_is_not_found_on_every_endpoint(
    api: Api, receiver: WebhookReceiver
):
    added = await api.post("/v1/jobs", json={**hook(api, receiver), "options": {"delay": 60_000}})
    job_id = added.json()["id"]
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("POST", f"/v1/jobs/{job_id}/retry"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ):
        answer = await api.http.request(method, api.url + path, headers=api.auth("other"))
        assert answer.status_code == 404, (method, path, answer.text)
        assert api.user not in answer.text and "lead" not in answer.text
    assert (await api.get("/v1/jobs", "other")).json()["jobs"] == []
    # Queue-wide operations need an operator key.
    for method, path in (
        ("GET", "/v1/queues/stats"),
        ("GET", "/v1/queues/webhooks/stats"),
        ("POST", "/v1/queues/webhooks/pause"),
        ("POST", "/v1/queues/webhooks/resume"),
    ):
        answer = await api.http.request(method, api.url + path, headers=api.auth("user"))
        assert answer.status_code == 403, (method, path)
    bulk = await api.post("/v1/queues/webhooks/jobs:cancel", json={"dry_run": True})
    assert bulk.status_code == 403
    # The owner and an operator see it; the operator's listing holds it too.
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["state"] == "delayed"
    assert (await api.get(f"/v1/jobs/{job_id}", "operator")).status_code == 200
    mine = [j["id"] for j in (await api.get("/v1/jobs?queue=webhooks")).json()["jobs"]]
    assert mine == [job_id]
    assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_listing_is_newest_first_with_a_cursor(api: Api, receiver: WebhookReceiver):
    ids = []
    for _ in range(5):
        added = await api.post(
            "/v1/jobs", json={**hook(api, receiver), "options": {"delay": 60_000}}
        )
        ids.append(added.json()["id"])
    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"queue": "webhooks", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/jobs", params=params)).json()
        pages.extend(job["id"] for job in page["jobs"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == list(reversed(ids))
    delayed = (await api.get("/v1/jobs", params={"state": "delayed", "limit": 100})).json()
    assert {j["id"] for j in delayed["jobs"]} == set(ids)
    cancel = await api.post(
        "/v1/queues/webhooks/jobs:cancel", "operator", json={"state": "delayed", "dry_run": True}
    )
    assert cancel.json()["matched"] >= 5 and cancel.json()["done"] == 0
    for job_id in ids:
        await api.delete(f"/v1/jobs/{job_id}")


async def test_progress_streams_in_order_and_resumes_after_the_last_event_seen(
    api: Api, enrichment: Enrichment, settings: Settings
):
    leads = [{"id": f"l-{i}", "email": f"p{i}@example.com"} for i in range(40)]
    enrichment.apify.run_s = 0.3  # each batch takes a while: the stream sees them live
    async for served in _serve_api(enrichment.settings):
        async with running_workers(enrichment.settings, [QueueName.ENRICHMENT]):
            added = await served.post(
                "/v1/jobs",
                json={
                    "queue": "enrichment",
                    "type": "lead_enrichment",
                    "data": {"leads": leads, "batchSize": 10},
                },
            )
            assert added.status_code == 202, added.text
            job_id = added.json()["id"]
            url = f"{served.url}/v1/jobs/{job_id}/events"
            async with served.http.stream("GET", url, headers=served.auth("user")) as first:
                head = await _read_events(first, stop_after=3)
            resume = {**served.auth("user"), "Last-Event-ID": head[-1]["id"]}
            async with served.http.stream("GET", url, headers=resume) as rest:
                tail = await asyncio.wait_for(_read_events(rest), 60)
    events = head + tail
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, key=_stream_order)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "added" and kinds[-1] == "completed"
    progress = [int(e["data"]["progress"]) for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and len(progress) >= 3
    queue = await JobQueue.connect(settings)
    try:
        logged = [offset for offset, _ in await queue.get_job_events(job_id)]
    finally:
        await queue.close()
    assert ids == logged  # nothing lost, nothing repeated


def _stream_order(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq)


async def test_retry_of_a_failed_job_and_queue_pause_and_resume(
    api: Api, settings: Settings, receiver: WebhookReceiver
):
    receiver.script("/rejected", [ScriptedResponse(status=400)])
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        added = await api.post("/v1/jobs", json=hook(api, receiver, "/rejected"))
        job_id = added.json()["id"]
        failed = await api.finished(job_id)
        assert failed["state"] == "failed" and failed["failure_reason"]
        assert (await api.post(f"/v1/jobs/{job_id}/cancel")).status_code == 409
        retried = await api.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202
        assert (await api.finished(job_id))["state"] == "completed"
    assert (await api.post("/v1/queues/webhooks/pause", "operator")).json()["paused"] is True
    stats = (await api.get("/v1/queues/webhooks/stats", "operator")).json()
    assert stats["paused"] is True
    assert (await api.post("/v1/queues/webhooks/resume", "operator")).json()["paused"] is False
    everything = (await api.get("/v1/queues/stats", "operator")).json()
    assert set(everything) >= {q.value for q in QueueName}


async def test_readiness_and_the_openapi_document(api: Api):
    ready = await api.http.get(api.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"temporal": "ok", "redis": "ok", "database": "ok"}
    document = (await api.http.get(api.url + "/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/queues/stats",
        "/v1/queues/{name}/jobs:retry",
        "/readyz",
    ):
        assert path in document["paths"], path


async def test_the_schedules_for_operators(api: Api, settings: Settings):
    await sync_schedules(await connect(settings), DECLARED)
    listed = (await api.get("/v1/schedules", "operator")).json()
    names = sorted(s["name"] for s in listed)
    assert names and all(s["cron"] for s in listed)
    assert (await api.get("/v1/schedules")).status_code == 403
    name = names[0]

    async def paused() -> bool:
        found = (await api.get("/v1/schedules", "operator")).json()
        return bool(next(s for s in found if s["name"] == name)["paused"])

    assert (await api.post(f"/v1/schedules/{name}/pause", "operator")).status_code == 202
    assert await paused()
    assert (await api.post(f"/v1/schedules/{name}/unpause", "operator")).status_code == 202
    assert not await paused()
    assert (await api.post("/v1/schedules/no-such/trigger", "operator")).status_code == 404
