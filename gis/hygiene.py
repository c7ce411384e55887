"""Geometry hygiene for imports: reject what cannot be stored, repair what can, say which.

Everything works on whole numpy arrays of shapely geometries (shapely 2 vectorised functions);
the only Python loop left is over the (rare) invalid geometries that need a type-preserving
repair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.frames import metres_per_degree

GeometryFamily = Literal["point", "line", "polygon"]
GeometryArray = npt.NDArray[np.object_]

# shapely type ids → family (GeometryCollection, id 7, has none).
_FAMILY_OF_TYPE_ID: dict[int, GeometryFamily] = {
    0: "point",
    4: "point",
    1: "line",
    2: "line",
    5: "line",
    3: "polygon",
    6: "polygon",
}
_PARTS_OF_FAMILY: dict[GeometryFamily, tuple[int, int]] = {
    "point": (0, 4),
    "line": (1, 5),
    "polygon": (3, 6),
}


@dataclass(frozen=True)
class HygieneResult:
    """Outcome of :func:`clean_geometries`, aligned with the input.

    Attributes
    ----------
    geometries : ndarray of object
        Cleaned 2D geometries; ``None`` where the row was rejected.
    rejected : ndarray of object
        The reason a row was rejected (``str``), or ``None`` if it was kept.
    repaired : ndarray of bool
        True where an invalid geometry was repaired with ``make_valid``.
    had_z : bool
        True if any input geometry had Z (or M) values, which were dropped.
    """

    geometries: GeometryArray
    rejected: GeometryArray
    repaired: npt.NDArray[np.bool_]
    had_z: bool


def family_of(geoms: GeometryArray) -> GeometryArray:
    """The geometry family of each geometry (``None`` for collections, empties and missing).

    Examples
    --------
    >>> from shapely import Point, LineString
    >>> family_of(np.array([Point(0, 0), LineString([(0, 0), (1, 1)]), None])).tolist()
    ['point', 'line', None]
    """
    type_ids = shapely.get_type_id(geoms)
    out = np.full(len(geoms), None, dtype=object)
    for type_id, family in _FAMILY_OF_TYPE_ID.items():
        out[type_ids == type_id] = family
    return out


def clean_geometries(geoms: GeometryArray, families: frozenset[GeometryFamily]) -> HygieneResult:
    """Check and repair geometries for a kind that accepts ``families``.

    Parameters
    ----------
    geoms : ndarray of object
        Shapely geometries (or ``None``) in EPSG:4326, longitude first.
    families : frozenset of {"point", "line", "polygon"}
        Geometry families the target kind accepts; single and multi-part are both accepted.

    Returns
    -------
    HygieneResult
        Per-row cleaned geometry or rejection reason.

    Notes
    -----
    - Z and M are dropped (``force_2d``): the platform is 2D; heights belong in attributes.
    - Invalid geometries are repaired with ``make_valid``; the repair is kept only when its
      parts of the accepted family survive (a self-intersecting polygon becomes a
      MultiPolygon, which is fine; a polygon that collapses to a line is rejected).
    - A multi-part geometry with one part is stored as that part.
    - Coordinates must be finite and inside lon [-180, 180], lat [-90, 90]: anything else is
      a wrong CRS, not a place.

    Examples
    --------
    >>> from shapely import Polygon, Point
    >>> bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    >>> res = clean_geometries(np.array([bowtie, Point(0, 0)]), frozenset({"polygon"}))
    >>> res.geometries[0].geom_type, bool(res.repaired[0])
    ('MultiPolygon', True)
    >>> res.rejected[1]
    'Point geometry, but this kind takes polygon geometries'
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    rejected = np.full(n, None, dtype=object)
    repaired = np.zeros(n, dtype=bool)

    missing = shapely.is_missing(geoms)
    rejected[missing] = "no geometry"
    present = ~missing
    had_z = bool(np.any(shapely.has_z(geoms[present])))
    out = geoms.copy()
    out[present] = shapely.force_2d(geoms[present])

    empty = present & shapely.is_empty(out)
    rejected[empty] = "empty geometry"
    ok = present & ~empty

    coords_ok = _coordinates_in_range(out[ok])
    bad_coords = np.flatnonzero(ok)[~coords_ok]
    rejected[bad_coords] = _coordinate_reason(out[bad_coords])
    ok[bad_coords] = False

    fam = family_of(out)
    wrong = ok & ~np.isin(fam, list(families))
    for i in np.flatnonzero(wrong):
        geom_type = out[i].geom_type
        rejected[i] = f"{geom_type} geometry, but this kind takes {_names(families)} geometries"
    ok &= ~wrong

    invalid = ok & ~shapely.is_valid(out)
    for i in np.flatnonzero(invalid):
        fixed = _repair(out[i], families)
        if fixed is None:
            reason = shapely.is_valid_reason(out[i])
            rejected[i] = f"invalid geometry ({reason}) that no repair keeps as {_names(families)}"
            ok[i] = False
        else:
            out[i] = fixed
            repaired[i] = True

    # Single-part multis (what Shapefiles and mixed GeoPackages hold) become plain parts.
    multi = (
        ok & np.isin(shapely.get_type_id(out), (4, 5, 6)) & (shapely.get_num_geometries(out) == 1)
    )
    out[multi] = shapely.get_geometry(out[multi], 0)
    out[~ok] = None
    return HygieneResult(geometries=out, rejected=rejected, repaired=repaired, had_z=had_z)


