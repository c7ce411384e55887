"""Risk layers on real PostGIS: scored assets and risk hexagons as MVT (decoded with
mapbox-vector-tile), their legends, tiles fresh after a refresh, and the incremental rescore
that an alarm raised by a reading (or an analyst's verdict) triggers in the same transaction."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import h3
import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.alarms import engine as alarm_engine
from app.flows.alarms import transition
from app.risk import explain, refresh
from layers.registry import RISK_TABLES, default_registry, risk_layers
from tests import factories as f

TMS = morecantile.tms.get("WebMercatorQuad")
# Far from the demo city and from tests/app/risk/test_refresh.py's city (10 E): cells of our own.
LON, LAT = 20.0, 45.0
# The watched main: PE, new, low pressure, but 20 m from a school — low likelihood, high
# consequence, so a level-I alarm (likelihood × 4) moves it up the classes.
WATCHED = (LON - 0.0005, LAT + 0.0002, LON + 0.0005, LAT + 0.0002)
RED = (LON - 0.0005, LAT - 0.0002, LON + 0.0005, LAT - 0.0002)
BLUE = (LON + 0.05, LAT + 0.05, LON + 0.051, LAT + 0.05)


def add(db: f.Db, kind: str, wkt: str, source: str, **attrs: Any) -> int:
    """An asset named after its (unique) external id."""
    eid = f.uid(kind)
    return f.asset(db, kind, wkt, source=source, external_id=eid, name=eid, **attrs)


def line(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"LINESTRING({x0} {y0},{x1} {y1})"


def build_city(db: Connection | Session, source: str) -> dict[str, int]:
    """A school between two mains (an old cast-iron one, a new PE one); a PE main far away."""
    year = datetime.now(UTC).year
    return {
        "school": add(db, "school", f"POINT({LON} {LAT})", source),
        "red": add(
            db, "gas_pipe", line(*RED), source, material="cast_iron",
            install_year=1950, pressure_mpa=1.6, pressure_class="high", diameter_mm=300,
            condition="poor",
        ),
        "watched": add(
            db, "gas_pipe", line(*WATCHED), source, material="PE",
            install_year=year - 2, pressure_mpa=0.4, pressure_class="medium", diameter_mm=300,
            condition="good",
        ),
        "blue": add(
            db, "gas_pipe", line(*BLUE), source, material="PE",
            install_year=year - 2, pressure_mpa=0.005, pressure_class="low", diameter_mm=110,
            condition="good",
        ),
    }  # fmt: skip


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    t = TMS.tile(lon, lat, z)
    return t.z, t.x, t.y


def get_tile(client: TestClient, layer: str, zxy: tuple[int, int, int], **kw: Any) -> Any:
    z, x, y = zxy
    response = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", **kw)
    assert response.status_code in (200, 304), response.text
    return response


def features(body: bytes, layer: str) -> list[dict[str, Any]]:
    decoded = mapbox_vector_tile.decode(body)
    return list(decoded[layer]["features"]) if layer in decoded else []


def classes_by_asset(body: bytes, layer: str) -> dict[int, int]:
    return {f["properties"]["id"]: f["properties"]["risk_class"] for f in features(body, layer)}


def score_of(conn: Connection, asset_id: int) -> Any:
    """The asset's score row with the explanation the service rebuilds for it."""
    row = conn.execute(
        text(
            "SELECT id, risk_class, likelihood FROM risk_score "
            "WHERE scope = 'asset' AND asset_id = :a"
        ),
        {"a": asset_id},
    ).one()
    return SimpleNamespace(
        **row._mapping, components=explain.asset_components(conn, [asset_id])[asset_id]
    )


# -- the registry -----------------------------------------------------------------------------
def test_risk_layers_are_registered_with_four_colour_legends() -> None:
    registry = default_registry()
    ids = [layer.id for layer in risk_layers()]
    assert {
        "risk_lifeline",
        "risk_composite",
        "risk_cells_lifeline",
        "risk_cells_composite",
    } <= set(ids)
    for layer_id in ids:
        layer = registry.get(layer_id)
        assert layer.tables == RISK_TABLES == frozenset({"risk_score", "asset"})
        legend = layer.style.legend()
        assert legend["property"] == "risk_class"
        assert [(i["value"], i["colour"]) for i in legend["items"]] == [
            (1, "#e60012"), (2, "#ff8c00"), (3, "#ffd400"), (4, "#0068b7"),
        ]  # fmt: skip
        assert [i["label"].split()[0] for i in legend["items"]] == ["重大", "较大", "一般", "低"]
    assert registry.get("risk_composite").plate == "composite"


