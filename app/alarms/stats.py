"""Alarm statistics: counts by level and state, false-alarm share, mean times, SLA breaches.

One set-based query: a CTE of the selected alarms (with each one's verdict from the audit
trail and its level's SLA limits joined from a VALUES list built from ``SLA_SECONDS``), then
``GROUP BY GROUPING SETS ((), (rule_code), (sensor_id, sensor))`` so the overall figures, the
per-rule and the per-sensor ones come from a single scan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms.lifecycle import SLA_SECONDS, SLA_TIMERS
from app.alarms.service import VERDICT, VERDICT_JOIN
from app.errors import InvalidInput
from app.taxonomy.alarms import ALARM_STATES, VERDICTS, WARNING_LEVELS

# The SLA table as SQL rows; built from data (integers only), never from user input.
_SLA_VALUES = ", ".join(
    f"({level}, {limits['verify']}, {limits['acknowledge']}, {limits['dispose']})"
    for level, limits in sorted(SLA_SECONDS.items())
)


def _counts() -> str:
    cols = [f"count(*) FILTER (WHERE level = {lv}) AS level_{lv}" for lv in WARNING_LEVELS]
    cols += [f"count(*) FILTER (WHERE state = '{st}') AS state_{st}" for st in ALARM_STATES]
    cols += [f"count(*) FILTER (WHERE verdict = '{v}') AS verdict_{v}" for v in VERDICTS]
    for name, column in SLA_TIMERS.items():
        cols.append(
            f"avg(extract(epoch FROM {column} - opened_at)) FILTER (WHERE {column} IS NOT NULL) "
            f"AS mean_{name}"
        )
        # Same rule as lifecycle.sla_timers: a timer stops at its step or at closing, and
        # acknowledge/dispose do not apply once the verdict is false_alarm or test.
        applies = "true" if name == "verify" else "verdict IS NULL OR verdict = 'verified'"
        cols.append(
            f"count(*) FILTER (WHERE ({applies}) AND extract(epoch FROM "
            f"COALESCE({column}, closed_at, clock_timestamp()) - opened_at) > sla_{name}) "
            f"AS breach_{name}"
        )
    return ",\n       ".join(cols)


_STATS_SQL = f"""
WITH base AS (
    SELECT a.rule_code, a.sensor_id, s.external_id AS sensor, a.level, a.state, a.opened_at,
           a.verified_at, a.acknowledged_at, a.disposed_at, a.closed_at,
           sla.verify AS sla_verify, sla.acknowledge AS sla_acknowledge,
           sla.dispose AS sla_dispose,
           {VERDICT} AS verdict
    FROM alarm a
    LEFT JOIN sensor s ON s.id = a.sensor_id
    JOIN (VALUES {_SLA_VALUES}) AS sla(level, verify, acknowledge, dispose)
      ON sla.level = a.level
    {VERDICT_JOIN}
    WHERE {{where}}
), grouped AS (
    SELECT GROUPING(rule_code) AS g_rule, GROUPING(sensor_id, sensor) AS g_sensor,
           rule_code, sensor_id, sensor, count(*) AS total,
           {_counts()}
    FROM base
    GROUP BY GROUPING SETS ((), (rule_code), (sensor_id, sensor))
)
SELECT *,
       row_number() OVER (PARTITION BY g_rule, g_sensor ORDER BY total DESC, sensor_id, rule_code)
           AS rn
FROM grouped
ORDER BY g_rule, g_sensor, total DESC, rule_code, sensor_id
"""


def alarm_stats(
    session: Session,
    *,
    since: datetime | None = None,
    rule: str | None = None,
    sensor: str | None = None,
    sensor_limit: int = 1000,
) -> dict[str, Any]:
    """Statistics of the alarms opened at or after ``since`` (all if None).

    Parameters
    ----------
    since
        Only alarms with ``opened_at >= since``; needs a UTC offset.
    rule
        Only alarms of this rule code.
    sensor
        Only alarms of this sensor (external id or numeric id).
    sensor_limit
        At most this many per-sensor groups (the ones with the most alarms).

    Returns
    -------
    dict
        ``schemas.StatsRead``: ``overall``, ``per_rule`` and ``per_sensor`` groups.
    """
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a UTC offset (RFC 3339), e.g. 2026-11-28T00:00:00Z")
    where = ["true"]
    params: dict[str, Any] = {}
    if since is not None:
        where.append("a.opened_at >= :since")
        params["since"] = since
    if rule is not None:
        where.append("a.rule_code = :rule")
        params["rule"] = rule
    if sensor is not None:
        where.append("(s.external_id = :sensor OR a.sensor_id::text = :sensor)")
        params["sensor"] = sensor
    rows = session.execute(text(_STATS_SQL.format(where=" AND ".join(where))), params).mappings()
    overall: dict[str, Any] | None = None
    per_rule: list[dict[str, Any]] = []
    per_sensor: list[dict[str, Any]] = []
    truncated = False
    for row in rows:
        if row["g_rule"] == 1 and row["g_sensor"] != 0:
            overall = _group(row)
        elif row["g_rule"] == 0:
            per_rule.append({"rule_code": row["rule_code"], **_group(row)})
        elif row["rn"] <= sensor_limit:
            per_sensor.append(
                {"sensor_id": row["sensor_id"], "sensor": row["sensor"], **_group(row)}
            )
        else:
            truncated = True
    return {
        "since": since,
        "rule": rule,
        "sensor": sensor,
        # An empty selection still has a grand-total row in SQL; the fallback is defensive.
        "overall": overall or _empty_group(),
        "per_rule": per_rule,
        "per_sensor": per_sensor,
        "per_sensor_truncated": truncated,
    }


def _group(row: Any) -> dict[str, Any]:
    verdicts = {v: int(row[f"verdict_{v}"]) for v in VERDICTS}
    decided = verdicts["verified"] + verdicts["false_alarm"]
    return {
        "total": int(row["total"]),
        "by_level": {str(lv): int(row[f"level_{lv}"]) for lv in WARNING_LEVELS},
        "by_state": {st: int(row[f"state_{st}"]) for st in ALARM_STATES},
        "verdicts": verdicts,
        "false_alarm_share": verdicts["false_alarm"] / decided if decided else None,
        "mean_s": {
            name: None if row[f"mean_{name}"] is None else float(row[f"mean_{name}"])
            for name in SLA_TIMERS
        },
        "sla_breaches": {name: int(row[f"breach_{name}"]) for name in SLA_TIMERS},
    }


def _empty_group() -> dict[str, Any]:
    return {
        "total": 0,
        "by_level": {str(lv): 0 for lv in WARNING_LEVELS},
        "by_state": dict.fromkeys(ALARM_STATES, 0),
        "verdicts": dict.fromkeys(VERDICTS, 0),
        "false_alarm_share": None,
        "mean_s": dict.fromkeys(SLA_TIMERS),
        "sla_breaches": dict.fromkeys(SLA_TIMERS, 0),
    }
