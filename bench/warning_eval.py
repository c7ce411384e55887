"""Early-warning evaluation: labelled series replayed through the real ingest path and rules engine.

Usage: .venv/bin/python bench/warning_eval.py [--datasets DIR] [--only nab,batadal,demo,leaks]
          [--batch-span S | --max-batches N] [--jobs N] [--demo-duration 2h]
          [--leak-seed 13 | --leak-folder DIR]

What it does
------------
Each case (a NAB series, BATADAL, the demo replay) runs in its own throwaway database on the server
cityrisk uses (DATABASE_URL or the local cluster), migrated to head and dropped at the end:

1. sensors are created for the series (one per column, with a position);
2. rules are stored with ``rules.save`` (calibrated ones for NAB and BATADAL, the default pack
   ``rules.default_pack()`` for the demo replay);
3. readings are sent in batches through ``ingest_payload`` (NDJSON, the function the HTTP route and
   the MQTT consumer call, which also runs the rules engine), and every batch is committed, as in
   production. Timestamps are shifted by a whole number of hours so that the series ends shortly
   before now (ingest refuses readings older than 400 days or in the future); relative spacing is
   kept, and every time printed is the dataset's own (original) time;
4. the ``alarm`` and ``alarm_event`` tables are read back and scored against the labels.

Batches: one batch carries every reading whose (shifted) timestamp falls into the same slot of
S seconds. ``--batch-span 0`` sends one batch per time step (what sensors reporting one reading
per message do; the most faithful). By default S is chosen per case as the smallest multiple of
the sampling interval that keeps the case under ``--max-batches`` (1,500) batches, because a batch
costs 20–60 ms here and grows with the number of daily ``reading`` partitions the replayed months
create (the engine's reading lookups are not bounded in time), and the full run would take
15–20 minutes. The span used is printed per case. It matters: the engine judges only the newest
reading of each sensor in a batch (persistence still counts the stored readings), so a span above
the sampling interval behaves like a gateway that uploads once per span — alarms are decided at
batch ends, and an excursion that is over before a batch ends can go unseen.

Data time of alarm events: ``alarm_event.at`` is wall-clock (transaction) time, so after each
batch that changed an alarm the highest ``alarm_event.id`` is noted with the batch's newest
reading time; an event's data time is that of the batch that wrote it (the moment a system that
received that batch could have alarmed).

Counting (say it exactly)
-------------------------
- **Alarm episode**: one alarm row (rule, sensor or asset) from ``raised`` (or ``recurred`` after
  an auto-clear) to ``cleared`` (or to the end of the replay if never cleared). Escalations and
  de-escalations stay inside the episode.
- **Labelled event**: a NAB window from ``combined_windows.json``; a contiguous run of
  ``ATT_FLAG = 1`` hours in BATADAL (first to last labelled hour, inclusive); an incident of the
  replay's truth file (its ``start`` to ``end``).
- **TP / FP episode**: an episode is a true positive if its time span overlaps a labelled event
  (closed intervals), else a false positive. For the demo replay the alarm must also be on one of
  the incident's affected sensors (or on the asset of one, or an asset the incident names): a city
  has 1,600 sensors, and an alarm on the far side of town is not a detection.
- **Detected event**: some alarm is raised, recurs or escalates at a data time inside the event.
  **Time to detect** = that first time − event start. An alarm already open at the start that
  neither escalates nor recurs inside the event does not count as a detection (shown as "open").
- precision = TP episodes / all episodes; recall = detected events / events; F1 from those two
  (0 when there is no alarm at all). Also shown: "periods", the union of all episodes' spans of a
  case (so that ten rules firing together count once), with the same TP/FP rule.

Calibration
-----------
- NAB (``machine_temperature_system_failure``, ``ambient_temperature_system_failure`` →
  ``temperature_c``; ``nyc_taxi`` → ``people_count``): mean μ and standard deviation σ of the first
  15 % of the series (NAB's own probationary period; labels are not looked at). Threshold rules
  ``above`` at μ + {3, 4, 5, 6}σ for levels IV..I and ``below`` at μ − {3, 4, 5, 6}σ, persistence
  3 readings, hysteresis 0.5σ; rate rules (rise and drop over 1 h) at μΔ ± {4, 5, 6, 8}σΔ of the
  1-hour changes in the same 15 %. The ambient series is in °F (values 57–87; NAB does not say,
  assumed) and is converted to °C; the machine series' unit is not stated and is kept as given.
- BATADAL (C-Town, hourly): per sensor, the envelope of the attack-free training year (rows of
  ``training_dataset_1.csv`` before the evaluation period with ``ATT_FLAG = 0``): margin m = 5 % of
  the training range (at least 0.01 m, 0.001 MPa, 1 m³/h); ``above`` IV/III/II/I at max + 1/2/4/8 m,
  ``below`` at min − 1/2/4/8 m; persistence 2 readings, hysteresis m. Tank levels and pressures get
  both rules, pump flows only ``above`` (pumps cycle on and off, so 0 is normal), plus ``below`` for
  a pump that never stopped in training. Units (CTOWN.inp ``Units LPS``; BATADAL paper): levels in
  m, flows in L/s (× 3.6 → m³/h), pressures in m of head (× 0.00980665 → MPa). Rules are per
  sensor, which the rule schema can only express through ``target.area_wkt`` (a 0.002° box around
  each sensor). Evaluated on ``BATADAL_dataset04.csv`` (labels as given), and on the same rows with
  the fuller attack labels found in the second half of ``training_dataset_1.csv``.
- Demo replay: the default rule pack as shipped, no calibration.

The leak benchmark (``leaks``)
------------------------------
``bench/leaks/simulate.py`` (WNTR, needs ``pip install -e '.[bench]'``) simulates 10 weeks of
5-minute pressures at 24 junctions of the real KY4 network with known abrupt leaks after 6
leak-free weeks, and caches them under ``.data/bench/leaks/`` (≈ 20 min the first time; see its
docstring for every number and its source). The case then runs twice, each in its own throwaway
database, **through the real import and ingest paths**: ``import_assets`` of ``pipes.geojson``
(``water_pipe``) and ``pumps.geojson`` (``pump_station``), ``import_sensors`` of
``sensors.geojson`` (bound explicitly to their pipe), the default rule pack, then
``readings.csv`` sent as ``text/csv`` bodies through ``ingest_payload`` — once one 5-minute step
per batch, once one day per batch. When the calibration window has been stored and before the
first later batch, ``app.alarms.calibrate.calibrate(session, start=, end=, actor=)`` is called on
it if that module exists, and the ``residual`` / ``cusum`` rules of ``LEARNED_RULES`` (thresholds
in σ, fixed here, not tuned) are added if ``RuleSpec`` validates them; otherwise the default pack
runs alone and the output says so. Data dates: the cache's own (the data ends the day before it
was built; it is rebuilt when older than 300 days, as ingest refuses readings older than 400).

Scoring (per mode): a leak is detected when an alarm is raised, recurs or escalates at a data
time inside [onset, end]; time to detect = that time − onset; localisation error = distance (m,
UTM 16N) from the leaking pipe's line to the nearest sensor alarmed within 1 h of the detection
(or to a ``suspected_event`` top candidate of that hour, if that table exists); an episode that
starts after the calibration window and overlaps no [onset, end + 2 h] is a false alarm, per week
of the evaluation window outside those windows; precision = episodes overlapping a leak window /
all episodes after calibration. Alarm data times come from ``alarm.opened_ts`` when the engine
fills it with the raising reading's time (detected: it differs from ``opened_at`` by > 1 h), else
from the per-batch bookkeeping below. The two modes' alarms (rule, sensor, opened data time, first
level, peak level) are compared and the output says whether they match.

The datasets (``../shared/datasets``) are bench-only and not shipped: without them the NAB and
BATADAL cases say so and are skipped; the demo replay uses the shipped demo city. Exit code 0;
1 only if a case could not run at all (it is reported, the others still run).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import rules
from app.alarms.rules import RuleSpec, Target
from app.db import create_db_engine, make_sessionmaker
from app.flows.readings import ingest_payload
from app.scratch import scratch_for
from app.settings import Settings, project_root

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

NDJSON = "application/x-ndjson"
HOUR = 3600
MARGIN_S = 600  # the replayed series ends this long before now
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
NAB_SERIES = {
    "machine_temperature_system_failure": ("temperature_c", "°C"),
    "ambient_temperature_system_failure": ("temperature_c", "°C"),
    "nyc_taxi": ("people_count", "persons"),
}
PROBATION = 0.15  # NAB's probationary period: the first 15 % of a series
M_HEAD_TO_MPA = 0.00980665  # 1 m of water head
LPS_TO_M3H = 3.6
BATADAL_PRESSURES = ("P_J269", "P_J256", "P_J415", "P_J306", "P_J317", "P_J422")  # discharge
ORIGIN = (117.20, 31.80)  # where the bench sensors stand (Hefei); only needs to be somewhere


# -- data -------------------------------------------------------------------------------------
@dataclass
class Series:
    """One sensor's readings in the indicator's unit, at original (dataset) epoch seconds."""

    external_id: str
    kind: str
    unit: str
    ts: I64
    value: F64


@dataclass(frozen=True)
class Window:
    """A labelled event: [start, end] in original epoch seconds (closed)."""

    name: str
    start: int
    end: int
    subjects: frozenset[str] = frozenset()  # demo: the alarm subjects that count


@dataclass
class Case:
    name: str
    series: list[Series]
    specs: list[RuleSpec]
    labels: dict[str, list[Window]]  # label set → events
    lines: list[str] = field(default_factory=list)  # calibration and notes, printed first


@dataclass
class Episode:
    alarm_id: int
    rule: str
    subject: str  # "sensor:<external id>" or "asset:<id>"
    start: int  # original epoch seconds
    end: int | None  # None: still active when the replay ended
    level: int  # most severe level reached (1 = I)
    actions: list[tuple[int, int]]  # (time, level) of raise / recur / escalate


@dataclass
class Replayed:
    episodes: list[Episode]
    accepted: int
    duplicates: int
    rejected: list[str]
    batches: int
    events: int
    seconds: float
    first: int
    last: int


@dataclass
class Scored:
    """One label set's score (a row of the summary)."""

    dataset: str
    events: int
    detected: int
    episodes: int
    tp: int
    fp: int
    periods: int
    periods_tp: int
    ttd_s: list[int]
    weeks: float
    loc_m: list[float] = field(default_factory=list)  # leaks: localisation error per detection
    match: bool | None = None  # leaks: did one step per batch and one day per batch agree?
    n_alarms: int = 0  # leaks: alarm rows of the run (calibration window included)

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 0.0

    @property
    def precision(self) -> float | None:
        return self.tp / self.episodes if self.episodes else None

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p is None or p + r == 0 else 2 * p * r / (p + r)


