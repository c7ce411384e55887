"""The error responses of ``/openapi.json``: one ``Error`` schema on every operation's 4xx/503.

FastAPI documents a 422 with its own ``HTTPValidationError`` and nothing else, while the app
answers every domain error as ``{"code", "detail"}`` (:mod:`app.errors`), 400 for a bad bbox,
404 for an unknown id and 503 with ``Retry-After`` while the database is away. A schema-driven
fuzzer counted 60 conformance failures against the undescribed bodies; this module adds them
after FastAPI has built the document, from what each route really does (its path parameters,
its query parameters, whether it opens a database session).

Routes under ``/ogc`` answer with OGC's own exception bodies and document them themselves
(:mod:`app.ogc.openapi`); only those that document none get OGC's exception as ``default``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.auth.dependencies import Require
from app.db import get_session

ERROR_REF = {"$ref": "#/components/schemas/Error"}
_FASTAPI_422 = {"$ref": "#/components/schemas/HTTPValidationError"}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["code", "detail"],
    "properties": {
        "code": {
            "type": "string",
            "description": "The error's kind: InvalidInput, BadRequest, NotFound, Conflict, "
            "DatabaseUnavailable, RequestValidationError, …",
        },
        "detail": {
            "anyOf": [
                {"type": "string", "description": "What was received and what is expected"},
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ValidationError"},
                    "description": "RequestValidationError: one entry per refused input, "
                    "each `input` cut to CITYRISK_ERROR_INPUT_MAX_CHARS",
                },
            ]
        },
    },
}

WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'RFC 6750: `Bearer realm="cityrisk"[, error="invalid_token"]`',
        "schema": {"type": "string"},
    }
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (CITYRISK_RETRY_AFTER_S)",
        "schema": {"type": "integer", "minimum": 1},
    }
}

_DESCRIPTIONS = {
    "400": "A malformed parameter (bbox) or body, named with what is allowed",
    "401": "No bearer token, or one that is unknown, revoked, expired or badly signed",
    "403": "The token's role may not do this (or a cross-site write)",
    "415": "A content type a browser may post cross-site (text/plain, a form) on a write",
    "429": "Over the token's rate limit; retry after `Retry-After` seconds",
    "404": "No such id",
    "409": "Conflict with the current state",
    "422": "Malformed or out-of-range input, named with what is expected",
    "503": "The database is unavailable; retry after `Retry-After` seconds",
}

_OGC_EXCEPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_OGC_EXCEPTION: dict[str, Any] = {
    "description": "An OGC exception (400 bad parameter, 404 unknown id, 503 database away)",
    "content": {"application/json": {"schema": _OGC_EXCEPTION_SCHEMA}},
}


def report_or_error(report: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of an import route: its 422 is the import report (rows rejected, nothing
    written) or an Error (the file is unusable); ``report`` is the report's JSON Schema."""
    return {
        422: {
            "description": "Rows rejected, nothing written (the report), or the file is "
            "unusable (an Error)",
            "content": {"application/json": {"schema": {"anyOf": [ERROR_REF, report]}}},
        }
    }


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _uses_database(route: APIRoute) -> bool:
    return get_session in set(_calls(route.dependant)) or any(
        code in (503, "503") for code in route.responses
    )


def _error_response(code: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    """``existing`` (as the route declared it) with the Error schema where it names none."""
    response = dict(existing or {})
    response.setdefault("description", _DESCRIPTIONS.get(code, "An error"))
    content = dict(response.get("content") or {})
    current = (content.get("application/json") or {}).get("schema")
    if not current or current == _FASTAPI_422:
        content["application/json"] = {"schema": ERROR_REF}
    response["content"] = content
    if code in ("503", "429"):
        response["headers"] = {**RETRY_AFTER, **(response.get("headers") or {})}
    if code == "401":
        response["headers"] = {**WWW_AUTHENTICATE, **(response.get("headers") or {})}
    return response


def _access(route: APIRoute) -> set[str]:
    """The codes a route's ``Require`` (app.auth.dependencies) may answer."""
    found = [c for c in _calls(route.dependant) if isinstance(c, Require)]
    if not found:
        return set()
    codes = {"401", "403", "503"}  # 503: the key is looked up in the database
    if route.methods and route.methods - {"GET", "HEAD"}:
        codes.add("415")
    if any(r.limit for r in found):
        codes.add("429")
    return codes


def describe_errors(spec: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Add the Error schema and each operation's 400/404/422/503 to ``spec`` (in place)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if route.path_format.startswith("/ogc"):
                # The 422 FastAPI documents for the tile routes' path parameters is sent by
                # OGCRoute (app.ogc.routes) as an OGC exception, like every error under /ogc.
                responses.setdefault("default", _OGC_EXCEPTION)
                default = responses["default"].get("content", {}).get("application/json", {})
                for response in responses.values():
                    media = (response.get("content") or {}).get("application/json") or {}
                    if media.get("schema") == _FASTAPI_422:
                        media["schema"] = default.get("schema", _OGC_EXCEPTION_SCHEMA)
                continue
            # 422 everywhere: any parameter may carry a NUL byte (app.params.refuse_nul).
            codes = {c for c in responses if c.startswith("4") or c == "503"} | {"422"}
            if route.dependant.path_params:
                codes.add("404")
            if route.dependant.body_params or (operation.get("requestBody") is not None):
                codes.add("400")  # a body that cannot be parsed as its Content-Type
            if any(p.name == "bbox" for p in route.dependant.query_params) or any(
                getattr(sub.call, "__name__", "") == "bbox_query"
                for sub in route.dependant.dependencies
                if sub.call is not None
            ):
                codes.add("400")
            if _uses_database(route):
                codes.add("503")
            codes |= _access(route)
            for code in sorted(codes):
                responses[code] = _error_response(code, responses.get(code))
    return spec


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (``/openapi.json``) describe the error responses."""
    build = app.openapi
    described: list[int] = []

    def openapi() -> dict[str, Any]:
        spec = build()
        if id(spec) not in described:  # FastAPI caches the document until the routes change
            describe_errors(spec, app)
            described[:] = [id(spec)]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
