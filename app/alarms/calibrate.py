"""Learn each sensor's normal behaviour from a calibration window (``cityrisk rules calibrate``).

For every chosen sensor with readings in ``[start, end)`` (data time), one
:class:`~app.alarms.models.SensorProfile` row: the median and robust spread (MAD × 1.4826) per
time-of-day × day-type bin (:func:`gis.baseline.learn_profile`), how often the sensor repeats
its previous value and its longest run of identical readings (what the flatline rule needs for
a sensor of coarse resolution), and, per enabled residual/CUSUM rule that applies to it, the
largest metric the rule would have seen in the window (``learned["rules"][code]["max"]``). The
engine divides the metric by ``max(1, margin × max ÷ lowest threshold)``, so on the calibration
window itself the rule would not have reached its lowest level: thresholds come from normal
data, not from tuning on the data being judged.

Profiles are versioned like rules: calibrating again makes a new current row per sensor, and
older ones stay. The caller owns the transaction.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import engine
from app.alarms.rules import PROFILE_KINDS, StoredRule
from app.db import raw_connection
from app.errors import InvalidInput
from gis import baseline, series

#: Sensors per read of the calibration readings: bounds memory (2 months of 5-min readings of
#: 500 sensors is 8.6 M rows, ≈ 200 MB as three numpy columns).
CHUNK = 500
_US = 1_000_000


@dataclass
class CalibrationReport:
    """What a calibration learned."""

    start: datetime
    end: datetime
    sensors: int = 0  # profiles written
    readings: int = 0  # calibration readings used
    skipped: list[str] = field(default_factory=list)  # chosen sensors with too few readings
    rules: dict[str, int] = field(default_factory=dict)  # rule code → sensors it learned on

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "profiles": self.sensors,
            "readings": self.readings,
            "skipped": self.skipped[:50],
            "skipped_count": len(self.skipped),
            "rules": self.rules,
        }


def calibrate(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    actor: str,
    sensors: Sequence[str] | None = None,
    indicators: Sequence[str] | None = None,
    bin_s: int = 900,
    day_mode: baseline.DayMode = "week",
    utc_offset_s: int = 0,
    min_count: int = 5,
    min_readings: int = 288,
) -> CalibrationReport:
    """Learn and store a profile for each chosen sensor from its readings in ``[start, end)``.

    Parameters
    ----------
    start, end : datetime
        The calibration window in data time (timezone-aware); it should hold normal operation
        only (no known leak), and at least a week for ``day_mode="week"``.
    sensors : sequence of str, optional
        External ids or shell patterns (``dma-*``); default every active sensor.
    indicators : sequence of str, optional
        Only sensors of these indicators (e.g. ``pressure_mpa``).
    bin_s, day_mode, utc_offset_s, min_count
        As :func:`gis.baseline.learn_profile` (15-min bins by weekday, UTC, 5 readings a bin).
    min_readings : int, default 288
        Fewest readings a sensor needs in the window (a day of 5-min readings): fewer is
        skipped and reported, not profiled on too little.

    Raises
    ------
    InvalidInput
        If the window is empty or reversed, or a parameter is out of range.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("calibration times need a UTC offset (e.g. 2026-10-01T00:00Z)")
    if end <= start:
        raise InvalidInput(f"the window {start.isoformat()} → {end.isoformat()} is empty")
    if day_mode not in baseline.DAY_MODES:
        raise InvalidInput(f"day_mode was {day_mode!r}; expected one of week, weekend, day")
    try:
        baseline.bin_index([0.0], bin_s=bin_s, day_mode=day_mode, utc_offset_s=utc_offset_s)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    report = CalibrationReport(start=start, end=end)
    names = _choose(session, sensors, indicators)
    chosen = list(names)
    rules = [r for r in engine.enabled_rules(session) if r.spec.kind in PROFILE_KINDS]
    for i in range(0, len(chosen), CHUNK):
        ids = chosen[i : i + CHUNK]
        _calibrate_chunk(
            session,
            ids,
            names,
            start,
            end,
            actor,
            rules,
            report,
            bin_s=bin_s,
            day_mode=day_mode,
            utc_offset_s=utc_offset_s,
            min_count=min_count,
            min_readings=min_readings,
        )
    return report


