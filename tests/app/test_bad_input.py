"""Bad input is a 4xx that says what was given and what was expected, never a 500.

Each case here was a 500 before (an overflowing bigint, a NUL byte PostgreSQL refuses, a
superscript digit ``int()`` refuses, an unclosed ring GEOS refuses, a YAML document deep enough
to exhaust the stack, …). The ``client`` fixture raises the server's exception on a 500, so a
regression fails loudly with its traceback.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from app.main import create_app

HUGE = ("9223372036854775808", "99999999999999999999", "-1", "-9223372036854775809")
UNCLOSED_RING = [[[-71.11, 42.37], [-71.10, 42.37], [-71.10, 42.38]]]
UNCLOSED_WKT = "POLYGON((-71.11 42.37, -71.10 42.37, -71.10 42.38))"


def _is_4xx(response: Any) -> bool:
    return 400 <= response.status_code < 500


def _text(response: Any) -> str:
    body = response.json()
    detail = body.get("detail", body.get("description", ""))
    return json.dumps(detail) if not isinstance(detail, str) else detail


def _paged_routes() -> list[tuple[str, str]]:
    """Every GET route declaring ``limit`` or ``offset``, found in the app, not listed by hand."""
    app = create_app()
    found = []
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if not isinstance(route, APIRoute) or "GET" not in route.methods or "{" in route.path:
            continue
        for param in route.dependant.query_params:
            if param.alias in ("limit", "offset"):
                found.append((route.path, param.alias))
    # The OGC items route parses its query string itself (to refuse unknown parameters).
    found += [
        ("/ogc/collections/gas_pipe/items", "limit"),
        ("/ogc/collections/gas_pipe/items", "offset"),
    ]
    return found


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(("path", "name"), _paged_routes())
def test_huge_or_negative_paging_is_a_4xx(
    client: TestClient, path: str, name: str, value: str
) -> None:
    response = client.get(path, params={name: value})
    assert _is_4xx(response), (path, name, value, response.status_code, response.text[:300])
    assert name in _text(response)


def test_paging_routes_are_found() -> None:
    paths = {p for p, _ in _paged_routes()}
    assert {"/sensors", "/alarms", "/incidents", "/readings/latest"} <= paths


@pytest.mark.parametrize("feature_id", ["%C2%B2", "%D9%A3", "-1", "9223372036854775808"])
def test_feature_id_that_is_no_integer_is_a_404(client: TestClient, feature_id: str) -> None:
    # OGC API – Features /req/core/f-op: an id the collection lacks is a 404, whatever it is.
    response = client.get(f"/ogc/collections/gas_pipe/items/{feature_id}")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "NotFound"


def test_feature_id_with_a_nul_is_a_400(client: TestClient) -> None:
    # Refused as every parameter with a NUL is, before the lookup: an invalid parameter value.
    response = client.get("/ogc/collections/gas_pipe/items/1%00")
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["description"]


def test_last_event_id_with_a_superscript_digit_is_a_422(client: TestClient) -> None:
    response = client.get("/alarms/stream", headers={"Last-Event-ID": "²".encode("latin-1")})
    assert response.status_code == 422
    assert "Last-Event-ID" in _text(response)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/sensors", {"kind": "ch4\x00"}),
        ("/readings/latest", {"sensor": "cam\x00-1"}),
        ("/readings/latest", {"kind": "ch4\x00"}),
        ("/alarms", {"kind": "gas\x00"}),
        ("/alarms/stats", {"sensor": "cam\x00-1"}),
        ("/alarms/stats", {"rule": "r\x00"}),
        ("/ogc/collections/gas_pipe/items", {"filter": "name = 'a\x00'"}),
        ("/risk/cells/8a2a1072b59ffff%00/assets", {}),
    ],
)
def test_nul_in_a_query_or_path_is_a_4xx_naming_it(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert _is_4xx(response), (path, params, response.status_code, response.text[:300])
    assert "NUL" in _text(response)


def test_a_cell_id_that_is_no_h3_index_is_a_422(client: TestClient) -> None:
    response = client.get("/risk/cells/%C2%B2/assets")
    assert response.status_code == 422
    assert "H3" in _text(response)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/readings", [{"sensor": "cam\x00", "ts": "2026-11-28T10:00:00Z", "value": 1}]),
        (
            "/readings",
            [
                {
                    "kind": "ch4\x00",
                    "lon": -71.1,
                    "lat": 42.37,
                    "ts": "2026-11-28T10:00:00Z",
                    "value": 1,
                }
            ],
        ),
        ("/alarms/1/transition", {"to": "verified", "note": "seen\x00"}),
        (
            "/rules",
            {
                "code": "nul-title",
                "title": "Pond\x00ing",
                "indicator": "ponding_cm",
                "thresholds": {"4": 3},
            },
        ),
        ("/incidents", {"scenario": "asset_failure", "asset_id": 1, "title": "t\x00"}),
    ],
)
def test_nul_in_a_body_is_a_422(client: TestClient, path: str, body: Any) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text[:300]
    # Readings are checked against the sensor catalogue in memory: "unknown sensor" is the
    # honest reason there, and no NUL reaches PostgreSQL.
    assert "NUL" in response.text or path == "/readings"


def test_nul_in_a_csv_sensor_file_is_a_422(client: TestClient) -> None:
    csv = b"external_id,kind,unit,lon,lat\ncam\x00-1,ch4_pct_lel,%LEL,-71.1,42.37\n"
    response = client.post(
        "/sensors/import", files={"file": ("s.csv", csv)}, data={"crs": "EPSG:4326"}
    )
    assert response.status_code == 422, response.text[:300]
    assert "NUL" in response.text


@pytest.mark.parametrize("ids", [{"asset_ids": [2**63]}, {"alarm_ids": [2**63]}])
def test_refresh_with_ids_beyond_bigint_is_a_422(client: TestClient, ids: dict[str, Any]) -> None:
    response = client.post("/risk/refresh", json=ids)
    assert response.status_code == 422, response.text[:300]


def _geojson(geometry: dict[str, Any]) -> bytes:
    feature = {"type": "Feature", "properties": {"name": "x"}, "geometry": geometry}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ring.geojson", _geojson({"type": "Polygon", "coordinates": UNCLOSED_RING})),
        ("ring.csv", f'wkt,name\n"{UNCLOSED_WKT}",x\n'.encode()),
    ],
)
def test_unclosed_ring_in_an_asset_file_is_a_422(
    client: TestClient, name: str, content: bytes
) -> None:
    response = client.post(
        "/assets/import",
        files={"file": (name, content)},
        data={"kind": "substation", "crs": "EPSG:4326"},
    )
    assert response.status_code == 422, response.text[:300]
    assert "ring" in response.text or "closed" in response.text


def test_unclosed_ring_in_a_sensor_file_is_a_422(client: TestClient) -> None:
    csv = f'external_id,kind,unit,wkt\ncam-ring,ch4_pct_lel,%LEL,"{UNCLOSED_WKT}"\n'.encode()
    response = client.post(
        "/sensors/import", files={"file": ("s.csv", csv)}, data={"crs": "EPSG:4326"}
    )
    assert response.status_code == 422, response.text[:300]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("cql2-text", f"S_INTERSECTS(geometry, {UNCLOSED_WKT})"),
        (
            "cql2-json",
            json.dumps(
                {
                    "op": "s_intersects",
                    "args": [
                        {"property": "geometry"},
                        {"type": "Polygon", "coordinates": UNCLOSED_RING},
                    ],
                }
            ),
        ),
    ],
)
def test_unclosed_ring_in_a_filter_is_a_400(client: TestClient, lang: str, text: str) -> None:
    response = client.get(
        "/ogc/collections/gas_pipe/items", params={"filter": text, "filter-lang": lang}
    )
    assert response.status_code == 400, response.text[:300]
    assert "geometry" in _text(response)


def _empty_shapefile_zip(tmp_path: Path) -> bytes:
    frame = gpd.GeoDataFrame({"name": []}, geometry=gpd.GeoSeries([], crs=4326))
    frame.to_file(tmp_path / "empty.shp")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in tmp_path.glob("empty.*"):
            archive.write(part, part.name)
    return buffer.getvalue()


@pytest.mark.parametrize("route", ["/assets/import", "/sensors/import"])
@pytest.mark.parametrize("variant", ["no features", "no files", "zero bytes"])
def test_empty_zipped_shapefile_is_a_422(
    client: TestClient, tmp_path: Path, route: str, variant: str
) -> None:
    if variant == "no features":
        content = _empty_shapefile_zip(tmp_path)
    elif variant == "no files":
        buffer = io.BytesIO()
        zipfile.ZipFile(buffer, "w").close()
        content = buffer.getvalue()
    else:
        content = b""
    data = {"kind": "gas_pipe"} if route == "/assets/import" else {}
    response = client.post(route, files={"file": ("empty.zip", content)}, data=data)
    assert response.status_code == 422, response.text[:300]
    assert "empty.zip" in response.text


@pytest.mark.parametrize(
    "document",
    [
        "[" * 500 + "]" * 500,
        "".join("  " * i + "- \n" for i in range(500)),
        "rules:\n" + "".join("  " * i + "  a:\n" for i in range(500)),
    ],
)
def test_deeply_nested_rules_yaml_is_a_422_naming_the_limit(
    client: TestClient, document: str
) -> None:
    response = client.post(
        "/rules/import", content=document, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 422, response.text[:300]
    assert "deep" in _text(response)
    assert "CITYRISK_YAML_MAX_DEPTH" in _text(response)


def test_rules_yaml_of_ordinary_depth_still_imports(client: TestClient) -> None:
    document = (
        "- code: depth-ok\n  title: Ponding\n  indicator: ponding_cm\n"
        "  thresholds: {'4': 3, '3': 10}\n"
    )
    response = client.post(
        "/rules/import", content=document, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 200, response.text


def test_a_huge_field_is_not_echoed_whole_in_a_422(client: TestClient) -> None:
    # A 10 MB note is refused at the body limit (413, CITYRISK_MAX_BODY_BYTES) before it is
    # parsed; one under that limit but far over the echo cap is cut in the 422.
    big = client.post("/alarms/1/transition", json={"to": "verified", "note": "x" * 10_000_000})
    assert big.status_code == 413
    note = "x" * 500_000
    response = client.post("/alarms/1/transition", json={"to": "verified", "note": note})
    assert response.status_code == 422
    assert len(response.content) < 2_000, len(response.content)
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "note"]
    assert error["input"].endswith("… (499,800 more)")
    assert error["input"].startswith("x" * 200)


def test_a_body_that_is_not_json_is_a_400_in_the_shared_shape(client: TestClient) -> None:
    response = client.post(
        "/risk/refresh", content=b"\xff{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequest"
    assert "could not be parsed as 'application/json'" in response.json()["detail"]


def test_an_unknown_path_is_a_404_in_the_shared_shape(client: TestClient) -> None:
    assert client.get("/nowhere").json() == {"code": "NotFound", "detail": "Not Found"}


def test_a_processes_route_answers_a_nul_with_its_own_exception(client: TestClient) -> None:
    response = client.get("/ogc/processes", params={"f": "json\x00"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert "NUL" in body["detail"]
