"""HTML pages: the map page (a placeholder until the map issue replaces it)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app import __version__

# The templates live in app/templates (shared by the pages of app/maps).
templates = Jinja2Templates(directory=Path(__file__).parents[1] / "templates")
router = APIRouter(tags=["pages"])


# `GET /` is the map page now (app/maps/routes.py); this placeholder stays reachable here.
@router.get("/start", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    """The placeholder start page (links only)."""
    links: list[dict[str, str]] = request.app.state.page_links
    return templates.TemplateResponse(
        request, "index.html", {"version": __version__, "links": links}
    )
