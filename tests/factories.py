"""Rows for tests, written with SQL as the services and the engine write them.

Every factory takes a session or a connection (the caller owns the transaction), writes one
row, and returns its id. Unique ``external_id``s come from :func:`uid`, so tests sharing the
session's database never collide.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.taxonomy.assets import KINDS
from app.taxonomy.indicators import INDICATORS
from gis.frames import LocalFrame

Db = Session | Connection

#: A point in Cambridge, MA (the demo city), for rows whose position does not matter.
LON, LAT = -71.1097, 42.3736


def uid(prefix: str) -> str:
    """``prefix-<8 hex>``: an id no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def point(lon: float = LON, lat: float = LAT) -> str:
    return f"POINT({lon} {lat})"


def square(lon: float, lat: float, half_lon_deg: float, half_lat_deg: float) -> str:
    """A lon/lat rectangle centred on ``(lon, lat)``, as WKT."""
    x0, x1 = lon - half_lon_deg, lon + half_lon_deg
    y0, y1 = lat - half_lat_deg, lat + half_lat_deg
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def asset(
    db: Db,
    kind: str = "gas_pipe",
    wkt: str | None = None,
    *,
    plate: str | None = None,
    source: str = "test",
    external_id: str | None = None,
    name: str | None = None,
    owner: str | None = None,
    **attributes: Any,
) -> int:
    """An asset of ``kind`` (its plate from the taxonomy) at ``wkt`` (default: a point)."""
    return int(
        db.execute(
            text(
                "INSERT INTO asset (source, external_id, plate, kind, name, owner, geom, "
                "attributes) VALUES (:s, :e, :p, :k, :n, :o, ST_GeomFromText(:w, 4326), "
                "CAST(:a AS jsonb)) RETURNING id"
            ),
            {
                "s": source,
                "e": external_id or uid(kind),
                "p": plate or KINDS[kind].plate,
                "k": kind,
                "n": name,
                "o": owner,
                "w": wkt or point(),
                "a": orjson.dumps(attributes).decode(),
            },
        ).scalar_one()
    )


def sensor(
    db: Db,
    kind: str = "ch4_pct_lel",
    *,
    lon: float | None = LON,
    lat: float | None = LAT,
    asset_id: int | None = None,
    external_id: str | None = None,
    unit: str | None = None,
    interval_s: int | None = None,
    status: str = "active",
) -> int:
    """A sensor of indicator ``kind`` (its unit from the catalogue); ``lon=None``: no position."""
    return int(
        db.execute(
            text(
                "INSERT INTO sensor (external_id, kind, unit, asset_id, interval_s, status, geom) "
                "VALUES (:e, :k, :u, :a, :i, :st, CASE WHEN CAST(:lon AS float8) IS NULL THEN "
                "NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END) RETURNING id"
            ),
            {
                "e": external_id or uid("s"),
                "k": kind,
                "u": unit or INDICATORS[kind].unit,
                "a": asset_id,
                "i": interval_s,
                "st": status,
                "lon": lon,
                "lat": lat,
            },
        ).scalar_one()
    )


