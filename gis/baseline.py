"""Learned normal behaviour of sensors: robust daily profiles, z-scores, persistence, CUSUM.

Early warning on pipe networks (issue 13: pressure and flow sensors of water networks) asks
"is this reading unusual *for this sensor at this time of day*?". This module answers it in four
vectorised steps, each over many sensors at once:

* **Profile** (:func:`learn_profile`). From a calibration window of readings (sensor index,
  time, value) learn, per sensor, a centre and a spread for every time-of-day bin (default
  15 min) of every day type (7 weekdays, or weekdays/weekends pooled, or all days pooled). The
  centre is the median and the spread the median absolute deviation (MAD) times 1.4826, which
  estimates σ for Gaussian data (1/Φ⁻¹(3/4); Rousseeuw & Croux 1993, *Alternatives to the
  median absolute deviation*, JASA 88(424); Huber 1981, *Robust Statistics*) while one burst
  or one stuck hour in the calibration window cannot move it. A bin with fewer than
  ``min_count`` readings falls back to the sensor's hour of day (all day types pooled), then to
  the sensor's global median and MAD; which level each bin used is in :attr:`Profile.level`.
  The :class:`Profile` is plain arrays and round-trips through :meth:`Profile.to_dict`.
* **Robust z-scores** (:func:`robust_z`) of new readings against a profile, with a floor on the
  spread, so that a sensor whose calibration readings never varied gives finite z.
* **Persistence** (:func:`persistence`): which exceedances belong to a run of at least ``k``
  consecutive readings lasting at least ``hold_s`` seconds of data time.
* **CUSUM** (:func:`cusum`): the two-sided tabular (Page 1954) CUSUM on z-scores, carrying its
  state between calls, with the onset estimate of each alarm.
* **Cross-sensor residuals** (:func:`zone_residual`): a sensor's z minus the median z of the
  other sensors of its zone at the same step, so a city-wide swing (a hot day, a holiday)
  cancels while a local drop stands out; or (:func:`fit_zone_regression`,
  :func:`regression_residual`) its z minus a least-squares prediction from the zone's other
  sensors learned in calibration, for swings the sensors share unequally.

Times are UTC: epoch seconds (float or int) or ``numpy.datetime64``. The daily cycle is that
of local time, ``t + utc_offset_s``; one fixed offset per call (split a calibration window at
daylight-saving changes, or learn on standard time and accept the one-hour shift for half the
year, and say so).

Pure numpy; no database, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CUSUM_H",
    "CUSUM_K",
    "DAY_MODES",
    "MAD_TO_SIGMA",
    "MIN_SPREAD",
    "MIN_SPREAD_REL",
    "PROFILE_VERSION",
    "CusumResult",
    "CusumState",
    "Persistence",
    "Profile",
    "Scores",
    "ZoneRegression",
    "bin_index",
    "cusum",
    "epoch_s",
    "fit_zone_regression",
    "learn_profile",
    "persistence",
    "regression_residual",
    "robust_z",
    "to_grid",
    "zone_residual",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
DayMode = Literal["week", "weekend", "day"]

#: Serialisation format of :class:`Profile` (bump when fields or their meaning change).
PROFILE_VERSION: Final = "cityrisk-baseline-1"
#: MAD × 1.4826 estimates σ of a Gaussian: 1 / Φ⁻¹(0.75) = 1.482602… (Rousseeuw & Croux 1993).
MAD_TO_SIGMA: Final = 1.4826
#: Day types per mode: 7 weekdays (Monday = 0), weekdays/weekend (Sat, Sun = 1), or one.
DAY_MODES: Final[Mapping[str, int]] = {"week": 7, "weekend": 2, "day": 1}
#: Default CUSUM reference value and decision interval in σ units: k = δ/2 for a shift of
#: δ = 1σ, h = 5 (in-control ARL₀ ≈ 465, ARL for a 1σ shift ≈ 10.4); Montgomery,
#: *Introduction to Statistical Quality Control*, 7th ed. (2013), §9.1.3 and Table 9.3.
CUSUM_K: Final = 0.5
CUSUM_H: Final = 5.0
#: Fallback levels stored in :attr:`Profile.level`.
LEVEL_BIN, LEVEL_HOUR, LEVEL_GLOBAL, LEVEL_NONE = 0, 1, 2, -1

_DAY_S: Final = 86_400
_EPOCH_WEEKDAY: Final = 3  # 1970-01-01 was a Thursday (Monday = 0)


# --------------------------------------------------------------------------------------------
# Small helpers


def epoch_s(t: npt.ArrayLike) -> FloatArray:
    """Times as float epoch seconds (UTC): numbers pass, ``numpy.datetime64`` are converted.

    Examples
    --------
    >>> epoch_s(np.array(["1970-01-02T00:00"], dtype="datetime64[m]")).tolist()
    [86400.0]
    """
    arr = np.asarray(t)
    if np.issubdtype(arr.dtype, np.datetime64):
        return (arr.astype("datetime64[ns]").astype(np.int64) / 1e9).astype(np.float64)
    if arr.size and not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"times have dtype {arr.dtype}; expected epoch seconds or datetime64")
    return arr.astype(np.float64)


def _plain(a: npt.NDArray[Any]) -> list[Any]:
    """Nested lists for JSON, NaN as ``None`` (``np.array(..., dtype=float)`` reads it back)."""
    if a.dtype.kind != "f":
        return list(a.tolist())
    o = a.astype(object)
    o[np.isnan(a)] = None
    return list(o.tolist())


def _group_median(
    keys: IntArray, values: FloatArray, n_groups: int, by_value: IntArray | None = None
) -> tuple[FloatArray, IntArray]:
    """Median and count of ``values`` per group key in [0, n_groups): sorts, no loop.

    ``by_value`` (``argsort(values)``) may be passed when several groupings share the values.
    """
    count = np.bincount(keys, minlength=n_groups).astype(np.int64)
    med = np.full(n_groups, np.nan)
    if not keys.size:
        return med, count
    if by_value is None:
        by_value = np.argsort(values)
    # Order by (key, value): sort the int64 key·m + rank-by-value (np.sort of integers is
    # several times faster than a second argsort or a lexsort), then decode the rank.
    m = keys.size
    order = by_value[np.sort(keys[by_value] * m + np.arange(m, dtype=np.int64)) % m]
    v = values[order]
    start = np.cumsum(count) - count
    has = count > 0
    lo = start[has] + (count[has] - 1) // 2
    hi = start[has] + count[has] // 2
    med[has] = 0.5 * (v[lo] + v[hi])
    return med, count


def _median_mad(
    keys: IntArray, values: FloatArray, n_groups: int, by_value: IntArray
) -> tuple[FloatArray, FloatArray, IntArray]:
    centre, count = _group_median(keys, values, n_groups, by_value)
    mad, _ = _group_median(keys, np.abs(values - centre[keys]), n_groups)
    return centre, MAD_TO_SIGMA * mad, count


def _local_clock(
    t_s: FloatArray, utc_offset_s: float, bin_s: int, day_mode: str
) -> tuple[IntArray, IntArray, IntArray]:
    """Day type, time-of-day bin and hour-level bin of each time."""
    local = np.floor(t_s + utc_offset_s).astype(np.int64)
    day = local // _DAY_S
    tod = local - day * _DAY_S
    weekday = (day + _EPOCH_WEEKDAY) % 7
    if day_mode == "week":
        dtype_ = weekday
    elif day_mode == "weekend":
        dtype_ = (weekday >= 5).astype(np.int64)
    else:
        dtype_ = np.zeros_like(weekday)
    return dtype_, tod // bin_s, tod // max(bin_s, 3600)


def bin_index(t: npt.ArrayLike, *, bin_s: int, day_mode: DayMode, utc_offset_s: float) -> IntArray:
    """Flat index ``day_type × bins_per_day + bin`` of each time in a profile's bins.

    The index into one sensor's ``Profile.centre[i].ravel()`` (shape ``(d, b)`` flattened):
    what a store that keeps each sensor's bins as one array looks up.

    Examples
    --------
    Monday 1970-01-05 00:20 UTC in 15-min bins by weekday: day type 0, bin 1.

    >>> bin_index([4 * 86400 + 1200.0], bin_s=900, day_mode="week", utc_offset_s=0).tolist()
    [1]
    """
    _check_bin(bin_s)
    if day_mode not in DAY_MODES:
        raise ValueError(f"day_mode was {day_mode!r}; expected one of {sorted(DAY_MODES)}")
    day_type, b, _ = _local_clock(epoch_s(t).ravel(), utc_offset_s, bin_s, day_mode)
    return np.asarray(day_type * (_DAY_S // bin_s) + b, dtype=np.int64)


def _check_bin(bin_s: int) -> None:
    ok = (
        isinstance(bin_s, int | np.integer)
        and 0 < bin_s <= _DAY_S
        and _DAY_S % bin_s == 0
        and (3600 % bin_s == 0 or bin_s % 3600 == 0)
    )
    if not ok:
        raise ValueError(
            f"bin_s was {bin_s!r}; expected whole seconds dividing a day and either dividing "
            "an hour or a whole number of hours (e.g. 300, 900, 3600, 7200)"
        )


def _readings(
    sensor: npt.ArrayLike, t: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[IntArray, FloatArray, FloatArray]:
    s = np.asarray(sensor)
    ts = epoch_s(t).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if s.size and not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"sensor has dtype {s.dtype}; expected integer sensor ids")
    s = s.astype(np.int64).ravel()
    if not (s.size == ts.size == v.size):
        raise ValueError(
            f"sensor, t and values have {s.size}, {ts.size} and {v.size} entries; expected one "
            "sensor id, time and value per reading"
        )
    if not np.isfinite(ts).all():
        raise ValueError("t has NaN or infinite times; expected finite UTC epoch seconds")
    return s, ts, v


# --------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True, eq=False)
class Profile:
    """Learned normal behaviour of sensors per day type and time-of-day bin (:func:`learn_profile`).

    Attributes
    ----------
    sensor_ids : ndarray of int64, shape (n,)
        The sensors, sorted ascending; row ``i`` of every array is sensor ``sensor_ids[i]``.
    bin_s : int
        Width of a time-of-day bin [s].
    day_mode : {"week", "weekend", "day"}
        Day types: 7 weekdays (Monday = 0), weekday/weekend (0/1), or all days as one.
    utc_offset_s : float
        Local time minus UTC [s] the daily cycle was learned in (+3600 for CET).
    min_count : int
        Readings a bin (or an hour) needed to be used on its own.
    centre, spread : ndarray of float64, shape (n, d, b)
        Median and MAD × 1.4826 of each sensor's readings per day type and bin, after
        fallbacks (value units); NaN where ``level`` is -1.
    count : ndarray of int64, shape (n, d, b)
        Calibration readings that fell in each bin (before fallbacks).
    level : ndarray of int8, shape (n, d, b)
        Where ``centre`` and ``spread`` come from: 0 the bin, 1 the hour of day (all day types
        pooled; the bin itself, pooled, when bins are an hour or longer), 2 the sensor's global
        median and MAD, -1 nothing (the sensor had fewer than ``min_count`` readings).
    global_centre, global_spread : ndarray of float64, shape (n,)
        Median and MAD × 1.4826 of all of each sensor's calibration readings.
    t_start, t_end : float
        First and last calibration time (UTC epoch seconds).
    version : str
        :data:`PROFILE_VERSION`.
    """

    sensor_ids: IntArray
    bin_s: int
    day_mode: DayMode
    utc_offset_s: float
    min_count: int
    centre: FloatArray
    spread: FloatArray
    count: IntArray
    level: npt.NDArray[np.int8]
    global_centre: FloatArray
    global_spread: FloatArray
    t_start: float
    t_end: float
    version: str = PROFILE_VERSION

    @property
    def n_bins(self) -> int:
        """Time-of-day bins per day."""
        return _DAY_S // self.bin_s

    def rows(self, sensor_ids: npt.ArrayLike) -> IntArray:
        """Row of each given sensor id in this profile's arrays.

        Raises
        ------
        ValueError
            If an id was not in the calibration data.
        """
        want = np.asarray(sensor_ids, dtype=np.int64).ravel()
        if not self.sensor_ids.size:
            if want.size:
                raise ValueError(f"sensor ids {want[:5].tolist()} given; the profile is empty")
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sensor_ids, want), self.sensor_ids.size - 1)
        bad = self.sensor_ids[at] != want
        if bad.any():
            raise ValueError(
                f"sensor ids {np.unique(want[bad])[:5].tolist()} are not in this profile "
                f"({self.sensor_ids.size} sensors: {self.sensor_ids[:5].tolist()} …); learn "
                "them first"
            )
        return at.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (lists and numbers; NaN kept as ``None``), one per version."""
        return {
            "version": self.version,
            "sensor_ids": self.sensor_ids.tolist(),
            "bin_s": int(self.bin_s),
            "day_mode": self.day_mode,
            "utc_offset_s": float(self.utc_offset_s),
            "min_count": int(self.min_count),
            "centre": _plain(self.centre),
            "spread": _plain(self.spread),
            "count": self.count.tolist(),
            "level": self.level.tolist(),
            "global_centre": _plain(self.global_centre),
            "global_spread": _plain(self.global_spread),
            "t_start": float(self.t_start),
            "t_end": float(self.t_end),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If the version is not :data:`PROFILE_VERSION` or the arrays' shapes disagree.
        """
        if d.get("version") != PROFILE_VERSION:
            raise ValueError(
                f"profile version was {d.get('version')!r}; expected {PROFILE_VERSION!r}"
            )
        n = len(d["sensor_ids"])
        nd = DAY_MODES[d["day_mode"]]
        nb = _DAY_S // int(d["bin_s"])

        def f(key: str, shape: tuple[int, ...]) -> FloatArray:
            return np.asarray(d[key], dtype=np.float64).reshape(shape)  # None → NaN

        shape = (n, nd, nb)
        try:
            return cls(
                sensor_ids=np.asarray(d["sensor_ids"], dtype=np.int64),
                bin_s=int(d["bin_s"]),
                day_mode=d["day_mode"],
                utc_offset_s=float(d["utc_offset_s"]),
                min_count=int(d["min_count"]),
                centre=f("centre", shape),
                spread=f("spread", shape),
                count=np.asarray(d["count"], dtype=np.int64).reshape(shape),
                level=np.asarray(d["level"], dtype=np.int8).reshape(shape),
                global_centre=f("global_centre", (n,)),
                global_spread=f("global_spread", (n,)),
                t_start=float(d["t_start"]),
                t_end=float(d["t_end"]),
            )
        except ValueError as exc:
            raise ValueError(f"profile arrays do not fit shape {shape}: {exc}") from exc


def learn_profile(
    sensor: npt.ArrayLike,
    t: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    bin_s: int = 900,
    day_mode: DayMode = "week",
    utc_offset_s: float = 0.0,
    min_count: int = 5,
) -> Profile:
    """Learn each sensor's median and robust spread per day type and time-of-day bin.

    Parameters
    ----------
    sensor : array_like of int, shape (m,)
        Sensor id of each calibration reading (any order, sensors interleaved).
    t : array_like of float or datetime64, shape (m,)
        Reading times, UTC (epoch seconds or ``datetime64``).
    values : array_like of float, shape (m,)
        Readings (any unit: m head, bar, L/s …); NaN readings are ignored.
    bin_s : int, default 900
        Time-of-day bin width [s]: divides a day, and divides an hour or is whole hours.
    day_mode : {"week", "weekend", "day"}, default "week"
        Day types: 7 weekdays; weekdays and weekends pooled (thin data: a week of 15-min data
        gives 1 reading a weekday bin, 5 a weekday-pooled one); or every day alike.
    utc_offset_s : float, default 0.0
        Local time minus UTC [s] (CET +3600, China +28800): bins and weekdays are local.
    min_count : int, default 5
        Fewest readings a bin needs to be used; fewer falls back to the hour of day (all day
        types pooled), then to the sensor's global median and MAD (module notes). Five is the
        least for which a median and MAD mean anything; use more for noisy sensors.

    Returns
    -------
    Profile
        Centres, spreads, counts and fallback levels, shape (sensors, day types, bins).

    Raises
    ------
    ValueError
        If the arrays differ in length, a time is not finite, or a parameter is out of range.

    Notes
    -----
    All groups' medians come from one sort of (group, value) pairs, for all sensors at
    once: O(m log m), no per-sensor or per-bin loop. A day type with no calibration
    day at all (a weekend missing from a five-day window) falls back bin by bin like any other.

    Examples
    --------
    Two days of hourly readings: 10 + the hour of day, and a flat 3.

    >>> h = np.arange(48) * 3600.0
    >>> p = learn_profile(np.repeat([7, 9], 48), np.tile(h, 2),
    ...                   np.r_[10 + (h / 3600) % 24, np.full(48, 3.0)],
    ...                   bin_s=3600, day_mode="day", min_count=2)
    >>> p.centre[0, 0, [0, 6, 23]].tolist(), p.centre[1, 0, 5].item(), p.level.max().item()
    ([10.0, 16.0, 33.0], 3.0, 0)
    """
    _check_bin(bin_s)
    if day_mode not in DAY_MODES:
        raise ValueError(f"day_mode was {day_mode!r}; expected one of {sorted(DAY_MODES)}")
    if not (isinstance(min_count, int | np.integer) and min_count >= 1):
        raise ValueError(f"min_count was {min_count!r}; expected an integer >= 1")
    if not math.isfinite(utc_offset_s) or abs(utc_offset_s) > _DAY_S:
        raise ValueError(f"utc_offset_s was {utc_offset_s!r}; expected seconds within ±86400")
    s, ts, v = _readings(sensor, t, values)
    keep = np.isfinite(v)
    t_start = float(ts.min()) if ts.size else math.nan
    t_end = float(ts.max()) if ts.size else math.nan
    s, ts, v = s[keep], ts[keep], v[keep]
    ids, row = np.unique(s, return_inverse=True)
    row = row.astype(np.int64).ravel()
    n, nd, nb = ids.size, DAY_MODES[day_mode], _DAY_S // bin_s
    nh = _DAY_S // max(bin_s, 3600)
    dtype_, b, hb = _local_clock(ts, utc_offset_s, bin_s, day_mode)

    by_value = np.argsort(v)
    c_bin, s_bin, n_bin = _median_mad((row * nd + dtype_) * nb + b, v, n * nd * nb, by_value)
    c_hr, s_hr, n_hr = _median_mad(row * nh + hb, v, n * nh, by_value)
    c_gl, s_gl, n_gl = _median_mad(row, v, n, by_value)

    shape = (n, nd, nb)
    # The hour-level group of each bin: bins per hour-level group is bin-to-hour ratio.
    hour_of_bin = (np.arange(nb) * bin_s) // max(bin_s, 3600)
    hour_idx = (np.arange(n)[:, None, None] * nh + hour_of_bin[None, None, :]).repeat(nd, axis=1)
    centre, spread = c_bin.reshape(shape), s_bin.reshape(shape)
    count = n_bin.reshape(shape)
    level = np.full(shape, LEVEL_BIN, dtype=np.int8)
    use_hr = (count < min_count) & (n_hr[hour_idx] >= min_count)
    use_gl = (count < min_count) & ~use_hr & (n_gl[:, None, None] >= min_count)
    none = (count < min_count) & ~use_hr & ~use_gl
    centre = np.where(use_hr, c_hr[hour_idx], centre)
    spread = np.where(use_hr, s_hr[hour_idx], spread)
    glc = np.broadcast_to(c_gl[:, None, None], shape)
    gls = np.broadcast_to(s_gl[:, None, None], shape)
    centre = np.where(use_gl, glc, centre)
    spread = np.where(use_gl, gls, spread)
    centre[none], spread[none] = np.nan, np.nan
    level[use_hr], level[use_gl], level[none] = LEVEL_HOUR, LEVEL_GLOBAL, LEVEL_NONE
    few = n_gl < min_count
    return Profile(
        sensor_ids=ids.astype(np.int64),
        bin_s=int(bin_s),
        day_mode=day_mode,
        utc_offset_s=float(utc_offset_s),
        min_count=int(min_count),
        centre=centre,
        spread=spread,
        count=count,
        level=level,
        global_centre=np.where(few, np.nan, c_gl),
        global_spread=np.where(few, np.nan, s_gl),
        t_start=t_start,
        t_end=t_end,
    )


@dataclass(frozen=True, eq=False)
class Scores:
    """Readings against a profile (:func:`robust_z`), one entry per reading, input order.

    Attributes
    ----------
    expected : ndarray of float64
        The profile's centre for the reading's sensor, day type and bin (value units).
    residual : ndarray of float64
        ``value - expected``.
    spread : ndarray of float64
        The spread divided by: the profile's, raised to the floor (value units).
    z : ndarray of float64
        ``residual / spread``; NaN where the value is NaN or the sensor had no profile.
    level : ndarray of int8
        The profile level the centre came from (:attr:`Profile.level`).
    """

    expected: FloatArray
    residual: FloatArray
    spread: FloatArray
    z: FloatArray
    level: npt.NDArray[np.int8]


#: Default spread floors: absolute (value units) and relative to the sensor's global median.
#: Reasoned: pressure transducers and flow meters are specified to ±0.1–1 % of reading or of
#: full scale, so a deviation under 1 % of a sensor's usual level is within its own error
#: however steady its calibration readings were (a pressure-regulated zone, a stuck meter).
MIN_SPREAD: Final = 1e-6
MIN_SPREAD_REL: Final = 0.01


def robust_z(
    profile: Profile,
    sensor: npt.ArrayLike,
    t: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    min_spread: float | npt.ArrayLike = MIN_SPREAD,
    min_spread_rel: float = MIN_SPREAD_REL,
) -> Scores:
    """Residuals and robust z-scores of readings against a learned profile.

    Parameters
    ----------
    profile : Profile
        From :func:`learn_profile`.
    sensor, t, values : array_like, shape (m,)
        As for :func:`learn_profile`: sensor ids (all in the profile), UTC times, readings.
    min_spread : float or array_like of float, default 1e-6
        Absolute floor on the spread (value units), one for all or one per profile sensor
        (shape ``(len(profile.sensor_ids),)``); must be > 0, so z is always finite.
    min_spread_rel : float, default 0.01
        Relative floor: this fraction of the sensor's global calibration median (absolute
        value). See :data:`MIN_SPREAD_REL`.

    Returns
    -------
    Scores
        Expected value, residual, spread used, z and profile level per reading.

    Raises
    ------
    ValueError
        If a sensor is not in the profile or a floor is not positive.

    Examples
    --------
    A sensor that read exactly 50.0 in calibration: its MAD is 0, so the 1 % floor (0.5) is
    the spread, and 51.0 is 2σ high, not infinitely.

    >>> p = learn_profile(np.ones(20, int), np.arange(20) * 900.0, np.full(20, 50.0),
    ...                   day_mode="day", bin_s=3600, min_count=2)
    >>> robust_z(p, [1], [0.0], [51.0]).z.tolist()
    [2.0]
    """
    floor = np.asarray(min_spread, dtype=np.float64)
    if floor.ndim not in (0, 1) or (floor.ndim == 1 and floor.size != profile.sensor_ids.size):
        raise ValueError(
            f"min_spread has shape {floor.shape}; expected a scalar or one per profile sensor "
            f"({profile.sensor_ids.size},)"
        )
    if not (np.isfinite(floor).all() and (floor > 0).all()):
        raise ValueError(f"min_spread was {min_spread!r}; expected finite values > 0")
    if not (math.isfinite(min_spread_rel) and min_spread_rel >= 0):
        raise ValueError(f"min_spread_rel was {min_spread_rel!r}; expected a number >= 0")
    s, ts, v = _readings(sensor, t, values)
    rows = profile.rows(s)
    dtype_, b, _ = _local_clock(ts, profile.utc_offset_s, profile.bin_s, profile.day_mode)
    expected = profile.centre[rows, dtype_, b]
    sensor_floor = np.maximum(
        np.broadcast_to(floor, profile.sensor_ids.shape),
        min_spread_rel * np.nan_to_num(np.abs(profile.global_centre)),
    )
    spread = np.maximum(profile.spread[rows, dtype_, b], sensor_floor[rows])
    residual = v - expected
    return Scores(
        expected=expected,
        residual=residual,
        spread=spread,
        z=residual / spread,
        level=profile.level[rows, dtype_, b],
    )


def to_grid(
    sensor: npt.ArrayLike,
    t: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    sensor_ids: npt.ArrayLike,
    step_s: float,
    t0: float,
    n_steps: int,
) -> FloatArray:
    """Readings (long form) on a regular time grid: shape (n_steps, len(sensor_ids)).

    A reading goes to step ``floor((t - t0) / step_s)``; the last reading of a step wins;
    steps without a reading are NaN; readings outside the grid or of other sensors are dropped.
    The wide form is what :func:`cusum`, :func:`persistence` and :func:`zone_residual` take.

    Examples
    --------
    >>> to_grid([5, 6, 5], [0.0, 60.0, 130.0], [1.0, 2.0, 3.0],
    ...         sensor_ids=[5, 6], step_s=60.0, t0=0.0, n_steps=3).tolist()
    [[1.0, nan], [nan, 2.0], [3.0, nan]]
    """
    s, ts, v = _readings(sensor, t, values)
    ids = np.asarray(sensor_ids, dtype=np.int64).ravel()
    if not (step_s > 0 and math.isfinite(step_s)):
        raise ValueError(f"step_s was {step_s!r}; expected a finite number of seconds > 0")
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids[order], s), max(ids.size - 1, 0))
    col = order[at] if ids.size else at
    step = np.floor((ts - t0) / step_s).astype(np.int64)
    ok = (ids.size > 0) & (step >= 0) & (step < n_steps)
    if ids.size:
        ok &= ids[col] == s
    out = np.full((n_steps, ids.size), np.nan)
    srt = np.argsort(ts[ok], kind="stable")  # later readings overwrite earlier ones
    out[step[ok][srt], col[ok][srt]] = v[ok][srt]
    return out


# --------------------------------------------------------------------------------------------
# Persistence


@dataclass(frozen=True, eq=False)
class Persistence:
    """Runs of consecutive exceedances (:func:`persistence`), same shape as the mask.

    Attributes
    ----------
    in_run : ndarray of bool
        The reading belongs to a run that, in the end, had >= ``k`` readings lasting
        >= ``hold_s`` (looks ahead: for reports and plots).
    confirmed : ndarray of bool
        The run had reached ``k`` readings and ``hold_s`` *by this reading* (causal: the
        step at which an alarm may be raised, and every later one of the run).
    run_start : ndarray of int64
        Index (along time) of the first reading of the run the reading is in; -1 outside runs.
    """

    in_run: BoolArray
    confirmed: BoolArray
    run_start: IntArray


def persistence(
    mask: npt.ArrayLike,
    *,
    k: int = 1,
    t: npt.ArrayLike | None = None,
    hold_s: float = 0.0,
) -> Persistence:
    """Which exceedances are in a run of >= ``k`` consecutive readings lasting >= ``hold_s``.

    Parameters
    ----------
    mask : array_like of bool, shape (T,) or (T, n)
        Exceedance per reading, time along axis 0 (one column per sensor).
    k : int, default 1
        Fewest consecutive exceeding readings.
    t : array_like of float or datetime64, shape (T,) or like ``mask``, optional
        Reading times (UTC); needed when ``hold_s > 0``.
    hold_s : float, default 0.0
        Least duration of a run [s], from its first to its last reading, in data time.

    Returns
    -------
    Persistence

    Examples
    --------
    >>> m = [True, True, False, True, True, True, False]
    >>> persistence(m, k=3).in_run.astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 0]
    >>> persistence(m, k=3).confirmed.astype(int).tolist()
    [0, 0, 0, 0, 0, 1, 0]
    >>> persistence(m, t=np.arange(7) * 60.0, hold_s=60.0).in_run.astype(int).tolist()
    [1, 1, 0, 1, 1, 1, 0]
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim not in (1, 2):
        raise ValueError(f"mask has shape {m.shape}; expected (T,) or (T, sensors)")
    if not (isinstance(k, int | np.integer) and k >= 1):
        raise ValueError(f"k was {k!r}; expected an integer >= 1")
    if not (math.isfinite(hold_s) and hold_s >= 0):
        raise ValueError(f"hold_s was {hold_s!r}; expected seconds >= 0")
    m2 = m[:, None] if m.ndim == 1 else m
    n_t = m2.shape[0]
    pos = np.arange(n_t, dtype=np.int64)[:, None]
    start = np.maximum.accumulate(np.where(~m2, pos, -1), axis=0) + 1
    end = np.flip(np.minimum.accumulate(np.flip(np.where(~m2, pos, n_t), 0), axis=0), 0) - 1
    long_now = pos - start + 1 >= k
    long_end = end - start + 1 >= k
    if hold_s > 0:
        if t is None:
            raise ValueError("hold_s > 0 needs the reading times t")
        ts = epoch_s(t)
        ts = ts[:, None] if ts.ndim == 1 else ts
        if ts.shape[0] != n_t:
            raise ValueError(f"t has shape {ts.shape}; expected ({n_t},) or {m.shape}")
        ts = np.broadcast_to(ts, m2.shape)
        if ts.shape != m2.shape:
            raise ValueError(f"t has shape {ts.shape}; expected ({n_t},) or {m.shape}")
        cols = np.arange(m2.shape[1])[None, :]
        s_c, e_c = np.clip(start, 0, n_t - 1), np.clip(end, 0, n_t - 1)
        t_start = ts[s_c, cols]
        long_now &= ts - t_start >= hold_s
        long_end &= ts[e_c, cols] - t_start >= hold_s
    return Persistence(
        in_run=(m2 & long_end).reshape(m.shape),
        confirmed=(m2 & long_now).reshape(m.shape),
        run_start=np.where(m2, start, -1).reshape(m.shape),
    )


