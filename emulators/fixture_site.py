"""A small website on loopback for browser workflows: the tests and ``make run``'s demo run
their steps against it.

Pages: ``/`` (links), ``/login`` (a form that posts to ``/account`` and greets the user by
name), ``/table`` (a table of products to extract, under ``state.banner`` when set),
``/late`` (content that appears after ``late_ms``), ``/select`` (a drop-down that shows the
choice), ``/error`` (answers 500) and ``/slow`` (answers after ``slow_ms``, for cancel
tests). ``state.hits`` counts requests per path.
"""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

PRODUCTS = (("Widget", "4.50", "12"), ("Gadget", "19.00", "3"), ("Gizmo", "7.25", "40"))


@dataclass
class SiteState:
    late_ms: int = 800
    slow_ms: int = 30_000
    # A line shown above the products table when set (tests change the page between runs).
    banner: str | None = None
    hits: Counter[str] = field(default_factory=Counter)
    # Each sign-in form posted, as received.
    forms: list[dict[str, str]] = field(default_factory=list)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body>{body}</body></html>"
    )


def create_app(state: SiteState | None = None) -> FastAPI:
    state = state or SiteState()
    app = FastAPI(title="fixture site", openapi_url=None, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
        state.hits[request.url.path] += 1
        return await call_next(request)

    @app.get("/")
    async def index() -> Response:
        links = "".join(
            f'<li><a href="/{p}">{p}</a></li>' for p in ("login", "table", "late", "select")
        )
        return _page("Fixture site", f"<h1>Fixture site</h1><ul>{links}</ul>")

    @app.get("/login")
    async def login() -> Response:
        return _page(
            "Sign in",
            '<h1>Sign in</h1><form method="post" action="/account">'
            '<label>Name <input id="name" name="name"></label>'
            '<label>Password <input id="password" name="password" type="password"></label>'
            '<button id="submit" type="submit">Sign in</button></form>',
        )

    @app.post("/account")
    async def account(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        name, password = form.get("name", [""])[0], form.get("password", [""])[0]
        state.forms.append({"name": name, "password": password})
        if not name or not password:
            return _page("Sign in failed", '<p id="error">Name and password are required</p>')
        return _page(
            "Account",
            f'<h1 id="greeting">Welcome, {html.escape(name)}</h1>'
            '<a id="profile" href="/table" data-plan="pro">Products</a>',
        )

    @app.get("/table")
    async def table() -> Response:
        rows = "".join(
            f'<tr class="product" data-sku="sku-{n}"><td class="name">{name}</td>'
            f'<td class="price">{price}</td><td class="stock">{stock}</td></tr>'
            for n, (name, price, stock) in enumerate(PRODUCTS, start=1)
        )
        banner = f'<p id="banner">{html.escape(state.banner)}</p>' if state.banner else ""
        return _page(
            "Products",
            f'<h1>Products</h1>{banner}<table id="products"><thead><tr><th>Name</th><th>Price</th>'
            f"<th>Stock</th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p id="total">{len(PRODUCTS)} products</p>',
        )

    @app.get("/late")
    async def late() -> Response:
        return _page(
            "Late content",
            '<h1>Loading</h1><div id="slot"></div><script>setTimeout(function () {'
            "document.getElementById('slot').innerHTML = '<p id=\"ready\">Report ready</p>';"
            f"}}, {int(state.late_ms)});</script>",
        )

    @app.get("/select")
    async def choose() -> Response:
        return _page(
            "Choose a plan",
            '<select id="plan" onchange="document.getElementById(\'chosen\').textContent = '
            'this.value"><option value="free">Free</option><option value="pro">Pro</option>'
            '<option value="team">Team</option></select><p id="chosen">free</p>',
        )

    @app.get("/error")
    async def error() -> Response:
        return HTMLResponse("<h1>Internal error</h1>", status_code=500)

    @app.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(state.slow_ms / 1000)
        return _page("Slow", "<h1>Finally</h1>")

    return app
