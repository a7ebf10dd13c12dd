"""Activities of WORKFLOW_EXECUTION: run a saved browser workflow's steps in a real browser.

``begin_execution`` checks the saved definition and records the execution. ``run_steps`` is
one attempt: it takes a browser slot (at most ``BROWSER_MAX_SESSIONS`` sessions across every
worker, FR-043; while none is free it answers ``started=False`` and the job waits in line),
opens a session (local Chromium or Browserbase), connects Playwright over CDP and runs the
steps from step 1, writing each step's result as it ends and reporting progress after it.
The session is released and the slot given back whatever happens: success, a failed step,
a cancel, or the worker shutting down (its grace cancels the attempt). A browser left by a
killed worker is reaped by the next worker on the host (``reap_orphans``). Screenshots go to
the database; only their ids travel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playwright.async_api import Browser, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat, heartbeat
from activities.slots import job_is_running, reclaim_abandoned_slots
from core.browser import (
    Assert,
    Click,
    Extract,
    Fill,
    InvalidSteps,
    Navigate,
    Screenshot,
    Select,
    Step,
    WaitFor,
    check_for_job,
    parse_steps,
    with_values,
)
from core.crypto import TokenCipher, token_key
from core.errors import INVALID_JOB_DATA, RESOURCE_NOT_FOUND, STEP_FAILED
from core.logging import get_logger
from core.signals import SLOT_FREED
from db.browser import BrowserWorkflowStore, ExecutionStore, SavedWorkflow, StepOutcome
from db.secrets import SecretNotFound, SecretStore
from db.slots import SlotPool
from integrations.browserbase import BrowserbaseClient
from integrations.browsers import BrowserbaseSessions, BrowserProvider, LocalChromium
from integrations.errors import ProviderError
from tracking.progress import report_progress

log = get_logger(__name__)

BROWSER_SLOTS = "browser-sessions"
# A slot's lease, renewed while the session is open; a job terminated mid-run (no code of
# its own ran) frees its slot when the lease ends.
SLOT_LEASE = timedelta(minutes=2)
SLOT_RENEW_S = 30.0
WAKE_WAITERS = 2
MAX_OUTPUT = 10_000
MAX_ERROR = 1_000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class BeginExecutionInput(_Model):
    job_id: str
    execution_id: str
    user_id: str
    workflow_id: str
    workflow_version: int | None
    trigger_id: str | None
    context: dict[str, Any] = Field(default_factory=dict)
    # The stored secret placeholder values (db/secrets.py), read here, never passed.
    secret_context_id: str | None = None


class BeginExecutionResult(_Model):
    workflow_version: int
    steps_total: int


class RunStepsInput(_Model):
    job_id: str
    execution_id: str
    user_id: str
    workflow_id: str
    workflow_version: int
    context: dict[str, Any] = Field(default_factory=dict)
    secret_context_id: str | None = None


class RunStepsResult(_Model):
    # False: every browser slot is taken; the job waits in line to be woken, or asks again.
    started: bool
    steps_succeeded: int = 0


class StepFailure(_Model):
    """The failure details of an attempt whose step failed (read by the workflow)."""

    step_index: int
    action: str
    error: str


class FinishExecutionInput(_Model):
    execution_id: str
    status: str
    error: str | None = None
    failed_step: int | None = None


def _permanent(message: str, error_type: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


def _short(error: BaseException) -> str:
    # Playwright's messages carry a call log after the first line; the first says it.
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:MAX_ERROR]


class StepRunner:
    """Runs one step on a page; returns its output and, for a screenshot, the PNG."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def run(self, step: Step, variables: dict[str, str]) -> tuple[str | None, bytes | None]:
        page, timeout = self.page, step.timeout_ms
        match step:
            case Navigate(url=url):
                response = await page.goto(url, timeout=timeout, wait_until="load")
                if response is not None and response.status >= 400:
                    raise StepError(f"HTTP {response.status} from {page.url}")
                return page.url, None
            case Click(selector=selector):
                await page.click(selector, timeout=timeout)
                return None, None
            case Fill(selector=selector, value=value):
                await page.fill(selector, value, timeout=timeout)
                return None, None
            case Select(selector=selector, value=value):
                chosen = await page.select_option(selector, value, timeout=timeout)
                return ",".join(chosen), None
            case WaitFor(selector=selector, text=text):
                await self._locate(selector, text).wait_for(state="visible", timeout=timeout)
                return None, None
            case Extract(selector=selector, into=into, attribute=attribute):
                element = page.locator(selector).first
                found = (
                    await element.get_attribute(attribute, timeout=timeout)
                    if attribute
                    else await element.inner_text(timeout=timeout)
                )
                if found is None:
                    raise StepError(f"the element has no attribute {attribute!r}")
                variables[into] = found[:MAX_OUTPUT]
                return variables[into], None
            case Screenshot(selector=selector, full_page=full_page):
                if selector:
                    png = await page.locator(selector).first.screenshot(timeout=timeout)
                else:
                    png = await page.screenshot(full_page=full_page, timeout=timeout)
                return None, png
            case Assert(selector=selector, text=text):
                try:
                    await self._locate(selector, text).wait_for(state="attached", timeout=timeout)
                except PlaywrightTimeout:
                    what = f"selector {selector!r}" if selector else f"text {text!r}"
                    raise StepError(f"assertion failed: {what} is not on the page") from None
                return None, None
        raise StepError(f"unknown action {step.action!r}")

    def _locate(self, selector: str | None, text: str | None) -> Any:
        if selector is not None:
            return self.page.locator(selector).first
        return self.page.get_by_text(text or "").first


