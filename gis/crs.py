"""Coordinate reference systems: reprojection, local metric CRS, GCJ-02/BD-09 to WGS84.

Everything cityrisk stores is in EPSG:4326 (WGS84 longitude/latitude, in that order). Data from
Chinese sources arrives in one of three kinds of CRS:

- an ordinary CRS with an EPSG code, such as CGCS2000 (EPSG:4490) or one of its Gauss-Krueger
  zones (EPSG:4491-4554), handled by pyproj;
- GCJ-02 ("Mars coordinates": AMap/Gaode, Tencent, Google's China maps), WGS84 with a
  deliberate, non-linear offset of a few hundred metres;
- BD-09 (Baidu), a second offset applied on top of GCJ-02.

Neither offset system has an EPSG code, so they are implemented here from the widely published
public algorithm, vectorised over numpy arrays.

All longitudes and latitudes are in decimal degrees; projected coordinates are in metres.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry.base import BaseGeometry

__all__ = [
    "CHINA_BBOX",
    "CrsSpec",
    "Offset",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china_bbox",
    "local_metric_crs",
    "resolve_crs",
    "to_wgs84",
    "transform_geometries",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GeometryArray = npt.NDArray[np.object_]
_LonLatFunc = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
Offset = Literal["gcj02", "bd09"]

# The GCJ-02 algorithm works on the Krasovsky 1940 ellipsoid (semi-major axis in metres, first
# eccentricity squared), as the original code and most ports do (wandergis/coordtransform,
# prcoords); ports that use WGS84's 6378137 m instead differ from them by about 1 cm.
_KRASOVSKY_A_M: Final = 6378245.0
_KRASOVSKY_EE: Final = 0.00669342162296594323

# BD-09 constants: Baidu's "x_pi" and its fixed shift, in degrees.
_X_PI: Final = math.pi * 3000.0 / 180.0
_BD_DLON_DEG: Final = 0.0065
_BD_DLAT_DEG: Final = 0.006

#: (min_lon, min_lat, max_lon, max_lat) in degrees: the rough box inside which the offsets are
#: applied, as in googollee/eviltransform. It is a rectangle, not China's border: it also covers
#: parts of neighbouring countries, and Hong Kong, Macau and Taiwan.
CHINA_BBOX: Final = (72.004, 0.8293, 137.8347, 55.8271)

# The inverses are fixed-point iterations w <- w + (target - forward(w)). The offsets change by
# ~3e-3 degrees per degree, so each step shrinks the error about 300-fold and 4-5 steps reach
# 1e-12 degrees. Near lon 105, where a sqrt(|lon - 105|) term has a kink, convergence is slower
# (up to 8 steps, error 3e-12 degrees). The cap only guards against a bug.
_ITER_TOL_DEG: Final = 1e-12
_ITER_MAX: Final = 20

_WGS84: Final = pyproj.CRS.from_epsg(4326)

_CRS_ALIASES: Final[dict[str, tuple[Offset | None, int]]] = {
    "WGS84": (None, 4326),
    "CGCS2000": (None, 4490),
    "GCJ02": ("gcj02", 4326),
    "BD09": ("bd09", 4326),
}
_EPSG_RE: Final = re.compile(r"^(?:EPSG:)?(\d+)$")
_ACCEPTED_SPECS: Final = (
    "'EPSG:<code>' or '<code>' (e.g. 'EPSG:4490', '4548'), 'WGS84', 'CGCS2000', "
    "'GCJ-02'/'gcj02', 'BD-09'/'bd09', or any WKT, PROJ string or URN that pyproj accepts"
)


@dataclass(frozen=True)
class CrsSpec:
    """A resolved ``--crs`` value: a pyproj CRS plus, for GCJ-02/BD-09, the offset to undo.

    Parameters
    ----------
    offset : {"gcj02", "bd09"} or None
        Which Chinese offset system the coordinates are in, or None for an ordinary CRS.
    crs : pyproj.CRS
        The CRS of the coordinates. For the offset systems this is EPSG:4326: their coordinates
        are WGS84 longitude/latitude with the offset still to be removed.
    """

    offset: Offset | None
    crs: pyproj.CRS


def _as_float_arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Broadcast ``lon`` and ``lat`` to float64 arrays of one shape (0-d for scalars), copied."""
    lon_b, lat_b = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    return lon_b.copy(), lat_b.copy()


