"""Risk refresh on real PostGIS: a small city scored end to end, explained, incrementally
updated after an alarm, aggregated into H3 cells and admin areas, and served by the API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.risk import explain, refresh
from app.taxonomy.risk import COMPOSITE
from gis.frames import metres_per_degree
from tests import factories as f

# Far from the demo city, so other tests' data does not share cells or exposure.
LON, LAT = 10.0, 45.0
YEAR = 2026


def build_city(db: Any, source: str) -> dict[str, int]:
    """A school under an old cast-iron high-pressure main; a new PE main 5 km away."""
    ids = {
        "school": f.asset(db, "school", f"POINT({LON} {LAT})", source=source),
        # ≈ 200 m × 200 m block with 1,000 residents around the school.
        "block": f.asset(
            db, "population_cell", f.square(LON, LAT, 0.00127, 0.0009), source=source,
            population=1000,
        ),
        "district": f.asset(
            db, "admin_area", f.square(LON, LAT, 0.01, 0.01), source=source,
            admin_level="district",
        ),
        # 22 m north of the school, 1.6 MPa, 300 mm: PIR ≈ 37.8 m reaches it.
        "red": f.asset(
            db, "gas_pipe",
            f"LINESTRING({LON - 0.0005} {LAT + 0.0002},{LON + 0.0005} {LAT + 0.0002})",
            source=source, material="cast_iron", install_year=1950, pressure_mpa=1.6,
            pressure_class="high", diameter_mm=300, condition="poor",
        ),
        # Same cell as "red", moderate: steel, 1990, medium; no site in its small PIR.
        "peer": f.asset(
            db, "gas_pipe",
            f"LINESTRING({LON + 0.002} {LAT - 0.002},{LON + 0.003} {LAT - 0.002})", source=source,
            material="steel", install_year=1990, pressure_mpa=0.2, diameter_mm=150,
        ),
        "blue": f.asset(
            db, "gas_pipe",
            f"LINESTRING({LON + 0.05} {LAT + 0.05},{LON + 0.051} {LAT + 0.05})", source=source,
            material="PE", install_year=YEAR - 2, pressure_mpa=0.005, pressure_class="low",
            diameter_mm=110, condition="good",
        ),
    }  # fmt: skip
    return ids


def asset_rows(db: Any, ids: list[int]) -> dict[int, Any]:
    """Asset score rows with ``components``: the explanation the service rebuilds from the
    inputs stored with the score (no longer a stored JSON column per asset)."""
    rows = db.execute(
        text(
            "SELECT id, asset_id, cell_id, risk_class, score, norm, likelihood, consequence "
            "FROM risk_score WHERE scope = 'asset' AND asset_id = ANY(:ids)"
        ),
        {"ids": ids},
    ).all()
    components = explain.asset_components(db, ids)
    return {
        r.asset_id: SimpleNamespace(**r._mapping, components=components[r.asset_id]) for r in rows
    }


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    ids = build_city(session, f"test-risk-{secrets.token_hex(3)}")
    refresh.refresh_all(session, now_year=YEAR)
    return ids


def test_red_by_the_school_blue_in_the_empty_area(session: Session, city: dict[str, int]) -> None:
    rows = asset_rows(session, [city["red"], city["blue"]])
    red, blue = rows[city["red"]], rows[city["blue"]]
    assert (red.risk_class, red.score) == (1, 25.0)
    assert (blue.risk_class, blue.score) == (4, 3.0)
    # Exposure and population cells are not scored themselves.
    assert asset_rows(session, [city["school"], city["block"]]) == {}


def test_components_explain_the_score(session: Session, city: dict[str, int]) -> None:
    c = asset_rows(session, [city["red"]])[city["red"]].components
    f = c["likelihood"]["factors"]
    assert f["material"] == {"value": 3.0, "input": "cast_iron", "source": "material"}
    assert f["age"]["input"] == 76.0
    assert f["age"]["value"] == 2.0
    assert f["pressure"]["value"] == 1.5
    assert f["condition"]["value"] == 2.0
    product = 1.0
    for factor in f.values():
        product *= factor["value"]
    assert c["likelihood"]["index"] == pytest.approx(product, rel=1e-3)
    q = c["consequence"]
    assert q["radius_basis"] == "pir"
    assert q["radius_m"] == pytest.approx(0.0997 * 300 * 1.6**0.5, abs=0.2)
    assert q["sites"]["value"] == {"school": 1}
    assert q["sites"]["persons"] == 1000.0  # 500 default occupancy × vulnerability 2
    # Area-weighted: the ≈ 0.0105 km² zone inside a 0.04 km² block of 1,000 people.
    assert 200 < q["population"]["value"] < 320
    assert (q["severity"]["value"], q["exposure_level"], q["level"]) == (5, 5, 5)
    assert c["score"] == {"value": 25.0, "band": "R25", "norm": 1.0, "class": 1,
                          "source": "matrix"}  # fmt: skip


def add_alarm(db: Any, asset_id: int, level: int) -> int:
    """An asset-level alarm of a rule of its own (one open alarm per rule and asset), without
    position or creation event."""
    rule = f.rule(db, thresholds={"1": 50})
    return f.alarm(db, rule, asset_id=asset_id, level=level, lon=None, lat=None, event=False)


def cell_rows(db: Any) -> dict[tuple[str, str], Any]:
    rows = db.execute(
        text(
            "SELECT id, cell_id, plate, score, norm, risk_class, components FROM risk_score "
            "WHERE scope = 'cell'"
        )
    ).all()
    return {(r.cell_id, r.plate): r for r in rows}


def test_incremental_refresh_after_an_alarm_touches_only_that_asset_and_its_cells(
    session: Session, city: dict[str, int]
) -> None:
    ids = [city["red"], city["peer"], city["blue"]]
    before = asset_rows(session, ids)
    cells_before = cell_rows(session)
    alarm = add_alarm(session, city["blue"], level=1)

    report = refresh.refresh_alarms(session, [alarm])

    after = asset_rows(session, ids)
    assert report.assets == 1
    assert report.contexts == 0
    # Untouched rows are the very same rows (same id); the alarmed one was rewritten.
    assert after[city["red"]].id == before[city["red"]].id
    assert after[city["peer"]].id == before[city["peer"]].id
    blue = after[city["blue"]]
    assert blue.id != before[city["blue"]].id
    assert blue.components["likelihood"]["factors"]["alarm"] == {
        "value": 4.0, "input": 1, "source": "alarm",
    }  # fmt: skip
    assert blue.likelihood > before[city["blue"]].likelihood
    cells_after = cell_rows(session)
    blue_cell = blue.cell_id
    for key, row in cells_after.items():
        if key[0] == blue_cell:
            assert row.id != cells_before[key].id
        else:
            assert row.id == cells_before[key].id, key
    assert report.cells == 2  # lifeline + composite rows of one cell


def test_h3_cells_sum_and_max_their_assets(session: Session, city: dict[str, int]) -> None:
    assets = asset_rows(session, [city["red"], city["peer"], city["blue"]])
    cell = assets[city["red"]].cell_id
    assert h3.is_valid_cell(cell)
    assert h3.get_resolution(cell) == refresh.DEFAULT_H3_RES
    members = [
        r for r in session.execute(
            text("SELECT norm, risk_class FROM risk_score WHERE scope = 'asset' AND cell_id = :c"),
            {"c": cell},
        ).all()
    ]  # fmt: skip
    assert len(members) >= 2  # red and peer share the cell
    rows = cell_rows(session)
    for plate in ("lifeline", COMPOSITE):
        row = rows[(cell, plate)]
        assert row.norm == pytest.approx(max(m.norm for m in members))
        assert row.risk_class == min(m.risk_class for m in members) == 1
        assert row.components["assets"] == len(members)
        assert row.components["sum_norm"] == pytest.approx(sum(m.norm for m in members))
        assert row.components["worst_asset_id"] == city["red"]
        assert sum(row.components["by_class"].values()) == len(members)
    hexagon = session.execute(
        text("SELECT ST_Contains(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) FROM risk_score "
             "WHERE scope = 'cell' AND cell_id = :c AND plate = 'composite'"),
        {"c": cell, "x": h3.cell_to_latlng(cell)[1], "y": h3.cell_to_latlng(cell)[0]},
    ).scalar_one()  # fmt: skip
    assert hexagon is True
    area = session.execute(
        text("SELECT risk_class, components FROM risk_score WHERE scope = 'area' "
             "AND asset_id = :a AND plate = 'composite'"),
        {"a": city["district"]},
    ).one()  # fmt: skip
    assert area.risk_class == 1
    assert area.components["assets"] == 2  # red and peer; blue is 5 km away


# -- API (committed data, removed afterwards) ------------------------------------------------
@pytest.fixture
def committed_city(engine: Engine) -> Iterator[dict[str, int]]:
    source = f"test-risk-api-{secrets.token_hex(3)}"
    with engine.begin() as conn:
        ids = build_city(conn, source)
    try:
        yield ids
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM asset WHERE source = :s"), {"s": source})
            conn.execute(text("DELETE FROM risk_score WHERE scope = 'cell'"))


def test_api_refresh_explain_cells_areas(
    client: TestClient, committed_city: dict[str, int]
) -> None:
    r = client.post("/risk/refresh", json={})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "full"
    assert r.json()["assets"] >= 3

    body = client.get(f"/assets/{committed_city['red']}/risk").json()
    assert body["risk_class"] == 1
    assert body["class_colour"] == "red"
    assert body["method"] == "matrix"
    material = body["components"]["likelihood"]["factors"]["material"]
    assert material["value"] == 3.0
    assert "cast iron" in material["source"]
    assert "B31.8S" in body["components"]["consequence"]["radius_source"]

    assert client.get(f"/assets/{committed_city['school']}/risk").status_code == 404
    bbox = f"{LON - 0.01},{LAT - 0.01},{LON + 0.01},{LAT + 0.01}"
    cells = client.get("/risk/cells", params={"plate": "lifeline", "bbox": bbox})
    assert cells.status_code == 200
    features = cells.json()["features"]
    assert features
    assert all(f["properties"]["plate"] == "lifeline" for f in features)
    assert features[0]["geometry"]["type"] == "Polygon"
    assert client.get("/risk/cells", params={"plate": "nope"}).status_code in (400, 422)

    areas = client.get("/risk/areas").json()
    mine = [a for a in areas if a["area_id"] == committed_city["district"]]
    assert mine
    assert mine[0]["risk_class"] == 1
    cells_in = client.get(f"/risk/areas/{committed_city['district']}/cells").json()["features"]
    assert cells_in
    drill = client.get(f"/risk/cells/{cells_in[0]['id']}/assets").json()
    assert {d["asset_id"] for d in drill} <= {committed_city["red"], committed_city["peer"]}

    alarm_free = client.post("/risk/refresh", json={"asset_ids": [committed_city["blue"]]})
    assert alarm_free.json()["mode"] == "incremental"
    assert alarm_free.json()["assets"] == 1


def test_closed_false_alarms_are_not_recent_anomalies(
    session: Session, city: dict[str, int]
) -> None:
    """Regression: once closed, a false alarm's state is 'closed' and it counted as an anomaly."""
    real = add_alarm(session, city["blue"], level=2)
    false = add_alarm(session, city["blue"], level=2)
    session.execute(
        text(
            "INSERT INTO alarm_event (alarm_id, actor, from_state, to_state) VALUES "
            "(:r, 't', 'raised', 'verified'), (:f, 't', 'raised', 'false_alarm')"
        ),
        {"r": real, "f": false},
    )
    session.execute(
        text("UPDATE alarm SET state = 'closed' WHERE id = ANY(:ids)"), {"ids": [real, false]}
    )
    refresh.refresh_alarms(session, [real, false])
    blue = asset_rows(session, [city["blue"]])[city["blue"]]
    assert blue.components["likelihood"]["factors"]["recent"]["input"] == 1


