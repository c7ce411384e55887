"""Sensor registry: import, binding to assets (explicit, nearest, ambiguous, too far), and the
readings API over HTTP, all on real PostGIS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.sensors.registry import import_sensors
from tests import factories as f

M_PER_DEG_LAT = 111_000.0
LAT = 42.37


def north(metres: float) -> float:
    return LAT + metres / M_PER_DEG_LAT


def sensor(eid: str, kind: str, unit: str, lat: float, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-71.1, lat]},
        "properties": {"external_id": eid, "kind": kind, "unit": unit, **props},
    }


def write(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def bindings(session: Session) -> dict[str, tuple[int | None, str | None, float | None]]:
    rows = session.execute(
        text("SELECT external_id, asset_id, binding_rule, binding_distance_m FROM sensor")
    )
    return {r.external_id: (r.asset_id, r.binding_rule, r.binding_distance_m) for r in rows}


def test_import_binds_explicitly_and_by_position_and_reports_the_rest(
    session: Session, tmp_path: Path
) -> None:
    mh_a = f.asset(session, "manhole", f"POINT(-71.1 {north(0)})", source="t", external_id="mh-a")
    mh_b = f.asset(session, "manhole", f"POINT(-71.1 {north(100)})", source="t", external_id="mh-b")
    f.asset(session, "manhole", f"POINT(-71.1 {north(110)})", source="t", external_id="mh-c")
    bridge = f.asset(
        session,
        "bridge",
        f"LINESTRING(-71.2 {north(0)}, -71.19 {north(0)})",
        source="t",
        external_id="br-1",
    )
    f.asset(session, "manhole", f"POINT(-71.3 {north(0)})", source="s1", external_id="dup")
    f.asset(session, "manhole", f"POINT(-71.3 {north(0)})", source="s2", external_id="dup")
    path = write(
        tmp_path / "sensors.geojson",
        [
            sensor("ch4-near-a", "ch4_pct_lel", "%LEL", north(4), interval_s=60),
            sensor("ch4-between", "ch4_pct_lel", "%LEL", north(105)),  # 5 m from b and from c
            sensor("ch4-far", "ch4_pct_lel", "%LEL", north(500)),
            sensor("strain-1", "strain_ue", "µε", north(900), asset_external_id="br-1"),
            sensor("ghost", "strain_ue", "µε", north(900), asset_external_id="no-such"),
            sensor("twice", "ch4_pct_vol", "%vol", north(900), asset_external_id="dup"),
            sensor(
                "pick",
                "ch4_pct_vol",
                "%vol",
                north(900),
                asset_external_id="dup",
                asset_source="s2",
            ),
        ],
    )
    report = import_sensors(session, path)
    assert (report.inserted, report.rejected) == (7, [])
    assert (report.bound_explicit, report.bound_spatial) == (2, 1)
    unbound = {u.external_id: u.reason for u in report.unbound}
    assert unbound["ch4-far"] == "no compatible asset within 25 m"
    assert unbound["ch4-between"].startswith("ambiguous: two compatible assets at 5.0 m and 5.0 m")
    assert unbound["ghost"] == "asset_external_id 'no-such' matches no asset"
    assert "matches 2 assets (give asset_source)" in unbound["twice"]
    bound = bindings(session)
    assert bound["ch4-near-a"][:2] == (mh_a, "nearest_within_25m")
    assert bound["ch4-near-a"][2] == pytest.approx(4.0, abs=0.1)
    assert bound["strain-1"][:2] == (bridge, "explicit")
    assert bound["ch4-between"][0] is None
    assert mh_b != bound["ch4-far"][0]

    again = import_sensors(session, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 7)


def test_bad_sensor_rows_are_rejected(session: Session, tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.geojson",
        [
            sensor("ok", "ch4_pct_lel", "%lel", north(0)),
            sensor("u", "ch4_pct_lel", "ppm", north(0)),
            sensor("k", "warp_factor", "wf", north(0)),
            sensor("i", "pressure_mpa", "MPa", north(0), interval_s=-5),
            sensor("ok", "pressure_mpa", "MPa", north(0)),
        ],
    )
    report = import_sensors(session, path)
    reasons = {r.row: r.reason for r in report.rejected}
    assert reasons[2] == "unit 'ppm' does not fit ch4_pct_lel (expected '%LEL')"
    assert reasons[3].startswith("unknown indicator kind 'warp_factor'")
    assert reasons[4] == "interval_s must be a whole number of seconds > 0"
    assert reasons[5] == "duplicate external_id"
    assert not report.written
    partial = import_sensors(session, path, partial=True)
    assert partial.inserted == 1
    unit = session.execute(text("SELECT unit FROM sensor WHERE external_id = 'ok'")).scalar_one()
    assert unit == "%LEL"  # normalised spelling

    with pytest.raises(InvalidInput, match="lacks field"):
        import_sensors(
            session,
            write(
                tmp_path / "x.geojson", [{"type": "Feature", "geometry": None, "properties": {}}]
            ),
        )


# -- over HTTP (commits for real; cleaned up after) -------------------------------------------
@pytest.fixture
def live_sensor(engine: Engine) -> Iterator[dict[str, int]]:
    with engine.begin() as conn:
        ids = {
            "api-ch4": f.sensor(conn, lon=-71.1, lat=42.37, external_id="api-ch4"),
            "api-p": f.sensor(conn, "pressure_mpa", lon=-71.0, lat=42.0, external_id="api-p"),
        }
    yield ids
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM reading WHERE sensor_id = ANY(:ids)"), {"ids": list(ids.values())}
        )
        conn.execute(text("DELETE FROM sensor WHERE id = ANY(:ids)"), {"ids": list(ids.values())})


def test_post_readings_then_read_latest_and_buckets(
    client: TestClient, engine: Engine, live_sensor: dict[str, int]
) -> None:
    now = datetime.now(UTC)
    base = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(
        hours=1
    )  # on a 5-minute boundary, so the 5 m buckets split 0-4 / 5-9
    body = "\n".join(
        json.dumps(
            {"sensor": "api-ch4", "ts": (base + timedelta(minutes=m)).isoformat(), "value": m}
        )
        for m in range(10)
    )
    response = client.post(
        "/readings", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 10
    with engine.connect() as conn:  # committed before the answer
        n = conn.execute(
            text("SELECT count(*) FROM reading WHERE sensor_id = :s"), {"s": live_sensor["api-ch4"]}
        ).scalar_one()
    assert n == 10

    csv = f"sensor,ts,value\napi-p,{base.isoformat()},0.31\n"
    assert (
        client.post("/readings", content=csv, headers={"content-type": "text/csv"}).json()[
            "accepted"
        ]
        == 1
    )

    latest = client.get("/readings/latest", params={"kind": "ch4_pct_lel"}).json()
    mine = [f for f in latest["features"] if f["properties"]["sensor"] == "api-ch4"]
    assert mine[0]["properties"]["value"] == 9
    in_box = client.get("/readings/latest", params={"bbox": "-71.05,41.9,-70.9,42.1"}).json()
    assert {f["properties"]["sensor"] for f in in_box["features"]} >= {"api-p"}
    assert "api-ch4" not in {f["properties"]["sensor"] for f in in_box["features"]}

    sid = live_sensor["api-ch4"]
    params = {"from": base.isoformat(), "to": (base + timedelta(minutes=10)).isoformat()}
    raw = client.get(f"/sensors/{sid}/readings", params=params).json()["readings"]
    assert [r["value"] for r in raw] == list(range(10))
    five = client.get(f"/sensors/{sid}/readings", params={**params, "bucket": "5m"}).json()
    buckets = five["readings"]
    assert [(b["min"], b["max"], b["avg"], b["count"]) for b in buckets] == [
        (0, 4, 2.0, 5),
        (5, 9, 7.0, 5),
    ]


def test_readings_api_errors_are_4xx(client: TestClient, live_sensor: dict[str, int]) -> None:
    bad = client.post("/readings", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 422
    assert "not valid JSON" in bad.json()["detail"]
    all_bad = client.post(
        "/readings", json=[{"sensor": "nobody", "ts": "2026-01-01T00:00:00Z", "value": 1}]
    )
    assert all_bad.status_code == 422
    assert all_bad.json()["rejected"][0]["reason"] == "unknown sensor"
    sid = live_sensor["api-ch4"]
    naive = client.get(
        f"/sensors/{sid}/readings",
        params={"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"},
    )
    assert naive.status_code == 422
    backwards = client.get(
        f"/sensors/{sid}/readings",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert (
        client.get(
            f"/sensors/{sid}/readings",
            params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "bucket": "7m"},
        ).status_code
        == 422
    )
    assert client.get("/sensors/999999999").status_code == 404
    assert client.get("/readings/latest", params={"bbox": "a,b,c,d"}).status_code == 400
    assert client.get("/readings/latest", params={"kind": "warp"}).status_code == 422
