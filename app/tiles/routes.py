"""Tile endpoints: ``/tiles/{layers}/{z}/{x}/{y}.mvt``, ``/tiles/{layers}.json``, ``/layers``.

``{layers}`` is one layer id or several, comma-separated (a composite tile: one MVT with one
layer per id). Mount with ``app.include_router(router)`` and put a :class:`TileService` on
``app.state.tiles`` at start-up (:func:`build_service`).

Empty tiles are ``200`` with a zero-length body: a valid MVT with no layers, which every client
decodes, and which carries an ETag and caching headers like any other tile (a ``204`` would not
be cached by some clients and is an error to others).

Caching, as clients see it: every tile has a strong ETag derived from the layers, z/x/y and the
layers' data version (bumped by every write to the tables they read), so ``If-None-Match``
answers ``304`` until the data changes. TileJSON's ``tiles`` URL of a static layer carries the
version (``?v=``): such a URL names immutable content and is cached for a year; a live layer's
URL carries none and is revalidated every time (``no-cache``), or after its ``max_age_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine, func, select, union_all

from app import __version__
from app.auth.dependencies import bearer_credentials, read_gate
from app.errors import DatabaseUnavailable, InvalidInput, NotFound
from app.settings import TileSettings
from app.taxonomy.assets import PLATE_TITLES
from app.tiles.service import TileService, etag
from app.tiles.versions import short_hash
from layers.base import LIVE_PLATE, Layer, Registry
from layers.registry import default_registry
from layers.tiles import TileAddressError, TileOutOfRange, parse_tile

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
IMMUTABLE = "public, max-age=31536000, immutable"


def build_service(settings: TileSettings | None = None) -> TileService:
    """The default registry (validated now, at start-up) with ``settings`` (default: from the
    environment)."""
    return TileService(default_registry(), settings or TileSettings())


def tile_service(request: Request) -> TileService:
    """The app's tile service (built at start-up; built now for an app without a lifespan)."""
    service: TileService | None = getattr(request.app.state, "tiles", None)
    if service is None:
        service = request.app.state.tiles = build_service()
    return service


def _engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise DatabaseUnavailable(request.app.state.db_error or "no database configured")
    return engine


def _if_none_match(request: Request) -> frozenset[str]:
    raw = request.headers.get("if-none-match", "")
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes do not matter.
    return frozenset(t.strip().removeprefix("W/") for t in raw.split(",") if t.strip())


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            return not (params.strip().startswith("q=") and _float(q) == 0)
    return False


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0


def _cache_control(layers: tuple[Layer, ...], v: str | None, token: str | None) -> str:
    if v is not None and token is not None and v == token:
        return IMMUTABLE
    max_age = min(layer.cache.max_age_s for layer in layers)
    if max_age == 0:
        return "no-cache"
    return f"public, max-age={max_age}"


