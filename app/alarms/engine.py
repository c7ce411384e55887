"""The rules engine: every reading a batch stored is judged, in time order, in data time.

A batch arrives as columns sorted by (sensor, time) (:class:`app.sensors.ingest.Readings`). The
engine fetches, in one query, the context each sensor's rules need from ``reading`` (the last
few readings before the batch, and those within the longest time window), then judges every
new reading against every rule that applies with vectorised numpy (:mod:`gis.series`): the
metric (value, change over a window, drop against last week, robust z against the learned
profile, CUSUM), persistence and hold (the last *n* readings and *w* seconds must agree), the
level it reaches and the level it still holds with hysteresis. Only subjects that are abnormal
at some reading, or already have an open alarm, go on to the per-subject walk in Python, which
replays the alarm's life through the batch's readings in time order: raise, escalate,
de-escalate, clear, recur. Each alarm is then written once per batch, with one event row per
change carrying the data time of the reading behind it (``alarm_event.ts``), and the alarm the
data time it was raised and cleared at (``opened_ts``, ``cleared_ts``) besides the wall-clock
time it was recorded (``opened_at``, ``cleared_at``; SLA timers start there).

So a day posted at once and the same day posted one reading per request give the same alarms
(tests/app/alarms/test_data_time.py): each reading is judged with the readings before it as
context, whichever batch brought them. A reading older than one already judged (a late
arrival) is judged on the readings before it too; readings after it, already judged, are not
judged again. CUSUM is the one stateful detector: its statistic after the last reading is kept
per rule version and sensor (``detector_state``); a late reading does not move it
(:attr:`EvaluationReport.late`).

One open alarm per (rule, subject) is guaranteed by a partial unique index: open alarms are
locked (``FOR UPDATE``) before they change, and new ones are inserted ``ON CONFLICT DO
NOTHING`` (a concurrent batch that raised it first writes its events).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms.rules import (
    ANY_INDICATOR,
    PROFILE_KINDS,
    RuleSpec,
    StoredRule,
    current_rules,
)
from app.db import ordered_scans, raw_connection
from app.sensors.ingest import Readings
from gis import baseline, series

ACTOR = "engine"
# Readings older than this (before the batch's first reading) are not context of a live sensor.
LOOKBACK = timedelta(days=2)
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LevelArray = npt.NDArray[np.int8]  # 0 = no level, else 1 (I) .. 4 (IV)


@dataclass
class EvaluationReport:
    raised: int = 0
    updated: int = 0
    escalated: int = 0
    deescalated: int = 0
    cleared: int = 0
    recurred: int = 0
    judged: int = 0  # readings judged (of active sensors)
    late: int = 0  # readings older than a CUSUM's state: judged by other rules only
    uncalibrated: int = 0  # readings a residual/CUSUM rule targets whose sensor has no profile
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
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    level = int(grade(np.array([value], dtype=np.float64), spec, relax=relax)[0])
    return level or None


def _rising(spec: RuleSpec) -> bool:
    """Larger is worse: every kind but a threshold ``below`` (its metrics are signed so)."""
    return spec.direction == "above" or spec.kind != "threshold"


def grade(values: FloatArray, spec: RuleSpec, *, relax: float = 0.0) -> LevelArray:
    """:func:`graded` for an array: 0 where no threshold is met (or the value is NaN)."""
    out = np.zeros(values.size, dtype=np.int8)
    rising = _rising(spec)
    # least severe first, so a more severe level overwrites it
    for level in sorted(spec.thresholds, reverse=True):
        threshold = spec.thresholds[level]
        met = values >= threshold - relax if rising else values <= threshold + relax
        out[met] = level
    return out


# -- cached lookups ---------------------------------------------------------------------------
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


@dataclass(frozen=True, eq=False)
class _Profile:
    """One sensor's current profile (``sensor_profile``), bins flattened day-type-major."""

    id: int
    bin_s: int
    day_mode: baseline.DayMode
    utc_offset_s: float
    centre: FloatArray
    spread: FloatArray
    floor: float  # the spread floor: max(MIN_SPREAD, MIN_SPREAD_REL × |global median|)
    learned: dict[str, Any]


def spread_floor(global_centre: float | None, resolution: float | None) -> float:
    """The least spread a z-score divides by: the sensor's resolution (its smallest step
    between distinct readings in calibration: a deviation under one quantum is not a reading
    apart), else 1 % of its usual level (:data:`gis.baseline.MIN_SPREAD_REL`, for sensors
    calibrated without one). Not less than :data:`gis.baseline.MIN_SPREAD`.

    The 1 % floor hid most leaks of the KY4 benchmark: 0.6 m of head on a 60 m zone, against
    leak signals of 0.1–0.2 m (bench/warning_eval.py, the leaks case).

    >>> spread_floor(60.0, 0.0017), spread_floor(60.0, None)
    (0.0017, 0.6)
    """
    if resolution is not None and resolution > 0:
        return max(baseline.MIN_SPREAD, float(resolution))
    return max(baseline.MIN_SPREAD, baseline.MIN_SPREAD_REL * abs(float(global_centre or 0.0)))


# Profiles are immutable per id (a new calibration is a new row), so a cache by id is exact;
# the stamp (count, max id of current rows) says when the set of current ones changed.
_profiles: dict[str, tuple[tuple[Any, ...], dict[int, _Profile]]] = {}


def current_profiles(session: Session) -> dict[int, _Profile]:
    """Current profile per sensor id, re-read when ``sensor_profile`` changed."""
    stamp = tuple(
        session.execute(
            text("SELECT count(*), coalesce(max(id), 0) FROM sensor_profile WHERE is_current")
        ).one()
    )
    key = str(session.connection().engine.url)
    cached = _profiles.get(key)
    if cached is None or cached[0] != stamp:
        old = cached[1] if cached else {}
        known = {p.id: p for p in old.values()}
        rows = session.execute(
            text(
                "SELECT id, sensor_id, bin_s, day_mode, utc_offset_s, global_centre, learned, "
                "CASE WHEN NOT (id = ANY(:known)) THEN centre END AS centre, "
                "CASE WHEN NOT (id = ANY(:known)) THEN spread END AS spread "
                "FROM sensor_profile WHERE is_current"
            ),
            {"known": list(known)},
        ).all()
        profiles: dict[int, _Profile] = {}
        for r in rows:
            if r.centre is None:
                profiles[int(r.sensor_id)] = known[int(r.id)]
                continue
            profiles[int(r.sensor_id)] = _Profile(
                id=int(r.id),
                bin_s=int(r.bin_s),
                day_mode=r.day_mode,
                utc_offset_s=float(r.utc_offset_s),
                centre=np.asarray(r.centre, dtype=np.float64),
                spread=np.asarray(r.spread, dtype=np.float64),
                floor=spread_floor(r.global_centre, (r.learned or {}).get("resolution")),
                learned=dict(r.learned or {}),
            )
        cached = (stamp, profiles)
        _profiles[key] = cached
    return cached[1]


