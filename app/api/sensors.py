"""HTTP routes of the sensor domain: readings ingest and reads, the sensor registry."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.openapi import report_or_error
from app.auth.dependencies import Ingester, SensorImporter, check_permitted
from app.auth.service import Principal, audit_as
from app.db import DbSession
from app.flows.readings import ReadingsReport, ingest_payload
from app.limits import listed_rejections
from app.params import (
    GEOJSON_FEATURE,
    GEOJSON_FEATURES,
    BBoxQuery,
    GeoJSONResponse,
    Offset,
    geojson_response,
)
from app.sensors import service
from app.sensors.registry import DEFAULT_TOLERANCE_M, import_sensors

router = APIRouter(tags=["sensors"])

SensorId = Annotated[int, PathParam(gt=0, lt=2**63, description="Sensor id")]

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
        422: {
            "description": "Unreadable payload (an Error), or every reading rejected (the "
            "report, as for a 200)",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/Error"},
                            {"type": "object", "required": ["received", "rejected"]},
                        ]
                    }
                }
            },
        },
    },
)
async def post_readings(
    request: Request,
    db_session: DbSession,
    who: Ingester,
    backfill: Annotated[
        bool,
        Query(
            description="History: no age limit (CITYRISK_MAX_READING_AGE_DAYS); needs a role "
            "that may readings.backfill (admin). Audited."
        ),
    ] = False,
) -> JSONResponse:
    """Ingest a batch of readings (JSON array, NDJSON or CSV; the Content-Type decides).

    A reading is `{"sensor": "<external_id or id>", "ts": "<RFC 3339 with offset>", "value": n}`
    (optional `unit`, `quality`); a mobile reading is `{"kind": "<indicator>", "lon": deg,
    "lat": deg, "ts": …, "value": n}` (optional `device`). Duplicates of stored readings
    (same sensor and ts) are counted, not stored again. The answer comes after the commit.
    Readings older than CITYRISK_MAX_READING_AGE_DAYS are rejected unless `backfill=true`.
    """
    if backfill:
        check_permitted(who, "readings.backfill", "POST /readings?backfill=true")
    body = await request.body()  # bounded while it streams in (app/limits.py: 413)
    content_type = request.headers.get("content-type", "application/json")
    limits = request.app.state.settings.limits
    # The ingest is synchronous work: run it off the event loop so batches overlap.
    report = await run_in_threadpool(
        _ingest_and_commit,
        db_session,
        body,
        content_type,
        limits.readings,
        who,
        None if backfill else limits.reading_age,
        backfill,
    )
    stored = report.accepted + report.duplicates + report.mobile_accepted
    status = 422 if report.received and not stored else 200
    # The first rejections and a count of the rest: listing 100,000 made a 239 MB answer,
    # rendered on the event loop (12 s during which no other client was served).
    listed = report.rejected[: limits.rejected_listed]
    content = {
        "received": report.received,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "mobile_accepted": report.mobile_accepted,
        "mobile_joined": report.mobile_joined,
        "alarms": asdict(report.alarms),
        "rejected": [{"index": r.index, "sensor": r.sensor, "reason": r.reason} for r in listed],
        "rejected_count": len(report.rejected),
        "rejected_unlisted": len(report.rejected) - len(listed),
    }
    return JSONResponse(status_code=status, content=content)


def _ingest_and_commit(
    session: Session,
    body: bytes,
    content_type: str,
    max_readings: int,
    who: Principal,
    max_age: timedelta | None,
    backfill: bool,
) -> ReadingsReport:
    report = ingest_payload(
        session, body, content_type, max_readings=max_readings, principal=who, max_age=max_age
    )
    if backfill and report.accepted + report.mobile_accepted:
        # A backfill skips a safety check: who loaded which span of history is on record.
        audit_as(session, who, "readings.backfill", None, _backfill_detail(report))
    session.commit()  # acknowledged means committed
    return report


def _backfill_detail(report: ReadingsReport) -> dict[str, Any]:
    return {
        "received": report.received,
        "accepted": report.accepted,
        "mobile_accepted": report.mobile_accepted,
        "duplicates": report.duplicates,
        "oldest": report.oldest.isoformat() if report.oldest else None,
    }


@router.get("/readings/latest", response_class=GeoJSONResponse, responses=GEOJSON_FEATURES)
def latest_readings(
    db_session: DbSession,
    sensor: Annotated[str | None, Query(description="Sensor external id or id")] = None,
    asset: Annotated[int | None, Query(gt=0, lt=2**63, description="Asset id")] = None,
    kind: Annotated[str | None, Query(description="Indicator, e.g. ch4_pct_lel")] = None,
    bbox: BBoxQuery = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """The newest reading of each matching sensor, as GeoJSON (reads `latest_reading` only)."""
    return geojson_response(
        service.latest_readings(
            db_session=db_session, sensor=sensor, asset=asset, kind=kind, bbox=bbox, limit=limit
        )
    )


@router.get("/sensors", response_class=GeoJSONResponse, responses=GEOJSON_FEATURES)
def list_sensors(
    db_session: DbSession,
    kind: Annotated[str | None, Query()] = None,
    asset: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
    bbox: BBoxQuery = None,
    unbound: Annotated[bool, Query(description="Only sensors bound to no asset")] = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Offset = 0,
) -> Response:
    """Sensors as GeoJSON, with their binding (asset, rule, distance)."""
    return geojson_response(
        service.list_sensors(
            db_session=db_session,
            kind=kind,
            asset=asset,
            bbox=bbox,
            unbound=unbound,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/sensors/{sensor_id}", response_class=GeoJSONResponse, responses=GEOJSON_FEATURE)
def get_sensor(db_session: DbSession, sensor_id: SensorId) -> Response:
    """One sensor with its binding and latest reading."""
    return geojson_response(service.get_sensor(db_session=db_session, sensor_id=sensor_id))


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
    return JSONResponse(
        service.sensor_readings(
            db_session=db_session,
            sensor_id=sensor_id,
            start=start,
            end=end,
            bucket=bucket,
            limit=limit,
        )
    )


@router.post(
    "/sensors/import",
    responses=report_or_error({"type": "object", "required": ["rows_read"]}),
)
def import_sensor_file(
    request: Request,
    db_session: DbSession,
    who: SensorImporter,
    file: Annotated[UploadFile, File(description="Sensors: any format assets take")],
    layer: Annotated[str | None, Form()] = None,
    crs: Annotated[str | None, Form()] = None,
    partial: Annotated[bool, Form()] = False,
    encoding: Annotated[
        str | None, Form(max_length=40, description="CSV/Shapefile text encoding (gb18030, …)")
    ] = None,
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
            encoding=encoding or None,
            tolerance_m=tolerance_m,
            limits=request.app.state.settings.limits,
        )
    if report.written:
        audit_as(db_session, who, "sensors.import", name, _counts(report.to_dict()))
        db_session.commit()
        report.committed = True
    else:
        db_session.rollback()
    content = listed_rejections(report.to_dict(), request.app.state.settings.limits)
    return JSONResponse(status_code=200 if report.committed else 422, content=content)


def _counts(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers of an import report, for its audit row (not the rows themselves)."""
    return {k: v for k, v in report.items() if isinstance(v, int | float | bool | str)}
