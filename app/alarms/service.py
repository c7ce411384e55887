"""Reads of alarms: one SELECT shared by the list, the detail, the stream, CAP and statistics.

Keyword-only service functions (Dispatch style) for the routes; they never write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms.lifecycle import sla_timers
from app.errors import InvalidInput, NotFound
from app.params import BBox, bbox_sql
from app.taxonomy.alarms import (
    ALARM_STATES,
    LEVEL_NUMERALS,
    NOT_ANOMALIES,
    TRUE_PATH,
    VERDICTS,
    WARNING_LEVELS,
    allowed_next,
    sql_list,
)
from app.taxonomy.assets import KINDS, PLATES

# The verdict of alarm ``a``: the analyst's decision read from the audit trail (it survives
# later states), falling back to the state for alarms written without events. Shared by every
# read of alarms (below) and the statistics (stats.py).
VERDICT_JOIN = f"""LEFT JOIN LATERAL (
    SELECT e.to_state AS verdict FROM alarm_event e
    WHERE e.alarm_id = a.id AND e.from_state = 'raised'
      AND e.to_state IN ({sql_list(VERDICTS)})
    ORDER BY e.id DESC LIMIT 1
) v ON true"""
VERDICT = f"""COALESCE(v.verdict, CASE
           WHEN a.state IN ({sql_list(NOT_ANOMALIES)}) THEN a.state
           WHEN a.state IN ({sql_list(TRUE_PATH)}) THEN 'verified'
       END)"""

# The alarm's point: its own, else its sensor's, else a point on its asset. No bind parameters
# and no '%' here: psycopg (stream.py) and SQLAlchemy text() both take this fragment and add
# their own WHERE.
ALARM_SELECT = f"""
SELECT a.id, a.rule_id, a.rule_code, r.version AS rule_version, r.title AS rule_title,
       r.indicator, a.sensor_id, s.external_id AS sensor, t.id AS asset_id,
       t.name AS asset_name, t.kind AS asset_kind, t.plate, t.owner AS asset_owner,
       a.level, a.peak_level, a.state, a.title, a.cause, a.owner_unit, a.opened_at,
       a.opened_ts, a.updated_at, a.last_seen_at, a.cleared_at, a.cleared_ts, a.verified_at,
       a.pushed_at, a.acknowledged_at,
       a.dispatched_at, a.disposed_at, a.closed_at, a.first_value, a.peak_value, a.last_value,
       a.attributes, ST_X(p.pt) AS lon, ST_Y(p.pt) AS lat,
       {VERDICT} AS verdict,
       clock_timestamp() AS now
FROM alarm a
JOIN rule r ON r.id = a.rule_id
LEFT JOIN sensor s ON s.id = a.sensor_id
LEFT JOIN asset t ON t.id = COALESCE(a.asset_id, s.asset_id)
CROSS JOIN LATERAL (SELECT COALESCE(a.geom, s.geom, ST_PointOnSurface(t.geom)) AS pt) p
{VERDICT_JOIN}
"""

EVENT_COLUMNS = "id, alarm_id, at, ts, actor, from_state, to_state, from_level, to_level, note"


def alarm_summary(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One row of ``ALARM_SELECT`` as the alarm representation (``schemas.AlarmRead``)."""
    out = {k: v for k, v in row.items() if k not in ("now", "attributes")}
    out["level_name"] = LEVEL_NUMERALS[row["level"]]
    out["color"] = WARNING_LEVELS[row["level"]]
    out["active"] = row["cleared_at"] is None and row["state"] != "closed"
    out["attributes"] = row["attributes"] or {}
    out["allowed_transitions"] = list(allowed_next(row["state"]))
    out["sla"] = sla_timers(row, row["now"])
    return out


def get_summary(session: Session, alarm_id: int) -> dict[str, Any]:
    """One alarm as :func:`alarm_summary` gives it; ``NotFound`` if there is none."""
    row = (
        session.execute(text(ALARM_SELECT + " WHERE a.id = :id"), {"id": alarm_id})
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound(f"no alarm with id {alarm_id}")
    return alarm_summary(row)


def get_alarm(session: Session, alarm_id: int) -> dict[str, Any]:
    """One alarm with its events (oldest first); ``NotFound`` if there is none."""
    out = get_summary(session, alarm_id)
    events = session.execute(
        text(f"SELECT {EVENT_COLUMNS} FROM alarm_event WHERE alarm_id = :id ORDER BY id"),
        {"id": alarm_id},
    ).mappings()
    out["events"] = [dict(e) for e in events]
    return out


def list_alarms(
    *,
    db_session: Session,
    states: Sequence[str] = (),
    levels: Sequence[str] = (),
    plate: str | None = None,
    kind: str | None = None,
    bbox: BBox | None = None,
    since: datetime | None = None,
    active: bool | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Alarms, newest first, as :func:`alarm_summary` rows; every filter checked (422).

    The asset of an alarm (for ``plate`` and ``kind``) is its own, else its sensor's; its point
    is its own, else its sensor's, else a point on its asset.
    """
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if states:
        unknown = [s for s in states if s not in ALARM_STATES]
        if unknown:
            raise InvalidInput(
                f"unknown state(s) {', '.join(unknown)}; states are: {', '.join(ALARM_STATES)}"
            )
        where.append("a.state = ANY(:states)")
        params["states"] = list(states)
    if levels:
        if any(lv not in ("1", "2", "3", "4") for lv in levels):
            raise InvalidInput(f"level must be 1, 2, 3 or 4; got {', '.join(levels)}")
        where.append("a.level = ANY(:levels)")
        params["levels"] = [int(lv) for lv in levels]
    if plate is not None:
        if plate not in PLATES:
            raise InvalidInput(f"unknown plate {plate!r}; plates are: {', '.join(PLATES)}")
        where.append("t.plate = :plate")
        params["plate"] = plate
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"unknown asset kind {kind!r}; see GET /assets/kinds")
        where.append("t.kind = :kind")
        params["kind"] = kind
    if bbox is not None:
        # On the resolved point (own, sensor's or asset's), so alarms without a geom of their
        # own are found too; open alarms are few enough that this needs no index.
        where.append(bbox_sql("p.pt", bbox))
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInput("since needs a UTC offset (RFC 3339), e.g. 2026-11-28T00:00:00Z")
        where.append("a.opened_at >= :since")
        params["since"] = since
    if active is True:
        where.append("a.cleared_at IS NULL AND a.state <> 'closed'")
    elif active is False:
        where.append("(a.cleared_at IS NOT NULL OR a.state = 'closed')")
    sql = (
        ALARM_SELECT
        + f" WHERE {' AND '.join(where)} ORDER BY a.opened_at DESC, a.id DESC "
        + "LIMIT :limit OFFSET :offset"
    )
    return [alarm_summary(row) for row in db_session.execute(text(sql), params).mappings()]