def aggregates(db: Any) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Every cell and area row, keyed by scope, key and plate, without its row id."""
    rows = db.execute(
        text(
            "SELECT scope, coalesce(cell_id, asset_id::text) AS key, plate, method, likelihood, "
            "consequence, score, risk_class, norm, components, ST_AsText(geom) AS geom "
            "FROM risk_score WHERE scope IN ('cell', 'area')"
        )
    ).all()
    return {(r.scope, r.key, r.plate): tuple(r[3:]) for r in rows}


def test_incremental_refresh_after_an_alarm_equals_a_full_refresh(
    session: Session, city: dict[str, int]
) -> None:
    """Cells and areas after one alarm's incremental refresh are exactly a full refresh's:
    same rows, same floats (sums in numeric, so the order rows are read in cannot matter)."""
    # More assets in the red main's cell and district, so sums and the worst asset matter.
    source = session.execute(
        text("SELECT source FROM asset WHERE id = :a"), {"a": city["red"]}
    ).scalar_one()
    for i in range(6):
        y = LAT - 0.001 * (i + 1)
        f.asset(
            session, "water_pipe", f"LINESTRING({LON - 0.001} {y},{LON + 0.001} {y})",
            source=source, material=("cast_iron", "PE", "steel")[i % 3], install_year=1940 + 10 * i,
            condition=("poor", "good")[i % 2],
        )  # fmt: skip
    refresh.refresh_all(session)
    for asset, level in ((city["peer"], 1), (city["red"], 4), (city["blue"], 2)):
        alarm = add_alarm(session, asset, level=level)
        refresh.refresh_alarms(session, [alarm])
        incremental = aggregates(session)
        refresh.refresh_all(session)
        full = aggregates(session)
        assert incremental == full


def test_population_shares_are_exact_inside_and_across_cell_edges(session: Session) -> None:
    """The closed-form zone areas (inside a cell) and the rectangle clips (across an edge)
    equal a plain buffer ∩ cell overlay in the asset's local frame."""
    source = f"test-risk-pop-{secrets.token_hex(3)}"
    lon, lat = 12.0, 45.0
    cells = [
        f.asset(session, "population_cell", f.square(lon + dx, lat, 0.0025, 0.002),
            source=source, population=4000)
        for dx in (0.0, 0.005)
    ]  # fmt: skip
    ids = [
        f.asset(session, "hydrant", f"POINT({lon} {lat})", source=source),  # inside
        f.asset(session, "water_pipe",
            f"LINESTRING({lon - 0.001} {lat},{lon + 0.0005} {lat + 0.0004})",
            source=source),  # inside
        f.asset(session, "water_pipe",
            f"LINESTRING({lon + 0.0022} {lat},{lon + 0.0029} {lat + 0.001})",
            source=source),  # across
        f.asset(session, "gas_pipe",
            f"LINESTRING({lon + 0.002} {lat + 0.0018},{lon + 0.002} {lat + 0.0019},"
            f"{lon + 0.0031} {lat + 0.0019})", source=source, pressure_mpa=0.4, diameter_mm=300),
    ]  # fmt: skip
    refresh.refresh_assets(session, ids, recontext=True)
    kx, ky = metres_per_degree(np.array([lat]))
    rows = session.execute(
        text(
            "WITH p AS (SELECT ST_PointOnSurface(geom) AS pt, geom, id FROM asset "
            "WHERE id = ANY(:ids)), "
            "f AS (SELECT p.id, r.population, r.radius_m, "
            "  :kx * cos(radians(ST_Y(p.pt))) / cos(radians(:lat)) AS kx, ST_X(p.pt) AS x0, "
            "  ST_Y(p.pt) AS y0, p.geom FROM p JOIN risk_score r ON r.asset_id = p.id "
            "  AND r.scope = 'asset') "
            "SELECT f.id, f.population, sum(4000 * ST_Area(ST_Intersection("
            "  ST_Buffer(ST_Affine(f.geom, f.kx, 0, 0, :ky, -f.kx * f.x0, -:ky * f.y0), "
            "            f.radius_m, 'quad_segs=4'), "
            "  ST_Affine(c.geom, f.kx, 0, 0, :ky, -f.kx * f.x0, -:ky * f.y0))) / "
            "  ST_Area(ST_Affine(c.geom, f.kx, 0, 0, :ky, -f.kx * f.x0, -:ky * f.y0))) "
            "  AS expected FROM f, asset c WHERE c.id = ANY(:cells) GROUP BY f.id, f.population"
        ),
        {"ids": ids, "cells": cells, "kx": float(kx[0]), "ky": float(ky[0]), "lat": lat},
    ).all()
    assert len(rows) == 4
    for r in rows:
        assert r.expected > 0
        assert r.population == pytest.approx(r.expected, rel=2e-4), r.id


