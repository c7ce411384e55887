"""A small hand-made water network for the suspected-event tests, drawn in metres.

A 3 × 3 street grid of 200 m blocks (12 water mains, 0 … 400 m east and north), pressure
sensors on it with an hour of normal readings (0.40 MPa), and a far main 3 km away. The burst
is on the main from (200, 200) to (400, 200): the sensors beside it drop most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.sensors import partitions
from gis.frames import LocalFrame
from tests import factories as f

NORMAL_MPA = 0.40
TARGET = ((200.0, 200.0), (400.0, 200.0))
#: Alarmed sensors beside the target main, and how low they went [MPa].
BURST = {"A": ((250.0, 208.0), 0.20), "B": ((330.0, 193.0), 0.24), "C": ((395.0, 215.0), 0.33)}
#: Quiet sensors of the same network (they report, they do not alarm).
QUIET = {"Q1": (100.0, 5.0), "Q2": (5.0, 300.0), "Q3": (100.0, 395.0), "Q4": (395.0, 100.0)}
FAR = ((3000.0, 3000.0), (3200.0, 3000.0))


@dataclass
class City:
    frame: LocalFrame
    t0: datetime  # the burst's first onset (data time)
    pipes: dict[tuple[tuple[float, float], tuple[float, float]], int] = field(default_factory=dict)
    sensors: dict[str, int] = field(default_factory=dict)
    xy: dict[str, tuple[float, float]] = field(default_factory=dict)
    rule: tuple[int, str] = (0, "")

    def ll(self, x: float, y: float) -> tuple[float, float]:
        return f.Metric(self.frame).ll(x, y)

    @property
    def target(self) -> int:
        return self.pipes[TARGET]


def _segments() -> list[tuple[tuple[float, float], tuple[float, float]]]:
    out = []
    for k in (0.0, 200.0, 400.0):
        for a in (0.0, 200.0):
            out.append(((a, k), (a + 200.0, k)))  # east-west
            out.append(((k, a), (k, a + 200.0)))  # north-south
    return out


def build(db: f.Db, lon0: float, lat0: float, *, t0: datetime | None = None) -> City:
    """The grid at ``(lon0, lat0)``, its sensors and their normal readings before ``t0``."""
    city = City(LocalFrame(lon0, lat0), t0 or datetime.now(UTC).replace(microsecond=0))
    m = f.Metric(city.frame)
    for seg in [*_segments(), FAR]:
        city.pipes[seg] = f.asset(db, "water_pipe", m.line(*seg), diameter_mm=300)
    city.rule = f.rule(
        db, indicator="pressure_mpa", title="Water main pressure low",
        thresholds={"1": 0.15, "2": 0.22, "3": 0.28, "4": 0.34},
    )  # fmt: skip
    db.execute(text("UPDATE rule SET direction = 'below' WHERE id = :id"), {"id": city.rule[0]})
    spots = {**{k: v[0] for k, v in BURST.items()}, **QUIET, "D": (3100.0, 3004.0)}
    spots["E"] = (300.0, 195.0)  # beside the target, alarming hours later
    start = city.t0 - timedelta(hours=1)
    days = {start.date(), city.t0.date(), (city.t0 + timedelta(hours=4)).date()}
    partitions.ensure(db if isinstance(db, Session) else Session(bind=db), days)
    for name, (x, y) in spots.items():
        lon, lat = m.ll(x, y)
        pipe = FAR if name == "D" else min(city.pipes, key=lambda s: _dist(s, (x, y)))
        sid = f.sensor(db, "pressure_mpa", lon=lon, lat=lat, asset_id=city.pipes[pipe])
        city.sensors[name] = sid
        city.xy[name] = (x, y)
        for k in range(12):  # an hour of 5-minute readings
            ts = start + timedelta(minutes=5 * k)
            db.execute(
                text("INSERT INTO reading (sensor_id, ts, value) VALUES (:s, :t, :v)"),
                {"s": sid, "t": ts, "v": NORMAL_MPA},
            )
        db.execute(
            text("INSERT INTO latest_reading (sensor_id, ts, value) VALUES (:s, :t, :v)"),
            {"s": sid, "t": city.t0 + timedelta(minutes=10), "v": NORMAL_MPA},
        )
    return city


def _dist(seg: tuple[tuple[float, float], tuple[float, float]], p: tuple[float, float]) -> float:
    from shapely import LineString, Point

    return float(LineString(seg).distance(Point(p)))


def alarm(db: f.Db, city: City, name: str, *, at_s: float, peak: float, level: int = 3) -> int:
    """A raised alarm of sensor ``name`` whose onset is ``at_s`` seconds after ``t0`` (data
    time), last seen 10 minutes later, with its peak value [MPa]."""
    lon, lat = city.ll(*city.xy[name])
    alarm_id = f.alarm(
        db, city.rule, level=level, sensor_id=city.sensors[name], lon=lon, lat=lat,
        first_value=peak, peak_value=peak, last_value=peak,
    )  # fmt: skip
    onset = city.t0 + timedelta(seconds=at_s)
    db.execute(
        text(
            "UPDATE alarm SET opened_ts = :t, last_seen_at = :t + interval '10 minutes', "
            "peak_level = level WHERE id = :id"
        ),
        {"t": onset, "id": alarm_id},
    )
    return alarm_id


def burst(db: f.Db, city: City) -> list[int]:
    """The three alarms of the burst, onsets 0, 5 and 15 minutes after ``t0``."""
    return [
        alarm(db, city, name, at_s=at, peak=BURST[name][1], level=lv)
        for name, at, lv in (("A", 0, 2), ("B", 300, 2), ("C", 900, 4))
    ]