@dataclass
class Outcome:
    name: str
    lines: list[str]
    scores: list[Scored]
    seconds: float


# -- formatting -------------------------------------------------------------------------------
def fmt_t(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M")


def fmt_span(seconds: float) -> str:
    if abs(seconds) < 2 * HOUR:
        return f"{seconds / 60:+.0f} min"
    return f"{seconds / HOUR:+.1f} h"


def fmt_num(x: float) -> str:
    return f"{x:.4g}"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def to_epoch(stamps: pd.Series) -> I64:
    delta = pd.to_datetime(stamps, utc=True) - pd.Timestamp(0, tz="UTC")
    out: I64 = np.asarray(delta // pd.Timedelta(seconds=1), dtype=np.int64)
    return out


def describe_rule(spec: RuleSpec) -> str:
    levels = "  ".join(f"{ROMAN[lv]} {fmt_num(spec.thresholds[lv])}" for lv in (4, 3, 2, 1))
    extra = (
        f"Δ over {spec.window_s // 60} min"
        if spec.kind == "rate" and spec.window_s
        else f"persistence {spec.persistence_n}, hysteresis {fmt_num(spec.hysteresis)}"
    )
    return f"{spec.code:<22} {spec.kind:<9} {spec.direction:<5}  {levels}   ({extra})"


# -- throwaway database -----------------------------------------------------------------------
@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database on the server cityrisk uses, migrated to head; dropped afterwards."""
    with scratch_for(Settings(), prefix="cityrisk_bench", migrate=True) as url:
        yield url


@contextlib.contextmanager
def open_session(url: str) -> Iterator[Session]:
    engine = create_db_engine(url, pool_size=2)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def sensor_box(i: int) -> tuple[float, float, str]:
    """Position of the i-th bench sensor and a small polygon around it (per-sensor rules)."""
    lon, lat = ORIGIN[0] + 0.01 * (i % 50), ORIGIN[1] + 0.01 * (i // 50)
    d = 0.001
    box = (
        f"POLYGON(({lon - d} {lat - d},{lon + d} {lat - d},{lon + d} {lat + d},"
        f"{lon - d} {lat + d},{lon - d} {lat - d}))"
    )
    return lon, lat, box


def create_sensors(session: Session, series: list[Series], interval_s: int) -> None:
    for i, s in enumerate(series):
        lon, lat, _ = sensor_box(i)
        session.execute(
            text(
                "INSERT INTO sensor (external_id, kind, unit, interval_s, geom) VALUES "
                "(:e, :k, :u, :i, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            {"e": s.external_id, "k": s.kind, "u": s.unit, "i": interval_s, "x": lon, "y": lat},
        )


# -- replay and read back ---------------------------------------------------------------------
class Marks:
    """(highest alarm_event id, data time) after each batch that changed an alarm."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.times: list[int] = []

    def note(self, session: Session, report: Any, data_time: int) -> None:
        a = report.alarms
        if a.raised or a.escalated or a.deescalated or a.cleared or a.recurred:
            top = session.execute(text("SELECT max(id) FROM alarm_event")).scalar_one()
            if top is not None and (not self.ids or top > self.ids[-1]):
                self.ids.append(int(top))
                self.times.append(data_time)

    def time_of(self, event_id: int) -> int:
        i = bisect.bisect_left(self.ids, event_id)
        if i == len(self.ids):
            raise RuntimeError(f"alarm_event {event_id} was written by no noted batch")
        return self.times[i]


def build_batches(series: list[Series], shift: int, span: int) -> Iterator[tuple[int, bytes]]:
    """NDJSON bodies per slot of ``span`` seconds of shifted time (0: per time step)."""
    sensor = np.concatenate([np.full(len(s.ts), s.external_id, dtype=object) for s in series])
    ts = np.concatenate([s.ts for s in series]) + shift
    value = np.concatenate([s.value for s in series])
    order = np.argsort(ts, kind="stable")
    sensor, ts, value = sensor[order], ts[order], value[order]
    slot = ts // span if span > 0 else ts
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s", timezone="UTC")
    cuts = np.flatnonzero(np.diff(slot)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ts)], strict=True):
        body = b"\n".join(
            orjson.dumps({"sensor": sensor[i], "ts": str(stamps[i]), "value": float(value[i])})
            for i in range(lo, hi)
        )
        yield int(ts[hi - 1]), body