#: Longest line a point-only kind takes as its midpoint [m]. EPANET draws a valve or pump as a
#: link between two nodes, and exports (WNTR's ``wntr.gis``, QGIS's EPANET plug-ins) write it as
#: a LineString a few metres long; 50 m keeps those and refuses a pipe given to a point kind
#: by mistake (a distribution main runs 100 m and more between junctions).
POINT_LINE_MAX_M = 50.0


@dataclass(frozen=True)
class LineMidpoints:
    """Outcome of :func:`short_lines_to_midpoints`, aligned with the input.

    Attributes
    ----------
    geometries : ndarray of object
        The input, with each short line replaced by its midpoint.
    converted : ndarray of bool
        True where a line became its midpoint.
    too_long_m : ndarray of float
        The length [m] of each line too long to convert; NaN elsewhere.
    """

    geometries: GeometryArray
    converted: npt.NDArray[np.bool_]
    too_long_m: npt.NDArray[np.float64]


def short_lines_to_midpoints(
    geoms: GeometryArray, max_length_m: float = POINT_LINE_MAX_M
) -> LineMidpoints:
    """Replace each line shorter than ``max_length_m`` by the point halfway along it.

    For a kind that takes points only: a valve drawn as a short line (an EPANET link) becomes a
    point at its middle; a longer line is left as it is and its length reported, so the caller
    can refuse it with a message that says what was given.

    Parameters
    ----------
    geoms : ndarray of object
        Shapely geometries (or ``None``) in EPSG:4326, longitude first.
    max_length_m : float, default :data:`POINT_LINE_MAX_M` (50 m)
        Longest line converted, metres; must be > 0.

    Returns
    -------
    LineMidpoints
        The geometries with the short lines replaced, which were, and the lengths of the rest.

    Raises
    ------
    ValueError
        If ``max_length_m`` is not > 0.

    Notes
    -----
    LineStrings and single-part MultiLineStrings are considered; other geometries (points,
    polygons, lines of several parts, missing, empty or non-finite ones) pass through unchanged.
    Length and midpoint are taken in each line's local equirectangular frame
    (:func:`gis.frames.metres_per_degree` at its first vertex), within 0.01 % of geodesic at
    these lengths — in degrees the halfway point of a bent line would be off by the ratio of a
    degree of longitude to one of latitude.

    Examples
    --------
    >>> from shapely import LineString, Point
    >>> valve = LineString([(0.0, 0.0), (0.0001, 0.0)])  # 11 m along the equator
    >>> out = short_lines_to_midpoints(np.array([valve, Point(1, 1)]))
    >>> round(out.geometries[0].x, 9), out.converted.tolist()
    (5e-05, [True, False])
    >>> long = LineString([(0.0, 0.0), (0.01, 0.0)])  # 1.1 km
    >>> round(float(short_lines_to_midpoints(np.array([long])).too_long_m[0]))
    1113
    """
    if not max_length_m > 0:
        raise ValueError(f"max_length_m was {max_length_m!r} but must be > 0")
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    out = geoms.copy()
    converted = np.zeros(n, dtype=bool)
    too_long = np.full(n, np.nan)
    type_ids = shapely.get_type_id(geoms)
    one_part = (type_ids == 5) & (shapely.get_num_geometries(geoms) == 1)
    idx = np.flatnonzero(((type_ids == 1) | one_part) & finite_and_present(geoms))
    if not len(idx):
        return LineMidpoints(out, converted, too_long)
    lines = geoms[idx].copy()
    lines[one_part[idx]] = shapely.get_geometry(lines[one_part[idx]], 0)
    coords, index = shapely.get_coordinates(lines, return_index=True)
    first = np.searchsorted(index, np.arange(len(lines)))
    lon0, lat0 = coords[first, 0], coords[first, 1]
    kx, ky = metres_per_degree(np.clip(lat0, -90.0, 90.0))
    local = np.column_stack(
        ((coords[:, 0] - lon0[index]) * kx[index], (coords[:, 1] - lat0[index]) * ky[index])
    )
    framed = shapely.set_coordinates(lines.copy(), local)
    length = shapely.length(framed)
    short = length < max_length_m
    mid = shapely.get_coordinates(
        shapely.line_interpolate_point(framed[short], 0.5, normalized=True)
    )
    out[idx[short]] = shapely.points(
        lon0[short] + mid[:, 0] / kx[short], lat0[short] + mid[:, 1] / ky[short]
    )
    converted[idx[short]] = True
    too_long[idx[~short]] = length[~short]
    return LineMidpoints(out, converted, too_long)


