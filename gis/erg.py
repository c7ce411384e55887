"""ERG initial isolation and protective action zones of toxic and flammable gas releases.

The Emergency Response Guidebook (ERG; US DOT PHMSA, Transport Canada, SCT Mexico) gives for
each toxic-by-inhalation (TIH) material an *initial isolation distance* (a circle around the
spill, all directions) and a *protective action distance* (downwind, for the first 30 minutes
after the release), for small (up to 208 L) and large spills, by day and by night (Table 1).
For six common TIH gases Table 1 sends large spills to Table 3, which depends on the container
and the wind speed. Flammable gases have no Table 1 entry; their orange Guide 115 says to
isolate at least 100 m in all directions and, for a large spill, to consider a downwind
evacuation of at least 800 m.

Edition: **ERG 2016**. Every row of ``gis/data/erg_table1.csv`` names it and every result
carries it; ERG 2020 and ERG 2024 values could not be checked here, so upgrading is a matter
of replacing the CSV (the loader refuses a file that mixes editions).

Geometry follows ERG 2016 "How to use Table 1", step 5: the protective action zone is a
square whose length and width equal the downwind distance, here with the spill at the middle
of its upwind side; the isolation zone is a circle. Both are built in metres in the spill's
local frame (:class:`gis.frames.LocalFrame`) and returned as WGS84 lon/lat polygons. Wind
direction is meteorological: the direction the wind blows *from*, degrees clockwise from
north, so the zone extends toward ``wind_dir_deg + 180``.

The CSV is read once per process (``functools.cache``); a lookup is a dict access.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from numbers import Integral, Real
from typing import Any, Final

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from gis.frames import LocalFrame, circle

__all__ = [
    "CONTAINERS",
    "PERIODS",
    "SPILLS",
    "WIND_CLASSES",
    "ErgDistances",
    "ErgMaterial",
    "ErgRow",
    "ErgZones",
    "erg_distances",
    "erg_material",
    "erg_zones",
    "known_chemicals",
    "wind_class",
]

SPILLS: Final = ("small", "large")
PERIODS: Final = ("day", "night")
#: Table 3 containers, in the book's order.
CONTAINERS: Final = (
    "rail_tank_car",
    "highway_tank_truck",
    "agricultural_nurse_tank",
    "multiple_ton_cylinders",
    "single_ton_cylinder",
    "multiple_small_cylinders",
)
#: Table 3 wind classes: low < 10 km/h (6 mph), moderate 10-20 km/h, high > 20 km/h (12 mph).
WIND_CLASSES: Final = ("low", "moderate", "high")
_WIND_LIMITS_M_S: Final = (10.0 / 3.6, 20.0 / 3.6)
_UN_NUMBER = re.compile(r"^(?:un|na)?\s*(\d{4})$")


@dataclass(frozen=True)
class ErgRow:
    """One row of the ERG data: a material's distances for one spill (and container, wind).

    Attributes
    ----------
    table : str
        ``"1"`` (Table 1), ``"3"`` (Table 3) or ``"guide"`` (orange guide 115).
    spill : str
        ``"small"`` or ``"large"``.
    container, wind : str
        Table 3 container and wind class; ``""`` for the other tables.
    isolation_m : float
        Initial isolation distance, metres (radius, all directions).
    day_km, night_km : float or None
        Protective action (downwind) distance, km; None where the guide gives none.
    day_km_at_least, night_km_at_least : bool
        True where the book says "more than" (its "11+ km").
    """

    table: str
    spill: str
    container: str
    wind: str
    isolation_m: float
    day_km: float | None
    night_km: float | None
    day_km_at_least: bool
    night_km_at_least: bool


@dataclass(frozen=True)
class ErgMaterial:
    """A material of the ERG data and all its rows.

    Attributes
    ----------
    un_number, name, guide : str
        UN/NA number (four digits), proper shipping name, orange guide number.
    synonyms : tuple[str, ...]
        Other names it is looked up by (formulas, Chinese names).
    fire_isolation_m : float
        The guide's "if a tank, rail car or tank truck is involved in a fire, ISOLATE"
        distance, metres, all directions.
    edition : str
        ERG edition of the values.
    rows : tuple[ErgRow, ...]
    """

    un_number: str
    name: str
    synonyms: tuple[str, ...]
    guide: str
    fire_isolation_m: float
    edition: str
    rows: tuple[ErgRow, ...]

    @property
    def table3_containers(self) -> tuple[str, ...]:
        """Containers its Table 3 rows cover (empty for Table 1 and guide materials)."""
        found = {r.container for r in self.rows if r.table == "3"}
        return tuple(c for c in CONTAINERS if c in found)


@dataclass(frozen=True)
class ErgDistances:
    """The ERG distances that apply to one release.

    Attributes
    ----------
    un_number, name, guide, edition : str
    table : str
        Where the numbers come from: ``"1"``, ``"3"`` or ``"guide"``.
    spill, period : str
    container, wind : str or None
        The Table 3 row used (None outside Table 3).
    isolation_m : float
        Initial isolation radius, metres.
    protective_action_km : float or None
        Downwind protective action distance, km (None: the guide gives none).
    protective_action_at_least : bool
        The book's "more than 11 km": the distance is a lower bound.
    fire_isolation_m : float
        Isolation if a tank, rail car or tank truck is involved in a fire, metres.
    source : str
        Edition and table.
    notes : tuple[str, ...]
        How the row was chosen and what the numbers mean.
    """

    un_number: str
    name: str
    guide: str
    edition: str
    table: str
    spill: str
    period: str
    container: str | None
    wind: str | None
    isolation_m: float
    protective_action_km: float | None
    protective_action_at_least: bool
    fire_isolation_m: float
    source: str
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "un_number": self.un_number,
            "name": self.name,
            "guide": self.guide,
            "edition": self.edition,
            "table": self.table,
            "spill": self.spill,
            "period": self.period,
            "container": self.container,
            "wind": self.wind,
            "isolation_m": self.isolation_m,
            "protective_action_km": self.protective_action_km,
            "protective_action_at_least": self.protective_action_at_least,
            "fire_isolation_m": self.fire_isolation_m,
            "source": self.source,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ErgZones:
    """ERG zones of a release on the map.

    Attributes
    ----------
    distances : ErgDistances
        The numbers and the edition.
    wind_dir_deg : float
        Direction the wind blows from, degrees clockwise from north, in [0, 360).
    downwind_bearing_deg : float
        Direction the zone extends toward, ``wind_dir_deg + 180`` in [0, 360).
    isolation_zone : shapely Polygon
        Initial isolation circle, WGS84 lon/lat.
    protective_action_zone : shapely Polygon or None
        Downwind square, WGS84 lon/lat (None when the guide gives no downwind distance).
    """

    distances: ErgDistances
    wind_dir_deg: float
    downwind_bearing_deg: float
    isolation_zone: BaseGeometry
    protective_action_zone: BaseGeometry | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; zones as GeoJSON geometry objects."""
        pa = self.protective_action_zone
        return {
            **self.distances.to_dict(),
            "wind_dir_deg": self.wind_dir_deg,
            "downwind_bearing_deg": self.downwind_bearing_deg,
            "isolation_zone": mapping(self.isolation_zone),
            "protective_action_zone": None if pa is None else mapping(pa),
        }