def count_batches(series: list[Series], shift: int, span: int) -> int:
    ts = np.concatenate([s.ts for s in series]) + shift
    return len(np.unique(ts // span if span > 0 else ts))


def replay(
    session: Session, batches: Iterator[tuple[int, bytes]], shift: int, *, name: str, total: int
) -> Replayed:
    marks = Marks()
    shown = time.perf_counter()
    accepted, duplicates, n, last = 0, 0, 0, 0
    first: int | None = None
    rejected: list[str] = []
    started = time.perf_counter()
    for data_time, body in batches:
        report = ingest_payload(session, body, NDJSON)
        session.commit()
        marks.note(session, report, data_time)
        accepted += report.accepted
        duplicates += report.duplicates
        rejected += [f"{r.sensor}: {r.reason}" for r in report.rejected]
        n += 1
        first = data_time if first is None else first
        last = data_time
        if time.perf_counter() - shown > 30:
            shown = time.perf_counter()
            print(f"  {name}: {n:,}/{total:,} batches", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    episodes, events = read_episodes(session, marks, shift)
    start = (first or 0) - shift
    return Replayed(
        episodes, accepted, duplicates, rejected, n, events, seconds, start, last - shift
    )


def read_episodes(session: Session, marks: Marks, shift: int) -> tuple[list[Episode], int]:
    """Alarm episodes from ``alarm_event`` (engine rows), in original time."""
    rows = session.execute(
        text(
            "SELECT e.id, e.alarm_id, e.from_state, e.to_level, e.note, a.rule_code, "
            "s.external_id AS sensor, a.asset_id FROM alarm_event e "
            "JOIN alarm a ON a.id = e.alarm_id LEFT JOIN sensor s ON s.id = a.sensor_id "
            "WHERE e.actor = 'engine' ORDER BY e.id"
        )
    ).all()
    episodes: list[Episode] = []
    open_: dict[int, Episode] = {}
    for r in rows:
        t = marks.time_of(r.id) - shift
        subject = f"sensor:{r.sensor}" if r.sensor is not None else f"asset:{r.asset_id}"
        starts = r.from_state is None or r.note == "recurred"
        if starts:
            ep = Episode(r.alarm_id, r.rule_code, subject, t, None, r.to_level, [(t, r.to_level)])
            open_[r.alarm_id] = ep
            episodes.append(ep)
            continue
        ep_open = open_.get(r.alarm_id)
        if ep_open is None:
            continue
        if r.note == "escalated":
            ep_open.actions.append((t, r.to_level))
            ep_open.level = min(ep_open.level, r.to_level)
        elif r.note == "cleared":
            ep_open.end = t
            del open_[r.alarm_id]
    return episodes, len(rows)


# -- scoring ----------------------------------------------------------------------------------
def overlaps(ep: Episode, w: Window, end_of_replay: int) -> bool:
    end = ep.end if ep.end is not None else end_of_replay
    return ep.start <= w.end and end >= w.start and (not w.subjects or ep.subject in w.subjects)


def score(
    dataset: str, replayed: Replayed, windows: list[Window], lines: list[str], *, labels: str
) -> Scored:
    eps, end = replayed.episodes, replayed.last
    lines.append(f"  labels: {labels} — {len(windows)} events")
    lines.append(
        f"   #  event window (dataset time)            {'length':>8}  detected  "
        f"{'TTD':>10}  lvl  first alarm (rule @ subject)            overlapping"
    )
    detected, ttd = 0, []
    for n, w in enumerate(windows, 1):
        inside = [ep for ep in eps if overlaps(ep, w, end)]
        hits = [(t, lv, ep) for ep in inside for t, lv in ep.actions if w.start <= t <= w.end]
        hits.sort(key=lambda h: (h[0], h[1]))
        if hits:
            t, lv, ep = hits[0]
            detected += 1
            ttd.append(t - w.start)
            state, when, level, by = "yes", fmt_span(t - w.start), ROMAN[lv], ep.rule
            by += f" @ {ep.subject.split(':', 1)[1]}"
        else:
            before = any(ep.start < w.start for ep in inside)
            state, when, level, by = ("open" if before else "no"), "—", "—", "—"
        lines.append(
            f"  {n:>2}  {fmt_t(w.start)} → {fmt_t(w.end)}  "
            f"{fmt_span(w.end - w.start).lstrip('+'):>8}  {state:<8}  {when:>10}  {level:<3}  "
            f"{by[:39]:<39}  {len(inside):>5}"
        )
    is_tp = [any(overlaps(ep, w, end) for w in windows) for ep in eps]
    tp_eps = [ep for ep, tp in zip(eps, is_tp, strict=True) if tp]
    fp_eps = [ep for ep, tp in zip(eps, is_tp, strict=True) if not tp]
    periods = merged_periods(eps, end, windows)
    weeks = max(replayed.last - replayed.first, 1) / (7 * 86_400)
    s = Scored(
        dataset,
        len(windows),
        detected,
        len(eps),
        len(tp_eps),
        len(fp_eps),
        len(periods),
        sum(periods),
        ttd,
        weeks,
    )
    lines.append(
        f"  episodes {s.episodes} (TP {s.tp}, FP {s.fp}, {s.fp / weeks:.1f} FP/week)  "
        f"precision {fmt_ratio(s.precision)}  recall {detected}/{len(windows)} = "
        f"{s.recall:.2f}  F1 {s.f1:.2f}   periods {s.periods} (TP {s.periods_tp})"
    )
    if fp_eps:
        by_rule = Counter(ep.rule for ep in fp_eps).most_common(6)
        lines.append("  FP episodes by rule: " + ", ".join(f"{r} {c}" for r, c in by_rule))
    return s


def merged_periods(eps: list[Episode], end: int, windows: list[Window]) -> list[bool]:
    """The union of episode spans (ignoring subjects); per period: does it overlap an event?"""
    spans = sorted((ep.start, ep.end if ep.end is not None else end) for ep in eps)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [any(a <= w.end and b >= w.start for w in windows) for a, b in merged]


def run_case(case: Case, span: int | None, max_batches: int, interval_s: int) -> Outcome:
    started = time.perf_counter()
    lines = [f"== {case.name} ==", *case.lines]
    last = max(int(s.ts.max()) for s in case.series)
    shift = (int(time.time()) - MARGIN_S - last) // HOUR * HOUR
    with throwaway_database() as url, open_session(url) as session:
        create_sensors(session, case.series, interval_s)
        for spec in case.specs:
            rules.save(session, spec, actor="bench")
        session.commit()
        steps = count_batches(case.series, shift, 0)
        if span is None:
            per = math.ceil(steps / max_batches) if max_batches > 0 else 1
            span = per * interval_s if per > 1 else 0
        total = count_batches(case.series, shift, span)
        batches = build_batches(case.series, shift, span)
        replayed = replay(session, batches, shift, name=case.name, total=total)
    n = sum(len(s.ts) for s in case.series)
    each = "one per time step" if span == 0 else f"{fmt_span(span).lstrip('+')} of data each"
    lines.append(
        f"  replay: {n:,} readings of {len(case.series)} sensor(s) in {replayed.batches:,} "
        f"batches ({each}), accepted {replayed.accepted:,}, duplicates {replayed.duplicates} "
        f"(same sensor and time: the first is kept), rejected {len(replayed.rejected)}, "
        f"{replayed.events} alarm events, {replayed.seconds:.0f} s"
    )
    lines += [f"  rejected: {r}" for r in replayed.rejected[:3]]
    scores = [
        score(f"{case.name} [{label}]" if len(case.labels) > 1 else case.name, replayed, w, lines,
              labels=label)
        for label, w in case.labels.items()
    ]  # fmt: skip
    return Outcome(case.name, lines, scores, time.perf_counter() - started)


# -- NAB --------------------------------------------------------------------------------------
def nab_case(folder: Path, name: str) -> tuple[Case, int]:
    kind, unit = NAB_SERIES[name]
    frame = pd.read_csv(folder / f"{name}.csv")
    ts = to_epoch(frame["timestamp"])
    value = frame["value"].to_numpy(dtype=np.float64)
    notes = []
    if name.startswith("ambient"):
        value = (value - 32.0) * 5.0 / 9.0
        notes.append("  values assumed °F (NAB does not say; 57–87 is an office) → °C")
    elif name.startswith("machine"):
        notes.append("  unit not stated by NAB: values kept as given, stored as temperature_c")
    windows_doc = json.loads((folder / "combined_windows.json").read_text())
    windows = [
        Window(f"w{i}", int(to_epoch(pd.Series([a]))[0]), int(to_epoch(pd.Series([b]))[0]))
        for i, (a, b) in enumerate(windows_doc[f"realKnownCause/{name}.csv"], 1)
    ]
    interval = int(np.median(np.diff(ts)))
    n_prob = math.floor(PROBATION * len(ts))
    mu, sd = float(value[:n_prob].mean()), float(value[:n_prob].std(ddof=1))
    delta = one_hour_changes(ts[:n_prob], value[:n_prob])
    mu_d, sd_d = float(delta.mean()), float(delta.std(ddof=1))
    code = "nab"
    specs = [
        RuleSpec(
            code=f"{code}-above",
            title=f"{name}: above μ + kσ",
            indicator=kind,
            direction="above",
            thresholds={4: mu + 3 * sd, 3: mu + 4 * sd, 2: mu + 5 * sd, 1: mu + 6 * sd},
            persistence_n=3,
            hysteresis=0.5 * sd,
            source="bench: first 15 % of the series",
        ),
        RuleSpec(
            code=f"{code}-below",
            title=f"{name}: below μ − kσ",
            indicator=kind,
            direction="below",
            thresholds={4: mu - 3 * sd, 3: mu - 4 * sd, 2: mu - 5 * sd, 1: mu - 6 * sd},
            persistence_n=3,
            hysteresis=0.5 * sd,
            source="bench: first 15 % of the series",
        ),
        RuleSpec(
            code=f"{code}-rise",
            title=f"{name}: fast rise",
            kind="rate",
            indicator=kind,
            direction="above",
            window_s=HOUR,
            thresholds={lv: mu_d + k * sd_d for lv, k in ((4, 4), (3, 5), (2, 6), (1, 8))},
            source="bench: 1-hour changes in the first 15 %",
        ),
        RuleSpec(
            code=f"{code}-drop",
            title=f"{name}: fast drop",
            kind="rate",
            indicator=kind,
            direction="below",
            window_s=HOUR,
            thresholds={lv: -mu_d + k * sd_d for lv, k in ((4, 4), (3, 5), (2, 6), (1, 8))},
            source="bench: 1-hour changes in the first 15 %",
        ),
    ]
    lines = [
        f"  series: {len(ts):,} readings every {interval // 60} min, {fmt_t(ts[0])} → "
        f"{fmt_t(ts[-1])}; sensor kind {kind} ({unit})",
        *notes,
        f"  calibration: first 15 % = {n_prob:,} readings (→ {fmt_t(ts[n_prob - 1])}): "
        f"μ {fmt_num(mu)}, σ {fmt_num(sd)}; 1-h change μΔ {fmt_num(mu_d)}, σΔ {fmt_num(sd_d)}",
        *(f"    {describe_rule(s)}" for s in specs),
    ]
    series = Series(f"nab-{name}", kind, unit, ts, value)
    return Case(f"NAB {name}", [series], specs, {"NAB windows": windows}, lines), interval


def one_hour_changes(ts: I64, value: F64) -> F64:
    """value(t) − the last value at or before t − 1 h: what the engine's rate rule computes."""
    before = np.searchsorted(ts, ts - HOUR, side="right") - 1
    ok = before >= 0
    out: F64 = value[ok] - value[before[ok]]
    return out


# -- BATADAL ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    unit: str
    factor: float
    floor: float  # smallest calibration margin, in the indicator's unit


def batadal_columns(frame: pd.DataFrame) -> list[Column]:
    names = [str(c) for c in frame.columns]
    tanks = [Column(c, "level_m", "m", 1.0, 0.01) for c in names if re.fullmatch(r"L_T\d+", c)]
    pressures = [Column(c, "pressure_mpa", "MPa", M_HEAD_TO_MPA, 0.001) for c in BATADAL_PRESSURES]
    flows = [
        Column(c, "flow_m3h", "m3/h", LPS_TO_M3H, 1.0)
        for c in names
        if re.fullmatch(r"F_(PU\d+|V\d+)", c)
    ]
    return tanks + pressures + flows


def read_batadal(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame.columns = [c.strip() for c in frame.columns]
    stamps = pd.to_datetime(frame["DATETIME"], format="%d/%m/%y %H", utc=True)
    frame["epoch"] = to_epoch(stamps)
    return frame


def attack_runs(epoch: I64, flag: npt.NDArray[Any]) -> list[Window]:
    on = np.asarray(flag) == 1
    edges = np.flatnonzero(np.diff(np.r_[0, on.astype(int), 0]))
    return [
        Window(f"attack {i}", int(epoch[a]), int(epoch[b - 1]))
        for i, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True), 1)
    ]


def batadal_case(folder: Path) -> tuple[Case, int]:
    test = read_batadal(folder / "BATADAL_dataset04.csv")
    train_all = read_batadal(folder / "training_dataset_1.csv")
    flags = sorted(test["ATT_FLAG"].unique().tolist())
    # Calibrate only on attack-free hours before the evaluation period (no peeking).
    train = train_all[(train_all["epoch"] < test["epoch"].min()) & (train_all["ATT_FLAG"] == 0)]
    overlap = train_all[train_all["epoch"] >= test["epoch"].min()]
    lines = [
        f"  evaluation: BATADAL_dataset04.csv, {len(test):,} hourly rows "
        f"{fmt_t(test['epoch'].iloc[0])} → {fmt_t(test['epoch'].iloc[-1])}, ATT_FLAG values "
        f"{flags}" + ("" if -999 in flags else " (no -999 rows in this copy)"),
        f"  calibration: training_dataset_1.csv rows before the evaluation period with "
        f"ATT_FLAG = 0: {len(train):,} rows {fmt_t(train['epoch'].iloc[0])} → "
        f"{fmt_t(train['epoch'].iloc[-1])}",
    ]
    labels = {
        "dataset04 ATT_FLAG": attack_runs(test["epoch"].to_numpy(), test["ATT_FLAG"].to_numpy())
    }
    if len(overlap):
        same = overlap.set_index("epoch").reindex(test["epoch"])
        lines.append(
            f"  note: training_dataset_1.csv also holds {len(overlap):,} rows of the evaluation "
            f"period ({int((overlap['ATT_FLAG'] == 1).sum())} with ATT_FLAG = 1; excluded "
            "from calibration); where its labels differ they are scored as a second label set"
        )
        if (
            same["ATT_FLAG"].notna().all()
            and not (same["ATT_FLAG"].to_numpy() == test["ATT_FLAG"].to_numpy()).all()
        ):
            labels["training_dataset_1 ATT_FLAG"] = attack_runs(
                test["epoch"].to_numpy(), same["ATT_FLAG"].to_numpy()
            )
    lines.append(
        "  units: CTOWN.inp 'Units LPS' → flows L/s × 3.6 = m³/h; pressures m of head × "
        "0.00980665 = MPa; levels m. Per-sensor thresholds (rule target: a box around the sensor)"
    )
    lines.append(
        f"    {'sensor':<8} {'kind':<12} {'min':>9} {'p0.5':>9} {'p99.5':>9} {'max':>9} "
        f"{'m':>7}  rules (IV / III / II / I)"
    )
    series, specs = [], []
    for i, col in enumerate(batadal_columns(test)):
        train_v = train[col.name].to_numpy(dtype=np.float64) * col.factor
        lo, hi = float(train_v.min()), float(train_v.max())
        m = max(0.05 * (hi - lo), col.floor)
        _, _, box = sensor_box(i)
        eid = f"ctown-{col.name.lower()}"
        directions: list[Literal["above", "below"]] = ["above"]
        if col.kind != "flow_m3h" or lo > 0:
            directions.append("below")
        described = []
        for d in directions:
            sign, edge = (1, hi) if d == "above" else (-1, lo)
            thresholds = {lv: edge + sign * k * m for lv, k in ((4, 1), (3, 2), (2, 4), (1, 8))}
            specs.append(
                RuleSpec(
                    code=f"bt-{col.name.lower()}-{d}",
                    title=f"C-Town {col.name} {d} its training envelope",
                    indicator=col.kind,
                    direction=d,
                    thresholds=thresholds,
                    target=Target(area_wkt=box),
                    persistence_n=2,
                    hysteresis=m,
                    source="bench: BATADAL training year (attack-free)",
                )
            )
            described.append(f"{d} " + "/".join(fmt_num(thresholds[lv]) for lv in (4, 3, 2, 1)))
        p_lo, p_hi = np.percentile(train_v, [0.5, 99.5])
        lines.append(
            f"    {col.name:<8} {col.kind:<12} {fmt_num(lo):>9} {fmt_num(p_lo):>9} "
            f"{fmt_num(p_hi):>9} {fmt_num(hi):>9} {fmt_num(m):>7}  {'; '.join(described)}"
        )
        values = test[col.name].to_numpy(dtype=np.float64) * col.factor
        series.append(Series(eid, col.kind, col.unit, test["epoch"].to_numpy(), values))
    return Case("BATADAL C-Town", series, specs, labels, lines), HOUR


# -- the demo replay --------------------------------------------------------------------------
def demo_outcome(duration: str, seed: int) -> Outcome:
    """The demo city, the default rule pack, ``cityrisk replay demo`` generated in-process."""
    started = time.perf_counter()
    lines = ["== demo replay (cityrisk replay demo, default rule pack) =="]
    from app.flows import demo
    from app.replay.run import Options
    from app.replay.run import prepare as replay_prepare
    from app.replay.run import run as replay_run
    from app.replay.sinks import SendStats

    with (
        throwaway_database() as url,
        open_session(url) as session,
        tempfile.TemporaryDirectory() as tmp,
    ):
        demo.load(session)
        specs = rules.default_pack()
        rules.load(session, specs, actor="bench")
        session.commit()
        truth_path = Path(tmp) / "truth.json"
        options = Options("demo", speed=0, duration=duration, batch_s=60, truth=truth_path,
                             seed=seed)  # fmt: skip
        prepared = replay_prepare(session, options, http_port=0, mqtt_url="")
        session.commit()
        sink = IngestSink(session, SendStats())
        replay_run(prepared.fleet, prepared.plan, sink, speed=0, batch_s=60)
        truth = json.loads(truth_path.read_text())
        episodes, n_events = read_episodes(session, sink.marks, 0)
        rows = session.execute(text("SELECT external_id, asset_id, kind FROM sensor")).all()
        assets: dict[str, int | None] = {r.external_id: r.asset_id for r in rows}
        kinds: dict[str, str] = {r.external_id: r.kind for r in rows}
    first = int(to_epoch(pd.Series([truth["start"]]))[0])
    replayed = Replayed(
        episodes, sink.stats.accepted, sink.stats.duplicates, sink.rejections, sink.batches,
        n_events, sink.seconds, first, sink.last,
    )  # fmt: skip
    ruled = {s.indicator for s in specs if s.indicator != rules.ANY_INDICATOR}
    lines.append(
        f"  replay: seed {truth['seed']}, {truth['sensors']:,} sensors, {truth['start']} → "
        f"{truth['end']}, {sink.stats.readings:,} readings in {sink.batches} batches of 60 s, "
        f"accepted {sink.stats.accepted:,}, rejected {len(sink.rejections)}, "
        f"{n_events} alarm events, {sink.seconds:.0f} s"
    )
    lines += [f"  rejected: {r}" for r in sink.rejections[:3]]
    lines += [f"  truth note: {note}" for note in truth.get("notes", [])]
    windows = []
    for inc in truth["incidents"]:
        affected = list(inc["affected_sensors"])
        subjects = {f"sensor:{e}" for e in affected}
        subjects |= {f"asset:{assets[e]}" for e in affected if assets.get(e)}
        subjects |= {f"asset:{a['id']}" for a in inc["assets"]}
        start = int(to_epoch(pd.Series([inc["start"]]))[0])
        end = int(to_epoch(pd.Series([inc["end"]]))[0])
        windows.append(Window(inc["type"], start, end, frozenset(subjects)))
        by_kind = Counter(kinds.get(e, "?") for e in affected)
        alarmed = {ep.subject for ep in episodes if ep.start <= end and ep.subject in subjects}
        hit_kinds = Counter(kinds.get(s.split(":", 1)[1]) for s in alarmed if "sensor:" in s)
        lines.append(
            f"  incident {inc['type']}: {inc['start']} → {inc['end']}; affected sensors by kind "
            "(alarmed/affected): "
            + ", ".join(
                f"{k} {hit_kinds.get(k, 0)}/{c}{'' if k in ruled else ' (no rule)'}"
                for k, c in sorted(by_kind.items())
            )
        )
    scores = [score("demo replay", replayed, windows, lines, labels="replay truth file")]
    return Outcome("demo", lines, scores, time.perf_counter() - started)


class IngestSink:
    """A replay sink that calls ``ingest_payload`` in-process and commits each batch."""

    def __init__(self, session: Session, stats: Any) -> None:
        self.session = session
        self.stats = stats
        self.marks = Marks()
        self.rejections: list[str] = []
        self.batches = 0
        self.last = 0
        self.seconds = 0.0

    def send(self, fleet: Any, readings: Any) -> None:
        started = time.perf_counter()
        report = ingest_payload(self.session, readings.ndjson(fleet), NDJSON)
        self.session.commit()
        self.last = int(readings.ts.max()) if len(readings) else self.last
        self.marks.note(self.session, report, self.last)
        self.stats.readings += len(readings)
        self.stats.accepted += report.accepted
        self.stats.duplicates += report.duplicates
        self.rejections += [f"{r.sensor}: {r.reason}" for r in report.rejected]
        self.batches += 1
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        return None


# -- the leak benchmark (bench/leaks/simulate.py: WNTR leaks on the real KY4 network) ---------
LEAK_GRACE_S = 2 * HOUR  # an alarm raised up to this long after a leak's end is still its own
LEAK_LOCALISE_S = HOUR  # sensors alarmed within this long after the first detection localise
LEAK_CRS = "EPSG:32616"  # UTM 16N (KY4 lies at 85.6° W): metres for distances
LEAK_MODES = ("step", "day")  # one 5-minute step per batch / one day per batch
# The learned rule kinds another change adds (thresholds in σ of the calibrated profile, fixed
# here a priori — not tuned on the evaluation window): tried if RuleSpec accepts them.
LEARNED_RULES: list[dict[str, Any]] = [
    {
        "code": "leak-pressure-residual",
        "title": "Pressure below its learned time-of-day profile",
        "kind": "residual",
        "indicator": "pressure_mpa",
        "direction": "below",
        "thresholds": {4: 3.0, 3: 4.0, 2: 5.0, 1: 6.0},
        "persistence_n": 3,
        "source": "bench: σ of the profile calibrate learns (3σ, 3 readings = 15 min)",
    },
    {
        "code": "leak-pressure-cusum",
        "title": "Pressure drifting below its learned profile (CUSUM)",
        "kind": "cusum",
        "indicator": "pressure_mpa",
        "direction": "below",
        "thresholds": {4: 5.0, 3: 8.0, 2: 12.0, 1: 20.0},
        "k": 0.5,
        "source": "bench: k = 0.5, h = 5σ (Montgomery, Introduction to SQC, Table 9.3)",
    },
    {
        "code": "leak-pressure-zone-residual",
        "title": "Pressure below its profile, against the zone's other sensors",
        "kind": "residual",
        "indicator": "pressure_mpa",
        "direction": "below",
        "peers": "zone",
        "thresholds": {4: 3.0, 3: 4.0, 2: 5.0, 1: 6.0},
        "persistence_n": 3,
        "source": "bench: the residual above minus the zone median at each step",
    },
    {
        "code": "leak-pressure-zone-cusum",
        "title": "Pressure drifting below its profile, against the zone (CUSUM)",
        "kind": "cusum",
        "indicator": "pressure_mpa",
        "direction": "below",
        "peers": "zone",
        "thresholds": {4: 5.0, 3: 8.0, 2: 12.0, 1: 20.0},
        "k": 0.5,
        "source": "bench: the CUSUM above on the zone residual",
    },
]


@dataclass
class LeakRun:
    """One replay of the leak benchmark (one database): what the engine did, in data time."""

    mode: str
    episodes: list[Episode]
    alarms: list[tuple[str, str, int, int, int]]  # rule, sensor, opened data time, level, peak
    data_time_from: str  # "opened_ts" or "per-batch bookkeeping"
    suspected: list[tuple[int, float, float]]  # (data time, lon, lat) of top candidates
    lines: list[str]
    batches: int
    readings: int
    seconds: float


def leak_bench_folder(
    seed: int, datasets: Path, solver: str = "wntr", rebuild_after_days: int = 300
) -> tuple[Path, list[str]]:
    """The cached benchmark (built by ``bench/leaks/simulate.py`` when missing or too old)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from leaks import simulate  # bench/leaks/simulate.py

    argv = ["--seed", str(seed), "--datasets", str(datasets), "--solver", solver]
    folder = simulate.run(simulate.parser().parse_args(argv))
    manifest = json.loads((folder / "manifest.json").read_text())
    age = datetime.now(UTC) - datetime.fromisoformat(manifest["start"])
    notes = []
    if age.days > rebuild_after_days:  # ingest refuses readings older than 400 days
        notes.append(f"  cache started {age.days} days ago: rebuilt with today's dates")
        folder = simulate.run(simulate.parser().parse_args([*argv, "--force"]))
    return folder, notes


def learned_specs() -> tuple[list[RuleSpec], str]:
    """The residual / CUSUM rules if this cityrisk validates those kinds, else none (and why)."""
    out, why = [], []
    for raw in LEARNED_RULES:
        try:
            out.append(RuleSpec.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            why.append(f"{raw['kind']} ({where}: {first['msg'][:100]})")
    return out, "; ".join(why)


def csv_batches(path: Path, span_s: int) -> Iterator[tuple[int, bytes]]:
    """``readings.csv`` (sorted by time) cut into CSV bodies of ``span_s`` seconds of data."""
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n")
    lines = body.rstrip(b"\n").split(b"\n")
    stamps = np.array([ln.split(b",", 2)[1] for ln in lines]).astype("U20")
    ts = to_epoch(pd.Series(stamps))
    slot = (ts - ts[0]) // span_s
    cuts = np.r_[0, np.flatnonzero(np.diff(slot)) + 1, len(lines)]
    for lo, hi in itertools.pairwise(cuts):
        yield int(ts[hi - 1]), header + b"\n" + b"\n".join(lines[lo:hi]) + b"\n"


def leak_replay(folder: Path, mode: str) -> LeakRun:
    """Import the network and sensors, backfill the calibration window, calibrate, backfill the
    rest, in a throwaway database; read the alarms back in data time."""
    from app.assets.importer import ImportOptions
    from app.flows.assets import import_assets
    from app.sensors.registry import import_sensors

    started = time.perf_counter()
    manifest = json.loads((folder / "manifest.json").read_text())
    cal_end = int(to_epoch(pd.Series([manifest["calibration_end"]]))[0])
    first = int(to_epoch(pd.Series([manifest["start"]]))[0])
    lines: list[str] = []
    span = manifest["step_s"] if mode == "step" else 86_400
    with throwaway_database() as url, open_session(url) as session:
        for name, kind in (("pipes", "water_pipe"), ("pumps", "pump_station")):
            rep = import_assets(session, folder / f"{name}.geojson", ImportOptions(kind=kind))
            if rep.rejected:
                raise RuntimeError(f"{name}: {len(rep.rejected)} rejected: {rep.rejected[:2]}")
            lines.append(f"  import {name}.geojson as {kind}: {rep.inserted} inserted")
        srep = import_sensors(session, folder / "sensors.geojson")
        if srep.rejected or srep.unbound:
            raise RuntimeError(f"sensors: {srep.rejected[:2]} {srep.unbound[:2]}")
        lines.append(
            f"  import-sensors sensors.geojson: {srep.inserted} inserted, "
            f"{srep.bound_explicit} bound explicitly to their pipe"
        )
        rules.load(session, rules.default_pack(), actor="bench")
        session.commit()
        marks = Marks()
        batches, readings, notes = 0, 0, []
        calibrated = False
        extra, why = learned_specs()
        for data_time, body in csv_batches(folder / "readings.csv", span):
            if not calibrated and data_time >= cal_end:
                calibrated = True
                notes += leak_calibrate(session, first, cal_end, extra, why)
            report = ingest_payload(session, body, "text/csv")
            session.commit()
            if report.rejected:
                raise RuntimeError(f"rejected: {report.rejected[:2]}")
            marks.note(session, report, data_time)
            batches += 1
            readings += report.accepted
        episodes, _ = read_episodes(session, marks, 0)
        alarms, source = leak_alarms(session, marks)
        suspected = read_suspected(session, notes)
    lines += notes
    return LeakRun(
        mode, episodes, alarms, source, suspected, lines, batches, readings,
        time.perf_counter() - started,
    )  # fmt: skip


def leak_calibrate(
    session: Session, start: int, end: int, extra: list[RuleSpec], why: str
) -> list[str]:
    """``calibrate`` on the leak-free window and the learned rules, when this cityrisk has them."""
    try:
        from app.alarms.calibrate import calibrate  # type: ignore[import-not-found]
    except ImportError:
        return [
            "  calibrate: app.alarms.calibrate not importable — default rule pack alone "
            "(no learned profiles)"
        ]
    for spec in extra:  # first: calibrate learns each rule's in-control maximum
        rules.save(session, spec, actor="bench")
    result = calibrate(
        session,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        actor="bench",
    )
    session.commit()
    out = [f"  calibrate {fmt_t(start)} → {fmt_t(end)}: {str(result)[:200]}"]
    out.append(
        "  learned rules: " + (", ".join(f"{s.code} ({s.kind})" for s in extra) or "none")
        + (f" — not valid here: {why}" if why else "")
    )  # fmt: skip
    return out


def leak_alarms(session: Session, marks: Marks) -> tuple[list[tuple[str, str, int, int, int]], str]:
    """(rule, sensor, opened data time, level at opening, peak level) of every alarm."""
    rows = session.execute(
        text(
            "SELECT a.id, a.rule_code, s.external_id AS sensor, a.opened_at, a.opened_ts, "
            "coalesce(a.peak_level, a.level) AS peak, "
            "(SELECT e.to_level FROM alarm_event e WHERE e.alarm_id = a.id ORDER BY e.id LIMIT 1) "
            "AS first_level, "
            "(SELECT min(e.id) FROM alarm_event e WHERE e.alarm_id = a.id) AS first_event "
            "FROM alarm a LEFT JOIN sensor s ON s.id = a.sensor_id ORDER BY a.id"
        )
    ).all()
    # opened_ts holds the raising reading's data time once the engine fills it; until then it
    # is the recording time (= opened_at, "now" in a backfill): use the per-batch bookkeeping.
    filled = any(abs((r.opened_ts - r.opened_at).total_seconds()) > HOUR for r in rows)
    out = [
        (
            r.rule_code,
            str(r.sensor),
            int(r.opened_ts.timestamp()) if filled else marks.time_of(int(r.first_event)),
            int(r.first_level),
            int(r.peak),
        )
        for r in rows
    ]
    return out, "opened_ts" if filled else "per-batch bookkeeping (opened_ts not data time yet)"


def read_suspected(session: Session, notes: list[str]) -> list[tuple[int, float, float]]:
    """Top candidates of ``suspected_event`` rows, if that table exists (another change adds it):
    (data time, lon, lat). Columns are looked for by name; what was used is noted."""
    exists = session.execute(text("SELECT to_regclass('suspected_event')")).scalar_one()
    if exists is None:
        notes.append("  suspected_event: no such table — localisation from alarmed sensors only")
        return []
    cols = [
        r[0]
        for r in session.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'suspected_event'"
            )
        )
    ]
    t_col = next(
        (c for c in ("opened_ts", "onset_ts", "start_ts", "ts", "opened_at") if c in cols), None
    )
    g_col = next((c for c in ("top_geom", "candidate_geom", "location", "geom") if c in cols), None)
    if t_col is None or g_col is None:
        notes.append(f"  suspected_event: columns {cols} — no time/candidate geometry recognised")
        return []
    rows = session.execute(
        text(
            f"SELECT extract(epoch FROM {t_col})::bigint AS t, "
            f"ST_X(ST_PointOnSurface({g_col})) AS x, ST_Y(ST_PointOnSurface({g_col})) AS y "
            f"FROM suspected_event WHERE {g_col} IS NOT NULL"
        )
    ).all()
    notes.append(f"  suspected_event: {len(rows)} rows (time {t_col}, candidate {g_col})")
    return [(int(r.t), float(r.x), float(r.y)) for r in rows]


def leak_outcome(runs: dict[str, LeakRun], folder: Path, notes: list[str]) -> Outcome:
    """Score the two replays against the schedule and compare them."""
    import geopandas as gpd
    import shapely

    manifest = json.loads((folder / "manifest.json").read_text())
    leaks = pd.read_csv(folder / "leaks.csv")
    onset = to_epoch(leaks["onset"])
    end = to_epoch(leaks["end"])
    cal_end = int(to_epoch(pd.Series([manifest["calibration_end"]]))[0])
    last = int(to_epoch(pd.Series([manifest["end"]]))[0])
    pipes = gpd.read_file(folder / "pipes.geojson").set_index("external_id").to_crs(LEAK_CRS)
    sensors = gpd.read_file(folder / "sensors.geojson").set_index("external_id").to_crs(LEAK_CRS)
    leak_lines = pipes.geometry.loc[leaks["pipe_id"]].to_numpy()
    # the best a sensor-based localisation can do: the distance to the nearest sensor at all
    nearest = shapely.distance(leak_lines[:, None], sensors.geometry.to_numpy()[None, :]).min(1)
    m = manifest
    lines = [
        f"== leaks: KY4, solver {m.get('solver', 'wntr')} (bench/leaks/simulate.py) ==",
        *notes,
        f"  data: {m['start']} → {m['end']} every {m['step_s'] // 60} min, {len(sensors)} pressure "
        f"sensors, {m['readings']:,} readings; leak-free calibration until {m['calibration_end']}; "
        f"{len(leaks)} leaks of {leaks['pct_of_mean_demand'].min():.1f}–"
        f"{leaks['pct_of_mean_demand'].max():.1f} % of mean demand "
        f"({m['mean_demand_l_s_calibration']:.1f} L/s); seed {m['seed']}",
        f"  scoring: an alarm raised (or recurring, escalating) inside [onset, end] detects the "
        f"leak; an episode starting in the evaluation window outside every [onset, end + "
        f"{LEAK_GRACE_S // HOUR} h] is a false alarm; localisation = distance from the leaking "
        f"pipe to the nearest sensor alarmed within {LEAK_LOCALISE_S // 60} min of detection "
        f"('near m': to the nearest sensor at all, the floor of that error; 'drop m (σ)': the "
        "largest noise-free pressure drop the leak causes at a sensor in its first hour, and that "
        "sensor's noise σ)",
    ]

    def signal(row: pd.Series) -> str:
        """The leak's largest noise-free 1-h drop at a sensor, and that sensor's noise σ."""
        if "signal_drop_m" not in row:
            return "—"
        return f"{row['signal_drop_m']:.3f} ({row['signal_noise_sigma_m']:.3f})"

    free_s = (last - cal_end) - float(np.sum(np.minimum(end + LEAK_GRACE_S, last) - onset))
    scores: list[Scored] = []
    for mode in LEAK_MODES:
        run = runs[mode]
        lines += [f"  -- {mode}: one {'5-minute step' if mode == 'step' else 'day'} per batch, "
                  f"{run.batches:,} batches, {run.readings:,} readings, {run.seconds:.0f} s; "
                  f"alarm data times from {run.data_time_from}", *run.lines]  # fmt: skip
        acts = [(t, lv, ep) for ep in run.episodes for t, lv in ep.actions]
        ttd, loc, detected = [], [], 0
        lines.append(
            f"   {'leak':<4} {'pipe':<7} {'onset (UTC)':<16} {'h':>5} {'% dem':>6} {'L/s':>6}  "
            f"{'TTD':>9}  {'loc m':>6}  {'near m':>6}  {'drop m (σ)':>13}  first alarm"
        )
        for i, row in leaks.iterrows():
            a, b = int(onset[i]), int(end[i])
            hits = sorted((h for h in acts if a <= h[0] <= b), key=lambda h: (h[0], h[1]))
            when, dist, by = "—", "—", "—"
            if hits:
                detected += 1
                t0 = hits[0][0]
                ttd.append(t0 - a)
                near = {h[2].subject.split(":", 1)[1] for h in hits if h[0] <= t0 + LEAK_LOCALISE_S}
                pts = [sensors.geometry[s] for s in near if s in sensors.index]
                cands = [shapely.Point(*xy) for xy in leak_candidates(run, t0, LEAK_LOCALISE_S)]
                if pts or cands:
                    d = float(min(leak_lines[i].distance(p) for p in (cands or pts)))
                    loc.append(d)
                    dist = f"{d:.0f}"
                when, by = fmt_span(t0 - a), f"{hits[0][2].rule} @ {hits[0][2].subject[7:]}"
            lines.append(
                f"   {row['leak_id']:<4} {row['pipe_id']:<7} {row['onset'][:16]:<16} "
                f"{row['duration_h']:>5.1f} {row['pct_of_mean_demand']:>6.2f} "
                f"{row['leak_flow_l_s']:>6.2f}  {when:>9}  {dist:>6}  {nearest[i]:>6.0f}  "
                f"{signal(row):>13}  {by[:48]}"
            )
        eps = [ep for ep in run.episodes if ep.start >= cal_end]
        in_cal = len(run.episodes) - len(eps)
        is_tp = [bool(np.any((ep.start <= end + LEAK_GRACE_S) & ((ep.end or last) >= onset)))
                 for ep in eps]  # fmt: skip
        fp = [ep for ep, tp in zip(eps, is_tp, strict=True) if not tp]
        s = Scored(f"leaks KY4 [{mode}]", len(leaks), detected, len(eps), sum(is_tp), len(fp),
                   0, 0, ttd, free_s / (7 * 86_400))  # fmt: skip
        s.loc_m = loc
        s.n_alarms = len(run.alarms)
        scores.append(s)
        lines.append(
            f"   recall {detected}/{len(leaks)}  episodes {len(eps)} (TP {s.tp}, FP {s.fp} = "
            f"{s.fp / s.weeks:.2f}/week over {s.weeks:.2f} leak-free weeks)  precision "
            f"{fmt_ratio(s.precision)}; {in_cal} episodes in the calibration window"
            + (
                " (by rule: "
                + ", ".join(
                    f"{r} {c}" for r, c in Counter(ep.rule for ep in run.episodes).most_common(5)
                )
                + ")"
                if run.episodes
                else ""
            )
        )
    if not {"step", "day"} <= set(runs):
        lines.append(f"  both ways: not compared (--leak-modes {','.join(runs)})")
        return Outcome("leaks", lines, scores, sum(r.seconds for r in runs.values()))
    a, b = set(runs["step"].alarms), set(runs["day"].alarms)
    match = a == b
    lines.append(
        f"  both ways: {len(a)} alarms one step per batch, {len(b)} one day per batch; "
        f"(rule, sensor, opened data time, level, peak) {'MATCH' if match else 'DIFFER'}"
        + (" (trivially: no alarm either way)" if match and not a else "")
        + ("" if match else f": {len(a - b)} only per step, {len(b - a)} only per day")
    )
    for x in sorted(a ^ b, key=lambda x: x[2])[:6]:
        side = "step" if x in a else "day "
        lines.append(
            f"    only {side}: {x[0]} @ {x[1]} opened {fmt_t(x[2])} level {x[3]} peak {x[4]}"
        )
    for s in scores:
        s.match = match
    return Outcome("leaks", lines, scores, sum(r.seconds for r in runs.values()))


def leak_candidates(run: LeakRun, t0: int, within_s: int) -> list[tuple[float, float]]:
    """Suspected-event top candidates from ``t0`` to ``t0 + within_s``, in LEAK_CRS metres."""
    pts = [(x, y) for t, x, y in run.suspected if t0 <= t <= t0 + within_s]
    if not pts:
        return []
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, LEAK_CRS, always_xy=True)
    return [tr.transform(x, y) for x, y in pts]


# -- the run ----------------------------------------------------------------------------------
def job(
    kind: str, name: str, folder: Path, span: int | None, max_batches: int, duration: str
) -> Outcome | LeakRun:
    if kind == "leaks":  # folder: the built benchmark; name: the batching mode
        return leak_replay(folder, name)
    if kind == "demo":
        return demo_outcome(duration, seed=1)
    if kind == "nab":
        case, interval = nab_case(folder / "nab_realKnownCause", name)
    else:
        case, interval = batadal_case(folder / "batadal")
    return run_case(case, span, max_batches, interval)


def summary(outcomes: list[Outcome]) -> list[str]:
    rows = [s for o in outcomes for s in o.scores]
    lines = [
        "== summary (episode = one alarm from raise/recur to clear; TP if it overlaps an event) ==",
        f"{'dataset':<50} {'events':>6} {'det':>4} {'recall':>6} {'episodes':>8} {'TP':>5} "
        f"{'FP':>5} {'FP/wk':>5} {'prec':>5} {'F1':>5} {'periods':>7} {'TP':>4} "
        f"{'median TTD':>11}",
    ]
    for s in rows:
        ttd = fmt_span(statistics.median(s.ttd_s)) if s.ttd_s else "—"
        lines.append(
            f"{s.dataset[:50]:<50} {s.events:>6} {s.detected:>4} {s.recall:>6.2f} "
            f"{s.episodes:>8} {s.tp:>5} {s.fp:>5} {s.fp / s.weeks:>5.1f} "
            f"{fmt_ratio(s.precision):>5} {s.f1:>5.2f} "
            f"{s.periods:>7} {s.periods_tp:>4} {ttd:>11}"
        )
    return lines


def leak_summary(outcomes: list[Outcome]) -> list[str]:
    """The leak benchmark's table (goals: every leak within 1 h, within 300 m, ≤ 1 FA/week)."""
    lines = [
        "== leaks (goal: recall 1.00, max TTD ≤ 1 h, localisation ≤ 300 m, ≤ 1 FA/week) ==",
        f"{'dataset':<22} {'leaks':>5} {'recall':>6} {'prec':>5} {'FA/wk':>6} "
        f"{'median TTD':>10} {'max TTD':>9} {'loc median':>10} {'loc max':>8}  both ways",
    ]
    for o in outcomes:
        for s in o.scores:
            loc = s.loc_m
            lines.append(
                f"{s.dataset:<22} {s.events:>5} {s.recall:>6.2f} {fmt_ratio(s.precision):>5} "
                f"{s.fp / s.weeks:>6.2f} "
                f"{fmt_span(statistics.median(s.ttd_s)) if s.ttd_s else '—':>10} "
                f"{fmt_span(max(s.ttd_s)) if s.ttd_s else '—':>9} "
                f"{f'{statistics.median(loc):.0f} m' if loc else '—':>10} "
                f"{f'{max(loc):.0f} m' if loc else '—':>8}  "
                + ("differ" if not s.match else "match" if s.n_alarms else "match (no alarms)")
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--datasets",
        type=Path,
        default=Path(
            os.environ.get("CITYRISK_DATASETS", project_root().parent / "shared/datasets")
        ),
        help="folder holding batadal/ and nab_realKnownCause/ (default ../shared/datasets)",
    )
    parser.add_argument(
        "--only",
        default="nab,batadal,demo,leaks",
        help="nab, batadal, demo, leaks or a NAB series name",
    )
    parser.add_argument(
        "--leak-modes", default="step,day", help="batching of the leak case: step, day or both"
    )
    parser.add_argument("--leak-seed", type=int, default=13, help="bench/leaks/simulate.py seed")
    parser.add_argument(
        "--leak-solver",
        choices=("wntr", "epanet-emitter"),
        default="wntr",
        help="simulate.py --solver: WNTR add_leak (default) or EPANET emitters (~20x faster)",
    )
    parser.add_argument(
        "--leak-folder", type=Path, default=None, help="a benchmark simulate.py built (else built)"
    )
    parser.add_argument(
        "--batch-span", type=int, default=None, help="seconds of data per batch (0: per step)"
    )
    parser.add_argument(
        "--max-batches", type=int, default=1500, help="without --batch-span: batches per case"
    )
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel")
    parser.add_argument("--demo-duration", default="2h", help="simulated span of the demo replay")
    args = parser.parse_args()
    global LEAK_MODES
    LEAK_MODES = tuple(m for m in args.leak_modes.split(",") if m in ("step", "day"))
    only = {w.strip() for w in args.only.split(",") if w.strip()}

    jobs: list[tuple[str, str]] = []
    skipped: list[str] = []
    folder: Path = args.datasets
    if only & {"nab", "batadal", *NAB_SERIES}:
        if not folder.is_dir():
            skipped.append(
                f"datasets folder {folder} not found: NAB and BATADAL skipped (they are bench-only "
                "data, not shipped with cityrisk; pass --datasets DIR)"
            )
        else:
            if "batadal" in only:
                if (folder / "batadal" / "BATADAL_dataset04.csv").exists():
                    jobs.append(("batadal", "batadal"))
                else:
                    skipped.append(f"BATADAL skipped: {folder / 'batadal'} not found")
            for name in [n for n in NAB_SERIES if "nab" in only or n in only]:
                if (folder / "nab_realKnownCause" / f"{name}.csv").exists():
                    jobs.append(("nab", name))
                else:
                    skipped.append(f"NAB {name} skipped: not in {folder / 'nab_realKnownCause'}")
    if "demo" in only:
        jobs.append(("demo", "demo"))
    leak_folder, leak_notes = folder, []
    if "leaks" in only:
        try:
            leak_folder, leak_notes = (
                (args.leak_folder, [])
                if args.leak_folder
                else leak_bench_folder(args.leak_seed, folder, args.leak_solver)
            )
            jobs += [("leaks", mode) for mode in LEAK_MODES]
        except FileNotFoundError as exc:
            skipped.append(f"leaks skipped: {exc}")
    order = {j: i for i, j in enumerate(jobs)}

    started = time.perf_counter()
    outcomes: dict[tuple[str, str], Outcome] = {}
    leak_runs: dict[str, LeakRun] = {}
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(
                job,
                k,
                n,
                leak_folder if k == "leaks" else folder,
                args.batch_span,
                args.max_batches,
                args.demo_duration,
            ): (k, n)
            for k, n in jobs
        }
        for future in as_completed(futures):
            key = futures[future]
            try:
                result = future.result()
                if isinstance(result, LeakRun):
                    leak_runs[result.mode] = result
                else:
                    outcomes[key] = result
            except Exception as exc:  # a case that cannot run is reported, the others go on
                first = (str(exc).strip().splitlines() or [""])[0]
                failed.append(key[1])
                outcomes[key] = Outcome(
                    key[1], [f"== {key[1]} ==", f"  FAILED: {type(exc).__name__}: {first}"], [], 0
                )
            print(f"[{time.perf_counter() - started:5.0f} s] done: {key[1]}", file=sys.stderr)

    if leak_runs and len(leak_runs) == len(LEAK_MODES):
        outcomes[("leaks", LEAK_MODES[0])] = leak_outcome(leak_runs, leak_folder, leak_notes)
    ordered = [outcomes[k] for k in sorted(outcomes, key=order.__getitem__)]
    for line in skipped:
        print(line)
    for outcome in ordered:
        print("\n".join(outcome.lines))
        print(f"  ({outcome.seconds:.0f} s)")
        print()
    print("\n".join(summary(ordered)))
    if any(o.name == "leaks" for o in ordered):
        print()
        print("\n".join(leak_summary([o for o in ordered if o.name == "leaks"])))
    print(f"total {time.perf_counter() - started:.0f} s with {args.jobs} parallel job(s)")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
