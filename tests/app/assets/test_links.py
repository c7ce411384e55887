"""Derived coupling links: each spatial rule on known geometry, in real PostGIS."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets import links
from tests import factories as f

# Metres per degree of latitude (WGS84, mid-latitudes) for placing test points.
M_PER_DEG_LAT = 111_000.0


def add(session: Session, eid: str, kind: str, wkt: str) -> int:
    """An asset of this test's source, with a readable external id."""
    return f.asset(session, kind, wkt, source="links-test", external_id=eid)


def pairs(session: Session, rule: str) -> set[tuple[int, int]]:
    rows = session.execute(
        text("SELECT from_asset_id, to_asset_id FROM asset_link WHERE rule = :r"), {"r": rule}
    )
    return {(a, b) for a, b in rows}


def test_rules_link_what_they_should_and_nothing_else(session: Session) -> None:
    session.execute(text("DELETE FROM asset_link"))
    lat = 42.37
    gas = add(session, "gas", "gas_pipe", f"LINESTRING(-71.110 {lat}, -71.100 {lat})")
    near = add(session, "mh-near", "manhole", f"POINT(-71.105 {lat + 6 / M_PER_DEG_LAT})")
    far = add(session, "mh-far", "manhole", f"POINT(-71.105 {lat + 20 / M_PER_DEG_LAT})")
    sewer = add(
        session,
        "sewer",
        "drainage_pipe",
        f"LINESTRING(-71.110 {lat - 3 / M_PER_DEG_LAT}, -71.100 {lat - 3 / M_PER_DEG_LAT})",
    )
    bridge = add(
        session,
        "bridge",
        "bridge",
        f"POLYGON((-71.104 {lat - 0.0005}, -71.103 {lat - 0.0005}, -71.103 {lat + 0.0005}, "
        f"-71.104 {lat + 0.0005}, -71.104 {lat - 0.0005}))",
    )
    zone = add(
        session,
        "zone",
        "flood_zone",
        "POLYGON((-71.2 42.0, -71.19 42.0, -71.19 42.01, -71.2 42.01, -71.2 42.0))",
    )
    school_in = add(session, "school-in", "school", "POINT(-71.195 42.005)")
    add(session, "school-out", "school", "POINT(-71.0 42.005)")
    manual = session.execute(
        text(
            "INSERT INTO asset_link (from_asset_id, to_asset_id, link_type) "
            "VALUES (:a, :b, 'logical') RETURNING id"
        ),
        {"a": school_in, "b": gas},
    ).scalar_one()

    made = links.rebuild(session)

    assert pairs(session, "gas_pipe_near_manhole_10m") == {(gas, near)}
    assert far not in {b for _, b in pairs(session, "gas_pipe_near_manhole_10m")}
    assert pairs(session, "gas_pipe_near_drainage_5m") == {(gas, sewer)}
    assert pairs(session, "bridge_carries_pipe") == {(bridge, gas), (bridge, sewer)}
    assert pairs(session, "flood_zone_contains") == {(zone, school_in)}
    assert made["gas_pipe_near_manhole_10m"] == 1
    distance = session.execute(
        text("SELECT distance_m FROM asset_link WHERE rule = 'gas_pipe_near_manhole_10m'")
    ).scalar_one()
    assert 5.5 < distance < 6.5
    # Hand-made links survive a rebuild, and a second rebuild gives the same set.
    assert (
        session.execute(
            text("SELECT count(*) FROM asset_link WHERE id = :i"), {"i": manual}
        ).scalar_one()
        == 1
    )
    assert links.rebuild(session) == made
