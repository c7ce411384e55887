"""The stored impact zones as the OGC collection ``impact_zones`` and the MVT layer of the same
id: items with their incident's status and data time, bbox, filters, paging; tiles coloured by
severity that follow a new incident, a recompute and a closed incident; GDAL reads the
collection over a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db import create_db_engine
from app.main import create_app
from app.scratch import serve_in_thread
from app.settings import Settings
from tests import factories as f
from tests.app.ogc.impact_city import City, city, ll
from tests.app.ogc.test_clients import ogrinfo

__all__ = ["city"]  # the module-scoped fixture: this module's own database

TMS = morecantile.tms.get("WebMercatorQuad")
BLAST = ll(150, 0)  # the explosion's centre
AT = "2026-11-28T10:00:00Z"


@pytest.fixture(scope="module")
def api(city: City, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(database_url=city.url, data_dir=tmp_path_factory.mktemp("zones"))
    with TestClient(create_app(settings), headers=f.bearer(f.token(city.url, "commander"))) as c:
        yield c


@pytest.fixture(scope="module")
def incidents(api: TestClient, city: City) -> dict[str, dict[str, Any]]:
    """Two committed incidents: a 1 t explosion (three rings) and a gas-main rupture."""
    out = {}
    for key, body in {
        "blast": {
            "scenario": "vapour_cloud_explosion",
            "point": list(BLAST),
            "params": {"mass_kg": 1000},
            "at": AT,
        },
        "rupture": {"scenario": "gas_pipe_rupture", "asset_id": city.ids["main"], "at": AT},
    }.items():
        r = api.post("/incidents", json=body)
        assert r.status_code == 201, r.text
        out[key] = r.json()
    return out


def items(api: TestClient, **params: Any) -> dict[str, Any]:
    r = api.get("/ogc/collections/impact_zones/items", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body: dict[str, Any] = r.json()
    return body


def zones_of(incident: dict[str, Any]) -> list[dict[str, Any]]:
    return list(incident["results"]["zones"]["features"])


def test_the_collection_is_listed_with_its_extent(
    api: TestClient, incidents: dict[str, Any]
) -> None:
    listed = {c["id"]: c for c in api.get("/ogc/collections").json()["collections"]}
    zones = listed["impact_zones"]
    assert zones["title"] == "Impact zones"
    minx, miny, maxx, maxy = zones["extent"]["spatial"]["bbox"][0]
    assert minx < BLAST[0] < maxx
    assert miny < BLAST[1] < maxy
    one = api.get("/ogc/collections/impact_zones").json()
    assert one["id"] == "impact_zones"
    queryables = api.get("/ogc/collections/impact_zones/queryables").json()["properties"]
    assert queryables["severity"] == {
        "title": "Severity",
        "type": "integer",
        "description": "1 (most severe, red) … 4 (blue), as the four-colour scales",
        "minimum": 1,
        "maximum": 4,
    }
    assert queryables["status"]["enum"] == ["open", "contained", "closed"]
    assert queryables["geometry"]["format"] == "geometry-polygon-or-multipolygon"


def test_items_carry_zone_and_incident_properties(
    api: TestClient, incidents: dict[str, Any]
) -> None:
    blast = incidents["blast"]
    body = items(api, filter=f"incident_id = {blast['id']}", sortby="severity")
    stored = zones_of(blast)
    assert body["numberMatched"] == len(stored) == 3
    assert [f["properties"]["severity"] for f in body["features"]] == sorted(
        z["properties"]["severity"] for z in stored
    )
    first = body["features"][0]
    assert first["geometry"]["type"] == "MultiPolygon"
    p = first["properties"]
    assert p["incident_id"] == blast["id"]
    assert p["scenario"] == "vapour_cloud_explosion"
    assert p["model"] == "vce_tnt_kingery_bulmash"
    assert p["unit"] == "kPa"
    assert p["threshold"] == pytest.approx(55.2)
    assert p["status"] == "open"
    assert p["data_at"] == AT
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p["computed_at"])
    assert "Kingery" in p["source"]
    one = api.get(f"/ogc/collections/impact_zones/items/{first['id']}").json()
    assert one["properties"] == p
    assert api.get("/ogc/collections/impact_zones/items/999999999").status_code == 404


def test_filters_bbox_and_paging(api: TestClient, incidents: dict[str, Any]) -> None:
    total = sum(len(zones_of(i)) for i in incidents.values())
    assert items(api)["numberMatched"] == total
    reds = items(api, filter="severity = 1 AND scenario = 'vapour_cloud_explosion'")
    assert reds["numberReturned"] == 1
    assert items(api, filter="status = 'closed'")["numberReturned"] == 0
    far = ll(5000, 5000)
    assert items(api, bbox=f"{far[0]},{far[1]},{far[0] + 0.01},{far[1] + 0.01}")["features"] == []
    seen: list[int] = []
    page = items(api, limit=2)
    while True:
        seen += [f["id"] for f in page["features"]]
        after = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not after:
            break
        r = api.get(after[0])
        assert r.status_code == 200
        page = r.json()
    assert len(seen) == len(set(seen)) == total


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"filter": "colour = 'red'"}, "unknown property 'colour'"),
        ({"sortby": "-nope"}, "unknown property 'nope'"),
        ({"datetime": "2026-11-28T10:00:00Z"}, "has no temporal property"),
        ({"limit": "0"}, "limit was '0'"),
    ],
)
def test_bad_parameters_are_400(api: TestClient, params: dict[str, str], needle: str) -> None:
    r = api.get("/ogc/collections/impact_zones/items", params=params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["description"]


# -- the layer -----------------------------------------------------------------------------------


def tile(api: TestClient, path: str, lonlat: tuple[float, float], z: int = 15) -> Any:
    t = TMS.tile(lonlat[0], lonlat[1], z)
    r = api.get(path.format(z=t.z, x=t.x, y=t.y))
    assert r.status_code == 200, r.text
    return r


def zone_features(response: Any) -> list[dict[str, Any]]:
    decoded = mapbox_vector_tile.decode(response.content)
    return list(decoded.get("impact_zones", {}).get("features", []))


def test_layer_is_listed_with_a_severity_legend(api: TestClient) -> None:
    layers = {layer["id"]: layer for layer in api.get("/layers").json()["layers"]}
    legend = layers["impact_zones"]["legend"]
    assert legend["property"] == "severity"
    assert [(i["value"], i["colour"]) for i in legend["items"]] == [
        (1, "#e60012"),
        (2, "#ff8c00"),
        (3, "#ffd400"),
        (4, "#0068b7"),
    ]


def test_tiles_follow_incidents(api: TestClient, city: City, incidents: dict[str, Any]) -> None:
    blast = incidents["blast"]
    url = "/tiles/impact_zones/{z}/{x}/{y}.mvt"
    first = tile(api, url, BLAST)
    ids = {f["properties"]["id"] for f in zone_features(first)}
    mine = {int(f["id"]) for f in items(api, filter=f"incident_id = {blast['id']}")["features"]}
    assert mine <= ids
    severities = {
        f["properties"]["severity"]
        for f in zone_features(first)
        if f["properties"]["incident_id"] == blast["id"]
    }
    assert severities == {1, 2, 3}
    # The same bytes through OGC API – Tiles (z / row / col).
    t = TMS.tile(*BLAST, 15)
    ogc = api.get(f"/ogc/collections/impact_zones/tiles/WebMercatorQuad/15/{t.y}/{t.x}")
    assert ogc.status_code == 200
    assert ogc.content == first.content

    # A recompute writes the zones again: new ids, a new ETag, never the old tile.
    r = api.post(f"/incidents/{blast['id']}/recompute", json={"at": AT})
    assert r.status_code == 200, r.text
    again = tile(api, url, BLAST)
    assert again.headers["etag"] != first.headers["etag"]
    new_ids = {
        f["properties"]["id"]
        for f in zone_features(again)
        if f["properties"]["incident_id"] == blast["id"]
    }
    assert new_ids
    assert not new_ids & mine

    # A closed incident leaves the map, and stays in the collection.
    engine = create_db_engine(city.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE incident SET status = 'closed' WHERE id = :i"), {"i": blast["id"]}
            )
        closed = tile(api, url, BLAST)
        assert all(f["properties"]["incident_id"] != blast["id"] for f in zone_features(closed))
        assert (
            items(api, filter=f"incident_id = {blast['id']} AND status = 'closed'")["numberMatched"]
            == 3
        )
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE incident SET status = 'open' WHERE id = :i"), {"i": blast["id"]}
            )
        engine.dispose()


# -- GDAL ----------------------------------------------------------------------------------------


def test_ogrinfo_reads_the_impact_zones(
    city: City, incidents: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = Settings(database_url=city.url, data_dir=tmp_path_factory.mktemp("zones-http"))
    total = sum(len(zones_of(i)) for i in incidents.values())
    with serve_in_thread(create_app(settings)) as base:
        out = ogrinfo("-oo", "PAGE_SIZE=2", f"OAPIF:{base}/ogc", "impact_zones")
    fids = re.findall(r"^OGRFeature\(impact_zones\):(\d+)$", out, re.M)
    assert len(fids) == total
    assert "severity (Integer) = 1" in out
    assert "scenario (String) = vapour_cloud_explosion" in out
    assert "MULTIPOLYGON" in out