# --------------------------------------------------------------------------------------------
# CUSUM


@dataclass(frozen=True, eq=False)
class CusumState:
    """What a CUSUM carries from one call to the next, per sensor (arrays of shape (n,)).

    Attributes
    ----------
    upper, lower : ndarray of float64
        C⁺ and C⁻ after the last step (σ units, >= 0).
    upper_onset_t, lower_onset_t : ndarray of float64
        Time of the first reading of the current non-zero run of C⁺ / C⁻ (NaN while zero).
    upper_above, lower_above : ndarray of bool
        Whether the statistic is above ``h`` (only stays True without reset).
    last_t : ndarray of float64
        Time of the last step processed (NaN: none yet).
    """

    upper: FloatArray
    lower: FloatArray
    upper_onset_t: FloatArray
    lower_onset_t: FloatArray
    upper_above: BoolArray
    lower_above: BoolArray
    last_t: FloatArray

    @classmethod
    def zeros(cls, n: int) -> CusumState:
        """The state of ``n`` sensors before their first reading."""
        z, nan = np.zeros(n), np.full(n, np.nan)
        no = np.zeros(n, dtype=bool)
        return cls(z, z.copy(), nan, nan.copy(), no, no.copy(), nan.copy())

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists (NaN as ``None``), to store between runs."""
        return {k: _plain(a) for k, a in vars(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, list[Any]]) -> CusumState:
        """Inverse of :meth:`to_dict`."""

        def f(key: str) -> FloatArray:
            return np.asarray(d[key], dtype=np.float64)  # None → NaN

        return cls(
            upper=f("upper"),
            lower=f("lower"),
            upper_onset_t=f("upper_onset_t"),
            lower_onset_t=f("lower_onset_t"),
            upper_above=np.asarray(d["upper_above"], dtype=bool),
            lower_above=np.asarray(d["lower_above"], dtype=bool),
            last_t=f("last_t"),
        )


@dataclass(frozen=True, eq=False)
class CusumResult:
    """A CUSUM run over steps × sensors (:func:`cusum`).

    Attributes
    ----------
    upper, lower : ndarray of float64, shape (T, n)
        C⁺ and C⁻ after each step, before any reset (σ units).
    alarm : ndarray of int8, shape (T, n)
        +1 where C⁺ crossed ``h`` (a rise), -1 where C⁻ did (a drop), 0 elsewhere; a step
        where both crossed gets the larger statistic's sign.
    onset_t : ndarray of float64, shape (T, n)
        At an alarm, the onset estimate: the time of the first reading after the statistic
        was last zero, i.e. Montgomery's (§9.1.2) "the shift occurred after the last period
        at which C was zero"; NaN elsewhere.
    state : CusumState
        State after the last step: pass it to the next call.
    """

    upper: FloatArray
    lower: FloatArray
    alarm: npt.NDArray[np.int8]
    onset_t: FloatArray
    state: CusumState


def cusum(
    z: npt.ArrayLike,
    t: npt.ArrayLike,
    *,
    k: float = CUSUM_K,
    h: float = CUSUM_H,
    reset: bool = True,
    state: CusumState | None = None,
) -> CusumResult:
    """Two-sided tabular CUSUM of standardised residuals, vectorised over sensors.

    ``C⁺ᵢ = max(0, zᵢ − k + C⁺ᵢ₋₁)`` and ``C⁻ᵢ = max(0, −zᵢ − k + C⁻ᵢ₋₁)`` (Page 1954;
    Montgomery, *Introduction to Statistical Quality Control*, 7th ed., §9.1.2, in σ units);
    an alarm is raised when either exceeds ``h``.

    Parameters
    ----------
    z : array_like of float, shape (T, n) or (T,)
        z-scores (:func:`robust_z`, :func:`zone_residual`), time along axis 0. NaN (a missing
        reading) leaves the sensor's statistics as they were.
    t : array_like of float or datetime64, shape (T,)
        Step times (UTC), strictly increasing, after ``state.last_t``.
    k : float, default 0.5
        Reference value (σ): half the shift to detect fastest (:data:`CUSUM_K`).
    h : float, default 5.0
        Decision interval (σ) (:data:`CUSUM_H`: ARL₀ ≈ 465 steps with k = 0.5; h = 4 gives
        ≈ 168 and detects a 1σ shift in ≈ 8.4 rather than 10.4 steps).
    reset : bool, default True
        After an alarm, restart that side's statistic at 0 (a new alarm needs new evidence).
        Off, the statistic runs on and only its up-crossings of ``h`` are alarms.
    state : CusumState, optional
        From the previous call's result; default all zero.

    Returns
    -------
    CusumResult

    Raises
    ------
    ValueError
        If shapes disagree, times do not increase, or ``k`` / ``h`` are not positive.

    Notes
    -----
    The recursion is a loop over time steps, each a handful of numpy operations over all
    sensors: the loop's cost is per step, not per reading (10,000 sensors × 288 steps of
    5 min, a day: 0.1 s on the development machine, the same fed one step at a time).
    The same loop runs whatever the batch size, so one reading at a time and a day at a time
    give bit-identical statistics and alarms.

    Examples
    --------
    A shift of +2σ from step 3: C⁺ grows by 1.5 a step and crosses 5 at step 6, onset step 3.

    >>> r = cusum(np.r_[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0], np.arange(8.0))
    >>> np.flatnonzero(r.alarm).tolist(), r.onset_t[6].item(), r.upper[6].item()
    ([6], 3.0, 6.0)
    """
    zz = np.asarray(z, dtype=np.float64)
    one_d = zz.ndim == 1
    if zz.ndim not in (1, 2):
        raise ValueError(f"z has shape {zz.shape}; expected (T,) or (T, sensors)")
    z2 = zz[:, None] if one_d else zz
    n_t, n = z2.shape
    ts = epoch_s(t).ravel()
    if ts.size != n_t:
        raise ValueError(f"t has {ts.size} times for {n_t} steps of z; expected one per step")
    if not np.isfinite(ts).all() or (n_t > 1 and (np.diff(ts) <= 0).any()):
        raise ValueError("t must be finite and strictly increasing (UTC epoch seconds)")
    for name, val in (("k", k), ("h", h)):
        if not (math.isfinite(val) and val > 0):
            raise ValueError(f"{name} was {val!r}; expected a finite number > 0 (σ units)")
    st = CusumState.zeros(n) if state is None else state
    if st.upper.shape != (n,):
        raise ValueError(f"state is for {st.upper.size} sensors; z has {n} columns")
    if n_t and (st.last_t >= ts[0]).any():
        raise ValueError(
            f"t starts at {ts[0]} but the state has readings up to {np.nanmax(st.last_t)}; "
            "expected new readings after the state's"
        )
    up, lo = st.upper.copy(), st.lower.copy()
    up_on, lo_on = st.upper_onset_t.copy(), st.lower_onset_t.copy()
    up_abv, lo_abv = st.upper_above.copy(), st.lower_above.copy()
    last_t = st.last_t.copy()
    out_up, out_lo = np.empty((n_t, n)), np.empty((n_t, n))
    alarm = np.zeros((n_t, n), dtype=np.int8)
    onset = np.full((n_t, n), np.nan)
    # Increments of C⁺ and C⁻; a missing reading adds exactly 0, so it leaves both as they
    # were (and cannot start a run: 0 + 0 stays 0).
    missing = np.isnan(z2)
    d_up = np.where(missing, 0.0, z2 - k)
    d_lo = np.where(missing, 0.0, -z2 - k)
    for i in range(n_t):
        ti = ts[i]
        up_was0, lo_was0 = up == 0, lo == 0
        up += d_up[i]
        np.maximum(up, 0.0, out=up)
        lo += d_lo[i]
        np.maximum(lo, 0.0, out=lo)
        # Onset: the first reading of the current non-zero run (set when leaving zero).
        up_on[up_was0 & (up > 0)] = ti
        up_on[up == 0] = np.nan
        lo_on[lo_was0 & (lo > 0)] = ti
        lo_on[lo == 0] = np.nan
        out_up[i], out_lo[i] = up, lo
        hi_up, hi_lo = up > h, lo > h
        cross_up, cross_lo = hi_up & ~up_abv, hi_lo & ~lo_abv
        if cross_up.any() or cross_lo.any():
            sign = np.where(cross_up & (~cross_lo | (up >= lo)), 1, np.where(cross_lo, -1, 0))
            alarm[i] = sign
            onset[i] = np.where(sign > 0, up_on, np.where(sign < 0, lo_on, np.nan))
            if reset:
                up[hi_up], up_on[hi_up] = 0.0, np.nan
                lo[hi_lo], lo_on[hi_lo] = 0.0, np.nan
        if not reset:
            up_abv, lo_abv = hi_up, hi_lo
    if n_t:
        # The call's times are spent for every sensor, read or not: the next call must start
        # after them, so no step is counted twice.
        last_t = np.full(n, ts[-1])
    new_state = CusumState(up, lo, up_on, lo_on, up_abv, lo_abv, last_t)
    shape = zz.shape if one_d else (n_t, n)
    return CusumResult(
        upper=out_up.reshape(shape),
        lower=out_lo.reshape(shape),
        alarm=alarm.reshape(shape),
        onset_t=onset.reshape(shape),
        state=new_state,
    )


# --------------------------------------------------------------------------------------------
# Cross-sensor residuals


def _among_others(srt: FloatArray, rank: IntArray, valid: BoolArray, p: IntArray) -> FloatArray:
    """Value at position ``p`` of each row's sorted others: skip the sensor's own slot."""
    q = np.clip(np.where(valid & (p >= rank), p + 1, p), 0, srt.shape[1] - 1)
    return np.asarray(np.take_along_axis(srt, q, axis=1), dtype=np.float64)


def zone_residual(z: npt.ArrayLike, zone: npt.ArrayLike, *, min_others: int = 2) -> FloatArray:
    """Each sensor's z minus the median z of the *other* sensors of its zone, step by step.

    A swing shared by a zone (a hot afternoon, a holiday, a pump schedule change upstream)
    moves every sensor's z alike and cancels; a drop at one sensor (a burst near it) stays.

    Parameters
    ----------
    z : array_like of float, shape (T, n)
        z-scores, time along axis 0, one column per sensor; NaN for missing.
    zone : array_like of int, shape (n,)
        Zone label of each sensor (a DMA, a pressure zone).
    min_others : int, default 2
        Fewest other sensors of the zone with a reading at that step; fewer gives NaN (a zone
        of two cannot tell which sensor moved).

    Returns
    -------
    ndarray of float64, shape (T, n)
        ``z[t, i] − median{z[t, j] : zone[j] = zone[i], j ≠ i, z[t, j] not NaN}``.

    Notes
    -----
    Leave-one-out medians without a loop over sensors: each zone's rows are sorted once and
    the median of the others is read off the sorted row around the sensor's own rank. The loop
    is over zones only. The residual is not re-standardised: when sensors' z are independent
    and of unit spread it has spread ≈ √(1 + π/(2m)) for m others (the median's variance).

    Examples
    --------
    Every sensor +3σ (a city-wide swing), and sensor 0 a further −5σ at step 1.

    >>> z = np.array([[3.0, 3.0, 3.0, 3.0], [-2.0, 3.0, 3.0, 3.0]])
    >>> zone_residual(z, [1, 1, 1, 1]).tolist()
    [[0.0, 0.0, 0.0, 0.0], [-5.0, 0.0, 0.0, 0.0]]
    """
    zz = np.asarray(z, dtype=np.float64)
    zl = np.asarray(zone).ravel()
    if zz.ndim != 2 or zz.shape[1] != zl.size:
        raise ValueError(f"z has shape {zz.shape} and zone {zl.size} labels; expected (T, n), (n,)")
    if not (isinstance(min_others, int | np.integer) and min_others >= 1):
        raise ValueError(f"min_others was {min_others!r}; expected an integer >= 1")
    out = np.full(zz.shape, np.nan)
    for label in np.unique(zl):
        cols = np.flatnonzero(zl == label)
        zc = zz[:, cols]
        order = np.argsort(zc, axis=1)  # NaN sort last
        srt = np.take_along_axis(zc, order, axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(cols.size)[None, :], axis=1)
        valid = ~np.isnan(zc)
        c = valid.sum(axis=1, keepdims=True)
        others = c - valid  # valid others of each sensor
        lo_p, hi_p = (others - 1) // 2, others // 2
        med = 0.5 * (_among_others(srt, rank, valid, lo_p) + _among_others(srt, rank, valid, hi_p))
        out[:, cols] = np.where(others >= min_others, zc - med, np.nan)
    return out


@dataclass(frozen=True, eq=False)
class ZoneRegression:
    """Each sensor's z as a linear function of the other sensors of its zone (calibration fit).

    Attributes
    ----------
    zone : ndarray of int64, shape (n,)
        Zone label of each sensor (column).
    weights : ndarray of float64, shape (n, n)
        ``weights[i, j]``: coefficient of sensor j in sensor i's prediction; 0 on the diagonal
        and across zones.
    intercept : ndarray of float64, shape (n,)
        Intercept of each sensor's prediction.
    spread : ndarray of float64, shape (n,)
        MAD × 1.4826 of each sensor's calibration residual (NaN: not fitted).
    rows : ndarray of int64, shape (n,)
        Calibration steps each fit used (all zone members present).
    """

    zone: IntArray
    weights: FloatArray
    intercept: FloatArray
    spread: FloatArray
    rows: IntArray

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists (NaN as ``None``), to store with the profile."""
        return {k: _plain(a) for k, a in vars(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, list[Any]]) -> ZoneRegression:
        """Inverse of :meth:`to_dict`."""
        return cls(
            zone=np.asarray(d["zone"], dtype=np.int64),
            weights=np.asarray(d["weights"], dtype=np.float64),
            intercept=np.asarray(d["intercept"], dtype=np.float64),
            spread=np.asarray(d["spread"], dtype=np.float64),
            rows=np.asarray(d["rows"], dtype=np.int64),
        )


def fit_zone_regression(
    z: npt.ArrayLike, zone: npt.ArrayLike, *, ridge: float = 1e-3, min_rows: int = 50
) -> ZoneRegression:
    """Fit, per sensor, a least-squares regression of its z on the other sensors of its zone.

    The alternative to :func:`zone_residual` when sensors of a zone move together but not
    alike (one sits near the inlet and swings twice as much as one at the far end): learned
    on calibration z-scores, the prediction follows a shared swing in proportion, and
    :func:`regression_residual` standardises what it cannot explain.

    Parameters
    ----------
    z : array_like of float, shape (T, n)
        Calibration z-scores (time along axis 0); steps where a zone member is NaN are left
        out of that zone's fits.
    zone : array_like of int, shape (n,)
        Zone label of each sensor.
    ridge : float, default 1e-3
        Ridge penalty, as a fraction of the mean diagonal of XᵀX (keeps near-collinear
        neighbours, common in one DMA, from giving wild weights).
    min_rows : int, default 50
        Fewest complete calibration steps for a fit; fewer leaves the sensor unfitted
        (NaN spread: its residual is NaN).

    Returns
    -------
    ZoneRegression

    Notes
    -----
    A loop over sensors (a calibration step, not a hot path): each fit is one ridge-regularised
    normal-equation solve of the size of its zone.
    """
    zz = np.asarray(z, dtype=np.float64)
    zl = np.asarray(zone, dtype=np.int64).ravel()
    if zz.ndim != 2 or zz.shape[1] != zl.size:
        raise ValueError(f"z has shape {zz.shape} and zone {zl.size} labels; expected (T, n), (n,)")
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge was {ridge!r}; expected a number >= 0")
    n = zl.size
    weights = np.zeros((n, n))
    intercept = np.zeros(n)
    spread = np.full(n, np.nan)
    rows = np.zeros(n, dtype=np.int64)
    for label in np.unique(zl):
        cols = np.flatnonzero(zl == label)
        complete = np.isfinite(zz[:, cols]).all(axis=1)
        zc = zz[complete][:, cols]
        for a, i in enumerate(cols.tolist()):
            others = np.delete(np.arange(cols.size), a)
            rows[i] = zc.shape[0]
            if not others.size or zc.shape[0] < min_rows:
                continue
            x = np.column_stack([np.ones(zc.shape[0]), zc[:, others]])
            xtx = x.T @ x
            pen = ridge * float(np.mean(np.diag(xtx)[1:])) * np.eye(xtx.shape[0])
            pen[0, 0] = 0.0  # the intercept is not shrunk
            beta = np.linalg.solve(xtx + pen, x.T @ zc[:, a])
            intercept[i] = beta[0]
            weights[i, cols[others]] = beta[1:]
            res = zc[:, a] - x @ beta
            spread[i] = MAD_TO_SIGMA * float(np.median(np.abs(res - np.median(res))))
    return ZoneRegression(zl, weights, intercept, spread, rows)


def regression_residual(
    model: ZoneRegression, z: npt.ArrayLike, *, min_spread: float = 0.05
) -> FloatArray:
    """Standardised residual of each sensor against its zone regression, step by step.

    Parameters
    ----------
    model : ZoneRegression
        From :func:`fit_zone_regression`.
    z : array_like of float, shape (T, n)
        New z-scores, same columns as the fit.
    min_spread : float, default 0.05
        Floor on the residual spread (σ units of z), so a sensor its neighbours predict
        perfectly does not give infinite residuals.

    Returns
    -------
    ndarray of float64, shape (T, n)
        ``(z − intercept − Σⱼ wᵢⱼ zⱼ) / spread``; NaN where a zone member used is NaN or the
        sensor was not fitted. Feed it to :func:`cusum` like a z-score.

    Examples
    --------
    Sensor 1 swings twice as much as sensor 0 and 2: the fit learns it, a shared swing cancels.

    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=500)
    >>> z = np.column_stack([f, 2 * f, f]) + rng.normal(scale=0.1, size=(500, 3))
    >>> m = fit_zone_regression(z, [0, 0, 0])
    >>> r = regression_residual(m, np.array([[3.0, 6.0, 3.0], [3.0, 2.0, 3.0]]))
    >>> bool(abs(r[0, 1]) < 1), bool(r[1, 1] < -10)
    (True, True)
    """
    zz = np.asarray(z, dtype=np.float64)
    if zz.ndim != 2 or zz.shape[1] != model.zone.size:
        raise ValueError(f"z has shape {zz.shape}; expected (T, {model.zone.size}) as fitted")
    if not (math.isfinite(min_spread) and min_spread > 0):
        raise ValueError(f"min_spread was {min_spread!r}; expected a number > 0")
    used = model.weights != 0
    filled = np.where(np.isnan(zz), 0.0, zz)
    pred = model.intercept[None, :] + filled @ model.weights.T
    # NaN where any predictor the sensor uses is missing.
    missing = (np.isnan(zz).astype(np.float64) @ used.T.astype(np.float64)) > 0
    res = (zz - pred) / np.maximum(model.spread, min_spread)[None, :]
    return np.asarray(np.where(missing, np.nan, res), dtype=np.float64)
