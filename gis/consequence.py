"""Consequence models of the cascade-impact engine: how far a gas-main rupture, a vapour-cloud
explosion, a jet or pool fire and a flood reach, and what they do there.

Pure functions over scalars or numpy arrays (numpy, shapely, stdlib; no database, no settings).
Units are in every name. Every formula names its source (standard, edition, clause or table) in
its docstring *and* in the ``source`` field of its result, so the API can show it; every
threshold is a parameter with a cited default, because cities set their own.

Contents
--------
Results
    :class:`Ring`, :class:`ConsequenceResult`, :class:`HcaResult`, :class:`CorridorWindow`
Gas pipelines
    :func:`pir_ft`, :func:`pir_m`, :func:`gas_pipe_rupture`, :func:`high_consequence_area`,
    :func:`households_in_sliding_window`, :func:`corridor_households`,
    :func:`gb32167_gas_hca_grade`, :func:`gb32167_oil_hca_grade`
Fuels
    :data:`FUELS`, :func:`get_fuel`
Blast
    :func:`tnt_equivalence_kg`, :func:`kb_overpressure_kpa`, :func:`kb_scaled_distance`,
    :func:`vapour_cloud_explosion`, :func:`overpressure_damage` (Clancey's damage ladder)
Fire
    :func:`gas_orifice_release`, :func:`point_source_heat_flux_kw_m2`,
    :func:`point_source_radius_m`, :func:`jet_fire`, :data:`POOL_FUELS`, :func:`pool_fire`
Flood
    :data:`JRC_CURVES`, :func:`flood_damage_fraction`, :func:`flood_damage`,
    :func:`flood_depth_damage` (with its source)

The array primitives (``kb_overpressure_kpa``, ``point_source_heat_flux_kw_m2``,
``flood_damage_fraction`` …) return bare numbers for evaluating many assets at once; their
citations are the ``*_SOURCE`` constants, which the result-level functions carry.

Potential impact radius (PIR): ASME B31.8S-2022, *Managing System Integrity of Gas Pipelines*,
§3.2 (potential impact circle), adopted by 49 CFR 192.903 ("potential impact radius"):

    r = 0.69 · √(p · d²)        r in ft, p = MAOP in psig, d = outside diameter in inches

The factor 0.69 is for natural gas only (it folds in methane's heat of combustion and a
5,000 Btu/h·ft² ≈ 15.8 kW/m² heat-flux threshold, GRI-00/0189); other gases need their own
factor (ASME B31.8S §3.2), so nothing here applies to them.

The SI form is the same formula with units converted, r[m] = 0.0997 · d[mm] · √(p[MPa]); the
constant is derived below from the exact conversion factors rather than typed in, so the two
forms agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Final, overload

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.frames import LocalFrame

__all__ = [
    "CFR_HCA_SOURCE",
    "CLANCEY_DAMAGE",
    "DEFAULT_THRESHOLDS_KPA",
    "DEFAULT_THRESHOLDS_KW_M2",
    "E_TNT_MJ_KG",
    "FUELS",
    "GB32167_SOURCE",
    "JET_FIRE_RADIANT_FRACTION",
    "JRC_CURVES",
    "JRC_DEPTHS_M",
    "JRC_SOURCE",
    "KB_PIECES",
    "KB_P_MAX_KPA",
    "KB_P_MIN_KPA",
    "KB_SOURCE",
    "KB_Z_MAX",
    "KB_Z_MIN",
    "ORIFICE_SOURCE",
    "OVERPRESSURE_LABELS",
    "PIR_FT_FACTOR",
    "PIR_HEAT_FLUX_KW_M2",
    "PIR_SI_FACTOR",
    "PIR_SOURCE",
    "POINT_SOURCE_SOURCE",
    "POOL_FIRE_RADIANT_FRACTION",
    "POOL_FIRE_SOURCE",
    "POOL_FUELS",
    "THERMAL_LABELS",
    "VCE_YIELD_FRACTION",
    "ConsequenceResult",
    "CorridorWindow",
    "FloodDamage",
    "Fuel",
    "GasRelease",
    "HcaResult",
    "PoolFuel",
    "Ring",
    "corridor_households",
    "flood_damage",
    "flood_damage_fraction",
    "flood_depth_damage",
    "gas_orifice_release",
    "gas_pipe_rupture",
    "gb32167_gas_hca_grade",
    "gb32167_oil_hca_grade",
    "get_fuel",
    "get_pool_fuel",
    "high_consequence_area",
    "households_in_sliding_window",
    "jet_fire",
    "kb_overpressure_kpa",
    "kb_scaled_distance",
    "overpressure_damage",
    "pir_ft",
    "pir_m",
    "point_source_heat_flux_kw_m2",
    "point_source_radius_m",
    "pool_fire",
    "tnt_equivalence_kg",
    "vapour_cloud_explosion",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | npt.ArrayLike

FT_M: Final = 0.3048  # international foot, exact
IN_MM: Final = 25.4  # inch, exact
PSI_PA: Final = 6894.757293168  # pound-force per square inch (NIST SP 811)
BTU_J: Final = 1055.05585262  # International Table Btu (NIST SP 811)

#: ASME B31.8S §3.2 / 49 CFR 192.903 constant, ft / (in · psi^½), natural gas.
PIR_FT_FACTOR: Final = 0.69
#: The same constant for r in m, d in mm, p in MPa: 0.69 · 0.3048 / 25.4 · √(10⁶ / 6894.757).
PIR_SI_FACTOR: Final = PIR_FT_FACTOR * FT_M / IN_MM * math.sqrt(1e6 / PSI_PA)
#: The heat flux at the PIR: 5,000 Btu/(h·ft²) (GRI-00/0189, the basis of ASME B31.8S §3.2),
#: 5000 · 1055.056 J / 3600 s / 0.0929 m² = 15.77 kW/m².
PIR_HEAT_FLUX_KW_M2: Final = 5000.0 * BTU_J / 3600.0 / FT_M**2 / 1000.0

PIR_SOURCE: Final = (
    "ASME B31.8S-2022 §3.2 potential impact radius r = 0.69·√(p·d²) (ft, psig, in), "
    "adopted by 49 CFR 192.903; natural gas only"
)


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ring:
    """One threshold ring of a consequence model: where a hazard falls to a threshold.

    Attributes
    ----------
    label : str
        What the threshold means, for people ("8 psi (55.2 kPa): destruction of buildings").
    threshold : float
        The threshold, in ``threshold_unit``.
    threshold_unit : str
        ``"kPa"``, ``"kW/m2"``, ``"m"`` ...
    radius_m : float
        Distance from the source to the threshold, metres.
    values : Mapping[str, float]
        The model's numbers at the ring, each name with its unit
        (``{"overpressure_kpa": 55.2, "scaled_distance_m_kg13": 4.36}``).
    """

    label: str
    threshold: float
    threshold_unit: str
    radius_m: float
    values: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "label": self.label,
            "threshold": self.threshold,
            "threshold_unit": self.threshold_unit,
            "radius_m": self.radius_m,
            "values": dict(self.values),
        }


@dataclass(frozen=True)
class ConsequenceResult:
    """The result of a consequence model, in the shape the HTTP layer serialises.

    Attributes
    ----------
    model : str
        Stable model id (``"vce_tnt_kingery_bulmash"``).
    source : str
        Citation of the formula and of its data (standard, edition, clause or table).
    inputs : Mapping[str, tuple[float | str, str]]
        The inputs actually used, name → (value, unit), defaults and derived values included.
    rings : tuple[Ring, ...]
        One ring per threshold, in the order the thresholds were given.
    notes : tuple[str, ...]
        Assumptions and limits a commander should read next to the map.
    """

    model: str
    source: str
    inputs: Mapping[str, tuple[float | str, str]]
    rings: tuple[Ring, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (inputs as ``{"value": ..., "unit": ...}`` objects)."""
        return {
            "model": self.model,
            "source": self.source,
            "inputs": {k: {"value": v, "unit": u} for k, (v, u) in self.inputs.items()},
            "rings": [r.to_dict() for r in self.rings],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class HcaResult:
    """Whether a place is a high-consequence area, and why.

    Attributes
    ----------
    is_hca : bool
        True when any criterion holds.
    grade : str or None
        GB 32167 grade ``"I"`` (least severe) … ``"III"`` (most severe); None for the US rule
        (which has no grades) or when no criterion holds.
    reasons : tuple[str, ...]
        Each criterion met (or, when none is, why not), with its clause.
    source : str
        The standard and clause applied.
    notes : tuple[str, ...]
        What was not assessed, and why.
    """

    is_hca: bool
    grade: str | None
    reasons: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "is_hca": self.is_hca,
            "grade": self.grade,
            "reasons": list(self.reasons),
            "source": self.source,
            "notes": list(self.notes),
        }


# --- input checks --------------------------------------------------------------------------


def _positive(name: str, value: object) -> float:
    """``value`` as a float, or a ValueError saying what was given and what is expected."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} was {value!r}; expected a finite number > 0")
    return float(value)


def _nonnegative(name: str, value: object) -> float:
    """``value`` as a float >= 0 (a count that may be an estimate, a depth, a value)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} was {value!r}; expected a finite number >= 0")
    return float(value)


def _fraction(name: str, value: object) -> float:
    """A fraction in (0, 1]."""
    v = _positive(name, value)
    if v > 1.0:
        raise ValueError(f"{name} was {value!r}; expected a fraction in (0, 1]")
    return v