def test_layers_endpoint_lists_the_risk_layers(client: TestClient) -> None:
    listed = {e["id"]: e for e in client.get("/layers").json()["layers"]}
    assert listed["risk_composite"]["plate_title"] == "Composite (all plates)"
    assert listed["risk_cells_lifeline"]["data"] == "aggregate"
    assert listed["risk_lifeline"]["legend"]["items"][0]["label"].startswith("重大")


# -- tiles (committed data, removed afterwards) -------------------------------------------------
@pytest.fixture
def committed_city(engine: Engine) -> Iterator[dict[str, int]]:
    source = f"test-risk-layers-{secrets.token_hex(3)}"
    alarm_engine._cache.clear()
    with engine.begin() as conn:
        ids = build_city(conn, source)
    try:
        yield ids
    finally:
        with engine.begin() as conn:
            codes = {"c": f"{source}%"}
            conn.execute(text("DELETE FROM alarm WHERE rule_code LIKE :c"), codes)
            conn.execute(text("DELETE FROM rule WHERE code LIKE :c"), codes)
            conn.execute(text("DELETE FROM sensor WHERE external_id LIKE :c"), codes)
            conn.execute(text("DELETE FROM asset WHERE source = :s"), {"s": source})
            conn.execute(text("DELETE FROM risk_score WHERE scope = 'cell'"))
        alarm_engine._cache.clear()


