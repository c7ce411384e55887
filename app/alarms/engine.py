"""The rules engine: readings → graded alarms, evaluated on every ingested batch.

Per batch and per applicable rule, one SQL statement computes what the rule needs for every
affected sensor at once (the last N readings, the value a window or a week ago, the design limit
of the asset, whether a gas main is near…) straight from ``reading`` — so the engine keeps no
state of its own and a restart loses nothing. The few subjects that are abnormal or already have
an open alarm come back to Python, where each is compared with its open alarm: raise, update
(peak, last seen), escalate / de-escalate, auto-clear (with hysteresis), or re-raise. Every
change writes an ``alarm_event`` row (actor ``engine``). One open alarm per (rule, subject) is
guaranteed by a partial unique index: open alarms are locked (``FOR UPDATE``) before they
change, and a new one is inserted ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Text

from app.alarms.rules import ANY_INDICATOR, RuleSpec, StoredRule, current_rules

ACTOR = "engine"
# Readings older than this do not count as "the last N readings" of a live sensor.
LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class Observation:
    """What one rule sees for one subject now."""

    rule: StoredRule
    sensor_id: int | None
    asset_id: int | None
    ts: datetime
    raw_value: float  # the latest reading, in the indicator's unit
    raise_level: int | None  # level the condition reaches (persistence applied)
    keep_level: int | None  # level it still holds with hysteresis (for open alarms)
    cause: str | None
    lon: float | None
    lat: float | None


@dataclass
class EvaluationReport:
    raised: int = 0
    updated: int = 0
    escalated: int = 0
    deescalated: int = 0
    cleared: int = 0
    recurred: int = 0
    # Alarms whose level or open/cleared status changed (not mere updates): what the risk
    # scores depend on, so the caller can rescore their assets in the same transaction.
    alarm_ids: list[int] = field(default_factory=list)


def graded(value: float | None, spec: RuleSpec, *, relax: float = 0.0) -> int | None:
    """The most severe level (1 = I) whose threshold ``value`` meets; ``relax`` widens each
    threshold by the hysteresis, so an open alarm is kept until the value is that far back.

    >>> spec = RuleSpec(code="x1", title="x", indicator="ponding_cm", thresholds={4: 3, 2: 25})
    >>> graded(30, spec), graded(10, spec), graded(2, spec), graded(2, spec, relax=1.5)
    (2, 4, None, 4)
    """
    if value is None:
        return None
    # rate / baseline / spike metrics are signed so that larger is worse, whatever direction
    rising = spec.direction == "above" or spec.kind in ("rate", "baseline", "spike")
    for level in sorted(spec.thresholds):
        threshold = spec.thresholds[level]
        if rising and value >= threshold - relax:
            return level
        if not rising and value <= threshold + relax:
            return level
    return None


# -- rule caching -----------------------------------------------------------------------------
_cache: dict[str, tuple[tuple[Any, ...], list[StoredRule]]] = {}


def enabled_rules(session: Session) -> list[StoredRule]:
    """Current enabled rules, re-read only when the rule table changed (one cheap query)."""
    stamp = tuple(
        session.execute(
            text(
                "SELECT count(*), coalesce(max(id), 0), count(*) FILTER (WHERE is_enabled) "
                "FROM rule WHERE is_current"
            )
        ).one()
    )
    key = str(session.connection().engine.url)
    cached = _cache.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, current_rules(session, enabled_only=True))
        _cache[key] = cached
    return cached[1]


# -- evaluation -------------------------------------------------------------------------------
def evaluate(
    session: Session,
    sensor_ids: Iterable[int],
    indicators: set[str],
    *,
    now: datetime | None = None,
    oldest: datetime | None = None,
) -> EvaluationReport:
    """Evaluate every enabled rule for the sensors of a batch; flushes, never commits.

    ``oldest`` is the batch's oldest reading time: lookups reach back from it (a backfill of
    old readings is judged on its own history).
    """
    ids = sorted({int(i) for i in sensor_ids})
    report = EvaluationReport()
    if not ids:
        return report
    now = now or datetime.now(UTC)
    since_anchor = min(now, oldest) if oldest is not None else now
    observations: list[Observation] = []
    for rule in enabled_rules(session):
        spec = rule.spec
        if spec.kind == "offline":
            # Reporting sensors are not offline: only open offline alarms can change (clear).
            observations += _observe_reporting(session, rule, ids)
            continue
        if spec.indicator != ANY_INDICATOR and spec.indicator not in indicators:
            continue
        observations += _observe(session, rule, ids, since_anchor)
    _apply(session, observations, now, report)
    return report


def check_offline(session: Session, *, now: datetime | None = None) -> EvaluationReport:
    """Raise offline alarms for sensors silent longer than interval × factor (run periodically)."""
    now = now or datetime.now(UTC)
    report = EvaluationReport()
    observations: list[Observation] = []
    for rule in enabled_rules(session):
        if rule.spec.kind != "offline":
            continue
        rows = session.execute(
            text(
                f"""
                SELECT s.id AS sensor_id, s.asset_id, l.ts, l.value,
                       ST_X(s.geom) lon, ST_Y(s.geom) lat
                FROM sensor s JOIN latest_reading l ON l.sensor_id = s.id
                WHERE s.status = 'active' AND s.interval_s IS NOT NULL
                  AND l.ts < CAST(:now AS timestamptz)
                             - make_interval(secs => s.interval_s * :factor)
                  {_target_sql(rule.spec)}
                """
            ),
            {"now": now, "factor": rule.spec.factor, **_target_params(rule.spec)},
        )
        for r in rows:
            observations.append(
                Observation(
                    rule,
                    r.sensor_id,
                    r.asset_id,
                    r.ts,
                    r.value,
                    rule.spec.level,
                    rule.spec.level,
                    "sensor silent (offline)",
                    r.lon,
                    r.lat,
                )
            )
    _apply(session, observations, now, report)
    return report


def _target_sql(spec: RuleSpec) -> str:
    parts = []
    if spec.indicator != ANY_INDICATOR:
        parts.append("s.kind = :indicator")
    if spec.target.exclude_indicators:
        parts.append("NOT (s.kind = ANY(:exclude_indicators))")
    if spec.target.asset_kinds:
        parts.append("s.asset_id IN (SELECT id FROM asset WHERE kind = ANY(:asset_kinds))")
    if spec.target.asset_ids:
        parts.append("s.asset_id = ANY(:asset_ids)")
    if spec.target.area_wkt:
        parts.append("ST_Intersects(s.geom, ST_GeomFromText(:area_wkt, 4326))")
    return "".join(f" AND {p}" for p in parts)


def _target_params(spec: RuleSpec) -> dict[str, Any]:
    return {
        "indicator": spec.indicator,
        "exclude_indicators": spec.target.exclude_indicators or [],
        "asset_kinds": spec.target.asset_kinds or [],
        "asset_ids": spec.target.asset_ids or [],
        "area_wkt": spec.target.area_wkt,
    }


_ARRAYS: dict[str, Any] = {
    "ids": ARRAY(BigInteger),
    "exclude_indicators": ARRAY(Text),
    "asset_kinds": ARRAY(Text),
    "asset_ids": ARRAY(BigInteger),
    "near_kinds": ARRAY(Text),
}


def _typed(sql: str) -> Any:
    statement = text(sql)
    names = [name for name in _ARRAYS if f":{name}" in sql]
    return statement.bindparams(*(bindparam(n, type_=_ARRAYS[n]) for n in names))


def _observe_reporting(session: Session, rule: StoredRule, ids: list[int]) -> list[Observation]:
    rows = session.execute(
        _typed(
            """
            SELECT a.sensor_id, a.asset_id, l.ts, l.value, NULL::float lon, NULL::float lat
            FROM alarm a JOIN latest_reading l ON l.sensor_id = a.sensor_id
            WHERE a.rule_code = :code AND a.state <> 'closed' AND a.cleared_at IS NULL
              AND a.sensor_id = ANY(:ids)
            """
        ),
        {"code": rule.spec.code, "ids": ids},
    )
    return [
        Observation(rule, r.sensor_id, r.asset_id, r.ts, r.value, None, None, None, None, None)
        for r in rows
    ]


def _lookback(spec: RuleSpec) -> timedelta:
    """How far back a rule may look: bounds every ``reading`` lookup, so the planner prunes
    the daily partitions it does not need (there may be hundreds)."""
    reach = (spec.lag_s or 0) + (spec.window_s or 0) + spec.hold_s
    return max(LOOKBACK, timedelta(seconds=reach) + timedelta(days=1))


def _observe(
    session: Session, rule: StoredRule, ids: list[int], anchor: datetime
) -> list[Observation]:
    spec = rule.spec
    extreme = "min" if spec.direction == "above" else "max"
    divisor = (
        "NULLIF((a.attributes->>:relative_to)::float, 0)" if spec.relative_to else "1.0::float"
    )
    scope = (
        # k-of-n: every sensor of the assets this batch touched, not only those in the batch
        "s.asset_id IN (SELECT asset_id FROM sensor WHERE id = ANY(:ids))"
        if spec.confirm
        else "s.id = ANY(:ids)"
    )
    n_needed = max(spec.persistence_n, spec.n or 1, 2)
    metric = _metric_sql(spec, extreme)
    near = (
        """EXISTS (SELECT 1 FROM asset g WHERE g.kind = ANY(:near_kinds)
                   AND ST_DWithin(g.geom::geography, s.geom::geography, :within_m))"""
        if spec.context
        else "NULL::boolean"
    )
    sql = f"""
        WITH s AS (
            SELECT s.id, s.asset_id, s.geom, {divisor} AS div
            FROM sensor s LEFT JOIN asset a ON a.id = s.asset_id
            WHERE {scope} AND s.status = 'active' {_target_sql(spec)}
        )
        SELECT s.id AS sensor_id, s.asset_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
               w.ts, w.latest AS raw_value, w.held, w.n_held, w.n, s.div, m.*,
               {near} AS near
        FROM s
        CROSS JOIN LATERAL (
            SELECT max(ts) AS ts, (array_agg(value ORDER BY ts DESC))[1] AS latest,
                   {extreme}(value) FILTER (WHERE rn <= :persistence_n) AS held,
                   count(*) FILTER (WHERE rn <= :persistence_n) AS n_held,
                   min(value) AS lowest, max(value) AS highest, count(*) AS n,
                   (array_agg(value ORDER BY ts DESC))[2] AS previous
            FROM (SELECT ts, value, row_number() OVER (ORDER BY ts DESC) AS rn
                  FROM (SELECT ts, value FROM reading WHERE sensor_id = s.id AND ts >= :since
                        ORDER BY ts DESC LIMIT :n_needed) last_n) r
        ) w
        CROSS JOIN LATERAL ({metric}) m
        WHERE w.n > 0 AND s.div IS NOT NULL
    """
    params: dict[str, Any] = {
        "ids": ids,
        "persistence_n": spec.persistence_n,
        "n_needed": n_needed,
        "relative_to": spec.relative_to,
        "window_s": spec.window_s or 0,
        "lag_s": spec.lag_s or 0,
        "hold_s": spec.hold_s,
        "since": anchor - _lookback(spec),
        **_target_params(spec),
    }
    if spec.context:
        params.update(near_kinds=spec.context.near_kinds, within_m=spec.context.within_m)
    rows = session.execute(_typed(sql), params).all()
    observations = [_judge(rule, r) for r in rows]
    return _confirm(rule, observations) if spec.confirm else observations


def _metric_sql(spec: RuleSpec, extreme: str) -> str:
    """A LATERAL subquery giving ``value`` (what thresholds compare) for one sensor ``s``."""
    if spec.kind == "rate":
        sign = "" if spec.direction == "above" else "-"
        return f"""
            SELECT {sign}(w.latest - p.value) / s.div AS value, NULL::float AS hold_value
            FROM (SELECT value FROM reading WHERE sensor_id = s.id AND ts >= :since
                  AND ts <= w.ts - make_interval(secs => :window_s)
                  ORDER BY ts DESC LIMIT 1) p
        """
    if spec.kind == "baseline":
        change = (
            "(b.base - w.latest) / b.base"
            if spec.direction == "below"
            else ("(w.latest - b.base) / b.base")
        )
        return f"""
            SELECT CASE WHEN b.base > 0 THEN {change} END AS value, NULL::float AS hold_value
            FROM (SELECT avg(value) AS base FROM reading WHERE sensor_id = s.id AND ts >= :since
                  AND ts >= w.ts - make_interval(secs => :lag_s + :window_s / 2)
                  AND ts < w.ts - make_interval(secs => :lag_s - :window_s / 2)) b
        """
    if spec.kind == "spike":
        return "SELECT abs(w.latest - w.previous) / s.div AS value, NULL::float AS hold_value"
    if spec.kind == "flatline":
        return """SELECT CASE WHEN w.n >= :n_needed AND w.lowest = w.highest THEN 1 ELSE 0 END
                  AS value, NULL::float AS hold_value"""
    hold = (
        f"""(SELECT {extreme}(value) FROM reading WHERE sensor_id = s.id AND ts >= :since
             AND ts >= (SELECT max(ts) FROM reading WHERE sensor_id = s.id AND ts >= :since
                        AND ts <= w.ts - make_interval(secs => :hold_s)))"""
        if spec.hold_s
        else "NULL::float"
    )
    return f"SELECT w.latest / s.div AS value, {hold} / s.div AS hold_value"


def _judge(rule: StoredRule, row: Any) -> Observation:
    spec = rule.spec
    cause = None
    shift = 0
    raise_level: int | None
    keep_level: int | None
    if spec.context is not None:
        cause = spec.context.cause_if_near if row.near else spec.context.cause_otherwise
        shift = 0 if row.near else spec.context.levels_lower_otherwise
    if spec.kind == "flatline":
        raise_level = keep_level = spec.level if row.value == 1 else None
        cause = "sensor stuck (flatline)"
    elif spec.kind == "spike":
        raise_level = keep_level = spec.level if graded(row.value, spec) is not None else None
        cause = "impossible step between readings"
    elif spec.kind in ("rate", "baseline"):
        raise_level = keep_level = graded(row.value, spec)
    else:
        held = None
        if row.n_held >= spec.persistence_n and row.held is not None:
            held = row.held / row.div
            if spec.hold_s:
                worse = min if spec.direction == "above" else max
                held = worse(held, row.hold_value) if row.hold_value is not None else None
        raise_level = graded(held, spec)
        keep_level = graded(row.value, spec, relax=spec.hysteresis)
    return Observation(
        rule,
        row.sensor_id,
        row.asset_id,
        row.ts,
        row.raw_value,
        _lower(raise_level, shift),
        _lower(keep_level, shift),
        cause if raise_level is not None or keep_level is not None else None,
        row.lon,
        row.lat,
    )


def _lower(level: int | None, by: int) -> int | None:
    return None if level is None else min(4, level + by)


def _confirm(rule: StoredRule, observations: list[Observation]) -> list[Observation]:
    """k-of-n: an asset-level observation where at least k of its sensors agree in time."""
    confirm = rule.spec.confirm
    assert confirm is not None
    by_asset: dict[int, list[Observation]] = {}
    for obs in observations:
        if obs.asset_id is not None:
            by_asset.setdefault(obs.asset_id, []).append(obs)
    out = []
    for asset_id, group in by_asset.items():
        newest = max(o.ts for o in group)
        recent = [o for o in group if (newest - o.ts).total_seconds() <= confirm.window_s]
        raised = sorted(o.raise_level for o in recent if o.raise_level is not None)
        kept = sorted(o.keep_level for o in recent if o.keep_level is not None)
        # the level at least k sensors reach: the k-th most severe
        raise_level = raised[confirm.k - 1] if len(raised) >= confirm.k else None
        keep_level = kept[confirm.k - 1] if len(kept) >= confirm.k else None
        head = max(group, key=lambda o: o.ts)
        cause = f"{len(raised)} of {len(group)} sensors agree" if raise_level else None
        out.append(
            Observation(
                rule,
                None,
                asset_id,
                newest,
                head.raw_value,
                raise_level,
                keep_level,
                cause,
                head.lon,
                head.lat,
            )
        )
    return out


# -- alarms -----------------------------------------------------------------------------------
_OPEN_SQL = text(
    """
    SELECT id, rule_code, sensor_id, asset_id, level, state, cleared_at, peak_value
    FROM alarm
    WHERE state <> 'closed' AND rule_code = ANY(:codes)
      AND (sensor_id = ANY(:sensors) OR (sensor_id IS NULL AND asset_id = ANY(:assets)))
    FOR UPDATE
    """
).bindparams(
    bindparam("codes", type_=ARRAY(Text)),
    bindparam("sensors", type_=ARRAY(BigInteger)),
    bindparam("assets", type_=ARRAY(BigInteger)),
)


def _subject(code: str, sensor_id: int | None, asset_id: int | None) -> tuple[str, int]:
    """An alarm's subject, as the unique index sees it: the sensor, else minus the asset id."""
    return (code, sensor_id if sensor_id is not None else -(asset_id or 0))


