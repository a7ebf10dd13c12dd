"""A small shop-and-blog website ("Northwind Coffee") on loopback with seeded SEO faults, for
the SEO audit crawler's tests and benchmarks.

Everything it serves comes from ``seo_site_manifest.json`` beside this file, which the tests
also read as the expected truth of a crawl:

- ``pages``: the public HTML pages (61, depth 0..4), each with ``path``, ``depth`` (shortest
  number of link hops from ``/``; redirect hops add none), ``title`` / ``description``
  (``null``: the tag is absent), ``canonical`` (a self-pointing absolute canonical link or
  none), ``h1`` / ``h2`` / ``h3``, ``blocks`` (``[tag, text]`` in order: the page's headings
  and paragraphs), ``links`` (``{href, text}`` after the blocks), ``images`` (``{src, alt}``,
  alt ``null``: no alt attribute), ``inline_data_bytes`` (an inline JSON script of that size,
  for the heavy page), ``redirected_from`` / ``redirect_hops`` (how a crawl reaches it),
  ``in_sitemap``, ``faults`` (the audit's fault names; every other rule holds) and
  ``broken_links`` (``{href, status}``).
- ``template``: the nav and footer every page carries; ``rules`` and ``limits``: what each
  fault means; ``depth_counts`` and ``faults``: summaries of ``pages``.
- ``redirects`` (``{path, status, location, absolute}``; ``absolute``: the Location is a
  full URL on the request's own host), ``broken`` (404 and 500 targets), ``files`` (a PDF and a
  CSV), ``private_pages`` (under ``/private/``, disallowed by robots.txt, answering 200),
  ``other_host_pages`` and ``external_links`` (never to be followed by a same-host crawler),
  ``robots_txt``, ``sitemap``.
- ``keyword_pages``: per page the exact ``title``, ``description``, ``h1``..``h3``, ``slug``,
  ``body_text`` (``keyword_rule`` says how it is extracted) and ``counts`` of each of
  ``keywords`` per place.

Link hrefs may hold ``{origin}`` (the request's own base URL) and ``{other_origin}`` (the same
server under the other loopback name: ``localhost`` for ``127.0.0.1`` and back).

Routes: every page, private page and ``/external-copy`` by its path; ``/robots.txt`` (its
``Sitemap:`` line built from the request's base URL); ``/sitemap.xml``; the redirects, the
404 and 500 targets, the files; ``/images/*`` (a 1x1 PNG); anything else 404. The page whose
faults hold ``slow_response`` answers after ``state.slow_ms``; every HTML page waits
``state.delay_ms`` first (benchmarks). ``state.hits`` counts requests per path and
``state.host_hits`` per (Host header, path).

``generated_site(n)`` gives a state whose app serves instead a plain site of ``n`` clean pages
(``/`` and ``/page/{i}``, each linking to its ``FANOUT`` children, its parent, the next page and
``/``): 200 pages all lie within depth 3.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

MANIFEST_PATH = Path(__file__).with_name("seo_site_manifest.json")
# Children per generated page: 1 + 6 + 36 + 216 = 259 pages fit within depth 3.
FANOUT = 6
# The smallest valid PNG (1x1, transparent): images are served but a crawler needs none.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
CSV = "product,unit,price_usd\nMorning Harbour,1 kg,38.00\nLantern,1 kg,36.00\n"


@dataclass(frozen=True)
class Page:
    path: str
    title: str | None
    description: str | None
    canonical: bool
    blocks: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]
    images: tuple[tuple[str, str | None], ...]
    inline_data_bytes: int = 0
    slow: bool = False


@dataclass(frozen=True)
class Template:
    nav: tuple[tuple[str, str], ...] = ()
    footer: tuple[tuple[str, str], ...] = ()
    footer_text: str = ""


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    # Every HTML page served with 200: public, private and the other host's.
    pages: dict[str, Page]
    template: Template
    # path -> (status, location, whether the Location is absolute)
    redirects: dict[str, tuple[int, str, bool]]
    broken: dict[str, int]
    files: dict[str, str]
    sitemap: tuple[str, ...]


def _page(entry: dict[str, Any]) -> Page:
    return Page(
        path=entry["path"],
        title=entry["title"],
        description=entry["description"],
        canonical=entry["canonical"],
        blocks=tuple((tag, text) for tag, text in entry["blocks"]),
        links=tuple((link["href"], link["text"]) for link in entry["links"]),
        images=tuple((image["src"], image["alt"]) for image in entry["images"]),
        inline_data_bytes=entry["inline_data_bytes"],
        slow="slow_response" in entry["faults"],
    )


def _pairs(links: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((link["href"], link["text"]) for link in links)


@lru_cache(maxsize=1)
def load_manifest() -> Manifest:
    raw: dict[str, Any] = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    entries = raw["pages"] + raw["private_pages"] + raw["other_host_pages"]
    template = raw["template"]
    return Manifest(
        raw=raw,
        pages={entry["path"]: _page(entry) for entry in entries},
        template=Template(
            _pairs(template["nav"]), _pairs(template["footer"]), template["footer_text"]
        ),
        redirects={
            r["path"]: (r["status"], r["location"], r["absolute"]) for r in raw["redirects"]
        },
        broken={b["path"]: b["status"] for b in raw["broken"]},
        files={f["path"]: f["content_type"] for f in raw["files"]},
        sitemap=tuple(raw["sitemap"]),
    )


@dataclass
class SeoSiteState:
    # The page with the slow_response fault answers after this long (the rule is > 1000 ms).
    slow_ms: int = 1200
    # Every HTML page waits this long before answering (benchmarks of a crawl).
    delay_ms: int = 0
    # > 0: serve a plain generated site of that many clean pages instead of the manifest's.
    generated_pages: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    host_hits: Counter[tuple[str, str]] = field(default_factory=Counter)
    manifest: Manifest = field(default_factory=load_manifest)


def generated_site(pages: int, *, delay_ms: int = 0) -> SeoSiteState:
    """A state serving ``pages`` clean generated pages (crawl benchmarks)."""
    if pages < 1:
        raise ValueError("a generated site needs at least one page")
    return SeoSiteState(generated_pages=pages, delay_ms=delay_ms)


def generated_path(index: int) -> str:
    return "/" if index == 0 else f"/page/{index}"


def generated_paths(pages: int) -> list[str]:
    return [generated_path(i) for i in range(pages)]


def _generated_page(index: int, pages: int) -> Page:
    children = [c for c in range(FANOUT * index + 1, FANOUT * index + FANOUT + 1) if c < pages]
    related = [*children, (index - 1) // FANOUT, index + 1, 0] if index else [*children, 1]
    links: list[tuple[str, str]] = []
    for target in related:
        if target < pages and target != index and generated_path(target) not in dict(links):
            text = "Archive home" if target == 0 else f"Archive page {target}"
            links.append((generated_path(target), text))
    name = "Northwind Coffee archive" if index == 0 else f"Archive page {index}"
    return Page(
        path=generated_path(index),
        title=f"{name} | Northwind Coffee",
        description=f"Entry {index} of the Northwind Coffee journal archive: roasting notes, "
        "brewing recipes and stories from origin.",
        canonical=True,
        blocks=(
            ("h1", name),
            ("p", f"This is entry {index} of our archive, kept for readers who like to browse."),
            ("p", "Every entry links to a few others, so the whole archive is a short walk."),
        ),
        links=tuple(links),
        images=((f"/images/archive-{index}.jpg", f"Archive photograph number {index}"),),
    )


def _other_origin(request: Request) -> str:
    """The same server under the other loopback name: not the same host to a crawler."""
    host = request.url.hostname or "127.0.0.1"
    other = "127.0.0.1" if host == "localhost" else "localhost"
    port = f":{request.url.port}" if request.url.port else ""
    return f"{request.url.scheme}://{other}{port}"


def render(page: Page, template: Template, *, origin: str, other_origin: str) -> str:
    """The page's HTML. Text is only inside elements (no stray separators), so a page's body
    text is exactly its nav, paragraphs, link texts and footer, in that order."""

    def href(value: str) -> str:
        value = value.replace("{other_origin}", other_origin).replace("{origin}", origin)
        return html.escape(value, quote=True)

    def anchors(links: tuple[tuple[str, str], ...]) -> str:
        return "".join(f'<a href="{href(h)}">{html.escape(t)}</a>' for h, t in links)

    head = ['<meta charset="utf-8">', '<meta name="viewport" content="width=device-width">']
    if page.title is not None:
        head.append(f"<title>{html.escape(page.title)}</title>")
    if page.description is not None:
        head.append(f'<meta name="description" content="{html.escape(page.description)}">')
    if page.canonical:
        head.append(f'<link rel="canonical" href="{href(origin + page.path)}">')
    main = [f"<{tag}>{html.escape(text)}</{tag}>" for tag, text in page.blocks]
    if page.links:
        items = "".join(f"<li>{anchors(((h, t),))}</li>" for h, t in page.links)
        main.append(f'<ul class="related">{items}</ul>')
    for src, alt in page.images:
        alt_attr = "" if alt is None else f' alt="{html.escape(alt)}"'
        main.append(f'<img src="{href(src)}"{alt_attr}>')
    if page.inline_data_bytes:
        # A heavy page as real sites make them: a large state blob inlined in the HTML.
        blob = base64.b64encode(bytes(range(256)) * (page.inline_data_bytes // 256 + 1))
        main.append(
            '<script type="application/json" id="page-data">{"gallery": "'
            f'{blob[: page.inline_data_bytes].decode()}"}}</script>'
        )
    header = f"<header><nav>{anchors(template.nav)}</nav></header>" if template.nav else ""
    footer = ""
    if template.footer or template.footer_text:
        text = f"<p>{html.escape(template.footer_text)}</p>" if template.footer_text else ""
        footer = f"<footer><nav>{anchors(template.footer)}</nav>{text}</footer>"
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + header
        + "\n<main>\n"
        + "\n".join(main)
        + "\n</main>\n"
        + footer
        + "\n</body>\n</html>\n"
    )


def _error_page(status: int, title: str, message: str) -> Response:
    return HTMLResponse(
        f"<!doctype html><html><head><title>{title} | Northwind Coffee</title></head>"
        f"<body><h1>{title}</h1><p>{message}</p></body></html>",
        status_code=status,
    )


def create_app(state: SeoSiteState | None = None) -> FastAPI:
    state = state or SeoSiteState()
    app = FastAPI(title="SEO fixture site", openapi_url=None, docs_url=None, redoc_url=None)
    manifest = state.manifest

    @app.middleware("http")
    async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
        state.hits[request.url.path] += 1
        state.host_hits[(request.headers.get("host", ""), request.url.path)] += 1
        return await call_next(request)

    def sitemap(origin: str, paths: list[str] | tuple[str, ...]) -> Response:
        urls = "".join(f"<url><loc>{html.escape(origin + p)}</loc></url>" for p in paths)
        return Response(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n',
            media_type="application/xml",
        )

    async def html_page(page: Page, template: Template, request: Request) -> Response:
        delay_ms = state.delay_ms + (state.slow_ms if page.slow else 0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        origin = str(request.base_url).rstrip("/")
        body = render(page, template, origin=origin, other_origin=_other_origin(request))
        return HTMLResponse(body)

    def generated(path: str) -> int | None:
        if path == "/":
            return 0
        number = path.removeprefix("/page/")
        if path.startswith("/page/") and number.isdigit():
            index = int(number)
            return index if 0 < index < state.generated_pages else None
        return None

    @app.api_route("/{path:path}", methods=["GET", "HEAD"])
    async def serve_path(path: str, request: Request) -> Response:
        path = "/" + path
        origin = str(request.base_url).rstrip("/")
        if path == "/robots.txt":
            robots: str = manifest.raw["robots_txt"]
            return PlainTextResponse(robots.replace("{origin}", origin))
        if path.startswith("/images/"):
            return Response(PNG, media_type="image/png")
        if state.generated_pages:
            if path == "/sitemap.xml":
                return sitemap(origin, generated_paths(state.generated_pages))
            index = generated(path)
            if index is None:
                return _error_page(404, "Page not found", "There is no such page.")
            return await html_page(
                _generated_page(index, state.generated_pages), Template(), request
            )
        if path == "/sitemap.xml":
            return sitemap(origin, manifest.sitemap)
        if (page := manifest.pages.get(path)) is not None:
            return await html_page(page, manifest.template, request)
        if (redirect := manifest.redirects.get(path)) is not None:
            status, location, absolute = redirect
            # One absolute hop and relative ones: a crawler must resolve both itself.
            target = origin + location if absolute else location
            return Response(status_code=status, headers={"Location": target})
        if (content_type := manifest.files.get(path)) is not None:
            body = PDF if content_type == "application/pdf" else CSV.encode()
            return Response(body, media_type=content_type)
        if manifest.broken.get(path) == 500:
            return _error_page(500, "Something went wrong", "Stock could not be checked.")
        return _error_page(404, "Page not found", "This page no longer exists.")

    return app