def _km(text: str) -> tuple[float | None, bool]:
    """A CSV distance: "" (none), "2.2", or "11+" (more than 11 km)."""
    if not text:
        return None, False
    at_least = text.endswith("+")
    return float(text.rstrip("+")), at_least


@functools.cache
def _table() -> tuple[Mapping[str, ErgMaterial], Mapping[str, str]]:
    """Materials by UN number, and every lookup key → UN number (read once per process)."""
    text = resources.files("gis").joinpath("data/erg_table1.csv").read_text(encoding="utf-8")
    # Lines starting with '#' carry the file's provenance, not data.
    reader = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    grouped: dict[str, list[dict[str, str]]] = {}
    for rec in reader:
        grouped.setdefault(rec["un_number"], []).append(rec)
    editions = {rec["edition"] for recs in grouped.values() for rec in recs}
    if len(editions) != 1:
        raise ValueError(f"erg_table1.csv mixes ERG editions {sorted(editions)}; expected one")
    materials: dict[str, ErgMaterial] = {}
    keys: dict[str, str] = {}
    for un, recs in grouped.items():
        first = recs[0]
        rows = []
        for rec in recs:
            day, day_plus = _km(rec["day_km"])
            night, night_plus = _km(rec["night_km"])
            rows.append(
                ErgRow(
                    rec["table"],
                    rec["spill"],
                    rec["container"],
                    rec["wind"],
                    float(rec["isolation_m"]),
                    day,
                    night,
                    day_plus,
                    night_plus,
                )
            )
        synonyms = tuple(s for s in first["synonyms"].split(";") if s)
        materials[un] = ErgMaterial(
            un,
            first["name"],
            synonyms,
            first["guide"],
            float(first["fire_isolation_m"]),
            first["edition"],
            tuple(rows),
        )
        for key in (un, first["name"], *synonyms):
            k = key.strip().lower()
            if keys.setdefault(k, un) != un:
                raise ValueError(f"erg_table1.csv: {key!r} names both UN{keys[k]} and UN{un}")
    return materials, keys


