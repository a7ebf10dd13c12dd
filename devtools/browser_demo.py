"""The browser-automation part of ``make run``: the fixture website on loopback and one demo
WORKFLOW_EXECUTION job in local headless Chromium (sign in, extract, wait for late content,
take a screenshot), so a new user sees step results, variables and a screenshot with no
Browserbase account.

``devtools.run`` starts this process (only when Browserbase is not configured).
"""

from __future__ import annotations

import contextlib
import uuid

from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from devtools.demo_support import demo_main, stop_on_signals, wait_finished
from emulators import fixture_site
from emulators.server import serve

SITE_PORT = 8306
DEMO_USER = "demo-user"


def demo_steps() -> list[dict[str, object]]:
    return [
        {"action": "navigate", "url": "{{site}}/login"},
        {"action": "fill", "selector": "#name", "value": "{{name}}"},
        {"action": "fill", "selector": "#password", "value": "demo-password"},
        {"action": "click", "selector": "#submit"},
        {"action": "extract", "selector": "#greeting", "into": "greeting"},
        {"action": "navigate", "url": "{{site}}/table"},
        {"action": "extract", "selector": "#total", "into": "products"},
        {"action": "navigate", "url": "{{site}}/late"},
        {"action": "wait_for", "selector": "#ready"},
        {"action": "screenshot", "fullPage": True},
    ]


async def run_demo() -> None:
    settings = load_settings()
    stop = stop_on_signals()
    async with serve(fixture_site.create_app(), port=SITE_PORT) as site:
        print(f"fixture website on {site}", flush=True)
        queue = await JobQueue.connect(settings)
        try:
            workflow_id = await queue.save_browser_workflow(DEMO_USER, "demo sign-in", demo_steps())
            job = await queue.add_job(
                "workflow",
                "workflow_execution",
                {
                    "userId": DEMO_USER,
                    "workflowId": workflow_id,
                    "triggerId": f"demo-{uuid.uuid4().hex[:6]}",
                    "context": {"site": site, "name": "Demo User"},
                },
            )
            print(f"demo browser workflow: job {job.id}", flush=True)
            info = await wait_finished(queue, job.id)
            if info is not None and info.result:
                execution = await queue.get_workflow_execution(info.result["execution_id"])
                done = sum(step["status"] == "succeeded" for step in execution["steps"])
                print(
                    f"demo browser workflow {execution['status']}: {done} steps, "
                    f"variables {execution['variables']}, execution {execution['execution_id']}",
                    flush=True,
                )
            elif info is not None:
                print(f"demo browser workflow {info.state.value}: {info.failure_reason}")
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await queue.close()


if __name__ == "__main__":
    exit_process(demo_main(run_demo))