class StringParamsRoute(APIRoute):
    """A route documented from its signature but called without FastAPI's parameter solving.

    For the hottest endpoints (tiles): every parameter is a string taken as is from the path or
    the query, so validating them through pydantic would only cost time — a fifth of a cache
    hit's. The endpoint must take ``request`` and ``str`` (or ``str | None``) parameters only;
    it checks their values itself.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        query = tuple(param.name for param in self.dependant.query_params)
        for param in (*self.dependant.path_params, *self.dependant.query_params):
            if param.field_info.annotation not in (str, str | None):
                raise TypeError(f"{self.path}: parameter {param.name} must be a string")

        async def handle(request: Request) -> Response:
            # The app-wide read gate is a dependency, which this route class does not solve:
            # closed reads (CITYRISK_AUTH_OPEN_READS=0) are checked here (a tile is a read).
            if not request.app.state.settings.auth.open_reads:
                read_gate(request, bearer_credentials(request))
            values = request.query_params
            response: Response = await endpoint(
                request, **request.path_params, **{name: values.get(name) for name in query}
            )
            return response

        return handle


async def get_tile(
    request: Request, layers: str, z: str, x: str, y: str, v: str | None = None
) -> Response:
    """A vector tile of one layer or several (comma-separated ids), built in PostGIS."""
    service = tile_service(request)
    resolved = service.resolve(layers)
    try:
        tile = parse_tile(z, x, y)
    except TileOutOfRange as exc:
        raise NotFound(str(exc)) from None
    except TileAddressError as exc:
        raise InvalidInput(str(exc)) from None
    result = await service.get_tile(
        _engine(request), resolved, tile, if_none_match=_if_none_match(request)
    )
    token = None if result.version is None else _token(result.version)
    headers = {
        "Cache-Control": _cache_control(resolved, v, token),
        "Vary": "Accept-Encoding",
        "X-Tile-Cache": "hit" if result.cache_hit else "miss",
    }
    if result.tile is None:
        headers["ETag"] = result.matched or etag(result.etag_base, False)
        return Response(status_code=304, headers=headers)
    built = result.tile
    capped = [
        layer.id
        for layer, n in zip(resolved, built.counts, strict=True)
        if n >= service.settings.max_features
    ]
    if capped:
        # Some features were left out; the client may zoom in to see them all.
        headers["Tile-Feature-Cap-Reached"] = ",".join(capped)
    if built.raw and _accepts_gzip(request):
        headers["ETag"] = etag(result.etag_base, True)
        headers["Content-Encoding"] = "gzip"
        return Response(built.gz, media_type=MVT, headers=headers)
    headers["ETag"] = etag(result.etag_base, False)
    return Response(built.raw, media_type=MVT, headers=headers)


router.add_api_route(
    "/tiles/{layers}/{z}/{x}/{y}.mvt",
    get_tile,
    methods=["GET"],
    name="get_tile",
    response_class=Response,
    responses={
        200: {"content": {MVT: {}}, "description": "An MVT tile (zero-length when empty)"},
        304: {"description": "Not modified: the client's ETag is the current one"},
        404: {"description": "Unknown layer, or no such tile in WebMercatorQuad"},
        422: {"description": "z, x or y is not a non-negative integer"},
        503: {"description": "The database is unavailable"},
    },
    route_class_override=StringParamsRoute,
)


def _token(version: str) -> str:
    return short_hash(version)[:12]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _fields(layer: Layer) -> dict[str, str]:
    fields: dict[str, str] = {f.name: f.type for f in layer.properties}
    if layer.zoom.aggregate_below is not None:
        for f in layer.aggregate_fields():
            fields.setdefault(f.name, f.type)
    return fields


def _bounds(engine: Engine, layers: tuple[Layer, ...]) -> list[float]:
    """Bounds of the layers' current data in CRS84; the whole world when they are empty."""
    geoms = [layer.source().subquery().c.geom for layer in layers]
    extent = union_all(
        *(select(func.ST_Extent(g).label("box")).select_from(g.table) for g in geoms)
    ).subquery()
    box = select(
        func.ST_XMin(func.ST_Extent(extent.c.box)),
        func.ST_YMin(func.ST_Extent(extent.c.box)),
        func.ST_XMax(func.ST_Extent(extent.c.box)),
        func.ST_YMax(func.ST_Extent(extent.c.box)),
    )
    with engine.connect() as conn:
        row = conn.execute(box).one()
    if row[0] is None:
        return [-180.0, -85.0511287798066, 180.0, 85.0511287798066]
    return [float(v) for v in row]


@router.get(
    "/tiles/{layers}.json",
    name="get_tilejson",
    responses={404: {"description": "Unknown layer"}, 503: {"description": "No database"}},
)
def get_tilejson(request: Request, layers: str) -> JSONResponse:
    """TileJSON 3.0.0 of one layer or several (comma-separated ids)."""
    service = tile_service(request)
    resolved = service.resolve(layers)
    engine = _engine(request)
    token = service.version_token(engine, resolved)
    static = not any(layer.is_live for layer in resolved)
    query = f"?v={token}" if static and token is not None else ""
    bounds = _bounds(engine, resolved)
    minzoom = min(layer.zoom.minzoom for layer in resolved)
    maxzoom = max(layer.zoom.maxzoom for layer in resolved)
    doc: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": ", ".join(layer.title for layer in resolved),
        "description": " ".join(layer.description for layer in resolved if layer.description),
        "version": __version__,
        "attribution": "cityrisk",
        "scheme": "xyz",
        "tiles": [f"{_base(request)}/tiles/{layers}/{{z}}/{{x}}/{{y}}.mvt{query}"],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(minzoom, 12)],
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.description,
                "minzoom": layer.zoom.minzoom,
                "maxzoom": layer.zoom.maxzoom,
                "fields": _fields(layer),
            }
            for layer in resolved
        ],
    }
    # TileJSON changes with the data (bounds, ?v=): revalidate it every time.
    return JSONResponse(doc, headers={"Cache-Control": "no-cache"})


def layer_summary(layer: Layer, base: str) -> dict[str, Any]:
    """One entry of ``GET /layers``."""
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "plate": layer.plate,
        "plate_title": PLATE_TITLES.get(layer.plate)
        or ("Live" if layer.plate == LIVE_PLATE else "Composite (all plates)"),
        "data": layer.data,
        "tilejson": f"{base}/tiles/{layer.id}.json",
        "tiles": f"{base}/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt",
        "minzoom": layer.zoom.minzoom,
        "maxzoom": layer.zoom.maxzoom,
        "aggregate_below": layer.zoom.aggregate_below,
        "legend": layer.style.legend(),
    }


@router.get("/layers", name="list_layers")
def list_layers(request: Request) -> dict[str, Any]:
    """Every map layer: id, title, plate, kind of data, TileJSON URL and legend."""
    registry: Registry = tile_service(request).registry
    base = _base(request)
    return {"layers": [layer_summary(layer, base) for layer in registry]}