def _count(name: str, value: object) -> int:
    """A whole number >= 0 (a count of buildings, sites, households)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} was {value!r}; expected a whole number >= 0")
    return int(value)


def _thresholds(name: str, values: Sequence[float]) -> tuple[float, ...]:
    """A non-empty sequence of finite thresholds > 0."""
    try:
        out = tuple(_positive(name, v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if not out:
        raise ValueError(f"{name} was {values!r}; expected a non-empty sequence of numbers > 0")
    return out


def _checked(name: str, value: ArrayLike) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    # NaN passes through (unknown input, unknown radius); negatives are a data error.
    if np.any(arr < 0):
        raise ValueError(
            f"{name} had a negative value ({float(np.min(arr))!r}); expected values >= 0 "
            "(NaN passes through as unknown)"
        )
    return arr


# --- gas pipelines: potential impact radius -----------------------------------------------


@overload
def pir_ft(p_psig: float, d_in: float) -> float: ...
@overload
def pir_ft(p_psig: npt.ArrayLike, d_in: npt.ArrayLike) -> FloatArray: ...
def pir_ft(p_psig: ArrayLike, d_in: ArrayLike) -> float | FloatArray:
    """Potential impact radius of a natural-gas pipeline, US customary units.

    Parameters
    ----------
    p_psig : float or array_like
        Maximum allowable operating pressure, psig (gauge).
    d_in : float or array_like
        Outside diameter, inches.

    Returns
    -------
    float or ndarray
        Radius in feet, ``0.69 · d · √p`` (ASME B31.8S §3.2; 49 CFR 192.903). NaN in, NaN out.

    Raises
    ------
    ValueError
        If a pressure or diameter is negative.

    Examples
    --------
    The worked values of ASME B31.8S / docs ``impact-models.md``:

    >>> round(pir_ft(1000, 30))
    655
    >>> round(pir_ft(720, 24))
    444
    >>> round(pir_ft(400, 12))
    166
    >>> round(pir_ft(60, 6))
    32
    """
    p = _checked("p_psig", p_psig)
    d = _checked("d_in", d_in)
    r = PIR_FT_FACTOR * np.sqrt(p * d * d)
    return float(r) if r.ndim == 0 else r


@overload
def pir_m(p_mpa: float, d_mm: float) -> float: ...
@overload
def pir_m(p_mpa: npt.ArrayLike, d_mm: npt.ArrayLike) -> FloatArray: ...
def pir_m(p_mpa: ArrayLike, d_mm: ArrayLike) -> float | FloatArray:
    """Potential impact radius of a natural-gas pipeline, SI units.

    Parameters
    ----------
    p_mpa : float or array_like
        Maximum allowable operating pressure, MPa (gauge).
    d_mm : float or array_like
        Outside diameter, mm. Where only the nominal diameter is known (``diameter_mm`` in
        the asset taxonomy) it stands in for the outside diameter: for city mains the two
        differ by a few per cent, which moves the radius by the same few per cent.

    Returns
    -------
    float or ndarray
        Radius in metres, ``0.0997 · d · √p`` (the ASME B31.8S §3.2 formula in SI units).

    Raises
    ------
    ValueError
        If a pressure or diameter is negative.

    Examples
    --------
    30 in (762 mm) at 1000 psi (6.895 MPa) → 200 m; 6 in (152.4 mm) at 60 psi → 9.8 m:

    >>> round(pir_m(6.894757, 762.0))
    200
    >>> round(pir_m(60 * 0.006894757, 152.4), 1)
    9.8
    """
    p = _checked("p_mpa", p_mpa)
    d = _checked("d_mm", d_mm)
    r = PIR_SI_FACTOR * d * np.sqrt(p)
    return float(r) if r.ndim == 0 else r


def gas_pipe_rupture(diameter_mm: float, pressure_mpa: float) -> ConsequenceResult:
    """The potential impact circle of a ruptured natural-gas main, as a consequence result.

    Parameters
    ----------
    diameter_mm : float
        Outside (or, for city mains, nominal) diameter, mm (> 0).
    pressure_mpa : float
        Maximum allowable operating pressure, MPa gauge (> 0).

    Returns
    -------
    ConsequenceResult
        ``model="gas_pipe_pir_asme_b31_8s"``, one ring at the PIR (:func:`pir_m`), where the
        heat flux of the rupture fire is 5,000 Btu/(h·ft²) ≈ 15.8 kW/m².

    Raises
    ------
    ValueError
        If the diameter or pressure is not a finite number > 0.

    Notes
    -----
    ASME B31.8S-2022 §3.2; 49 CFR 192.903. Natural gas only: the factor 0.69 folds in
    methane's heat of combustion, so propane or hydrogen lines need their own factor.

    Examples
    --------
    >>> r = gas_pipe_rupture(diameter_mm=610.0, pressure_mpa=4.96)
    >>> round(r.rings[0].radius_m), round(r.rings[0].values["radius_ft"])
    (135, 444)
    """
    d_mm = _positive("diameter_mm", diameter_mm)
    p_mpa = _positive("pressure_mpa", pressure_mpa)
    r_m = pir_m(p_mpa, d_mm)
    p_psig = p_mpa * 1e6 / PSI_PA
    d_in = d_mm / IN_MM
    ring = Ring(
        label=(
            f"potential impact radius: heat flux {PIR_HEAT_FLUX_KW_M2:.1f} kW/m2 "
            "(5,000 Btu/h·ft2) from the rupture fire"
        ),
        threshold=PIR_HEAT_FLUX_KW_M2,
        threshold_unit="kW/m2",
        radius_m=r_m,
        values={"radius_ft": r_m / FT_M, "heat_flux_kw_m2": PIR_HEAT_FLUX_KW_M2},
    )
    return ConsequenceResult(
        model="gas_pipe_pir_asme_b31_8s",
        source=PIR_SOURCE,
        inputs={
            "diameter_mm": (d_mm, "mm"),
            "pressure_mpa": (p_mpa, "MPa (gauge)"),
            "diameter_in": (d_in, "in"),
            "pressure_psig": (p_psig, "psig"),
        },
        rings=(ring,),
        notes=(
            "natural gas only: ASME B31.8S §3.2 gives other gases their own factor",
            "a nominal diameter standing in for the outside diameter moves r by the same few %",
        ),
    )


# --- gas pipelines: high-consequence areas -------------------------------------------------

CFR_HCA_SOURCE: Final = (
    "49 CFR 192.903 'high consequence area', method (2): a potential impact circle containing "
    "(i) 20 or more buildings intended for human occupancy or (ii) an identified site; "
    "ASME B31.8S-2022 §3.2"
)


def high_consequence_area(
    buildings_inside: int, identified_sites_inside: int, building_threshold: int = 20
) -> HcaResult:
    """US high-consequence-area test of one potential impact circle (49 CFR 192.903).

    Parameters
    ----------
    buildings_inside : int
        Buildings intended for human occupancy inside the potential impact circle (>= 0).
    identified_sites_inside : int
        Identified sites inside it (schools, hospitals, elderly care, prisons, stadiums and
        other places that are hard to evacuate or where people gather; >= 0).
    building_threshold : int, default 20
        Buildings that make an HCA (49 CFR 192.903 method (2)(i): 20). Cities may set their own.

    Returns
    -------
    HcaResult
        ``is_hca`` and the reasons; ``grade`` is None (the US rule has no grades).

    Raises
    ------
    ValueError
        If a count is not a whole number >= 0, or the threshold is not >= 1.

    Notes
    -----
    Method (1) of §192.903 (Class 3 and 4 locations) needs the class location, which the
    caller has and this function does not; it is not assessed here.

    Examples
    --------
    >>> high_consequence_area(buildings_inside=25, identified_sites_inside=0).is_hca
    True
    >>> high_consequence_area(buildings_inside=19, identified_sites_inside=0).is_hca
    False
    """
    n = _count("buildings_inside", buildings_inside)
    sites = _count("identified_sites_inside", identified_sites_inside)
    threshold = _count("building_threshold", building_threshold)
    if threshold < 1:
        raise ValueError(f"building_threshold was {building_threshold!r}; expected a count >= 1")
    reasons = []
    if n >= threshold:
        reasons.append(
            f"{n} buildings intended for human occupancy inside the potential impact circle "
            f"(>= {threshold}; 49 CFR 192.903 method (2)(i))"
        )
    if sites:
        reasons.append(
            f"{sites} identified site(s) inside the potential impact circle "
            "(49 CFR 192.903 method (2)(ii))"
        )
    is_hca = bool(reasons)
    if not is_hca:
        reasons.append(f"{n} buildings (< {threshold}) and no identified site inside the circle")
    return HcaResult(
        is_hca=is_hca,
        grade=None,
        reasons=tuple(reasons),
        source=CFR_HCA_SOURCE,
        notes=("method (1), Class 3/4 locations, not assessed: needs the class location",),
    )


@dataclass(frozen=True)
class CorridorWindow:
    """The stretch of a pipeline corridor that holds the most households.

    Attributes
    ----------
    households : float
        Households in the best window (a sum of counts, so estimates may be fractional).
    start_m, end_m : float
        Chainage of the window along the centreline, metres from its first vertex.
    window_m : float
        Window length, metres.
    half_width_m : float or None
        Corridor half-width used to pick the households (None when chainages were given).
    """

    households: float
    start_m: float
    end_m: float
    window_m: float
    half_width_m: float | None = None


def households_in_sliding_window(
    chainage_m: npt.ArrayLike,
    households: npt.ArrayLike | None = None,
    window_m: float = 2000.0,
) -> CorridorWindow:
    """The most households any ``window_m`` stretch of a corridor holds (a sliding window).

    Parameters
    ----------
    chainage_m : array_like, shape (n,)
        Position of each dwelling (or building) along the centreline, metres.
    households : array_like, shape (n,), optional
        Households at each position (default one each); >= 0.
    window_m : float, default 2000
        Window length, metres: GB 50251-2015 / GB 32167-2015 count households "in any 2 km
        stretch holding the most" (任意划分成长度为2km并能包括最大聚居户数的若干地段).

    Returns
    -------
    CorridorWindow
        The best window ``[start_m, start_m + window_m]`` (ends included) and its count.

    Raises
    ------
    ValueError
        If a chainage or count is not finite, a count is negative, the shapes differ, or
        ``window_m`` is not > 0.

    Notes
    -----
    A best window can always start at a dwelling, so only those n windows are counted: one
    sort and one ``searchsorted``, O(n log n).

    Examples
    --------
    >>> w = households_in_sliding_window([0, 500, 2600, 3000, 4500], [40, 30, 50, 60, 5])
    >>> w.households, w.start_m, w.end_m
    (115.0, 2600.0, 4600.0)
    """
    window = _positive("window_m", window_m)
    c = np.asarray(chainage_m, dtype=np.float64).ravel()
    h = np.ones_like(c) if households is None else np.asarray(households, dtype=np.float64).ravel()
    if h.shape != c.shape:
        raise ValueError(
            f"households has {h.size} values but chainage_m has {c.size}; expected one each"
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(h)) and np.all(h >= 0)):
        raise ValueError(
            "chainage_m and households must be finite and households >= 0; "
            f"got chainage_m={c!r}, households={h!r}"
        )
    if c.size == 0:
        return CorridorWindow(0.0, 0.0, window, window)
    order = np.argsort(c, kind="stable")
    c, h = c[order], h[order]
    cum = np.concatenate([[0.0], np.cumsum(h)])
    end = np.searchsorted(c, c + window, side="right")
    sums = cum[end] - cum[:-1]
    best = int(np.argmax(sums))
    return CorridorWindow(float(sums[best]), float(c[best]), float(c[best] + window), window)


def corridor_households(
    centreline: BaseGeometry,
    lon_deg: npt.ArrayLike,
    lat_deg: npt.ArrayLike,
    households: npt.ArrayLike | None = None,
    half_width_m: float = 200.0,
    window_m: float = 2000.0,
) -> CorridorWindow:
    """Households within ``half_width_m`` of a pipeline, in its most crowded ``window_m``.

    Parameters
    ----------
    centreline : shapely LineString
        The pipeline centreline, WGS84 lon/lat degrees.
    lon_deg, lat_deg : array_like, shape (n,)
        Dwellings (building points), WGS84 degrees.
    households : array_like, shape (n,), optional
        Households in each building (default one each).
    half_width_m : float, default 200
        Corridor half-width, metres: "200 m either side of the centreline" (GB 50251-2015
        area classes, used by GB 32167-2015).
    window_m : float, default 2000
        Sliding-window length along the line, metres (same sources).

    Returns
    -------
    CorridorWindow
        The count for :func:`gb32167_gas_hca_grade` / :func:`gb32167_oil_hca_grade`.

    Raises
    ------
    ValueError
        If ``centreline`` is not a non-empty LineString, or as
        :func:`households_in_sliding_window`.

    Notes
    -----
    Distances are planar in one local frame at the centre of the line's bounds
    (:class:`gis.frames.LocalFrame`): for a 20 km line the scale error stays below about
    0.2 % (0.4 m on a 200 m corridor). Buildings past the ends of the line but within
    ``half_width_m`` of an end vertex count too (a conservative round cap).

    Examples
    --------
    A 5 km east-west main at 31.8° N; 120 houses 100 m north of its first 2 km, 80 houses
    300 m south (outside the corridor):

    >>> line = shapely.LineString([(117.20, 31.80), (117.2528, 31.80)])
    >>> f = LocalFrame(117.20, 31.80)
    >>> x = np.r_[np.linspace(0, 1900, 120), np.linspace(0, 1900, 80)]
    >>> y = np.r_[np.full(120, 100.0), np.full(80, -300.0)]
    >>> lon, lat = f.to_lonlat(x, y)
    >>> corridor_households(line, lon, lat).households
    120.0
    """
    if not isinstance(centreline, shapely.LineString) or centreline.is_empty:
        raise ValueError(f"centreline was {centreline!r}; expected a non-empty LineString")
    half_width = _positive("half_width_m", half_width_m)
    xmin, ymin, xmax, ymax = centreline.bounds
    frame = LocalFrame((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    line = frame.geometry_to_local(centreline)
    x, y = frame.to_local(
        np.asarray(lon_deg, dtype=np.float64).ravel(),
        np.asarray(lat_deg, dtype=np.float64).ravel(),
    )
    h = None if households is None else np.asarray(households, dtype=np.float64).ravel()
    if h is not None and h.shape != x.shape:
        raise ValueError(f"households has {h.size} values but there are {x.size} buildings")
    points: npt.NDArray[np.object_] = np.asarray(shapely.points(x, y), dtype=object)
    inside = shapely.distance(line, points) <= half_width
    chainage = shapely.line_locate_point(line, points[inside])
    w = households_in_sliding_window(chainage, None if h is None else h[inside], window_m)
    return CorridorWindow(w.households, w.start_m, w.end_m, w.window_m, half_width)


GB32167_SOURCE: Final = (
    "GB 32167-2015 油气输送管道完整性管理规范, 高后果区管段识别分级表 (grades I least … III "
    "most severe); area classes after GB 50251-2015: households within 200 m either side of "
    "the centreline in the 2 km stretch holding the most"
)
_GRADE_RANK: Final = {"I": 1, "II": 2, "III": 3}


def _graded(hits: list[tuple[str, str]], source: str, notes: tuple[str, ...]) -> HcaResult:
    if not hits:
        return HcaResult(False, None, ("no identification item met",), source, notes)
    grade = max((g for g, _ in hits), key=_GRADE_RANK.__getitem__)
    return HcaResult(True, grade, tuple(f"grade {g}: {why}" for g, why in hits), source, notes)


def gb32167_gas_hca_grade(
    max_households_2km: float,
    *,
    four_storey_buildings_prevalent: bool = False,
    households_threshold: float = 100.0,
) -> HcaResult:
    """GB 32167-2015 high-consequence-area grade of a gas-pipeline stretch (items a and b).

    Parameters
    ----------
    max_households_2km : float
        Households within 200 m of the centreline in its most crowded 2 km
        (:func:`corridor_households`), >= 0.
    four_storey_buildings_prevalent : bool, default False
        Whether buildings of four or more storeys prevail, with heavy traffic and many
        underground services (the class-4 area of GB 50251-2015).
    households_threshold : float, default 100
        Households that make a class-3 area (GB 50251-2015: 100 or more).

    Returns
    -------
    HcaResult
        Grade ``"III"`` for a class-4 area (gas item a), ``"II"`` for a class-3 area
        (gas item b), else not an HCA on these items.

    Raises
    ------
    ValueError
        If a count is negative or not finite.

    Notes
    -----
    Items c–f of the gas table (identified sites within the PIR or within 200 m; filling
    stations and oil depots within 200 m) are not graded here: the one copy of the table
    read could not be checked against the standard's text. Use
    :func:`high_consequence_area` for identified sites. "Roads or railways within 50 m" is
    an oil-pipeline item (oil item d), not a gas one: see :func:`gb32167_oil_hca_grade`.

    Examples
    --------
    >>> gb32167_gas_hca_grade(140).grade
    'II'
    >>> gb32167_gas_hca_grade(140, four_storey_buildings_prevalent=True).grade
    'III'
    >>> gb32167_gas_hca_grade(99).is_hca
    False
    """
    n = _nonnegative("max_households_2km", max_households_2km)
    threshold = _positive("households_threshold", households_threshold)
    hits = []
    if four_storey_buildings_prevalent:
        hits.append(("III", "class-4 area: buildings of 4+ storeys prevail (gas item a)"))
    if n >= threshold:
        hits.append(
            (
                "II",
                f"class-3 area: {n:g} households in 2 km within 200 m (>= {threshold:g}; "
                "gas item b)",
            )
        )
    notes = (
        "gas items c-f (identified sites within the PIR or 200 m; filling stations and depots "
        "within 200 m) not graded: the table copy read could not be checked against the "
        "standard; see high_consequence_area() for identified sites",
    )
    return _graded(hits, GB32167_SOURCE + "; gas items a, b", notes)


def gb32167_oil_hca_grade(
    max_households_2km: float,
    *,
    four_storey_buildings_prevalent: bool = False,
    village_households_within_200m: float = 0.0,
    road_rail_or_flammable_site_within_50m: bool = False,
    nature_reserve_within_200m: bool = False,
    water_source_within_200m: bool = False,
    households_threshold: float = 100.0,
    village_households_threshold: float = 50.0,
) -> HcaResult:
    """GB 32167-2015 high-consequence-area grade of an oil-pipeline stretch (items a–f).

    Parameters
    ----------
    max_households_2km : float
        Households within 200 m of the centreline in its most crowded 2 km, >= 0.
    four_storey_buildings_prevalent : bool, default False
        Buildings of 4+ storeys prevail, heavy traffic, many underground services (item a).
    village_households_within_200m : float, default 0
        Households of the largest village or town within 200 m (item c).
    road_rail_or_flammable_site_within_50m : bool, default False
        An expressway, national or provincial road, railway, or flammable or explosive site
        within 50 m (item d).
    nature_reserve_within_200m : bool, default False
        Wetland, forest, estuary or other national nature reserve within 200 m (item e).
    water_source_within_200m : bool, default False
        Drinking-water source, river or large or medium reservoir within 200 m (item f).
    households_threshold : float, default 100
        Item b's households (GB 32167-2015: 100 or more).
    village_households_threshold : float, default 50
        Item c's village households (GB 32167-2015: 50 or more).

    Returns
    -------
    HcaResult
        The highest grade met: a → III, b → II, c → II, d → I, e → II, f → III.

    Raises
    ------
    ValueError
        If a count is negative or not finite.

    Examples
    --------
    >>> gb32167_oil_hca_grade(20, road_rail_or_flammable_site_within_50m=True).grade
    'I'
    >>> gb32167_oil_hca_grade(120, water_source_within_200m=True).grade
    'III'
    """
    n = _nonnegative("max_households_2km", max_households_2km)
    village = _nonnegative("village_households_within_200m", village_households_within_200m)
    threshold = _positive("households_threshold", households_threshold)
    village_threshold = _positive("village_households_threshold", village_households_threshold)
    items = [
        (four_storey_buildings_prevalent, "III", "buildings of 4+ storeys prevail (oil item a)"),
        (
            n >= threshold,
            "II",
            f"{n:g} households in 2 km within 200 m (>= {threshold:g}; oil item b)",
        ),
        (
            village >= village_threshold,
            "II",
            f"village of {village:g} households within 200 m (>= {village_threshold:g}; "
            "oil item c)",
        ),
        (
            road_rail_or_flammable_site_within_50m,
            "I",
            "road, railway or flammable site within 50 m (oil item d)",
        ),
        (nature_reserve_within_200m, "II", "nature reserve within 200 m (oil item e)"),
        (
            water_source_within_200m,
            "III",
            "water source, river or reservoir within 200 m (oil item f)",
        ),
    ]
    hits = [(grade, why) for met, grade, why in items if met]
    return _graded(hits, GB32167_SOURCE + "; oil items a-f", ())


# --- fuels --------------------------------------------------------------------------------

R_J_MOL_K: Final = 8.314462618  # molar gas constant (SI 2019, exact)


@dataclass(frozen=True)
class Fuel:
    """A flammable gas: what the explosion and jet-fire models need of it.

    Attributes
    ----------
    name, formula : str
    heat_of_combustion_mj_kg : float
        Lower heating value (water as vapour), MJ/kg.
    molar_mass_kg_mol : float
        From IUPAC standard atomic weights (C 12.011, H 1.008 g/mol), kg/mol.
    heat_capacity_ratio : float
        γ = cp/cv of the gas near 15 °C and 1 atm.
    source : str
        Where both numbers come from, with the cross-check made.
    """

    name: str
    formula: str
    heat_of_combustion_mj_kg: float
    molar_mass_kg_mol: float
    heat_capacity_ratio: float
    source: str


def _hydrocarbon(name: str, c: int, h: int, lhv_mj_kg: float, gamma: float, source: str) -> Fuel:
    formula = (f"C{c if c > 1 else ''}" if c else "") + f"H{h}"
    return Fuel(name, formula, lhv_mj_kg, (12.011 * c + 1.008 * h) / 1000.0, gamma, source)


# γ: "cp/cv, ratios of specific heats of gases at 1 atm" (handbook table at 15 °C), and
# Lange's Handbook of Chemistry 10th ed. p. 1524 (CH4 1.32 at 20 °C, C3H8 1.13 at 16 °C,
# H2 1.41 at 20 °C). Menon (2005), Piping Calculations Manual, table of fuel gases: net heating
# values in Btu/lb, converted at 2.326 kJ/kg per Btu/lb (exact, International Table Btu).
FUELS: Final[Mapping[str, Fuel]] = {
    f.name: f
    for f in (
        _hydrocarbon(
            "methane", 1, 4, 50.0, 1.31,
            "LHV 50.0 MJ/kg (docs/impact-models.md; Menon 2005 net 21,433 Btu/lb = 49.9); "
            "γ 1.31 at 15 °C (cp/cv table, 1 atm)",
        ),
        _hydrocarbon(
            "propane", 3, 8, 46.4, 1.13,
            "LHV 46.4 MJ/kg (Menon 2005 net 19,770 Btu/lb = 46.0); γ 1.13 at 16 °C (Lange's "
            "Handbook 10th ed.)",
        ),
        _hydrocarbon(
            "butane", 4, 10, 45.7, 1.11,
            "LHV 45.7 MJ/kg (n-butane, NUREG-1805 FDTs fuel table, after Babrauskas); γ 1.11 "
            "is isobutane's at 15 °C (n-butane not in the table read)",
        ),
        _hydrocarbon(
            "hydrogen", 0, 2, 120.0, 1.41,
            "LHV 120.0 MJ/kg (PNNL Hydrogen Analysis Resource Center, 'Lower and Higher "
            "Heating Values of Hydrogen and Fuels': 119.96); γ 1.41 at 15-20 °C",
        ),
        _hydrocarbon(
            "ethylene", 2, 4, 47.2, 1.255,
            "LHV 47.2 MJ/kg (standard enthalpy of combustion, not cross-checked here); γ 1.255 "
            "at 15 °C (cp/cv table, 1 atm)",
        ),
        _hydrocarbon(
            "propylene", 3, 6, 45.8, 1.15,
            "LHV 45.8 MJ/kg (Menon 2005 net 19,630 Btu/lb = 45.7); γ 1.15 not cross-checked",
        ),
    )
}  # fmt: skip
_FUEL_ALIASES: Final[Mapping[str, str]] = {
    "natural gas": "methane", "ch4": "methane", "甲烷": "methane", "天然气": "methane",
    "c3h8": "propane", "丙烷": "propane",
    "n-butane": "butane", "c4h10": "butane", "丁烷": "butane",
    "h2": "hydrogen", "氢气": "hydrogen", "氢": "hydrogen",
    "ethene": "ethylene", "c2h4": "ethylene", "乙烯": "ethylene",
    "propene": "propylene", "c3h6": "propylene", "丙烯": "propylene",
}  # fmt: skip


def get_fuel(name: str) -> Fuel:
    """The :class:`Fuel` called ``name`` (case-insensitive; formulas and Chinese names too).

    Raises
    ------
    ValueError
        If the fuel is unknown; the message lists the known ones.

    Examples
    --------
    >>> get_fuel("Natural gas").heat_of_combustion_mj_kg
    50.0
    >>> round(get_fuel("丙烷").molar_mass_kg_mol, 5)
    0.0441
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    key = _FUEL_ALIASES.get(key, key)
    if key not in FUELS:
        raise ValueError(
            f"fuel was {name!r}; expected one of {sorted(FUELS)} "
            f"(or an alias: {sorted(_FUEL_ALIASES)})"
        )
    return FUELS[key]


