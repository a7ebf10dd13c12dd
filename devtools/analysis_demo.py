"""The SEO and ads part of ``make run``: the seeded shop website, an emulated Meta and Google
Ads API and an emulated PageSpeed Insights on loopback, and one demo job of each analysis
type (an SEO audit with PageSpeed, a keyword analysis, an ad analysis of the Meta account,
and an ad automation dry run), so a new user sees reports, scores and planned actions with no
credentials.

``devtools.run`` starts this process and points the workers at it (only when no real ad
platform or PageSpeed endpoint is configured).
"""

from __future__ import annotations

import asyncio
import contextlib

from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from devtools.demo_support import demo_main, stop_on_signals, wait_finished
from emulators import ads as ads_emulator
from emulators import pagespeed as pagespeed_emulator
from emulators import seo_site
from emulators.endpoints import ads_settings, pagespeed_settings
from emulators.server import serve

SITE_PORT = 8307
ADS_PORT = 8308
PAGESPEED_PORT = 8309
DEMO_USER = "demo-user"
DEMO_RULES = [
    {
        "id": "pause-costly",
        "action": "pause",
        "level": "ad",
        "minSpend": 50,
        "when": [{"metric": "cpa", "op": ">", "value": 100}],
    },
    {
        "id": "boost-best",
        "action": "raise_budget",
        "level": "ad_set",
        "select": "best",
        "by": "roas",
        "percent": 20,
        "cap": 100,
    },
]


def demo_environment() -> dict[str, str]:
    """Settings that point the workers at the demo emulators; crawls may reach loopback."""
    return {
        **ads_settings(f"http://127.0.0.1:{ADS_PORT}"),
        **pagespeed_settings(f"http://127.0.0.1:{PAGESPEED_PORT}"),
        "SEO_ALLOW_PRIVATE_TARGETS": "true",
    }


async def _report(queue: JobQueue, label: str, job_id: str) -> None:
    info = await wait_finished(queue, job_id)
    if info is None:
        return
    if info.result is None:
        print(f"demo {label} {info.state.value}: {info.failure_reason}", flush=True)
        return
    result = info.result
    if "score" in result:
        summary = f"score {result['score']}, {result['pages_crawled']} pages, "
        summary += f"{len(result['issues'])} issues"
    elif "keywords" in result:
        summary = ", ".join(f"{k['keyword']} best on {k['best_page']}" for k in result["keywords"])
    elif "totals" in result:
        summary = f"{result['rows']} rows, ROAS {result['totals']['roas']}, "
        summary += f"{len(result['outliers'])} outliers"
    else:
        summary = f"{len(result['planned'])} actions planned (dry run: {result['dry_run']})"
    print(f"demo {label} {info.state.value}: {summary} (job {job_id})", flush=True)


async def run_demo() -> None:
    settings = load_settings()
    stop = stop_on_signals()
    async with (
        serve(seo_site.create_app(), port=SITE_PORT) as site,
        serve(ads_emulator.create_app(), port=ADS_PORT),
        serve(pagespeed_emulator.create_app(), port=PAGESPEED_PORT),
    ):
        print(f"SEO demo site on {site}, ads emulator on :{ADS_PORT}", flush=True)
        queue = await JobQueue.connect(settings)
        meta = {"kind": "meta", "accountId": ads_emulator.META_ACCOUNT}
        token = ads_emulator.DEFAULT_META_TOKEN
        try:
            jobs = {
                "SEO audit": await queue.add_job(
                    "seo",
                    "seo_audit",
                    {"userId": DEMO_USER, "url": site + "/", "maxDepth": 4, "maxPages": 100},
                ),
                "keyword analysis": await queue.add_job(
                    "seo",
                    "keyword_analysis",
                    {"userId": DEMO_USER, "url": site + "/", "keywords": ["espresso", "cold brew"]},
                ),
                "ad analysis": await queue.add_job(
                    "ads",
                    "ad_analysis",
                    {"userId": DEMO_USER, "source": meta, "accessToken": token},
                ),
                "ad automation (dry run)": await queue.add_job(
                    "ads",
                    "ad_automation",
                    {
                        "userId": DEMO_USER,
                        "source": meta,
                        "accessToken": token,
                        "rules": DEMO_RULES,
                    },
                ),
            }
            for label, job in jobs.items():
                print(f"demo {label}: job {job.id}", flush=True)
            await asyncio.gather(*(_report(queue, label, job.id) for label, job in jobs.items()))
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await queue.close()


if __name__ == "__main__":
    exit_process(demo_main(run_demo))
