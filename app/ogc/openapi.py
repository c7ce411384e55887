"""OpenAPI 3.0 fragments for the OGC routes, and the 3.0 definition served at ``/ogc/api``.

The query parameters are read from the raw query string (so unknown ones can be refused with a
400), hence they are described here rather than as FastAPI parameters. The fragments stay
within OpenAPI 3.0 so that ``/ogc/api`` is a valid 3.0 document, which OGC API Features' OAS30
class asks for and GDAL's OAPIF driver looks for.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from app.ogc import processes
from app.ogc.params import DEFAULT_LIMIT, FILTER_LANGS, MAX_LIMIT


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


class SchemaJSONResponse(JSONResponse):
    media_type = "application/schema+json"


_RESPONSE_CLASSES: dict[str, type[JSONResponse]] = {
    "application/json": JSONResponse,
    "application/geo+json": GeoJSONResponse,
    "application/schema+json": SchemaJSONResponse,
}

_EXCEPTION = {
    "description": "An OGC exception: 400 for a bad parameter (the description says what was "
    "received and what is allowed), 404 for an unknown collection or feature.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
            }
        }
    },
}


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


def _f(values: list[str]) -> dict[str, Any]:
    return _param(
        "f",
        {"type": "string", "enum": values},
        "Output format; without it the Accept header decides (JSON unless HTML is preferred).",
    )


def _ok(json_type: str, description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {
                json_type: {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    }


def route(
    json_type: str = "application/json",
    *,
    parameters: list[dict[str, Any]] | None = None,
    formats: list[str] | None = None,
    description: str = "The document, as JSON or HTML.",
) -> dict[str, Any]:
    """Keyword arguments for ``router.get``: documented parameters and responses.

    Declaring a ``default`` (error) response also keeps FastAPI from documenting a 422 that
    these routes never send.
    """
    return {
        "response_class": _RESPONSE_CLASSES[json_type],
        "responses": {"default": _EXCEPTION},
        "openapi_extra": {
            "parameters": [*(parameters or []), _f(formats or ["json", "html"])],
            "responses": _ok(json_type, description),
        },
    }


ITEMS_PARAMETERS: list[dict[str, Any]] = [
    _param(
        "bbox",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "minLon,minLat,maxLon,maxLat in CRS84 (6 numbers: heights third and sixth, ignored). "
        "minLon > maxLon crosses the antimeridian. Features whose geometry intersects are kept.",
        style="form",
        explode=False,
    ),
    _param(
        "bbox-crs",
        {
            "type": "string",
            "format": "uri",
            "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        },
        "CRS of bbox; only CRS84.",
    ),
    _param(
        "datetime",
        {"type": "string"},
        "An RFC 3339 instant or interval (start/end, '..' open). Only for collections with a "
        "year property (e.g. install_year): features whose year lies in the instant's year or "
        "between the interval's years are kept. 400 on collections without one.",
    ),
    _param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"Page size, 1 to {MAX_LIMIT}; out of range is a 400.",
        style="form",
        explode=False,
    ),
    _param(
        "offset",
        {"type": "integer", "minimum": 0, "default": 0},
        "Features to skip (the next link sets it).",
    ),
    _param(
        "properties",
        {"type": "array", "items": {"type": "string"}},
        "Comma-separated properties to return (see the queryables); empty for none.",
        style="form",
        explode=False,
    ),
    _param(
        "sortby",
        {"type": "array", "items": {"type": "string"}},
        "Comma-separated properties, '-' for descending: -install_year,+name. Ties by id.",
        style="form",
        explode=False,
    ),
    _param("filter", {"type": "string"}, "A CQL2 filter in filter-lang, over the queryables."),
    _param(
        "filter-lang",
        {"type": "string", "enum": list(FILTER_LANGS), "default": FILTER_LANGS[0]},
        "Encoding of filter.",
    ),
    _param(
        "filter-crs",
        {
            "type": "string",
            "format": "uri",
            "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        },
        "CRS of geometries in filter; only CRS84.",
    ),
]

LANDING = route(description="Landing page.")
DOCUMENT = route()
SCHEMA = route("application/schema+json", description="A JSON Schema.")
ITEMS = route(
    "application/geo+json",
    parameters=ITEMS_PARAMETERS,
    formats=["json", "geojson", "html"],
    description="A GeoJSON FeatureCollection with numberReturned, numberMatched (when counted "
    "exactly, else numberMatchedEstimate), timeStamp and next/prev links.",
)
ITEM = route(
    "application/geo+json",
    formats=["json", "geojson", "html"],
    description="A GeoJSON Feature.",
)


def _process_route(description: str) -> dict[str, Any]:
    """Keyword arguments for a JSON-only Processes route, with the Processes exception body."""
    return {
        "response_class": JSONResponse,
        "responses": {"default": processes.exception_response("an OGC API Processes exception")},
        "openapi_extra": {
            "parameters": [_f(["json"])],
            "responses": {
                "200": {
                    "description": description,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        },
    }


PROCESS_LIST = _process_route("The processes: one per impact scenario, with links.")
PROCESS = _process_route("A process description: inputs (JSON Schema, units) and outputs.")
JOBS = _process_route("The jobs: always empty, processes run synchronously.")
EXECUTE: dict[str, Any] = {
    "response_class": JSONResponse,
    "responses": {"default": processes.exception_response("an OGC API Processes exception")},
    "openapi_extra": processes.execute_operation(
        "Execute a process (synchronously)", processes.EXECUTE_SCHEMA
    ),
}