# --- blast: TNT equivalence and Kingery-Bulmash -------------------------------------------

#: TNT blast energy, MJ/kg: docs/impact-models.md (≈ 1,120 kcal/kg, the value CCPS and ALOHA
#: use for TNT equivalence). Cities may set their own.
E_TNT_MJ_KG: Final = 4.68
#: Explosion yield of an accidental vapour cloud (fraction of its heat of combustion that goes
#: into blast): 5 %, docs/impact-models.md after the ALOHA prototype notes.
VCE_YIELD_FRACTION: Final = 0.05
PSI_KPA: Final = PSI_PA / 1000.0

KB_SOURCE: Final = (
    "Kingery & Bulmash (1984) hemispherical TNT surface burst, peak incident overpressure as "
    "fitted by Swisdak (1994) 'Simplified Kingery Airblast Calculations', NSWC Indian Head "
    "(DTIC ADA526744): ln P[kPa] = A + B·lnZ + C·lnZ² + D·lnZ³ + E·lnZ⁴, "
    "Z = R/W^(1/3) in 0.2-198.5 m/kg^(1/3)"
)
#: Swisdak (1994) incident-pressure fit, metric: (Z from, Z to, (A, B, C, D, E)).
KB_PIECES: Final = (
    (0.2, 2.9, (7.2106, -2.1069, -0.3229, 0.1117, 0.0685)),
    (2.9, 23.8, (7.5938, -3.0523, 0.40977, 0.0261, -0.01267)),
    (23.8, 198.5, (6.0536, -1.4066, 0.0, 0.0, 0.0)),
)
KB_Z_MIN: Final = KB_PIECES[0][0]
KB_Z_MAX: Final = KB_PIECES[-1][1]

