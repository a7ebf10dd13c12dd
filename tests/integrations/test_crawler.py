"""The polite fetcher against a small loopback site: robots.txt rules and Crawl-delay, a
robots.txt that errs, redirects followed hop by hop and stopped at the site's edge or a
disallowed path, private addresses refused unless allowed, and the request rate."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from core.errors import TARGET_FORBIDDEN
from emulators.server import serve
from integrations.crawler import Crawler, PoliteRate, crawl_delay
from integrations.errors import PermanentProviderError, TransientProviderError


def site(robots: str | None = "User-agent: *\nDisallow: /secret/\n", robots_status: int = 200):
    app = FastAPI()
    seen: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        seen.append(request.url.path)
        response: Response = await call_next(request)
        return response

    @app.get("/robots.txt")
    async def robots_txt() -> Response:
        if robots is None:
            return PlainTextResponse("", status_code=404)
        return PlainTextResponse(robots, status_code=robots_status)

    @app.get("/a")
    async def a() -> Response:
        return RedirectResponse("/b", status_code=301)

    @app.get("/b")
    async def b() -> Response:
        return RedirectResponse("/c", status_code=302)

    @app.get("/c")
    async def c() -> Response:
        return PlainTextResponse("<html><title>C</title></html>", media_type="text/html")

    @app.get("/away")
    async def away() -> Response:
        return RedirectResponse("https://example.invalid/x", status_code=301)

    @app.get("/into-secret")
    async def into_secret() -> Response:
        return RedirectResponse("/secret/page", status_code=302)

    return app, seen


async def test_redirects_are_followed_hop_by_hop_and_recorded():
    app, seen = site()
    async with serve(app) as url, httpx.AsyncClient() as http:
        crawler = Crawler(http, rate_per_second=100, allow_private=True)
        await crawler.pin(url)
        await crawler.robots(url)
        fetched = await crawler.fetch(url + "/a")
    assert fetched.final_url == url + "/c" and fetched.status == 200
    assert fetched.redirects == [(url + "/a", 301), (url + "/b", 302)]
    assert b"<title>C</title>" in fetched.body and fetched.stopped is None
    assert seen == ["/robots.txt", "/a", "/b", "/c"]


async def test_a_redirect_off_the_site_or_into_a_disallowed_path_is_not_followed():
    app, seen = site()
    async with serve(app) as url, httpx.AsyncClient() as http:
        crawler = Crawler(http, rate_per_second=100, allow_private=True)
        await crawler.pin(url)
        await crawler.robots(url)
        away = await crawler.fetch(url + "/away")
        secret = await crawler.fetch(url + "/into-secret")
        assert not crawler.allows(url + "/secret/page") and crawler.allows(url + "/c")
    assert away.status == 301 and away.stopped is not None and "off the site" in away.stopped
    assert secret.status == 302 and secret.stopped is not None and "disallows" in secret.stopped
    assert "/secret/page" not in seen


async def test_no_robots_txt_means_no_rules_and_a_failing_one_means_later():
    app, _ = site(robots=None)
    async with serve(app) as url, httpx.AsyncClient() as http:
        crawler = Crawler(http, rate_per_second=100, allow_private=True)
        robots = await crawler.robots(url)
        assert not robots.found and crawler.allows(url + "/secret/x")
    app, _ = site(robots_status=503)
    async with serve(app) as url, httpx.AsyncClient() as http:
        with pytest.raises(TransientProviderError):
            await Crawler(http, rate_per_second=100, allow_private=True).robots(url)


async def test_a_crawl_delay_slows_the_crawl_to_it():
    app, _ = site(robots="User-agent: *\nCrawl-delay: 0.2\n")
    async with serve(app) as url, httpx.AsyncClient() as http:
        crawler = Crawler(http, rate_per_second=100, allow_private=True)
        await crawler.robots(url)
        started = time.monotonic()
        for _ in range(3):
            await crawler.fetch(url + "/c")
        assert time.monotonic() - started >= 0.4  # three requests, 0.2 s apart after the first


async def test_private_addresses_are_refused_unless_allowed():
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentProviderError) as refused:
            await Crawler(http, rate_per_second=1).pin("http://127.0.0.1:9/")
        assert refused.value.error_type == TARGET_FORBIDDEN
        with pytest.raises(PermanentProviderError):
            await Crawler(http, rate_per_second=1).pin("http://169.254.169.254/latest/")


async def test_the_rate_spaces_requests_evenly():
    rate = PoliteRate(50)
    started = time.monotonic()
    for _ in range(11):
        await rate.wait()
    assert 0.2 - 0.01 <= time.monotonic() - started < 0.35  # 10 gaps of 20 ms


def test_crawl_delay_of_our_group_else_of_everyone():
    lines = [
        "User-agent: *",
        "Crawl-delay: 2",
        "",
        "User-agent: BottleneckBotsAudit",
        "Disallow: /x",
        "Crawl-delay: 0.5",
        "User-agent: other",
        "Crawl-delay: 9",
    ]
    assert crawl_delay(lines) == 0.5
    assert crawl_delay(lines[:2]) == 2.0
    assert crawl_delay(["User-agent: other", "Crawl-delay: 3"]) is None
