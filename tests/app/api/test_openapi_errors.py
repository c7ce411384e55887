"""``/openapi.json`` describes the error bodies the app really sends, and GeoJSON as GeoJSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    from app.main import create_app

    return create_app().openapi()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _names_error(schema: dict[str, Any]) -> bool:
    error = {"$ref": "#/components/schemas/Error"}
    return schema == error or error in schema.get("anyOf", [])


def test_every_error_response_has_the_shared_schema(spec: dict[str, Any]) -> None:
    wrong = []
    for method, path, op in _operations(spec):
        if path.startswith("/ogc"):
            assert "default" in op["responses"], (method, path)  # OGC's own exception body
            continue
        assert "422" in op["responses"], (method, path)
        for code, response in op["responses"].items():
            if not (code.startswith("4") or code == "503"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if not _names_error(schema) and path != "/readyz":
                wrong.append(f"{method} {path} {code}: {schema}")
            if code == "503" and "Retry-After" not in response.get("headers", {}):
                wrong.append(f"{method} {path} 503 lacks the Retry-After header")
    assert not wrong, wrong


def test_database_routes_document_a_503(spec: dict[str, Any]) -> None:
    for path in ("/sensors", "/alarms", "/readings/latest", "/tiles/{layers}/{z}/{x}/{y}.mvt"):
        assert "503" in spec["paths"][path]["get"]["responses"], path
    assert "503" in spec["paths"]["/readings"]["post"]["responses"]
    assert "503" not in spec["paths"]["/healthz"]["get"]["responses"]


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    missing = {r for r in _refs(spec) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not missing


@pytest.mark.parametrize(
    ("path", "only"),
    [
        ("/sensors", True),
        ("/sensors/{sensor_id}", True),
        ("/readings/latest", True),
        ("/risk/cells", True),
        ("/risk/areas/{area_id}/cells", True),
        ("/incidents/{incident_id}/zones", True),
        ("/alarms", False),  # JSON by default, GeoJSON with f=geojson
        ("/ogc/collections/{collection_id}/items", False),  # and HTML
    ],
)
def test_geojson_routes_say_geo_json(spec: dict[str, Any], path: str, only: bool) -> None:
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]
    assert "application/geo+json" in content
    if only:
        assert "application/json" not in content


def test_real_error_bodies_match_the_schema(client: TestClient, spec: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error", "components": spec["components"]}
    cases = [
        ("/sensors", client.get("/sensors", params={"offset": "-1"})),  # FastAPI's validation
        ("/sensors", client.get("/sensors", params={"bbox": "a,b,c,d"})),  # 400
        ("/assets/{asset_id}", client.get("/assets/999999999")),  # 404
        ("/risk/cells/{cell_id}/assets", client.get("/risk/cells/x/assets")),  # 422, ours
        (
            "/alarms/{alarm_id}/transition",
            client.post("/alarms/1/transition", json={"to": "verified", "note": "x" * 5000}),
        ),
    ]
    for template, answer in cases:
        operation = spec["paths"][template][answer.request.method.lower()]
        assert str(answer.status_code) in operation["responses"], (template, answer.status_code)
        jsonschema.validate(answer.json(), error)