#: ALOHA's default overpressure levels of concern (docs/impact-models.md), kPa → label.
OVERPRESSURE_LABELS: Final[Mapping[float, str]] = {
    55.2: "8 psi (55.2 kPa): destruction of buildings",
    24.1: "3.5 psi (24.1 kPa): serious injury likely",
    6.9: "1 psi (6.9 kPa): shatters glass",
}
DEFAULT_THRESHOLDS_KPA: Final = tuple(OVERPRESSURE_LABELS)

#: Damage at a peak incident overpressure (Clancey 1972, as quoted in docs/impact-models.md
#: for 2.07, 6.9, 13.8, 68.9 kPa and in the usual damage tables for 17.2, 20.7, 34.5 kPa):
#: (from kPa, what happens at and above it), ascending.
CLANCEY_DAMAGE: Final = (
    (2.07, "'safe distance' (Clancey): below it no serious structural damage expected"),
    (6.9, "houses partly demolished, made uninhabitable"),
    (13.8, "walls and roofs of houses partly collapse"),
    (17.2, "50 % destruction of the brickwork of houses"),
    (20.7, "steel-frame buildings distorted and pulled away from their foundations"),
    (34.5, "wooden utility poles snapped; houses nearly completely destroyed (34.5-48.2 kPa)"),
    (68.9, "probable total destruction of buildings"),
)


def overpressure_damage(overpressure_kpa: float) -> str:
    """What a peak incident overpressure does to buildings, on Clancey's (1972) ladder.

    Parameters
    ----------
    overpressure_kpa : float
        Peak incident (side-on) overpressure, kPa (>= 0).

    Returns
    -------
    str
        The highest rung of :data:`CLANCEY_DAMAGE` at or below the overpressure.

    Examples
    --------
    >>> overpressure_damage(15.0)
    'walls and roofs of houses partly collapse'
    >>> overpressure_damage(1.0)
    "below 2.07 kPa, Clancey's 'safe distance'"
    """
    p = _nonnegative("overpressure_kpa", overpressure_kpa)
    label = "below 2.07 kPa, Clancey's 'safe distance'"
    for lower_kpa, what in CLANCEY_DAMAGE:
        if p >= lower_kpa:
            label = what
    return label


def tnt_equivalence_kg(
    mass_kg: float,
    fuel: str = "methane",
    *,
    yield_fraction: float = VCE_YIELD_FRACTION,
    e_tnt_mj_kg: float = E_TNT_MJ_KG,
    heat_of_combustion_mj_kg: float | None = None,
) -> float:
    """TNT equivalent of a flammable vapour cloud: W = η · m · ΔH_c / E_TNT.

    Parameters
    ----------
    mass_kg : float
        Flammable mass in the cloud, kg (> 0).
    fuel : str, default "methane"
        A :data:`FUELS` name or alias, for ΔH_c.
    yield_fraction : float, default 0.05
        η, the explosion yield (0, 1]: 5 % for accidental vapour clouds
        (docs/impact-models.md, after the ALOHA prototype notes).
    e_tnt_mj_kg : float, default 4.68
        TNT blast energy, MJ/kg (docs/impact-models.md).
    heat_of_combustion_mj_kg : float, optional
        ΔH_c in MJ/kg, overriding the fuel table.

    Returns
    -------
    float
        TNT mass, kg.

    Raises
    ------
    ValueError
        On a non-positive or non-finite number, η > 1, or an unknown fuel.

    Examples
    --------
    One tonne of methane at η = 5 % (docs/impact-models.md: W ≈ 534 kg):

    >>> round(tnt_equivalence_kg(1000.0, "methane"))
    534
    """
    m = _positive("mass_kg", mass_kg)
    eta = _fraction("yield_fraction", yield_fraction)
    e_tnt = _positive("e_tnt_mj_kg", e_tnt_mj_kg)
    hc = (
        get_fuel(fuel).heat_of_combustion_mj_kg
        if heat_of_combustion_mj_kg is None
        else _positive("heat_of_combustion_mj_kg", heat_of_combustion_mj_kg)
    )
    return eta * m * hc / e_tnt


def _kb_ln_p(ln_z: FloatArray, piece: int) -> FloatArray:
    """ln P [kPa] of one piece of the Swisdak fit at ln Z."""
    coeffs = KB_PIECES[piece][2]
    return np.asarray(np.polynomial.polynomial.polyval(ln_z, coeffs), dtype=np.float64)


