"""A real network: part of WNTR's KY4 (EPSG:3547, US survey feet) imported through the real
import path as water mains and junctions, with a pressure sensor on every junction. Which pipe
each binds to is checked against the EPANET topology (start / end node names), not geometry."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions, import_file
from app.sensors.registry import import_sensors

KY4 = Path(__file__).resolve().parents[2] / "data" / "ky4"


def test_pressure_sensors_on_ky4_junctions_bind_to_their_largest_pipe(
    session: Session, tmp_path: Path
) -> None:
    pipes = import_file(
        session,
        KY4 / "pipes.geojson",
        ImportOptions(kind="water_pipe", id_field="name", source="ky4"),
    )
    nodes = import_file(
        session,
        KY4 / "junctions.geojson",
        ImportOptions(kind="junction", id_field="name", source="ky4"),
    )
    assert (pipes.inserted, pipes.rejected, nodes.inserted, nodes.rejected) == (115, [], 92, [])
    assert pipes.crs.startswith("EPSG:3547")
    assert nodes.crs.startswith("EPSG:3547")
    stored = session.execute(
        text(
            "SELECT count(*), min(ST_SRID(geom)), min(ST_X(geom)), max(ST_X(geom)), "
            "min(ST_Y(geom)), max(ST_Y(geom)) FROM asset WHERE source = 'ky4' AND kind = 'junction'"
        )
    ).one()
    assert stored[:2] == (92, 4326)
    # Kentucky, WGS84 degrees (a file read as feet-as-degrees would land far outside)
    assert -90 < stored[2] < stored[3] < -80
    assert 36 < stored[4] < stored[5] < 40

    # the oracle: every junction's pipes from the EPANET topology
    frame = gpd.read_file(KY4 / "pipes.geojson")
    ids = dict(
        session.execute(
            text("SELECT external_id, id FROM asset WHERE source = 'ky4' AND kind = 'water_pipe'")
        ).all()
    )
    at_node: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for name, a, b, d in frame[
        ["name", "start_node_name", "end_node_name", "diameter_mm"]
    ].itertuples(index=False):
        for node in (a, b):
            at_node[node].append((-int(d), ids[name]))  # largest diameter, then lowest id
    expected = {f"p-{n}": min(pipes_here)[1] for n, pipes_here in at_node.items()}

    junctions = gpd.read_file(KY4 / "junctions.geojson")
    sensors = gpd.GeoDataFrame(
        {
            "external_id": "p-" + junctions["name"],
            "kind": "pressure_mpa",
            "unit": "MPa",
            "interval_s": 300,
        },
        geometry=junctions.geometry,
        crs=junctions.crs,  # EPSG:3547, as the network: the importer reprojects
    )
    path = tmp_path / "ky4_sensors.geojson"
    sensors.to_file(path, driver="GeoJSON")
    report = import_sensors(session, path)

    degree = {f"p-{n}": len(p) for n, p in at_node.items()}
    assert report.unbound == []
    assert report.bound_spatial == 92
    assert report.bound_junction == sum(1 for s in sensors.external_id if degree[s] >= 2) == 75
    got = {
        r.external_id: (r.asset_id, r.binding_rule, r.binding_distance_m)
        for r in session.execute(
            text(
                "SELECT external_id, asset_id, binding_rule, binding_distance_m FROM sensor "
                "WHERE external_id LIKE 'p-J-%'"
            )
        )
    }
    assert {s: g[0] for s, g in got.items()} == {s: expected[s] for s in got}
    rules = {s: g[1] for s, g in got.items()}
    assert {s for s, r in rules.items() if r == "nearest_within_25m"} == {
        s for s in got if degree[s] == 1
    }
    assert {s for s, r in rules.items() if r == "junction_max_diameter_within_25m"} == {
        s for s in got if degree[s] >= 2
    }
    assert max(g[2] for g in got.values()) == pytest.approx(0.0, abs=0.01)
    notes = {j.external_id: j for j in report.at_junctions}
    four = next(s for s in got if degree[s] == 4)
    assert notes[four].note.startswith(f"junction of 4 water_pipes (node {four[2:]}): bound to P-")