def finite_and_present(geoms: GeometryArray) -> npt.NDArray[np.bool_]:
    """True where a geometry exists, is not empty and has only finite coordinates.

    Examples
    --------
    >>> from shapely import Point
    >>> finite_and_present(np.array([Point(0, 1), None, Point(), Point(0, float("nan"))]))
    array([ True, False, False, False])
    """
    geoms = np.asarray(geoms, dtype=object)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    bad = np.unique(index[~np.isfinite(coords).all(axis=1)])
    ok[bad] = False
    return np.asarray(ok, dtype=bool)


def _names(families: frozenset[GeometryFamily]) -> str:
    return " or ".join(sorted(families))


def _coordinates_in_range(geoms: GeometryArray) -> npt.NDArray[np.bool_]:
    """True per geometry when every coordinate is finite and a plausible lon/lat."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    good_vertex = (
        np.isfinite(coords).all(axis=1)
        & (np.abs(coords[:, 0]) <= 180.0)
        & (np.abs(coords[:, 1]) <= 90.0)
    )
    bad_geoms = np.unique(index[~good_vertex])
    result = np.ones(len(geoms), dtype=bool)
    result[bad_geoms] = False
    return result


def _coordinate_reason(geoms: GeometryArray) -> list[str]:
    reasons = []
    for geom in geoms:
        coords = shapely.get_coordinates(geom)
        if not np.isfinite(coords).all():
            reasons.append("NaN or infinite coordinates")
        else:
            reasons.append(
                "coordinates outside lon [-180, 180] / lat [-90, 90] after reprojection "
                "(is the CRS right? pass --crs)"
            )
    return reasons


def _repair(geom: BaseGeometry, families: frozenset[GeometryFamily]) -> BaseGeometry | None:
    """``make_valid`` keeping only the parts of an accepted family, or None if none survive."""
    fixed = shapely.make_valid(geom)
    if fixed.is_empty:
        return None
    for family in sorted(families):
        single, multi = _PARTS_OF_FAMILY[family]
        type_id = shapely.get_type_id(fixed)
        if type_id in (single, multi):
            return fixed
        if type_id == 7:  # GeometryCollection: keep the parts of this family, if any
            parts = [
                p for p in shapely.get_parts(fixed) if shapely.get_type_id(p) in (single, multi)
            ]
            if parts:
                merged = shapely.union_all(parts)
                return merged if not merged.is_empty else None
    return None