#: Overpressure range the fit covers (at Z = 198.5 and Z = 0.2), kPa.
KB_P_MIN_KPA: Final = float(np.exp(_kb_ln_p(np.array(math.log(KB_Z_MAX)), 2)))
KB_P_MAX_KPA: Final = float(np.exp(_kb_ln_p(np.array(math.log(KB_Z_MIN)), 0)))


@overload
def kb_overpressure_kpa(scaled_distance_m_kg13: float, *, out_of_range: str = ...) -> float: ...
@overload
def kb_overpressure_kpa(
    scaled_distance_m_kg13: npt.ArrayLike, *, out_of_range: str = ...
) -> FloatArray: ...
def kb_overpressure_kpa(
    scaled_distance_m_kg13: ArrayLike, *, out_of_range: str = "raise"
) -> float | FloatArray:
    """Peak incident overpressure of a hemispherical TNT surface burst (Kingery–Bulmash).

    Parameters
    ----------
    scaled_distance_m_kg13 : float or array_like
        Z = R / W^(1/3), m/kg^(1/3).
    out_of_range : {"raise", "nan"}, default "raise"
        What to do with Z outside the fit's 0.2–198.5 m/kg^(1/3): refuse, or return NaN
        there (for evaluating many assets at once, where the far ones are simply unaffected).

    Returns
    -------
    float or ndarray
        Overpressure, kPa.

    Raises
    ------
    ValueError
        If a Z is not finite or outside 0.2–198.5 and ``out_of_range="raise"``.

    Notes
    -----
    Swisdak (1994), DTIC ADA526744, metric incident-pressure fit in three pieces (Z ≤ 2.9,
    2.9 < Z ≤ 23.8, Z > 23.8). Each piece decreases monotonically; at Z = 2.9 the fit steps
    down 0.04 % and at Z = 23.8 it steps *up* 0.7 % (4.89 → 4.93 kPa), as published.

    Examples
    --------
    The worked values of docs/impact-models.md:

    >>> [round(kb_overpressure_kpa(z), 1) for z in (3, 5, 10, 20, 40)]
    [115.7, 43.2, 14.9, 6.1, 2.4]
    """
    if out_of_range not in ("raise", "nan"):
        raise ValueError(f"out_of_range was {out_of_range!r}; expected 'raise' or 'nan'")
    z = np.asarray(scaled_distance_m_kg13, dtype=np.float64)
    bad = ~np.isfinite(z) | (z < KB_Z_MIN) | (z > KB_Z_MAX)
    if out_of_range == "raise" and np.any(bad):
        raise ValueError(
            f"scaled_distance_m_kg13 was {scaled_distance_m_kg13!r}; expected finite values in "
            f"{KB_Z_MIN}-{KB_Z_MAX} m/kg^(1/3), the range of the Kingery-Bulmash fit "
            "(Swisdak 1994)"
        )
    ln_z = np.log(np.where(bad, 1.0, z))
    piece = np.where(z <= KB_PIECES[0][1], 0, np.where(z <= KB_PIECES[1][1], 1, 2))
    ln_p = np.choose(piece, [_kb_ln_p(ln_z, k) for k in range(3)])
    p = np.where(bad, np.nan, np.exp(ln_p))
    return float(p) if p.ndim == 0 else p


@overload
def kb_scaled_distance(overpressure_kpa: float) -> float: ...
@overload
def kb_scaled_distance(overpressure_kpa: npt.ArrayLike) -> FloatArray: ...
def kb_scaled_distance(overpressure_kpa: ArrayLike) -> float | FloatArray:
    """Scaled distance Z at which the Kingery–Bulmash overpressure falls to a threshold.

    Parameters
    ----------
    overpressure_kpa : float or array_like
        Peak incident overpressure thresholds, kPa, within the fit's range
        (:data:`KB_P_MIN_KPA` ≈ 0.249 to :data:`KB_P_MAX_KPA` ≈ 17,300 kPa).

    Returns
    -------
    float or ndarray
        Z, m/kg^(1/3); the radius is Z · W^(1/3).

    Raises
    ------
    ValueError
        If a threshold is not finite or outside the fit's range.

    Notes
    -----
    The inverse of :func:`kb_overpressure_kpa`, solved by bisection in ln Z on each of the
    three monotone pieces (60 halvings: far below float precision; no scipy). Where the
    published fit steps up at Z = 23.8, a threshold in 4.89–4.93 kPa is met on both sides;
    the farther Z is returned, the conservative radius.

    Examples
    --------
    ALOHA's 8 / 3.5 / 1 psi thresholds (docs/impact-models.md: Z ≈ 4.36, 7.15, 18.1):

    >>> [round(kb_scaled_distance(p), 2) for p in (55.2, 24.1, 6.9)]
    [4.36, 7.16, 18.13]
    """
    p = np.asarray(overpressure_kpa, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < KB_P_MIN_KPA) or np.any(p > KB_P_MAX_KPA):
        raise ValueError(
            f"overpressure_kpa was {overpressure_kpa!r}; expected finite thresholds in "
            f"{KB_P_MIN_KPA:.3f}-{KB_P_MAX_KPA:.0f} kPa, the range of the Kingery-Bulmash fit "
            f"(Z = {KB_Z_MIN}-{KB_Z_MAX} m/kg^(1/3), Swisdak 1994)"
        )
    ln_p = np.log(p)
    best = np.full(p.shape, -np.inf)
    for k, (z_lo, z_hi, _) in enumerate(KB_PIECES):
        a = np.full(p.shape, math.log(z_lo))
        b = np.full(p.shape, math.log(z_hi))
        # Decreasing piece: a root exists where P(hi) <= p <= P(lo).
        has_root = (_kb_ln_p(b, k) <= ln_p) & (ln_p <= _kb_ln_p(a, k))
        for _ in range(60):
            mid = (a + b) / 2.0
            right = _kb_ln_p(mid, k) > ln_p  # still above the threshold: the root is farther
            a = np.where(right, mid, a)
            b = np.where(right, b, mid)
        best = np.where(has_root, np.maximum(best, np.exp((a + b) / 2.0)), best)
    return float(best) if best.ndim == 0 else best


def _overpressure_label(p_kpa: float) -> str:
    for level, label in OVERPRESSURE_LABELS.items():
        if abs(p_kpa - level) < 0.05:
            return label
    return f"{p_kpa:g} kPa ({p_kpa / PSI_KPA:.2g} psi): {overpressure_damage(p_kpa)}"


def vapour_cloud_explosion(
    mass_kg: float | None = None,
    fuel: str = "methane",
    *,
    yield_fraction: float = VCE_YIELD_FRACTION,
    e_tnt_mj_kg: float = E_TNT_MJ_KG,
    tnt_equivalent_kg: float | None = None,
    thresholds_kpa: Sequence[float] = DEFAULT_THRESHOLDS_KPA,
) -> ConsequenceResult:
    """Overpressure rings of a vapour-cloud explosion: TNT equivalence and Kingery–Bulmash.

    Parameters
    ----------
    mass_kg : float, optional
        Flammable mass in the cloud, kg (> 0). Give this or ``tnt_equivalent_kg``.
    fuel : str, default "methane"
        A :data:`FUELS` name or alias (methane, propane, butane, hydrogen, ethylene,
        propylene; "natural gas", "天然气" …).
    yield_fraction : float, default 0.05
        Explosion yield η (docs/impact-models.md).
    e_tnt_mj_kg : float, default 4.68
        TNT blast energy, MJ/kg (docs/impact-models.md).
    tnt_equivalent_kg : float, optional
        The TNT mass directly, kg, instead of ``mass_kg``.
    thresholds_kpa : sequence of float, default (55.2, 24.1, 6.9)
        Peak incident overpressures to draw, kPa: ALOHA's 8, 3.5 and 1 psi levels of concern.

    Returns
    -------
    ConsequenceResult
        ``model="vce_tnt_kingery_bulmash"``; per ring the radius (m), overpressure (kPa and
        psi) and scaled distance (m/kg^(1/3)).

    Raises
    ------
    ValueError
        If both or neither of ``mass_kg`` and ``tnt_equivalent_kg`` are given, on bad numbers,
        an unknown fuel, or a threshold outside the fit's range.

    Notes
    -----
    W = η · m · ΔH_c / E_TNT, then R = Z(p) · W^(1/3) with Z(p) from :func:`kb_scaled_distance`
    (Swisdak 1994). TNT equivalence treats the cloud as a point charge on the ground: it says
    nothing inside the cloud, and a congested or confined cloud (a culvert, a basement, a
    market hall) can yield far more than 5 % — multi-energy or Baker-Strehlow-Tang methods.

    Examples
    --------
    One tonne of methane (docs/impact-models.md: radii ≈ 35, 58, 147 m):

    >>> r = vapour_cloud_explosion(1000.0, "methane")
    >>> [round(ring.radius_m) for ring in r.rings]
    [35, 58, 147]
    >>> r.rings[0].label
    '8 psi (55.2 kPa): destruction of buildings'
    """
    if (mass_kg is None) == (tnt_equivalent_kg is None):
        raise ValueError(
            f"mass_kg was {mass_kg!r} and tnt_equivalent_kg was {tnt_equivalent_kg!r}; "
            "expected exactly one of them"
        )
    thresholds = _thresholds("thresholds_kpa", thresholds_kpa)
    inputs: dict[str, tuple[float | str, str]] = {}
    if tnt_equivalent_kg is not None:
        w = _positive("tnt_equivalent_kg", tnt_equivalent_kg)
        source = KB_SOURCE + "; TNT mass given"
    else:
        f = get_fuel(fuel)
        m = _positive("mass_kg", mass_kg)
        w = tnt_equivalence_kg(m, f.name, yield_fraction=yield_fraction, e_tnt_mj_kg=e_tnt_mj_kg)
        inputs |= {
            "mass_kg": (m, "kg"),
            "fuel": (f.name, ""),
            "heat_of_combustion_mj_kg": (f.heat_of_combustion_mj_kg, "MJ/kg"),
            "yield_fraction": (float(yield_fraction), "1"),
            "e_tnt_mj_kg": (float(e_tnt_mj_kg), "MJ/kg"),
        }
        source = (
            "TNT equivalence W = η·m·ΔH_c/E_TNT (η 5 %, E_TNT 4.68 MJ/kg defaults: "
            f"docs/impact-models.md; ΔH_c: {f.source}); " + KB_SOURCE
        )
    inputs["tnt_equivalent_kg"] = (w, "kg")
    z = np.atleast_1d(kb_scaled_distance(thresholds))
    cube_root_w = w ** (1.0 / 3.0)
    rings = tuple(
        Ring(
            label=_overpressure_label(p),
            threshold=p,
            threshold_unit="kPa",
            radius_m=float(zk) * cube_root_w,
            values={
                "overpressure_kpa": p,
                "overpressure_psi": p / PSI_KPA,
                "scaled_distance_m_kg13": float(zk),
            },
        )
        for p, zk in zip(thresholds, z, strict=True)
    )
    return ConsequenceResult(
        model="vce_tnt_kingery_bulmash",
        source=source,
        inputs=inputs,
        rings=rings,
        notes=(
            "hemispherical TNT surface burst at the cloud centre: a far-field estimate, "
            "silent inside the cloud",
            "η = 5 % is for an open cloud; congestion or confinement (culverts, basements, "
            "halls) can raise it several-fold",
            f"fit range Z = {KB_Z_MIN}-{KB_Z_MAX} m/kg^(1/3) (Swisdak 1994)",
        ),
    )


