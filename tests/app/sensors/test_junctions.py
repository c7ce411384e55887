"""Sensors at pipe junctions: a node shared by 2 or 3 pipes binds deterministically to one of
them (largest diameter, then lowest id); a tie between pipes that do not meet stays ambiguous;
a ``junction`` asset is imported but watched by no indicator. Real PostGIS."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.sensors.registry import SensorImportReport, import_sensors
from tests import factories as f

LON0, LAT0 = -71.1, 42.37
M_PER_DEG_LAT = 111_132.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
JUNCTION_RULE = "junction_max_diameter_within_25m"


def at(east_m: float, north_m: float) -> tuple[float, float]:
    """Lon, lat ``east_m`` east and ``north_m`` north of the test origin."""
    return LON0 + east_m / M_PER_DEG_LON, LAT0 + north_m / M_PER_DEG_LAT


def wkt_line(*points_m: tuple[float, float]) -> str:
    return "LINESTRING(" + ", ".join("{} {}".format(*at(*p)) for p in points_m) + ")"


def pipe(
    session: Session, *points_m: tuple[float, float], kind: str = "water_pipe", **attrs: Any
) -> int:
    return f.asset(session, kind, wkt_line(*points_m), source="jt", **attrs)


def import_at(
    session: Session,
    tmp_path: Path,
    spots: dict[str, tuple[float, float]],
    kind: str = "pressure_mpa",
) -> SensorImportReport:
    unit = {"pressure_mpa": "MPa", "flow_m3h": "m3/h"}[kind]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(at(*xy))},
            "properties": {"external_id": eid, "kind": kind, "unit": unit},
        }
        for eid, xy in spots.items()
    ]
    path = tmp_path / "sensors.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return import_sensors(session, path)


def bound(session: Session, eid: str) -> tuple[int | None, str | None]:
    row = session.execute(
        text("SELECT asset_id, binding_rule FROM sensor WHERE external_id = :e"), {"e": eid}
    ).one()
    return row.asset_id, row.binding_rule


def test_node_of_two_pipes_binds_to_the_larger(session: Session, tmp_path: Path) -> None:
    small = pipe(session, (-100, 0), (0, 0), diameter_mm=150)
    large = pipe(session, (0, 0), (80, 60), diameter_mm=300)
    report = import_at(session, tmp_path, {"p-node2": (0, 0)})
    assert report.unbound == []
    assert (report.bound_spatial, report.bound_junction) == (1, 1)
    assert bound(session, "p-node2") == (large, JUNCTION_RULE)
    (note,) = report.at_junctions
    assert (note.external_id, note.asset_id, note.pipes) == ("p-node2", large, 2)
    assert note.note.startswith("junction of 2 water_pipes: bound to ")
    assert "300 mm; the largest diameter, then the lowest id" in note.note
    assert small != large


def test_node_of_three_pipes_equal_diameters_take_the_lowest_id(
    session: Session, tmp_path: Path
) -> None:
    first = pipe(session, (-100, 0), (0, 0), diameter_mm=200)
    second = pipe(session, (0, 0), (100, 0), diameter_mm=200)
    pipe(session, (0, 0), (0, 100), diameter_mm=100)
    undiametered = pipe(session, (0, -100), (0, 0))  # no diameter: counts as smallest
    assert first < second
    report = import_at(session, tmp_path, {"p-node4": (0, 0)})
    assert bound(session, "p-node4") == (first, JUNCTION_RULE)
    assert report.at_junctions[0].pipes == 4
    assert undiametered != first


def test_junction_asset_at_the_node_is_named_but_the_pipe_is_bound(
    session: Session, tmp_path: Path
) -> None:
    pipe(session, (-100, 0), (0, 0), diameter_mm=150)
    pipe(session, (0, 0), (100, 0), diameter_mm=150)
    large = pipe(session, (0, 0), (0, 100), diameter_mm=250)
    node = f.asset(
        session,
        "junction",
        "POINT({} {})".format(*at(0, 0)),
        source="jt",
        external_id="J-7",
        network="water",
        elevation_m=12.5,
    )
    f.asset(session, "junction", "POINT({} {})".format(*at(500, 500)), source="jt")
    report = import_at(session, tmp_path, {"p-node3": (0, 0), "p-lone-node": (500, 500)})
    assert bound(session, "p-node3") == (large, JUNCTION_RULE)
    assert report.at_junctions[0].note.startswith("junction of 3 water_pipes (node J-7): bound")
    assert node != large
    # a junction alone is watched by no indicator: a pressure sensor there finds nothing
    assert [(u.external_id, u.reason) for u in report.unbound] == [
        ("p-lone-node", "no compatible asset within 25 m")
    ]


def test_branch_ending_on_an_unsplit_main_is_a_junction(session: Session, tmp_path: Path) -> None:
    main = pipe(session, (-200, 0), (200, 0), diameter_mm=400)
    pipe(session, (0, 0), (0, 150), diameter_mm=100)
    report = import_at(session, tmp_path, {"p-tee": (0, 0)})
    assert bound(session, "p-tee") == (main, JUNCTION_RULE)
    assert report.bound_junction == 1


def test_flow_sensor_at_a_node_follows_the_same_rule(session: Session, tmp_path: Path) -> None:
    pipe(session, (-100, 0), (0, 0), diameter_mm=150)
    large = pipe(session, (0, 0), (100, 0), diameter_mm=200)
    import_at(session, tmp_path, {"q-node": (0, 0)}, kind="flow_m3h")
    assert bound(session, "q-node") == (large, JUNCTION_RULE)


@pytest.mark.parametrize(
    ("case", "lines", "spot"),
    [
        # two mains crossing (at different depths): no end at the crossing
        ("crossing", [((-100, 0), (100, 0)), ((0, -100), (0, 100))], (0, 0)),
        # two parallel mains 10 m apart, the sensor halfway
        ("parallel", [((-100, 0), (100, 0)), ((-100, 10), (100, 10))], (0, 5)),
        # two pipes ending at one node, the sensor 20 m inside their angle: nearer to the
        # pipes' sides than to the node
        ("inside-angle", [((0, 0), (200, 0)), ((0, 0), (0, 200))], (20, 20)),
    ],
)
def test_pipes_that_do_not_meet_stay_ambiguous(
    session: Session,
    tmp_path: Path,
    case: str,
    lines: list[tuple[tuple[float, float], tuple[float, float]]],
    spot: tuple[float, float],
) -> None:
    for n, ends in enumerate(lines):
        pipe(session, *ends, diameter_mm=100 + n)
    report = import_at(session, tmp_path, {f"p-{case}": spot})
    assert report.bound_junction == 0
    (issue,) = report.unbound
    assert issue.reason.startswith("ambiguous: two compatible assets at"), issue.reason
    assert bound(session, f"p-{case}") == (None, None)


def test_pipes_of_two_networks_at_one_point_stay_ambiguous(
    session: Session, tmp_path: Path
) -> None:
    pipe(session, (-100, 0), (0, 0), diameter_mm=150)
    pipe(session, (0, 0), (100, 0), kind="gas_pipe", diameter_mm=150)
    report = import_at(session, tmp_path, {"p-two-nets": (0, 0)})
    assert report.unbound[0].reason.startswith("ambiguous: two compatible assets at 0.0 m")
    assert bound(session, "p-two-nets") == (None, None)


def test_a_clear_nearest_pipe_is_bound_as_before(session: Session, tmp_path: Path) -> None:
    near = pipe(session, (-100, 0), (100, 0), diameter_mm=100)
    pipe(session, (-100, 8), (100, 8), diameter_mm=600)
    report = import_at(session, tmp_path, {"p-clear": (0, 2)})
    assert bound(session, "p-clear") == (near, "nearest_within_25m")
    assert (report.bound_spatial, report.bound_junction, report.unbound) == (1, 0, [])
