"""The SEO fixture site against its own manifest, so the manifest can be trusted as the truth
of an audit: a reference crawl (same host, robots.txt honoured, redirects followed hop by hop)
finds exactly the manifest's pages at their depths, and an audit of each page by the rules,
with the standard library's HTML parser, finds exactly the faults the manifest lists; the
keyword pages render the recorded text; robots.txt, the sitemap, redirects, files, private
pages, hit counting, delays and the generated benchmark site behave as documented."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
import pytest
import pytest_asyncio

from emulators import seo_site
from emulators.server import serve

MANIFEST: dict[str, Any] = json.loads(seo_site.MANIFEST_PATH.read_text(encoding="utf-8"))
LIMITS = MANIFEST["limits"]
PAGES = {p["path"]: p for p in MANIFEST["pages"]}


@dataclass
class Site:
    state: seo_site.SeoSiteState
    url: str
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    state = seo_site.SeoSiteState()
    async with serve(seo_site.create_app(state)) as url, httpx.AsyncClient(timeout=10) as http:
        yield Site(state, url, http)


class Parsed(HTMLParser):
    """What the audit rules look at, read the way a crawler would."""

    HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")

    def __init__(self) -> None:
        super().__init__()
        self.title: str | None = None
        self.description: str | None = None
        self.canonical: str | None = None
        self.headings: dict[str, list[str]] = {h: [] for h in self.HEADINGS}
        self.alts: list[str | None] = []
        self.links: list[str] = []
        self.body_nodes: list[str] = []
        self._open: list[str] = []
        self._text: list[str] = []
        # Visible text starts at <body>.
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "body":
            self._in_body = True
        elif tag == "meta" and (values.get("name") or "").lower() == "description":
            self.description = values.get("content") or ""
        elif tag == "link" and "canonical" in (values.get("rel") or "").lower().split():
            self.canonical = values.get("href")
        elif tag == "img":
            self.alts.append(values["alt"] if "alt" in values else None)
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag in ("title", "script", "style", *self.HEADINGS):
            self._open.append(tag)
            self._text = []
            if tag == "title":
                self.title = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()
            text = "".join(self._text)
            if tag == "title":
                self.title = text
            elif tag in self.HEADINGS:
                self.headings[tag].append(" ".join(text.split()))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)
        elif data.strip() and self._in_body:
            self.body_nodes.append(" ".join(data.split()))

    def feed_page(self, text: str) -> Parsed:
        self.feed(text)
        self.close()
        return self

    @property
    def body_text(self) -> str:
        return " ".join(self.body_nodes)


@dataclass
class Fetched:
    path: str
    depth: int
    status: int
    content_type: str
    body: bytes
    elapsed_ms: float
    hops: int
    parsed: Parsed | None = None


@dataclass
class Crawl:
    pages: dict[str, Fetched] = field(default_factory=dict)
    # Every internal URL fetched (after redirects) -> its final status.
    statuses: dict[str, int] = field(default_factory=dict)
    skipped_by_robots: set[str] = field(default_factory=set)
    other_hosts: set[str] = field(default_factory=set)


async def crawl(http: httpx.AsyncClient, base: str, *, max_depth: int = 10) -> Crawl:
    """A reference crawler: BFS from /, same host only, robots.txt honoured, redirects
    followed hop by hop (their hops add no depth), fragments dropped."""
    host = urlsplit(base).netloc
    robots = RobotFileParser()
    robots.parse((await http.get(f"{base}/robots.txt")).text.splitlines())
    result = Crawl()
    seen = {f"{base}/"}
    queue: deque[tuple[str, int]] = deque([(f"{base}/", 0)])
    while queue:
        url, depth = queue.popleft()
        hops, started = 0, time.perf_counter()
        response = await http.get(url)
        while response.is_redirect:
            url = urljoin(url, response.headers["location"])
            hops += 1
            assert hops <= 5, "redirect loop"
            started = time.perf_counter()
            response = await http.get(url)
        elapsed_ms = (time.perf_counter() - started) * 1000
        path = urlsplit(url).path
        result.statuses[path] = response.status_code
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or not content_type.startswith("text/html"):
            continue
        fetched = Fetched(
            path, depth, 200, content_type, response.content, elapsed_ms, hops,
            Parsed().feed_page(response.text),
        )  # fmt: skip
        result.pages[path] = fetched
        if depth >= max_depth:
            continue
        assert fetched.parsed is not None
        for href in fetched.parsed.links:
            target = urljoin(url, href)
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https"):
                continue
            if parts.netloc != host:
                result.other_hosts.add(target)
                continue
            target = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
            if not robots.can_fetch("*", target):
                result.skipped_by_robots.add(parts.path)
                continue
            if target not in seen:
                seen.add(target)
                queue.append((target, depth + 1))
    return result


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def audit(result: Crawl, base: str) -> dict[str, list[str]]:
    """Each fault rule of the SEO audit, applied to every 200 HTML page of a crawl."""
    parsed = {path: page.parsed for path, page in result.pages.items() if page.parsed}
    titles = Counter(norm(p.title) for p in parsed.values() if p.title and p.title.strip())
    descriptions = Counter(
        norm(p.description) for p in parsed.values() if p.description and p.description.strip()
    )
    host = urlsplit(base).netloc
    faults: dict[str, list[str]] = {}
    for path, page in result.pages.items():
        p = page.parsed
        assert p is not None
        found: set[str] = set()
        if p.title is None or not p.title.strip():
            found.add("missing_title")
        else:
            if len(p.title) > LIMITS["title_max_chars"]:
                found.add("title_too_long")
            if titles[norm(p.title)] > 1:
                found.add("duplicate_title")
        if p.description is None or not p.description.strip():
            found.add("missing_meta_description")
        else:
            if len(p.description) > LIMITS["description_max_chars"]:
                found.add("meta_description_too_long")
            if descriptions[norm(p.description)] > 1:
                found.add("duplicate_meta_description")
        if not p.headings["h1"]:
            found.add("missing_h1")
        if len(p.headings["h1"]) > 1:
            found.add("multiple_h1")
        if not p.canonical:
            found.add("missing_canonical")
        else:
            # A clean page's canonical points at itself.
            assert p.canonical == f"{base}{path}", path
        if any(alt is None for alt in p.alts):
            found.add("missing_alt")
        for href in p.links:
            target = urlsplit(urljoin(f"{base}{path}", href))
            if target.netloc == host and result.statuses.get(target.path, 0) >= 400:
                found.add("broken_link")
        if page.elapsed_ms > LIMITS["slow_response_ms"]:
            found.add("slow_response")
        if len(page.body) > LIMITS["heavy_page_bytes"]:
            found.add("heavy_page")
        if page.hops >= LIMITS["redirect_chain_min_hops"]:
            found.add("redirect_chain")
        faults[path] = sorted(found)
    return faults


def test_the_manifest_is_consistent() -> None:
    assert len(PAGES) >= 55
    depths = Counter(str(p["depth"]) for p in PAGES.values())
    assert MANIFEST["depth_counts"] == dict(sorted(depths.items()))
    assert set(depths) == {"0", "1", "2", "3", "4"} and depths["4"] >= 3
    index: dict[str, list[str]] = {}
    for page in MANIFEST["pages"]:
        for fault in page["faults"]:
            index.setdefault(fault, []).append(page["path"])
        assert page["h1"] == [t for tag, t in page["blocks"] if tag == "h1"]
        assert bool(page["broken_links"]) == ("broken_link" in page["faults"])
    assert index == MANIFEST["faults"]
    # Every rule is seeded at least once, and a duplicate title group has 2-3 pages.
    assert set(index) == set(MANIFEST["rules"])
    assert 2 <= len(index["duplicate_title"]) <= 3
    assert 2 <= len(index["duplicate_meta_description"]) <= 3
    assert any(p["faults"] for p in PAGES.values() if p["depth"] == 4)
    # The decorative image (alt="") sits on a clean page.
    assert any(img["alt"] == "" and not p["faults"] for p in PAGES.values() for img in p["images"])
    assert set(MANIFEST["keyword_pages"]) <= set(PAGES)
    assert MANIFEST["sitemap"] == [p["path"] for p in MANIFEST["pages"] if p["in_sitemap"]]


async def test_a_crawl_finds_every_page_at_its_depth_with_exactly_its_faults(site: Site) -> None:
    result = await crawl(site.http, site.url)
    assert set(result.pages) == set(PAGES)
    assert {path: page.depth for path, page in result.pages.items()} == {
        path: p["depth"] for path, p in PAGES.items()
    }
    assert audit(result, site.url) == {path: p["faults"] for path, p in PAGES.items()}
    for path, page in result.pages.items():
        expected, parsed = PAGES[path], page.parsed
        assert parsed is not None
        assert (parsed.title, parsed.description) == (expected["title"], expected["description"])
        assert [parsed.headings[h] for h in ("h1", "h2", "h3")] == [
            expected["h1"],
            expected["h2"],
            expected["h3"],
        ], path
        assert page.hops == expected["redirect_hops"], path
    # Broken targets answer as listed; nothing private or on another host was fetched.
    for broken in MANIFEST["broken"]:
        assert result.statuses[broken["path"]] == broken["status"]
    for page in MANIFEST["pages"]:
        for link in page["broken_links"]:
            assert result.statuses[link["href"]] == link["status"]
    private = {p["path"] for p in MANIFEST["private_pages"]}
    assert result.skipped_by_robots == private
    assert not any(site.state.hits[path] for path in private)
    assert {urlsplit(u).netloc for u in result.other_hosts} == {
        "example.invalid",
        site.url.replace("http://127.0.0.1", "localhost"),
    }
    assert site.state.hits["/external-copy"] == 0
    # Images are never fetched by a crawler; the PDF and CSV are, and are not pages.
    assert not any(path.startswith("/images/") for path in site.state.hits)
    for file in MANIFEST["files"]:
        assert result.statuses[file["path"]] == 200 and file["path"] not in result.pages


async def test_a_crawl_limited_to_depth_3_misses_the_depth_4_pages(site: Site) -> None:
    result = await crawl(site.http, site.url, max_depth=3)
    assert set(result.pages) == {path for path, p in PAGES.items() if p["depth"] <= 3}
    assert len(PAGES) - len(result.pages) == MANIFEST["depth_counts"]["4"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def occurrences(keyword: str, texts: list[str]) -> int:
    want = words(keyword)
    total = 0
    for text in texts:
        have = words(text)
        total += sum(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))
    return total


async def test_keyword_pages_render_exactly_the_recorded_text(site: Site) -> None:
    for path, expected in MANIFEST["keyword_pages"].items():
        parsed = Parsed().feed_page((await site.http.get(site.url + path)).text)
        assert parsed.title == expected["title"]
        assert parsed.description == expected["description"]
        assert [parsed.headings[h] for h in ("h1", "h2", "h3")] == [
            expected["h1"],
            expected["h2"],
            expected["h3"],
        ]
        assert parsed.body_text == expected["body_text"]
        assert expected["slug"] == path.rsplit("/", 1)[1]
        places: dict[str, list[str]] = {
            "title": [parsed.title or ""],
            "description": [parsed.description or ""],
            "h1": parsed.headings["h1"],
            "h2": parsed.headings["h2"],
            "h3": parsed.headings["h3"],
            "body": parsed.body_nodes,
            "slug": [expected["slug"]],
        }
        for keyword in MANIFEST["keywords"]:
            counts = {place: occurrences(keyword, texts) for place, texts in places.items()}
            assert counts == expected["counts"][keyword], (path, keyword)
    # The pages really do hold their keywords in each kind of place.
    espresso = MANIFEST["keyword_pages"]["/shop/espresso-beans"]["counts"]["espresso"]
    assert all(espresso[place] for place in ("title", "h1", "h2", "body", "slug"))
    grinder = MANIFEST["keyword_pages"]["/shop/grinders/coffee-grinder-guide"]["counts"]
    assert grinder["coffee grinder"]["h3"] and grinder["coffee grinder"]["slug"]


async def test_robots_sitemap_and_private_pages(site: Site) -> None:
    robots = await site.http.get(f"{site.url}/robots.txt")
    assert robots.headers["content-type"].startswith("text/plain")
    assert robots.text == (
        f"User-agent: *\nDisallow: /private/\n\nSitemap: {site.url}/sitemap.xml\n"
    )
    sitemap = await site.http.get(f"{site.url}/sitemap.xml")
    assert sitemap.headers["content-type"].startswith("application/xml")
    locs = re.findall(r"<loc>([^<]+)</loc>", sitemap.text)
    assert locs == [site.url + path for path in MANIFEST["sitemap"]]
    assert f"{site.url}/offer" not in locs  # reached only through its redirect chain
    for page in MANIFEST["private_pages"]:
        answer = await site.http.get(site.url + page["path"])
        assert answer.status_code == 200 and page["title"] in answer.text
        linked = [PAGES[p] for p in page["linked_from"]]
        assert all(page["path"] in [link["href"] for link in p["links"]] for p in linked)


async def test_redirects_are_answered_one_hop_at_a_time(site: Site) -> None:
    first = await site.http.get(f"{site.url}/old-offer")
    assert (first.status_code, first.headers["location"]) == (301, f"{site.url}/older-offer")
    second = await site.http.get(first.headers["location"])
    assert (second.status_code, second.headers["location"]) == (302, "/offer")
    assert (await site.http.get(site.url + "/offer")).status_code == 200
    moved = await site.http.get(f"{site.url}/moved")
    assert (moved.status_code, moved.headers["location"]) == (301, "/about/history")
    assert "redirect_chain" not in PAGES["/about/history"]["faults"]
    assert PAGES["/about/history"]["redirect_hops"] == 1


async def test_files_errors_hits_and_the_other_host(site: Site) -> None:
    for file in MANIFEST["files"]:
        answer = await site.http.get(site.url + file["path"])
        assert answer.status_code == 200 and answer.headers["content-type"] == file["content_type"]
    pdf = await site.http.get(f"{site.url}/files/brew-ratios.pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert (await site.http.get(f"{site.url}/shop/stock-check")).status_code == 500
    assert (await site.http.get(f"{site.url}/shop/discontinued-grinder")).status_code == 404
    assert (await site.http.get(f"{site.url}/no/such/page")).status_code == 404
    image = await site.http.get(f"{site.url}/images/roastery-front.jpg")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    other = site.url.replace("127.0.0.1", "localhost")
    about = (await site.http.get(f"{site.url}/about")).text
    assert f'href="{other}/external-copy"' in about
    assert f'href="{site.url}/about/roastery"' in about  # an absolute same-host link
    via_localhost = (await site.http.get(f"{other}/about")).text
    assert f'href="{site.url}/external-copy"' in via_localhost
    assert (await site.http.get(f"{other}/external-copy")).status_code == 200
    host = urlsplit(site.url).netloc
    assert site.state.hits["/about"] == 2
    assert site.state.host_hits[(host, "/about")] == 1
    assert site.state.host_hits[(urlsplit(other).netloc, "/about")] == 1
    assert site.state.host_hits[(urlsplit(other).netloc, "/external-copy")] == 1


async def test_slow_ms_and_delay_ms_are_configurable(site: Site) -> None:
    slow = next(p["path"] for p in MANIFEST["pages"] if "slow_response" in p["faults"])
    site.state.slow_ms = 50
    started = time.perf_counter()
    await site.http.get(site.url + slow)
    assert 0.05 <= time.perf_counter() - started < 1.0
    site.state.delay_ms = 200
    started = time.perf_counter()
    await site.http.get(f"{site.url}/shop")
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    await site.http.get(f"{site.url}/robots.txt")
    assert time.perf_counter() - started < 0.2  # only HTML pages wait


async def test_the_generated_site_is_clean_and_within_depth_3() -> None:
    state = seo_site.generated_site(200, delay_ms=1)
    async with serve(seo_site.create_app(state)) as url, httpx.AsyncClient(timeout=10) as http:
        result = await crawl(http, url, max_depth=3)
        assert sorted(result.pages) == sorted(seo_site.generated_paths(200))
        assert max(page.depth for page in result.pages.values()) == 3
        assert all(faults == [] for faults in audit(result, url).values())
        # A handful of links per page, and no page beyond the last.
        links = [len(page.parsed.links) for page in result.pages.values() if page.parsed]
        assert min(links) >= 2 and max(links) <= 9
        assert (await http.get(f"{url}/page/200")).status_code == 404
        sitemap = (await http.get(f"{url}/sitemap.xml")).text
        assert sitemap.count("<loc>") == 200
    with pytest.raises(ValueError):
        seo_site.generated_site(0)