# -- the batch's sensors and series -----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Sensors:
    """The sensors a batch touches, as columns sorted by id."""

    id: IntArray
    kind: npt.NDArray[np.object_]
    asset_id: IntArray  # -1: unbound
    asset_kind: npt.NDArray[np.object_]
    lon: FloatArray
    lat: FloatArray
    interval_s: FloatArray  # NaN: unknown
    active: npt.NDArray[np.bool_]
    attrs: dict[str, FloatArray]  # asset attribute (design limits) per relative_to key
    zone: npt.NDArray[np.object_]  # pressure / supply zone ('' : none given)

    def pos(self, ids: npt.ArrayLike) -> IntArray:
        return np.searchsorted(self.id, np.asarray(ids, dtype=np.int64)).astype(np.int64)

    def take(self, ids: npt.ArrayLike) -> _Sensors:
        """The sensors ``ids`` that are here, sorted by id (unknown ids are left out)."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        at = np.minimum(self.pos(wanted), max(self.id.size - 1, 0))
        rows = at[self.id[at] == wanted] if self.id.size else at[:0]
        return _Sensors(
            id=self.id[rows],
            kind=self.kind[rows],
            asset_id=self.asset_id[rows],
            asset_kind=self.asset_kind[rows],
            lon=self.lon[rows],
            lat=self.lat[rows],
            interval_s=self.interval_s[rows],
            active=self.active[rows],
            attrs={key: values[rows] for key, values in self.attrs.items()},
            zone=self.zone[rows],
        )


def _load_sensors(
    session: Session,
    ids: Sequence[int],
    keys: list[str],
    kinds: Sequence[str] | None = None,
) -> _Sensors:
    """The sensors ``ids`` (those that exist) as columns sorted by id; the asset attributes
    ``keys`` (design limits) only for assets of ``kinds`` (None: any kind).

    Taken from a copy of the whole fleet held per database, ``sensor`` and ``asset`` data
    versions and ``keys`` / ``kinds``: reading the batch's 1,650 sensors with their assets'
    attributes took 29 ms of a 238 ms demo-city batch (stop 23, in-process). Both tables bump
    their ``data_version`` row with a never-reused sequence value on every write (migrations
    0007 and 0010), so a copy whose versions are current is exact; one tiny query checks them.
    """
    versions = tuple(
        session.execute(
            text("SELECT version FROM data_version WHERE name IN ('sensor', 'asset') ORDER BY name")
        ).scalars()
    )
    url = str(session.connection().engine.url)
    key = (url, versions, tuple(keys), None if kinds is None else tuple(kinds))
    fleet = _fleets.get(key)
    if fleet is None:
        fleet = _read_sensors(session, keys, kinds)
        with _fleets_lock:
            for stale in [k for k in _fleets if k[0] == url and k[1] != versions]:
                del _fleets[stale]
            _fleets[key] = fleet
    return fleet.take(ids)


_fleets: dict[tuple[Any, ...], _Sensors] = {}
_fleets_lock = threading.Lock()


def _read_sensors(session: Session, keys: list[str], kinds: Sequence[str] | None) -> _Sensors:
    """Every sensor, as :func:`_load_sensors` gives them (one query, plain tuples)."""
    cur = raw_connection(session).cursor()
    cur.execute(
        """
        SELECT s.id, s.kind, coalesce(s.asset_id, -1), a.kind, ST_X(s.geom), ST_Y(s.geom),
               s.interval_s, s.status = 'active',
               CASE WHEN cardinality(%(keys)s::text[]) > 0
                     AND (%(any_kind)s OR a.kind = ANY(%(kinds)s::text[])) THEN
                   (SELECT jsonb_object_agg(key, value) FROM jsonb_each(a.attributes)
                    WHERE key = ANY(%(keys)s::text[])) END,
               coalesce(s.attributes->>'zone', a.attributes->>'zone', a.attributes->>'dma', '')
        FROM sensor s LEFT JOIN asset a ON a.id = s.asset_id
        ORDER BY s.id
        """,
        {"keys": keys, "kinds": list(kinds or []), "any_kind": kinds is None},
    )
    rows = cur.fetchall()
    n = len(rows)

    columns = list(zip(*rows, strict=True)) if rows else [()] * 10

    def col(i: int, dtype: Any, missing: Any = None) -> Any:
        values = columns[i]
        if missing is not None and None in values:
            values = tuple(missing if v is None else v for v in values)
        return np.array(values, dtype=dtype)

    attrs: dict[str, FloatArray] = {}
    for key in keys:
        values = np.full(n, np.nan)
        for i in (i for i, r in enumerate(rows) if r[8]):
            values[i] = _number(rows[i][8].get(key))
        attrs[key] = values
    return _Sensors(
        id=col(0, np.int64),
        kind=col(1, object),
        asset_id=col(2, np.int64),
        asset_kind=col(3, object),
        lon=col(4, np.float64, np.nan),
        lat=col(5, np.float64, np.nan),
        interval_s=col(6, np.float64, np.nan),
        active=col(7, bool, False) if n else np.zeros(0, dtype=bool),
        attrs=attrs,
        zone=col(9, object, ""),
    )


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


@dataclass(frozen=True, eq=False)
class _Series:
    """New readings and their context, sorted by (sensor, time)."""

    sid: IntArray
    t_us: IntArray  # data time, integer µs since the epoch (exact searches)
    value: FloatArray
    new: npt.NDArray[np.bool_]
    spos: IntArray  # the row's sensor's position in _Sensors
    starts: IntArray  # first row of the row's sensor
    # First row of its sensor within LOOKBACK before the row: what judging it may look back
    # at. A reading alone in its request sees exactly these as context, so every lookup is
    # bounded by them, and a day-sized batch judges each reading on the same rows.
    floors: IntArray

    def take(self, rows: npt.NDArray[np.bool_]) -> _Series:
        sid, t = self.sid[rows], self.t_us[rows]
        starts = series.group_starts(sid)
        return _Series(
            sid, t, self.value[rows], self.new[rows], self.spos[rows], starts,
            _floors(sid, t, starts),
        )  # fmt: skip

    @staticmethod
    def build(
        sensors: _Sensors,
        parts: Iterable[tuple[IntArray, IntArray, FloatArray, bool]],
    ) -> _Series:
        sid_l, t_l, v_l, new_l = [], [], [], []
        for sid, t, v, is_new in parts:
            sid_l.append(sid)
            t_l.append(t)
            v_l.append(v)
            new_l.append(np.full(sid.size, is_new))
        sid = np.concatenate(sid_l) if sid_l else np.zeros(0, np.int64)
        t = np.concatenate(t_l) if t_l else np.zeros(0, np.int64)
        v = np.concatenate(v_l) if v_l else np.zeros(0)
        new = np.concatenate(new_l) if new_l else np.zeros(0, bool)
        # sort by (sensor, time, new first) and drop context rows that repeat a new reading
        order = np.lexsort((~new, t, sid))
        sid, t, v, new = sid[order], t[order], v[order], new[order]
        keep = np.ones(sid.size, dtype=bool)
        keep[1:] = (sid[1:] != sid[:-1]) | (t[1:] != t[:-1])
        sid, t, v, new = sid[keep], t[keep], v[keep], new[keep]
        starts = series.group_starts(sid)
        return _Series(sid, t, v, new, sensors.pos(sid), starts, _floors(sid, t, starts))


def _floors(sid: IntArray, t_us: IntArray, starts: IntArray) -> IntArray:
    """Index of each row's first same-sensor row no older than LOOKBACK before it."""
    lookback_us = int(LOOKBACK.total_seconds()) * _US
    j = series.at_or_before(sid, t_us, t_us - lookback_us - 1, sid)
    return np.maximum(starts, j + 1)


_CONTEXT_SQL = """
WITH b AS (
    SELECT sid, k, 'epoch'::timestamptz + t0 * interval '1 microsecond' AS t0,
           'epoch'::timestamptz + t1 * interval '1 microsecond' AS t1,
           reach * interval '1 microsecond' AS reach
    FROM unnest(%(sid)s::int8[], %(t0)s::int8[], %(t1)s::int8[], %(k)s::int4[],
                %(reach)s::int8[]) AS b(sid, t0, t1, k, reach)
), last_k AS (
    SELECT b.sid, r.ts, r.value FROM b
    CROSS JOIN LATERAL (
        SELECT ts, value FROM reading
        WHERE sensor_id = b.sid AND ts < b.t0 AND ts >= b.t0 - %(lookback)s::interval
          AND ts >= %(lo)s AND ts <= %(hi)s
        ORDER BY ts DESC LIMIT b.k
    ) r
    WHERE b.k > 0
), span AS (
    -- the time window reaches back from the earliest of those rows: a rate over 5 min at
    -- each of the last n readings needs the readings 5 min before each
    SELECT b.sid, b.t0, b.t1, b.reach, least(b.t0, min(l.ts)) AS start
    FROM b LEFT JOIN last_k l ON l.sid = b.sid
    GROUP BY b.sid, b.t0, b.t1, b.reach
)
SELECT sid, (extract(epoch FROM ts) * 1000000)::int8, value FROM last_k
UNION ALL
SELECT span.sid, (extract(epoch FROM r.ts) * 1000000)::int8, r.value FROM span
CROSS JOIN LATERAL (
    SELECT ts, value FROM reading
    WHERE sensor_id = span.sid AND ts >= span.start - span.reach AND ts <= span.t1
      AND ts >= span.t0 - %(lookback)s::interval AND ts >= %(lo)s AND ts <= %(hi)s
) r
WHERE span.reach > interval '0' OR span.t1 > span.start
UNION ALL
-- and the last reading before that window: "the reading at or before t − 5 min" may be older
SELECT span.sid, (extract(epoch FROM r.ts) * 1000000)::int8, r.value FROM span
CROSS JOIN LATERAL (
    SELECT ts, value FROM reading
    WHERE sensor_id = span.sid AND ts < span.start - span.reach
      AND ts >= span.t0 - %(lookback)s::interval AND ts >= %(lo)s AND ts <= %(hi)s
    ORDER BY ts DESC LIMIT 1
) r
WHERE span.reach > interval '0'
"""