def _choose(
    session: Session, sensors: Sequence[str] | None, indicators: Sequence[str] | None
) -> dict[int, str]:
    """The chosen active sensors: id → external id, in id order."""
    rows = session.execute(
        text(
            "SELECT id, external_id FROM sensor WHERE status = 'active' "
            "AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[]))) "
            "ORDER BY id"
        ),
        {"kinds": list(indicators) if indicators else None},
    ).all()
    if sensors:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r[1], p) for p in sensors)]
        if not rows:
            raise InvalidInput(f"no active sensor matches {', '.join(sensors)}")
    return {int(r[0]): str(r[1]) for r in rows}


def _calibrate_chunk(
    session: Session,
    ids: list[int],
    names: dict[int, str],
    start: datetime,
    end: datetime,
    actor: str,
    rules: list[StoredRule],
    report: CalibrationReport,
    *,
    bin_s: int,
    day_mode: baseline.DayMode,
    utc_offset_s: int,
    min_count: int,
    min_readings: int,
) -> None:
    cur = raw_connection(session).cursor()
    cur.execute(
        "SELECT sensor_id, (extract(epoch FROM ts) * 1000000)::int8, value FROM reading "
        "WHERE sensor_id = ANY(%(ids)s::int8[]) AND ts >= %(start)s AND ts < %(end)s "
        "ORDER BY sensor_id, ts",
        {"ids": ids, "start": start, "end": end},
    )
    rows = cur.fetchall()
    n = len(rows)
    sid = np.fromiter((r[0] for r in rows), np.int64, n)
    t_us = np.fromiter((r[1] for r in rows), np.int64, n)
    v = np.fromiter((r[2] for r in rows), np.float64, n)
    uniq, counts = np.unique(sid, return_counts=True)
    enough = uniq[counts >= min_readings]
    report.skipped += [names[i] for i in ids if i not in set(enough.tolist())]
    if not enough.size:
        return
    keep = np.isin(sid, enough)
    sid, t_us, v = sid[keep], t_us[keep], v[keep]
    report.readings += int(sid.size)
    profile = baseline.learn_profile(
        sid,
        t_us / _US,
        v,
        bin_s=bin_s,
        day_mode=day_mode,
        utc_offset_s=utc_offset_s,
        min_count=min_count,
    )
    starts = series.group_starts(sid)
    run = series.run_length(v, starts)
    same = np.zeros(sid.size, dtype=bool)
    same[1:] = (v[1:] == v[:-1]) & (sid[1:] == sid[:-1])
    pairs = np.bincount(np.searchsorted(enough, sid), minlength=enough.size) - 1
    repeats = np.bincount(np.searchsorted(enough, sid), weights=same, minlength=enough.size)
    longest = np.zeros(enough.size, dtype=np.int64)
    np.maximum.at(longest, np.searchsorted(enough, sid), run)
    # resolution: the smallest step between distinct readings (a transmitter's quantum); the
    # median of each sensor's smallest positive steps, robust to a stray value
    resolution = np.full(enough.size, np.nan)
    for row, (a, b) in enumerate(_slices(starts)):
        steps = np.diff(np.unique(v[a:b]))
        steps = steps[steps > 0]
        if steps.size:
            resolution[row] = float(np.median(np.sort(steps)[: max(1, steps.size // 20)]))
    sensors = engine._load_sensors(session, enough.tolist(), [])
    learned_rules = _learn_rules(rules, sensors, profile, sid, t_us, v, resolution, report)
    previous: dict[int, int] = dict(
        session.execute(
            text(
                "UPDATE sensor_profile SET is_current = false "
                "WHERE sensor_id = ANY(CAST(:ids AS int8[])) AND is_current "
                "RETURNING sensor_id, version"
            ),
            {"ids": enough.tolist()},
        ).all()
    )
    params = []
    for row, sensor_id in enumerate(enough.tolist()):
        learned: dict[str, Any] = {
            "repeats": {
                "p_repeat": float(repeats[row] / pairs[row]) if pairs[row] > 0 else 0.0,
                "longest_run": int(longest[row]),
            },
            "resolution": _float(resolution[row]),
            "rules": learned_rules.get(sensor_id, {}),
        }
        params.append(
            {
                "sensor_id": sensor_id,
                "version": int(previous.get(sensor_id, 0)) + 1,
                "start": start,
                "end": end,
                "n": int(counts[np.searchsorted(uniq, sensor_id)]),
                "bin_s": bin_s,
                "day_mode": day_mode,
                "offset": utc_offset_s,
                "centre": _floats(profile.centre[row].ravel()),
                "spread": _floats(profile.spread[row].ravel()),
                "count": profile.count[row].ravel().tolist(),
                "level": profile.level[row].ravel().tolist(),
                "gc": _float(profile.global_centre[row]),
                "gs": _float(profile.global_spread[row]),
                "learned": orjson.dumps(learned).decode(),
                "actor": actor,
            }
        )
    session.execute(
        text(
            """
            INSERT INTO sensor_profile (sensor_id, version, is_current, learned_from, learned_to,
                n_readings, bin_s, day_mode, utc_offset_s, centre, spread, count, level,
                global_centre, global_spread, learned, created_by)
            VALUES (:sensor_id, :version, true, :start, :end, :n, :bin_s, :day_mode, :offset,
                CAST(:centre AS float8[]), CAST(:spread AS float8[]), CAST(:count AS int4[]),
                CAST(:level AS int2[]), :gc, :gs, CAST(:learned AS jsonb), :actor)
            """
        ),
        params,
    )
    report.sensors += len(params)


def _slices(starts: Any) -> list[tuple[int, int]]:
    """(first, end) rows of each sensor in a (sensor, time)-sorted array."""
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    return list(zip(first.tolist(), [*first[1:].tolist(), len(starts)], strict=True))


def _float(x: Any) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _floats(a: Any) -> list[float | None]:
    return [None if not np.isfinite(x) else float(x) for x in a]


def _learn_rules(
    rules: list[StoredRule],
    sensors: engine._Sensors,
    profile: baseline.Profile,
    sid: Any,
    t_us: Any,
    v: Any,
    resolution: Any,
    report: CalibrationReport,
) -> dict[int, dict[str, Any]]:
    """The largest metric each residual/CUSUM rule reaches on the calibration window, per
    sensor it applies to (computed as the engine does, from the profile just learned)."""
    out: dict[int, dict[str, Any]] = {}
    if not rules:
        return out
    rows_of = profile.rows(sid)
    b = baseline.bin_index(
        t_us / _US,
        bin_s=profile.bin_s,
        day_mode=profile.day_mode,
        utc_offset_s=profile.utc_offset_s,
    )
    nb = profile.centre.shape[1] * profile.centre.shape[2]
    centre = profile.centre.reshape(len(profile.sensor_ids), nb)[rows_of, b]
    spread = profile.spread.reshape(len(profile.sensor_ids), nb)[rows_of, b]
    per_sensor = np.array(
        [
            engine.spread_floor(c, None if np.isnan(r) else r)
            for c, r in zip(profile.global_centre, resolution, strict=True)
        ]
    )
    floor = per_sensor[rows_of]
    z = (v - centre) / np.maximum(np.nan_to_num(spread, nan=0.0), floor)
    for rule in rules:
        spec = rule.spec
        target = engine._targets(spec, sensors)
        chosen = sensors.id[target]
        if not chosen.size:
            continue
        mask = np.isin(sid, chosen)
        s, t, zz = sid[mask], t_us[mask], z[mask]
        if spec.direction == "below":
            zz = -zz
        if spec.peers:  # minus the zone's median at each step, as the engine does
            pos = sensors.pos(s)
            zone_names = sensors.zone[pos].astype(str)
            _, zone_idx = np.unique(zone_names, return_inverse=True)
            med, _ = series.peer_median(zz, zone_idx.ravel(), t // (spec.peer_step_s * _US))
            zz = zz - med
        starts = series.group_starts(s)
        if spec.kind == "cusum":
            k = spec.k if spec.k is not None else baseline.CUSUM_K
            metric = series.lindley(zz - k, starts)
        else:
            metric = engine.held_metric(spec, zz, s, t, starts)
        for sensor_id in chosen.tolist():
            at = s == sensor_id
            if not at.any():
                continue
            peak = np.nanmax(metric[at]) if np.isfinite(metric[at]).any() else None
            if peak is None:
                continue
            out.setdefault(sensor_id, {})[spec.code] = {"max": float(peak), "rule_id": rule.id}
        report.rules[spec.code] = int(np.isin(chosen, s).sum())
    return out