def test_binary_copy_keeps_any_text_and_nulls(session: Session) -> None:
    """Asset rows go in by binary COPY: text with tabs, backslashes, newlines and non-ASCII,
    unknown numbers (NULL, not NaN) and several area ids come back as they went in."""
    source = f"test-risk-copy-{secrets.token_hex(3)}"
    lon, lat = 14.0, 45.0
    areas = [
        f.asset(session, "admin_area", f.square(lon, lat, 0.01, 0.01), source=source)
        for _ in range(2)
    ]
    odd = "cast\tiron \\ 铸铁\nold"
    asset = f.asset(
        session, "water_pipe", f"POINT({lon} {lat})", source=source, material=odd,
        condition="fair\\", install_year="unknown",
    )  # fmt: skip
    refresh.refresh_assets(session, [asset], recontext=True)
    row = session.execute(
        text(
            "SELECT area_ids, flood_rp_yr, landslide, radius_basis, sites, inputs "
            "FROM risk_score WHERE scope = 'asset' AND asset_id = :a"
        ),
        {"a": asset},
    ).one()
    assert row.area_ids == sorted(areas)
    assert (row.flood_rp_yr, row.landslide, row.sites) == (None, None, {})
    assert row.radius_basis == "radius:water_pipe"
    assert row.inputs == ["water_pipe", None, odd, "fair\\", None, "", 0, 0]
    factors = explain.asset_components(session, [asset])[asset]["likelihood"]["factors"]
    assert factors["material"]["input"] == odd
    assert factors["age"]["input"] is None


