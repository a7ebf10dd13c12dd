"""``/dashboard``: the queue dashboard, one server-rendered page (``dashboard.html``) with a
little JavaScript and no asset fetched from anywhere. The page asks for an operator key once
(kept in the browser tab's session storage) and calls the API with it: live counts over the
stats stream, pause and resume, the last 24 hours per queue, the failed jobs of a queue with
retry and delete for one or a selection, and a job page with live progress and events."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])
PAGE = Path(__file__).with_name("dashboard.html")


@cache
def _page() -> str:
    return PAGE.read_text()


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    # The page holds no data: it fetches everything with the operator's key.
    return HTMLResponse(
        _page(),
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
            "Cache-Control": "no-store",
        },
    )
