"""Sensor alarms grouped into suspected events, and the pipes (or nodes) that best explain them.

A burst or a leak moves several sensors of a network at about the same time; an early-warning
engine sees one alarm per sensor (:mod:`gis.baseline`). This module turns them into events and
points the crew at a place:

* **Space–time clustering** (:func:`cluster_alarms`). Two alarm points are linked when they are
  within ``window_s`` seconds and ``distance_m`` metres of each other; an event is a connected
  component of those links (single linkage: a chain of alarms spreading along a main is one
  event). Distance is straight-line in metres (metric coordinates, or lon/lat through a
  :class:`gis.frames.LocalFrame`), or any callable, such as the network distance between
  sensors bound to a :class:`gis.network.PipeNetwork` (:func:`network_distance_matrix`).
* **Localisation** (:func:`localise`). Candidate pipes or nodes are ranked by how well they
  explain *which sensors moved most*. Model-based leak localisation compares the residual
  vector r (one entry per sensor) with each candidate's column of the leak sensitivity matrix
  and picks the best-correlated one (Pérez et al. 2011, *Methodology for leakage isolation
  using pressure sensitivity analysis in water distribution networks*, Control Eng. Practice
  19(10) 1157–1167; Casillas et al. 2013, *Optimal sensor placement for leak location in water
  distribution networks using genetic algorithms*, Sensors 13(11) 14984–15005, compare the
  correlation and angle methods). Without a calibrated hydraulic model the sensitivity is
  replaced by a distance kernel, ``s = 1 / (1 + d / scale_m)`` with d the Euclidean or network
  distance from the candidate to the sensor: the pressure drop a leak causes decays with
  hydraulic distance from it, and the "most affected sensor is nearest the leak" heuristic is
  the one-sensor case. Because a cosine alone cannot tell a far candidate whose distances to
  all sensors are alike from a near one, the score is the product of the **fit** (cosine of r
  and s) and the **proximity** (the |z|-weighted mean of s). Quiet sensors passed with small
  |z| count against candidates next to them.

Pure functions over numpy arrays and shapely geometries; no database, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.frames import LocalFrame
from gis.network import Attachment, component_labels, network_reach

__all__ = [
    "AREA_BUFFER_M",
    "DISTANCE_M",
    "SCALE_M",
    "WINDOW_S",
    "Clusters",
    "DistanceFn",
    "Event",
    "Localisation",
    "cluster_alarms",
    "localise",
    "network_distance_matrix",
    "network_pipe_distances",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
GeometryArray = npt.NDArray[np.object_]
#: Distance [m] between alarm points ``i[k]`` and ``j[k]`` (indices into the alarm arrays).
DistanceFn = Callable[[IntArray, IntArray], FloatArray]

#: Alarms this close in time may be one event [s]. Reasoned: a burst's pressure transient
#: reaches every sensor of a DMA within seconds, but alarms follow the CUSUM's detection
#: delay, which for a 1σ shift is ≈ 10 readings (Montgomery Table 9.3): 10 × 5-min steps.
WINDOW_S: Final = 3600.0
#: Alarms this close in space may be one event [m]. Reasoned: pressure loggers in a DMA are
#: a few hundred metres apart, so the sensors that see one leak are neighbours at that scale.
DISTANCE_M: Final = 500.0
#: Distance at which the localisation kernel halves [m] (of the order of sensor spacing).
SCALE_M: Final = 100.0
#: Buffer around the top candidates for the area shown on the map [m].
AREA_BUFFER_M: Final = 50.0


@dataclass(frozen=True)
class Event:
    """One suspected event: alarm points linked in space and time.

    Attributes
    ----------
    label : int
        Event number (0 … k-1, in order of first alarm).
    members : tuple of int
        Indices of its alarm points (input order).
    sensor_ids : tuple of int
        The sensors that alarmed (sorted, unique).
    t_start, t_end : float
        First and last alarm time (UTC epoch seconds).
    peak : int
        Index of the alarm point with the largest magnitude (the first one if none given).
    """

    label: int
    members: tuple[int, ...]
    sensor_ids: tuple[int, ...]
    t_start: float
    t_end: float
    peak: int


@dataclass(frozen=True, eq=False)
class Clusters:
    """Alarm points grouped into events (:func:`cluster_alarms`).

    Attributes
    ----------
    labels : ndarray of int64, shape (m,)
        Event label of each alarm point (input order).
    events : tuple of Event
        The events, by label.
    window_s, distance_m : float
        The linkage thresholds used.
    notes : tuple of str
        What was assumed.
    """

    labels: IntArray
    events: tuple[Event, ...]
    window_s: float
    distance_m: float
    notes: tuple[str, ...]


def _positive(value: float, name: str, unit: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} was {value!r}; expected a finite number > 0 ({unit})")
    return float(value)


def _xy(
    x: npt.ArrayLike, y: npt.ArrayLike, frame: LocalFrame | None, m: int, what: str
) -> tuple[FloatArray, FloatArray]:
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if not (xa.size == ya.size == m):
        raise ValueError(f"{what} have {xa.size} x and {ya.size} y for {m} points; expected {m}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError(f"{what} have NaN or infinite coordinates")
    if frame is None:
        return xa, ya
    if (np.abs(xa) > 180).any() or (np.abs(ya) > 90).any():
        raise ValueError(f"{what} are not WGS84 lon/lat degrees, but a frame was given")
    return frame.to_local(xa, ya)


def cluster_alarms(
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    window_s: float = WINDOW_S,
    distance_m: float = DISTANCE_M,
    sensor_ids: npt.ArrayLike | None = None,
    magnitude: npt.ArrayLike | None = None,
    frame: LocalFrame | None = None,
    distance: DistanceFn | None = None,
) -> Clusters:
    """Group alarm points into events: linked when close in time *and* in space.

    Parameters
    ----------
    t : array_like of float, shape (m,)
        Alarm times, UTC epoch seconds (any order).
    x, y : array_like of float, shape (m,)
        Alarm (sensor) positions: metres in a planar frame, or lon/lat degrees with ``frame``.
    window_s : float, default 3600
        Largest time between two linked alarms [s] (:data:`WINDOW_S`).
    distance_m : float, default 500
        Largest distance between two linked alarms [m] (:data:`DISTANCE_M`).
    sensor_ids : array_like of int, shape (m,), optional
        Sensor of each alarm point, reported per event.
    magnitude : array_like of float, shape (m,), optional
        |z| (or CUSUM statistic) of each alarm, for the event's peak.
    frame : LocalFrame, optional
        Given, ``x`` and ``y`` are lon/lat degrees measured in this frame's metres.
    distance : callable, optional
        ``distance(i, j) -> metres`` for arrays of alarm indices, replacing the straight line
        (e.g. network distance via :func:`network_distance_matrix`); called once, on the pairs
        within ``window_s`` only.

    Returns
    -------
    Clusters

    Notes
    -----
    Straight-line pairs come from one STRtree ``dwithin`` query, then a time filter; with a
    ``distance`` callable, from sorting on time and pairing each alarm with those after it
    within the window (``searchsorted``). Either way the work is the number of close pairs,
    not m². The components come from :func:`gis.network.component_labels`.

    Examples
    --------
    Two alarms 100 m and 10 min apart, a third 5 km away at the same time.

    >>> c = cluster_alarms([0, 600, 0], [0, 100, 5000], [0, 0, 0])
    >>> c.labels.tolist(), [e.members for e in c.events]
    ([0, 0, 1], [(0, 1), (2,)])
    """
    ts = np.asarray(t, dtype=np.float64).ravel()
    m = ts.size
    if not np.isfinite(ts).all():
        raise ValueError("t has NaN or infinite times; expected UTC epoch seconds")
    window = _positive(window_s, "window_s", "seconds")
    reach = _positive(distance_m, "distance_m", "metres")
    xs, ys = _xy(x, y, frame, m, "alarm points")
    sid = (
        np.arange(m, dtype=np.int64)
        if sensor_ids is None
        else np.asarray(sensor_ids, dtype=np.int64).ravel()
    )
    mag = np.zeros(m) if magnitude is None else np.abs(np.asarray(magnitude, float)).ravel()
    if sid.size != m or mag.size != m:
        raise ValueError(
            f"sensor_ids has {sid.size} and magnitude {mag.size} entries for {m} alarms; "
            "expected one per alarm"
        )
    order = np.argsort(ts, kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    if distance is None:
        # Space first (an STRtree ``dwithin`` query over all points at once), then time: in a
        # city the alarms within an hour far outnumber those within 500 m.
        pts = np.asarray(shapely.points(xs, ys), dtype=object)
        a, b = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=reach)
        keep = (a < b) & (np.abs(ts[a] - ts[b]) <= window)
        a, b = a[keep], b[keep]
        how = "straight-line distance in a planar frame [m]"
    else:
        # Time first (each alarm with those after it within the window), then the callable.
        st = ts[order]
        per = np.searchsorted(st, st + window, side="right") - np.arange(m) - 1
        first = np.repeat(np.arange(m), per)
        offset = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        a, b = order[first], order[first + 1 + offset]
        d = np.asarray(distance(a.astype(np.int64), b.astype(np.int64)), dtype=np.float64)
        if d.shape != a.shape:
            raise ValueError(f"distance returned shape {d.shape} for {a.size} pairs")
        a, b = a[d <= reach], b[d <= reach]
        how = "distance given by the caller's callable [m]"
    # Labels are numbered by each component's smallest item: on time ranks, in time order.
    labels = component_labels(m, rank[a], rank[b])[rank]
    events = []
    by_label = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_label], np.arange(int(labels.max()) + 2 if m else 1))
    for k in range(bounds.size - 1):
        idx = by_label[bounds[k] : bounds[k + 1]]
        events.append(
            Event(
                label=k,
                members=tuple(idx.tolist()),
                sensor_ids=tuple(np.unique(sid[idx]).tolist()),
                t_start=float(ts[idx].min()),
                t_end=float(ts[idx].max()),
                peak=int(idx[np.argmax(mag[idx])]),
            )
        )
    notes = (
        f"linked: within {window:g} s and {reach:g} m; single linkage",
        how,
    )
    return Clusters(labels, tuple(events), window, reach, notes)


def network_distance_matrix(attachment: Attachment, *, max_distance_m: float) -> FloatArray:
    """Network distances between all points bound to a network, up to ``max_distance_m``.

    Parameters
    ----------
    attachment : Attachment
        Sensors bound to a :class:`gis.network.PipeNetwork` (:func:`gis.network.attach_points`).
    max_distance_m : float
        Largest network distance followed [m]; farther pairs are ``inf``.

    Returns
    -------
    ndarray of float64, shape (k, k)
        Row/column order of ``attachment.point_ids``; symmetric, 0 on the diagonal.

    Notes
    -----
    One bounded Dijkstra (:func:`gis.network.network_reach`) per point: build it once per
    network and sensor version, and index it in a ``distance`` callable, e.g.
    ``lambda i, j: dm[row[i], row[j]]``.
    """
    reach_m = _positive(max_distance_m, "max_distance_m", "metres")
    ids = attachment.point_ids
    pos = {int(p): k for k, p in enumerate(ids.tolist())}
    out = np.full((ids.size, ids.size), np.inf)
    for k, loc in enumerate(attachment.locations()):
        r = network_reach(attachment.network, [loc], max_distance_m=reach_m, attachments=attachment)
        for pid, dist in r.points.items():
            out[k, pos[pid]] = dist
    sym: FloatArray = np.minimum(out, out.T)
    np.fill_diagonal(sym, 0.0)
    return sym


def network_pipe_distances(attachment: Attachment, *, max_distance_m: float) -> FloatArray:
    """Network distances from every pipe of a network to each attached point.

    Parameters
    ----------
    attachment : Attachment
        Points (sensors) bound to a :class:`gis.network.PipeNetwork`.
    max_distance_m : float
        Largest network distance followed [m]; farther pipes are ``inf``.

    Returns
    -------
    ndarray of float64, shape (p, k)
        Rows in ``attachment.network.pipe_ids`` order, columns in ``attachment.point_ids``
        order: the point's straight-line offset to its pipe plus the distance along the
        network to the pipe's nearest point [m]; ``inf`` beyond ``max_distance_m``. The
        ``distance_m`` of :func:`localise` for candidates that are the network's pipes.

    Notes
    -----
    One bounded Dijkstra (:func:`gis.network.network_reach`) per point; the offset is added
    after the search, so a pipe is kept when its distance *along the network* is within
    ``max_distance_m``.

    Examples
    --------
    Two 100 m pipes in a row; a sensor 5 m off the first, 30 m along it:

    >>> from shapely import LineString, Point
    >>> from gis.network import attach_points, build_network
    >>> d = 1 / 111_320
    >>> net = build_network([1, 2], [LineString([(0, 0), (100 * d, 0)]),
    ...                              LineString([(100 * d, 0), (200 * d, 0)])])
    >>> att = attach_points(net, [7], [Point(30 * d, 5 * d)], tolerance_m=10)
    >>> network_pipe_distances(att, max_distance_m=500).round(0).ravel().tolist()
    [5.0, 75.0]
    """
    reach_m = _positive(max_distance_m, "max_distance_m", "metres")
    net = attachment.network
    row = {int(p): k for k, p in enumerate(net.pipe_ids.tolist())}
    out = np.full((net.pipe_ids.size, attachment.point_ids.size), np.inf)
    for k, loc in enumerate(attachment.locations()):
        r = network_reach(net, [loc], max_distance_m=reach_m)
        if r.pipes:
            rows = np.fromiter((row[p] for p in r.pipes), dtype=np.int64, count=len(r.pipes))
            out[rows, k] = np.fromiter(r.pipes.values(), dtype=np.float64, count=len(r.pipes))
    offset = np.asarray(attachment.offset_m, dtype=np.float64)
    dist: FloatArray = out + offset[None, :]
    return dist


@dataclass(frozen=True, eq=False)
class Localisation:
    """Candidates ranked by how well they explain an event (:func:`localise`).

    Attributes
    ----------
    ranking : ndarray of int64, shape (c,)
        Candidate indices (input order), best first.
    candidate_ids : ndarray of int64, shape (c,)
        Candidate ids in ranking order.
    score, fit, proximity : ndarray of float64, shape (c,)
        ``fit × proximity``, the cosine of |z| and the sensitivity proxy, and the |z|-weighted
        mean sensitivity, in ranking order (all in [0, 1]).
    area : shapely Polygon
        Convex hull of the top ``top`` candidates buffered by ``area_buffer_m``, in the
        candidates' coordinates (lon/lat when a frame was given).
    scale_m : float
        The kernel's distance scale [m].
    notes : tuple of str
        The method, in words.
    """

    ranking: IntArray
    candidate_ids: IntArray
    score: FloatArray
    fit: FloatArray
    proximity: FloatArray
    area: BaseGeometry
    scale_m: float
    notes: tuple[str, ...]


def localise(
    candidate_ids: npt.ArrayLike,
    candidates: Sequence[BaseGeometry] | GeometryArray,
    sensor_x: npt.ArrayLike,
    sensor_y: npt.ArrayLike,
    magnitude: npt.ArrayLike,
    *,
    frame: LocalFrame | None = None,
    distance_m: npt.ArrayLike | None = None,
    scale_m: float = SCALE_M,
    top: int = 3,
    area_buffer_m: float = AREA_BUFFER_M,
) -> Localisation:
    """Rank candidate pipes or nodes by how well they explain which sensors moved most.

    Parameters
    ----------
    candidate_ids : array_like of int64, shape (c,)
        Pipe (or node) ids.
    candidates : sequence of shapely geometry, shape (c,)
        Their geometries (LineStrings, Points): planar metres, or lon/lat with ``frame``.
    sensor_x, sensor_y : array_like of float, shape (s,)
        The event's sensors, and quiet neighbours if wanted, in the same coordinates.
    magnitude : array_like of float, shape (s,)
        How much each sensor moved: |z| (or the CUSUM statistic) at the event; quiet sensors
        small. Only the pattern matters for the fit, the weights for the proximity.
    frame : LocalFrame, optional
        Given, coordinates are WGS84 lon/lat, measured in this frame's metres.
    distance_m : array_like of float, shape (c, s), optional
        Distances candidate → sensor [m] to use instead of the straight line (e.g. network
        distances); ``inf`` where unreachable.
    scale_m : float, default 100
        Kernel scale: sensitivity ``1 / (1 + d / scale_m)`` (:data:`SCALE_M`).
    top : int, default 3
        Candidates making up the area.
    area_buffer_m : float, default 50
        Buffer around them [m] (:data:`AREA_BUFFER_M`).

    Returns
    -------
    Localisation

    Raises
    ------
    ValueError
        If the shapes disagree, a magnitude is negative or all are zero.

    Examples
    --------
    Two pipes, three sensors; the two sensors that moved are beside pipe 2.

    >>> from shapely import LineString
    >>> pipes = [LineString([(0, 0), (100, 0)]), LineString([(0, 500), (100, 500)])]
    >>> r = localise([1, 2], pipes, [20, 80, 50], [510, 490, 10], [4.0, 3.0, 0.2])
    >>> r.candidate_ids.tolist(), bool(r.area.contains(shapely.Point(50, 500)))
    ([2, 1], True)
    """
    cid = np.asarray(candidate_ids, dtype=np.int64).ravel()
    geoms = np.asarray(candidates, dtype=object).ravel()
    if geoms.size != cid.size or not cid.size:
        raise ValueError(
            f"{geoms.size} geometries for {cid.size} candidate ids; expected one each, >= 1"
        )
    mag = np.asarray(magnitude, dtype=np.float64).ravel()
    xs, ys = _xy(sensor_x, sensor_y, frame, mag.size, "sensors")
    if not (np.isfinite(mag).all() and (mag >= 0).all() and mag.sum() > 0):
        raise ValueError("magnitude must be finite, >= 0 and not all 0 (|z| per sensor)")
    scale = _positive(scale_m, "scale_m", "metres")
    buffer_m = _positive(area_buffer_m, "area_buffer_m", "metres")
    if not (isinstance(top, int) and top >= 1):
        raise ValueError(f"top was {top!r}; expected an integer >= 1")
    local = (
        geoms
        if frame is None
        else np.asarray([frame.geometry_to_local(g) for g in geoms], dtype=object)
    )
    if distance_m is None:
        pts = np.asarray(shapely.points(xs, ys), dtype=object)
        d = np.asarray(shapely.distance(local[:, None], pts[None, :]), dtype=np.float64)
        how = "straight-line distance to the candidate's geometry"
    else:
        d = np.asarray(distance_m, dtype=np.float64)
        if d.shape != (cid.size, mag.size):
            raise ValueError(
                f"distance_m has shape {d.shape}; expected ({cid.size}, {mag.size}) "
                "(candidates × sensors)"
            )
        how = "distances given by the caller (candidates × sensors)"
    s = 1.0 / (1.0 + np.nan_to_num(d, nan=np.inf, posinf=np.inf) / scale)
    norm_s = np.linalg.norm(s, axis=1)
    fit = np.where(norm_s > 0, (s @ mag) / (np.linalg.norm(mag) * np.maximum(norm_s, 1e-300)), 0)
    proximity = (s @ mag) / mag.sum()
    score = fit * proximity
    ranking = np.argsort(-score, kind="stable").astype(np.int64)
    best = local[ranking[: min(top, cid.size)]]
    area = shapely.convex_hull(shapely.union_all(best)).buffer(buffer_m)
    if frame is not None:
        area = frame.geometry_to_lonlat(area)
    notes = (
        f"sensitivity proxy 1 / (1 + d / {scale:g} m), {how}",
        "score = cosine(|z|, sensitivity) × |z|-weighted mean sensitivity "
        "(correlation method of Pérez et al. 2011, with a distance kernel for the model)",
        f"area: convex hull of the top {min(top, cid.size)} candidates + {buffer_m:g} m",
    )
    return Localisation(
        ranking=ranking,
        candidate_ids=cid[ranking],
        score=score[ranking],
        fit=fit[ranking],
        proximity=proximity[ranking],
        area=area,
        scale_m=scale,
        notes=notes,
    )