class StepError(Exception):
    """A step that ran and failed (an assertion, an error page)."""


class BrowserActivities:
    def __init__(
        self,
        workflows: BrowserWorkflowStore,
        executions: ExecutionStore,
        browsers: BrowserProvider,
        slots: SlotPool,
        secrets: SecretStore,
    ) -> None:
        self._secrets = secrets
        self._workflows = workflows
        self._executions = executions
        self._browsers = browsers
        self._slots = slots
        self._playwright: Playwright | None = None
        self._playwright_lock = asyncio.Lock()

    async def _driver(self) -> Playwright:
        # One Playwright driver per worker process, started on first use (about a second).
        async with self._playwright_lock:
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            return self._playwright

    async def close(self) -> None:
        await self._browsers.close()
        if self._playwright is not None:
            with contextlib.suppress(PlaywrightError, OSError):
                await self._playwright.stop()
            self._playwright = None

    async def _steps(
        self, workflow_id: str, user_id: str, version: int | None
    ) -> tuple[SavedWorkflow, list[Step]]:
        saved = await self._workflows.get(workflow_id, user_id=user_id, version=version)
        if saved is None:
            which = f"version {version} of " if version is not None else ""
            raise _permanent(
                f"{which}browser workflow {workflow_id!r} is not found", RESOURCE_NOT_FOUND
            )
        try:
            return saved, parse_steps(saved.steps)
        except InvalidSteps as exc:
            raise _permanent(f"the saved workflow is invalid: {exc}", INVALID_JOB_DATA) from None

    async def _values(
        self, context: dict[str, Any], secret_context_id: str | None, user_id: str
    ) -> dict[str, Any]:
        """The placeholder values: the job's context over its stored secret ones."""
        if secret_context_id is None:
            return dict(context)
        try:
            stored = json.loads(await self._secrets.get(secret_context_id, user_id=user_id))
        except SecretNotFound:
            raise _permanent(
                "the job's secret context is no longer stored", RESOURCE_NOT_FOUND
            ) from None
        return {**stored, **context}

    @activity.defn(name="begin_execution")
    async def begin_execution(self, input: BeginExecutionInput) -> BeginExecutionResult:
        saved, steps = await self._steps(input.workflow_id, input.user_id, input.workflow_version)
        values = await self._values(input.context, input.secret_context_id, input.user_id)
        try:
            check_for_job(steps, values)
        except InvalidSteps as exc:
            raise _permanent(str(exc), INVALID_JOB_DATA) from None
        await self._executions.create(
            input.execution_id,
            job_id=input.job_id,
            user_id=input.user_id,
            workflow=saved,
            trigger_id=input.trigger_id,
        )
        return BeginExecutionResult(workflow_version=saved.version, steps_total=len(steps))

    @activity.defn(name="run_steps")
    @auto_heartbeat
    async def run_steps(self, input: RunStepsInput) -> RunStepsResult:
        _, steps = await self._steps(input.workflow_id, input.user_id, input.workflow_version)
        # Slots are held by job: a retried attempt renews its own, never takes a second one.
        if not await self._slots.acquire(input.job_id, wait=True):
            if not await reclaim_abandoned_slots(self._slots) or not await self._slots.acquire(
                input.job_id, wait=True
            ):
                return RunStepsResult(started=False)
        renewer = asyncio.create_task(self._renew_slot(input.job_id))
        try:
            succeeded = await self._run_in_session(input, steps)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and (details.cancel_requested or details.not_found):
                # The job was cancelled or terminated: its workflow may never run again to
                # say so. A worker shutting down is not an end; another worker retries.
                await asyncio.shield(self._executions.finish(input.execution_id, "cancelled"))
            raise
        finally:
            renewer.cancel()
            # Shielded: a cancelled attempt still gives its slot back and wakes the next.
            await asyncio.shield(self._give_back_slot(input.job_id))
        return RunStepsResult(started=True, steps_succeeded=succeeded)

    async def _run_in_session(self, input: RunStepsInput, steps: list[Step]) -> int:
        attempt = activity.info().attempt
        await self._executions.begin_attempt(input.execution_id, attempt)
        try:
            session = await self._browsers.open(input.job_id)
        except ProviderError as exc:
            raise to_application_error(exc) from None
        try:
            driver = await self._driver()
            browser = await driver.chromium.connect_over_cdp(session.cdp_url, timeout=30_000)
            try:
                return await self._run_on(browser, input, steps)
            finally:
                with contextlib.suppress(PlaywrightError, OSError):
                    await asyncio.shield(browser.close())
        finally:
            await asyncio.shield(self._release(session))

    async def _release(self, session: Any) -> None:
        try:
            await self._browsers.release(session)
        except (ProviderError, OSError) as exc:
            # Browserbase ends it at its timeout; the next reap asks again.
            log.warning("browser.release_failed", session_id=session.id, error=str(exc))

    async def _run_on(self, browser: Browser, input: RunStepsInput, steps: list[Step]) -> int:
        values = await self._values(input.context, input.secret_context_id, input.user_id)
        context = browser.contexts[0] if browser.contexts else await browser.new_context()
        page = context.pages[0] if context.pages else await context.new_page()
        runner = StepRunner(page)
        variables: dict[str, str] = {}
        for index, template in enumerate(steps):
            step = with_values(template, {**values, **variables})
            started = time.monotonic()
            try:
                output, png = await runner.run(step, variables)
            except (StepError, PlaywrightError) as exc:
                error = _short(exc)
                await self._executions.record_step(
                    input.execution_id,
                    StepOutcome(index, step.action, "failed", None, error, _ms_since(started)),
                    user_id=input.user_id,
                )
                log.info("browser.step_failed", job_id=input.job_id, step=index)
                raise ApplicationError(
                    f"step {index} ({step.action}) failed: {error}",
                    StepFailure(step_index=index, action=step.action, error=error),
                    type=STEP_FAILED,
                ) from None
            screenshot = (f"shot_{uuid.uuid4().hex}", png) if png is not None else None
            await self._executions.record_step(
                input.execution_id,
                StepOutcome(
                    index,
                    step.action,
                    "succeeded",
                    output[:MAX_OUTPUT] if output is not None else None,
                    None,
                    _ms_since(started),
                    screenshot[0] if screenshot else None,
                ),
                variables=dict(variables) if isinstance(step, Extract) else None,
                screenshot=screenshot,
                user_id=input.user_id,
            )
            heartbeat()
            await report_progress(round(100 * (index + 1) / len(steps)), step=index)
        return len(steps)

    async def _renew_slot(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(SLOT_RENEW_S)
            with contextlib.suppress(Exception):
                await self._slots.acquire(job_id)

    async def _give_back_slot(self, job_id: str) -> None:
        waiting = await self._slots.release(job_id, wake=WAKE_WAITERS)
        try:
            client = activity.client()
        except RuntimeError:  # outside a worker: nobody to wake
            return
        for waiter in waiting:
            if waiter == job_id:
                continue
            try:
                await client.get_workflow_handle(waiter).signal(SLOT_FREED)
            except RPCError:
                # It ended meanwhile; the next in line is woken with the next slot.
                continue

    @activity.defn(name="finish_execution")
    async def finish_execution(self, input: FinishExecutionInput) -> None:
        await self._executions.finish(
            input.execution_id, input.status, error=input.error, failed_step=input.failed_step
        )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def build_browser_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    at_rest = token_key(settings)
    browsers: BrowserProvider
    if settings.browser_provider == "browserbase":
        browsers = BrowserbaseSessions(
            BrowserbaseClient(
                deps.http,
                base_url=settings.browserbase_api_base_url,
                api_key=settings.browserbase_api_key,
                project_id=settings.browserbase_project_id,
            )
        )
    else:
        browsers = LocalChromium(settings.chromium_path, settings.browser_profiles_dir)
    acts = BrowserActivities(
        BrowserWorkflowStore(deps.sessions),
        ExecutionStore(deps.sessions),
        browsers,
        SlotPool(
            deps.sessions, BROWSER_SLOTS, limit=settings.browser_max_sessions, lease=SLOT_LEASE
        ),
        SecretStore(deps.sessions, TokenCipher(at_rest), at_rest),
    )
    deps.closers.append(acts.close)
    deps.starters.append(lambda client: reap_orphans(browsers, client))
    return [acts.begin_execution, acts.run_steps, acts.finish_execution]


async def reap_orphans(browsers: BrowserProvider, client: Any) -> None:
    """At worker start: release the browsers that dead workers or ended jobs left."""
    try:
        reaped = await browsers.reap(lambda job_id: job_is_running(client, job_id))
    except (ProviderError, OSError) as exc:
        log.warning("browser.reap_failed", error=str(exc))
        return
    if reaped:
        log.info("browser.orphans_reaped", count=reaped)
