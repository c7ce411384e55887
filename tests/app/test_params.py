"""Every route that takes ``bbox`` reads it the same way: one parser, one SQL condition.

A box across the antimeridian (``minLon > maxLon``, OGC API – Features) is the strip east of
``minLon`` plus the strip west of ``maxLon``; built from its corners instead it spans the rest
of the world (``/sensors`` once returned every Cambridge sensor for ``170,40,-170,45``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests import factories as f

STRIP = "170,40,-170,45"  # across the antimeridian
EAST, WEST = (179.9, 42.0), (-179.9, 42.5)  # just inside the strip, on either side


@dataclass(frozen=True)
class Seeded:
    sensors: dict[str, int]  # east, west, cambridge
    alarms: dict[str, int]
    cells: dict[str, str]
    assets: dict[str, int]


def _cell(conn: object, cell_id: str, lon: float, lat: float) -> None:
    conn.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO risk_score (scope, cell_id, plate, method, likelihood, consequence, "
            "score, risk_class, norm, components, geom) VALUES ('cell', :c, 'composite', 'max', "
            "1, 1, 0.5, 3, 0.5, '{}'::jsonb, ST_GeomFromText(:w, 4326))"
        ),
        {"c": cell_id, "w": f.square(lon, lat, 0.01, 0.01)},
    )


@pytest.fixture
def seeded(engine: Engine) -> Iterator[Seeded]:
    places = {"east": EAST, "west": WEST, "cambridge": (f.LON, f.LAT)}
    with engine.begin() as conn:
        rule = f.rule(conn)
        assets = {k: f.asset(conn, "manhole", f.point(*p)) for k, p in places.items()}
        sensors = {
            k: f.sensor(conn, lon=p[0], lat=p[1], asset_id=assets[k]) for k, p in places.items()
        }
        conn.execute(
            text(
                "INSERT INTO latest_reading (sensor_id, ts, value) "
                "SELECT unnest(CAST(:ids AS bigint[])), now(), 1.0"
            ),
            {"ids": list(sensors.values())},
        )
        alarms = {
            k: f.alarm(conn, rule, sensor_id=sensors[k], lon=p[0], lat=p[1])
            for k, p in places.items()
        }
        cells = {k: f.uid("cell") for k in places}
        for k, p in places.items():
            _cell(conn, cells[k], *p)
    yield Seeded(sensors, alarms, cells, assets)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alarm WHERE rule_code = :c"), {"c": rule[1]})
        conn.execute(text("DELETE FROM rule WHERE id = :r"), {"r": rule[0]})
        conn.execute(
            text("DELETE FROM sensor WHERE id = ANY(:ids)"), {"ids": list(sensors.values())}
        )
        conn.execute(text("DELETE FROM asset WHERE id = ANY(:ids)"), {"ids": list(assets.values())})
        conn.execute(
            text("DELETE FROM risk_score WHERE cell_id = ANY(:c)"), {"c": list(cells.values())}
        )


def _ids(features: list[dict[str, object]]) -> set[object]:
    return {feat["id"] for feat in features}


def test_sensors_across_the_antimeridian(client: TestClient, seeded: Seeded) -> None:
    got = client.get("/sensors", params={"bbox": STRIP, "limit": 100_000})
    assert got.status_code == 200, got.text
    ids = _ids(got.json()["features"])
    assert {seeded.sensors["east"], seeded.sensors["west"]} <= ids
    assert seeded.sensors["cambridge"] not in ids


def test_latest_readings_across_the_antimeridian(client: TestClient, seeded: Seeded) -> None:
    got = client.get("/readings/latest", params={"bbox": STRIP})
    assert got.status_code == 200, got.text
    ids = _ids(got.json()["features"])
    assert {seeded.sensors["east"], seeded.sensors["west"]} <= ids
    assert seeded.sensors["cambridge"] not in ids


def test_alarms_across_the_antimeridian(client: TestClient, seeded: Seeded) -> None:
    got = client.get("/alarms", params={"bbox": STRIP, "f": "geojson"})
    assert got.status_code == 200, got.text
    ids = _ids(got.json()["features"])
    assert {seeded.alarms["east"], seeded.alarms["west"]} <= ids
    assert seeded.alarms["cambridge"] not in ids


def test_risk_cells_across_the_antimeridian(client: TestClient, seeded: Seeded) -> None:
    got = client.get("/risk/cells", params={"bbox": STRIP})
    assert got.status_code == 200, got.text
    ids = _ids(got.json()["features"])
    assert {seeded.cells["east"], seeded.cells["west"]} <= ids
    assert seeded.cells["cambridge"] not in ids


def test_ogc_items_across_the_antimeridian(client: TestClient, seeded: Seeded) -> None:
    got = client.get("/ogc/collections/manhole/items", params={"bbox": STRIP, "limit": 10_000})
    assert got.status_code == 200, got.text
    ids = _ids(got.json()["features"])
    assert {seeded.assets["east"], seeded.assets["west"]} <= ids
    assert seeded.assets["cambridge"] not in ids


@pytest.mark.parametrize(
    "path",
    ["/sensors", "/readings/latest", "/alarms", "/risk/cells", "/ogc/collections/manhole/items"],
)
@pytest.mark.parametrize("bad", ["1,2,3", "a,b,c,d", "0,50,1,40", "0,0,200,1", "nan,0,1,1"])
def test_every_bbox_route_refuses_a_bad_box_the_same_way(
    client: TestClient, path: str, bad: str
) -> None:
    got = client.get(path, params={"bbox": bad})
    assert got.status_code == 400, (path, got.text)
    assert "bbox was" in got.text