def _array(values: npt.NDArray[Any]) -> str:
    """A numeric array as a PostgreSQL array literal (cast in the SQL): psycopg adapts a list
    element by element (0.34 s for the arrays of a 50,000-reading batch; this is 20 ms)."""
    return "{" + ",".join(map(str, values.tolist())) + "}"


def _fetch_context(
    session: Session,
    sid: IntArray,
    t0: IntArray,
    t1: IntArray,
    k: IntArray,
    reach_us: IntArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Readings before each sensor's first new one (the last ``k``, and those within
    ``reach_us``) and the stored ones between its first and last new reading."""
    if not sid.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    lookback_us = int(LOOKBACK.total_seconds()) * _US
    lo = int((t0 - lookback_us).min())
    with ordered_scans(session):
        cur = raw_connection(session).cursor()
        cur.execute(
            _CONTEXT_SQL,
            {
                "sid": _array(sid),
                "t0": _array(t0),
                "t1": _array(t1),
                "k": _array(k),
                "reach": _array(reach_us),
                "lookback": LOOKBACK,
                "lo": _EPOCH + timedelta(microseconds=lo),
                "hi": _EPOCH + timedelta(microseconds=int(t1.max())),
            },
        )
    rows = cur.fetchall()
    n = len(rows)
    return (
        np.fromiter((r[0] for r in rows), np.int64, n),
        np.fromiter((r[1] for r in rows), np.int64, n),
        np.fromiter((r[2] for r in rows), np.float64, n),
    )


# -- evaluation -------------------------------------------------------------------------------
@dataclass
class _Obs:
    """What one rule saw at the new readings of its subjects: one entry per reading."""

    rule: StoredRule
    sensor_id: IntArray  # -1 for asset-level (k-of-n) subjects
    asset_id: IntArray
    t_us: IntArray
    value: FloatArray
    raise_level: LevelArray
    keep_level: LevelArray
    cause: npt.NDArray[np.object_]
    lon: FloatArray
    lat: FloatArray
    new: npt.NDArray[np.bool_] | None = None  # k-of-n input: which rows are new (else all)


def _targets(spec: RuleSpec, sensors: _Sensors) -> npt.NDArray[np.bool_]:
    """Which of the batch's sensors a rule applies to (indicator, target, active)."""
    mask = sensors.active.copy()
    if spec.indicator != ANY_INDICATOR:
        mask &= sensors.kind == spec.indicator
    target = spec.target
    if target.exclude_indicators:
        mask &= ~np.isin(sensors.kind, target.exclude_indicators)
    if target.asset_kinds:
        mask &= np.isin(sensors.asset_kind, target.asset_kinds)
    if target.asset_ids:
        mask &= np.isin(sensors.asset_id, target.asset_ids)
    if target.area_wkt:
        area = _area(target.area_wkt)
        mask &= np.asarray(shapely.intersects_xy(area, sensors.lon, sensors.lat), dtype=bool)
    return mask


_areas: dict[str, Any] = {}


def _area(wkt: str) -> Any:
    area = _areas.get(wkt)
    if area is None:
        area = shapely.from_wkt(wkt)
        shapely.prepare(area)
        if len(_areas) > 256:
            _areas.clear()
        _areas[wkt] = area
    return area


def _needs(spec: RuleSpec) -> tuple[int, int]:
    """Context a rule needs before a sensor's first new reading: rows, and seconds."""
    rows = spec.persistence_n - 1
    if spec.kind == "spike":
        rows = max(rows, 1)
    if spec.kind == "flatline":
        rows = max(rows, (spec.n or 2) - 1)
    seconds = spec.hold_s
    if spec.kind == "rate":
        seconds += spec.window_s or 0
    if spec.kind == "offline":
        rows = max(rows, 1)
    if spec.confirm is not None:
        seconds += spec.confirm.window_s
    return rows, seconds


def evaluate(
    session: Session, readings: Readings | None, *, now: datetime | None = None
) -> EvaluationReport:
    """Judge every reading of ``readings`` (a batch just stored) by every enabled rule, in
    time order; raise, move and clear alarms; flushes, never commits."""
    report = EvaluationReport()
    if readings is None or not len(readings):
        return report
    now = now or datetime.now(UTC)
    rules = enabled_rules(session)
    if not rules:
        return report
    new_sid = readings.sensor_id.astype(np.int64)
    new_t = readings.ts.astype("datetime64[us]").astype(np.int64)
    new_v = readings.value.astype(np.float64)
    ids = np.unique(new_sid)
    relative = [r.spec for r in rules if r.spec.relative_to]
    keys = sorted({spec.relative_to for spec in relative if spec.relative_to})
    limit_kinds: list[str] | None = sorted(
        {k for spec in relative for k in (spec.target.asset_kinds or [])}
    )
    if any(not spec.target.asset_kinds for spec in relative):
        limit_kinds = None
    # k-of-n rules judge every sensor of the assets the batch touched
    extra = _asset_siblings(session, ids, rules)
    sensors = _load_sensors(
        session, np.union1d(ids, np.asarray(extra, np.int64)).tolist(), keys, limit_kinds
    )
    applicable = [(rule, _targets(rule.spec, sensors)) for rule in rules]
    applicable = [(rule, mask) for rule, mask in applicable if mask.any()]
    if not applicable:
        return report

    # Context per sensor: the most rows and seconds any of its rules needs.
    k = np.zeros(sensors.id.size, dtype=np.int64)
    reach_s = np.zeros(sensors.id.size, dtype=np.int64)
    for rule, mask in applicable:
        n_rows, seconds = _needs(rule.spec)
        if rule.spec.kind == "flatline":
            n_rows = min(n_rows, 2)  # a first look: longer runs are fetched for the few needing it
        k[mask] = np.maximum(k[mask], n_rows)
        reach_s[mask] = np.maximum(reach_s[mask], seconds)
    first = np.ones(new_sid.size, dtype=bool)
    first[1:] = new_sid[1:] != new_sid[:-1]
    last = np.ones(new_sid.size, dtype=bool)
    last[:-1] = new_sid[1:] != new_sid[:-1]
    t0 = np.full(sensors.id.size, np.iinfo(np.int64).max, dtype=np.int64)
    t1 = np.full(sensors.id.size, np.iinfo(np.int64).min, dtype=np.int64)
    t0[sensors.pos(new_sid[first])] = new_t[first]
    t1[sensors.pos(new_sid[last])] = new_t[last]
    siblings = t0 == np.iinfo(np.int64).max  # sensors without new readings (k-of-n siblings)
    if siblings.any():
        t0[siblings], t1[siblings] = new_t.min(), new_t.max()
    ctx = _fetch_context(session, sensors.id, t0, t1, k, reach_s * _US)
    data = _Series.build(sensors, [(*ctx, False), (new_sid, new_t, new_v, True)])
    profiles = (
        current_profiles(session)
        if any(r.spec.kind in (*PROFILE_KINDS, "flatline") for r, _ in applicable)
        else {}
    )
    data = _longer_runs(session, sensors, data, applicable, profiles, t0)
    report.judged = int((data.new & sensors.active[data.spos]).sum())
    observations: list[_Obs] = []
    for rule, mask in applicable:
        rows = mask[data.spos]
        if not (rows & data.new).any():
            continue
        sub = data.take(rows)
        kind = rule.spec.kind
        if kind == "offline":
            observations.append(_offline_in_data(rule, sensors, sub))
        elif kind == "flatline":
            observations.append(_flatline(rule, sensors, sub, profiles))
        else:
            if rule.spec.confirm:
                every = _graded(session, rule, sensors, sub, profiles, report, every_row=True)
                observations.append(_confirm(every))
            else:
                observations.append(_graded(session, rule, sensors, sub, profiles, report))
    _apply(session, observations, now, report)
    return report


