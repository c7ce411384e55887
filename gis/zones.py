"""Impact zones of points and straight segments, and their areas inside rectangles, in numpy.

The zone of an asset is its buffer by a radius ``r`` with four segments a quarter circle (what
PostGIS ``ST_Buffer(g, r, 'quad_segs=4')`` builds, through GEOS): for a point the 16-gon of
radius r, for a straight segment the "stadium" of two half 16-gons joined by straight sides.
Built here vertex by vertex, vectorised over many zones, with the vertices GEOS puts there
(same angles; coordinates to float noise), then clipped by axis-aligned rectangles
(Sutherland-Hodgman, four half-planes, exact for the convex zones) and measured by the shoelace
formula: what ``ST_Area(ST_ClipByBox2D(ST_Buffer(…), box))`` gives, without a GEOS call per
zone.

Coordinates: each zone is built in its local planar frame (metres east and north of its
first point, ``kx`` and ``ky`` metres per degree there) and mapped back to degrees by that
affine map, as offsets from the first point; rectangles are given in the same offsets. Areas
are in degrees² (a ratio of two of them is what a population share needs).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["ZONE_VERTICES", "clipped_areas", "zone_rings"]

FloatArray = npt.NDArray[np.float64]

#: Vertices of a zone ring as built here (a segment's: 9 per end cap; a point's 16 are padded
#: by repeating the last one, a zero-length edge that changes no clip and no area).
ZONE_VERTICES: Final = 18
_STEP: Final = math.pi / 8  # quad_segs=4: four segments a quarter circle


def zone_rings(
    dx_m: FloatArray, dy_m: FloatArray, r_m: FloatArray, kx: FloatArray, ky: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Rings of the zones of segments from (0, 0) to ``(dx_m, dy_m)`` (metres, local frame).

    Parameters
    ----------
    dx_m, dy_m : ndarray, shape (m,)
        The far end of each segment from its first point, metres east and north; (0, 0) is a
        point, whose zone is the 16-gon of radius ``r_m`` (as GEOS buffers a zero-length line).
    r_m : ndarray, shape (m,)
        Radius, metres (> 0).
    kx, ky : ndarray, shape (m,)
        Metres per degree east and north in each zone's frame.

    Returns
    -------
    x, y : ndarray, shape (m, ZONE_VERTICES)
        The ring (clockwise, not closed) in degrees east and north of the first point.
    """
    k = np.arange(9, dtype=np.float64)
    theta = np.arctan2(dy_m, dx_m)[:, None]
    # End cap around the far end from the left side (θ + π/2) clockwise to the right, then
    # the cap around the first point from its right side (θ - π/2) clockwise to its left:
    # GEOS's round caps (OffsetSegmentGenerator.addDirectedFillet).
    far = theta + np.pi / 2 - k * _STEP
    near = theta - np.pi / 2 - k * _STEP
    r = r_m[:, None]
    x = np.concatenate([dx_m[:, None] + r * np.cos(far), r * np.cos(near)], axis=1)
    y = np.concatenate([dy_m[:, None] + r * np.sin(far), r * np.sin(near)], axis=1)
    point = (dx_m == 0) & (dy_m == 0)
    if point.any():
        angles = np.minimum(np.arange(ZONE_VERTICES), 15) * _STEP  # 16-gon, last repeated
        x[point] = r[point] * np.cos(angles)
        y[point] = r[point] * np.sin(angles)
    return x / kx[:, None], y / ky[:, None]


def _clip(x: FloatArray, y: FloatArray, edge: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Clip each convex ring (row) to ``x >= edge``; the ring grows by at most one vertex."""
    n = x.shape[1]
    e = edge[:, None]
    here = x >= e
    out_x = np.concatenate([x, x[:, -1:]], axis=1)
    out_y = np.concatenate([y, y[:, -1:]], axis=1)
    rows = np.flatnonzero(~here.all(axis=1))  # only rings that reach past the edge change
    if not len(rows):
        return out_x, out_y
    x, y, here, e = x[rows], y[rows], here[rows], e[rows]
    xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    crossing = here != np.roll(here, -1, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crossing, (e - x) / (xn - x), 0.0)
    # Each vertex, if kept, then the crossing of its outgoing edge, if any: in ring order.
    cx = np.stack([x, np.where(crossing, e, x)], axis=2).reshape(len(rows), -1)
    cy = np.stack([y, y + t * (yn - y)], axis=2).reshape(len(rows), -1)
    keep = np.stack([here, crossing], axis=2).reshape(len(rows), -1)
    slot = np.cumsum(keep, axis=1) - 1
    kept = keep.sum(axis=1)
    r, c = np.nonzero(keep)
    px = np.empty((len(rows), n + 1))
    py = np.empty((len(rows), n + 1))
    px[r, slot[r, c]] = cx[r, c]
    py[r, slot[r, c]] = cy[r, c]
    # Unused slots repeat the last kept vertex (zero-length edges); a ring clipped away
    # entirely collapses onto the edge (zero area).
    last = np.maximum(kept - 1, 0)[:, None]
    unused = np.arange(n + 1)[None, :] >= kept[:, None]
    none = (kept == 0)[:, None]
    px = np.where(unused, np.where(none, e, np.take_along_axis(px, last, axis=1)), px)
    py = np.where(unused, np.where(none, 0.0, np.take_along_axis(py, last, axis=1)), py)
    out_x[rows], out_y[rows] = px, py
    return out_x, out_y


def clipped_areas(
    x: FloatArray,
    y: FloatArray,
    xmin: FloatArray,
    ymin: FloatArray,
    xmax: FloatArray,
    ymax: FloatArray,
) -> FloatArray:
    """Area of each convex ring (row of ``x``, ``y``) inside its rectangle.

    Parameters
    ----------
    x, y : ndarray, shape (m, n)
        Convex rings (either orientation, not closed; repeated vertices allowed).
    xmin, ymin, xmax, ymax : ndarray, shape (m,)
        The rectangle of each ring, in the same coordinates.

    Returns
    -------
    ndarray, shape (m,)
        Area of ring ∩ rectangle (0 where they do not overlap).
    """
    x, y = _clip(x, y, xmin)
    x, y = _clip(-x, y, -xmax)
    x, y = -x, y
    y, x = _clip(y, x, ymin)
    y, x = _clip(-y, x, -ymax)
    y = -y
    twice = (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)
    return np.asarray(np.abs(twice) / 2.0, dtype=np.float64)
