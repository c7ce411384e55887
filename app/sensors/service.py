"""Reads of the sensor domain: latest readings, the sensor registry, a sensor's history.

Keyword-only service functions (Dispatch style) for the routes; they never write. Results are
GeoJSON documents or plain JSON, ready for :func:`app.params.geojson_response`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.params import BBox, bbox_sql, feature, feature_collection, geometry
from app.taxonomy.indicators import INDICATORS

#: Bucket widths of ``GET /sensors/{id}/readings?bucket=``, seconds.
BUCKET_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

_LATEST_SQL = """
SELECT s.id, s.external_id, s.kind, s.unit, s.asset_id, l.ts, l.value, l.quality,
       ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
FROM latest_reading l JOIN sensor s ON s.id = l.sensor_id
WHERE {where}
ORDER BY s.id
LIMIT :limit
"""


def latest_readings(
    *,
    db_session: Session,
    sensor: str | None = None,
    asset: int | None = None,
    kind: str | None = None,
    bbox: BBox | None = None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """The newest reading of each matching sensor, as GeoJSON (reads `latest_reading` only)."""
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if sensor is not None:
        where.append("(s.external_id = :sensor OR s.id::text = :sensor)")
        params["sensor"] = sensor
    if asset is not None:
        where.append("s.asset_id = :asset")
        params["asset"] = asset
    if kind is not None:
        if kind not in INDICATORS:
            raise InvalidInput(f"kind {kind!r} is not an indicator; known: {', '.join(INDICATORS)}")
        where.append("s.kind = :kind")
        params["kind"] = kind
    if bbox is not None:
        where.append(bbox_sql("s.geom", bbox))
    rows = db_session.execute(text(_LATEST_SQL.format(where=" AND ".join(where))), params)
    features = [
        feature(
            r.id,
            None if r.lon is None else {"type": "Point", "coordinates": [r.lon, r.lat]},
            {
                "sensor": r.external_id,
                "kind": r.kind,
                "unit": r.unit,
                "asset_id": r.asset_id,
                "ts": r.ts,
                "value": r.value,
                "quality": r.quality,
            },
        )
        for r in rows
    ]
    return feature_collection(features)


def list_sensors(
    *,
    db_session: Session,
    kind: str | None = None,
    asset: int | None = None,
    bbox: BBox | None = None,
    unbound: bool = False,
    limit: int = 1000,
    offset: int = 0,
) -> dict[str, Any]:
    """Sensors as GeoJSON, with their binding (asset, rule, distance)."""
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if kind is not None:
        where.append("kind = :kind")
        params["kind"] = kind
    if asset is not None:
        where.append("asset_id = :asset")
        params["asset"] = asset
    if unbound:
        where.append("asset_id IS NULL")
    if bbox is not None:
        where.append(bbox_sql("geom", bbox))
    sql = (
        "SELECT id, external_id, kind, unit, status, interval_s, asset_id, binding_rule, "
        "binding_distance_m, ST_AsGeoJSON(geom, 7) AS geometry FROM sensor "
        f"WHERE {' AND '.join(where)} ORDER BY id LIMIT :limit OFFSET :offset"
    )
    features = [_sensor_feature(r._mapping) for r in db_session.execute(text(sql), params)]
    return feature_collection(features)


def _sensor_feature(row: Any) -> dict[str, Any]:
    props = dict(row)
    raw_geometry, feature_id = props.pop("geometry"), props.pop("id")
    return feature(feature_id, geometry(raw_geometry), props)


def get_sensor(*, db_session: Session, sensor_id: int) -> dict[str, Any]:
    """One sensor with its binding and latest reading."""
    row = db_session.execute(
        text(
            "SELECT s.id, s.external_id, s.kind, s.unit, s.status, s.interval_s, s.asset_id, "
            "s.binding_rule, s.binding_distance_m, ST_AsGeoJSON(s.geom, 7) AS geometry, "
            "l.ts AS latest_ts, l.value AS latest_value "
            "FROM sensor s LEFT JOIN latest_reading l ON l.sensor_id = s.id WHERE s.id = :id"
        ),
        {"id": sensor_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no sensor with id {sensor_id}")
    return _sensor_feature(row._mapping)


def sensor_readings(
    *,
    db_session: Session,
    sensor_id: int,
    start: datetime,
    end: datetime,
    bucket: str | None = None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """A sensor's readings in [from, to), raw or as min/max/avg per time bucket (UTC-aligned)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("from and to need a UTC offset (RFC 3339), e.g. 2026-11-28T00:00:00Z")
    if end <= start:
        raise InvalidInput(f"to ({end.isoformat()}) must be after from ({start.isoformat()})")
    exists = db_session.execute(text("SELECT 1 FROM sensor WHERE id = :id"), {"id": sensor_id})
    if exists.scalar_one_or_none() is None:
        raise NotFound(f"no sensor with id {sensor_id}")
    params: dict[str, Any] = {"id": sensor_id, "start": start, "end": end, "limit": limit}
    if bucket is None:
        rows = db_session.execute(
            text(
                "SELECT ts, value, quality FROM reading WHERE sensor_id = :id "
                "AND ts >= :start AND ts < :end ORDER BY ts LIMIT :limit"
            ),
            params,
        )
        data = [{"ts": r.ts.isoformat(), "value": r.value, "quality": r.quality} for r in rows]
    else:
        params["width"] = BUCKET_S[bucket]
        rows = db_session.execute(
            text(
                # epoch arithmetic rather than date_bin(): PostgreSQL 13 has no date_bin
                "SELECT to_timestamp(floor(extract(epoch FROM ts) / :width) * :width) "
                "AS bucket_start, min(value) AS min, max(value) AS max, avg(value) AS avg, "
                "count(*) AS n "
                "FROM reading WHERE sensor_id = :id AND ts >= :start AND ts < :end "
                "GROUP BY 1 ORDER BY 1 LIMIT :limit"
            ),
            params,
        )
        data = [
            {
                "ts": r.bucket_start.isoformat(),
                "min": r.min,
                "max": r.max,
                "avg": r.avg,
                "count": r.n,
            }
            for r in rows
        ]
    return {"sensor_id": sensor_id, "bucket": bucket, "readings": data}
