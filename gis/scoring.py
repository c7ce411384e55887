"""Risk scoring, pure and vectorised: likelihood × consequence per asset, classed in four colours.

Everything the score depends on is data in this module (factor tables, bands, radii, weights,
sources), so the explanation of a score is the list of the entries it used. No database here:
``app/risk/service.py`` gathers the inputs set-based in SQL, calls :func:`score`, and stores
each component with its value and source in ``risk_score.components``.

The model
---------
*Likelihood.* A relative failure-frequency index λ is the product of multipliers, 1.0 meaning
"typical" (the way relative pipeline-risk models and failure-rate modification factors work):

    λ = age × material × condition × sufficiency × pressure × flood × landslide × alarm × recent

An unknown input gives 1.0 and is recorded as unknown. λ is cut into a likelihood level
L ∈ 1..5 by :data:`LIKELIHOOD_EDGES`.

*Consequence.* Exposure inside the asset's impact radius (the PIR for gas mains, ASME B31.8S
§3.2 via :mod:`gis.consequence`, a set radius per kind otherwise: :data:`RADII_M`): the
population, area-weighted from population cells, plus the people at identified sites
(schools, hospitals, elderly care, daycare, crowded places, subway stations), each weighted by
its occupancy and vulnerability. The people-equivalent count is cut into an exposure level
1..5; any identified site inside the radius makes it at least 4 (ASME B31.8S §3.2: an
identified site inside the potential impact circle makes a high-consequence area). With the
kind's severity 1..5 (:data:`KIND_SEVERITY`): S = ⌈√(severity × exposure level)⌉ ∈ 1..5, the
geometric mean, so neither a harmless asset in a crowd nor a dangerous one in a desert is
"major".

*Methods* (:data:`PLATE_METHODS`, selectable per plate):

- ``matrix``: R = L × S on the 5 × 5 matrix; R ≥ 20 red, 15–16 orange, 9–12 yellow, ≤ 8 blue
  (the L·S bands common in Chinese 风险分级管控 practice; docs ``domain.md``).
- ``lec``: D = L × E × C (Graham & Kinney 1976 scales, L 0.1–10, E 0.5–10, C 1–100); bands
  D > 320 extreme → red, 160 < D ≤ 320 high → orange, 70 < D ≤ 160 significant → yellow,
  D ≤ 70 (general 20–70, slight < 20) → blue.

*Classes*: 1 red 重大, 2 orange 较大, 3 yellow 一般, 4 blue 低 — a risk class of a place, kept
apart from the warning level of an alarm (same colours, another meaning).

*Normalised score* ``norm`` ∈ [0, 1]: monotone in the method's score and band-aligned (class
edges at 0.75 / 0.5 / 0.25), so scores of both methods can be aggregated into cells and areas
(grid practice: normalise to [0, 1], cut into four colours; docs ``domain.md``).

The multipliers and levels are engineering defaults, not calibrated failure statistics: they
encode the orderings the sources give (cast iron fails more than steel, steel more than PE;
old more than new; deficient bridges more than sound ones) and are meant to be calibrated
against local failure records. Changing them changes only this data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gis.consequence import pir_m

__all__ = [
    "ALARM_LEVEL_FACTORS",
    "KIND_SEVERITY",
    "LEC_BANDS",
    "MATRIX_CLASS_EDGES",
    "PLATE_METHODS",
    "RADII_M",
    "SITE_EXPOSURE",
    "SOURCES",
    "Inputs",
    "Method",
    "Scores",
    "age_factor",
    "classify_lec",
    "classify_matrix",
    "exposure_level",
    "impact_radius_m",
    "likelihood_level",
    "pressure_class_of",
    "score",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]
Method = Literal["matrix", "lec"]

MODEL_VERSION: Final = "cityrisk-risk-1"

#: Short citations, stored with each component; the API shows them as the component's source.
SOURCES: Final[Mapping[str, str]] = {
    "age": "pipe/structure ageing (bathtub wear-out); cityrisk default bands",
    "material": "relative failure rates by material: cast iron > steel > PE (EGIG/UKOPA "
    "orderings); cityrisk default multipliers",
    "condition": "inspected condition grade (taxonomy: good/fair/poor)",
    "sufficiency": "FHWA NBI sufficiency rating: < 50 replacement-eligible, 50-80 "
    "rehabilitation-eligible (23 CFR 650 D, HBP)",
    "pressure": "GB 50028 gas pressure classes: low <= 0.01, medium <= 0.4, high > 0.4 MPa",
    "flood": "inside a flood zone (FEMA SFHA = 1 % annual chance; spatial join on flood_zone)",
    "landslide": "inside a landslide zone, by susceptibility (spatial join on landslide_zone)",
    "alarm": "open alarms, worst level (Emergency Response Law art. 42: I red … IV blue)",
    "recent": "alarms opened in the last 30 days (not false/test), +10 % each, max +50 %",
    "pir": "potential impact radius, natural gas: ASME B31.8S-2022 §3.2; 49 CFR 192.903",
    "radius": "set impact radius per kind (gis/scoring.py RADII_M)",
    "population": "residents, area-weighted from population cells inside the radius",
    "sites": "identified sites inside the radius (ASME B31.8S §3.2: limited mobility, "
    "gathering places); occupancy × vulnerability",
    "severity": "severity of the kind's worst credible failure, 1-5 (gis/scoring.py)",
    "matrix": "R = L × S on a 5 × 5 matrix; >= 20 red, 15-16 orange, 9-12 yellow, <= 8 blue",
    "lec": "D = L × E × C (Graham & Kinney 1976); > 320 / 160-320 / 70-160 / 20-70 / < 20",
}

# -- likelihood tables ---------------------------------------------------------------------
#: Age bands, years: < 10, 10-20, 20-30, 30-50, >= 50.
AGE_EDGES_YR: Final = np.array([10.0, 20.0, 30.0, 50.0])
AGE_FACTORS: Final = np.array([0.7, 0.85, 1.0, 1.4, 2.0])

#: Pipe material → multiplier (normalised names; see :func:`_norm_material`).
MATERIAL_FACTORS: Final[Mapping[str, float]] = {
    "cast_iron": 3.0,
    "bare_steel": 2.0,
    "asbestos_cement": 1.8,
    "brick": 1.5,
    "ductile_iron": 1.3,
    "vitrified_clay": 1.3,
    "concrete": 1.2,
    "steel": 1.0,
    "copper": 1.0,
    "pvc": 0.8,
    "pe": 0.5,
}
_MATERIAL_ALIASES: Final[Mapping[str, str]] = {
    "ci": "cast_iron",
    "grey_iron": "cast_iron",
    "gray_iron": "cast_iron",
    "di": "ductile_iron",
    "coated_steel": "steel",
    "polyethylene": "pe",
    "hdpe": "pe",
    "mdpe": "pe",
    "ac": "asbestos_cement",
    "rcp": "concrete",
    "reinforced_concrete": "concrete",
    "vcp": "vitrified_clay",
    "clay": "vitrified_clay",
}

CONDITION_FACTORS: Final[Mapping[str, float]] = {"good": 0.8, "fair": 1.0, "poor": 2.0}

#: NBI sufficiency rating bands (0-100): < 50, 50-80, >= 80.
SUFFICIENCY_EDGES: Final = np.array([50.0, 80.0])
SUFFICIENCY_FACTORS: Final = np.array([2.5, 1.5, 0.8])

#: Gas pressure class → multiplier; only gas kinds carry GB 50028 classes.
PRESSURE_FACTORS: Final[Mapping[str, float]] = {"low": 0.8, "medium": 1.0, "high": 1.5}
PRESSURE_KINDS: Final = frozenset({"gas_pipe", "gas_station"})
#: GB 50028 class edges, MPa: low <= 0.01 < medium <= 0.4 < high.
PRESSURE_CLASS_EDGES_MPA: Final = (0.01, 0.4)

#: Flood zone: 1.5 inside a <= 100-year zone, 1.2 inside a rarer (e.g. 500-year) one.
FLOOD_FACTORS: Final = (1.5, 1.2)
LANDSLIDE_FACTORS: Final[Mapping[str, float]] = {
    "low": 1.1,
    "medium": 1.3,
    "high": 1.6,
    "very_high": 2.0,
}
#: Worst open alarm level → multiplier (0: none open).
ALARM_LEVEL_FACTORS: Final[Mapping[int, float]] = {0: 1.0, 1: 4.0, 2: 3.0, 3: 2.0, 4: 1.5}
RECENT_STEP: Final = 0.1
RECENT_CAP: Final = 1.5
RECENT_DAYS: Final = 30

#: λ edges of likelihood levels 1..5 (λ < 0.5 → 1, … λ >= 4 → 5).
LIKELIHOOD_EDGES: Final = np.array([0.5, 1.0, 2.0, 4.0])

# -- consequence tables --------------------------------------------------------------------
#: Severity 1..5 of the worst credible failure of each scored kind.
KIND_SEVERITY: Final[Mapping[str, int]] = {
    "gas_pipe": 5,
    "gas_station": 5,
    "chemical_plant": 5,
    "power_plant": 4,
    "utility_tunnel": 4,
    "bridge": 4,
    "subway_station": 4,
    "crowded_place": 4,
    "flood_zone": 4,
    "landslide_zone": 4,
    "heating_pipe": 3,
    "substation": 3,
    "construction_site": 3,
    "manhole": 3,
    "ponding_point": 3,
    "water_pipe": 2,
    "drainage_pipe": 2,
    "pump_station": 2,
    "valve": 2,
    "hydrant": 1,
    "weather_station": 1,  # an instrument mast: its failure blinds, it harms nobody
}
DEFAULT_SEVERITY: Final = 2


@dataclass(frozen=True)
class Radius:
    """A set impact radius, metres, and why."""

    m: float
    basis: str


#: Impact radius per kind (gas mains use the PIR instead, see :func:`impact_radius_m`).
RADII_M: Final[Mapping[str, Radius]] = {
    "gas_pipe": Radius(30.0, "fallback only: PIR from diameter and pressure is used"),
    "gas_station": Radius(100.0, "ERG 2024 Guide 115: isolate >= 100 m in all directions"),
    "chemical_plant": Radius(
        800.0, "ERG 2024 Guide 115 large spill: evacuate >= 800 m downwind (no plant QRA)"
    ),
    "power_plant": Radius(200.0, "assumed: fire/explosion of fuel and transformer yards"),
    "utility_tunnel": Radius(30.0, "assumed: compartment explosion vents to the street"),
    "bridge": Radius(50.0, "assumed: collapse footprint and the roads under it"),
    "subway_station": Radius(100.0, "assumed: station catchment on evacuation"),
    "crowded_place": Radius(50.0, "assumed: crowd crush / fire egress zone"),
    "heating_pipe": Radius(15.0, "assumed: hot-water burst scalding and road collapse"),
    "substation": Radius(50.0, "assumed: transformer fire"),
    "construction_site": Radius(50.0, "assumed: excavation collapse of neighbouring ground"),
    "manhole": Radius(10.0, "assumed: gas explosion in an adjacent well (Hefei model)"),
    "ponding_point": Radius(50.0, "assumed: waterlogged street stretch"),
    "water_pipe": Radius(10.0, "assumed: burst scour and road collapse"),
    "drainage_pipe": Radius(10.0, "assumed: collapse / overflow along the street"),
    "pump_station": Radius(30.0, "assumed: local flooding on failure"),
    "valve": Radius(5.0, "assumed: point fitting"),
    "hydrant": Radius(5.0, "assumed: point fitting"),
    "weather_station": Radius(5.0, "assumed: instrument mast"),
    "flood_zone": Radius(0.0, "the zone itself"),
    "landslide_zone": Radius(0.0, "the zone itself"),
}
DEFAULT_RADIUS: Final = Radius(10.0, "assumed: no kind-specific radius")

#: Gas-main PIR fallbacks when an attribute is missing: class upper pressures (GB 50028;
#: high → 1.6 MPa, the top of sub-high pressure A) and a 300 mm diameter.
PIR_DEFAULT_MPA: Final[Mapping[str, float]] = {"low": 0.01, "medium": 0.4, "high": 1.6}
PIR_DEFAULT_D_MM: Final = 300.0


@dataclass(frozen=True)
class SiteExposure:
    """People an identified site stands for: default occupancy × vulnerability weight."""

    persons: float
    vulnerability: float
    capacity_attr: str | None


#: Identified sites counted inside the impact radius. Occupancy from ``capacity`` / ``beds``
#: where present, else the default; vulnerability 2 for people of limited mobility or
#: children (ASME B31.8S §3.2 identified sites).
SITE_EXPOSURE: Final[Mapping[str, SiteExposure]] = {
    "school": SiteExposure(500.0, 2.0, "capacity"),
    "hospital": SiteExposure(300.0, 2.0, "beds"),
    "elderly_care": SiteExposure(100.0, 2.0, "capacity"),
    "daycare": SiteExposure(80.0, 2.0, "capacity"),
    "crowded_place": SiteExposure(500.0, 1.0, "capacity"),
    "subway_station": SiteExposure(1000.0, 1.0, None),
}

#: People-equivalent edges of exposure levels 1..5 (< 1, 1-10, 10-100, 100-1000, >= 1000).
EXPOSURE_EDGES: Final = np.array([1.0, 10.0, 100.0, 1000.0])
SITE_MIN_EXPOSURE_LEVEL: Final = 4

# -- methods and classes -------------------------------------------------------------------
PLATE_METHODS: Final[Mapping[str, Method]] = {
    "lifeline": "matrix",
    "public_safety": "matrix",
    "natural_disaster": "matrix",
    "production_safety": "lec",
}

#: class → (colour, 中文, English).
#: R = L × S lower edges of red, orange, yellow (R >= 20, >= 15, >= 9; below: blue).
MATRIX_CLASS_EDGES: Final = (20, 15, 9)
#: LEC bands: D above each edge → label; the four colours group "general" and "slight".
LEC_BANDS: Final = ((320.0, "extreme", 1), (160.0, "high", 2), (70.0, "significant", 3),
                    (20.0, "general", 4), (-np.inf, "slight", 4))  # fmt: skip
#: Graham-Kinney scales reached from the five levels.
LEC_L: Final = np.array([0.5, 1.0, 3.0, 6.0, 10.0])  # "conceivable" … "to be expected"
LEC_E: Final = np.array([0.5, 1.0, 3.0, 6.0, 10.0])  # "very rare" … "continuous"
LEC_C: Final = np.array([1.0, 3.0, 7.0, 15.0, 40.0])  # "noticeable" … "disaster"
LEC_C_CATASTROPHE: Final = 100.0  # severity 5 with exposure level 5: many fatalities

# Band-aligned normalisation: class edges map to 0.25 / 0.5 / 0.75.
_MATRIX_NORM_X: Final = np.array([1.0, 9.0, 15.0, 20.0, 25.0])
_LEC_NORM_X: Final = np.log10(np.array([0.05, 70.0, 160.0, 320.0, 10000.0]))
_NORM_Y: Final = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


# -- inputs and outputs --------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """One element per asset. Unknowns: NaN for numbers, ``""`` / ``None`` for strings.

    Attributes
    ----------
    kind, plate : ndarray of str
        Taxonomy kind and plate.
    age_yr : ndarray of float
        Years since ``install_year`` / ``year_built``.
    material, condition, pressure_class, landslide : ndarray of str
        Categorical inputs (``landslide``: susceptibility of the worst zone the asset is in).
    sufficiency : ndarray of float
        NBI sufficiency rating, 0-100.
    flood_rp_yr : ndarray of float
        Shortest return period, years, of the flood zones the asset is in; NaN outside.
    alarm_level : ndarray of int
        Worst (lowest-numbered) open alarm level, 1..4; 0 with none open.
    recent_alarms : ndarray of int
        Alarms opened in the last :data:`RECENT_DAYS` days, not false or test.
    radius_m : ndarray of float
        Impact radius, metres (from :func:`impact_radius_m`).
    population : ndarray of float
        Residents inside the radius, persons (area-weighted).
    site_persons : ndarray of float
        Σ occupancy × vulnerability of identified sites inside the radius, persons.
    sites : ndarray of int
        Number of identified sites inside the radius.
    """

    kind: ObjArray
    plate: ObjArray
    age_yr: FloatArray
    material: ObjArray
    condition: ObjArray
    sufficiency: FloatArray
    pressure_class: ObjArray
    flood_rp_yr: FloatArray
    landslide: ObjArray
    alarm_level: IntArray
    recent_alarms: IntArray
    radius_m: FloatArray
    population: FloatArray
    site_persons: FloatArray
    sites: IntArray

    def __len__(self) -> int:
        return int(self.kind.shape[0])


@dataclass(frozen=True)
class Scores:
    """Scores of :func:`score`, one element per asset; ``factors`` keeps each multiplier."""

    factors: dict[str, FloatArray]
    likelihood_index: FloatArray
    l_level: IntArray
    severity: IntArray
    persons: FloatArray
    exposure_level: IntArray
    s_level: IntArray
    method: ObjArray
    lec_l: FloatArray
    lec_e: FloatArray
    lec_c: FloatArray
    score: FloatArray
    risk_class: IntArray
    norm: FloatArray
    band: ObjArray = field(repr=False)


# -- pieces ------------------------------------------------------------------------------------
def _lookup(values: ObjArray, table: Mapping[str, float], default: float = 1.0) -> FloatArray:
    """Map categorical values through ``table``: one dict lookup per distinct value."""
    memo: dict[object, float] = {}

    def get(v: object) -> float:
        f = memo.get(v)
        if f is None:
            f = memo[v] = float(table.get("" if v is None else str(v), default))
        return f

    return np.fromiter(map(get, values.tolist()), dtype=np.float64, count=values.size)


def _norm_material(values: ObjArray) -> ObjArray:
    out = np.empty(values.shape, dtype=object)
    for i, v in enumerate(values):
        key = "" if v is None else str(v).strip().lower().replace("-", "_").replace(" ", "_")
        out[i] = _MATERIAL_ALIASES.get(key, key)
    return out


def age_factor(age_yr: npt.ArrayLike) -> FloatArray:
    """Age multiplier.

    Parameters
    ----------
    age_yr : array_like
        Age in years; NaN (unknown) gives 1.0.

    Returns
    -------
    ndarray
        :data:`AGE_FACTORS` by band of :data:`AGE_EDGES_YR` (lower edge inclusive).
    """
    age = np.asarray(age_yr, dtype=np.float64)
    f = AGE_FACTORS[np.searchsorted(AGE_EDGES_YR, np.nan_to_num(age), side="right")]
    return np.where(np.isnan(age), 1.0, f)


def pressure_class_of(p_mpa: npt.ArrayLike) -> ObjArray:
    """GB 50028 class of a gas pressure in MPa: ``low`` <= 0.01 < ``medium`` <= 0.4 < ``high``.

    NaN gives ``""`` (unknown).
    """
    p = np.asarray(p_mpa, dtype=np.float64)
    lo, mid = PRESSURE_CLASS_EDGES_MPA
    out = np.where(p <= lo, "low", np.where(p <= mid, "medium", "high")).astype(object)
    out[np.isnan(p)] = ""
    return out


def likelihood_level(index: npt.ArrayLike) -> IntArray:
    """Likelihood level 1..5 of a λ index (:data:`LIKELIHOOD_EDGES`, lower edge inclusive)."""
    lam = np.asarray(index, dtype=np.float64)
    return (np.searchsorted(LIKELIHOOD_EDGES, lam, side="right") + 1).astype(np.int64)


def exposure_level(persons: npt.ArrayLike, sites: npt.ArrayLike) -> IntArray:
    """Exposure level 1..5 of a people-equivalent count; any identified site gives >= 4."""
    n = np.asarray(persons, dtype=np.float64)
    level = np.searchsorted(EXPOSURE_EDGES, n, side="right") + 1
    level = np.where(np.asarray(sites) > 0, np.maximum(level, SITE_MIN_EXPOSURE_LEVEL), level)
    return level.astype(np.int64)


def impact_radius_m(
    kind: ObjArray, p_mpa: npt.ArrayLike, d_mm: npt.ArrayLike, pressure_class: ObjArray
) -> tuple[FloatArray, ObjArray]:
    """Impact radius per asset, metres, and its basis.

    Parameters
    ----------
    kind : ndarray of str
        Asset kinds.
    p_mpa, d_mm : array_like
        MAOP in MPa and diameter in mm (gas mains; NaN where unknown).
    pressure_class : ndarray of str
        GB 50028 class, used for a missing pressure (:data:`PIR_DEFAULT_MPA`).

    Returns
    -------
    radius_m : ndarray
        PIR (:func:`gis.consequence.pir_m`) for ``gas_pipe``, else :data:`RADII_M`.
    basis : ndarray of str
        ``pir``, ``pir:default_pressure``, ``pir:default_diameter`` (both may appear joined
        by ``+``), or ``radius:<kind>``.
    """
    p = np.asarray(p_mpa, dtype=np.float64)
    d = np.asarray(d_mm, dtype=np.float64)
    set_r = _lookup(kind, {k: r.m for k, r in RADII_M.items()}, DEFAULT_RADIUS.m)
    basis = np.array([f"radius:{k}" for k in kind], dtype=object)
    gas = kind == "gas_pipe"
    p_default = _lookup(pressure_class, PIR_DEFAULT_MPA, PIR_DEFAULT_MPA["high"])
    p_used = np.where(np.isnan(p), p_default, p)
    d_used = np.where(np.isnan(d), PIR_DEFAULT_D_MM, d)
    pir = pir_m(np.maximum(p_used, 0.0), np.maximum(d_used, 0.0))
    radius = np.where(gas, pir, set_r)
    for i in np.flatnonzero(gas):
        parts = ["pir"]
        if np.isnan(p[i]):
            parts.append("default_pressure")
        if np.isnan(d[i]):
            parts.append("default_diameter")
        basis[i] = parts[0] + (":" + "+".join(parts[1:]) if len(parts) > 1 else "")
    return radius, basis


def classify_matrix(l_level: npt.ArrayLike, s_level: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """5 × 5 L × S matrix: R = L × S and its class.

    Parameters
    ----------
    l_level, s_level : array_like of int
        Likelihood and severity levels, 1..5.

    Returns
    -------
    R : ndarray of int
        L × S, 1..25.
    risk_class : ndarray of int
        1 red (R >= 20), 2 orange (15-16), 3 yellow (9-12), 4 blue (<= 8).

    Examples
    --------
    >>> classify_matrix([5, 3, 3, 2], [4, 5, 3, 4])[1].tolist()
    [1, 2, 3, 4]
    """
    r = np.asarray(l_level, dtype=np.int64) * np.asarray(s_level, dtype=np.int64)
    red, orange, yellow = MATRIX_CLASS_EDGES
    cls = np.where(r >= red, 1, np.where(r >= orange, 2, np.where(r >= yellow, 3, 4)))
    return r, cls.astype(np.int64)


def classify_lec(d: npt.ArrayLike) -> tuple[IntArray, ObjArray]:
    """LEC danger D = L × E × C to a class and its band label.

    Parameters
    ----------
    d : array_like
        D values (dimensionless).

    Returns
    -------
    risk_class : ndarray of int
        D > 320 → 1 red; 160 < D <= 320 → 2 orange; 70 < D <= 160 → 3 yellow; else 4 blue.
    band : ndarray of str
        ``extreme``, ``high``, ``significant``, ``general`` (20 < D <= 70) or ``slight``.

    Examples
    --------
    >>> classify_lec([320.5, 320, 160, 70, 20])[0].tolist()
    [1, 2, 3, 4, 4]
    """
    dv = np.asarray(d, dtype=np.float64)
    cls = np.full(dv.shape, 4, dtype=np.int64)
    band = np.full(dv.shape, "slight", dtype=object)
    # Walk from the lowest edge up so the highest band a value exceeds wins.
    for edge, label, c in reversed(LEC_BANDS):
        above = dv > edge
        cls = np.where(above, c, cls)
        band = np.where(above, label, band)
    return cls, band.astype(object)


def _normalise(method: ObjArray, raw: FloatArray) -> FloatArray:
    lec = method == "lec"
    m = np.interp(raw, _MATRIX_NORM_X, _NORM_Y)
    v = np.interp(np.log10(np.maximum(raw, 1e-9)), _LEC_NORM_X, _NORM_Y)
    return np.asarray(np.where(lec, v, m), dtype=np.float64)


def score(inputs: Inputs, methods: Mapping[str, Method] | None = None) -> Scores:
    """Score every asset of ``inputs``.

    Parameters
    ----------
    inputs : Inputs
        Per-asset inputs, as gathered by the service.
    methods : mapping of plate to method, optional
        Overrides :data:`PLATE_METHODS` per plate; plates absent from both use ``matrix``.

    Returns
    -------
    Scores
        Every factor and intermediate level, the method score (R or D), class and ``norm``.
    """
    chosen = {**PLATE_METHODS, **(methods or {})}
    kind = inputs.kind
    factors: dict[str, FloatArray] = {
        "age": age_factor(inputs.age_yr),
        "material": _lookup(_norm_material(inputs.material), MATERIAL_FACTORS),
        "condition": _lookup(inputs.condition, CONDITION_FACTORS),
        "sufficiency": np.where(
            np.isnan(inputs.sufficiency),
            1.0,
            SUFFICIENCY_FACTORS[
                np.searchsorted(SUFFICIENCY_EDGES, np.nan_to_num(inputs.sufficiency), side="right")
            ],
        ),
        "pressure": np.where(
            np.isin(kind, list(PRESSURE_KINDS)),
            _lookup(inputs.pressure_class, PRESSURE_FACTORS),
            1.0,
        ),
        "flood": np.where(
            np.isnan(inputs.flood_rp_yr),
            1.0,
            np.where(inputs.flood_rp_yr <= 100, FLOOD_FACTORS[0], FLOOD_FACTORS[1]),
        ),
        "landslide": _lookup(inputs.landslide, LANDSLIDE_FACTORS),
        "alarm": np.array(
            [ALARM_LEVEL_FACTORS.get(int(x), 1.0) for x in inputs.alarm_level], dtype=np.float64
        ),
        "recent": np.minimum(1.0 + RECENT_STEP * inputs.recent_alarms, RECENT_CAP),
    }
    lam = np.ones(len(inputs))
    for f in factors.values():
        lam = lam * f
    l_level = likelihood_level(lam)

    severity = _lookup(kind, {k: float(v) for k, v in KIND_SEVERITY.items()}, DEFAULT_SEVERITY)
    severity_i = severity.astype(np.int64)
    persons = inputs.population + inputs.site_persons
    e_level = exposure_level(persons, inputs.sites)
    s_level = np.ceil(np.sqrt(severity_i * e_level) - 1e-9).astype(np.int64)

    method = np.array([chosen.get(str(p), "matrix") for p in inputs.plate], dtype=object)
    r, matrix_class = classify_matrix(l_level, s_level)
    lec_l = LEC_L[l_level - 1]
    lec_e = LEC_E[e_level - 1]
    lec_c = np.where((severity_i == 5) & (e_level == 5), LEC_C_CATASTROPHE, LEC_C[severity_i - 1])
    d = lec_l * lec_e * lec_c
    lec_class, lec_band = classify_lec(d)
    is_lec = method == "lec"
    raw = np.where(is_lec, d, r.astype(np.float64))
    band = np.where(is_lec, lec_band, np.array([f"R{x}" for x in r], dtype=object))
    return Scores(
        factors=factors,
        likelihood_index=lam,
        l_level=l_level,
        severity=severity_i,
        persons=persons,
        exposure_level=e_level,
        s_level=s_level,
        method=method,
        lec_l=lec_l,
        lec_e=lec_e,
        lec_c=lec_c,
        score=raw,
        risk_class=np.where(is_lec, lec_class, matrix_class).astype(np.int64),
        norm=_normalise(method, raw),
        band=band.astype(object),
    )
