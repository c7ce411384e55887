"""OGC API Features (Part 1 Core, Part 3 Filtering) over the asset registry and the impact zones,
and OGC API Processes (Part 1 Core, synchronous) over the impact scenarios, under ``/ogc``.

Mount with ``app.include_router(app.ogc.routes.router)``; the router carries its own prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, ClassVar

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import URL

from app import __version__
from app.assets.catalog import Collection
from app.auth.dependencies import Computer
from app.db import DbSession
from app.errors import (
    BadRequest,
    CityriskError,
    InvalidInput,
    NotFound,
    database_unavailable,
    error_headers,
)
from app.impact import service as impact_service
from app.impact.params import Scenario
from app.ogc import documents, openapi, params, processes, service, svg
from app.ogc.catalog import COLLECTIONS, get_collection

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["svg"] = svg.preview


class OGCRoute(APIRoute):
    """Answers domain errors, and the database's outages, with OGC's exception body
    ``{"code", "description"}``.

    The app-wide handler in :mod:`app.errors` says ``detail``; OGC API clients read
    ``description`` (``/req/core/...`` exception schema), so errors raised under ``/ogc`` are
    rendered here, before they reach it.
    """

    _CODES: ClassVar[dict[type[CityriskError], str]] = {
        BadRequest: "InvalidParameterValue",
        NotFound: "NotFound",
    }

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        processes_route = "OGC API Processes" in self.tags

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except processes.ProcessError as exc:
                # Processes routes answer with that standard's exception (RFC 7807 members).
                return JSONResponse(status_code=exc.status_code, content=exc.body())
            except Exception as raised:
                error = (
                    raised if isinstance(raised, CityriskError) else database_unavailable(raised)
                )
                if error is None:
                    raise
                code = self._CODES.get(type(error), type(error).__name__)
                content: dict[str, Any] = {"code": code, "description": error.message}
                if processes_route:  # e.g. a NUL in a parameter, the database away
                    status = HTTPStatus(error.status_code)
                    content = processes.ProcessError(
                        error.message,
                        status=status,
                        type_=code,
                        title=status.phrase.lower(),
                    ).body()
                return JSONResponse(
                    status_code=error.status_code,
                    content=content,
                    headers=error_headers(request, error),
                )

        return handle


router = APIRouter(prefix="/ogc", tags=["OGC API Features"], route_class=OGCRoute)


def _base(request: Request) -> URL:
    return URL(str(request.url_for("ogc_landing")))


def _render(
    request: Request,
    doc: dict[str, Any],
    template: str,
    *,
    media_type: str = documents.JSON,
    formats: tuple[str, ...] = ("json", "html"),
    **context: Any,
) -> Response:
    if params.negotiate(request, formats=formats) == "html":
        return templates.TemplateResponse(
            request, template, {"doc": doc, "base": str(_base(request)), **context}
        )
    return JSONResponse(doc, media_type=media_type)


@router.get("", name="ogc_landing", **openapi.LANDING)
def landing(request: Request) -> Response:
    """Landing page: links to the API definition, conformance and collections."""
    return _render(request, documents.landing(request.url, _base(request)), "landing.html")


@router.get("/api", name="ogc_api", include_in_schema=False)
def api_definition(request: Request) -> Response:
    """This API's OpenAPI 3.0 definition (FastAPI's /openapi.json is OpenAPI 3.1)."""
    spec = _openapi_30(str(_base(request)))
    return JSONResponse(spec, media_type=documents.OPENAPI_30)


# Keyed by the server URL the client used; bounded since that comes from the Host header.
@lru_cache(maxsize=8)
def _openapi_30(server: str) -> dict[str, Any]:
    spec = get_openapi(
        title="cityrisk OGC API (Features, Tiles, Processes)",
        version=__version__,
        openapi_version="3.0.3",
        description=documents.landing(URL(server), URL(server))["description"],
        routes=[r for r in router.routes if getattr(r, "include_in_schema", True)],
        servers=[{"url": server.rsplit("/ogc", 1)[0] or "/"}],
    )
    spec["paths"].update(processes.openapi_paths())
    return spec


@router.get("/conformance", **openapi.DOCUMENT)
def conformance(request: Request) -> Response:
    """The conformance classes this API implements."""
    return _render(request, documents.conformance(request.url), "conformance.html")


@router.get("/collections", **openapi.DOCUMENT)
def list_collections(request: Request, db: DbSession) -> Response:
    """Every collection: one per asset kind, ``exposure`` and ``impact_zones``."""
    colls = list(COLLECTIONS.values())
    extents = service.collection_extents(session=db, collections=colls)
    doc = documents.collections(colls, extents, request.url, _base(request))
    return _render(request, doc, "collections.html")


@router.get("/collections/{collection_id}", **openapi.DOCUMENT)
def get_collection_doc(request: Request, db: DbSession, collection_id: str) -> Response:
    """One collection: its description, extent and links."""
    coll = get_collection(collection_id)
    extents = service.collection_extents(session=db, collections=[coll])
    doc = documents.collection(coll, extents[coll.id], _base(request))
    doc["links"][:2] = documents.self_links(request.url)
    return _render(request, doc, "collection.html", collection=coll)


@router.get("/collections/{collection_id}/queryables", **openapi.SCHEMA)
def get_queryables(request: Request, collection_id: str) -> Response:
    """The properties a filter, sortby or properties parameter may name, as JSON Schema."""
    coll = get_collection(collection_id)
    doc = documents.queryables(coll, request.url)
    return _render(
        request, doc, "queryables.html", media_type=documents.SCHEMA_JSON, collection=coll
    )


@router.get("/collections/{collection_id}/schema", **openapi.SCHEMA)
def get_schema(request: Request, collection_id: str) -> Response:
    """The schema of the collection's features (the queryables, open to extra attributes)."""
    coll = get_collection(collection_id)
    doc = documents.queryables(coll, request.url, schema=True)
    return _render(
        request, doc, "queryables.html", media_type=documents.SCHEMA_JSON, collection=coll
    )