def _apply(
    session: Session,
    observations: list[Observation],
    now: datetime,
    report: EvaluationReport,
) -> None:
    """Compare observations with open alarms and write the changes and their events.

    Only abnormal subjects and subjects with an open alarm are looked at further: a normal
    sensor without an alarm costs nothing after the one query below.
    """
    if not observations:
        return
    rows = session.execute(
        _OPEN_SQL,
        {
            "codes": sorted({o.rule.spec.code for o in observations}),
            "sensors": sorted({o.sensor_id for o in observations if o.sensor_id is not None}),
            "assets": sorted({o.asset_id for o in observations if o.asset_id is not None}),
        },
    ).all()
    open_alarms = {_subject(r.rule_code, r.sensor_id, r.asset_id): r for r in rows}
    for obs in observations:
        alarm = open_alarms.get(_subject(obs.rule.spec.code, obs.sensor_id, obs.asset_id))
        if alarm is not None or obs.raise_level is not None:
            _decide(session, obs, alarm, now, report)


def _decide(
    session: Session, obs: Observation, alarm: Any, now: datetime, report: EvaluationReport
) -> None:
    spec = obs.rule.spec
    if alarm is None:
        raised_id = _raise(session, obs, now)
        report.raised += 1
        if raised_id is not None:
            report.alarm_ids.append(raised_id)
        return
    peak = _peak(spec, alarm.peak_value, obs.raw_value)
    if alarm.cleared_at is not None:
        if obs.raise_level is None:
            return
        _update(session, alarm.id, obs, now, level=obs.raise_level, peak=peak, clear=False)
        _event(
            session, alarm.id, alarm.state, alarm.state, alarm.level, obs.raise_level, "recurred"
        )
        report.recurred += 1
        report.alarm_ids.append(alarm.id)
        return
    level = alarm.level
    if obs.raise_level is not None and obs.raise_level < level:
        new_level, note = obs.raise_level, "escalated"
        report.escalated += 1
    elif obs.keep_level is None:
        _update(session, alarm.id, obs, now, level=level, peak=peak, clear=True)
        _event(session, alarm.id, alarm.state, alarm.state, level, level, "cleared")
        report.cleared += 1
        report.alarm_ids.append(alarm.id)
        return
    elif obs.keep_level > level:
        new_level, note = obs.keep_level, "de-escalated"
        report.deescalated += 1
    else:
        new_level, note = level, None
        report.updated += 1
    _update(session, alarm.id, obs, now, level=new_level, peak=peak, clear=False)
    if note:
        _event(session, alarm.id, alarm.state, alarm.state, level, new_level, note)
        report.alarm_ids.append(alarm.id)