def test_asset_and_hexagon_tiles_carry_the_classes_and_refresh_makes_them_fresh(
    client: TestClient, engine: Engine, committed_city: dict[str, int]
) -> None:
    assert client.post("/risk/refresh", json={}).status_code == 200
    red, blue = committed_city["red"], committed_city["blue"]
    near = tile_of(LON, LAT, 16)
    far = tile_of(BLUE[0], BLUE[1], 16)

    for layer in ("risk_lifeline", "risk_composite"):
        got = classes_by_asset(get_tile(client, layer, near).content, layer)
        assert got[red] == 1
        assert classes_by_asset(get_tile(client, layer, far).content, layer)[blue] == 4
    # Exposure is never scored, and other plates' layers do not show a lifeline main.
    assert committed_city["school"] not in classes_by_asset(
        get_tile(client, "risk_composite", near).content, "risk_composite"
    )
    assert red not in classes_by_asset(
        get_tile(client, "risk_natural_disaster", near).content, "risk_natural_disaster"
    )
    props = next(
        f["properties"]
        for f in features(get_tile(client, "risk_lifeline", near).content, "risk_lifeline")
        if f["properties"]["id"] == red
    )
    assert props["method"] == "matrix"
    assert props["plate"] == "lifeline"
    assert props["kind"] == "gas_pipe"
    assert 0.75 <= props["norm"] <= 1.0  # class 1 is norm >= 0.75

    # Hexagons: the red main's H3 cell, worst class 1, a polygon.
    cell = h3.latlng_to_cell(LAT - 0.0002, LON, refresh.DEFAULT_H3_RES)
    hexes = features(get_tile(client, "risk_cells_lifeline", tile_of(LON, LAT, 12)).content,
                     "risk_cells_lifeline")  # fmt: skip
    mine = [f for f in hexes if f["properties"]["cell_id"] == cell]
    assert len(mine) == 1
    assert mine[0]["properties"]["risk_class"] == 1
    assert mine[0]["properties"]["assets"] >= 2
    assert mine[0]["geometry"]["type"] == "Polygon"
    # Below z9 the cells are grouped into screen hexagons carrying the worst class.
    low = features(get_tile(client, "risk_cells_composite", tile_of(LON, LAT, 6)).content,
                   "risk_cells_composite")  # fmt: skip
    assert low
    assert min(f["properties"]["risk_class"] for f in low) == 1

    # A refresh writes risk_score: the next tile has another ETag and is rebuilt.
    before = get_tile(client, "risk_lifeline", near)
    etag = before.headers["etag"]
    assert (
        get_tile(client, "risk_lifeline", near, headers={"If-None-Match": etag}).status_code == 304
    )
    assert client.post("/risk/refresh", json={"asset_ids": [blue]}).status_code == 200
    after = get_tile(client, "risk_lifeline", near, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert after.headers["x-tile-cache"] == "miss"


# -- incremental rescoring on alarm changes -----------------------------------------------------
def add_pressure_sensor_and_rule(conn: Connection, asset_id: int, prefix: str) -> str:
    sensor = f"{prefix}-p1"
    f.sensor(
        conn,
        "pressure_mpa",
        lon=LON,
        lat=WATCHED[1],
        asset_id=asset_id,
        external_id=sensor,
        interval_s=60,
    )
    f.rule(
        conn,
        indicator="pressure_mpa",
        title="Overpressure",
        thresholds={"1": 1.0},
        code=f"{prefix}-overpressure",
        target={"asset_kinds": ["gas_pipe"]},
    )
    return sensor


def test_a_reading_that_raises_an_alarm_rescores_its_gas_main_in_the_same_transaction(
    client: TestClient, engine: Engine, committed_city: dict[str, int]
) -> None:
    watched = committed_city["watched"]
    assert client.post("/risk/refresh", json={}).status_code == 200
    with engine.begin() as conn:
        prefix = conn.execute(
            text("SELECT source FROM asset WHERE id = :a"), {"a": watched}
        ).scalar_one()
        sensor = add_pressure_sensor_and_rule(conn, watched, prefix)
        before = score_of(conn, watched)
    near = tile_of(LON, LAT, 16)
    tile_before = get_tile(client, "risk_lifeline", near)
    assert classes_by_asset(tile_before.content, "risk_lifeline")[watched] == before.risk_class
    assert before.components["likelihood"]["factors"]["alarm"]["value"] == 1.0

    ts = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    response = client.post(
        "/readings",
        content=json.dumps([{"sensor": sensor, "ts": ts, "value": 1.8}]),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["alarms"]["raised"] == 1
    assert len(report["alarms"]["alarm_ids"]) == 1

    # Committed by the request itself: a fresh connection sees the alarm and the new score.
    with engine.connect() as conn:
        after = score_of(conn, watched)
        alarm = conn.execute(
            text("SELECT id, level, asset_id FROM alarm WHERE id = :i"),
            {"i": report["alarms"]["alarm_ids"][0]},
        ).one()
    assert (alarm.level, alarm.asset_id) == (1, watched)
    assert after.id != before.id
    assert after.components["likelihood"]["factors"]["alarm"] == {
        "value": 4.0, "input": 1, "source": "alarm",
    }  # fmt: skip
    assert after.likelihood > before.likelihood
    assert after.risk_class < before.risk_class  # a more severe class

    tile_after = get_tile(
        client, "risk_lifeline", near, headers={"If-None-Match": tile_before.headers["etag"]}
    )
    assert tile_after.status_code == 200
    assert classes_by_asset(tile_after.content, "risk_lifeline")[watched] == after.risk_class


def test_no_rescore_before_the_first_full_refresh(session: Session) -> None:
    session.execute(text("DELETE FROM risk_score"))
    assert refresh.refresh_after_alarms(session, [1, 2]) is None
    assert refresh.refresh_after_alarms(session, []) is None


@pytest.mark.parametrize(
    ("from_state", "to_state", "changes"),
    [
        ("raised", "verified", False),
        ("raised", "false_alarm", True),
        ("raised", "test", True),
        ("dispatched", "disposed", True),
        ("disposed", "closed", False),
        ("verified", "pushed", False),
    ],
)
def test_which_transitions_change_a_score(from_state: str, to_state: str, changes: bool) -> None:
    assert refresh.alarm_counts_changed(from_state, to_state) is changes


def test_a_false_alarm_verdict_rescores_the_asset(session: Session) -> None:
    source = f"test-risk-layers-{secrets.token_hex(3)}"
    ids = build_city(session, source)
    refresh.refresh_all(session)
    rule = f.rule(
        session, indicator="pressure_mpa", title="x", thresholds={"1": 1}, code=f"{source}-r"
    )
    alarm_id = f.alarm(
        session, rule, asset_id=ids["watched"], level=1, lon=None, lat=None, event=False
    )
    refresh.refresh_alarms(session, [alarm_id])

    def alarm_factor() -> float:
        components = explain.asset_components(session, [ids["watched"]])[ids["watched"]]
        return float(components["likelihood"]["factors"]["alarm"]["value"])

    assert alarm_factor() == 4.0
    transition(session, alarm_id, "false_alarm", actor="analyst")
    assert alarm_factor() == 1.0