def known_chemicals() -> tuple[str, ...]:
    """Names and UN numbers of the materials in the data (``"Chlorine (UN1017)"`` …).

    Examples
    --------
    >>> "Chlorine (UN1017)" in known_chemicals()
    True
    """
    materials, _ = _table()
    return tuple(f"{m.name} (UN{m.un_number})" for m in materials.values())


def erg_material(chemical: str | int) -> ErgMaterial:
    """Look a material up by UN number, name or synonym (case-insensitive).

    Parameters
    ----------
    chemical : str or int
        ``"UN1017"``, ``"1017"``, ``1017``, ``"chlorine"``, ``"Cl2"``, ``"氯气"`` …

    Returns
    -------
    ErgMaterial

    Raises
    ------
    ValueError
        If the material is not in the data; the message lists what is.

    Examples
    --------
    >>> erg_material("un 1005").name
    'Ammonia, anhydrous'
    >>> erg_material("硫化氢").un_number
    '1053'
    """
    materials, keys = _table()
    if isinstance(chemical, Integral) and not isinstance(chemical, bool):
        key = f"{int(chemical):04d}"
    else:
        key = str(chemical).strip().lower()
        match = _UN_NUMBER.match(key)
        key = match.group(1) if match else key
    un = keys.get(key)
    if un is None:
        raise ValueError(
            f"chemical was {chemical!r}; expected a UN number, name or synonym of: "
            + ", ".join(known_chemicals())
        )
    return materials[un]


def wind_class(wind_speed_m_s: float) -> str:
    """ERG Table 3 wind class of a wind speed.

    Parameters
    ----------
    wind_speed_m_s : float
        Wind speed, m/s (>= 0).

    Returns
    -------
    str
        ``"low"`` below 10 km/h (2.78 m/s), ``"high"`` above 20 km/h (5.56 m/s), else
        ``"moderate"`` (ERG 2016 Table 3).

    Raises
    ------
    ValueError
        If the speed is negative or not finite.

    Examples
    --------
    >>> wind_class(1.5), wind_class(4.0), wind_class(8.0)
    ('low', 'moderate', 'high')
    """
    if (
        isinstance(wind_speed_m_s, bool)
        or not isinstance(wind_speed_m_s, Real)
        or not math.isfinite(wind_speed_m_s)
        or wind_speed_m_s < 0
    ):
        raise ValueError(f"wind_speed_m_s was {wind_speed_m_s!r}; expected a finite number >= 0")
    low, high = _WIND_LIMITS_M_S
    if wind_speed_m_s < low:
        return "low"
    return "high" if wind_speed_m_s > high else "moderate"


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} was {value!r}; expected one of {list(allowed)}")
    return str(value)


def _downwind_km(row: ErgRow, period: str) -> tuple[float | None, bool]:
    if period == "day":
        return row.day_km, row.day_km_at_least
    return row.night_km, row.night_km_at_least


