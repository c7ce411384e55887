"""A small city for the impact panel's browser test (its own scratch database).

A district in a local metric frame around Hefei (metres east / north of (117.28, 31.86)):

- a 300 mm, 0.4 MPa gas main along y = 0 from x = 0 to 400 m;
- drains: 200 m north from (100, 3), then 200 m east; manholes at the three ends and corners;
- a school 40 m north of the main, population cells around it (100 m squares);
- a substation 25 m south-west of the leak, feeding a pump station (1 h buffer) and a hospital
  (6 h buffer): what a blast at the manhole knocks out, and what follows;
- a methane sensor in the manhole beside the main, and its open level-I alarm.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from gis.frames import LocalFrame
from tests import factories as f

LON0, LAT0 = 117.28, 31.86
FRAME = LocalFrame(LON0, LAT0)
SOURCE = "impact-map-test"
#: Where the leak is: the manhole beside the main [m in the frame].
LEAK_XY = (100.0, 3.0)


METRIC = f.Metric(FRAME)
ll, line, pt = METRIC.ll, METRIC.line, METRIC.pt


@dataclass(frozen=True)
class City:
    ids: dict[str, int]

    @property
    def alarm(self) -> int:
        return self.ids["alarm"]


def build(conn: Connection) -> City:
    """Write the city (the caller commits)."""
    ids: dict[str, int] = {}

    def a(key: str, kind: str, wkt: str, name: str, **attrs: object) -> None:
        ids[key] = f.asset(
            conn, kind, wkt, source=SOURCE, external_id=f"{SOURCE}-{key}", name=name, **attrs
        )

    a("main", "gas_pipe", line((0, 0), (400, 0)), "中压燃气管 G-1", diameter_mm=300,
      pressure_mpa=0.4, material="steel")  # fmt: skip
    a("d1", "drainage_pipe", line((100, 3), (100, 200)), "雨水管 D-1", diameter_mm=800)
    a("d2", "drainage_pipe", line((100, 200), (300, 200)), "雨水管 D-2", diameter_mm=800)
    a("mh1", "manhole", pt(*LEAK_XY), "检查井 M-1")
    a("mh2", "manhole", pt(100, 200), "检查井 M-2")
    a("mh3", "manhole", pt(300, 200), "检查井 M-3")
    a("school", "school", pt(150, 40), "第一中学 No.1 Middle School", capacity=1200)
    for i in range(3):
        for j in range(3):
            lon, lat = ll(50 + 100 * i, -50 + 100 * j)
            a(f"pop{i}{j}", "population_cell", f.square(lon, lat, 0.00053, 0.00045),
              f"人口 {i}{j}", population=300 + 100 * (i + j))  # fmt: skip
    a("sub", "substation", pt(80, -15), "城东变电站 East substation")
    a("pump", "pump_station", pt(250, -120), "二号泵站 Pump station 2")
    a("hospital", "hospital", pt(320, -160), "市第二医院 No.2 Hospital", beds=300)
    conn.execute(
        text(
            "INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, delay_h, "
            "buffer_h) VALUES (:s, :p, 'physical', 'imported', 0, 1), "
            "(:s, :h, 'physical', 'imported', 0, 6)"
        ),
        {"s": ids["sub"], "p": ids["pump"], "h": ids["hospital"]},
    )
    rule = f.rule(conn, indicator="ch4_pct_lel", title="Methane in a manhole", code="map-ch4-mh")
    lon, lat = ll(*LEAK_XY)
    sensor = f.sensor(conn, "ch4_pct_lel", lon=lon, lat=lat, asset_id=ids["mh1"],
                      external_id="mh1-ch4")  # fmt: skip
    ids["sensor"] = sensor
    ids["alarm"] = f.alarm(
        conn,
        rule,
        level=1,
        sensor_id=sensor,
        asset_id=ids["mh1"],
        lon=lon,
        lat=lat,
        title="甲烷 62 %LEL Methane",
        peak_value=62,
    )
    return City(ids)
