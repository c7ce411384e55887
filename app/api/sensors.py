"""HTTP routes of the sensor domain: readings ingest and reads, the sensor registry."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db import DbSession
from app.errors import InvalidInput, NotFound
from app.flows.readings import ReadingsReport, ingest_payload
from app.params import BBoxQuery, bbox_sql, feature, feature_collection, geojson_response, geometry
from app.sensors.registry import DEFAULT_TOLERANCE_M, import_sensors
from app.taxonomy.indicators import INDICATORS

router = APIRouter(tags=["sensors"])

MAX_BODY_BYTES = 64 * 1024 * 1024  # ~300,000 readings as NDJSON
SensorId = Annotated[int, PathParam(gt=0, lt=2**63, description="Sensor id")]
BUCKET_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

_READINGS_EXAMPLES = {
    "application/json": {
        "example": [
            {"sensor": "cam-ch4-0001", "ts": "2026-11-28T10:00:00+08:00", "value": 0.4},
            {
                "kind": "ch4_pct_lel",
                "lon": -71.1097,
                "lat": 42.3736,
                "ts": "2026-11-28T10:00:05Z",
                "value": 12.5,
                "device": "patrol-7",
            },
        ]
    },
    "application/x-ndjson": {
        "example": '{"sensor": "cam-ch4-0001", "ts": "2026-11-28T10:00:00Z", "value": 0.4}\n'
    },
    "text/csv": {"example": "sensor,ts,value\ncam-ch4-0001,2026-11-28T10:00:00Z,0.4\n"},
}


@router.post(
    "/readings",
    openapi_extra={"requestBody": {"required": True, "content": _READINGS_EXAMPLES}},
    responses={
        200: {"description": "Stored: counts of accepted, duplicate and rejected readings"},
        422: {"description": "Unreadable payload, or every reading rejected"},
    },
)
async def post_readings(request: Request, db_session: DbSession) -> JSONResponse:
    """Ingest a batch of readings (JSON array, NDJSON or CSV; the Content-Type decides).

    A reading is `{"sensor": "<external_id or id>", "ts": "<RFC 3339 with offset>", "value": n}`
    (optional `unit`, `quality`); a mobile reading is `{"kind": "<indicator>", "lon": deg,
    "lat": deg, "ts": …, "value": n}` (optional `device`). Duplicates of stored readings
    (same sensor and ts) are counted, not stored again. The answer comes after the commit.
    """
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"body is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    content_type = request.headers.get("content-type", "application/json")
    # The ingest is synchronous work: run it off the event loop so batches overlap.
    report = await run_in_threadpool(_ingest_and_commit, db_session, body, content_type)
    stored = report.accepted + report.duplicates + report.mobile_accepted
    status = 422 if report.received and not stored else 200
    content = {
        "received": report.received,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "mobile_accepted": report.mobile_accepted,
        "mobile_joined": report.mobile_joined,
        "alarms": asdict(report.alarms),
        "rejected": [
            {"index": r.index, "sensor": r.sensor, "reason": r.reason} for r in report.rejected
        ],
    }
    return JSONResponse(status_code=status, content=content)


def _ingest_and_commit(session: Session, body: bytes, content_type: str) -> ReadingsReport:
    report = ingest_payload(session, body, content_type)
    session.commit()  # acknowledged means committed
    return report


_LATEST_SQL = """
SELECT s.id, s.external_id, s.kind, s.unit, s.asset_id, l.ts, l.value, l.quality,
       ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
FROM latest_reading l JOIN sensor s ON s.id = l.sensor_id
WHERE {where}
ORDER BY s.id
LIMIT :limit
"""


@router.get("/readings/latest")
def latest_readings(
    db_session: DbSession,
    sensor: Annotated[str | None, Query(description="Sensor external id or id")] = None,
    asset: Annotated[int | None, Query(gt=0, description="Asset id")] = None,
    kind: Annotated[str | None, Query(description="Indicator, e.g. ch4_pct_lel")] = None,
    bbox: BBoxQuery = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
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
    return geojson_response(feature_collection(features))


@router.get("/sensors")
def list_sensors(
    db_session: DbSession,
    kind: Annotated[str | None, Query()] = None,
    asset: Annotated[int | None, Query(gt=0)] = None,
    bbox: BBoxQuery = None,
    unbound: Annotated[bool, Query(description="Only sensors bound to no asset")] = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
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
    return geojson_response(feature_collection(features))


def _sensor_feature(row: Any) -> dict[str, Any]:
    props = dict(row)
    raw_geometry, feature_id = props.pop("geometry"), props.pop("id")
    return feature(feature_id, geometry(raw_geometry), props)


@router.get("/sensors/{sensor_id}")
def get_sensor(db_session: DbSession, sensor_id: SensorId) -> Response:
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
    return geojson_response(_sensor_feature(row._mapping))


@router.get("/sensors/{sensor_id}/readings")
def sensor_readings(
    db_session: DbSession,
    sensor_id: SensorId,
    start: Annotated[datetime, Query(alias="from", description="RFC 3339, inclusive")],
    end: Annotated[datetime, Query(alias="to", description="RFC 3339, exclusive")],
    bucket: Annotated[
        Literal["1m", "5m", "15m", "1h", "1d"] | None,
        Query(description="Aggregate per bucket: min/max/avg/count"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> JSONResponse:
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
    return JSONResponse({"sensor_id": sensor_id, "bucket": bucket, "readings": data})


@router.post("/sensors/import")
def import_sensor_file(
    db_session: DbSession,
    file: Annotated[UploadFile, File(description="Sensors: any format assets take")],
    layer: Annotated[str | None, Form()] = None,
    crs: Annotated[str | None, Form()] = None,
    partial: Annotated[bool, Form()] = False,
    tolerance_m: Annotated[float, Form(gt=0, le=10_000)] = DEFAULT_TOLERANCE_M,
) -> JSONResponse:
    """Import sensors (upsert by external_id) and bind them to assets (explicit or nearest)."""
    name = Path(file.filename or "sensors").name
    with tempfile.TemporaryDirectory(prefix="cityrisk-sensors-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1 << 20)
        report = import_sensors(
            db_session,
            path,
            layer=layer or None,
            crs=crs or None,
            partial=partial,
            tolerance_m=tolerance_m,
        )
    if report.written:
        db_session.commit()
        report.committed = True
    else:
        db_session.rollback()
    return JSONResponse(status_code=200 if report.committed else 422, content=report.to_dict())