def _asset_siblings(session: Session, ids: IntArray, rules: list[StoredRule]) -> list[int]:
    """The other active sensors of the assets a k-of-n rule may judge (its target kinds only:
    a self-join over every bound sensor cost 62 ms a demo batch)."""
    confirm = [r.spec for r in rules if r.spec.confirm]
    if not confirm:
        return []
    kinds = sorted({k for spec in confirm for k in (spec.target.asset_kinds or [])})
    any_kind = any(not spec.target.asset_kinds for spec in confirm)
    rows = session.execute(
        text(
            "SELECT s2.id FROM sensor s2 WHERE s2.status = 'active' AND s2.asset_id IN ("
            "SELECT s.asset_id FROM sensor s JOIN asset a ON a.id = s.asset_id "
            "WHERE s.id = ANY(CAST(:ids AS int8[])) "
            "AND (:any_kind OR a.kind = ANY(CAST(:kinds AS text[]))))"
        ),
        {"ids": _array(ids), "kinds": kinds, "any_kind": any_kind},
    )
    return [int(r[0]) for r in rows]


def _longer_runs(
    session: Session,
    sensors: _Sensors,
    data: _Series,
    applicable: list[tuple[StoredRule, npt.NDArray[np.bool_]]],
    profiles: dict[int, _Profile],
    t0: IntArray,
) -> _Series:
    """Flatline needs up to ``n`` identical readings before the batch; the first look fetched
    two. Sensors whose context so far is one unbroken run get the rest (rare: most sensors'
    readings change every time)."""
    need = np.zeros(sensors.id.size, dtype=np.int64)
    for rule, mask in applicable:
        if rule.spec.kind != "flatline":
            continue
        for at in np.flatnonzero(mask):
            n = _flatline_need(rule.spec, profiles.get(int(sensors.id[at])))
            if n != _NEVER:
                need[at] = max(need[at], n - 1)
    if not need.any():
        return data
    run = series.run_length(data.value, data.starts)
    pos = np.arange(data.sid.size)
    first_new = np.flatnonzero(data.new & ((pos == data.starts) | ~np.roll(data.new, 1)))
    spos = data.spos[first_new]
    ctx_rows = first_new - data.starts[first_new]  # context rows before the first new one
    # every context row and the first new reading are one run: more of it may lie before
    more = np.zeros(sensors.id.size, dtype=bool)
    more[spos] = (ctx_rows > 0) & (run[first_new] == ctx_rows + 1) & (need[spos] > ctx_rows)
    if not more.any():
        return data
    extra = _fetch_context(
        session,
        sensors.id[more],
        t0[more],
        t0[more],
        need[more],
        np.zeros(int(more.sum()), dtype=np.int64),
    )
    return _Series.build(
        sensors,
        [
            (data.sid[~data.new], data.t_us[~data.new], data.value[~data.new], False),
            (*extra, False),
            (data.sid[data.new], data.t_us[data.new], data.value[data.new], True),
        ],
    )


def _divisor(rule: StoredRule, sensors: _Sensors, sub: _Series) -> FloatArray:
    key = rule.spec.relative_to
    if not key:
        return np.ones(sub.sid.size)
    div = sensors.attrs[key][sub.spos]
    return np.where(div == 0, np.nan, div)


def _metric(
    session: Session,
    rule: StoredRule,
    sensors: _Sensors,
    sub: _Series,
    profiles: dict[int, _Profile],
    report: EvaluationReport,
) -> FloatArray:
    """What the thresholds compare, per row (NaN: not judged), signed so larger is worse
    (except a threshold ``below``, compared as is)."""
    spec = rule.spec
    v = sub.value / _divisor(rule, sensors, sub)
    kind = spec.kind
    if kind == "threshold":
        return v
    if kind == "spike":
        return np.abs(v - series.shifted(v, sub.floors, 1))
    if kind == "rate":
        j = series.at_or_before(sub.sid, sub.t_us, sub.t_us - (spec.window_s or 0) * _US, sub.sid)
        before = np.where(j >= sub.floors, v[np.maximum(j, 0)], np.nan)
        change = v - before
        return change if spec.direction == "above" else -change
    if kind == "baseline":
        return _baseline(session, rule, sub, v)
    z = _z(sub, profiles, report)
    if np.isnan(z).all():
        return z  # no sensor here has a profile yet: nothing to judge, no state to read
    if spec.direction == "below":
        z = -z
    if spec.peers:
        z = z - _peer_median(session, rule, sensors, sub, profiles, report)
    if kind == "residual":
        return z / _scale(rule, sub, profiles)
    # cusum
    return _cusum(session, rule, sub, z, profiles, report) / _scale(rule, sub, profiles)


def _runs(sid: IntArray) -> list[tuple[int, slice]]:
    """Each sensor's rows in a (sensor, time)-sorted array: (sensor id, slice)."""
    if not sid.size:
        return []
    ids, first, count = np.unique(sid, return_index=True, return_counts=True)
    return [(int(i), slice(int(a), int(a + c))) for i, a, c in zip(ids, first, count, strict=True)]


