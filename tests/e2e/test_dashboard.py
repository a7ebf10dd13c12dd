"""The queue dashboard in headless Chromium (Debian's, driven by Playwright with its
executable path): sign in with an operator key, watch counts change while jobs run with no
reload, pause and resume a queue, retry a failed job from its queue's page, open a job's page
and see its progress and events. Screenshots at 1280 px and at phone width are kept in
``var/test-artifacts/dashboard`` (``TEST_ARTIFACTS_DIR`` to move them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from api.app import create_app
from core.config import Settings
from core.queues import QueueName
from db.api_keys import ApiKeyStore
from db.session import create_engine, create_sessionmaker
from emulators.server import serve
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import PROJECT_ROOT, eventually, running_workers

pytestmark = pytest.mark.integration

ARTIFACTS = (
    Path(os.environ.get("TEST_ARTIFACTS_DIR", PROJECT_ROOT / "var" / "test-artifacts"))
    / "dashboard"
)


async def _operator_key(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        _, key = await ApiKeyStore(create_sessionmaker(engine)).create(
            f"dash-ops-{uuid.uuid4().hex[:6]}", "operator"
        )
    finally:
        await engine.dispose()
    return key


@pytest.fixture
async def page(settings: Settings) -> AsyncIterator[Page]:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=settings.chromium_path, args=["--no-sandbox"]
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def count(page: Page, queue: str, column: str) -> Any:
    return page.locator(f'tr[data-queue="{queue}"] td[data-count="{column}"]')


async def test_the_dashboard_in_a_real_browser(
    page: Page, settings: Settings, receiver: WebhookReceiver
):
    key = await _operator_key(settings)
    receiver.script("/dash-rejected", [ScriptedResponse(status=400)])
    async with (
        serve(create_app(settings), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api,
        running_workers(settings, [QueueName.WEBHOOKS]),
    ):

        async def add(path: str) -> str:
            answer = await api.post(
                "/v1/jobs",
                json={
                    "queue": "webhooks",
                    "type": "webhook_delivery",
                    "data": {
                        "userId": "dash-user",
                        "url": receiver.url(path),
                        "eventType": "x.y",
                        "payload": {},
                        "secret": receiver.secret,
                    },
                },
            )
            assert answer.status_code == 202, answer.text
            job_id: str = answer.json()["id"]
            return job_id

        await page.goto(url + "/dashboard")
        await page.fill("#key", key)
        await page.click("#go")
        await expect(page.locator('tr[data-queue="webhooks"]')).to_be_visible()
        await expect(page.locator("#status")).to_have_text("live")
        await shot(page, "1-queues")

        # Pause from the page; jobs added meanwhile wait, and the count shows it live.
        await page.click('button[data-toggle="webhooks"]')
        await expect(page.locator('tr[data-queue="webhooks"] .paused')).to_have_text("paused")
        completed_before = int(await count(page, "webhooks", "completed").inner_text())
        for _ in range(3):
            await add("/dash-ok")
        await expect(count(page, "webhooks", "waiting")).to_have_text("3", timeout=15_000)
        await shot(page, "2-paused-with-waiting-jobs")
        await page.click('button[data-toggle="webhooks"]')
        await expect(count(page, "webhooks", "waiting")).to_have_text("0", timeout=30_000)
        await expect(count(page, "webhooks", "completed")).to_have_text(
            str(completed_before + 3), timeout=30_000
        )
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1

        # A failed job, retried from its queue's page.
        failed = await add("/dash-rejected")
        await eventually(
            lambda: api.get(f"/v1/jobs/{failed}"), lambda r: r.json()["state"] == "failed"
        )
        await page.goto(url + "/dashboard#/queue/webhooks")
        row = page.locator(f'tr[data-job="{failed}"]')
        await expect(row.locator(".error")).to_contain_text("HTTP 400")
        await expect(row.locator("td.num")).to_have_text("1")
        await shot(page, "3-failed-jobs")
        await row.locator("button[data-retry]").click()
        await eventually(
            lambda: api.get(f"/v1/jobs/{failed}"), lambda r: r.json()["state"] == "completed"
        )

        # The job's page: its progress, its events and the link to the Temporal Web UI.
        await page.goto(url + f"/dashboard#/job/{failed}")
        await expect(page.locator("#job-state")).to_have_text("completed")
        await expect(page.locator("#job-progress")).to_have_text("100")
        await expect(page.locator("#events li").last).to_contain_text("completed")
        link = await page.locator("text=Temporal Web UI").get_attribute("href")
        assert link is not None and link.endswith(f"/workflows/{failed}")
        await shot(page, "4-job-page")
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(url + "/dashboard#/")
        await expect(page.locator('tr[data-queue="webhooks"]')).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a phone"
        await shot(page, "5-phone")


async def test_the_page_asks_again_for_a_refused_key(page: Page, settings: Settings):
    async with serve(create_app(settings), lifespan="on") as url:
        await page.goto(url + "/dashboard")
        await page.fill("#key", "bbk_not_a_key")
        await page.click("#go")
        await expect(page.locator("#err")).to_have_text("key refused")
        await expect(page.locator("#key")).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('jobs.operatorKey')") is None