def rule(
    db: Db,
    *,
    indicator: str = "ch4_pct_lel",
    title: str = "Methane",
    thresholds: dict[str, float] | None = None,
    kind: str = "threshold",
    code: str | None = None,
    version: int = 1,
    target: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """A current rule version; returns ``(id, code)``. ``code`` defaults to a unique one: give it
    when a test finds or deletes its rules by code. ``target`` is the rule's JSON target
    (default ``{}``)."""
    code = code or uid("test-rule")
    rule_id = db.execute(
        text(
            "INSERT INTO rule (code, version, title, indicator, thresholds, kind, target) "
            "VALUES (:c, :v, :t, :i, CAST(:th AS jsonb), :k, CAST(:tg AS jsonb)) RETURNING id"
        ),
        {
            "c": code,
            "v": version,
            "t": title,
            "i": indicator,
            "th": orjson.dumps(thresholds or {"1": 50, "2": 25, "3": 20, "4": 10}).decode(),
            "k": kind,
            "tg": orjson.dumps(target or {}).decode(),
        },
    ).scalar_one()
    return int(rule_id), code


def alarm(
    db: Db,
    rule_: tuple[int, str],
    *,
    level: int = 1,
    state: str = "raised",
    sensor_id: int | None = None,
    asset_id: int | None = None,
    lon: float | None = LON,
    lat: float | None = LAT,
    opened_ago_s: float = 0,
    cleared: bool = False,
    title: str | None = None,
    first_value: float | None = None,
    peak_value: float | None = None,
    last_value: float | None = None,
    event: bool = True,
    **times_ago_s: float,
) -> int:
    """An alarm as the engine writes it, with its creation event; ``verified_at=60`` sets that
    timestamp 60 s ago. ``lon=None``: no position of its own; ``event=False``: no creation
    event (an alarm without an audit trail, for tests that write their own events or need none).
    """
    sets = "".join(f", {col}" for col in times_ago_s)
    vals = "".join(f", now() - make_interval(secs => :{col})" for col in times_ago_s)
    alarm_id = db.execute(
        text(
            "INSERT INTO alarm (rule_id, rule_code, level, state, sensor_id, asset_id, geom, "
            "title, first_value, peak_value, last_value, "
            f"opened_at, cleared_at{sets}) VALUES (:r, :c, :lv, :st, :s, :a, "
            "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
            "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, :ti, :v1, :vp, :vl, "
            "now() - make_interval(secs => :ago), CASE WHEN :cl THEN now() END"
            f"{vals}) RETURNING id"
        ),
        {
            "r": rule_[0],
            "c": rule_[1],
            "lv": level,
            "st": state,
            "s": sensor_id,
            "a": asset_id,
            "lon": lon,
            "lat": lat,
            "ago": opened_ago_s,
            "cl": cleared,
            "ti": title,
            "v1": first_value,
            "vp": peak_value,
            "vl": last_value,
            **times_ago_s,
        },
    ).scalar_one()
    if not event:
        return int(alarm_id)
    db.execute(
        text(
            "INSERT INTO alarm_event (alarm_id, at, actor, from_state, to_state, to_level) "
            "VALUES (:id, now() - make_interval(secs => :ago), 'engine', NULL, 'raised', :lv)"
        ),
        {"id": alarm_id, "ago": opened_ago_s, "lv": level},
    )
    return int(alarm_id)


class Metric:
    """WKT of a small hand-made city drawn in metres east / north of an origin.

    >>> m = Metric(LocalFrame(8.6, 47.3))
    >>> m.pt(0, 0)
    'POINT(8.6 47.3)'
    """

    def __init__(self, frame: LocalFrame) -> None:
        self.frame = frame

    def ll(self, x: float, y: float) -> tuple[float, float]:
        """Metres east / north of the origin as ``(lon, lat)``."""
        lon, lat = self.frame.to_lonlat(x, y)
        return float(lon), float(lat)

    def line(self, *xy: tuple[float, float]) -> str:
        lonlat = (self.ll(x, y) for x, y in xy)
        return "LINESTRING(" + ",".join(f"{lon} {lat}" for lon, lat in lonlat) + ")"

    def pt(self, x: float, y: float) -> str:
        return point(*self.ll(x, y))


def token(url: str, role: str, *, sensors: list[str] | None = None, name: str | None = None) -> str:
    """A committed API key of ``role`` in the database at ``url`` (for tests with their own
    database; the session database has one per role in the ``tokens`` fixture)."""
    from app.scratch import scratch_token

    return scratch_token(url, role, sensors=sensors, name=name or uid(f"t-{role}"))


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header for API key ``key``."""
    return {"Authorization": f"Bearer {key}"}
