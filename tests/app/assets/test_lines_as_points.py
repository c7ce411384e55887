"""A point kind given a short line (an EPANET valve link) takes its midpoint, counted and noted;
a longer line is refused saying what was given and what was expected. Real PostGIS."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions, import_file
from app.errors import InvalidInput
from tests import factories as f

LON0, LAT0 = -71.1, 42.37
M_PER_DEG_LAT = 111_050.0  # WGS84 meridional degree at 42.37°N (±10 m/°: enough here)
M_PER_DEG_LON = 111_412.0 * math.cos(math.radians(LAT0))


def at(east_m: float, north_m: float = 0.0) -> list[float]:
    return [LON0 + east_m / M_PER_DEG_LON, LAT0 + north_m / M_PER_DEG_LAT]


def valves(path: Path, lines: dict[str, list[list[float]]], crs: str | None = None) -> Path:
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {"name": name, "network": "water"},
            }
            for name, coords in lines.items()
        ],
    }
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def stored(session: Session, source: str) -> dict[str, tuple[str, float, float]]:
    rows = session.execute(
        text(
            "SELECT external_id, GeometryType(geom) AS family, ST_X(ST_PointOnSurface(geom)) AS x, "
            "ST_Y(ST_PointOnSurface(geom)) AS y "
            "FROM asset WHERE source = :s"
        ),
        {"s": source},
    )
    return {r.external_id: (r.family, r.x, r.y) for r in rows}


def test_short_valve_lines_become_their_midpoints(session: Session, tmp_path: Path) -> None:
    path = valves(
        tmp_path / "valves.geojson",
        {
            "V-1": [at(0), at(6)],  # a 6 m EPANET valve link
            "V-2": [at(100), at(110), at(110, 10)],  # bent, 20 m: halfway is the corner
        },
        crs="EPSG:4326",
    )
    report = import_file(session, path, ImportOptions(kind="valve", id_field="name", source="vl"))
    assert (report.inserted, report.rejected, report.lines_as_points) == (2, [], 2)
    assert any(
        n.startswith("2 line(s) shorter than 50 m stored as their midpoints: valve is a point kind")
        for n in report.notes
    ), report.notes
    got = stored(session, "vl")
    assert got["V-1"][0] == "POINT"
    assert got["V-1"][1:] == pytest.approx(tuple(at(3)), abs=1e-7)  # 1e-7° ≈ 1 cm
    assert got["V-2"][1:] == pytest.approx(tuple(at(110)), abs=1e-7)
    again = import_file(session, path, ImportOptions(kind="valve", id_field="name", source="vl"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


def test_a_long_line_is_refused_saying_its_length_and_the_limit(
    session: Session, tmp_path: Path
) -> None:
    path = valves(
        tmp_path / "mixed.geojson",
        {"V-ok": [at(0), at(5)], "P-not-a-valve": [at(0), at(120)]},
        crs="EPSG:4326",
    )
    options = ImportOptions(kind="valve", id_field="name", source="vl2")
    report = import_file(session, path, options)
    assert not report.written
    ((row, eid, reason),) = [(r.row, r.external_id, r.reason) for r in report.rejected]
    assert (row, eid) == (2, "P-not-a-valve")
    assert reason.startswith("LineString of 120.")
    assert reason.endswith(
        " m, but valve takes point geometries (a line shorter than 50 m is taken as its "
        "midpoint; see max_point_line_m)"
    )
    # the limit is a parameter
    wider = import_file(
        session,
        path,
        ImportOptions(kind="valve", id_field="name", source="vl2", max_point_line_m=200),
    )
    assert (wider.inserted, wider.lines_as_points) == (2, 2)
    with pytest.raises(InvalidInput, match=r"max_point_line_m was 0 but must be > 0 \(metres\)"):
        import_file(session, path, ImportOptions(kind="valve", source="vl2", max_point_line_m=0))


def test_a_line_kind_keeps_its_lines_and_sites_take_midpoints_too(
    session: Session, tmp_path: Path
) -> None:
    short = {"X-1": [at(0), at(4)]}
    pipes = import_file(
        session,
        valves(tmp_path / "p.geojson", short, crs="EPSG:4326"),
        ImportOptions(kind="water_pipe", id_field="name", source="vl3"),
    )
    assert (pipes.inserted, pipes.lines_as_points) == (1, 0)
    assert stored(session, "vl3")["X-1"][0] == "LINESTRING"
    # a point-or-polygon kind (a pump station drawn as an EPANET pump link) takes the midpoint
    pumps = import_file(
        session,
        valves(tmp_path / "pump.geojson", short, crs="EPSG:4326"),
        ImportOptions(kind="pump_station", id_field="name", source="vl4"),
    )
    assert (pumps.inserted, pumps.lines_as_points) == (1, 1)
    assert stored(session, "vl4")["X-1"][0] == "POINT"


def test_http_import_takes_the_limit_as_a_form_field(client: TestClient, tmp_path: Path) -> None:
    source = f.uid("vl-http")
    path = valves(tmp_path / "v.geojson", {"V-9": [at(0), at(80)]}, crs="EPSG:4326")
    common = {"kind": "valve", "id_field": "name", "source": source}
    refused = client.post(
        "/assets/import", files={"file": path.open("rb")}, data={**common, "dry_run": "true"}
    )
    assert refused.status_code == 422
    assert "LineString of 80." in refused.json()["rejected"][0]["reason"]
    taken = client.post(
        "/assets/import",
        files={"file": path.open("rb")},
        data={**common, "dry_run": "true", "max_point_line_m": "100"},
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["lines_as_points"] == 1