def _peak(spec: RuleSpec, peak: float | None, value: float) -> float:
    if peak is None:
        return value
    return max(peak, value) if spec.direction == "above" else min(peak, value)


def _raise(session: Session, obs: Observation, now: datetime) -> int | None:
    alarm_id = session.execute(
        text(
            """
            INSERT INTO alarm (rule_id, rule_code, sensor_id, asset_id, level, state, opened_at,
                               updated_at, last_seen_at, title, cause, first_value, peak_value,
                               last_value, geom)
            VALUES (:rule_id, :code, :sensor_id, :asset_id, :level, 'raised', :now, :now, :ts,
                    :title, :cause, :value, :value, :value,
                    ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326))
            -- a concurrent batch raised it first: leave it to that one (its event is written)
            ON CONFLICT (rule_code, (coalesce(sensor_id, -asset_id))) WHERE state <> 'closed'
            DO NOTHING
            RETURNING id
            """
        ),
        {
            "rule_id": obs.rule.id,
            "code": obs.rule.spec.code,
            "sensor_id": obs.sensor_id,
            "asset_id": obs.asset_id,
            "level": obs.raise_level,
            "now": now,
            "ts": obs.ts,
            "title": obs.rule.spec.title,
            "cause": obs.cause,
            "value": obs.raw_value,
            "lon": obs.lon,
            "lat": obs.lat,
        },
    ).scalar_one_or_none()
    if alarm_id is not None:
        _event(session, alarm_id, None, "raised", None, obs.raise_level, obs.cause)
    return None if alarm_id is None else int(alarm_id)


