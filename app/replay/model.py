"""What a replayed sensor says: simulated time, counter-based random numbers, baselines.

Each indicator has a baseline with a daily cycle in *local solar time* (UTC + longitude / 15 h)
and Gaussian noise; every random number is a pure function of (seed, sensor, timestamp). See
:mod:`app.replay` for the whole picture.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from app.errors import InvalidInput
from app.sensors.ingest import MAX_FUTURE

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Obj = npt.NDArray[np.object_]

MAX_AHEAD_S = (MAX_FUTURE - timedelta(minutes=1)).total_seconds()
DAY_S = 86_400


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
        When readings of the span would be refused by the ingest for being too far ahead.
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
    # No age limit here: how old a reading the service takes is its CITYRISK_MAX_READING_AGE_DAYS
    # (a rejected reading is counted, with its reason, in the replay's summary).
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


def uniform(key: U64, ts: I64 | int, stream: int) -> F64:
    """Uniform in (0, 1), a pure function of (sensor key, timestamp, stream)."""
    # Broadcast to arrays first: numpy warns on (intended) wrap-around of 0-d scalars only.
    stamps = np.broadcast_to(np.asarray(ts, dtype=np.int64), key.shape).astype(np.uint64)
    counter = stamps * _GOLDEN + np.uint64(stream)
    bits = _mix(key ^ _mix(counter))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def normal(key: U64, ts: I64, stream: int) -> F64:
    """Standard normal by Box–Muller over two independent uniform streams."""
    u1, u2 = uniform(key, ts, stream), uniform(key, ts, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def sensor_key(text_value: str) -> int:
    return int.from_bytes(hashlib.blake2b(text_value.encode(), digest_size=8).digest(), "little")


# -- baselines --------------------------------------------------------------------------------
def profile_of(kind: str, asset_kind: str | None) -> str:
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
    # Fence-line toxic-gas detectors: a little ammonia from refrigeration (0.3-1.5 ppm), trace
    # chlorine (0.01-0.04 ppm), both far below the first alarm level (25 ppm, 0.5 ppm).
    "nh3_ppm": Model(lambda u, p, d: 0.3 + 1.2 * u, lambda n, h: n, noise=0.2, floor=0),
    "cl2_ppm": Model(
        lambda u, p, d: 0.01 + 0.03 * u, lambda n, h: n, noise=0.005, decimals=3, floor=0
    ),
    # A storage tank 55-85 % full, drawn down a little through the working day.
    "tank_level_pct": Model(
        lambda u, p, d: 55.0 + 30.0 * u,
        lambda n, h: n - 2.0 * _bump(h, 14.0, 3.0),
        noise=0.1,
        decimals=1,
        floor=0,
        ceiling=100,
    ),
    # Wind at 10 m: calmer at night, strongest in the afternoon when the boundary layer mixes
    # (mean 2.8-4.8 m/s, about Boston's inland annual mean); gusts as relative noise.
    "wind_speed_ms": Model(
        lambda u, p, d: 2.8 + 2.0 * u,
        lambda n, h: n * (1.0 + 0.35 * _sine(h, 14.0)),
        rel_noise=0.15,
        decimals=1,
        floor=0,
    ),
    # Direction the wind blows from: prevailing west-south-west (230-290°, the seed picks it),
    # veering ~20° through the afternoon; readings scatter ±8° (1 sd).
    "wind_dir_deg": Model(
        lambda u, p, d: 230.0 + 60.0 * u,
        lambda n, h: n + 20.0 * _sine(h, 15.0),
        noise=8.0,
        decimals=0,
        floor=0,
        ceiling=360,
    ),
}
# Indicators without a model above (alarm states, displacement …): a flat 0, inside each of
# their physical ranges and "normal" for the alarm states.
GENERIC = Model(lambda u, p, d: 0.0 * u, lambda n, h: n, noise=0.0, decimals=3)


def model_of(profile: str) -> Model:
    return MODELS.get(profile, GENERIC)


def solar_hours(ts: I64, lon: F64) -> F64:
    return ((ts % DAY_S) / 3600.0 + lon / 15.0) % 24.0