def erg_distances(
    chemical: str | int,
    spill: str = "small",
    period: str = "day",
    *,
    container: str | None = None,
    wind: str | None = None,
    wind_speed_m_s: float | None = None,
) -> ErgDistances:
    """ERG isolation and protective action distances of one release.

    Parameters
    ----------
    chemical : str or int
        UN number, name or synonym (see :func:`erg_material`).
    spill : {"small", "large"}, default "small"
        Small: up to 208 L (55 US gal), a small package or a small leak from a large one;
        large: more.
    period : {"day", "night"}, default "day"
        Day: sunrise to sunset.
    container : str, optional
        Table 3 container (:data:`CONTAINERS`), for large spills of ammonia, chlorine,
        hydrogen chloride and sulfur dioxide. If not given the largest distance over the
        containers is used, and a note says so.
    wind : {"low", "moderate", "high"}, optional
        Table 3 wind class; or give ``wind_speed_m_s``. If neither, the largest over the
        wind classes is used, and a note says so.
    wind_speed_m_s : float, optional
        Wind speed, m/s, classified by :func:`wind_class`.

    Returns
    -------
    ErgDistances

    Raises
    ------
    ValueError
        On an unknown chemical, spill, period, wind class or container, or both ``wind`` and
        ``wind_speed_m_s``.

    Examples
    --------
    >>> d = erg_distances("chlorine", "small", "night")
    >>> d.isolation_m, d.protective_action_km, d.edition
    (60.0, 1.1, 'ERG 2016')
    >>> d = erg_distances("UN1017", "large", "day", container="rail_tank_car", wind="low")
    >>> d.table, d.isolation_m, d.protective_action_km
    ('3', 1000.0, 9.9)
    """
    mat = erg_material(chemical)
    spill = _choice("spill", spill, SPILLS)
    period = _choice("period", period, PERIODS)
    if wind is not None and wind_speed_m_s is not None:
        raise ValueError(
            f"wind was {wind!r} and wind_speed_m_s {wind_speed_m_s!r}; expected one of them"
        )
    wind_cls = (
        _choice("wind", wind, WIND_CLASSES)
        if wind is not None
        else (None if wind_speed_m_s is None else wind_class(wind_speed_m_s))
    )
    rows = [r for r in mat.rows if r.spill == spill]
    notes: list[str] = []
    if rows[0].table == "3":
        if container is not None:
            _choice("container", container, mat.table3_containers)
            rows = [r for r in rows if r.container == container]
        else:
            notes.append(
                f"container not given: the largest ERG Table 3 distance of {mat.name} over "
                f"{', '.join(mat.table3_containers)} is used"
            )
        if wind_cls is not None:
            rows = [r for r in rows if r.wind == wind_cls]
        else:
            notes.append(
                "wind speed not given: the largest distance over low, moderate and high wind "
                "is used"
            )
        row = max(rows, key=lambda r: ((_downwind_km(r, period)[0] or 0.0), r.isolation_m))
        notes.append(
            f"ERG Table 3, {row.container.replace('_', ' ')}, {row.wind} wind "
            "(low < 10 km/h, moderate 10-20 km/h, high > 20 km/h)"
        )
    else:
        (row,) = rows
        if container is not None or wind_cls is not None:
            notes.append(f"container and wind not used: {mat.name} has one entry per spill size")
    km, at_least = _downwind_km(row, period)
    table_name = {"1": "Table 1", "3": "Table 3", "guide": f"Guide {mat.guide}"}[row.table]
    if row.table == "guide":
        notes.append(
            f"ERG Guide {mat.guide}: isolate at least {row.isolation_m:g} m in all directions; "
            "a large spill: consider an initial downwind evacuation of at least 800 m (drawn, "
            "like Table 1's zone, as a downwind square); no day/night distinction"
        )
    else:
        notes.append("protective action distance: downwind, for the first 30 minutes")
    if at_least:
        notes.append(f"the book gives more than {km:g} km: the zone drawn is a lower bound")
    notes.append(
        f"if a tank, rail car or tank truck is involved in a fire: isolate "
        f"{mat.fire_isolation_m:g} m in all directions (Guide {mat.guide})"
    )
    return ErgDistances(
        un_number=mat.un_number,
        name=mat.name,
        guide=mat.guide,
        edition=mat.edition,
        table=row.table,
        spill=spill,
        period=period,
        container=row.container or None,
        wind=row.wind or None,
        isolation_m=row.isolation_m,
        protective_action_km=km,
        protective_action_at_least=at_least,
        fire_isolation_m=mat.fire_isolation_m,
        source=(
            f"Emergency Response Guidebook {mat.edition.removeprefix('ERG ')} ({mat.edition}), "
            f"{table_name}, UN{mat.un_number} {mat.name} (US DOT PHMSA / Transport Canada / SCT)"
        ),
        notes=tuple(notes),
    )