def test_population_of_zones_across_cell_corners_equals_geos_clips(session: Session) -> None:
    """Points and straight segments whose zones cross cell edges and corners (their shares are
    clipped in numpy, gis.zones) get what ST_ClipByBox2D of their ST_Buffer gives, in the same
    local frame, to float noise; a three-point line across an edge stays in SQL."""
    source = f"test-risk-corner-{secrets.token_hex(3)}"
    lon, lat = 16.0, 45.0
    cells = [
        f.asset(session, "population_cell",
            f"POLYGON(({lon + i * 0.004} {lat + j * 0.003},{lon + (i + 1) * 0.004} "
            f"{lat + j * 0.003},{lon + (i + 1) * 0.004} {lat + (j + 1) * 0.003},"
            f"{lon + i * 0.004} {lat + (j + 1) * 0.003},{lon + i * 0.004} {lat + j * 0.003}))",
            source=source, population=1000 * (4 + i + 2 * j))
        for i in (-1, 0) for j in (-1, 0)
    ]  # fmt: skip
    ids = [
        f.asset(session, "hydrant", f"POINT({lon + 0.0001} {lat - 0.00005})", source=source),
        f.asset(session, "water_pipe",
            f"LINESTRING({lon - 0.0006} {lat - 0.0003},{lon + 0.0004} {lat + 0.0002})",
            source=source),
        f.asset(session, "gas_pipe",
            f"LINESTRING({lon + 0.0003} {lat + 0.0003},{lon - 0.0002} {lat - 0.0001})",
            source=source, pressure_mpa=0.8, diameter_mm=500),
        f.asset(session, "water_pipe",
            f"LINESTRING({lon - 0.0005} {lat + 0.001},{lon} {lat + 0.0011},"
            f"{lon + 0.0005} {lat + 0.001})", source=source),
    ]  # fmt: skip
    refresh.refresh_assets(session, ids, recontext=True)
    got = {
        r.asset_id: (r.population, r.radius_m)
        for r in session.execute(
            text(
                "SELECT asset_id, population, radius_m FROM risk_score "
                "WHERE scope = 'asset' AND asset_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
    }
    for asset in ids:
        lon0, lat0 = session.execute(
            text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM asset "
                 "WHERE id = :a) s"),
            {"a": asset},
        ).one()  # fmt: skip
        kx, ky = (float(v[0]) for v in metres_per_degree(np.array([lat0])))
        population, radius = got[asset]
        expected = session.execute(
            text(
                "SELECT sum((c.attributes->>'population')::float * ST_Area(ST_ClipByBox2D("
                "  ST_Affine(ST_Buffer(ST_Affine(a.geom, :kx, 0, 0, :ky, -:kx * :x0, -:ky * :y0),"
                "                      :r, 'quad_segs=4'), 1 / :kx, 0, 0, 1 / :ky, :x0, :y0),"
                "  c.geom::box2d)) / ST_Area(c.geom)) "
                "FROM asset a, asset c WHERE a.id = :a AND c.id = ANY(:cells)"
            ),
            {"a": asset, "cells": cells, "kx": kx, "ky": ky, "x0": lon0, "y0": lat0, "r": radius},
        ).scalar_one()
        assert expected > 0
        assert population == pytest.approx(expected, rel=1e-9), asset


def test_network_junctions_are_not_scored(session: Session, city: dict[str, int]) -> None:
    """A junction stands for its pipes: neither a full nor an asset refresh scores it."""
    node = f.asset(
        session,
        "junction",
        f"POINT({LON - 0.0005} {LAT + 0.0002})",  # the red main's west end
        network="gas",
        elevation_m=30.0,
    )
    refresh.refresh_all(session, now_year=YEAR)
    assert asset_rows(session, [node]) == {}
    report = refresh.refresh_assets(session, [node, city["red"]])
    assert report.assets == 1
    assert list(asset_rows(session, [node, city["red"]])) == [city["red"]]
