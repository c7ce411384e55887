"""Replay: realistic readings for the sensors in the database, with scripted incidents.

``cityrisk replay SCENARIO`` reads the active sensors (id, external id, indicator, interval,
binding, position) and publishes one reading per sensor per interval, either as NDJSON to
``POST {url}/readings`` or as NDJSON messages with QoS 1 on MQTT topic
``cityrisk/readings/<indicator>``. Scenarios: ``gas-leak``, ``water-burst``, ``bridge-strain``,
``flood-rain`` and ``demo`` (all four, staggered); the ground truth (what happens, where, when,
to which sensors, and the values to expect) can be written as JSON.

Time
----
Simulated time starts at ``start`` and runs ``speed`` times as fast as the wall clock
(``speed = 0``: as fast as possible). The readings of a batch of ``batch_s`` simulated seconds are
sent once simulated time has passed the batch's end, as a gateway would. The ingest refuses
readings stamped more than 5 min after its own clock (``ingest.MAX_FUTURE``), so a replay faster
than real time must run in the past: the default ``start`` is *now* at ``speed = 1`` (live), and
*now − duration* at any other speed, so that simulated time reaches *now* when the replay ends
(at ``speed > 1`` it ends after ``duration / speed`` of wall time, ahead of nothing). Whatever
the options, a batch is never sent while its end is more than 4 min ahead of the wall clock (one
minute of margin for clock skew): a replay that would get further ahead waits, i.e. it is slowed
to the wall clock from there on, and ``speed = 0`` with an explicit ``start`` whose end is
in the future is refused. ``start`` must also be within the 400 days the ingest accepts.

Values
------
Each indicator has a baseline with a daily cycle in *local solar time* (UTC + longitude / 15 h,
within about an hour of civil time, and needing no time zone setting): gas pressure dips at meal
times, water pressure is lowest in the morning peak and flow follows demand (night minimum),
people counts follow the rush hours, bridge strain and deflection follow the daily temperature
sine, ambient pipe noise is higher by day. Methane is 0–2 %LEL background. Noise is Gaussian.

Determinism: every random number is a pure function of (seed, sensor external id, timestamp),
from a counter-based hash (SplitMix64), not of a generator's state. The same seed gives the same
value for a sensor at an instant whatever the batch size, speed, target or start, and replaying
the same span twice sends identical readings (the ingest stores them once). A sensor's reporting
phase within its interval comes from its external id alone. Incident choices (which main, which
bridge…) come from ``numpy.random.default_rng(seed)`` over candidates sorted by id.

Generation is vectorised per batch: one numpy pass computes every reading of every sensor due in
the batch (indices, timestamps, baselines, incident effects, noise) and builds the NDJSON lines
with numpy string operations; nothing loops per reading in Python.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from numpy.dtypes import StringDType
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import CityriskError, InvalidInput
from app.sensors.ingest import MAX_AGE, MAX_FUTURE
from app.taxonomy.indicators import INDICATORS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Obj = npt.NDArray[np.object_]

SCENARIOS = ("gas-leak", "water-burst", "bridge-strain", "flood-rain", "demo")
TARGETS = ("http", "mqtt")
TOPIC_PREFIX = "cityrisk/readings"
NDJSON = "application/x-ndjson"
# A batch is never sent while its end is further ahead of the wall clock than this: the ingest
# refuses > now + 5 min, and one minute is left for clock skew between us and the server.
MAX_AHEAD_S = (MAX_FUTURE - timedelta(minutes=1)).total_seconds()
# Oldest start accepted: the ingest refuses readings older than 400 days; keep a day of margin.
MAX_START_AGE_S = (MAX_AGE - timedelta(days=1)).total_seconds()
HTTP_LINES = 20_000  # readings per POST (~1.5 MB): well under the route's 64 MiB limit
MQTT_LINES = 5_000  # readings per MQTT message (~400 kB)
DEFAULT_INTERVAL_S = 60  # a sensor registered without interval_s
DAY_S = 86_400

# Incident windows as fractions of the replay's duration: (begins, ends).
SINGLE_WINDOW = (0.25, 0.75)
DEMO_WINDOWS = {
    "gas-leak": (0.05, 0.35),
    "water-burst": (0.25, 0.5),
    "bridge-strain": (0.45, 0.6),
    "flood-rain": (0.55, 0.95),
}
GAS_RADIUS_M = 50.0  # manholes this close to the leaking main fill with gas
NOISE_RADIUS_M = 200.0  # acoustic loggers on nearby mains hear a burst
WATER_PRESSURE_RADIUS_M = 300.0  # neighbouring mains lose some pressure
FLOOD_RADIUS_M = 300.0  # drains and ponding gauges around the flooding zone
RAIN_FALLOFF_M = 5_000.0  # the storm cell is centred on the flooding zone


class ReplayError(CityriskError):
    """The replay cannot go on (target unreachable, payload refused as a whole)."""


# -- time -------------------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": DAY_S, "w": 7 * DAY_S}


def parse_duration(raw: str) -> int:
    """``2h`` / ``30m`` / ``1h30m`` / ``90s`` / ``1d`` → whole seconds (> 0).

    >>> parse_duration("1h30m")
    5400
    """
    spec = raw.strip().lower().replace(" ", "")
    parts = _DURATION.findall(spec)
    if not parts or "".join(n + u for n, u in parts) != spec:
        raise InvalidInput(f"duration {raw!r} is not like 2h, 30m, 1h30m, 90s or 1d")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds < 1:
        raise InvalidInput(f"duration {raw!r} is shorter than a second")
    return int(seconds)


def resolve_window(
    start: str | None, duration_s: int, speed: float, now: datetime
) -> tuple[int, int, list[str]]:
    """The simulated span ``[start, end)`` in epoch seconds, and notes for the user.

    Parameters
    ----------
    start : str or None
        ``None`` (default: now at speed 1, else now − duration), ``"now"``, or RFC 3339 with an
        offset.
    duration_s : int
        Simulated seconds to replay.
    speed : float
        Simulated seconds per wall-clock second; 0 = as fast as possible.
    now : datetime
        The wall clock (UTC).

    Raises
    ------
    InvalidInput
        When readings of the span would be refused by the ingest (too old, too far ahead).
    """
    if speed < 0 or not math.isfinite(speed):
        raise InvalidInput(f"speed {speed} must be >= 0 (0 = as fast as possible)")
    now_s = int(now.timestamp())
    if start is None:
        begin = now_s if 0 < speed <= 1 else now_s - duration_s
    elif start.strip().lower() == "now":
        begin = now_s
    else:
        try:
            parsed = datetime.fromisoformat(start.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"start {start!r} is not 'now' or an RFC 3339 time") from None
        if parsed.tzinfo is None:
            raise InvalidInput(f"start {start!r} needs a UTC offset, e.g. 2026-11-28T08:00:00Z")
        begin = int(parsed.timestamp())
    end = begin + duration_s
    notes: list[str] = []
    if begin < now_s - MAX_START_AGE_S:
        raise InvalidInput("start is more than 399 days ago: the ingest refuses such readings")
    if begin > now_s + MAX_AHEAD_S:
        raise InvalidInput("start is more than 4 min ahead of now: the ingest would refuse it")
    if speed == 0 and end > now_s + MAX_AHEAD_S:
        raise InvalidInput(
            "with --speed 0 the replay must end by now + 4 min (the ingest refuses readings "
            "further ahead); leave --start out (it then defaults to now - duration)"
        )
    if speed > 0:
        lead = end - (now_s + duration_s / speed)  # how far ahead the last batch would be
        if lead > MAX_AHEAD_S:
            notes.append(
                f"simulated time would run up to {lead / 60:.0f} min ahead of the clock; the "
                "replay waits whenever it is 4 min ahead (it is then slowed to real time)"
            )
    return begin, end, notes


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- counter-based random numbers --------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(x: U64) -> U64:
    """SplitMix64's finaliser: a bijective scramble of 64-bit integers (wraps, no warnings)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _uniform(key: U64, ts: I64 | int, stream: int) -> F64:
    """Uniform in (0, 1), a pure function of (sensor key, timestamp, stream)."""
    # Broadcast to arrays first: numpy warns on (intended) wrap-around of 0-d scalars only.
    stamps = np.broadcast_to(np.asarray(ts, dtype=np.int64), key.shape).astype(np.uint64)
    counter = stamps * _GOLDEN + np.uint64(stream)
    bits = _mix(key ^ _mix(counter))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _normal(key: U64, ts: I64, stream: int) -> F64:
    """Standard normal by Box–Muller over two independent uniform streams."""
    u1, u2 = _uniform(key, ts, stream), _uniform(key, ts, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _key(text_value: str) -> int:
    return int.from_bytes(hashlib.blake2b(text_value.encode(), digest_size=8).digest(), "little")


# -- the fleet --------------------------------------------------------------------------------
FLEET_SQL = text(
    """
    SELECT s.id, s.external_id, s.kind, s.interval_s, s.asset_id, a.kind AS asset_kind,
           a.external_id AS asset_external_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
           CASE WHEN jsonb_typeof(a.attributes->'pressure_mpa') = 'number'
                THEN (a.attributes->>'pressure_mpa')::float8 END AS pressure_mpa,
           CASE WHEN jsonb_typeof(a.attributes->'diameter_mm') = 'number'
                THEN (a.attributes->>'diameter_mm')::float8 END AS diameter_mm
    FROM sensor s LEFT JOIN asset a ON a.id = s.asset_id
    WHERE s.status = 'active'
    ORDER BY s.id
    """
)


@dataclass(frozen=True)
class Fleet:
    """The active sensors, one array per column (positions are the replay's sensor index)."""

    id: I64
    external_id: Obj
    kind: Obj
    interval_s: I64
    asset_id: I64  # 0 when unbound
    asset_kind: Obj
    asset_external_id: Obj
    lon: F64
    lat: F64
    profile: Obj  # the baseline model: the indicator, or pressure_gas / pressure_water
    nominal: F64  # level without daily cycle or noise (truth's baseline)
    key: U64  # hash of (seed, external id): the noise stream of the sensor
    phase: I64  # second of its interval at which the sensor reports
    low: F64  # clip bounds: physical range (and model floor, e.g. CH4 >= 0)
    high: F64
    scale: F64  # 10 ** decimals to round to
    json_prefix: npt.NDArray[Any]  # '{"sensor":"<external id>","ts":"' as StringDType

    def __len__(self) -> int:
        return len(self.id)

    def positions(self, ids: list[int] | I64) -> I64:
        """Fleet positions of sensor ids (ids not in the fleet are dropped)."""
        where = {int(s): n for n, s in enumerate(self.id)}
        return np.array([where[int(i)] for i in ids if int(i) in where], dtype=np.int64)


def load_fleet(session: Session, seed: int) -> Fleet:
    """Read the active sensors and derive each one's model, nominal level and noise key."""
    rows = session.execute(FLEET_SQL).all()
    n = len(rows)
    col = list(zip(*rows, strict=True)) if rows else [()] * 11
    kind = np.array(col[2], dtype=object)
    asset_kind = np.array(col[5], dtype=object)
    lon = np.array([np.nan if v is None else v for v in col[7]], dtype=np.float64)
    lat = np.array([np.nan if v is None else v for v in col[8]], dtype=np.float64)
    if n and np.isnan(lon).any():  # no position: take the fleet's mean for the solar clock
        lon[np.isnan(lon)] = np.nanmean(lon) if np.isfinite(lon).any() else 0.0
    external_id = np.array(col[1], dtype=object)
    interval = np.array([v or DEFAULT_INTERVAL_S for v in col[3]], dtype=np.int64)
    key = np.array([_key(f"{seed}|{e}") for e in external_id], dtype=np.uint64)
    device = np.array([_key(str(e)) for e in external_id], dtype=np.uint64)
    phase = (device % interval.astype(np.uint64)).astype(np.int64)
    profile = np.array(
        [
            _profile(str(k), None if a is None else str(a))
            for k, a in zip(kind, asset_kind, strict=True)
        ],
        dtype=object,
    )
    pressure = np.array([np.nan if v is None else v for v in col[9]], dtype=np.float64)
    diameter = np.array([np.nan if v is None else v for v in col[10]], dtype=np.float64)
    u = _uniform(key, 0, stream=1)
    nominal = np.zeros(n)
    low, high, scale = np.zeros(n), np.zeros(n), np.ones(n)
    for name in np.unique(profile) if n else []:
        m = profile == name
        model = _model(str(name))
        nominal[m] = model.nominal(u[m], pressure[m], diameter[m])
        indicator = INDICATORS[str(kind[m][0])]
        low[m] = max(indicator.minimum, model.floor)
        high[m] = min(indicator.maximum, model.ceiling)
        scale[m] = 10.0**model.decimals
    prefix = np.array(
        ['{"sensor":' + json.dumps(str(e)) + ',"ts":"' for e in external_id], dtype=StringDType()
    )
    return Fleet(
        id=np.array(col[0], dtype=np.int64),
        external_id=external_id,
        kind=kind,
        interval_s=interval,
        asset_id=np.array([v or 0 for v in col[4]], dtype=np.int64),
        asset_kind=asset_kind,
        asset_external_id=np.array(col[6], dtype=object),
        lon=lon,
        lat=lat,
        profile=profile,
        nominal=nominal,
        key=key,
        phase=phase,
        low=low,
        high=high,
        scale=scale,
        json_prefix=prefix,
    )


# -- baselines --------------------------------------------------------------------------------
def _profile(kind: str, asset_kind: str | None) -> str:
    if kind == "pressure_mpa":
        if asset_kind in ("water_pipe", "pump_station", "hydrant"):
            return "pressure_water"
        if asset_kind == "heating_pipe":
            return "pressure_heating"
        return "pressure_gas"  # gas mains, stations, valves, and unbound sensors
    return kind if kind in MODELS else "generic:" + kind


def _bump(hours: F64, centre: float, width: float) -> F64:
    """A Gaussian bump around ``centre`` o'clock (circular: 23:30 is near 00:30)."""
    d = (hours - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _sine(hours: F64, peak: float) -> F64:
    """A daily cosine, +1 at ``peak`` o'clock and -1 twelve hours later."""
    return np.cos(2.0 * np.pi * (hours - peak) / 24.0)


def _meals(hours: F64) -> F64:
    """Gas demand peaks: breakfast, lunch, dinner (cooking), 0..~1."""
    return _bump(hours, 7.0, 0.7) + 0.8 * _bump(hours, 12.0, 0.7) + _bump(hours, 18.5, 0.9)


def _water_demand(hours: F64) -> F64:
    """Diurnal water demand factor: ~0.45 at the 3 am minimum, ~1.4 in the morning peak."""
    return (
        0.45
        + 0.95 * _bump(hours, 7.5, 1.2)
        + 0.45 * _bump(hours, 12.5, 1.5)
        + 0.7 * _bump(hours, 19.0, 1.6)
    )


def _rush(hours: F64) -> F64:
    """People and traffic: morning and evening rush hours over a daytime plateau."""
    day = np.clip(_sine(hours, 14.0) * 1.5 + 0.3, 0.0, 1.0)
    return 0.25 * day + _bump(hours, 8.25, 0.9) + 0.85 * _bump(hours, 17.5, 1.0)


@dataclass(frozen=True)
class Model:
    """A baseline: per-sensor nominal level, a daily shape, noise, bounds and rounding."""

    nominal: Callable[[F64, F64, F64], F64]  # (uniform per sensor, asset MPa, asset mm) → level
    level: Callable[[F64, F64], F64]  # (nominal, local hours) → value without noise
    noise: float = 0.0  # absolute standard deviation
    rel_noise: float = 0.0  # relative to the value (rain, ponding: zero when dry)
    decimals: int = 2
    floor: float = -math.inf
    ceiling: float = math.inf


def _or(values: F64, default: float) -> F64:
    return np.where(np.isfinite(values), values, default)


def _pipe_flow(diameter_mm: F64) -> F64:
    """Design flow at 0.5 m/s through the bore, m³/h (300 mm when the main has no size)."""
    d = _or(diameter_mm, 300.0) / 1000.0
    return np.pi * d * d / 4.0 * 0.5 * 3600.0


MODELS: dict[str, Model] = {
    # Background methane in a manhole: 0–2 %LEL (sensor zero drift, a little sewer gas).
    "ch4_pct_lel": Model(
        lambda u, p, d: 0.2 + 1.0 * u, lambda n, h: n, noise=0.25, rel_noise=0.03, floor=0
    ),
    "ch4_pct_vol": Model(
        lambda u, p, d: 0.01 + 0.05 * u, lambda n, h: n, noise=0.012, decimals=3, floor=0
    ),
    # Operating pressure 85–95 % of the main's MAOP, dipping ~4 % when everyone cooks.
    "pressure_gas": Model(
        lambda u, p, d: _or(p, 0.4) * (0.85 + 0.1 * u),
        lambda n, h: n * (1.0 - 0.04 * _meals(h)),
        rel_noise=0.004,
        decimals=4,
        floor=0,
    ),
    # Network pressure lowest in the morning demand peak, highest at night.
    "pressure_water": Model(
        lambda u, p, d: _or(p, 0.5) * (0.95 + 0.05 * u),
        lambda n, h: (
            n * (1.0 + 0.04 * _bump(h, 3.0, 2.0) - 0.1 * _bump(h, 7.75, 1.1))
            - n * 0.06 * _bump(h, 19.0, 1.3)
        ),
        rel_noise=0.005,
        decimals=4,
        floor=0,
    ),
    "pressure_heating": Model(
        lambda u, p, d: _or(p, 1.0) * (0.8 + 0.1 * u),
        lambda n, h: n * (1.0 + 0.03 * _sine(h, 6.0)),
        rel_noise=0.004,
        decimals=4,
        floor=0,
    ),
    "flow_m3h": Model(
        lambda u, p, d: _pipe_flow(d) * (0.8 + 0.4 * u),
        lambda n, h: n * _water_demand(h),
        rel_noise=0.02,
        decimals=1,
        floor=0,
    ),
    # Ambient noise on a main: quiet at night (when leak surveys listen), traffic by day.
    "leak_noise_db": Model(
        lambda u, p, d: 25.0 + 7.0 * u, lambda n, h: n + 8.0 * _rush(h), noise=1.5, decimals=1
    ),
    # Water depth in a drain: dry-weather flow follows water use with a lag.
    "level_m": Model(
        lambda u, p, d: 0.15 + 0.35 * u,
        lambda n, h: n * (0.8 + 0.2 * _water_demand(h - 1.5)),
        noise=0.008,
        decimals=3,
        floor=0,
    ),
    "ponding_cm": Model(lambda u, p, d: 0.0 * u, lambda n, h: n, rel_noise=0.05, decimals=1),
    "rain_mm_h": Model(lambda u, p, d: 0.0 * u, lambda n, h: n, rel_noise=0.1, decimals=1),
    # Bridges: dead-load strain plus daily thermal strain (+ warm afternoon) and traffic.
    "strain_ue": Model(
        lambda u, p, d: 60.0 + 190.0 * u,
        lambda n, h: n + 25.0 * _sine(h, 15.0) + 12.0 * _rush(h),
        noise=2.0,
        decimals=1,
    ),
    "deflection_mm": Model(
        lambda u, p, d: 3.0 + 9.0 * u,
        lambda n, h: n + 2.0 * _sine(h, 15.0) + 1.2 * _rush(h),
        noise=0.15,
        decimals=2,
    ),
    "tilt_deg": Model(
        lambda u, p, d: -0.05 + 0.1 * u,
        lambda n, h: n + 0.01 * _sine(h, 15.0),
        noise=0.002,
        decimals=4,
    ),
    "acceleration_g": Model(lambda u, p, d: 0.0 * u, lambda n, h: n, noise=0.004, decimals=4),
    "cable_force_kn": Model(
        lambda u, p, d: 800.0 + 1200.0 * u,
        lambda n, h: n * (1.0 - 0.01 * _sine(h, 15.0) + 0.01 * _rush(h)),
        rel_noise=0.003,
        decimals=1,
    ),
    "temperature_c": Model(
        lambda u, p, d: 10.0 + 6.0 * u, lambda n, h: n + 5.0 * _sine(h, 15.0), noise=0.2, decimals=1
    ),
    "humidity_pct": Model(
        lambda u, p, d: 55.0 + 20.0 * u,
        lambda n, h: n - 12.0 * _sine(h, 15.0),
        noise=1.0,
        decimals=1,
        floor=0,
        ceiling=100,
    ),
    "people_count": Model(
        lambda u, p, d: 200.0 + 1300.0 * u,
        lambda n, h: n * (0.02 + 0.9 * _rush(h)),
        rel_noise=0.05,
        decimals=0,
        floor=0,
    ),
    "o2_pct": Model(lambda u, p, d: 20.8 + 0.1 * u, lambda n, h: n, noise=0.03, decimals=2),
    "h2s_ppm": Model(lambda u, p, d: 0.5 * u, lambda n, h: n, noise=0.1, floor=0),
    "co_ppm": Model(lambda u, p, d: 0.5 + 1.5 * u, lambda n, h: n, noise=0.3, floor=0),
}
# Indicators without a model above (alarm states, wind, tank levels, displacement): a flat 0,
# inside each of their physical ranges and "normal" for the alarm states.
GENERIC = Model(lambda u, p, d: 0.0 * u, lambda n, h: n, noise=0.0, decimals=3)


def _model(profile: str) -> Model:
    return MODELS.get(profile, GENERIC)


def _solar_hours(ts: I64, lon: F64) -> F64:
    return ((ts % DAY_S) / 3600.0 + lon / 15.0) % 24.0


# -- incidents --------------------------------------------------------------------------------
@dataclass
class Effect:
    """An excursion added to some sensors: ``delta`` reached between rise and fall."""

    sensors: I64  # fleet positions
    delta: F64
    start: F64  # epoch s per sensor: the excursion begins
    rise_s: F64  # ... and reaches its full delta after this long
    fall_s: F64  # ... starts falling this long before ``end``
    end: F64  # ... and is gone at ``end``

    def envelope(self, at: I64, ts: I64) -> F64:
        """0..1 at ``ts`` for effect rows ``at``: smoothstep up, hold, smoothstep down."""
        up = np.clip((ts - self.start[at]) / self.rise_s[at], 0.0, 1.0)
        down = np.clip((self.end[at] - ts) / self.fall_s[at], 0.0, 1.0)
        return up * up * (3 - 2 * up) * down * down * (3 - 2 * down)


@dataclass
class Incident:
    type: str
    description: str
    assets: list[dict[str, Any]]
    effects: list[Effect] = field(default_factory=list)

    @property
    def start(self) -> float:
        return float(min(e.start.min() for e in self.effects))

    @property
    def end(self) -> float:
        return float(max(e.end.max() for e in self.effects))

    def truth(self, fleet: Fleet) -> dict[str, Any]:
        """The incident as JSON: window, assets, affected sensors and their expected extremes."""
        sensors: list[dict[str, Any]] = []
        for e in self.effects:
            extreme = np.clip(
                fleet.nominal[e.sensors] + e.delta, fleet.low[e.sensors], fleet.high[e.sensors]
            )
            for j, pos in enumerate(e.sensors):
                scale = fleet.scale[pos]
                sensors.append(
                    {
                        "external_id": str(fleet.external_id[pos]),
                        "kind": str(fleet.kind[pos]),
                        "baseline": round(float(fleet.nominal[pos]) * scale) / scale,
                        "expected_peak": round(float(extreme[j]) * scale) / scale,
                        "direction": "up" if e.delta[j] >= 0 else "down",
                        "rise_from": iso(e.start[j]),
                        "peak_from": iso(e.start[j] + e.rise_s[j]),
                        "peak_until": iso(e.end[j] - e.fall_s[j]),
                        "back_by": iso(e.end[j]),
                    }
                )
        sensors.sort(key=lambda s: s["external_id"])
        return {
            "type": self.type,
            "description": self.description,
            "start": iso(self.start),
            "end": iso(self.end),
            "assets": self.assets,
            "affected_sensors": [s["external_id"] for s in sensors],
            "expected_peak": {s["external_id"]: s["expected_peak"] for s in sensors},
            "sensors": sensors,
        }


@dataclass
class Plan:
    scenario: str
    seed: int
    start: int
    end: int
    incidents: list[Incident]
    notes: list[str] = field(default_factory=list)

    def truth(self, fleet: Fleet, **extra: Any) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "start": iso(self.start),
            "end": iso(self.end),
            "sensors": len(fleet),
            **extra,
            "notes": self.notes,
            "incidents": [i.truth(fleet) for i in self.incidents],
        }


Builder = Callable[[Session, Fleet, np.random.Generator, float, float], Incident | str]


def plan_scenario(
    session: Session, fleet: Fleet, scenario: str, start: int, end: int, seed: int
) -> Plan:
    """Choose where and when each incident of ``scenario`` happens (seeded).

    A single scenario happens in the middle half of the span; ``demo`` staggers all four. A
    single scenario that finds nothing to happen to (no gas main with a methane sensor near
    it…) is an error; ``demo`` leaves that incident out and says so in ``notes``.
    """
    if scenario not in SCENARIOS:
        raise InvalidInput(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    span = end - start
    windows = DEMO_WINDOWS if scenario == "demo" else {scenario: SINGLE_WINDOW}
    plan = Plan(scenario, seed, start, end, [])
    for name, (f0, f1) in windows.items():
        made = BUILDERS[name](session, fleet, rng, start + f0 * span, start + f1 * span)
        if isinstance(made, str):
            if scenario != "demo":
                raise InvalidInput(f"scenario {name}: {made}")
            plan.notes.append(f"{name} left out: {made}")
        else:
            plan.incidents.append(made)
    return plan


def _effect(
    fleet: Fleet,
    ids: list[int] | I64,
    delta: float | F64 | Callable[[I64], F64],
    start: float | F64,
    rise_s: float | F64,
    fall_s: float,
    end: float,
) -> Effect | None:
    """An :class:`Effect` on the sensors ``ids``; per-sensor arrays are aligned with ``ids``.

    ``delta`` may be a callable of the fleet positions (for deltas relative to the nominal).
    Ids not in the fleet (a sensor retired since it was read) are dropped with their values.
    """
    ids = np.asarray(ids, dtype=np.int64)
    keep = np.isin(ids, fleet.id)
    pos = fleet.positions(ids[keep])
    if not len(pos):
        return None
    n = len(ids)

    def per_sensor(value: float | F64) -> F64:
        return np.broadcast_to(np.asarray(value, dtype=float), n)[keep].copy()

    return Effect(
        sensors=pos,
        delta=delta(pos) if callable(delta) else per_sensor(delta),
        start=per_sensor(start),
        rise_s=per_sensor(rise_s),
        fall_s=np.full(len(pos), float(fall_s)),
        end=np.full(len(pos), float(end)),
    )


def _asset(session: Session, asset_id: int, role: str) -> dict[str, Any]:
    row = session.execute(
        text("SELECT id, external_id, source, kind, name FROM asset WHERE id = :id"),
        {"id": asset_id},
    ).one()
    return {
        "id": row.id,
        "external_id": row.external_id,
        "source": row.source,
        "kind": row.kind,
        "name": row.name,
        "role": role,
    }


def _pick(rng: np.random.Generator, rows: Sequence[Any]) -> Any:
    return rows[int(rng.integers(len(rows)))]


def _near(session: Session, asset_id: int, kinds: tuple[str, ...], radius_m: float) -> list[Any]:
    """Active sensors of ``kinds`` within ``radius_m`` of an asset, with their distance."""
    return list(
        session.execute(
            text(
                "SELECT s.id, s.kind, s.asset_id, "
                "ST_Distance(a.geom::geography, s.geom::geography) AS d "
                "FROM sensor s JOIN asset a ON a.id = :asset "
                "WHERE s.status = 'active' AND s.kind = ANY(:kinds) "
                "AND ST_DWithin(a.geom::geography, s.geom::geography, :r) ORDER BY s.id"
            ),
            {"asset": asset_id, "kinds": list(kinds), "r": radius_m},
        ).all()
    )


def _bound(fleet: Fleet, asset_id: int, kind: str) -> I64:
    """Ids of the fleet's sensors of ``kind`` bound to the asset."""
    ids: I64 = fleet.id[(fleet.asset_id == asset_id) & (fleet.kind == kind)]
    return ids


def gas_leak(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A gas main leaks: CH₄ rises in the manholes within 50 m, the main's pressure drops.

    The main is drawn among gas mains with a methane sensor within 50 m, preferring those with a
    pressure sensor of their own, with odds proportional to the number of methane sensors
    near them. Gas reaches nearer manholes first; the peak
    falls from 40–60 %LEL next to the main to 20 %LEL at 50 m (20 %LEL = 1 %vol is Hefei's alert
    level). The leak is found and the main isolated and repaired before ``t1``.
    """
    rows = session.execute(
        text(
            "SELECT g.id, count(s.id) AS n, (SELECT count(*) FROM sensor p WHERE p.asset_id = g.id "
            "  AND p.kind = 'pressure_mpa' AND p.status = 'active') AS np "
            "FROM sensor s JOIN asset g ON g.kind = 'gas_pipe' "
            "  AND ST_DWithin(g.geom::geography, s.geom::geography, :r) "
            "WHERE s.kind = 'ch4_pct_lel' AND s.status = 'active' "
            "GROUP BY g.id ORDER BY g.id"
        ),
        {"r": GAS_RADIUS_M},
    ).all()
    if not rows:
        return f"no gas_pipe has an active ch4_pct_lel sensor within {GAS_RADIUS_M:g} m"
    # Prefer mains whose own pressure is watched, and weight by the number of methane
    # sensors near them, so that the leak shows in several manholes.
    best = [r for r in rows if r.np > 0] or rows
    weight = np.array([r.n for r in best], dtype=float)
    main = int(best[int(rng.choice(len(best), p=weight / weight.sum()))].id)
    width = t1 - t0
    near = _near(session, main, ("ch4_pct_lel",), GAS_RADIUS_M)
    ids = [int(r.id) for r in near]
    dist = np.array([r.d for r in near], dtype=float)
    top = rng.uniform(40.0, 60.0)
    peak = 20.0 + (top - 20.0) * (1.0 - dist / GAS_RADIUS_M)
    incident = Incident(
        "gas-leak",
        f"gas main leak: CH₄ up to {top:.0f} %LEL in manholes within {GAS_RADIUS_M:g} m, "
        "main pressure drops; isolated and repaired at the end",
        [_asset(session, main, "leaking main")],
    )
    # Gas migrates through the soil: the farthest manhole starts up to 0.1 × window later.
    ch4 = _effect(
        fleet,
        ids,
        lambda p: peak[np.isin(ids, fleet.id)] - fleet.nominal[p],
        t0 + dist / GAS_RADIUS_M * min(180.0, 0.1 * width),
        min(600.0, 0.3 * width) * (0.6 + 0.4 * rng.random(len(ids))),
        min(600.0, 0.2 * width),
        t1,
    )
    drop = rng.uniform(0.12, 0.3)
    pressure = _effect(
        fleet,
        _bound(fleet, main, "pressure_mpa"),
        lambda p: -drop * fleet.nominal[p],
        t0,
        min(300.0, 0.2 * width),
        min(600.0, 0.2 * width),
        t1,
    )
    incident.effects = [e for e in (ch4, pressure) if e is not None]
    return incident


def water_burst(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A water main bursts: its pressure falls 45–70 % within two minutes, flow and leak noise
    rise; loggers on mains within 200 m hear it, mains within 300 m lose a little pressure.

    The main is drawn among water mains with a pressure sensor of their own, preferring those
    that also have flow and noise sensors.
    """
    rows = session.execute(
        text(
            "SELECT a.id, count(DISTINCT s.kind) AS kinds FROM asset a "
            "JOIN sensor s ON s.asset_id = a.id AND s.status = 'active' "
            "  AND s.kind IN ('pressure_mpa', 'flow_m3h', 'leak_noise_db') "
            "WHERE a.kind = 'water_pipe' GROUP BY a.id "
            "HAVING bool_or(s.kind = 'pressure_mpa') ORDER BY a.id"
        )
    ).all()
    if not rows:
        return "no water_pipe has an active pressure_mpa sensor bound to it"
    most = max(r.kinds for r in rows)
    main = int(_pick(rng, [r for r in rows if r.kinds == most]).id)
    width = t1 - t0
    sharp = min(120.0, 0.1 * width)
    fall = min(900.0, 0.25 * width)
    drop, surge, loud = rng.uniform(0.45, 0.7), rng.uniform(0.8, 2.0), rng.uniform(25.0, 40.0)
    effects = [
        _effect(
            fleet,
            _bound(fleet, main, "pressure_mpa"),
            lambda p: -drop * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        ),
        _effect(
            fleet,
            _bound(fleet, main, "flow_m3h"),
            lambda p: surge * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        ),
        _effect(fleet, _bound(fleet, main, "leak_noise_db"), loud, t0, sharp / 2, fall, t1),
    ]
    around = [
        r
        for r in _near(session, main, ("leak_noise_db", "pressure_mpa"), WATER_PRESSURE_RADIUS_M)
        if r.asset_id != main
    ]
    noise = [r for r in around if r.kind == "leak_noise_db" and r.d <= NOISE_RADIUS_M]
    effects.append(
        _effect(
            fleet,
            [r.id for r in noise],
            np.array([loud * (1 - r.d / NOISE_RADIUS_M) for r in noise]),
            t0,
            sharp / 2,
            fall,
            t1,
        )
    )
    water_pressure = set(fleet.id[fleet.profile == "pressure_water"].tolist())
    neighbours = [r for r in around if r.kind == "pressure_mpa" and r.id in water_pressure]
    share = {int(r.id): 0.1 * (1 - r.d / WATER_PRESSURE_RADIUS_M) for r in neighbours}
    effects.append(
        _effect(
            fleet,
            list(share),
            lambda p: -np.array([share[int(i)] for i in fleet.id[p]]) * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        )
    )
    incident = Incident(
        "water-burst",
        f"water main burst: pressure −{drop:.0%}, flow +{surge:.0%}, leak noise +{loud:.0f} dB; "
        "isolated and repaired at the end",
        [_asset(session, main, "burst main")],
    )
    incident.effects = [e for e in effects if e is not None]
    return incident


def bridge_strain(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """One bridge's strain, deflection and tilt leave their range (overload, scour) and recover.

    The bridge is drawn among those with the most kinds of structural sensor bound to them.
    """
    kinds = ("strain_ue", "deflection_mm", "tilt_deg", "displacement_mm", "acceleration_g")
    rows = session.execute(
        text(
            "SELECT a.id, count(DISTINCT s.kind) AS kinds FROM asset a "
            "JOIN sensor s ON s.asset_id = a.id AND s.status = 'active' AND s.kind = ANY(:k) "
            "WHERE a.kind = 'bridge' GROUP BY a.id ORDER BY a.id"
        ),
        {"k": list(kinds)},
    ).all()
    if not rows:
        return "no bridge has an active strain, deflection or tilt sensor bound to it"
    most = max(r.kinds for r in rows)
    bridge = int(_pick(rng, [r for r in rows if r.kinds == most]).id)
    width = t1 - t0
    rise, fall = min(180.0, 0.15 * width), min(300.0, 0.2 * width)
    size = {
        "strain_ue": rng.uniform(250.0, 600.0),
        "deflection_mm": rng.uniform(15.0, 60.0),
        "tilt_deg": rng.uniform(0.2, 1.0),
        "displacement_mm": rng.uniform(5.0, 20.0),
        "acceleration_g": rng.uniform(0.05, 0.2),
    }
    incident = Incident(
        "bridge-strain",
        f"bridge excursion: strain +{size['strain_ue']:.0f} µε, deflection "
        f"+{size['deflection_mm']:.0f} mm, tilt +{size['tilt_deg']:.2f}°; recovers at the end",
        [_asset(session, bridge, "bridge")],
    )
    effects = [_effect(fleet, _bound(fleet, bridge, k), size[k], t0, rise, fall, t1) for k in kinds]
    incident.effects = [e for e in effects if e is not None]
    return incident


def flood_rain(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A storm: rain rises city-wide (heaviest over one flood zone), then drains fill and water
    ponds around that zone.

    The zone is drawn among flood zones with level and ponding sensors within 300 m (100-year
    zones first). Rain peaks at 40–90 mm/h at the zone and half that 5 km away, and stops at 70 %
    of the window; level (+0.6–1.5 m) and ponding (+12–40 cm, moderate to severe) follow with a
    lag and recede by the end.
    """
    rows = session.execute(
        text(
            "SELECT z.id, (z.attributes->>'return_period_yr') = '100' AS frequent, "
            "count(*) FILTER (WHERE s.kind = 'ponding_cm') AS np, "
            "count(*) FILTER (WHERE s.kind = 'level_m') AS nl "
            "FROM sensor s JOIN asset z ON z.kind = 'flood_zone' "
            "  AND ST_DWithin(z.geom::geography, s.geom::geography, :r) "
            "WHERE s.status = 'active' AND s.kind IN ('ponding_cm', 'level_m') "
            "GROUP BY z.id ORDER BY z.id"
        ),
        {"r": FLOOD_RADIUS_M},
    ).all()
    if not rows:
        return (
            f"no flood_zone has an active level_m or ponding_cm sensor within {FLOOD_RADIUS_M:g} m"
        )
    both = [r for r in rows if r.np and r.nl]
    zone = int(_pick(rng, [r for r in both if r.frequent] or both or rows).id)
    w = t1 - t0
    rain_end = t0 + 0.7 * w
    top = rng.uniform(40.0, 90.0)
    rain = session.execute(
        text(
            "SELECT s.id, ST_Distance(z.geom::geography, s.geom::geography) AS d "
            "FROM sensor s JOIN asset z ON z.id = :z "
            "WHERE s.kind = 'rain_mm_h' AND s.status = 'active' AND s.geom IS NOT NULL "
            "ORDER BY s.id"
        ),
        {"z": zone},
    ).all()
    rain_mm = {int(r.id): top * (1 - 0.5 * min(r.d / RAIN_FALLOFF_M, 1.0)) for r in rain}
    near = _near(session, zone, ("level_m", "ponding_cm"), FLOOD_RADIUS_M)
    rise = {int(r.id): 1 - 0.5 * r.d / FLOOD_RADIUS_M for r in near}
    level_top, pond_top = rng.uniform(0.6, 1.5), rng.uniform(12.0, 40.0)
    level = [int(r.id) for r in near if r.kind == "level_m"]
    pond = [int(r.id) for r in near if r.kind == "ponding_cm"]

    def scaled(table: dict[int, float], top_value: float) -> Callable[[I64], F64]:
        return lambda p: np.array([top_value * table[int(i)] for i in fleet.id[p]])

    effects = [
        _effect(fleet, list(rain_mm), scaled(rain_mm, 1.0), t0, 0.2 * w, 0.2 * w, rain_end),
        _effect(fleet, level, scaled(rise, level_top), t0 + 0.15 * w, 0.25 * w, 0.2 * w, t1),
        _effect(fleet, pond, scaled(rise, pond_top), t0 + 0.2 * w, 0.25 * w, 0.2 * w, t1),
    ]
    incident = Incident(
        "flood-rain",
        f"storm: rain up to {top:.0f} mm/h, drain level +{level_top:.1f} m and ponding up to "
        f"{pond_top:.0f} cm around the flood zone; recedes by the end",
        [_asset(session, zone, "flooding zone")],
    )
    incident.effects = [e for e in effects if e is not None]
    return incident


BUILDERS: dict[str, Builder] = {
    "gas-leak": gas_leak,
    "water-burst": water_burst,
    "bridge-strain": bridge_strain,
    "flood-rain": flood_rain,
}


# -- generation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readings:
    """Readings of one batch: fleet position, epoch second and value, one row per reading."""

    sensor: I64
    ts: I64
    value: F64

    def __len__(self) -> int:
        return len(self.ts)

    def ndjson(self, fleet: Fleet, rows: I64 | slice | None = None) -> bytes:
        """The readings as NDJSON (``{"sensor": …, "ts": …, "value": …}`` per line)."""
        pick = slice(None) if rows is None else rows
        sensor, ts, value = self.sensor[pick], self.ts[pick], self.value[pick]
        stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s", timezone="UTC")
        lines = (
            fleet.json_prefix[sensor]
            + stamps.astype(StringDType())
            + '","value":'
            + value.astype(StringDType())
            + "}\n"
        )
        return "".join(lines.tolist()).encode()


def due(fleet: Fleet, a: int, b: int) -> tuple[I64, I64]:
    """Every (sensor position, epoch second) with a reading in ``[a, b)``.

    Sensor i reports at ``phase_i + k · interval_i``; the k of the window are counted per
    sensor and expanded with ``np.repeat``.
    """
    interval, phase = fleet.interval_s, fleet.phase
    k0 = -((phase - a) // interval)  # ceil((a - phase) / interval)
    k1 = -((phase - b) // interval)
    count = np.maximum(k1 - k0, 0)
    sensor = np.repeat(np.arange(len(fleet), dtype=np.int64), count)
    first = np.repeat(np.cumsum(count) - count, count)
    k = np.repeat(k0, count) + (np.arange(len(sensor)) - first)
    return sensor, phase[sensor] + k * interval[sensor]


def generate(fleet: Fleet, plan: Plan, a: int, b: int) -> Readings:
    """All readings due in ``[a, b)``: baseline, incident effects, noise; clipped and rounded."""
    sensor, ts = due(fleet, a, b)
    value = np.empty(len(ts))
    hours = _solar_hours(ts, fleet.lon[sensor])
    profile = fleet.profile[sensor]
    for name in np.unique(profile) if len(ts) else []:
        m = profile == name
        value[m] = _model(str(name)).level(fleet.nominal[sensor[m]], hours[m])
    for incident in plan.incidents:
        for effect in incident.effects:
            if (ts.max(initial=a) < effect.start.min()) or (a >= effect.end.max()):
                continue
            slot = np.full(len(fleet), -1, dtype=np.int64)
            slot[effect.sensors] = np.arange(len(effect.sensors))
            at = slot[sensor]
            hit = at >= 0
            value[hit] += effect.delta[at[hit]] * effect.envelope(at[hit], ts[hit])
    noise_abs = np.zeros(len(fleet))
    noise_rel = np.zeros(len(fleet))
    for name in np.unique(fleet.profile) if len(fleet) else []:
        m = fleet.profile == name
        noise_abs[m], noise_rel[m] = _model(str(name)).noise, _model(str(name)).rel_noise
    sd = noise_abs[sensor] + noise_rel[sensor] * np.abs(value)
    value += sd * _normal(fleet.key[sensor], ts, stream=2)
    value = np.clip(value, fleet.low[sensor], fleet.high[sensor])
    scale = fleet.scale[sensor]
    value = np.round(value * scale) / scale + 0.0  # + 0.0 turns -0.0 into 0.0
    return Readings(sensor, ts, value)


def batches(fleet: Fleet, plan: Plan, batch_s: int) -> Iterator[tuple[int, int, Readings]]:
    """``(a, b, readings)`` for consecutive windows of ``batch_s`` simulated seconds."""
    a = plan.start
    while a < plan.end:
        b = min(a + batch_s, plan.end)
        yield a, b, generate(fleet, plan, a, b)
        a = b


# -- targets ----------------------------------------------------------------------------------
@dataclass
class SendStats:
    readings: int = 0
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # the first few reasons


class Sink(Protocol):
    stats: SendStats

    def send(self, fleet: Fleet, readings: Readings) -> None: ...

    def close(self) -> None: ...


class HttpSink:
    """``POST {url}/readings`` with NDJSON bodies, on one keep-alive connection.

    Connection failures and 5xx answers are retried with backoff for up to ``wait_s`` (the
    server may still be starting, as in ``make demo``); then :class:`ReplayError`.
    """

    def __init__(self, url: str, *, wait_s: float = 30.0, lines: int = HTTP_LINES) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"--url {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.path = parts.path.rstrip("/") + "/readings"
        self._tls = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self.wait_s = wait_s
        self.lines = lines
        self.stats = SendStats()
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._tls else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=120)
        return self._conn

    def send(self, fleet: Fleet, readings: Readings) -> None:
        for lo in range(0, len(readings), self.lines):
            body = readings.ndjson(fleet, slice(lo, lo + self.lines))
            self._post(body)
            self.stats.readings += min(self.lines, len(readings) - lo)

    def _post(self, body: bytes) -> None:
        deadline = time.monotonic() + self.wait_s
        delay = 0.25
        while True:
            try:
                conn = self._connection()
                conn.request("POST", self.path, body=body, headers={"Content-Type": NDJSON})
                response = conn.getresponse()
                status, payload = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                problem = f"{self.url} is not reachable: {exc}"
            else:
                if status < 500:
                    self._count(status, payload)
                    return
                problem = f"{self.url}/readings answered {status}: {payload[:200]!r}"
            if time.monotonic() + delay > deadline:
                raise ReplayError(problem)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _count(self, status: int, payload: bytes) -> None:
        self.stats.requests += 1
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = {}
        if status not in (200, 422) or "received" not in doc:
            raise ReplayError(
                f"{self.url}/readings refused the batch ({status}): {payload[:300]!r}"
            )
        self.stats.accepted += int(doc["accepted"])
        self.stats.duplicates += int(doc["duplicates"])
        self.stats.rejected += len(doc["rejected"])
        for r in doc["rejected"][: max(0, 5 - len(self.stats.rejections))]:
            self.stats.rejections.append(f"{r.get('sensor')}: {r.get('reason')}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class MqttSink:
    """NDJSON messages with QoS 1 on ``<prefix>/<indicator>``; waits for every PUBACK per batch.

    Uses paho directly (MQTT 5, a fresh client id, the ``content-type`` property set), so it
    works against any broker, the project-local one included.
    """

    def __init__(
        self,
        url: str,
        *,
        topic_prefix: str = TOPIC_PREFIX,
        lines: int = MQTT_LINES,
        timeout_s: float = 30.0,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from app.settings import parse_mqtt_url

        address = parse_mqtt_url(url)
        self.where = address.redacted()
        self.topic_prefix = topic_prefix.rstrip("/")
        self.lines = lines
        self.timeout_s = timeout_s
        self.stats = SendStats()
        self._connected = threading.Event()
        self._refused: list[str] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"cityrisk-replay-{os.getpid()}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)  # unbounded: we wait for the acks per batch anyway
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if getattr(reason, "is_failure", False):
                self._refused.append(str(reason))
            self._connected.set()

        client.on_connect = on_connect
        self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        self.properties.ContentType = NDJSON
        try:
            client.connect(address.host, address.port, keepalive=30)
        except OSError as exc:
            raise ReplayError(f"MQTT broker {self.where} is not reachable: {exc}") from None
        client.loop_start()
        if not self._connected.wait(timeout_s) or self._refused:
            client.loop_stop()
            why = self._refused[0] if self._refused else f"no answer in {timeout_s:g} s"
            raise ReplayError(f"MQTT broker {self.where} refused the replay: {why}")
        self._client = client

    def send(self, fleet: Fleet, readings: Readings) -> None:
        kinds = fleet.kind[readings.sensor]
        pending = []
        for kind in np.unique(kinds) if len(readings) else []:
            rows = np.flatnonzero(kinds == kind)
            for lo in range(0, len(rows), self.lines):
                chunk = rows[lo : lo + self.lines]
                info = self._client.publish(
                    f"{self.topic_prefix}/{kind}",
                    readings.ndjson(fleet, chunk),
                    qos=1,
                    properties=self.properties,
                )
                pending.append(info)
                self.stats.readings += len(chunk)
        for info in pending:
            info.wait_for_publish(self.timeout_s)
            if not info.is_published():
                raise ReplayError(f"MQTT broker {self.where} did not acknowledge a message")
            self.stats.requests += 1

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def open_sink(target: str, url: str, *, topic_prefix: str = TOPIC_PREFIX) -> Sink:
    if target == "http":
        return HttpSink(url)
    if target == "mqtt":
        return MqttSink(url, topic_prefix=topic_prefix)
    raise InvalidInput(f"--to {target!r} is not one of {', '.join(TARGETS)}")


# -- the run ----------------------------------------------------------------------------------
@dataclass
class RunStats:
    batches: int = 0
    readings: int = 0
    waited_s: float = 0.0  # wall time spent waiting for simulated (or real) time
    elapsed_s: float = 0.0


def run(
    fleet: Fleet,
    plan: Plan,
    sink: Sink,
    *,
    speed: float,
    batch_s: int,
    progress: Callable[[int, RunStats], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> RunStats:
    """Publish the plan's readings batch by batch, paced by ``speed`` and the wall clock.

    A batch ``[a, b)`` is sent when simulated time reaches ``b`` (at ``speed > 0``) and never
    while ``b`` is more than ``MAX_AHEAD_S`` after the wall clock.
    """
    stats = RunStats()
    began = clock()
    for b, readings in _paced(fleet, plan, batch_s, speed, began, stats, clock, wall, sleep):
        sink.send(fleet, readings)
        stats.batches += 1
        stats.readings += len(readings)
        if progress is not None:
            progress(b, stats)
    stats.elapsed_s = clock() - began
    return stats


def _paced(
    fleet: Fleet,
    plan: Plan,
    batch_s: int,
    speed: float,
    began: float,
    stats: RunStats,
    clock: Callable[[], float],
    wall: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[tuple[int, Readings]]:
    a = plan.start
    while a < plan.end:
        b = min(a + batch_s, plan.end)
        wait = 0.0
        if speed > 0:
            wait = began + (b - plan.start) / speed - clock()
        wait = max(wait, b - (wall() + MAX_AHEAD_S))
        if wait > 0:
            sleep(wait)
            stats.waited_s += wait
        yield b, generate(fleet, plan, a, b)
        a = b


def write_truth(path: Path, document: dict[str, Any]) -> None:
    """Write the ground truth atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


# -- the command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """``cityrisk replay`` options, as typed by the user (checked by :func:`prepare`)."""

    scenario: str
    target: str = "http"
    url: str | None = None
    speed: float = 1.0
    duration: str = "2h"
    start: str | None = None
    batch_s: int = 10
    truth: Path | None = None
    seed: int = 1
    topic_prefix: str = TOPIC_PREFIX


@dataclass
class Prepared:
    options: Options
    url: str
    fleet: Fleet
    plan: Plan


def prepare(session: Session, options: Options, *, http_port: int, mqtt_url: str) -> Prepared:
    """Check the options, read the sensors, plan the incidents and write the truth file.

    ``http_port`` and ``mqtt_url`` give the default ``--url`` per target. Only reads.
    """
    if options.target not in TARGETS:
        raise InvalidInput(f"--to {options.target!r} is not one of {', '.join(TARGETS)}")
    if options.scenario not in SCENARIOS:
        raise InvalidInput(f"scenario {options.scenario!r} is not one of {', '.join(SCENARIOS)}")
    if options.batch_s < 1:
        raise InvalidInput("--batch-s must be a whole number of seconds >= 1")
    start, end, notes = resolve_window(
        options.start, parse_duration(options.duration), options.speed, datetime.now(UTC)
    )
    fleet = load_fleet(session, options.seed)
    if not len(fleet):
        raise InvalidInput("no active sensors in the database (`cityrisk load demo` adds some)")
    plan = plan_scenario(session, fleet, options.scenario, start, end, options.seed)
    plan.notes[:0] = notes
    default = f"http://127.0.0.1:{http_port}" if options.target == "http" else mqtt_url
    prepared = Prepared(options, options.url or default, fleet, plan)
    if options.truth is not None:
        write_truth(options.truth, _truth(prepared, None))
    return prepared


def _truth(prepared: Prepared, stats: RunStats | None) -> dict[str, Any]:
    o = prepared.options
    target = o.target if o.target == "http" else f"mqtt {o.topic_prefix}/<kind>"
    extra: dict[str, Any] = {"target": target, "speed": o.speed, "batch_s": o.batch_s}
    if stats is not None:
        extra["completed"] = {"readings": stats.readings, "batches": stats.batches}
    return prepared.plan.truth(prepared.fleet, **extra)


def execute(prepared: Prepared, say: Callable[[str], None], every_s: float = 10.0) -> str:
    """Publish the prepared replay; progress every ``every_s`` of wall time; a summary line."""
    o, plan = prepared.options, prepared.plan
    for note in plan.notes:
        say(f"replay: note: {note}")
    for incident in plan.incidents:
        say(
            f"replay: {incident.type} {iso(incident.start)} → {iso(incident.end)} on "
            f"{', '.join(str(a['external_id']) for a in incident.assets)}: "
            f"{sum(len(e.sensors) for e in incident.effects)} sensors"
        )
    sink = open_sink(o.target, prepared.url, topic_prefix=o.topic_prefix)
    where = prepared.url if o.target == "http" else f"{prepared.url} {o.topic_prefix}/<kind>"
    say(
        f"replay: {len(prepared.fleet):,} sensors, {iso(plan.start)} → {iso(plan.end)} at speed "
        f"{o.speed:g} to {where}"
    )
    last = [time.monotonic()]

    def progress(b: int, stats: RunStats) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            say(f"replay: at {iso(b)}, {stats.readings:,} readings sent")

    try:
        stats = run(prepared.fleet, plan, sink, speed=o.speed, batch_s=o.batch_s, progress=progress)
    finally:
        sink.close()
    if o.truth is not None:
        write_truth(o.truth, _truth(prepared, stats))
    sent = sink.stats
    summary = (
        f"replayed {o.scenario}: {stats.readings:,} readings for {len(prepared.fleet):,} sensors "
        f"in {stats.batches} batches, {stats.elapsed_s:.1f} s"
    )
    if o.target == "http":
        summary += (
            f"; accepted {sent.accepted:,}, duplicates {sent.duplicates:,}, "
            f"rejected {sent.rejected:,}"
        )
        for reason in sent.rejections:
            say(f"replay: rejected {reason}")
    else:
        summary += f"; {sent.requests:,} MQTT messages acknowledged by the broker"
    return summary
