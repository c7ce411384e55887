"""Every error the app sends has the documented shape: a walk over ``app.routes``.

The README promises one error body, ``{"code": …, "detail": …}`` (``detail`` a string, or for a
``RequestValidationError`` the list of refused inputs), and ``/ogc`` routes their OGC exception
as their ``/openapi.json`` operation documents it. This module does not list routes by hand: it
walks every route of the app and sends each a bad query value per query parameter, a bad path
value per path parameter, a missing required parameter, bodies of the wrong JSON type (and not
JSON at all) and a method it does not allow, then checks the status is a 4xx and the body has
the documented shape. A route added tomorrow is walked tomorrow.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic.fields import FieldInfo

from app.main import create_app
from app.settings import Settings
from tests.factories import bearer

#: A valid value per path parameter name, so that only the parameter under test is bad.
GOOD_PATH = {
    "layers": "gas_pipe",
    "z": "12",
    "x": "1212",
    "y": "1515",
    "collection_id": "gas_pipe",
    "feature_id": "1",
    "tms_id": "WebMercatorQuad",
    "tile_matrix": "12",
    "tile_row": "1515",
    "tile_col": "1212",
    "process_id": "impact",
    "job_id": "no-such-job",
    "package": "maplibre-gl",
    "path": "dist/maplibre-gl.js",
    "code": "no-such-rule",
    "ident": "no-such-token",
    "cell_id": "882a306643fffff",
}
#: Query parameters required by their route, with a valid value.
GOOD_QUERY = {"from": "2026-11-28T00:00:00Z", "to": "2026-11-29T00:00:00Z"}
#: Query values every probe of a path carries: a stream that would run on forever ends.
ALWAYS = {"/alarms/stream": {"timeout_s": "0.2"}}
#: Bodies of the wrong type for a JSON body, and one that is no JSON at all.
BAD_BODIES = [
    (b'"a string"', "application/json"),
    (b"42", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"\xff{", "application/json"),
    (b"<xml/>", "application/xml"),
]
#: Query parameters for which any text is valid: the tiles' cache token ``v`` is only compared
#: with the current one (and the tile routes solve no dependencies: app.tiles.routes).
ANY_TEXT = {("/tiles/{layers}/{z}/{x}/{y}.mvt", "v")}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@dataclass(frozen=True)
class Probe:
    """One bad request: what it is (for the test id), the route it hits and how."""

    what: str
    method: str
    path_format: str
    url: str
    params: dict[str, str] | None = None
    content: bytes | None = None
    content_type: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path_format} {self.what}"


def _base_type(annotation: Any) -> Any:
    """``int`` for ``int | None``, ``Annotated[int, …]``; a ``Literal`` stays itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else annotation
    if origin is list:
        return _base_type(typing.get_args(annotation)[0])
    return annotation


def _bad_values(field: FieldInfo) -> list[str]:
    """Values no parameter of this type accepts: of the wrong type, out of any range the
    service can store, else a NUL byte (text: refused everywhere, app.params.refuse_nul)."""
    kind = _base_type(field.annotation)
    if kind is bool:
        return ["maybe"]
    if kind is int:
        return ["not-a-number", "1.5"]  # beyond bigint: tests/app/test_bad_input.py
    if kind is float:
        return ["not-a-number", "nan", "inf", "-inf", "1e400"]
    if kind in (dt.datetime, dt.date):
        return ["yesterday", "2026-13-45T99:00:00Z"]
    if typing.get_origin(kind) is typing.Literal:
        return ["no-such-choice"]
    return ["bad\x00value"]


def _good_value(field: FieldInfo, name: str) -> str:
    kind = _base_type(field.annotation)
    if kind in (int, float):
        return "1"
    return GOOD_PATH.get(name, "x")


def _params(dependant: Dependant, where: str) -> dict[str, Any]:
    """The ``where`` ("path_params", "query_params") of a route and all its dependencies."""
    found = {p.alias: p for p in getattr(dependant, where)}
    for sub in dependant.dependencies:
        found.update(_params(sub, where))
    return found


def _routes() -> Iterator[tuple[APIRoute, str]]:
    app = create_app()
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if isinstance(route, APIRoute):
            yield route, route.path_format


