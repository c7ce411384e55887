"""A small city for the OGC impact tests (processes, impact_zones), in a database of its own.

Positions are metres east / north of (LON0, LAT0) in a local frame: a 300 mm, 1.6 MPa gas main
along y = 0 with a school 30 m north, a drain and a manhole beside the main, two water mains
with a pump station and a valve, a substation feeding a hospital, a chemical plant storing
chlorine and a flood zone 0.5 m deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from app import migrations
from app.db import create_db_engine
from app.scratch import scratch_database
from gis.frames import LocalFrame
from tests import factories as f

LON0, LAT0 = 8.6, 47.3
FRAME = LocalFrame(LON0, LAT0)
SOURCE = "ogc-impact-test"


METRIC = f.Metric(FRAME)
ll, line, pt = METRIC.ll, METRIC.line, METRIC.pt


@dataclass(frozen=True)
class City:
    url: str
    ids: dict[str, int]


def seed(url: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    engine = create_db_engine(url)
    try:
        with engine.begin() as c:

            def a(key: str, kind: str, wkt: str, **attrs: Any) -> None:
                ids[key] = f.asset(
                    c, kind, wkt, source=SOURCE, external_id=f"{SOURCE}-{key}", name=key, **attrs
                )

            a("main", "gas_pipe", line((0, 0), (300, 0)), diameter_mm=300, pressure_mpa=1.6)
            a("school", "school", pt(150, 30))
            a("drain", "drainage_pipe", line((0, 0), (0, 100)), diameter_mm=600)
            a("manhole", "manhole", pt(0, 3))
            a("w0", "water_pipe", line((1000, 0), (1200, 0)), diameter_mm=300)
            a("w1", "water_pipe", line((1200, 0), (1200, 200)), diameter_mm=150)
            a("pump", "pump_station", pt(980, 0))
            a("valve", "valve", pt(1010, 0), network="water")
            a("hospital", "hospital", pt(1230, 200))
            a("sub", "substation", pt(1100, -300))
            a("plant", "chemical_plant", pt(3000, 0), chemicals="chlorine", quantity_t=50)
            lon, lat = ll(2000, 500)
            a("flood", "flood_zone", f.square(lon, lat, 0.002, 0.001), depth_m=0.5)
            c.execute(
                text(
                    "INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, "
                    "delay_h, buffer_h) VALUES (:s, :h, 'physical', 'imported', 0, 24)"
                ),
                {"s": ids["sub"], "h": ids["hospital"]},
            )
    finally:
        engine.dispose()
    return ids


@pytest.fixture(scope="module")
def city(server_url: str, admin_url: str) -> Iterator[City]:
    """A database of the module's own, migrated, with the city committed; dropped afterwards."""
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        yield City(url, seed(url))


#: One execute request per process: (process id, inputs), with the asset keys resolved later.
def requests(ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        "gas_pipe_rupture": {"asset_id": ids["main"]},
        "gas_migration": {"asset_id": ids["main"], "reach_m": 500},
        "vapour_cloud_explosion": {"point": list(ll(150, 0)), "mass_kg": 1000},
        "jet_fire": {"asset_id": ids["main"]},
        "pool_fire": {"point": list(ll(3000, 0)), "pool_area_m2": 50},
        "toxic_release": {"asset_id": ids["plant"], "wind_dir_deg": 0, "period": "day"},
        "water_main_burst": {"asset_id": ids["w0"]},
        "flood": {"asset_id": ids["flood"]},
        "asset_failure": {"asset_id": ids["sub"]},
    }
