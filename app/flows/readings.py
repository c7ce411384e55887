"""Readings in: store the batch, judge it by the rules, rescore what the alarms moved.

The HTTP route and the MQTT consumer both call :func:`ingest_payload` and commit afterwards;
only then do they acknowledge (HTTP 2xx / MQTT PUBACK), so acknowledged means committed, and
the risk map is never behind the alarms (the rescore is in the same transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.alarms import engine
from app.alarms.engine import EvaluationReport
from app.auth.service import Principal
from app.errors import Forbidden, listed
from app.events import service as events
from app.risk import refresh
from app.sensors import ingest
from app.sensors.ingest import Batch, IngestReport


@dataclass
class ReadingsReport(IngestReport):
    """What a batch did: how it was stored (:class:`IngestReport`) and which alarms it moved."""

    alarms: EvaluationReport = field(default_factory=EvaluationReport)


def ingest_payload(
    session: Session,
    body: bytes,
    content_type: str,
    *,
    now: datetime | None = None,
    max_readings: int | None = None,
    principal: Principal | None = None,
    max_age: timedelta | None = None,
) -> ReadingsReport:
    """Parse ``body`` (JSON array / NDJSON / CSV by ``content_type``), store, warn, rescore.

    Raises :class:`~app.errors.InvalidInput` when the payload as a whole cannot be parsed or
    holds more than ``max_readings`` readings; per-row problems are in the report and the good
    rows are stored; ``max_age`` rejects readings older than that (the ways in pass
    CITYRISK_MAX_READING_AGE_DAYS; None: any age, a backfill). A ``principal`` limited to some
    sensors (a device token) may post only theirs: :class:`~app.errors.Forbidden` for the
    whole batch otherwise, nothing stored. Flushes only.
    """
    batch = ingest.parse_payload(body, content_type, max_readings=max_readings)
    if principal is not None and principal.sensors is not None:
        check_scope(batch, principal)
    return ingest_batch(session, batch, now=now, max_age=max_age)


def check_scope(batch: Batch, principal: Principal) -> None:
    """Refuse a batch holding a reading of a sensor (or a mobile device) the principal does not
    own: a device token cannot raise another sensor's alarm."""
    named = [s if s is not None else d for s, d in zip(batch.sensor, batch.device, strict=True)]
    outside = sorted({str(n) for n in set(named) if n is None or not principal.may_post(str(n))})
    if outside:
        raise Forbidden(
            f"{principal.actor} may post readings of {listed(principal.sensors or ())} only; "
            f"this batch has {listed(outside)}; nothing was stored"
        )


def ingest_batch(
    session: Session,
    batch: Batch,
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> ReadingsReport:
    """:func:`ingest_payload` for a parsed batch."""
    stored = ingest.ingest(session, batch, now=now, max_age=max_age)
    report = ReadingsReport(**{f.name: getattr(stored, f.name) for f in fields(IngestReport)})
    if stored.accepted:  # warn: evaluate the rules on what this batch changed
        report.alarms = engine.evaluate(session, stored.stored, now=stored.now)
        # Rescore the assets of alarms that changed, in this transaction: the risk map is never
        # behind the alarms (≈ 7 ms per alarm; nothing before the first refresh).
        refresh.refresh_after_alarms(session, report.alarms.alarm_ids)
        events.update_for_alarms(session, report.alarms.alarm_ids)
    return report