def in_china_bbox(lon: npt.ArrayLike, lat: npt.ArrayLike) -> BoolArray:
    """Tell which points fall in the rough box where the GCJ-02/BD-09 offsets apply.

    Parameters
    ----------
    lon, lat : float or array_like of float
        Longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    numpy.ndarray of bool
        True where ``CHINA_BBOX`` contains the point (edges included); False outside and for NaN.

    Examples
    --------
    >>> in_china_bbox([117.27, 2.35], [31.86, 48.86]).tolist()
    [True, False]
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    inside: BoolArray = (lon_a >= min_lon) & (lon_a <= max_lon) & (lat_a >= min_lat)
    inside &= lat_a <= max_lat
    return inside


def _gcj02_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 minus WGS84 at a WGS84 point, in degrees (no box test).

    The two polynomial-plus-sine terms give the offset as arc lengths in metres; they are turned
    into degrees with the meridian and parallel radii of the Krasovsky ellipsoid.
    """
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat_m = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    dlat_m += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat_m += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon_m = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    dlon_m += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon_m += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    meridian_radius_m = _KRASOVSKY_A_M * (1.0 - _KRASOVSKY_EE) / (magic * sqrt_magic)
    parallel_radius_m = _KRASOVSKY_A_M / sqrt_magic * np.cos(rad_lat)
    dlat: FloatArray = dlat_m * 180.0 / (meridian_radius_m * np.pi)
    dlon: FloatArray = dlon_m * 180.0 / (parallel_radius_m * np.pi)
    return dlon, dlat


def _gcj02_to_bd09_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Baidu's forward formula (no box test), degrees in and out."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    bd_lon: FloatArray = z * np.cos(theta) + _BD_DLON_DEG
    bd_lat: FloatArray = z * np.sin(theta) + _BD_DLAT_DEG
    return bd_lon, bd_lat