def _probes() -> list[Probe]:
    probes: list[Probe] = []
    by_path: dict[str, set[str]] = {}
    for route, path_format in _routes():
        by_path.setdefault(path_format, set()).update(route.methods or ())
    for route, path_format in _routes():
        path_params = {n: p.field_info for n, p in _params(route.dependant, "path_params").items()}
        query_params = list(_params(route.dependant, "query_params").values())
        good_path = {n: _good_value(f, n) for n, f in path_params.items()}
        needed = [p.alias for p in query_params if p.field_info.is_required()]
        required = {**ALWAYS.get(path_format, {}), **{n: GOOD_QUERY.get(n, "1") for n in needed}}

        def url(path_values: dict[str, str], fmt: str = path_format) -> str:
            out = fmt
            for name, value in path_values.items():
                out = out.replace("{" + name + "}", quote(value, safe="/"))
            return out

        for method in sorted(route.methods or ()):
            good_url = url(good_path)
            for param in query_params:
                if (path_format, param.alias) in ANY_TEXT:
                    continue
                probes += [
                    Probe(
                        f"query {param.alias}={value!r}",
                        method,
                        path_format,
                        good_url,
                        {**required, param.alias: value},
                    )
                    for value in _bad_values(param.field_info)
                ]
            for name in needed:
                rest = {k: v for k, v in required.items() if k != name}
                probes.append(Probe(f"missing {name}", method, path_format, good_url, rest))
            for name, field in path_params.items():
                probes += [
                    Probe(
                        f"path {name}={value!r}",
                        method,
                        path_format,
                        url({**good_path, name: value}),
                        required,
                    )
                    for value in _bad_values(field)
                ]
            if method in ("POST", "PUT", "PATCH"):
                for i, (body, media) in enumerate(BAD_BODIES):
                    probes.append(
                        Probe(
                            f"body {i} {media}",
                            method,
                            path_format,
                            good_url,
                            required,
                            body,
                            media,
                        )
                    )
        for other in METHODS:
            if other not in by_path[path_format]:
                probes.append(
                    Probe(f"method {other}", other, path_format, url(good_path), required)
                )
                by_path[path_format].add(other)  # once per path
    return probes


PROBES = _probes()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app().openapi()


@pytest.fixture(scope="module")
def admin(
    database_url: str, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The ``client`` fixture's admin, once for the walk (an app per probe took 0.25 s each)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("walk"),
        mqtt_consumer=False,
        offline_check_s=0,
    )
    with TestClient(create_app(settings), headers=bearer(tokens["admin"])) as c:
        yield c


def _documented(spec: dict[str, Any], probe: Probe, status: int) -> dict[str, Any] | None:
    """The JSON Schema ``/openapi.json`` gives the probe's operation for ``status``, if any."""
    operation = spec["paths"].get(probe.path_format, {}).get(probe.method.lower())
    if operation is None:
        return None
    responses = operation["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        return None
    return (response.get("content") or {}).get("application/json", {}).get("schema")


def _check_shape(spec: dict[str, Any], probe: Probe, status: int, body: Any) -> None:
    schema = _documented(spec, probe, status)
    reported = isinstance(body, dict) and "code" not in body and "anyOf" in (schema or {})
    if schema is not None and (probe.path_format.startswith("/ogc") or reported):
        # OGC's own exception bodies, and the import reports (rows rejected: a 422 whose body
        # is the report), as each operation documents them.
        jsonschema.validate(body, {**schema, "components": spec["components"]})
        return
    assert isinstance(body, dict), body
    assert set(body) == {"code", "detail"}, body
    assert isinstance(body["code"], str), body
    assert body["code"], body
    detail = body["detail"]
    if isinstance(detail, list):
        assert body["code"] == "RequestValidationError", body
        assert all({"loc", "msg", "type"} <= set(e) for e in detail), detail
    else:
        assert isinstance(detail, str), body
        assert detail, body
    if schema is not None:
        jsonschema.validate(body, {**schema, "components": spec["components"]})


def test_the_walk_covers_every_kind_of_probe() -> None:
    kinds = {p.what.split()[0] for p in PROBES}
    assert kinds == {"query", "missing", "path", "body", "method"}
    assert len({p.path_format for p in PROBES}) >= 60


@pytest.mark.parametrize("probe", PROBES, ids=str)
def test_every_error_has_the_documented_shape(
    admin: TestClient, spec: dict[str, Any], probe: Probe
) -> None:
    headers = {"content-type": probe.content_type} if probe.content_type else {}
    response = admin.request(
        probe.method, probe.url, params=probe.params, content=probe.content, headers=headers
    )
    assert 400 <= response.status_code < 500, (str(probe), response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/"), response.headers
    _check_shape(spec, probe, response.status_code, response.json())


@pytest.mark.parametrize(
    ("origin", "method", "says"),
    [
        ("http://elsewhere.example", "GET", "origin 'http://elsewhere.example' is not one of"),
        ("http://wall.intranet", "DELETE", "method 'DELETE' is not one of GET, HEAD, OPTIONS"),
    ],
)
def test_a_refused_cors_preflight_has_the_shape(
    settings: Settings, origin: str, method: str, says: str
) -> None:
    """Starlette's CORS middleware runs before every handler and refused in text/plain."""
    with_cors = settings.model_copy(update={"cors_origins": ["http://wall.intranet"]})
    with TestClient(create_app(with_cors)) as c:
        response = c.options(
            "/sensors", headers={"Origin": origin, "Access-Control-Request-Method": method}
        )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BadRequest"
    assert set(body) == {"code", "detail"}
    assert says in body["detail"], body
    assert "CITYRISK_CORS_ORIGINS" in body["detail"] or "method" in body["detail"]