# --- fire: point-source thermal radiation -------------------------------------------------

#: ALOHA's default thermal-radiation levels of concern (docs/impact-models.md), kW/m² → label.
THERMAL_LABELS: Final[Mapping[float, str]] = {
    10.0: "10 kW/m2: potentially lethal within 60 s",
    5.0: "5 kW/m2: second-degree burns within 60 s",
    2.0: "2 kW/m2: pain within 60 s",
}
DEFAULT_THRESHOLDS_KW_M2: Final = tuple(THERMAL_LABELS)
#: Radiant fraction of a gas jet fire: 0.2, the docs/impact-models.md worked example.
JET_FIRE_RADIANT_FRACTION: Final = 0.2
#: Radiant fraction of a pool fire: 0.30, the NUREG-1805 FDT 05.1 (point-source) default χr.
POOL_FIRE_RADIANT_FRACTION: Final = 0.30
#: ISO 13443 standard reference conditions for natural gas: 15 °C, 101.325 kPa.
REFERENCE_TEMPERATURE_K: Final = 288.15
ATMOSPHERE_KPA: Final = 101.325

POINT_SOURCE_SOURCE: Final = (
    "point-source radiation q(r) = X_r·Q/(4π·r²), Q = ṁ·ΔH_c (NUREG-1805 (2004) ch. 5 point "
    "source model; docs/impact-models.md)"
)
ORIFICE_SOURCE: Final = (
    "isentropic ideal-gas flow through a hole: choked ṁ = C_d·A·p0·√(γ·M/(R·T0)·"
    "(2/(γ+1))^((γ+1)/(γ-1))) while p_a/p0 ≤ (2/(γ+1))^(γ/(γ-1)), else the subsonic "
    "orifice equation (compressible-flow textbooks, e.g. Crowl & Louvar, Chemical Process "
    "Safety, ch. 4)"
)


@overload
def point_source_heat_flux_kw_m2(
    distance_m: float, heat_release_rate_kw: float, radiant_fraction: float
) -> float: ...
@overload
def point_source_heat_flux_kw_m2(
    distance_m: npt.ArrayLike, heat_release_rate_kw: float, radiant_fraction: float
) -> FloatArray: ...
def point_source_heat_flux_kw_m2(
    distance_m: ArrayLike, heat_release_rate_kw: float, radiant_fraction: float
) -> float | FloatArray:
    """Radiant heat flux at a distance from a point-source fire: X_r · Q / (4π r²).

    Parameters
    ----------
    distance_m : float or array_like
        Distance from the fire, metres (> 0).
    heat_release_rate_kw : float
        Q = ṁ · ΔH_c, kW (> 0).
    radiant_fraction : float
        X_r, the fraction of Q radiated, (0, 1].

    Returns
    -------
    float or ndarray
        Heat flux, kW/m².

    Raises
    ------
    ValueError
        On a distance <= 0 or non-finite input.

    Examples
    --------
    >>> round(point_source_heat_flux_kw_m2(28.2, 500_000.0, 0.2), 2)
    10.01
    """
    q = _positive("heat_release_rate_kw", heat_release_rate_kw)
    x = _fraction("radiant_fraction", radiant_fraction)
    r = np.asarray(distance_m, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"distance_m was {distance_m!r}; expected finite distances > 0")
    flux = x * q / (4.0 * math.pi * r * r)
    return float(flux) if flux.ndim == 0 else flux


@overload
def point_source_radius_m(
    heat_flux_kw_m2: float, heat_release_rate_kw: float, radiant_fraction: float
) -> float: ...
@overload
def point_source_radius_m(
    heat_flux_kw_m2: npt.ArrayLike, heat_release_rate_kw: float, radiant_fraction: float
) -> FloatArray: ...
def point_source_radius_m(
    heat_flux_kw_m2: ArrayLike, heat_release_rate_kw: float, radiant_fraction: float
) -> float | FloatArray:
    """Distance at which a point-source fire's heat flux falls to a threshold.

    r = √(X_r · Q / (4π · q)), the inverse of :func:`point_source_heat_flux_kw_m2`.

    Parameters
    ----------
    heat_flux_kw_m2 : float or array_like
        Threshold heat flux, kW/m² (> 0).
    heat_release_rate_kw : float
        Q, kW (> 0).
    radiant_fraction : float
        X_r, (0, 1].

    Returns
    -------
    float or ndarray
        Radius, metres.

    Raises
    ------
    ValueError
        On a threshold <= 0 or non-finite input.

    Examples
    --------
    The methane jet of docs/impact-models.md (10 kg/s · 50 MJ/kg, X_r = 0.2):

    >>> [round(point_source_radius_m(q, 500_000.0, 0.2)) for q in (10, 5, 2)]
    [28, 40, 63]
    """
    q = _positive("heat_release_rate_kw", heat_release_rate_kw)
    x = _fraction("radiant_fraction", radiant_fraction)
    flux = np.asarray(heat_flux_kw_m2, dtype=np.float64)
    if not np.all(np.isfinite(flux)) or np.any(flux <= 0):
        raise ValueError(f"heat_flux_kw_m2 was {heat_flux_kw_m2!r}; expected finite values > 0")
    r = np.sqrt(x * q / (4.0 * math.pi * flux))
    return float(r) if r.ndim == 0 else r


@dataclass(frozen=True)
class GasRelease:
    """Mass flow of a gas escaping through a hole (:func:`gas_orifice_release`).

    Attributes
    ----------
    mass_rate_kg_s : float
        Release rate, kg/s.
    is_choked : bool
        Whether the flow is sonic at the hole (then it does not depend on the outside
        pressure).
    upstream_pressure_kpa : float
        Absolute pressure behind the hole, kPa.
    source : str
        The equation used.
    """

    mass_rate_kg_s: float
    is_choked: bool
    upstream_pressure_kpa: float
    source: str


def gas_orifice_release(
    hole_diameter_mm: float,
    pressure_mpa: float,
    fuel: str = "methane",
    *,
    temperature_k: float = REFERENCE_TEMPERATURE_K,
    discharge_coefficient: float = 1.0,
    ambient_pressure_kpa: float = ATMOSPHERE_KPA,
) -> GasRelease:
    """Initial release rate of an ideal gas through a hole in a pressurised line.

    Parameters
    ----------
    hole_diameter_mm : float
        Hole diameter, mm (> 0); the bore for a full-bore rupture.
    pressure_mpa : float
        Line pressure, MPa gauge (> 0).
    fuel : str, default "methane"
        A :data:`FUELS` name or alias, for γ and the molar mass.
    temperature_k : float, default 288.15
        Gas temperature, K (ISO 13443 reference temperature, 15 °C).
    discharge_coefficient : float, default 1.0
        C_d in (0, 1]: 1.0 is the ideal nozzle, an upper bound on the flow (C_d ≤ 1 by
        definition), the cautious choice for emergency planning; a sharp-edged hole passes
        about 0.6 of it.
    ambient_pressure_kpa : float, default 101.325
        Outside pressure, kPa absolute (ISO 13443 reference pressure).

    Returns
    -------
    GasRelease
        The mass rate, whether the flow is choked, and the source.

    Raises
    ------
    ValueError
        On a non-positive or non-finite number, C_d > 1, or an unknown fuel.

    Notes
    -----
    Isentropic flow of an ideal gas from a reservoir at rest through the hole (the line
    behind a small hole is taken as the reservoir). Choked when p_a/p0 is below the
    critical ratio (2/(γ+1))^(γ/(γ-1)), 0.54 for methane: any line above about 85 kPa
    gauge. A full-bore rupture's flow falls quickly as the line depressurises, so this
    initial rate gives the largest rings.

    Examples
    --------
    A 50 mm hole in a 0.4 MPa (gauge) methane main:

    >>> rel = gas_orifice_release(50.0, 0.4, "methane")
    >>> round(rel.mass_rate_kg_s, 2), rel.is_choked
    (1.7, True)
    """
    f = get_fuel(fuel)
    d = _positive("hole_diameter_mm", hole_diameter_mm) / 1000.0
    p_gauge = _positive("pressure_mpa", pressure_mpa) * 1e6
    t = _positive("temperature_k", temperature_k)
    cd = _fraction("discharge_coefficient", discharge_coefficient)
    pa = _positive("ambient_pressure_kpa", ambient_pressure_kpa) * 1000.0
    gamma, m_kg_mol = f.heat_capacity_ratio, f.molar_mass_kg_mol
    p0 = p_gauge + pa
    area = math.pi * d * d / 4.0
    ratio = pa / p0
    critical = (2.0 / (gamma + 1.0)) ** (gamma / (gamma - 1.0))
    is_choked = ratio <= critical
    if is_choked:
        flux = p0 * math.sqrt(
            gamma * m_kg_mol / (R_J_MOL_K * t)
            * (2.0 / (gamma + 1.0)) ** ((gamma + 1.0) / (gamma - 1.0))
        )  # fmt: skip
    else:
        flux = p0 * math.sqrt(
            2.0 * m_kg_mol / (R_J_MOL_K * t) * gamma / (gamma - 1.0)
            * (ratio ** (2.0 / gamma) - ratio ** ((gamma + 1.0) / gamma))
        )  # fmt: skip
    return GasRelease(cd * area * flux, is_choked, p0 / 1000.0, ORIFICE_SOURCE)