@router.get("/collections/{collection_id}/items", **openapi.ITEMS)
def list_items(request: Request, db: DbSession, collection_id: str) -> Response:
    """Features of a collection: bbox, datetime, CQL2 filter, sortby, properties, paging."""
    coll = get_collection(collection_id)
    fmt_formats = ("json", "geojson", "html")
    params.negotiate(request, formats=fmt_formats)  # a bad f is a 400 before any query
    query = params.parse_items_query(
        request.query_params, coll, max_depth=request.app.state.settings.limits.cql_depth
    )
    page = service.list_features(session=db, collection=coll, query=query)
    doc = documents.feature_collection(page, coll, query, request.url, _base(request))
    return _render(
        request,
        doc,
        "items.html",
        media_type=documents.GEOJSON,
        formats=fmt_formats,
        collection=coll,
        columns=_columns(coll, query.properties),
        query=query,
    )


@router.get("/collections/{collection_id}/items/{feature_id}", **openapi.ITEM)
def get_item(request: Request, db: DbSession, collection_id: str, feature_id: str) -> Response:
    """One feature by its id (the asset id); 404 if the collection has no such feature."""
    coll = get_collection(collection_id)
    formats = ("json", "geojson", "html")
    params.negotiate(request, formats=formats)
    fid = params.parse_feature_id(feature_id)
    feat = None if fid is None else service.get_feature(session=db, collection=coll, feature_id=fid)
    if feat is None:
        raise NotFound(f"collection {coll.id!r} has no feature {feature_id!r}")
    doc = documents.feature(feat, coll, request.url, _base(request))
    return _render(
        request,
        doc,
        "item.html",
        media_type=documents.GEOJSON,
        formats=formats,
        collection=coll,
    )


def _columns(coll: Collection, names: tuple[str, ...] | None) -> list[str]:
    return list(coll.properties) if names is None else list(names)


# -- OGC API – Processes ---------------------------------------------------------------------------


def _json_only(request: Request) -> None:
    try:
        params.negotiate(request, formats=("json",))
    except BadRequest as exc:
        raise processes.invalid(exc.message) from exc


@router.get("/processes", name="ogc_processes", tags=["OGC API Processes"], **openapi.PROCESS_LIST)
def list_processes(request: Request) -> Response:
    """The processes: one per impact scenario."""
    _json_only(request)
    root = str(_base(request)).rstrip("/")
    return JSONResponse(processes.process_list(root, str(request.url)))


def _process(process_id: str) -> Scenario:
    return processes.get_process(process_id)


ProcessDep = Annotated[Scenario, Depends(_process)]


@router.get("/processes/{process_id}", tags=["OGC API Processes"], **openapi.PROCESS)
def describe_process(request: Request, scenario: ProcessDep) -> Response:
    """A process: its inputs (JSON Schema with unit, default and source) and its output."""
    _json_only(request)
    root = str(_base(request)).rstrip("/")
    return JSONResponse(processes.description(scenario, root))


async def _execute_body(request: Request) -> Any:
    # Read here rather than as a FastAPI body model: a malformed request must get the
    # Processes exception (400 naming the problem), not FastAPI's own 422 document.
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise processes.invalid(f"the request body is not JSON ({exc})") from None


@router.post("/processes/{process_id}/execution", tags=["OGC API Processes"], **openapi.EXECUTE)
def execute_process(
    who: Computer,  # first: a caller who may not run processes learns nothing of them
    db: DbSession,
    scenario: ProcessDep,
    body: Annotated[Any, Depends(_execute_body)],
) -> Response:
    """Run a process synchronously: the same computation and document as ``POST /impact``."""
    run = processes.parse_execute(scenario, body)
    try:
        doc = impact_service.compute(
            db,
            [impact_service.ScenarioCall(run.scenario, run.params)],
            asset_id=run.asset_id,
            point=run.point,
            at=run.at,
            cascade_mode=run.cascade_mode,
            coupling=run.coupling,
        )
    except (InvalidInput, NotFound) as exc:
        # An unknown asset is a bad input here: a 404 would say the process does not exist.
        raise processes.invalid(exc.message) from exc
    out = doc if run.response == "raw" else {processes.OUTPUT: doc}
    return Response(
        orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        media_type=documents.JSON,
    )


@router.get("/jobs", name="ogc_jobs", tags=["OGC API Processes"], **openapi.JOBS)
def list_jobs(request: Request) -> Response:
    """The jobs: none, since every process runs synchronously."""
    _json_only(request)
    return JSONResponse(
        {"jobs": [], "links": [documents.link(request.url, "self", documents.JSON, "jobs")]}
    )


@router.get("/jobs/{job_id}", tags=["OGC API Processes"], **openapi.JOBS)
def get_job(job_id: str) -> Response:
    """A job: never found (no-such-job), processes run synchronously."""
    raise processes.no_such_job(job_id)


@router.get("/jobs/{job_id}/results", tags=["OGC API Processes"], **openapi.JOBS)
def get_job_results(job_id: str) -> Response:
    """A job's results: never found (no-such-job), processes run synchronously."""
    raise processes.no_such_job(job_id)