def _invert(
    forward: _LonLatFunc,
    target_lon: FloatArray,
    target_lat: FloatArray,
    start_lon: FloatArray,
    start_lat: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(w) == target`` by fixed-point iteration from ``start``, elementwise."""
    lon = start_lon.copy()
    lat = start_lat.copy()
    for _ in range(_ITER_MAX):
        fwd_lon, fwd_lat = forward(lon, lat)
        step_lon = target_lon - fwd_lon
        step_lat = target_lat - fwd_lat
        lon += step_lon
        lat += step_lat
        if max(np.max(np.abs(step_lon), initial=0.0), np.max(np.abs(step_lat), initial=0.0)) < (
            _ITER_TOL_DEG
        ):
            break
    return lon, lat


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 longitude/latitude to GCJ-02 ("Mars coordinates").

    Parameters
    ----------
    lon, lat : float or array_like of float
        WGS84 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        GCJ-02 longitude and latitude in degrees, in the broadcast shape (0-d for scalars).

    Notes
    -----
    The public algorithm (Krasovsky 1940 ellipsoid, a = 6378245 m, e^2 = 0.00669342162296594323),
    reproduced to floating-point precision. Points outside ``CHINA_BBOX`` (lon 72.004-137.8347,
    lat 0.8293-55.8271) are returned unchanged, as in eviltransform and prcoords; NaN passes
    through. The offset is a few hundred metres: 250-620 m at ten cities from Kashgar to Harbin.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.391248, 39.907501)  # Tiananmen
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.397489 39.908902
    >>> bool(wgs84_to_gcj02(2.2945, 48.8584)[0] == 2.2945)  # Paris: outside, unchanged
    True
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = in_china_bbox(lon_a, lat_a)
    dlon, dlat = _gcj02_delta(lon_a[inside], lat_a[inside])
    lon_a[inside] += dlon
    lat_a[inside] += dlat
    return lon_a, lat_a


def _gcj02_forward_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj02_delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 longitude/latitude to WGS84 by inverting the GCJ-02 algorithm.

    Parameters
    ----------
    lon, lat : float or array_like of float
        GCJ-02 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        WGS84 longitude and latitude in degrees, in the broadcast shape (0-d for scalars).

    Notes
    -----
    Iterative, not the common one-step approximation ``gcj - (wgs84_to_gcj02(gcj) - gcj)``,
    which is off by 0.7 m (median) to 5 m over China. The fixed-point iteration stops at 1e-12
    degrees; the round trip ``wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))`` reproduces the input
    to better than 1e-7 degrees (about 1 cm; measured: 3e-12) everywhere in ``CHINA_BBOX``.
    That is exactness with respect to the published algorithm only: GCJ-02 data (map
    providers' POIs, digitised or geocoded features) carries its own positional errors, usually
    metres, which this does not remove.

    Points outside ``CHINA_BBOX`` (tested on the GCJ-02 input) are returned unchanged; NaN
    passes through. Within ~0.01 degrees of the box's edges the answer may not round-trip,
    because the forward switches between offset and identity there; those edges are far from
    where GCJ-02 data exists.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(116.397489, 39.908902)  # Tiananmen
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.391248 39.907501
    >>> back = wgs84_to_gcj02(lon, lat)
    >>> bool(abs(back[0] - 116.397489) < 1e-9 and abs(back[1] - 39.908902) < 1e-9)
    True
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = in_china_bbox(lon_a, lat_a)
    g_lon = lon_a[inside]
    g_lat = lat_a[inside]
    # The one-step approximation is a good start: already within ~6e-5 degrees.
    dlon, dlat = _gcj02_delta(g_lon, g_lat)
    w_lon, w_lat = _invert(_gcj02_forward_raw, g_lon, g_lat, g_lon - dlon, g_lat - dlat)
    lon_a[inside] = w_lon
    lat_a[inside] = w_lat
    return lon_a, lat_a


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 longitude/latitude to Baidu's BD-09.

    Parameters
    ----------
    lon, lat : float or array_like of float
        GCJ-02 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        BD-09 longitude and latitude in degrees, in the broadcast shape (0-d for scalars).

    Notes
    -----
    Baidu's published formula (x_pi = pi * 3000 / 180, then a fixed shift of 0.0065 degrees
    east and 0.006 degrees north): about 1 km on top of the GCJ-02 offset. Points outside
    ``CHINA_BBOX`` are returned unchanged, as for GCJ-02. This is BD-09 longitude/latitude,
    not Baidu's own Mercator ("BD09MC") metres.

    Examples
    --------
    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.410369 39.921337
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = in_china_bbox(lon_a, lat_a)
    bd_lon, bd_lat = _gcj02_to_bd09_raw(lon_a[inside], lat_a[inside])
    lon_a[inside] = bd_lon
    lat_a[inside] = bd_lat
    return lon_a, lat_a


def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert Baidu's BD-09 longitude/latitude to GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like of float
        BD-09 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        GCJ-02 longitude and latitude in degrees, in the broadcast shape (0-d for scalars).

    Notes
    -----
    Starts from the standard closed-form inverse, whose round trip through
    :func:`gcj02_to_bd09` is off by up to 2e-6 degrees (0.2 m), and refines it by fixed-point
    iteration to 1e-12 degrees, so that BD-09 round-trips as exactly as GCJ-02. Points outside
    ``CHINA_BBOX`` (tested on the BD-09 input) are returned unchanged.

    Examples
    --------
    >>> lon, lat = bd09_to_gcj02(116.410369, 39.921337)
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.404000 39.915000
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = in_china_bbox(lon_a, lat_a)
    b_lon = lon_a[inside]
    b_lat = lat_a[inside]
    x = b_lon - _BD_DLON_DEG
    y = b_lat - _BD_DLAT_DEG
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    g_lon, g_lat = _invert(_gcj02_to_bd09_raw, b_lon, b_lat, z * np.cos(theta), z * np.sin(theta))
    lon_a[inside] = g_lon
    lat_a[inside] = g_lat
    return lon_a, lat_a


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 longitude/latitude to BD-09 (through GCJ-02).

    Parameters
    ----------
    lon, lat : float or array_like of float
        WGS84 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        BD-09 longitude and latitude in degrees (0-d for scalars). Unchanged outside
        ``CHINA_BBOX``.

    Examples
    --------
    >>> lon, lat = wgs84_to_bd09(116.391248, 39.907501)  # Tiananmen
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.403862 39.915246
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 longitude/latitude to WGS84 (through GCJ-02).

    Parameters
    ----------
    lon, lat : float or array_like of float
        BD-09 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        WGS84 longitude and latitude in degrees (0-d for scalars). Unchanged outside
        ``CHINA_BBOX``. Both steps are iterated, so the round trip is better than 1e-7 degrees.

    Examples
    --------
    >>> lon, lat = bd09_to_wgs84(116.403862, 39.915246)  # Tiananmen
    >>> print(f"{lon:.6f} {lat:.6f}")
    116.391248 39.907501
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_TO_WGS84: Final[dict[Offset, _LonLatFunc]] = {
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


def _as_geometry_array(geoms: GeometryArray | Sequence[BaseGeometry | None]) -> GeometryArray:
    """Turn a sequence of shapely geometries (None allowed) into a 1-d or n-d object array."""
    if isinstance(geoms, BaseGeometry):
        raise TypeError(
            f"geoms was a single {geoms.geom_type}; expected an array or sequence of shapely "
            "geometries (wrap it in a list)"
        )
    arr: GeometryArray = np.asarray(geoms, dtype=object)
    is_ok = shapely.is_geometry(arr) | shapely.is_missing(arr)
    if not np.all(is_ok):
        bad = arr[~is_ok].flat[0]
        raise TypeError(
            f"geoms holds a {type(bad).__name__} ({bad!r}); expected shapely geometries or None"
        )
    return arr


def transform_geometries(
    geoms: GeometryArray | Sequence[BaseGeometry | None], source: Offset
) -> GeometryArray:
    """Move shapely geometries from GCJ-02 or BD-09 to WGS84 (EPSG:4326).

    Parameters
    ----------
    geoms : numpy.ndarray or sequence of shapely geometries
        Geometries with longitude/latitude coordinates in degrees in the ``source`` system.
        None entries and empty geometries pass through. A GeoSeries works too (its ``crs`` is
        ignored): wrap the result back with ``GeoSeries(result, crs=4326)``.
    source : {"gcj02", "bd09"}
        The offset system of ``geoms``.

    Returns
    -------
    numpy.ndarray of object
        New geometries in WGS84 degrees, same shape, types and vertex counts; z is dropped.

    Raises
    ------
    ValueError
        If ``source`` is not "gcj02" or "bd09".
    TypeError
        If ``geoms`` is a single geometry or holds something that is not a geometry.

    Notes
    -----
    Every vertex goes through :func:`gcj02_to_wgs84` or :func:`bd09_to_wgs84` in one vectorised
    call (``shapely.transform``). Only vertices move and no densification is done, but the
    offset bends space slightly: the midpoint of a converted straight segment is off from the
    converted midpoint by up to 2 mm for 100 m segments, 0.2 m for 1 km and 17 m for 10 km.
    Densify long segments first (``shapely.segmentize``) where that matters.

    Examples
    --------
    >>> from shapely import Point
    >>> out = transform_geometries([Point(116.397489, 39.908902)], "gcj02")
    >>> print(f"{out[0].x:.6f} {out[0].y:.6f}")
    116.391248 39.907501
    """
    allowed = get_args(Offset)
    if source not in allowed:
        raise ValueError(f"source was {source!r} but is expected to be one of {allowed}")
    arr = _as_geometry_array(geoms)
    to_wgs84_func = _TO_WGS84[source]

    def _apply(coords: FloatArray) -> FloatArray:
        lon, lat = to_wgs84_func(coords[:, 0], coords[:, 1])
        return np.column_stack((lon, lat))

    out: GeometryArray = np.asarray(shapely.transform(arr, _apply, include_z=False), dtype=object)
    return out


def resolve_crs(spec: str) -> CrsSpec:
    """Parse a user-typed CRS (the CLI's ``--crs``) into a :class:`CrsSpec`.

    Parameters
    ----------
    spec : str
        Case-insensitive; spaces, ``-`` and ``_`` are ignored in the names. Accepted:
        ``"EPSG:4490"`` or ``"4490"`` (any EPSG code); ``"WGS84"`` (EPSG:4326);
        ``"CGCS2000"`` (EPSG:4490); ``"GCJ-02"``/``"gcj02"``; ``"BD-09"``/``"bd09"``; or any
        other string ``pyproj.CRS.from_user_input`` accepts (WKT, PROJ string, URN).

    Returns
    -------
    CrsSpec
        For GCJ-02/BD-09, ``crs`` is EPSG:4326 and ``offset`` names the offset to remove.

    Raises
    ------
    ValueError
        If the string is not a CRS, or is one without horizontal coordinates (geocentric,
        vertical-only, engineering). The message says what was received and what is accepted.

    Examples
    --------
    >>> resolve_crs("CGCS2000").crs.to_epsg()
    4490
    >>> resolve_crs("GCJ-02").offset
    'gcj02'
    """
    text = spec.strip()
    key = re.sub(r"[\s_\-]", "", text).upper()
    if key in _CRS_ALIASES:
        offset, epsg = _CRS_ALIASES[key]
        return CrsSpec(offset=offset, crs=pyproj.CRS.from_epsg(epsg))
    try:
        match = _EPSG_RE.match(key)
        crs = pyproj.CRS.from_epsg(int(match.group(1))) if match else pyproj.CRS(text)
    except CRSError as exc:
        raise ValueError(
            f"CRS was {spec!r} but is expected to be {_ACCEPTED_SPECS} (pyproj: {exc})"
        ) from exc
    if not (crs.is_geographic or crs.is_projected):
        raise ValueError(
            f"CRS was {spec!r} ({crs.name}), which has no longitude/latitude or easting/northing "
            "axes; expected a geographic or projected CRS"
        )
    return CrsSpec(offset=None, crs=crs)


def to_wgs84(geoms: GeometryArray | Sequence[BaseGeometry | None], spec: CrsSpec) -> GeometryArray:
    """Reproject shapely geometries from ``spec`` to WGS84 longitude/latitude (EPSG:4326).

    Parameters
    ----------
    geoms : numpy.ndarray or sequence of shapely geometries
        Geometries in ``spec``'s CRS: x = easting or longitude, y = northing or latitude, whatever
        the CRS's official axis order (x/y order as in GeoJSON and shapely). None entries and
        empty geometries pass through.
    spec : CrsSpec
        From :func:`resolve_crs`.

    Returns
    -------
    numpy.ndarray of object
        New geometries with x = longitude and y = latitude in degrees, z dropped.

    Raises
    ------
    ValueError
        If PROJ cannot transform some coordinate (for instance far outside the CRS's area), or
        a coordinate is NaN or infinite.
    TypeError
        As :func:`transform_geometries`.

    Notes
    -----
    Ordinary CRSs go through a ``pyproj.Transformer`` with ``always_xy=True``. For CGCS2000
    (EPSG:4490) and its Gauss-Krueger zones (EPSG:4491-4554) PROJ knows no datum shift to WGS84
    and uses its "ballpark" identity. That is right at the metre level: the two frames agreed to
    a few centimetres at epoch 2000.0; CGCS2000 is fixed to that epoch while WGS84's current
    (ITRF-aligned) realisation follows plate motion, a few centimetres a year in China, so the
    two now differ by decimetres, up to about a metre. For GCJ-02/BD-09 the offset is removed
    with :func:`transform_geometries`.

    Examples
    --------
    >>> from shapely import Point
    >>> out = to_wgs84([Point(500000.0, 3522000.0)], resolve_crs("EPSG:4548"))  # CM 117E
    >>> print(f"{out[0].x:.6f} {out[0].y:.6f}")
    117.000000 31.820964
    """
    arr = _as_geometry_array(geoms)
    if spec.offset is not None:
        return transform_geometries(arr, spec.offset)
    if spec.crs.equals(_WGS84, ignore_axis_order=True):
        return arr.copy()
    transformer = pyproj.Transformer.from_crs(spec.crs, _WGS84, always_xy=True)

    def _apply(coords: FloatArray) -> FloatArray:
        try:
            lon, lat = transformer.transform(coords[:, 0], coords[:, 1], errcheck=True)
        except ProjError as exc:
            raise ValueError(
                f"cannot transform coordinates from {spec.crs.name} to WGS84 (PROJ: {exc}); "
                "are they in that CRS, with x = easting/longitude?"
            ) from exc
        out_xy: FloatArray = np.column_stack((lon, lat))
        if not np.isfinite(out_xy).all():
            # PROJ passes infinities through without complaint; a stored inf breaks PostGIS.
            raise ValueError(
                f"transforming from {spec.crs.name} to WGS84 gave non-finite coordinates; "
                "the input holds NaN or infinite values"
            )
        return out_xy

    out: GeometryArray = np.asarray(shapely.transform(arr, _apply, include_z=False), dtype=object)
    return out


def local_metric_crs(lon: float, lat: float) -> pyproj.CRS:
    """Return the WGS84 UTM zone CRS (EPSG:326xx north, 327xx south) for a point.

    Parameters
    ----------
    lon : float
        Longitude in degrees, -180 to 180.
    lat : float
        Latitude in degrees, -90 to 90. The equator (0) counts as north.

    Returns
    -------
    pyproj.CRS
        A projected CRS in metres with scale error under 0.1 % within the 6-degree zone, for
        distances, buffers and areas around the point.

    Raises
    ------
    ValueError
        If ``lon`` or ``lat`` is not finite or out of range.

    Notes
    -----
    Zones are plain 6-degree bands (zone 60 includes 180 degrees). The Norway and Svalbard
    exceptions of the UTM grid are not applied: they exist for map-sheet convenience and
    would only increase distortion. UTM is specified for 80S-84N; nearer the poles the zone is
    still returned, and distances there remain usable because a zone is narrow in metres.

    Examples
    --------
    >>> local_metric_crs(117.27, 31.86).to_epsg()  # Hefei
    32650
    >>> local_metric_crs(-43.2, -22.9).to_epsg()  # Rio de Janeiro
    32723
    """
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise ValueError(f"lon was {lon!r} but is expected to be in [-180, 180] degrees")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"lat was {lat!r} but is expected to be in [-90, 90] degrees")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return pyproj.CRS.from_epsg((32600 if lat >= 0.0 else 32700) + zone)