def _thermal_rings(
    thresholds: tuple[float, ...], heat_release_rate_kw: float, radiant_fraction: float
) -> tuple[Ring, ...]:
    radii = np.atleast_1d(point_source_radius_m(thresholds, heat_release_rate_kw, radiant_fraction))
    return tuple(
        Ring(
            label=next(
                (lab for lvl, lab in THERMAL_LABELS.items() if abs(q - lvl) < 0.05),
                f"{q:g} kW/m2",
            ),
            threshold=q,
            threshold_unit="kW/m2",
            radius_m=float(r),
            values={"heat_flux_kw_m2": q},
        )
        for q, r in zip(thresholds, radii, strict=True)
    )


def jet_fire(
    mass_rate_kg_s: float | None = None,
    fuel: str = "methane",
    *,
    hole_diameter_mm: float | None = None,
    pressure_mpa: float | None = None,
    temperature_k: float = REFERENCE_TEMPERATURE_K,
    discharge_coefficient: float = 1.0,
    radiant_fraction: float = JET_FIRE_RADIANT_FRACTION,
    heat_of_combustion_mj_kg: float | None = None,
    thresholds_kw_m2: Sequence[float] = DEFAULT_THRESHOLDS_KW_M2,
) -> ConsequenceResult:
    """Heat-flux rings of a gas jet fire, from its release rate or from a hole in a line.

    Parameters
    ----------
    mass_rate_kg_s : float, optional
        Release rate, kg/s. Give this, or ``hole_diameter_mm`` with ``pressure_mpa``.
    fuel : str, default "methane"
        A :data:`FUELS` name or alias ("natural gas", "天然气" …).
    hole_diameter_mm, pressure_mpa : float, optional
        Hole diameter (mm) and line pressure (MPa gauge): the rate then comes from
        :func:`gas_orifice_release` (useful for a ruptured gas main).
    temperature_k : float, default 288.15
        Gas temperature for the orifice equation, K (ISO 13443 reference).
    discharge_coefficient : float, default 1.0
        C_d for the orifice equation (see :func:`gas_orifice_release`).
    radiant_fraction : float, default 0.2
        X_r (docs/impact-models.md worked example).
    heat_of_combustion_mj_kg : float, optional
        ΔH_c in MJ/kg, overriding the fuel table.
    thresholds_kw_m2 : sequence of float, default (10, 5, 2)
        Heat fluxes to draw, kW/m²: ALOHA's 60-s levels of concern.

    Returns
    -------
    ConsequenceResult
        ``model="jet_fire_point_source"``, one ring per threshold.

    Raises
    ------
    ValueError
        If neither or both ways of giving the rate are used, or on bad numbers.

    Notes
    -----
    A point source at the release point: a real jet flame is tens of metres long and
    radiates from its whole length, so the point source underestimates close in and along
    the jet's axis, and is a far-field estimate only.

    Examples
    --------
    The methane jet of docs/impact-models.md (ṁ = 10 kg/s, X_r = 0.2, ΔH_c = 50 MJ/kg):

    >>> [round(r.radius_m) for r in jet_fire(10.0, "methane").rings]
    [28, 40, 63]
    """
    thresholds = _thresholds("thresholds_kw_m2", thresholds_kw_m2)
    f = get_fuel(fuel)
    from_hole = hole_diameter_mm is not None or pressure_mpa is not None
    if (mass_rate_kg_s is not None) == from_hole:
        raise ValueError(
            f"mass_rate_kg_s was {mass_rate_kg_s!r}, hole_diameter_mm {hole_diameter_mm!r}, "
            f"pressure_mpa {pressure_mpa!r}; expected either mass_rate_kg_s or both "
            "hole_diameter_mm and pressure_mpa"
        )
    inputs: dict[str, tuple[float | str, str]] = {}
    source = POINT_SOURCE_SOURCE
    if mass_rate_kg_s is None:
        if hole_diameter_mm is None or pressure_mpa is None:
            raise ValueError(
                f"hole_diameter_mm was {hole_diameter_mm!r} and pressure_mpa {pressure_mpa!r}; "
                "expected both to compute the release rate"
            )
        rel = gas_orifice_release(
            hole_diameter_mm,
            pressure_mpa,
            f.name,
            temperature_k=temperature_k,
            discharge_coefficient=discharge_coefficient,
        )
        rate = rel.mass_rate_kg_s
        inputs |= {
            "hole_diameter_mm": (float(hole_diameter_mm), "mm"),
            "pressure_mpa": (float(pressure_mpa), "MPa (gauge)"),
            "temperature_k": (float(temperature_k), "K"),
            "discharge_coefficient": (float(discharge_coefficient), "1"),
            "flow": ("choked" if rel.is_choked else "subsonic", ""),
        }
        source = f"{rel.source}; {source}"
    else:
        rate = _positive("mass_rate_kg_s", mass_rate_kg_s)
    hc = (
        f.heat_of_combustion_mj_kg
        if heat_of_combustion_mj_kg is None
        else _positive("heat_of_combustion_mj_kg", heat_of_combustion_mj_kg)
    )
    x = _fraction("radiant_fraction", radiant_fraction)
    q_kw = rate * hc * 1000.0
    inputs |= {
        "mass_rate_kg_s": (rate, "kg/s"),
        "fuel": (f.name, ""),
        "heat_of_combustion_mj_kg": (hc, "MJ/kg"),
        "radiant_fraction": (x, "1"),
        "heat_release_rate_kw": (q_kw, "kW"),
    }
    return ConsequenceResult(
        model="jet_fire_point_source",
        source=f"{source}; ΔH_c: {f.source}" if heat_of_combustion_mj_kg is None else source,
        inputs=inputs,
        rings=_thermal_rings(thresholds, q_kw, x),
        notes=(
            "point source at the release: underestimates close in and along the jet axis",
            "steady rate: a ruptured main depressurises, so its initial rate gives the "
            "largest rings",
        ),
    )


@dataclass(frozen=True)
class PoolFuel:
    """Burning-rate data of a liquid fuel for :func:`pool_fire`.

    Attributes
    ----------
    name : str
    mass_burning_rate_kg_m2_s : float
        m''∞, the large-pool mass burning rate, kg/(m²·s).
    heat_of_combustion_mj_kg : float
        Effective heat of combustion, MJ/kg.
    k_beta_per_m : float
        kβ, the empirical constant of m'' = m''∞ (1 − e^(−kβ·D)), 1/m.
    """

    name: str
    mass_burning_rate_kg_m2_s: float
    heat_of_combustion_mj_kg: float
    k_beta_per_m: float


POOL_FIRE_SOURCE: Final = (
    "large-pool burning rates m'' = m''∞·(1 − e^(−kβ·D)) of Babrauskas (1983), Fire "
    "Technology 19, doi:10.1007/BF02380810, as tabulated in NUREG-1805 (2004) FDTs ch. 3/5 "
    "('burning rate data for fuels', after the SFPE Handbook)"
)
#: NUREG-1805 FDT fuel table (m''∞ kg/m²s, ΔH_c,eff MJ/kg, kβ 1/m). LNG and LPG are in the
#: book's table too but were cut from the copy read, so they are not listed here.
POOL_FUELS: Final[Mapping[str, PoolFuel]] = {
    f.name: f
    for f in (
        PoolFuel("methanol", 0.017, 20.0, 100.0),
        PoolFuel("ethanol", 0.015, 26.8, 100.0),
        PoolFuel("butane", 0.078, 45.7, 2.7),
        PoolFuel("benzene", 0.085, 40.1, 2.7),
        PoolFuel("hexane", 0.074, 44.7, 1.9),
        PoolFuel("heptane", 0.101, 44.6, 1.1),
        PoolFuel("xylene", 0.090, 40.8, 1.4),
        PoolFuel("acetone", 0.041, 25.8, 1.9),
        PoolFuel("gasoline", 0.055, 43.7, 2.1),
        PoolFuel("kerosene", 0.039, 43.2, 3.5),
        PoolFuel("diesel", 0.045, 44.4, 2.1),
        PoolFuel("jp-4", 0.051, 43.5, 3.6),
        PoolFuel("jp-5", 0.054, 43.0, 1.6),
    )
}
_POOL_ALIASES: Final[Mapping[str, str]] = {
    "甲醇": "methanol", "乙醇": "ethanol", "丁烷": "butane", "苯": "benzene",
    "n-hexane": "hexane", "正己烷": "hexane", "n-heptane": "heptane", "正庚烷": "heptane",
    "二甲苯": "xylene", "丙酮": "acetone", "petrol": "gasoline", "汽油": "gasoline",
    "kerosine": "kerosene", "煤油": "kerosene", "柴油": "diesel", "jet fuel": "jp-4",
}  # fmt: skip


