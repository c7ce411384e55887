"""Local planar frames on the WGS84 ellipsoid: metres east and north of a point, and back.

A city-scale measure (an impact radius, a buffer, a distance along a pipe) is taken in the
**local equirectangular frame** of a point: x = kx · Δlon, y = ky · Δlat metres, with kx and ky
the metres per degree east and north there (the WGS84 radii of curvature). It is an affine map
of lon/lat, so a lon/lat rectangle stays a rectangle and a ratio of areas is kept, and within
a kilometre of its origin it is within 0.01 % of geodesic distances: better than the city's UTM
zone (0.04 % scale error at Hefei) and with no PROJ call per feature.

Pure functions over scalars, numpy arrays and shapely geometries; nothing here touches a
database or the network.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar, overload

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "WGS84_A_M",
    "WGS84_E2",
    "LocalFrame",
    "circle",
    "metres_per_degree",
]

FloatArray = npt.NDArray[np.float64]
G = TypeVar("G", bound=BaseGeometry)

#: WGS84 semi-major axis [m] and first eccentricity squared (NIMA TR8350.2).
WGS84_A_M: Final = 6378137.0
WGS84_E2: Final = 0.00669437999014


@overload
def metres_per_degree(lat_deg: float) -> tuple[float, float]: ...
@overload
def metres_per_degree(lat_deg: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def metres_per_degree(
    lat_deg: float | FloatArray,
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Metres per degree of longitude and of latitude at ``lat_deg`` on the WGS84 ellipsoid.

    Parameters
    ----------
    lat_deg : float or ndarray
        Latitude, degrees.

    Returns
    -------
    kx, ky : float or ndarray
        ``N cos φ · π/180`` and ``M · π/180`` (N, M: prime-vertical and meridional radii of
        curvature) [m/°]: the scales of the local equirectangular frame at that latitude.

    Examples
    --------
    >>> kx, ky = metres_per_degree(0.0)
    >>> round(kx, 1), round(ky, 1)
    (111319.5, 110574.3)
    """
    phi = np.radians(lat_deg)
    w = 1.0 - WGS84_E2 * np.sin(phi) ** 2
    n = WGS84_A_M / np.sqrt(w)
    m = WGS84_A_M * (1.0 - WGS84_E2) / w**1.5
    kx, ky = n * np.cos(phi) * np.pi / 180.0, m * np.pi / 180.0
    if np.ndim(kx) == 0:
        return float(kx), float(ky)
    return np.asarray(kx, dtype=np.float64), np.asarray(ky, dtype=np.float64)


class LocalFrame:
    """The local planar frame of one origin: metres east (x) and north (y) of it.

    Parameters
    ----------
    lon0_deg, lat0_deg : float
        The origin, WGS84 degrees.

    Examples
    --------
    >>> f = LocalFrame(-71.1, 42.37)
    >>> x, y = f.to_local(-71.1 + 1 / f.kx, 42.37)
    >>> round(float(x), 6), round(float(y), 6)
    (1.0, 0.0)
    >>> lon, lat = f.to_lonlat(0.0, f.ky)
    >>> round(float(lat), 9)
    43.37
    """

    def __init__(self, lon0_deg: float, lat0_deg: float) -> None:
        if not (-180.0 <= lon0_deg <= 180.0 and -90.0 < lat0_deg < 90.0):
            raise ValueError(
                f"origin ({lon0_deg}, {lat0_deg}) is not a WGS84 lon/lat: expected lon in "
                "[-180, 180] and lat in (-90, 90)"
            )
        self.lon0 = float(lon0_deg)
        self.lat0 = float(lat0_deg)
        self.kx, self.ky = metres_per_degree(self.lat0)

    def to_local(
        self, lon_deg: float | FloatArray, lat_deg: float | FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Metres east and north of the origin [m] of points given in degrees."""
        x = (np.asarray(lon_deg, dtype=np.float64) - self.lon0) * self.kx
        y = (np.asarray(lat_deg, dtype=np.float64) - self.lat0) * self.ky
        return x, y

    def to_lonlat(
        self, x_m: float | FloatArray, y_m: float | FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Degrees of points given in metres east and north of the origin."""
        lon = self.lon0 + np.asarray(x_m, dtype=np.float64) / self.kx
        lat = self.lat0 + np.asarray(y_m, dtype=np.float64) / self.ky
        return lon, lat

    def geometry_to_local(self, geom: G) -> G:
        """``geom`` (WGS84 degrees) in this frame's metres (an affine map, vectorised)."""
        return shapely.transform(geom, lambda c: (c - (self.lon0, self.lat0)) * (self.kx, self.ky))

    def geometry_to_lonlat(self, geom: G) -> G:
        """``geom`` (this frame's metres) back in WGS84 degrees."""
        return shapely.transform(geom, lambda c: c / (self.kx, self.ky) + (self.lon0, self.lat0))


def circle(lon_deg: float, lat_deg: float, radius_m: float, quad_segs: int = 16) -> BaseGeometry:
    """A circle of ``radius_m`` metres around a point, as a WGS84 polygon.

    Built in the point's local frame (so it is a true circle on the ground to 0.01 % within a
    kilometre) with ``quad_segs`` segments a quarter circle.

    Parameters
    ----------
    lon_deg, lat_deg : float
        Centre, WGS84 degrees.
    radius_m : float
        Radius, metres (> 0).
    quad_segs : int, default 16
        Segments per quarter circle (GEOS ``quad_segs``).

    Examples
    --------
    >>> from shapely import area
    >>> f = LocalFrame(-71.1, 42.37)
    >>> c = f.geometry_to_local(circle(-71.1, 42.37, 100.0))
    >>> round(float(area(c)) / (math.pi * 100.0**2), 3)  # a 64-gon: 0.16 % short of the disc
    0.998
    """
    if not (radius_m > 0 and math.isfinite(radius_m)):
        raise ValueError(f"radius_m was {radius_m!r}; expected a finite number > 0")
    frame = LocalFrame(lon_deg, lat_deg)
    disc = shapely.Point(0.0, 0.0).buffer(radius_m, quad_segs=quad_segs)
    return frame.geometry_to_lonlat(disc)
