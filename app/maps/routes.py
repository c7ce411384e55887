"""``GET /`` and ``GET /map``: the folium map page; ``/static/vendor/<pkg>/…``: its JS and CSS.

The browser assets are the npm packages of ``package.json`` installed into ``node_modules``
(``make setup`` runs ``npm ci``); only the packages the page loads are served, from their own
directory, so nothing else under ``node_modules`` is reachable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.db import DbSession
from app.errors import InvalidInput, NotFound
from app.impact.service import get_incident
from app.maps.report import report_context
from app.maps.service import map_page
from app.settings import Settings, get_settings
from app.tiles.routes import tile_service
from layers.maps import VENDOR_FILES, VENDOR_PATH, render_page

router = APIRouter(tags=["map"])
templates = Jinja2Templates(directory=Path(__file__).parents[1] / "templates")


LayersQuery = Annotated[
    str | None,
    Query(description="Layer ids shown on load, comma-separated (see GET /layers), or risk_heat"),
]


async def _page(request: Request, layers: str | None) -> HTMLResponse:
    links: list[dict[str, str]] = getattr(request.app.state, "page_links", [])
    registry = tile_service(request).registry
    try:
        # The extent and heatmap queries block: off the event loop.
        page = await run_in_threadpool(
            map_page,
            request.app.state.engine,
            registry,
            layers,
            links=tuple(("/" + link["href"].lstrip("/"), link["title"]) for link in links),
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return HTMLResponse(render_page(page), headers={"Cache-Control": "no-cache"})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    """The start page: the map with its default layers."""
    return await _page(request, None)


@router.get("/map", response_class=HTMLResponse, summary="The risk map page (HTML)")
async def map_html(request: Request, layers: LayersQuery = None) -> HTMLResponse:
    """The map with ``layers`` (comma-separated ids) shown on load; 422 names unknown ids."""
    return await _page(request, layers)


@router.get(VENDOR_PATH + "/{package}/{path:path}", include_in_schema=False)
def vendor(request: Request, package: str, path: str) -> FileResponse:
    """One file of a vendored npm package (``Cache-Control`` long: versions are pinned)."""
    if package not in VENDOR_FILES:
        raise NotFound(f"no vendored package {package!r}")
    settings: Settings = getattr(request.app.state, "settings", None) or get_settings()
    root = (settings.maps.node_modules / package).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        if not root.is_dir():
            raise NotFound(f"{package} is not installed: run `npm ci` (make setup does)")
        raise NotFound(f"no file {path!r} in {package}")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=86400"})


def _when(value: Any) -> str:
    """A timestamp as the report prints it: to the second, in UTC, saying so."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get(
    "/incidents/{incident_id}/report",
    response_class=HTMLResponse,
    summary="An incident's printable report (HTML, A4)",
    responses={404: {"description": "No such incident"}},
)
def incident_report(
    request: Request, db_session: DbSession, incident_id: Annotated[int, PathParam(gt=0, lt=2**63)]
) -> HTMLResponse:
    """Header, a map of the zones (inline SVG), who is inside, the cascade, the actions as a
    checklist, the inputs with their origins, notes and sources; print CSS for A4."""
    incident = get_incident(db_session=db_session, incident_id=incident_id)
    context = {
        **report_context(incident),
        "base": str(request.scope.get("root_path", "")),
        "version": __version__,
        "now": datetime.now(UTC),
        "when": _when,
    }
    return templates.TemplateResponse(
        request, "incident_report.html", context, headers={"Cache-Control": "no-cache"}
    )
