"""A polite HTTP fetcher for site crawls: robots.txt, one host's request rate, redirects
followed hop by hop (each hop recorded and paced), bodies capped.

No retries of its own and no Temporal: the SEO activities decide what a failure means. A
page that answers (any status) is a result, not an error; only a transport failure (refused,
reset, timed out) raises ``TransientProviderError``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.robotparser
from dataclasses import dataclass, field

import httpx

from core.errors import TARGET_FORBIDDEN
from core.seo import normalize_url, site_of
from integrations.errors import (
    PermanentProviderError,
    TransientProviderError,
    parse_retry_after,
)
from integrations.targets import TargetForbidden, read_capped, resolve_public_target

PROVIDER = "crawl"
USER_AGENT = "BottleneckBotsAudit/1.0 (+https://bottleneckbots.com/bot)"
MAX_REDIRECTS = 10
MAX_CRAWL_DELAY_S = 10.0
# Bodies past this are not read (the page weight is then reported as at least this).
MAX_BODY_BYTES = 5 * 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class PoliteRate:
    """At most ``per_second`` request starts, evenly spaced (no bursts), shared by every
    concurrent fetch of one crawl."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    def slow_to(self, per_second: float) -> None:
        self._interval = max(self._interval, 1.0 / per_second)

    def back_off(self) -> None:
        """Halve the rate after the site throttled us, down to one request in
        MAX_CRAWL_DELAY_S."""
        self._interval = min(self._interval * 2, MAX_CRAWL_DELAY_S)

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    status: int
    redirects: list[tuple[str, int]] = field(default_factory=list)
    content_type: str = ""
    body: bytes = b""
    response_ms: int = 0
    # Set when a redirect led off the site or into a disallowed path: not followed.
    stopped: str | None = None
    # What a 429 or 503 asked for (seconds).
    retry_after: float | None = None

    @property
    def throttled(self) -> bool:
        """The site asks us to slow down (or is briefly unavailable): try again later."""
        return self.status in (429, 503)


@dataclass(frozen=True)
class Robots:
    found: bool
    sitemaps: list[str]
    parser: urllib.robotparser.RobotFileParser
    crawl_delay_s: float | None

    def allows(self, url: str) -> bool:
        return not self.found or self.parser.can_fetch(USER_AGENT, url)


class Crawler:
    """Fetches the pages of one site for one crawl."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        rate_per_second: float,
        allow_private: bool = False,
        timeout_s: float = 20.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._http = http
        self._rate = PoliteRate(rate_per_second)
        self._allow_private = allow_private
        self._timeout = httpx.Timeout(timeout_s)
        self._headers = {"User-Agent": user_agent, "Accept": "text/html,*/*;q=0.5"}
        self._robots: Robots | None = None
        self._address: str | None = None

    async def pin(self, start_url: str) -> None:
        """Resolve the site's host once and send every request of the crawl to that address:
        a user's URL must not reach private networks (unless allowed), and a name that
        changes its answer mid-crawl must not lead it there either."""
        url = httpx.URL(start_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            self._address = await resolve_public_target(url.host, port, self._allow_private)
        except TargetForbidden:
            raise PermanentProviderError(
                PROVIDER, f"{url.host} is not on the public internet", error_type=TARGET_FORBIDDEN
            ) from None
        except OSError:
            raise TransientProviderError(PROVIDER, f"{url.host} does not resolve") from None

    async def robots(self, start_url: str) -> Robots:
        """Read the site's robots.txt (a 4xx means no rules; a 5xx or no answer means
        nothing may be fetched, as the robots.txt standard asks); a ``Crawl-delay`` slows
        the crawl to it."""
        parser = urllib.robotparser.RobotFileParser()
        fetched = await self.fetch(site_of(start_url) + "/robots.txt", follow=True)
        if fetched.status >= 500 or fetched.status == 429:
            raise TransientProviderError(
                PROVIDER,
                "robots.txt answered a server error or a rate limit",
                status_code=fetched.status,
                retry_after=fetched.retry_after,
            )
        found = fetched.status == 200
        lines = fetched.body.decode("utf-8", errors="replace").splitlines() if found else []
        parser.parse(lines)
        delay = crawl_delay(lines)
        if delay:
            # Honoured up to MAX_CRAWL_DELAY_S: slower than that, a crawl of a few hundred
            # pages would outlast its activity; the crawl is still far below any server's load.
            delay = min(delay, MAX_CRAWL_DELAY_S)
            self._rate.slow_to(1.0 / delay)
        self._robots = Robots(found, list(parser.site_maps() or []), parser, delay)
        return self._robots

    def allows(self, url: str) -> bool:
        return self._robots is None or self._robots.allows(url)

    async def exists(self, url: str) -> bool:
        return (await self.fetch(url, follow=True, read_body=False)).status == 200

    async def fetch(self, url: str, *, follow: bool = True, read_body: bool = True) -> Fetched:
        """GET ``url``, following redirects on the same site that robots.txt allows."""
        hops: list[tuple[str, int]] = []
        current = url
        site = site_of(url)
        while True:
            await self._rate.wait()
            started = time.monotonic()
            target_url = httpx.URL(current)
            headers = {**self._headers, "Host": target_url.netloc.decode("ascii")}
            extensions: dict[str, str] = {}
            if self._address is not None:
                if target_url.scheme == "https":
                    extensions["sni_hostname"] = target_url.host
                target_url = target_url.copy_with(host=self._address)
            try:
                async with self._http.stream(
                    "GET",
                    target_url,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                    extensions=extensions,
                ) as response:
                    body = await read_capped(response, MAX_BODY_BYTES) if read_body else b""
            except httpx.TransportError as exc:
                raise TransientProviderError(
                    PROVIDER, f"fetching {current} failed: {type(exc).__name__}"
                ) from exc
            elapsed = round((time.monotonic() - started) * 1000)
            status = response.status_code
            location = response.headers.get("location")
            if status in (429, 503):
                self._rate.back_off()
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                return Fetched(
                    url, current, status, hops, "", b"", elapsed, retry_after=retry_after
                )
            if not (follow and status in REDIRECT_STATUSES and location):
                return Fetched(
                    url,
                    current,
                    status,
                    hops,
                    response.headers.get("content-type", ""),
                    body,
                    elapsed,
                )
            target = normalize_url(location, current)
            hops.append((current, status))
            stopped = None
            if target is None or site_of(target) != site:
                stopped = f"redirects off the site to {location}"
            elif not self.allows(target):
                stopped = f"redirects to {target}, which robots.txt disallows"
            elif len(hops) >= MAX_REDIRECTS or any(target == hop for hop, _ in hops):
                stopped = f"more than {MAX_REDIRECTS} redirects or a redirect loop"
            if stopped is not None:
                return Fetched(url, current, status, hops[:-1], "", b"", elapsed, stopped)
            assert target is not None
            current = target


def crawl_delay(lines: list[str]) -> float | None:
    """The ``Crawl-delay`` of the group for our agent, else of ``*`` (seconds, fractions
    allowed: the standard library's parser reads whole seconds only)."""
    delays: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        field, _, value = line.partition(":")
        field, value = field.strip().lower(), value.strip()
        if field == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        elif field:
            in_rules = True
            if field == "crawl-delay":
                try:
                    seconds = float(value)
                except ValueError:
                    continue
                if seconds > 0:
                    for agent in agents:
                        delays.setdefault(agent, seconds)
    ours = USER_AGENT.split("/", 1)[0].lower()
    return delays.get(ours, delays.get("*"))