def _baseline(session: Session, rule: StoredRule, sub: _Series, v: FloatArray) -> FloatArray:
    """Relative change against the mean of the window ``lag_s`` earlier (SQL: one lateral
    average per new reading, summed in index order, so any batching gives the same mean)."""
    spec = rule.spec
    out = np.full(sub.sid.size, np.nan)
    # the new rows, and the context rows persistence and hold look back at
    need = sub.new.copy()
    if spec.hold_s:
        need[:] = True
    for j in range(1, spec.persistence_n):
        ahead = np.zeros(sub.sid.size, dtype=bool)
        ahead[:-j] = sub.new[j:] & (sub.sid[j:] == sub.sid[:-j])
        need |= ahead
    rows = np.flatnonzero(need)
    lag, half = spec.lag_s or 0, (spec.window_s or 0) / 2
    cur = raw_connection(session).cursor()
    cur.execute(
        """
        SELECT x.i, b.base FROM unnest(%(sid)s::int8[], %(t)s::int8[]) WITH ORDINALITY
            AS x(sid, t, i)
        CROSS JOIN LATERAL (
            SELECT avg(value) AS base FROM reading
            WHERE sensor_id = x.sid
              AND ts >= 'epoch'::timestamptz + (x.t - %(before)s) * interval '1 microsecond'
              AND ts < 'epoch'::timestamptz + (x.t - %(after)s) * interval '1 microsecond'
              AND ts >= %(lo)s AND ts < %(hi)s
        ) b
        """,
        {
            "sid": _array(sub.sid[rows]),
            "t": _array(sub.t_us[rows]),
            "before": int((lag + half) * _US),
            "after": int((lag - half) * _US),
            "lo": _EPOCH + timedelta(microseconds=int(sub.t_us[rows].min() - (lag + half) * _US)),
            "hi": _EPOCH + timedelta(microseconds=int(sub.t_us[rows].max() - (lag - half) * _US)),
        },
    )
    base = np.full(rows.size, np.nan)
    for i, b in cur.fetchall():
        base[int(i) - 1] = np.nan if b is None else float(b)
    latest = v[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (base - latest) / base if spec.direction == "below" else (latest - base) / base
    out[rows] = np.where(base > 0, change, np.nan)
    return out


def _z(sub: _Series, profiles: dict[int, _Profile], report: EvaluationReport) -> FloatArray:
    """Robust z-score of each row against its sensor's profile (NaN: no profile)."""
    z = np.full(sub.sid.size, np.nan)
    for sid, rows in _runs(sub.sid):
        p = profiles.get(sid)
        if p is None:
            report.uncalibrated += int(sub.new[rows].sum())
            continue
        b = baseline.bin_index(
            sub.t_us[rows] / _US, bin_s=p.bin_s, day_mode=p.day_mode, utc_offset_s=p.utc_offset_s
        )
        spread = np.maximum(p.spread[b], p.floor)
        z[rows] = (sub.value[rows] - p.centre[b]) / spread
    return z


def _peer_median(
    session: Session,
    rule: StoredRule,
    sensors: _Sensors,
    sub: _Series,
    profiles: dict[int, _Profile],
    report: EvaluationReport,
) -> FloatArray:
    """The median z of the zone's sensors (the rule's targets) at each row's time step, from
    what is stored: the batch's own readings and its peers' (signed as the rule's metric)."""
    spec = rule.spec
    step_us = spec.peer_step_s * _US
    zones = sorted({str(z) for z in sensors.zone[np.unique(sub.spos)]})
    ids = [
        int(r[0])
        for r in session.execute(
            text(
                "SELECT s.id FROM sensor s LEFT JOIN asset a ON a.id = s.asset_id "
                "WHERE s.kind = :k AND s.status = 'active' AND coalesce(s.attributes->>'zone', "
                "a.attributes->>'zone', a.attributes->>'dma', '') = ANY(CAST(:z AS text[]))"
            ),
            {"k": spec.indicator, "z": zones},
        )
    ]
    peers = _load_sensors(session, ids, [])
    chosen = peers.id[_targets(spec, peers) & np.isin(peers.id, list(profiles))]
    lo, hi = int(sub.t_us.min()), int(sub.t_us.max())
    cur = raw_connection(session).cursor()
    cur.execute(
        "SELECT sensor_id, (extract(epoch FROM ts) * 1000000)::int8, value FROM reading "
        "WHERE sensor_id = ANY(%(ids)s::int8[]) AND ts >= %(lo)s AND ts <= %(hi)s "
        "ORDER BY sensor_id, ts",
        {"ids": _array(chosen), "lo": _ts(lo - step_us), "hi": _ts(hi + step_us)},
    )
    rows = cur.fetchall()
    n = len(rows)
    psid = np.fromiter((r[0] for r in rows), np.int64, n)
    pt = np.fromiter((r[1] for r in rows), np.int64, n)
    pv = np.fromiter((r[2] for r in rows), np.float64, n)
    peer_rows = _Series(psid, pt, pv, np.zeros(n, bool), peers.pos(psid), series.group_starts(psid),
                        series.group_starts(psid))  # fmt: skip
    pz = _z(peer_rows, profiles, EvaluationReport())
    if spec.direction == "below":
        pz = -pz
    zone_of = {z: i for i, z in enumerate(zones)}
    pzone = np.array([zone_of.get(str(z), -1) for z in peers.zone[peer_rows.spos]], np.int64)
    # one median per (zone, step) from the peers, looked up for every row of the rule
    bucket = pt // step_us
    sub_zone = np.array([zone_of[str(z)] for z in sensors.zone[sub.spos]], dtype=np.int64)
    sub_bucket = sub.t_us // step_us
    both_z = np.concatenate([pz, np.full(sub.sid.size, np.nan)])
    med, _ = series.peer_median(
        both_z,
        np.concatenate([pzone, sub_zone]),
        np.concatenate([bucket, sub_bucket]),
    )
    return med[n:]  # in the metric's sign already (peers' z flipped as the rule's)


def _scale(rule: StoredRule, sub: _Series, profiles: dict[int, _Profile]) -> FloatArray:
    """Per-row divisor learned by ``calibrate``: max(1, margin × in-control max ÷ lowest
    threshold), so the calibration window would not have raised the lowest level."""
    lowest = min(rule.spec.thresholds.values())
    scale = np.ones(sub.sid.size)
    for sid, rows in _runs(sub.sid):
        p = profiles.get(sid)
        learned = (p.learned.get("rules", {}).get(rule.spec.code) or {}) if p else {}
        peak = learned.get("max")
        if peak is not None and lowest > 0:
            scale[rows] = max(1.0, rule.spec.margin * float(peak) / lowest)
    return scale


def _cusum(
    session: Session,
    rule: StoredRule,
    sub: _Series,
    z: FloatArray,
    profiles: dict[int, _Profile],
    report: EvaluationReport,
) -> FloatArray:
    """One-sided CUSUM on the new rows, continued from ``detector_state``; stores the state."""
    k = rule.spec.k if rule.spec.k is not None else baseline.CUSUM_K
    ids = np.unique(sub.sid)
    rows = session.execute(
        text(
            "SELECT sensor_id, (extract(epoch FROM ts) * 1000000)::int8, value, profile_id "
            "FROM detector_state WHERE rule_id = :r AND sensor_id = ANY(CAST(:ids AS int8[]))"
        ),
        {"r": rule.id, "ids": ids.tolist()},
    ).all()
    state = {int(r[0]): (int(r[1]), float(r[2]), r[3]) for r in rows}
    state_t = np.full(sub.sid.size, np.iinfo(np.int64).min, dtype=np.int64)
    initial = np.zeros(sub.sid.size)
    for sid, rows_ in _runs(sub.sid):
        if sid not in state:
            continue
        t_us, value, profile_id = state[sid]
        p = profiles.get(sid)
        if p is None or p.id != profile_id:
            continue  # a new calibration restarts the statistic
        state_t[rows_], initial[rows_] = t_us, value
    feed = sub.new & (sub.t_us > state_t) & ~np.isnan(z)
    late = sub.new & (sub.t_us <= state_t)
    report.late += int(late.sum())
    x = np.where(feed, z - k, np.nan)
    w = series.lindley(x, sub.starts, initial)
    # the state after each sensor's last fed reading
    fed = np.flatnonzero(feed)
    if fed.size:
        last = np.ones(fed.size, dtype=bool)
        last[:-1] = sub.sid[fed][1:] != sub.sid[fed][:-1]
        at = fed[last]
        session.execute(
            text(
                """
                INSERT INTO detector_state AS d (rule_id, sensor_id, ts, value, profile_id)
                SELECT :r, u.sid, 'epoch'::timestamptz + u.t * interval '1 microsecond', u.w, u.p
                FROM unnest(CAST(:sid AS int8[]), CAST(:t AS int8[]), CAST(:w AS float8[]),
                            CAST(:p AS int8[])) AS u(sid, t, w, p)
                ON CONFLICT (rule_id, sensor_id) DO UPDATE
                SET ts = EXCLUDED.ts, value = EXCLUDED.value, profile_id = EXCLUDED.profile_id
                """
            ),
            {
                "r": rule.id,
                "sid": sub.sid[at].tolist(),
                "t": sub.t_us[at].tolist(),
                "w": w[at].tolist(),
                "p": [profiles[int(s)].id for s in sub.sid[at]],
            },
        )
    return np.where(sub.new & ~late & ~np.isnan(z), w, np.nan)


def held_metric(
    spec: RuleSpec, m: FloatArray, sid: IntArray, t_us: IntArray, floors: IntArray
) -> FloatArray:
    """The metric a rule may raise on: its worst over the last ``persistence_n`` rows and over
    the last ``hold_s`` seconds of data (NaN until there are that many), per sensor; rows are
    sorted by (sensor, time) and ``floors`` bound how far back each row may look."""
    worst: series.Reduce = "min" if _rising(spec) else "max"
    held = m
    if spec.persistence_n > 1:
        held, count = series.rolling(m, floors, spec.persistence_n, worst)
        held = np.where(count >= spec.persistence_n, held, np.nan)
    if spec.hold_s:
        j = series.at_or_before(sid, t_us, t_us - spec.hold_s * _US, sid)
        lo = np.where(j >= floors, j, -1)
        over = series.range_reduce(m, lo, np.arange(m.size), worst)
        pick = np.fmin if worst == "min" else np.fmax
        held = np.where(np.isnan(over) | np.isnan(held), np.nan, pick(held, over))
    return held


def _graded(
    session: Session,
    rule: StoredRule,
    sensors: _Sensors,
    sub: _Series,
    profiles: dict[int, _Profile],
    report: EvaluationReport,
    *,
    every_row: bool = False,
) -> _Obs:
    """Metric, persistence, hold and levels of a graded rule at the new rows (``every_row``:
    at the context rows too, which k-of-n needs for the sensors without new readings)."""
    spec = rule.spec
    m = _metric(session, rule, sensors, sub, profiles, report)
    held = held_metric(spec, m, sub.sid, sub.t_us, sub.floors)
    raise_level = grade(held, spec)
    keep_level = grade(m, spec, relax=spec.hysteresis)
    cause = np.full(sub.sid.size, None, dtype=object)
    if spec.kind == "spike":
        cause[:] = "impossible step between readings"
    if spec.context is not None:
        raise_level, keep_level, cause = _context(
            session, spec, sensors, sub, raise_level, keep_level, cause
        )
    if spec.kind == "spike":
        keep_level = raise_level
    new = np.ones(sub.sid.size, dtype=bool) if every_row else sub.new
    return _Obs(
        rule,
        sub.sid[new],
        sensors.asset_id[sub.spos[new]],
        sub.t_us[new],
        sub.value[new],
        raise_level[new],
        keep_level[new],
        cause[new],
        sensors.lon[sub.spos[new]],
        sensors.lat[sub.spos[new]],
        sub.new[new],
    )


def _context(
    session: Session,
    spec: RuleSpec,
    sensors: _Sensors,
    sub: _Series,
    raise_level: LevelArray,
    keep_level: LevelArray,
    cause: npt.NDArray[np.object_],
) -> tuple[LevelArray, LevelArray, npt.NDArray[np.object_]]:
    """Cause and level shift from what is near: asked only for sensors with a level."""
    context = spec.context
    assert context is not None
    hit = sub.new & ((raise_level > 0) | (keep_level > 0))
    ids = np.unique(sub.sid[hit])
    if not ids.size:
        return raise_level, keep_level, cause
    near_ids = {
        int(r[0])
        for r in session.execute(
            text(
                """
                SELECT s.id FROM sensor s WHERE s.id = ANY(CAST(:ids AS int8[])) AND EXISTS (
                    SELECT 1 FROM asset g WHERE g.kind = ANY(CAST(:kinds AS text[]))
                    AND ST_DWithin(g.geom::geography, s.geom::geography, :m))
                """
            ),
            {"ids": ids.tolist(), "kinds": context.near_kinds, "m": context.within_m},
        )
    }
    near = np.isin(sub.sid, list(near_ids))
    shift = np.where(near, 0, context.levels_lower_otherwise).astype(np.int8)

    def lower(levels: LevelArray) -> LevelArray:
        return np.where(levels > 0, np.minimum(4, levels + shift), 0).astype(np.int8)

    cause = np.where(hit & near, context.cause_if_near, cause)
    cause = np.where(hit & ~near, context.cause_otherwise, cause).astype(object)
    return lower(raise_level), lower(keep_level), cause


def _flatline(
    rule: StoredRule, sensors: _Sensors, sub: _Series, profiles: dict[int, _Profile]
) -> _Obs:
    """``n`` identical readings in a row; for a calibrated sensor, ``n`` is raised until such a
    run is improbable for it: ``p_repeat ** (n − 1) < flatline_alpha`` with ``p_repeat`` the
    share of identical consecutive readings in its calibration window (a sensor of coarse
    resolution repeats itself often), and beyond its longest calibration run."""
    spec = rule.spec
    n_eff = np.full(sub.sid.size, spec.n or 2, dtype=np.int64)
    for sid, rows in _runs(sub.sid):
        n_eff[rows] = _flatline_need(spec, profiles.get(sid))
    run = np.minimum(
        series.run_length(sub.value, sub.starts), np.arange(sub.sid.size) - sub.floors + 1
    )
    level = np.where(run >= n_eff, spec.level, 0).astype(np.int8)
    new = sub.new
    cause = np.full(int(new.sum()), "sensor stuck (flatline)", dtype=object)
    return _Obs(
        rule,
        sub.sid[new],
        sensors.asset_id[sub.spos[new]],
        sub.t_us[new],
        sub.value[new],
        level[new],
        level[new],
        cause,
        sensors.lon[sub.spos[new]],
        sensors.lat[sub.spos[new]],
    )


#: A calibrated sensor needing more than this many times the rule's ``n`` identical readings
#: repeats itself too often (a dry ponding gauge, a CH₄ sensor reading 0) for a flatline check
#: to say anything: it is not judged (and its long runs are not fetched on every batch).
FLATLINE_MAX_FACTOR = 10
_NEVER = np.iinfo(np.int64).max


def _flatline_need(spec: RuleSpec, profile: _Profile | None) -> int:
    n = spec.n or 2
    stats = profile.learned.get("repeats") if profile else None
    if not stats:
        return n
    need = flatline_n(
        n, stats.get("p_repeat", 0.0), stats.get("longest_run", 0), spec.flatline_alpha
    )
    return need if need <= FLATLINE_MAX_FACTOR * n else int(_NEVER)


def flatline_n(n: int, p_repeat: float, longest_run: int, alpha: float) -> int:
    """Identical readings a flatline needs for a sensor that repeats itself with probability
    ``p_repeat`` and ran ``longest_run`` identical readings in calibration.

    >>> flatline_n(30, 0.0, 3, 1e-4), flatline_n(30, 0.9, 40, 1e-4), flatline_n(5, 1.0, 9, 1e-4)
    (30, 89, 10)
    """
    need = max(n, longest_run + 1)
    if 0 < p_repeat < 1:
        need = max(need, 1 + math.ceil(math.log(alpha) / math.log(p_repeat)))
    return int(need)


def _offline_in_data(rule: StoredRule, sensors: _Sensors, sub: _Series) -> _Obs:
    """Gaps in the data clock: a reading that comes more than interval × factor after the
    previous one closes an offline episode that began at previous + interval × factor (in
    data time); a reading with no such gap clears an open offline alarm."""
    spec = rule.spec
    allowed = sensors.interval_s[sub.spos] * (spec.factor or 1)
    has_prev = np.arange(sub.sid.size) > sub.floors
    prev_t = np.where(has_prev, np.roll(sub.t_us, 1), np.iinfo(np.int64).min)
    gap = sub.new & has_prev & np.isfinite(allowed) & (sub.t_us - prev_t > allowed * _US)
    new = np.flatnonzero(sub.new)
    silent = np.flatnonzero(gap)
    # the start of each gap's episode, then the reading that ends it (which clears it)
    sid = np.concatenate([sub.sid[silent], sub.sid[new]])
    t = np.concatenate([prev_t[silent] + (allowed[silent] * _US).astype(np.int64), sub.t_us[new]])
    value = np.concatenate([sub.value[np.maximum(silent - 1, 0)], sub.value[new]])
    level = np.concatenate([np.full(silent.size, spec.level, np.int8), np.zeros(new.size, np.int8)])
    order = np.lexsort((t, sid))
    spos = sensors.pos(sid[order])
    cause = np.full(order.size, None, dtype=object)
    cause[level[order] > 0] = "sensor silent (offline)"
    return _Obs(
        rule,
        sid[order],
        sensors.asset_id[spos],
        t[order],
        value[order],
        level[order],
        level[order],
        cause,
        sensors.lon[spos],
        sensors.lat[spos],
    )


def _confirm(obs: _Obs) -> _Obs:
    """k-of-n: at each new reading of an asset's sensors, the level at least ``k`` of its
    sensors reach with their latest readings within ``window_s``: an asset-level subject.

    A loop per asset and reading time (bridges have a handful of sensors)."""
    rule = obs.rule
    confirm = rule.spec.confirm
    assert confirm is not None
    assert obs.new is not None
    window = confirm.window_s * _US
    out: dict[str, list[Any]] = {
        k: [] for k in ("asset", "t", "value", "raise", "keep", "cause", "lon", "lat")
    }
    for asset in np.unique(obs.asset_id[obs.asset_id >= 0]):
        rows = np.flatnonzero(obs.asset_id == asset)
        rows = rows[np.argsort(obs.t_us[rows], kind="stable")]
        n_sensors = len(np.unique(obs.sensor_id[rows]))
        for i, r in enumerate(rows):
            if not obs.new[r]:
                continue
            t = obs.t_us[r]
            seen = rows[: i + 1]
            seen = seen[obs.t_us[seen] > t - window]
            latest: dict[int, int] = {}
            for s in seen:  # the latest reading of each sensor within the window
                latest[int(obs.sensor_id[s])] = s
            raised = sorted(int(obs.raise_level[s]) for s in latest.values() if obs.raise_level[s])
            kept = sorted(int(obs.keep_level[s]) for s in latest.values() if obs.keep_level[s])
            out["asset"].append(asset)
            out["t"].append(t)
            out["value"].append(obs.value[r])
            out["raise"].append(raised[confirm.k - 1] if len(raised) >= confirm.k else 0)
            out["keep"].append(kept[confirm.k - 1] if len(kept) >= confirm.k else 0)
            out["cause"].append(
                f"{len(raised)} of {n_sensors} sensors agree" if len(raised) >= confirm.k else None
            )
            out["lon"].append(obs.lon[r])
            out["lat"].append(obs.lat[r])
    n = len(out["t"])
    return _Obs(
        rule,
        np.full(n, -1, dtype=np.int64),
        np.array(out["asset"], dtype=np.int64),
        np.array(out["t"], dtype=np.int64),
        np.array(out["value"], dtype=np.float64),
        np.array(out["raise"], dtype=np.int8),
        np.array(out["keep"], dtype=np.int8),
        np.array(out["cause"], dtype=object),
        np.array(out["lon"], dtype=np.float64),
        np.array(out["lat"], dtype=np.float64),
    )


def check_offline(session: Session, *, now: datetime | None = None) -> EvaluationReport:
    """Raise offline alarms for sensors from which nothing has been *received* for longer than
    interval × factor (run periodically, on the wall clock).

    Received, not data time: a sensor being backfilled is not silent, however old its data
    (issue 13: a backfill made every sensor "offline" between two posts). The alarm's data
    time is the sensor's last reading + interval × factor: when, on its own clock, it went
    silent — what a backfill of the same gap would give (:func:`_offline_in_data`).
    """
    now = now or datetime.now(UTC)
    report = EvaluationReport()
    observations: list[_Obs] = []
    for rule in enabled_rules(session):
        spec = rule.spec
        if spec.kind != "offline":
            continue
        rows = session.execute(
            text(
                f"""
                SELECT s.id, coalesce(s.asset_id, -1),
                       (extract(epoch FROM l.ts) * 1000000)::int8
                         + (s.interval_s * :factor * 1000000)::int8,
                       l.value, ST_X(s.geom), ST_Y(s.geom)
                FROM sensor s JOIN latest_reading l ON l.sensor_id = s.id
                WHERE s.status = 'active' AND s.interval_s IS NOT NULL
                  AND l.received_at < CAST(:now AS timestamptz)
                                      - make_interval(secs => s.interval_s * :factor)
                  {_target_sql(spec)}
                ORDER BY s.id
                """
            ),
            {"now": now, "factor": spec.factor, **_target_params(spec)},
        ).all()
        if not rows:
            continue
        n = len(rows)

        def col(i: int, dtype: Any, rows: Sequence[Any] = rows) -> Any:
            return np.array([np.nan if r[i] is None else r[i] for r in rows], dtype=dtype)

        level = np.full(n, spec.level, dtype=np.int8)
        observations.append(
            _Obs(
                rule,
                col(0, np.int64),
                col(1, np.int64),
                col(2, np.int64),
                col(3, np.float64),
                level,
                level.copy(),
                np.full(n, "sensor silent (offline)", dtype=object),
                col(4, np.float64),
                col(5, np.float64),
            )
        )
    _apply(session, observations, now, report)
    return report


def _target_sql(spec: RuleSpec) -> str:
    parts = []
    if spec.indicator != ANY_INDICATOR:
        parts.append("s.kind = :indicator")
    if spec.target.exclude_indicators:
        parts.append("NOT (s.kind = ANY(CAST(:exclude_indicators AS text[])))")
    if spec.target.asset_kinds:
        parts.append(
            "s.asset_id IN (SELECT id FROM asset WHERE kind = ANY(CAST(:asset_kinds AS text[])))"
        )
    if spec.target.asset_ids:
        parts.append("s.asset_id = ANY(CAST(:asset_ids AS int8[]))")
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


# -- alarms: the per-subject walk and the writes ----------------------------------------------
# Which subjects have an alarm not yet closed (not locked: most will not change) ...
_OPEN_SQL = text(
    """
    SELECT id, rule_code, sensor_id, asset_id, cleared_at IS NOT NULL AS cleared
    FROM alarm
    WHERE state <> 'closed' AND rule_code = ANY(CAST(:codes AS text[]))
      AND (sensor_id = ANY(CAST(:sensors AS int8[]))
           OR (sensor_id IS NULL AND asset_id = ANY(CAST(:assets AS int8[]))))
    """
)
# ... and those the batch may change, locked and read afresh (in id order: no deadlock).
_LOCK_SQL = text(
    """
    SELECT id, rule_code, sensor_id, asset_id, level, peak_level, state, cleared_at,
           peak_value, (extract(epoch FROM last_seen_at) * 1000000)::int8 AS seen_us
    FROM alarm WHERE id = ANY(CAST(:ids AS int8[])) AND state <> 'closed'
    ORDER BY id
    FOR UPDATE
    """
)


@dataclass(eq=False)
class _Alarm:
    """An alarm as the walk leaves it, and the events it wrote on the way."""

    id: int | None
    obs: _Obs
    row: int  # index of the raising (or first) observation
    level: int
    peak_level: int
    cleared: bool
    opened_us: int | None = None
    cleared_us: int | None = None
    peak_value: float | None = None
    last_value: float | None = None
    seen_us: int | None = None
    cause: str | None = None
    changed: bool = False  # level or open/cleared status moved: rescore
    cleared_now: bool = False  # cleared by this batch (cleared_at becomes now)
    touched: bool = False  # a reading of the batch moved it (else nothing to write)
    events: list[tuple[str | None, str, int | None, int | None, str | None, int]] = field(
        default_factory=list
    )


def _subject(code: str, sensor_id: int, asset_id: int) -> tuple[str, int]:
    """An alarm's subject, as the unique index sees it: the sensor, else minus the asset id."""
    return (code, sensor_id if sensor_id >= 0 else -max(asset_id, 0))


def _apply(
    session: Session, observations: list[_Obs], now: datetime, report: EvaluationReport
) -> None:
    """Walk each abnormal or alarmed subject's observations in time order and write."""
    observations = [o for o in observations if o.t_us.size]
    if not observations:
        return
    sensors = sorted({int(s) for o in observations for s in np.unique(o.sensor_id) if s >= 0})
    assets = sorted({int(a) for o in observations for a in np.unique(o.asset_id) if a >= 0})
    open_rows = session.execute(
        _OPEN_SQL,
        {
            "codes": sorted({o.rule.spec.code for o in observations}),
            "sensors": sensors,
            "assets": assets,
        },
    ).all()
    open_alarms = {
        _subject(r.rule_code, r.sensor_id if r.sensor_id is not None else -1, r.asset_id or 0): r
        for r in open_rows
    }
    plans: list[tuple[_Obs, IntArray, tuple[str, int]]] = []
    for obs in observations:
        code = obs.rule.spec.code
        subject = np.where(obs.sensor_id >= 0, obs.sensor_id, -np.maximum(obs.asset_id, 0))
        abnormal = np.unique(subject[obs.raise_level > 0])
        # a cleared alarm changes only if its condition recurs (an abnormal subject): the
        # hundreds an operations centre has not closed yet cost nothing here
        alarmed = [s for (c, s), r in open_alarms.items() if c == code and not r.cleared]
        wanted = np.union1d(abnormal, np.array(alarmed, dtype=np.int64))
        if not wanted.size:
            continue
        rows = np.flatnonzero(np.isin(subject, wanted))
        rows = rows[np.lexsort((obs.t_us[rows], subject[rows]))]
        bounds = np.flatnonzero(np.diff(subject[rows])) + 1
        for group in np.split(rows, bounds):
            if group.size:
                plans.append((obs, group, (code, int(subject[group[0]]))))
    ids = sorted({int(open_alarms[key].id) for _, _, key in plans if key in open_alarms})
    locked = {
        _subject(r.rule_code, r.sensor_id if r.sensor_id is not None else -1, r.asset_id or 0): r
        for r in (session.execute(_LOCK_SQL, {"ids": ids}).all() if ids else [])
    }
    walked = [
        alarm
        for obs, group, key in plans
        if (alarm := _walk(obs, group, locked.get(key), report)) is not None
    ]
    _write(session, walked, now, report)


def _walk(obs: _Obs, rows: IntArray, row: Any, report: EvaluationReport) -> _Alarm | None:
    """Replay one subject's alarm through its observations (time order)."""
    spec = obs.rule.spec
    rising = spec.direction == "above"
    alarm: _Alarm | None = None
    if row is not None:
        alarm = _Alarm(
            id=int(row.id),
            obs=obs,
            row=int(rows[0]),
            level=int(row.level),
            peak_level=int(row.peak_level or row.level),
            cleared=row.cleared_at is not None,
            peak_value=row.peak_value,
            seen_us=row.seen_us,
        )
    for i in rows:
        raise_lv, keep_lv = int(obs.raise_level[i]), int(obs.keep_level[i])
        t, value = int(obs.t_us[i]), float(obs.value[i])
        cause = obs.cause[i]
        if alarm is None:
            if not raise_lv:
                continue
            alarm = _Alarm(
                id=None,
                obs=obs,
                row=int(i),
                level=raise_lv,
                peak_level=raise_lv,
                cleared=False,
                opened_us=t,
                peak_value=value,
                cause=cause,
                changed=True,
            )
            alarm.events.append((None, "raised", None, raise_lv, cause, t))
            report.raised += 1
        else:
            if alarm.cleared:
                if not raise_lv:
                    continue
                alarm.events.append(("raised", "raised", alarm.level, raise_lv, "recurred", t))
                alarm.level, alarm.cleared, alarm.cleared_us = raise_lv, False, None
                alarm.changed = True
                report.recurred += 1
            elif raise_lv and raise_lv < alarm.level:
                alarm.events.append(("raised", "raised", alarm.level, raise_lv, "escalated", t))
                alarm.level, alarm.changed = raise_lv, True
                report.escalated += 1
            elif not keep_lv:
                alarm.events.append(("raised", "raised", alarm.level, alarm.level, "cleared", t))
                alarm.cleared, alarm.cleared_us, alarm.changed = True, t, True
                alarm.cleared_now = True
                report.cleared += 1
            elif keep_lv > alarm.level:
                alarm.events.append(("raised", "raised", alarm.level, keep_lv, "de-escalated", t))
                alarm.level, alarm.changed = keep_lv, True
                report.deescalated += 1
            else:
                report.updated += 1
            if cause is not None:
                alarm.cause = cause
            peak = alarm.peak_value
            alarm.peak_value = (
                value if peak is None else (max(peak, value) if rising else min(peak, value))
            )
        alarm.peak_level = min(alarm.peak_level, alarm.level)
        alarm.touched = True
        alarm.last_value = value
        alarm.seen_us = t if alarm.seen_us is None else max(alarm.seen_us, t)
    return alarm


def _ts(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def _write(session: Session, alarms: list[_Alarm], now: datetime, report: EvaluationReport) -> None:
    """One INSERT for new alarms, one UPDATE for the others, one INSERT of their events."""
    new = [a for a in alarms if a.id is None]
    old = [a for a in alarms if a.id is not None and a.touched]
    if new:
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "rule_id", "code", "sensor", "asset", "level", "peak_level", "opened_ts",
                "seen", "title", "cause", "first", "peak", "last", "lon", "lat", "cleared_ts",
            )
        }  # fmt: skip
        for a in new:
            o, i = a.obs, a.row
            cols["rule_id"].append(o.rule.id)
            cols["code"].append(o.rule.spec.code)
            cols["sensor"].append(int(o.sensor_id[i]) if o.sensor_id[i] >= 0 else None)
            cols["asset"].append(int(o.asset_id[i]) if o.asset_id[i] >= 0 else None)
            cols["level"].append(a.level)
            cols["peak_level"].append(a.peak_level)
            cols["opened_ts"].append(_ts(a.opened_us))
            cols["seen"].append(_ts(a.seen_us))
            cols["title"].append(o.rule.spec.title)
            cols["cause"].append(a.cause)
            cols["first"].append(float(o.value[i]))
            cols["peak"].append(a.peak_value)
            cols["last"].append(a.last_value)
            cols["lon"].append(None if math.isnan(o.lon[i]) else float(o.lon[i]))
            cols["lat"].append(None if math.isnan(o.lat[i]) else float(o.lat[i]))
            cols["cleared_ts"].append(_ts(a.cleared_us))
        ids = session.execute(
            text(
                """
                INSERT INTO alarm (rule_id, rule_code, sensor_id, asset_id, level, peak_level,
                                   state, opened_at, opened_ts, updated_at, last_seen_at, title,
                                   cause, first_value, peak_value, last_value, geom,
                                   cleared_at, cleared_ts)
                SELECT u.rule_id, u.code, u.sensor, u.asset, u.level, u.peak_level, 'raised',
                       :now, u.opened_ts, :now, u.seen, u.title, u.cause, u.first, u.peak,
                       u.last, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326),
                       CASE WHEN u.cleared_ts IS NOT NULL THEN CAST(:now AS timestamptz) END,
                       u.cleared_ts
                FROM unnest(CAST(:rule_id AS int8[]), CAST(:code AS text[]),
                            CAST(:sensor AS int8[]), CAST(:asset AS int8[]),
                            CAST(:level AS int2[]), CAST(:peak_level AS int2[]),
                            CAST(:opened_ts AS timestamptz[]), CAST(:seen AS timestamptz[]),
                            CAST(:title AS text[]), CAST(:cause AS text[]),
                            CAST(:first AS float8[]), CAST(:peak AS float8[]),
                            CAST(:last AS float8[]), CAST(:lon AS float8[]),
                            CAST(:lat AS float8[]), CAST(:cleared_ts AS timestamptz[]))
                     WITH ORDINALITY AS u(rule_id, code, sensor, asset, level, peak_level,
                                          opened_ts, seen, title, cause, first, peak, last,
                                          lon, lat, cleared_ts, i)
                ORDER BY u.i
                -- a concurrent batch raised it first: leave it to that one (its events are
                -- written)
                ON CONFLICT (rule_code, (coalesce(sensor_id, -asset_id))) WHERE state <> 'closed'
                DO NOTHING
                RETURNING id, rule_code, coalesce(sensor_id, -asset_id)
                """
            ),
            {"now": now, **cols},
        ).all()
        by_subject = {(r[1], int(r[2])): int(r[0]) for r in ids}
        for a in new:
            o, i = a.obs, a.row
            a.id = by_subject.get(
                _subject(o.rule.spec.code, int(o.sensor_id[i]), int(o.asset_id[i]))
            )
            if a.id is None:
                report.raised -= 1
                a.events.clear()
    if old:
        session.execute(
            text(
                """
                UPDATE alarm a SET level = u.level, peak_level = least(a.peak_level, u.peak_level),
                       last_value = coalesce(u.last, a.last_value), peak_value = u.peak,
                       last_seen_at = greatest(a.last_seen_at, u.seen), updated_at = :now,
                       cleared_at = CASE WHEN NOT u.cleared THEN NULL
                                         WHEN u.cleared_now THEN CAST(:now AS timestamptz)
                                         ELSE a.cleared_at END,
                       cleared_ts = CASE WHEN NOT u.cleared THEN NULL
                                         WHEN u.cleared_now THEN u.cleared_ts
                                         ELSE a.cleared_ts END,
                       cause = coalesce(u.cause, a.cause)
                FROM unnest(CAST(:id AS int8[]), CAST(:level AS int2[]),
                            CAST(:peak_level AS int2[]), CAST(:last AS float8[]),
                            CAST(:peak AS float8[]), CAST(:seen AS timestamptz[]),
                            CAST(:cleared AS bool[]), CAST(:cleared_ts AS timestamptz[]),
                            CAST(:cause AS text[]), CAST(:cleared_now AS bool[]))
                     AS u(id, level, peak_level, last, peak, seen, cleared, cleared_ts, cause,
                          cleared_now)
                WHERE a.id = u.id
                """
            ),
            {
                "now": now,
                "id": [a.id for a in old],
                "level": [a.level for a in old],
                "peak_level": [a.peak_level for a in old],
                "last": [a.last_value for a in old],
                "peak": [a.peak_value for a in old],
                "seen": [_ts(a.seen_us) for a in old],
                "cleared": [a.cleared for a in old],
                "cleared_ts": [_ts(a.cleared_us) for a in old],
                "cause": [a.cause for a in old],
                "cleared_now": [a.cleared_now for a in old],
            },
        )
    events = [(a.id, *e) for a in alarms if a.id is not None for e in a.events]
    if events:
        session.execute(
            text(
                """
                INSERT INTO alarm_event (alarm_id, at, actor, from_state, to_state, from_level,
                                         to_level, note, ts)
                SELECT u.a, :now, :actor, u.fs, u.ts_, u.fl, u.tl, u.note, u.t
                FROM unnest(CAST(:a AS int8[]), CAST(:fs AS text[]), CAST(:to AS text[]),
                            CAST(:fl AS int2[]), CAST(:tl AS int2[]), CAST(:note AS text[]),
                            CAST(:t AS timestamptz[])) WITH ORDINALITY
                     AS u(a, fs, ts_, fl, tl, note, t, i)
                ORDER BY u.i
                """
            ),
            {
                "now": now,
                "actor": ACTOR,
                "a": [e[0] for e in events],
                "fs": [e[1] for e in events],
                "to": [e[2] for e in events],
                "fl": [e[3] for e in events],
                "tl": [e[4] for e in events],
                "note": [e[5] for e in events],
                "t": [_ts(e[6]) for e in events],
            },
        )
    report.alarm_ids.extend(sorted({int(a.id) for a in alarms if a.id is not None and a.changed}))
