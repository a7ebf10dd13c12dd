"""Browser sessions: the Browserbase client against its emulator (real Chromium behind it),
and local Chromium launched, released and reaped by owner."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright

from core.errors import AUTHENTICATION_FAILED, RATE_LIMITED
from emulators import browserbase as emulator
from emulators.server import Fault, serve
from integrations.browserbase import BrowserbaseClient
from integrations.browsers import (
    PROFILE_PREFIX,
    BrowserbaseSessions,
    LocalChromium,
    chromium_processes,
    process_owner,
)
from integrations.errors import PermanentProviderError, TransientProviderError

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def browserbase() -> AsyncIterator[tuple[emulator.BrowserbaseState, BrowserbaseClient]]:
    state = emulator.BrowserbaseState(max_concurrent=2)
    async with serve(emulator.create_app(state)) as url, httpx.AsyncClient() as http:
        client = BrowserbaseClient(
            http, base_url=url, api_key=emulator.DEFAULT_API_KEY, project_id="p-1"
        )
        try:
            yield state, client
        finally:
            await state.close()


async def test_a_session_is_created_connected_listed_and_released(
    browserbase: tuple[emulator.BrowserbaseState, BrowserbaseClient],
):
    state, client = browserbase
    session = await client.create_session({"jobId": "job-1", "owner": "h/1.2"})
    assert session.status == "RUNNING" and session.connect_url
    assert session.connect_url.startswith("ws://127.0.0.1:")
    async with async_playwright() as driver:
        browser = await driver.chromium.connect_over_cdp(session.connect_url)
        page = browser.contexts[0].pages[0]
        await page.set_content("<h1>remote</h1>")
        assert await page.inner_text("h1") == "remote"
        await browser.close()
    [running] = await client.running_sessions()
    assert running.id == session.id and running.user_metadata == {
        "jobId": "job-1",
        "owner": "h/1.2",
    }
    await client.release_session(session.id)
    assert (await client.get_session(session.id)).status == "COMPLETED"
    assert await client.running_sessions() == []
    await client.release_session(session.id)  # again: nothing to do
    assert state.released == 1


async def test_the_plan_limit_and_outages_are_transient_a_bad_key_is_not(
    browserbase: tuple[emulator.BrowserbaseState, BrowserbaseClient],
):
    state, client = browserbase
    first = await client.create_session({})
    await client.create_session({})
    with pytest.raises(TransientProviderError) as limited:
        await client.create_session({})
    assert (limited.value.status_code, limited.value.error_type) == (429, RATE_LIMITED)
    state.faults.add("sessions.create", Fault(status=503))
    await client.release_session(first.id)
    with pytest.raises(TransientProviderError):
        await client.create_session({})
    bad = BrowserbaseClient(
        httpx.AsyncClient(), base_url=str(client._base_url), api_key="wrong", project_id=""
    )
    with pytest.raises(PermanentProviderError) as refused:
        await bad.create_session({})
    assert refused.value.error_type == AUTHENTICATION_FAILED
    assert "wrong" not in str(refused.value)
    with pytest.raises(PermanentProviderError, match="BROWSERBASE_API_KEY"):
        await BrowserbaseClient(
            httpx.AsyncClient(), base_url="http://127.0.0.1:9", api_key="", project_id=""
        ).create_session({})


async def test_sessions_of_ended_jobs_are_reaped(
    browserbase: tuple[emulator.BrowserbaseState, BrowserbaseClient],
):
    state, client = browserbase
    mine = BrowserbaseSessions(client)
    live = await mine.open("job-live")
    other = await client.create_session({"jobId": "job-gone", "owner": "elsewhere/1.1"})

    async def is_job_live(job_id: str) -> bool:
        return job_id == "job-live"

    # A session of this process is its own to release, even when asked by another worker.
    assert await mine.reap(is_job_live) == 1
    assert [s.id for s in await client.running_sessions()] == [live.id]
    assert (await client.get_session(other.id)).status == "COMPLETED"
    await mine.release(live)


def _launch_as(owner: str, root: Path) -> subprocess.Popen[bytes]:
    profile = root / f"{PROFILE_PREFIX}{owner}-abc123"
    profile.mkdir()
    return subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


async def test_local_browsers_are_released_and_those_of_dead_workers_reaped(tmp_path: Path):
    chromium = LocalChromium(CHROMIUM, str(tmp_path))
    session = await chromium.open("job-1")
    assert session.cdp_url.startswith("ws://127.0.0.1:")
    assert chromium_processes(str(tmp_path))
    await chromium.release(session)
    assert chromium_processes(str(tmp_path)) == [] and os.listdir(tmp_path) == []

    orphan = _launch_as("999999999.1", tmp_path)  # no such process: its worker is dead
    kept = _launch_as(process_owner(os.getppid()), tmp_path)  # a live worker's: not ours
    mine = await chromium.open("job-2")
    try:
        await asyncio.sleep(1.0)
        assert await chromium.reap(lambda _job: asyncio.sleep(0, True)) >= 1
        await asyncio.to_thread(orphan.wait, 10)
        left = chromium_processes(str(tmp_path))
        assert orphan.pid not in left and kept.pid in left
        assert not (tmp_path / f"{PROFILE_PREFIX}999999999.1-abc123").exists()
        assert any(name.endswith(mine.id) for name in os.listdir(tmp_path))  # its own: kept
    finally:
        kept.kill()
        kept.wait()
        await chromium.close()
    assert set(chromium_processes(str(tmp_path))) <= {kept.pid}


async def test_a_missing_chromium_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(PermanentProviderError, match="CHROMIUM_PATH"):
        await LocalChromium(str(tmp_path / "no-chromium"), str(tmp_path)).open("job-1")