def _update(
    session: Session,
    alarm_id: int,
    obs: Observation,
    now: datetime,
    *,
    level: int,
    peak: float,
    clear: bool,
) -> None:
    session.execute(
        text(
            """
            UPDATE alarm SET level = :level, last_value = :value, peak_value = :peak,
                   last_seen_at = greatest(last_seen_at, :ts), updated_at = :now,
                   cleared_at = CASE WHEN :clear THEN :now END,
                   cause = coalesce(:cause, cause)
            WHERE id = :id
            """
        ),
        {
            "id": alarm_id,
            "level": level,
            "value": obs.raw_value,
            "peak": peak,
            "ts": obs.ts,
            "now": now,
            "clear": clear,
            "cause": obs.cause,
        },
    )


def _event(
    session: Session,
    alarm_id: int,
    from_state: str | None,
    to_state: str,
    from_level: int | None,
    to_level: int | None,
    note: str | None,
) -> None:
    session.execute(
        text(
            "INSERT INTO alarm_event (alarm_id, actor, from_state, to_state, from_level, "
            "to_level, note) VALUES (:a, :actor, :fs, :ts, :fl, :tl, :note)"
        ),
        {
            "a": alarm_id,
            "actor": ACTOR,
            "fs": from_state,
            "ts": to_state,
            "fl": from_level,
            "tl": to_level,
            "note": note,
        },
    )