def get_pool_fuel(name: str) -> PoolFuel:
    """The :class:`PoolFuel` called ``name`` (case-insensitive; Chinese names too).

    Raises
    ------
    ValueError
        If the fuel is unknown; the message lists the known ones.

    Examples
    --------
    >>> get_pool_fuel("汽油").mass_burning_rate_kg_m2_s
    0.055
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    key = _POOL_ALIASES.get(key, key)
    if key not in POOL_FUELS:
        raise ValueError(
            f"fuel was {name!r}; expected one of {sorted(POOL_FUELS)} "
            f"(or an alias: {sorted(_POOL_ALIASES)})"
        )
    return POOL_FUELS[key]


def pool_fire(
    pool_area_m2: float,
    fuel: str = "gasoline",
    *,
    radiant_fraction: float = POOL_FIRE_RADIANT_FRACTION,
    thresholds_kw_m2: Sequence[float] = DEFAULT_THRESHOLDS_KW_M2,
) -> ConsequenceResult:
    """Heat-flux rings of a burning liquid pool (point source).

    Parameters
    ----------
    pool_area_m2 : float
        Burning area, m² (> 0): the spill or the dike (bund) area.
    fuel : str, default "gasoline"
        A :data:`POOL_FUELS` name or alias.
    radiant_fraction : float, default 0.30
        X_r (NUREG-1805 FDT 05.1 point-source default).
    thresholds_kw_m2 : sequence of float, default (10, 5, 2)
        Heat fluxes to draw, kW/m² (ALOHA's 60-s levels of concern).

    Returns
    -------
    ConsequenceResult
        ``model="pool_fire_point_source"``, one ring per threshold; the inputs include the
        equivalent diameter and the burning rate used.

    Raises
    ------
    ValueError
        On a bad area, fraction or threshold, or an unknown fuel.

    Notes
    -----
    ṁ = m''∞ (1 − e^(−kβ·D)) · A with D = √(4A/π) the pool's equivalent diameter
    (Babrauskas 1983), Q = ṁ · ΔH_c, then the point source. Close to the flame (within a
    few pool diameters) the point source is rough; inside the pool edge it is meaningless,
    and a ring that falls there is flagged in the notes.

    Examples
    --------
    A 100 m² gasoline spill:

    >>> r = pool_fire(100.0, "gasoline")
    >>> round(r.inputs["heat_release_rate_kw"][0])
    240350
    >>> [round(ring.radius_m) for ring in r.rings]
    [24, 34, 54]
    """
    thresholds = _thresholds("thresholds_kw_m2", thresholds_kw_m2)
    f = get_pool_fuel(fuel)
    area = _positive("pool_area_m2", pool_area_m2)
    x = _fraction("radiant_fraction", radiant_fraction)
    diameter = math.sqrt(4.0 * area / math.pi)
    burning = f.mass_burning_rate_kg_m2_s * (1.0 - math.exp(-f.k_beta_per_m * diameter))
    q_kw = burning * area * f.heat_of_combustion_mj_kg * 1000.0
    rings = _thermal_rings(thresholds, q_kw, x)
    notes = ["point source at the pool centre: rough within a few pool diameters"]
    notes += [
        f"the {ring.threshold:g} kW/m2 ring ({ring.radius_m:.1f} m) falls inside the pool "
        f"edge ({diameter / 2:.1f} m): not meaningful there"
        for ring in rings
        if ring.radius_m < diameter / 2.0
    ]
    return ConsequenceResult(
        model="pool_fire_point_source",
        source=f"{POOL_FIRE_SOURCE}; {POINT_SOURCE_SOURCE}",
        inputs={
            "pool_area_m2": (area, "m2"),
            "fuel": (f.name, ""),
            "equivalent_diameter_m": (diameter, "m"),
            "mass_burning_rate_kg_m2_s": (burning, "kg/(m2·s)"),
            "heat_of_combustion_mj_kg": (f.heat_of_combustion_mj_kg, "MJ/kg"),
            "radiant_fraction": (x, "1"),
            "heat_release_rate_kw": (q_kw, "kW"),
        },
        rings=rings,
        notes=tuple(notes),
    )


# --- flood: JRC depth-damage curves --------------------------------------------------------

#: Water depths of the JRC curves, metres.
JRC_DEPTHS_M: Final = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
#: Continental mean damage curves of Huizinga, de Moel & Szewczyk (2017), fraction of the
#: maximum damage at :data:`JRC_DEPTHS_M`, as carried by CLIMADA-petals
#: (entity/impact_funcs/river_flood.py, ``from_jrc_impf_*``); Europe residential is also the
#: docs/impact-models.md table. North America is left out: its curve starts at 0.20 at 0 m
#: (basements), which a depth grid cannot tell from dry ground.
JRC_CURVES: Final[Mapping[tuple[str, str], tuple[float, ...]]] = {
    ("europe", "residential"): (0.0, 0.25, 0.40, 0.50, 0.60, 0.75, 0.85, 0.95, 1.00),
    ("asia", "residential"): (0.0, 0.327, 0.494, 0.617, 0.721, 0.870, 0.931, 0.984, 1.0),
    ("africa", "residential"): (0.0, 0.22, 0.378, 0.531, 0.636, 0.817, 0.903, 0.957, 1.0),
    ("oceania", "residential"): (0.0, 0.475, 0.640, 0.715, 0.788, 0.929, 0.967, 0.983, 1.0),
    ("south_america", "residential"): (0.0, 0.491, 0.711, 0.842, 0.949, 0.984, 1.0, 1.0, 1.0),
    ("europe", "commercial"): (0.0, 0.15, 0.30, 0.45, 0.55, 0.75, 0.90, 1.00, 1.00),
    ("asia", "commercial"): (0.0, 0.377, 0.538, 0.659, 0.763, 0.883, 0.942, 0.981, 1.0),
    ("asia", "industrial"): (0.0, 0.283, 0.482, 0.629, 0.717, 0.857, 0.909, 0.955, 1.0),
}
JRC_SOURCE: Final = (
    "JRC global flood depth-damage functions, continental mean curves (Huizinga, de Moel & "
    "Szewczyk 2017, EUR 28552 EN, doi:10.2760/16510), linear between 0-6 m, clipped at the ends"
)


def _jrc_curve(region: str, sector: str) -> tuple[float, ...]:
    key = (
        str(region).strip().lower().replace(" ", "_").replace("-", "_"),
        str(sector).strip().lower(),
    )
    if key not in JRC_CURVES:
        raise ValueError(
            f"region/sector was {region!r}/{sector!r}; expected one of "
            f"{sorted('/'.join(k) for k in JRC_CURVES)}"
        )
    return JRC_CURVES[key]


@overload
def flood_damage_fraction(depth_m: float, region: str = ..., sector: str = ...) -> float: ...
@overload
def flood_damage_fraction(
    depth_m: npt.ArrayLike, region: str = ..., sector: str = ...
) -> FloatArray: ...
def flood_damage_fraction(
    depth_m: ArrayLike, region: str = "europe", sector: str = "residential"
) -> float | FloatArray:
    """Damage fraction of a building at a flood depth (JRC depth-damage curves).

    Parameters
    ----------
    depth_m : float or array_like
        Water depth above ground, metres. Depths below 0 (dry) give 0, above 6 m give the
        curve's last value (the table's ends).
    region : str, default "europe"
        "europe", "asia" (for Chinese cities), "africa", "oceania", "south_america".
    sector : str, default "residential"
        "residential"; also "commercial" (Europe, Asia) and "industrial" (Asia).

    Returns
    -------
    float or ndarray
        Fraction of the maximum damage, 0–1, linear between the tabulated depths (as CLIMADA
        interpolates its impact functions).

    Raises
    ------
    ValueError
        On a NaN or infinite depth, or an unknown region or sector.

    Examples
    --------
    >>> flood_damage_fraction(1.0, "europe")
    0.4
    >>> round(flood_damage_fraction(0.25, "asia"), 4)
    0.1635
    >>> flood_damage_fraction([-0.2, 0.75, 9.0]).tolist()
    [0.0, 0.325, 1.0]
    """
    curve = _jrc_curve(region, sector)
    d = np.asarray(depth_m, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"depth_m was {depth_m!r}; expected finite depths in metres")
    frac = np.interp(d, JRC_DEPTHS_M, curve)
    return float(frac) if frac.ndim == 0 else frac


@overload
def flood_damage(depth_m: float, value: float, region: str = ..., sector: str = ...) -> float: ...
@overload
def flood_damage(
    depth_m: npt.ArrayLike, value: npt.ArrayLike, region: str = ..., sector: str = ...
) -> FloatArray: ...
def flood_damage(
    depth_m: ArrayLike,
    value: ArrayLike,
    region: str = "europe",
    sector: str = "residential",
) -> float | FloatArray:
    """Flood damage of buildings: value · damage fraction (depth), broadcast over arrays.

    Parameters
    ----------
    depth_m : float or array_like
        Water depth, metres (see :func:`flood_damage_fraction`).
    value : float or array_like
        Maximum damage (replacement value) of each building, in any currency (>= 0).
    region, sector : str
        As :func:`flood_damage_fraction`.

    Returns
    -------
    float or ndarray
        Damage, in the currency of ``value``.

    Raises
    ------
    ValueError
        On a negative or non-finite value, or as :func:`flood_damage_fraction`.

    Examples
    --------
    >>> flood_damage(1.5, 2_000_000.0, "asia")
    1234000.0
    """
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"value was {value!r}; expected finite values >= 0")
    damage = v * flood_damage_fraction(np.asarray(depth_m, dtype=np.float64), region, sector)
    return float(damage) if damage.ndim == 0 else damage


@dataclass(frozen=True)
class FloodDamage:
    """Flood damage of a set of buildings, with the curve's source (:func:`flood_depth_damage`).

    Attributes
    ----------
    region, sector : str
        The JRC curve used.
    depth_m : ndarray
        Water depths, metres, as given.
    damage_fraction : ndarray
        Fraction of the maximum damage at each depth, 0–1.
    damage : ndarray or None
        ``value · damage_fraction`` in the currency of ``value``, when values were given.
    source : str
        The curve's citation.
    """

    region: str
    sector: str
    depth_m: FloatArray
    damage_fraction: FloatArray
    damage: FloatArray | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (arrays as lists)."""
        return {
            "region": self.region,
            "sector": self.sector,
            "depth_m": self.depth_m.tolist(),
            "damage_fraction": self.damage_fraction.tolist(),
            "damage": None if self.damage is None else self.damage.tolist(),
            "source": self.source,
        }


def flood_depth_damage(
    depth_m: npt.ArrayLike,
    region: str = "europe",
    sector: str = "residential",
    value: npt.ArrayLike | None = None,
) -> FloodDamage:
    """Damage fractions (and damages) of buildings at flood depths, as a sourced result.

    Parameters
    ----------
    depth_m : array_like
        Water depths, metres (see :func:`flood_damage_fraction`).
    region, sector : str
        As :func:`flood_damage_fraction` ("asia" for Chinese cities).
    value : array_like, optional
        Maximum damage of each building (>= 0), broadcast against ``depth_m``.

    Returns
    -------
    FloodDamage

    Raises
    ------
    ValueError
        As :func:`flood_damage_fraction` and :func:`flood_damage`.

    Examples
    --------
    >>> r = flood_depth_damage([0.3, 1.2], "asia", value=[1e6, 2e6])
    >>> r.damage_fraction.round(3).tolist(), r.damage.round(0).tolist()
    ([0.196, 0.543], [196200.0, 1086400.0])
    """
    d = np.atleast_1d(np.asarray(depth_m, dtype=np.float64))
    frac = np.atleast_1d(flood_damage_fraction(d, region, sector))
    damage = None if value is None else np.atleast_1d(flood_damage(d, value, region, sector))
    return FloodDamage(
        region=str(region).strip().lower().replace(" ", "_").replace("-", "_"),
        sector=str(sector).strip().lower(),
        depth_m=d,
        damage_fraction=frac,
        damage=damage,
        source=JRC_SOURCE,
    )