def erg_zones(
    lon_deg: float,
    lat_deg: float,
    chemical: str | int,
    spill: str = "small",
    period: str = "day",
    *,
    wind_dir_deg: float,
    container: str | None = None,
    wind: str | None = None,
    wind_speed_m_s: float | None = None,
    quad_segs: int = 16,
) -> ErgZones:
    """The ERG isolation circle and downwind protective action square of a release.

    Parameters
    ----------
    lon_deg, lat_deg : float
        The spill, WGS84 degrees.
    chemical, spill, period, container, wind, wind_speed_m_s
        As :func:`erg_distances`.
    wind_dir_deg : float
        Direction the wind blows **from**, degrees clockwise from north (meteorological
        convention, as wind sensors report it). Required: there is no safe default.
    quad_segs : int, default 16
        Segments per quarter of the isolation circle.

    Returns
    -------
    ErgZones
        The circle of radius ``isolation_m`` around the spill, and the square of side
        ``protective_action_km`` extending toward ``wind_dir_deg + 180`` with the spill at
        the middle of its upwind side (None where the guide gives no downwind distance).

    Raises
    ------
    ValueError
        As :func:`erg_distances`, or on a non-finite wind direction or a point that is not
        WGS84 lon/lat.

    Notes
    -----
    Built in the spill's local frame: within 0.01 % of geodesic lengths across a kilometre,
    and within about 0.1 % across Table 3's 11 km.

    Examples
    --------
    Wind from the north: the zone lies to the south of the spill.

    >>> z = erg_zones(117.2, 31.8, "chlorine", "small", "night", wind_dir_deg=0.0)
    >>> z.downwind_bearing_deg
    180.0
    >>> xmin, ymin, xmax, ymax = z.protective_action_zone.bounds
    >>> round(ymax, 6), ymin < 31.8
    (31.8, True)
    """
    distances = erg_distances(
        chemical, spill, period, container=container, wind=wind, wind_speed_m_s=wind_speed_m_s
    )
    if (
        isinstance(wind_dir_deg, bool)
        or not isinstance(wind_dir_deg, Real)
        or not math.isfinite(wind_dir_deg)
    ):
        raise ValueError(f"wind_dir_deg was {wind_dir_deg!r}; expected a finite bearing in °")
    wind_from = float(wind_dir_deg) % 360.0
    bearing = (wind_from + 180.0) % 360.0
    isolation = circle(lon_deg, lat_deg, distances.isolation_m, quad_segs=quad_segs)
    square = None
    if distances.protective_action_km is not None:
        side = distances.protective_action_km * 1000.0
        theta = math.radians(bearing)
        # Local frame: x east, y north. d points downwind, c across the wind (its right).
        dx, dy = math.sin(theta), math.cos(theta)
        cx, cy = dy, -dx
        h = side / 2.0
        corners = [
            (-h * cx, -h * cy),
            (h * cx, h * cy),
            (side * dx + h * cx, side * dy + h * cy),
            (side * dx - h * cx, side * dy - h * cy),
        ]
        frame = LocalFrame(lon_deg, lat_deg)
        square = frame.geometry_to_lonlat(orient(shapely.Polygon(corners), sign=1.0))
    return ErgZones(distances, wind_from, bearing, isolation, square)
