"""Pipe networks from line features: topology, point attachment, network reach, gas migration.

A network is built once per data version from pipes (int64 ids and shapely LineStrings in WGS84
degrees) and then queried many times:

* **Topology.** Nodes are clusters of pipe endpoints within ``snap_tolerance_m`` of each other
  (single linkage: a chain of endpoints each within the tolerance of the next is one node);
  edges are the pipes, or the parts of a pipe between the points where other pipes' ends touch
  its interior (T-junctions drawn without a node), when ``split_t_junctions`` is on. What the
  snapping did is in :class:`BuildReport`.
* **Attachment.** Point features (manholes, valves, sensors, customers) are bound to the nearest
  edge within a tolerance, with their position along it, and to a node when they sit at its end.
* **Reach.** Network distances (Dijkstra on edge lengths) from entry points on edges or at nodes,
  up to ``max_distance_m``: which nodes, edges (and how much of each), pipes and attached points
  are reached, and how far along the network.
* **Gas migration** (Qingdao 2013, Kaohsiung 2014: gas or oil travelling along drainage culverts):
  from a leak, the underground network within ``adjacent_m`` of it in a straight line, then
  along that network up to ``reach_m``.

Measures. Pipe lengths are integrated segment by segment, each segment scaled by the metres per
degree at its own mid-latitude (:func:`gis.frames.metres_per_degree`): exact to float noise for
segments of a city's size, anywhere. Straight-line measures (snapping, T-junctions, attachment,
adjacency) are taken in one :class:`gis.frames.LocalFrame` at the centre of the network's
bounding box, whose east and north scales are off by ``|k(φ)/k(φ₀) − 1|`` at latitude φ:
≈ tan φ₀ · Δφ, so 0.16 % at 10 km north or south of the centre at 45° N (0.1 % at Hefei's 32° N).
That error applies to the tolerances (a 1 m tolerance acts as 0.998 m), never to lengths;
:func:`build_network` reports it and refuses networks where it exceeds ``max_scale_error``
(default 1 %: about ±64 km north-south at 45°, ±100 km at 32°). Longitude extent does not
matter, except across the antimeridian, which is refused.

Pure functions over numpy arrays and shapely geometries; no database, no HTTP.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import networkx as nx
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.frames import LocalFrame, metres_per_degree

__all__ = [
    "ADJACENT_M",
    "ATTACH_TOLERANCE_M",
    "MAX_SCALE_ERROR",
    "REACH_M",
    "SNAP_TOLERANCE_M",
    "Attachment",
    "BuildReport",
    "EdgeReach",
    "Location",
    "Migration",
    "PipeNetwork",
    "Reach",
    "attach_points",
    "build_network",
    "component_labels",
    "gas_migration",
    "network_reach",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
GeometryArray = npt.NDArray[np.object_]

#: Endpoints closer than this are one node [m]. Reasoned, not cited: ends meant to meet agree to
#: centimetres after CAD snapping, and digitising undershoots on the 1:500 maps Chinese pipe
#: surveys are drawn at are 0.5 mm on paper = 0.25 m; 1 m catches those with margin, while the
#: ends of two separate mains rarely lie within 1 m of each other (raise it for sketchy data,
#: and read ``BuildReport.wide_nodes`` for chains it may have merged).
SNAP_TOLERANCE_M: Final = 1.0
#: Points farther than this from every pipe are left unattached [m]. Reasoned: a manhole cover
#: or valve box sits over a chamber 0.7-1.5 m across, often beside the pipe axis, and is
#: surveyed to decimetres; 3 m covers that offset while staying under the spacing of mains
#: under different kerbs of one street.
ATTACH_TOLERANCE_M: Final = 3.0
#: Largest relative scale error of the network's local frame accepted (see the module notes).
MAX_SCALE_ERROR: Final = 0.01
#: Straight-line distance from a leak within which an underground network counts as adjacent
#: [m]. Reasoned: sewers, cable ducts and gas mains share a street with 0.5-2 m horizontal
#: clearances, and leaked gas spreads several metres laterally through trench backfill before
#: it reaches a duct; a screening value, [check] against the monitoring guideline in force.
ADJACENT_M: Final = 5.0
#: Network distance gas is followed along the underground network [m]. Reasoned: the Kaohsiung
#: 2014 propylene ran and exploded along several km of culvert (docs/domain.md); 1 km is the
#: first ring of manholes to check and ventilate, not a prediction of how far gas travels.
REACH_M: Final = 1000.0


# --------------------------------------------------------------------------------------------
# Connected components without scipy


def component_labels(n: int, a: npt.ArrayLike, b: npt.ArrayLike) -> IntArray:
    """Connected-component label of each of ``n`` items joined by the pairs ``(a[k], b[k])``.

    Union-find in numpy: every round, each root joined to a smaller root hooks onto the smallest
    one (``np.minimum.at``), then pointer jumping flattens the trees; a root's parent only ever
    decreases, so there are no cycles, and a few rounds suffice on pipe networks.

    Parameters
    ----------
    n : int
        Number of items (labelled 0 … n-1).
    a, b : array_like of int, shape (m,)
        The pairs; self-pairs are allowed.

    Returns
    -------
    ndarray of int64, shape (n,)
        Labels 0 … k-1, numbered in the order of each component's smallest item.

    Raises
    ------
    ValueError
        If ``a`` and ``b`` differ in shape or hold an index outside ``[0, n)``.

    Examples
    --------
    >>> component_labels(5, [0, 3], [1, 4]).tolist()
    [0, 0, 1, 2, 2]
    """
    ia = np.asarray(a, dtype=np.int64).ravel()
    ib = np.asarray(b, dtype=np.int64).ravel()
    if ia.shape != ib.shape:
        raise ValueError(f"pairs have {ia.size} and {ib.size} ends; expected equal lengths")
    if ia.size and (min(ia.min(), ib.min()) < 0 or max(ia.max(), ib.max()) >= n):
        raise ValueError(f"pair indices must be in [0, {n}); got {ia.min()}..{ia.max()}")
    parent = np.arange(n, dtype=np.int64)
    while ia.size:
        ra, rb = parent[ia], parent[ib]
        open_ = ra != rb
        if not open_.any():
            break
        ia, ib, ra, rb = ia[open_], ib[open_], ra[open_], rb[open_]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, labels = np.unique(parent, return_inverse=True)
    return labels.astype(np.int64).ravel()


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BuildReport:
    """What building a network did to its input.

    Attributes
    ----------
    pipes, nodes, edges : int
        Pipes given, nodes made, edges made (more edges than pipes where T-junctions split them).
    snapped_pairs : int
        Pairs of endpoint places (endpoints coinciding exactly are one place) within
        ``snap_tolerance_m`` of each other that were merged.
    kept_apart : int
        Pairs of places within the tolerance left as separate nodes because a pipe joins them
        (pipes shorter than the tolerance: valves and fittings modelled as short pipes).
    max_snap_m : float
        Largest distance from an endpoint to the node it was moved to [m] (0 if all coincided).
    wide_nodes : int
        Nodes whose endpoints lie farther than the tolerance from the node: chains of near
        endpoints merged by single linkage; check them.
    dangling_ends : int
        Nodes with one pipe end (dead ends, and ends that missed the network).
    components : int
        Connected components.
    t_junctions : int
        (node, pipe) pairs where a node lies within the tolerance of another pipe's interior.
    t_junction_pipes : tuple of int
        Ids of the pipes touched that way (sorted, unique).
    t_junctions_split : bool
        Whether those pipes were split there (connected) or left untouched (not connected).
    self_loops : int
        Pipes whose two ends fell into one node (closed rings, pipes shorter than the tolerance).
    scale_error : float
        Largest relative scale error of the local frame over the network (module notes).
    snap_tolerance_m : float
        The tolerance used [m].
    notes : tuple of str
        The above in words, for the person reading the result.
    """

    pipes: int
    nodes: int
    edges: int
    snapped_pairs: int
    kept_apart: int
    max_snap_m: float
    wide_nodes: int
    dangling_ends: int
    components: int
    t_junctions: int
    t_junction_pipes: tuple[int, ...]
    t_junctions_split: bool
    self_loops: int
    scale_error: float
    snap_tolerance_m: float
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class PipeNetwork:
    """A pipe network: nodes, edges (pipes or parts of pipes) and what building it did.

    Built by :func:`build_network`; read-only. Node and edge indices are positions in the arrays
    below. Edges are ordered by pipe (input order), then along the pipe, so where no pipe was
    split edge ``i`` is pipe ``i``.

    Attributes
    ----------
    frame : LocalFrame
        The local planar frame straight-line measures are taken in.
    pipe_ids : ndarray of int64, shape (p,)
        Pipe ids, input order.
    pipe_length_m : ndarray of float64, shape (p,)
        Pipe lengths along their geometry [m].
    node_lon, node_lat : ndarray of float64, shape (n,)
        Node positions (mean of their endpoints), WGS84 degrees.
    node_x_m, node_y_m : ndarray of float64, shape (n,)
        The same in the local frame [m].
    edge_pipe : ndarray of int64, shape (m,)
        Index into ``pipe_ids`` of each edge's pipe.
    edge_u, edge_v : ndarray of int64, shape (m,)
        End nodes of each edge, in the pipe's digitised direction.
    edge_start_m, edge_length_m : ndarray of float64, shape (m,)
        Where each edge starts along its pipe, and its length [m].
    report : BuildReport
        What the snapping did.
    """

    frame: LocalFrame
    pipe_ids: IntArray
    pipe_length_m: FloatArray
    node_lon: FloatArray
    node_lat: FloatArray
    node_x_m: FloatArray
    node_y_m: FloatArray
    edge_pipe: IntArray
    edge_u: IntArray
    edge_v: IntArray
    edge_start_m: FloatArray
    edge_length_m: FloatArray
    report: BuildReport
    _pipes_local: GeometryArray = field(repr=False)
    _pipes_local_length: FloatArray = field(repr=False)
    _pipe_tree: shapely.STRtree = field(repr=False)
    _pipe_order: IntArray = field(repr=False)  # argsort of pipe_ids
    _pipe_first_edge: IntArray = field(repr=False)  # CSR: edges of pipe p are [f[p], f[p+1])
    _adj_ptr: list[int] = field(repr=False)
    _adj_node: list[int] = field(repr=False)
    _adj_length: list[float] = field(repr=False)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_lon)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return len(self.edge_u)

    @property
    def edge_pipe_id(self) -> IntArray:
        """Pipe id of each edge."""
        return self.pipe_ids[self.edge_pipe]

    def pipe_index(self, pipe_ids: npt.ArrayLike) -> IntArray:
        """Index into ``pipe_ids`` of the given ids.

        Raises
        ------
        ValueError
            If an id is not a pipe of this network.
        """
        want = np.asarray(pipe_ids, dtype=np.int64).ravel()
        if not len(self.pipe_ids):
            if want.size:
                raise ValueError(f"pipe ids {want[:5].tolist()} given; the network is empty")
            return np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self.pipe_ids[self._pipe_order], want)
        at = np.minimum(at, len(self.pipe_ids) - 1)
        found = self._pipe_order[at]
        bad = self.pipe_ids[found] != want
        if bad.any():
            raise ValueError(
                f"pipe ids {want[bad][:5].tolist()} are not in this network "
                f"({len(self.pipe_ids)} pipes)"
            )
        return found

    def pipe_edges(self, pipe_id: int) -> IntArray:
        """Edges (indices, in order along the pipe) that make up pipe ``pipe_id``."""
        p = int(self.pipe_index([pipe_id])[0])
        return np.arange(self._pipe_first_edge[p], self._pipe_first_edge[p + 1], dtype=np.int64)

    def locate(self, pipe_id: int, position_m: float) -> Location:
        """The network location ``position_m`` metres along pipe ``pipe_id`` from its start.

        Raises
        ------
        ValueError
            If the pipe is unknown or the position is outside ``[0, length]``.
        """
        p = int(self.pipe_index([pipe_id])[0])
        length = float(self.pipe_length_m[p])
        if not (0.0 <= position_m <= length + 1e-9):
            raise ValueError(
                f"position_m was {position_m!r} on pipe {pipe_id}; expected 0..{length:.3f} m"
            )
        edges = self.pipe_edges(pipe_id)
        k = int(np.searchsorted(self.edge_start_m[edges], position_m, side="right")) - 1
        e = int(edges[max(k, 0)])
        offset = min(max(position_m - float(self.edge_start_m[e]), 0.0), self.edge_length_m[e])
        return Location(edge=e, position_m=float(offset))

    def to_networkx(self) -> nx.MultiGraph:
        """The network as an undirected ``networkx.MultiGraph``.

        Nodes are node indices with ``lon``, ``lat``; edges are keyed by edge index and carry
        ``pipe_id`` and ``length_m``.
        """
        g: nx.MultiGraph = nx.MultiGraph()
        g.add_nodes_from(
            (i, {"lon": lon, "lat": lat})
            for i, (lon, lat) in enumerate(
                zip(self.node_lon.tolist(), self.node_lat.tolist(), strict=True)
            )
        )
        g.add_edges_from(
            (u, v, e, {"pipe_id": pid, "length_m": length})
            for e, (u, v, pid, length) in enumerate(
                zip(
                    self.edge_u.tolist(),
                    self.edge_v.tolist(),
                    self.edge_pipe_id.tolist(),
                    self.edge_length_m.tolist(),
                    strict=True,
                )
            )
        )
        return g


@dataclass(frozen=True)
class Location:
    """A place on a network: a node, or a position along an edge.

    Attributes
    ----------
    edge : int, default -1
        Edge index, or -1 for a node location.
    position_m : float, default 0.0
        Distance along the edge from its ``edge_u`` node [m].
    node : int, default -1
        Node index, or -1 for an edge location.
    """

    edge: int = -1
    position_m: float = 0.0
    node: int = -1


@dataclass(frozen=True, eq=False)
class Attachment:
    """Point features bound to a network by :func:`attach_points`.

    Attributes
    ----------
    network : PipeNetwork
        The network they are bound to.
    point_ids : ndarray of int64, shape (k,)
        Ids of the attached points, input order.
    edge : ndarray of int64, shape (k,)
        Nearest edge of each.
    position_m : ndarray of float64, shape (k,)
        Position of the point's projection along that edge, from its ``edge_u`` node [m].
    offset_m : ndarray of float64, shape (k,)
        Straight-line distance from the point to the edge [m].
    node : ndarray of int64, shape (k,)
        The edge end node the point sits at (within ``node_tolerance_m`` along the edge), or -1.
    lon, lat : ndarray of float64, shape (k,)
        The attached points as given, WGS84 degrees.
    unattached_ids : ndarray of int64
        Ids of points farther than ``tolerance_m`` from every pipe.
    tolerance_m, node_tolerance_m : float
        The tolerances used [m].
    notes : tuple of str
        What was assumed.
    """

    network: PipeNetwork = field(repr=False)
    point_ids: IntArray
    edge: IntArray
    position_m: FloatArray
    offset_m: FloatArray
    node: IntArray
    lon: FloatArray
    lat: FloatArray
    unattached_ids: IntArray
    tolerance_m: float
    node_tolerance_m: float
    notes: tuple[str, ...]

    def locations(self) -> list[Location]:
        """Each attached point as a :class:`Location` on its edge (input order)."""
        return [
            Location(edge=e, position_m=p)
            for e, p in zip(self.edge.tolist(), self.position_m.tolist(), strict=True)
        ]


class EdgeReach(NamedTuple):
    """How an edge is reached (a named tuple: thousands are made per query).

    Attributes
    ----------
    distance_m : float
        Network distance to the nearest point of the edge [m].
    reached_m : float
        Length of the part of the edge within the maximum distance [m].
    length_m : float
        Length of the edge [m].
    """

    distance_m: float
    reached_m: float
    length_m: float

    @property
    def is_whole(self) -> bool:
        """Whether the whole edge is within the maximum distance."""
        return self.reached_m >= self.length_m - 1e-9


@dataclass(frozen=True)
class Reach:
    """What lies within a network distance of entry points (:func:`network_reach`).

    Attributes
    ----------
    max_distance_m : float
        The distance searched [m].
    nodes : dict of int to float
        Reached node index → network distance [m].
    edges : dict of int to EdgeReach
        Reached edge index → distance to its nearest point and length reached.
    pipes : dict of int to float
        Reached pipe id → network distance to its nearest reached point [m].
    points : dict of int to float
        Reached attached point id → network distance [m] (empty without attachments).
    notes : tuple of str
        What was assumed.
    """

    max_distance_m: float
    nodes: dict[int, float]
    edges: dict[int, EdgeReach]
    pipes: dict[int, float]
    points: dict[int, float]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Migration:
    """Where gas from a leak may travel along an underground network (:func:`gas_migration`).

    Attributes
    ----------
    adjacent_m, reach_m : float
        The straight-line and network distances used [m].
    entries : tuple of (int, float, float)
        Where gas enters the underground network: (pipe id, position along it [m], straight-line
        distance from the leak [m]), one per pipe within ``adjacent_m``.
    adjacent_spaces : dict of int to float
        Space id → straight-line distance from the leak [m], for spaces within ``adjacent_m``.
    reached_spaces : dict of int to float
        Space id → network distance from the nearest entry [m], for spaces within ``reach_m``
        along the network (adjacent spaces included, at their network distance).
    reach : Reach
        The reach along the underground network from the entries.
    notes : tuple of str
        What was assumed.
    """

    adjacent_m: float
    reach_m: float
    entries: tuple[tuple[int, float, float], ...]
    adjacent_spaces: dict[int, float]
    reached_spaces: dict[int, float]
    reach: Reach
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Input checks


def _positive(value: float, name: str, *, zero_ok: bool = False) -> float:
    ok = math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} was {value!r}; expected a finite number {bound} (metres)")
    return float(value)


def _ids(ids: npt.ArrayLike, name: str) -> IntArray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}; expected a 1-d array of int64 ids")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} has dtype {arr.dtype}; expected integer ids (int64)")
    out = arr.astype(np.int64)
    uniq, counts = np.unique(out, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{name} are not unique: {uniq[counts > 1][:5].tolist()} repeat")
    return out


_TYPE_NAMES: Final = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)


def _geometries(geoms: Sequence[BaseGeometry] | GeometryArray, n: int, kind: str) -> GeometryArray:
    arr = np.asarray(geoms, dtype=object).ravel()
    if len(arr) != n:
        raise ValueError(f"{len(arr)} geometries for {n} ids; expected one geometry per id")
    if not n:
        return arr
    type_ids = shapely.get_type_id(arr)
    want = _TYPE_NAMES.index(kind)
    bad = (type_ids != want) | shapely.is_empty(arr)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        t = int(type_ids[k])
        got = (
            "an empty geometry"
            if t == want
            else (f"a {_TYPE_NAMES[t]}" if 0 <= t < len(_TYPE_NAMES) else "not a geometry")
        )
        raise ValueError(
            f"{int(bad.sum())} of {n} geometries are not non-empty {kind}s (first: index {k}, "
            f"{got}); expected one {kind} each (explode multi-part features first)"
        )
    return np.asarray(shapely.force_2d(arr), dtype=object)


def _check_lonlat(xy: FloatArray, what: str) -> None:
    if not np.isfinite(xy).all():
        raise ValueError(f"{what} have NaN or infinite coordinates; expected WGS84 degrees")
    lon, lat = xy[:, 0], xy[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        k = int(np.flatnonzero((np.abs(lon) > 180) | (np.abs(lat) > 90))[0])
        raise ValueError(
            f"{what} have coordinate ({lon[k]}, {lat[k]}), outside WGS84 degrees "
            "(lon in [-180, 180], lat in [-90, 90]); reproject to EPSG:4326 first"
        )


def _to_local(frame: LocalFrame, geoms: GeometryArray) -> GeometryArray:
    shift = np.array([frame.lon0, frame.lat0])
    scale = np.array([frame.kx, frame.ky])
    return np.asarray(shapely.transform(geoms, lambda c: (c - shift) * scale), dtype=object)


def _scale_error(frame: LocalFrame, lat_min: float, lat_max: float) -> float:
    lats = np.array([lat_min, lat_max, frame.lat0])
    kx, ky = metres_per_degree(lats)
    return float(max(np.abs(kx / frame.kx - 1).max(), np.abs(ky / frame.ky - 1).max()))


def _frame_for(xy: FloatArray, max_scale_error: float, what: str) -> tuple[LocalFrame, float]:
    lon_min, lat_min = xy.min(axis=0)
    lon_max, lat_max = xy.max(axis=0)
    if lon_max - lon_min > 180:
        raise ValueError(
            f"{what} span longitudes {lon_min}..{lon_max}: across the antimeridian or wider than "
            "half the globe; expected one city's network (split it at the antimeridian)"
        )
    frame = LocalFrame((lon_min + lon_max) / 2, (lat_min + lat_max) / 2)
    err = _scale_error(frame, float(lat_min), float(lat_max))
    if err > max_scale_error:
        raise ValueError(
            f"{what} span latitudes {lat_min:.4f}..{lat_max:.4f}: the local frame's scale error "
            f"reaches {err:.2%}, above max_scale_error={max_scale_error:.2%}; expected a city-"
            "sized network (split it, or raise max_scale_error knowingly)"
        )
    return frame, err


# --------------------------------------------------------------------------------------------
# Building


def build_network(
    pipe_ids: npt.ArrayLike,
    lines: Sequence[BaseGeometry] | GeometryArray,
    *,
    snap_tolerance_m: float = SNAP_TOLERANCE_M,
    split_t_junctions: bool = True,
    max_scale_error: float = MAX_SCALE_ERROR,
) -> PipeNetwork:
    """Build a pipe network from line features.

    Parameters
    ----------
    pipe_ids : array_like of int64, shape (p,)
        Unique pipe ids.
    lines : sequence of shapely LineString, shape (p,)
        Pipe geometries, WGS84 lon/lat degrees (a Z coordinate is dropped).
    snap_tolerance_m : float, default 1.0
        Endpoints within this distance of each other become one node [m]; 0 joins only
        coincident endpoints. See :data:`SNAP_TOLERANCE_M` for the reasoning.
    split_t_junctions : bool, default True
        Where a node lies within ``snap_tolerance_m`` of another pipe's interior (a branch drawn
        to a main without a node on it), split that pipe there so the branch is connected. Off,
        such places are only counted: the branch stays unconnected. Interior crossings of two
        pipes are never connected (pipes cross at different depths).
    max_scale_error : float, default 0.01
        Refuse networks whose local frame is off by more than this fraction (module notes).

    Returns
    -------
    PipeNetwork
        Nodes, edges with ``length_m``, and a :class:`BuildReport` of what snapping did.

    Raises
    ------
    ValueError
        If ids are not unique integers, a geometry is not a non-empty LineString, coordinates
        are not WGS84 degrees, or the network is too large for one local frame.

    Notes
    -----
    Lengths are geodesic to float noise anywhere; straight-line tolerances are measured in one
    local frame whose scale error (``report.scale_error``) grows ≈ tan φ · Δφ with the
    north-south extent: 0.2 % for KY10's 34 km at 38° N, and refused above
    ``max_scale_error`` (1 %: about ±64 km at 45°).

    Node positions are the means of their endpoints; pipes keep their own geometry, so an edge
    may start up to ``max_snap_m`` from its node. Parts of a split pipe are measured by the
    ratio of positions along it in the local frame, good to the frame's scale variation along
    one pipe (< 10⁻⁴ for pipes under 1 km).

    Examples
    --------
    Two 100 m pipes meeting 0.4 m apart, and a third one touching the second's middle:

    >>> from shapely import LineString
    >>> d = 100 / 111_320  # ~100 m of longitude at the equator, in degrees
    >>> net = build_network(
    ...     [1, 2, 3],
    ...     [LineString([(0, 0), (d, 0)]), LineString([(d * 1.004, 0), (2 * d, 0)]),
    ...      LineString([(1.5 * d, 0), (1.5 * d, 0.001)])])
    >>> net.n_nodes, net.n_edges, net.report.snapped_pairs, net.report.t_junctions
    (5, 4, 1, 1)
    >>> [round(x, 1) for x in net.edge_length_m.tolist()]
    [100.0, 49.6, 50.0, 110.6]
    """
    ids = _ids(pipe_ids, "pipe_ids")
    geoms = _geometries(lines, len(ids), "LineString")
    tol = _positive(snap_tolerance_m, "snap_tolerance_m", zero_ok=True)
    if not (0 < max_scale_error < 1):
        raise ValueError(f"max_scale_error was {max_scale_error!r}; expected a fraction in (0, 1)")
    n = len(ids)
    if n == 0:
        return _empty_network(tol, split_t_junctions)

    coords, which = shapely.get_coordinates(geoms, return_index=True)
    _check_lonlat(coords, "pipe geometries")
    frame, scale_error = _frame_for(coords, max_scale_error, "pipe geometries")

    # Lengths: each segment scaled at its own mid-latitude (exact for city-sized segments).
    same = which[1:] == which[:-1]
    mid_lat = (coords[1:, 1] + coords[:-1, 1]) / 2
    kx, ky = metres_per_degree(mid_lat)
    seg = np.hypot(np.diff(coords[:, 0]) * kx, np.diff(coords[:, 1]) * ky)
    length = np.bincount(which[1:][same], weights=seg[same], minlength=n).astype(np.float64)

    local = _to_local(frame, geoms)
    local_length = np.asarray(shapely.length(local), dtype=np.float64)
    first = np.searchsorted(which, np.arange(n))
    last = np.append(first[1:], len(which)) - 1
    lx, ly = frame.to_local(coords[:, 0], coords[:, 1])
    local_xy = np.column_stack([lx, ly])
    ends = np.concatenate([local_xy[first], local_xy[last]])  # starts, then ends

    # Endpoint clusters. First the places where endpoints coincide exactly; then places within
    # the tolerance of each other are merged (single linkage), except two places joined by a
    # pipe: a 0.7 m pipe (a valve or fitting modelled as a short pipe) stays between two nodes.
    place_xy, place = np.unique(ends, axis=0, return_inverse=True)
    place = place.ravel().astype(np.int64)
    n_places = len(place_xy)
    place_points = np.asarray(shapely.points(place_xy), dtype=object)
    if tol > 0:
        i, j = shapely.STRtree(place_points).query(place_points, predicate="dwithin", distance=tol)
        i, j = i[i < j].astype(np.int64), j[i < j].astype(np.int64)
    else:
        i = j = np.zeros(0, dtype=np.int64)
    piped = np.unique(
        np.minimum(place[:n], place[n:]) * n_places + np.maximum(place[:n], place[n:])
    )
    apart = np.isin(i * n_places + j, piped)
    kept_apart = int(apart.sum())
    i, j = i[~apart], j[~apart]
    place_label = component_labels(n_places, i, j)
    labels = place_label[place]
    n_nodes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_nodes)
    node_xy = np.column_stack(
        [np.bincount(labels, weights=ends[:, k], minlength=n_nodes) / counts for k in (0, 1)]
    )
    snap_d = np.hypot(*(ends - node_xy[labels]).T)
    snapped_pairs = len(i)
    wide = np.zeros(n_nodes, dtype=bool)
    wide[labels[snap_d > tol + 1e-6]] = True  # 1 µm: float noise of a mean
    start_node, end_node = labels[:n], labels[n:]

    # Nodes touching another pipe's interior.
    pipe_tree = shapely.STRtree(local)
    node_points = np.asarray(shapely.points(node_xy), dtype=object)
    if tol > 0:
        tn, tp = pipe_tree.query(node_points, predicate="dwithin", distance=tol)
    else:
        tn, tp = pipe_tree.query(node_points, predicate="intersects")
    foreign = (start_node[tp] != tn) & (end_node[tp] != tn)
    tn, tp = tn[foreign], tp[foreign]
    along = np.asarray(shapely.line_locate_point(local[tp], node_points[tn]), dtype=np.float64)
    # Only contacts farther than the tolerance from both ends of the other pipe: nearer, they
    # are a matter for snapping (and a short pipe's two nodes, kept apart, stay apart).
    inside = (along > tol) & (along < local_length[tp] - tol)
    tn, tp, along = tn[inside], tp[inside], along[inside]
    ratio = np.divide(length, local_length, out=np.ones(n), where=local_length > 0)
    t_pos = along * ratio[tp]

    # Edges: each pipe from its start node through its T-nodes (sorted along it) to its end.
    if split_t_junctions and len(tn):
        all_pipe = np.concatenate([np.arange(n), tp, np.arange(n)])
        all_pos = np.concatenate([np.zeros(n), t_pos, length])
        all_key = np.concatenate([np.zeros(n), np.ones(len(tn)), np.full(n, 2.0)])
        all_node = np.concatenate([start_node, tn, end_node])
        # Per pipe: its start, then its T-nodes by position, then its end.
        order = np.lexsort((all_pos, all_key, all_pipe))
        all_pipe, all_pos, all_node = all_pipe[order], all_pos[order], all_node[order]
        link = np.flatnonzero(all_pipe[1:] == all_pipe[:-1])
        edge_pipe = all_pipe[link].astype(np.int64)
        edge_u = all_node[link].astype(np.int64)
        edge_v = all_node[link + 1].astype(np.int64)
        edge_start = all_pos[link]
        edge_length = np.maximum(all_pos[link + 1] - all_pos[link], 0.0)
    else:
        edge_pipe = np.arange(n, dtype=np.int64)
        edge_u, edge_v = start_node.astype(np.int64), end_node.astype(np.int64)
        edge_start, edge_length = np.zeros(n), length.copy()
    m = len(edge_u)
    first_edge = np.searchsorted(edge_pipe, np.arange(n + 1)).astype(np.int64)

    degree = np.bincount(edge_u, minlength=n_nodes) + np.bincount(edge_v, minlength=n_nodes)
    comps = component_labels(n_nodes, edge_u, edge_v)
    n_comp = int(comps.max()) + 1
    loops = int((start_node == end_node).sum())
    t_pipes = tuple(int(x) for x in np.unique(ids[tp]))
    node_lon, node_lat = frame.to_lonlat(node_xy[:, 0], node_xy[:, 1])

    notes = [
        f"{n} pipes -> {n_nodes} nodes and {m} edges; endpoints within {tol:g} m are one node "
        f"({snapped_pairs} pairs of endpoint places snapped, the farthest endpoint moved "
        f"{float(snap_d.max()):.3f} m)",
        f"{int((degree == 1).sum())} dangling ends, {n_comp} connected components",
    ]
    if kept_apart:
        notes.append(
            f"{kept_apart} pairs of places within {tol:g} m of each other are joined by a pipe "
            "shorter than the tolerance and were kept as two nodes"
        )
    if wide.any():
        notes.append(
            f"{int(wide.sum())} nodes merge endpoints more than {tol:g} m from the node "
            "(chains of near endpoints): check them"
        )
    if len(tn):
        how = (
            "split there and connected"
            if split_t_junctions
            else "NOT connected (split_t_junctions=False)"
        )
        notes.append(
            f"{len(tn)} node-pipe contacts where a node lies within {tol:g} m of another pipe's "
            f"interior (T-junctions without a node, on {len(t_pipes)} pipes): {how}"
        )
    if loops:
        notes.append(f"{loops} pipes start and end at one node (rings or shorter than {tol:g} m)")
    if scale_error > 1e-3:
        notes.append(f"local frame scale error up to {scale_error:.3%}: tolerances are that loose")

    report = BuildReport(
        pipes=n,
        nodes=n_nodes,
        edges=m,
        snapped_pairs=snapped_pairs,
        kept_apart=kept_apart,
        max_snap_m=float(snap_d.max()),
        wide_nodes=int(wide.sum()),
        dangling_ends=int((degree == 1).sum()),
        components=n_comp,
        t_junctions=len(tn),
        t_junction_pipes=t_pipes,
        t_junctions_split=split_t_junctions,
        self_loops=loops,
        scale_error=scale_error,
        snap_tolerance_m=tol,
        notes=tuple(notes),
    )
    ptr, nbr, w = _adjacency(n_nodes, edge_u, edge_v, edge_length)
    return PipeNetwork(
        frame=frame,
        pipe_ids=ids,
        pipe_length_m=length,
        node_lon=np.asarray(node_lon, dtype=np.float64),
        node_lat=np.asarray(node_lat, dtype=np.float64),
        node_x_m=node_xy[:, 0].copy(),
        node_y_m=node_xy[:, 1].copy(),
        edge_pipe=edge_pipe,
        edge_u=edge_u,
        edge_v=edge_v,
        edge_start_m=np.asarray(edge_start, dtype=np.float64),
        edge_length_m=np.asarray(edge_length, dtype=np.float64),
        report=report,
        _pipes_local=local,
        _pipes_local_length=local_length,
        _pipe_tree=pipe_tree,
        _pipe_order=np.argsort(ids, kind="stable").astype(np.int64),
        _pipe_first_edge=first_edge,
        _adj_ptr=ptr,
        _adj_node=nbr,
        _adj_length=w,
    )


def _adjacency(
    n_nodes: int, u: IntArray, v: IntArray, length: FloatArray
) -> tuple[list[int], list[int], list[float]]:
    """CSR adjacency as Python lists (what a heapq Dijkstra reads fastest)."""
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    w = np.concatenate([length, length])
    order = np.argsort(src, kind="stable")
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_nodes), out=ptr[1:])
    return ptr.tolist(), dst[order].tolist(), w[order].tolist()


def _empty_network(tol: float, split: bool) -> PipeNetwork:
    f0 = np.zeros(0, dtype=np.float64)
    i0 = np.zeros(0, dtype=np.int64)
    report = BuildReport(
        pipes=0,
        nodes=0,
        edges=0,
        snapped_pairs=0,
        kept_apart=0,
        max_snap_m=0.0,
        wide_nodes=0,
        dangling_ends=0,
        components=0,
        t_junctions=0,
        t_junction_pipes=(),
        t_junctions_split=split,
        self_loops=0,
        scale_error=0.0,
        snap_tolerance_m=tol,
        notes=("no pipes given: an empty network",),
    )
    return PipeNetwork(
        frame=LocalFrame(0.0, 0.0),
        pipe_ids=i0,
        pipe_length_m=f0,
        node_lon=f0,
        node_lat=f0,
        node_x_m=f0,
        node_y_m=f0,
        edge_pipe=i0,
        edge_u=i0,
        edge_v=i0,
        edge_start_m=f0,
        edge_length_m=f0,
        report=report,
        _pipes_local=np.zeros(0, dtype=object),
        _pipes_local_length=f0,
        _pipe_tree=shapely.STRtree([]),
        _pipe_order=i0,
        _pipe_first_edge=np.zeros(1, dtype=np.int64),
        _adj_ptr=[0],
        _adj_node=[],
        _adj_length=[],
    )


# --------------------------------------------------------------------------------------------
# Attaching points


def _local_points(network: PipeNetwork, points: GeometryArray, what: str) -> GeometryArray:
    xy = shapely.get_coordinates(points)
    _check_lonlat(xy, what)
    x, y = network.frame.to_local(xy[:, 0], xy[:, 1])
    err = _scale_error(network.frame, float(xy[:, 1].min()), float(xy[:, 1].max()))
    if err > max(network.report.scale_error, MAX_SCALE_ERROR):
        raise ValueError(
            f"{what} reach latitude {xy[:, 1].min():.4f}..{xy[:, 1].max():.4f}, where the "
            f"network's local frame is off by {err:.2%}; expected points near the network"
        )
    return np.asarray(shapely.points(x, y), dtype=object)


def _project(
    network: PipeNetwork, local_points: GeometryArray, tolerance_m: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Nearest pipe of each point within the tolerance: (point index, pipe, along [m], offset)."""
    if not len(local_points) or not len(network.pipe_ids):
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0), np.zeros(0)
    (qi, qp), dist = network._pipe_tree.query_nearest(
        local_points, max_distance=tolerance_m, return_distance=True, all_matches=True
    )
    # Ties (a point exactly at a junction is as near to every pipe there): lowest pipe index.
    order = np.lexsort((qp, qi))
    qi, qp, dist = qi[order], qp[order], dist[order]
    keep = np.ones(len(qi), dtype=bool)
    keep[1:] = qi[1:] != qi[:-1]
    qi, qp, dist = qi[keep], qp[keep], dist[keep]
    along = np.asarray(
        shapely.line_locate_point(network._pipes_local[qp], local_points[qi]), dtype=np.float64
    )
    local_len = network._pipes_local_length[qp]
    ratio = np.divide(
        network.pipe_length_m[qp], local_len, out=np.ones(len(qp)), where=local_len > 0
    )
    return qi.astype(np.int64), qp.astype(np.int64), along * ratio, dist.astype(np.float64)


def _edge_at(
    network: PipeNetwork, pipe: IntArray, along_m: FloatArray
) -> tuple[IntArray, FloatArray]:
    """Edge of each (pipe, position along it) and the position along that edge [m]."""
    first = network._pipe_first_edge[pipe]
    count = network._pipe_first_edge[pipe + 1] - first
    edge = first.copy()
    multi = np.flatnonzero(count > 1)
    for k in multi.tolist():  # only pipes split at T-junctions have several parts
        parts = slice(int(first[k]), int(first[k] + count[k]))
        at = int(np.searchsorted(network.edge_start_m[parts], along_m[k], side="right")) - 1
        edge[k] = first[k] + max(at, 0)
    pos = np.clip(along_m - network.edge_start_m[edge], 0.0, network.edge_length_m[edge])
    return edge.astype(np.int64), np.asarray(pos, dtype=np.float64)


def attach_points(
    network: PipeNetwork,
    point_ids: npt.ArrayLike,
    points: Sequence[BaseGeometry] | GeometryArray,
    *,
    tolerance_m: float = ATTACH_TOLERANCE_M,
    node_tolerance_m: float | None = None,
) -> Attachment:
    """Bind point features (manholes, valves, sensors, customers) to a network.

    Each point goes to the nearest edge within ``tolerance_m`` (ties, as at a junction where
    several pipes meet: the lowest pipe index), at the position of its projection along it; if
    that position is within ``node_tolerance_m`` of an end of the edge, the point is also at
    that end node.

    Parameters
    ----------
    network : PipeNetwork
        The network.
    point_ids : array_like of int64, shape (k,)
        Unique point ids.
    points : sequence of shapely Point, shape (k,)
        WGS84 lon/lat degrees.
    tolerance_m : float, default 3.0
        Largest straight-line distance from a point to its pipe [m] (:data:`ATTACH_TOLERANCE_M`).
    node_tolerance_m : float, optional
        Largest distance along the edge from a point to an end node for the point to count as
        at the node [m]; default the network's ``snap_tolerance_m`` (what already counts as one
        place there).

    Returns
    -------
    Attachment
        Attached points with edge, position, offset and node; unattached ids.

    Raises
    ------
    ValueError
        If ids are not unique integers, a geometry is not a Point, or points are not WGS84.

    Examples
    --------
    >>> from shapely import LineString, Point
    >>> d = 100 / 111_320
    >>> net = build_network([7], [LineString([(0, 0), (d, 0)])])
    >>> a = attach_points(net, [1, 2, 3], [Point(0.3 * d, 0.00001), Point(d, 0), Point(0, 1)])
    >>> a.point_ids.tolist(), [round(p, 1) for p in a.position_m.tolist()], a.node.tolist()
    ([1, 2], [30.0, 100.0], [-1, 1])
    >>> a.unattached_ids.tolist()
    [3]
    """
    ids = _ids(point_ids, "point_ids")
    geoms = _geometries(points, len(ids), "Point")
    tol = _positive(tolerance_m, "tolerance_m", zero_ok=True)
    node_tol = network.report.snap_tolerance_m if node_tolerance_m is None else node_tolerance_m
    node_tol = _positive(node_tol, "node_tolerance_m", zero_ok=True)
    if len(ids) == 0 or network.n_edges == 0:
        z = np.zeros(0, dtype=np.int64)
        note = "no points given" if len(ids) == 0 else "empty network: nothing attached"
        f0 = np.zeros(0)
        return Attachment(network, z, z, f0, f0, z, f0, f0, ids, tol, node_tol, (note,))
    local_points = _local_points(network, geoms, "points")
    xy = shapely.get_coordinates(geoms)
    qi, qp, along, offset = _project(network, local_points, tol)
    edge, pos = _edge_at(network, qp, along)
    length = network.edge_length_m[edge]
    at_u = pos <= node_tol
    at_v = ~at_u & (length - pos <= node_tol)
    node = np.where(at_u, network.edge_u[edge], np.where(at_v, network.edge_v[edge], -1))
    missing = np.ones(len(ids), dtype=bool)
    missing[qi] = False
    notes = [
        f"{len(qi)} of {len(ids)} points attached to the nearest pipe within {tol:g} m, "
        f"{int((node >= 0).sum())} of them at a node (within {node_tol:g} m of an edge end)"
    ]
    if missing.any():
        notes.append(
            f"{int(missing.sum())} points farther than {tol:g} m from every pipe: unattached"
        )
    return Attachment(
        network=network,
        point_ids=ids[qi],
        edge=edge,
        position_m=pos,
        offset_m=offset,
        node=node.astype(np.int64),
        lon=xy[qi, 0],
        lat=xy[qi, 1],
        unattached_ids=ids[missing],
        tolerance_m=tol,
        node_tolerance_m=node_tol,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# Reach


def _check_location(network: PipeNetwork, loc: Location) -> None:
    if (loc.node >= 0) == (loc.edge >= 0):
        raise ValueError(f"{loc!r}: expected exactly one of node or edge (the other -1)")
    if loc.node >= network.n_nodes or loc.edge >= network.n_edges:
        raise ValueError(
            f"{loc!r} is outside the network ({network.n_nodes} nodes, {network.n_edges} edges)"
        )
    if loc.edge >= 0:
        length = float(network.edge_length_m[loc.edge])
        if not (0.0 <= loc.position_m <= length + 1e-9):
            raise ValueError(
                f"{loc!r}: position_m outside edge {loc.edge} (expected 0..{length:.3f} m)"
            )


def _dijkstra(network: PipeNetwork, seeds: dict[int, float], cutoff: float) -> FloatArray:
    """Network distance of every node from the seeds (inf beyond ``cutoff``)."""
    ptr, nbr, w = network._adj_ptr, network._adj_node, network._adj_length
    dist = [math.inf] * network.n_nodes
    heap: list[tuple[float, int]] = []
    for node, d in seeds.items():
        if d <= cutoff and d < dist[node]:
            dist[node] = d
            heap.append((d, node))
    heapq.heapify(heap)
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist[node]:
            continue
        for k in range(ptr[node], ptr[node + 1]):
            nd = d + w[k]
            other = nbr[k]
            if nd < dist[other] and nd <= cutoff:
                dist[other] = nd
                heapq.heappush(heap, (nd, other))
    return np.asarray(dist, dtype=np.float64)


def network_reach(
    network: PipeNetwork,
    entries: Sequence[Location],
    *,
    max_distance_m: float,
    attachments: Attachment | None = None,
) -> Reach:
    """What lies within ``max_distance_m`` along the network of the entry points.

    Parameters
    ----------
    network : PipeNetwork
        The network.
    entries : sequence of Location
        Entry points (nodes, or positions on edges); distances start at 0 at each.
    max_distance_m : float
        Largest network distance followed [m] (>= 0).
    attachments : Attachment, optional
        Points bound to this network whose network distance is wanted.

    Returns
    -------
    Reach
        Reached nodes, edges (distance to the nearest point and length reached), pipes and
        attached points, with network distances [m].

    Raises
    ------
    ValueError
        If a location is not on the network, ``max_distance_m`` is negative, or the
        attachments belong to another network.

    Notes
    -----
    Pipes are undirected (gas and water in a broken or empty pipe go either way); a point at
    position ``p`` on an edge of length ``L`` whose ends are at network distances ``du`` and
    ``dv`` is at ``min(du + p, dv + L - p)`` (or nearer, from an entry on the same edge). No
    entries reach nothing.

    Examples
    --------
    A 100 m pipe and a 50 m pipe in a row, entered 30 m along the first:

    >>> from shapely import LineString
    >>> d = 1 / 111_320
    >>> net = build_network([1, 2], [LineString([(0, 0), (100 * d, 0)]),
    ...                              LineString([(100 * d, 0), (150 * d, 0)])])
    >>> r = network_reach(net, [Location(edge=0, position_m=30.0)], max_distance_m=90.0)
    >>> {k: round(v, 1) for k, v in r.nodes.items()}
    {0: 30.0, 1: 70.0}
    >>> round(r.edges[1].reached_m, 1), r.edges[0].is_whole
    (20.0, True)
    """
    reach = _positive(max_distance_m, "max_distance_m", zero_ok=True)
    if attachments is not None and attachments.network is not network:
        raise ValueError("attachments were made on another network; attach them to this one")
    for loc in entries:
        _check_location(network, loc)
    notes: list[str] = []
    if not entries:
        notes.append("no entry points: nothing reached")
        return Reach(reach, {}, {}, {}, {}, tuple(notes))
    length = network.edge_length_m
    seeds: dict[int, float] = {}
    on_edge: dict[int, list[float]] = {}
    for loc in entries:
        if loc.node >= 0:
            seeds[loc.node] = 0.0
            continue
        e, s = loc.edge, loc.position_m
        on_edge.setdefault(e, []).append(s)
        u, v = int(network.edge_u[e]), int(network.edge_v[e])
        seeds[u] = min(seeds.get(u, math.inf), s)
        seeds[v] = min(seeds.get(v, math.inf), float(length[e]) - s)
    dist = _dijkstra(network, seeds, reach)

    du, dv = dist[network.edge_u], dist[network.edge_v]
    near = np.minimum(du, dv)
    with np.errstate(invalid="ignore"):
        part = np.minimum(length, np.maximum(reach - du, 0) + np.maximum(reach - dv, 0))
    edge_dist = near.copy()
    for e, positions in on_edge.items():
        edge_dist[e] = 0.0
        part[e] = _union_length(
            [(s - reach, s + reach) for s in positions]
            + [(0.0, reach - float(du[e])), (float(length[e]) - (reach - float(dv[e])), math.inf)],
            float(length[e]),
        )
    hit = np.flatnonzero(edge_dist <= reach)
    edges = dict(
        zip(
            hit.tolist(),
            map(EdgeReach, edge_dist[hit].tolist(), part[hit].tolist(), length[hit].tolist()),
            strict=True,
        )
    )
    pipe_dist = np.full(len(network.pipe_ids), np.inf)
    np.minimum.at(pipe_dist, network.edge_pipe[hit], edge_dist[hit])
    reached_pipes = np.flatnonzero(np.isfinite(pipe_dist))
    pipes = dict(
        zip(
            network.pipe_ids[reached_pipes].tolist(),
            pipe_dist[reached_pipes].tolist(),
            strict=True,
        )
    )
    reached_nodes = np.flatnonzero(dist <= reach)
    nodes = dict(zip(reached_nodes.tolist(), dist[reached_nodes].tolist(), strict=True))

    points: dict[int, float] = {}
    if attachments is not None and len(attachments.point_ids):
        ae, ap = attachments.edge, attachments.position_m
        pd_ = np.minimum(du[ae] + ap, dv[ae] + length[ae] - ap)
        for k in np.flatnonzero(np.isin(ae, list(on_edge))).tolist():
            direct = min(abs(float(ap[k]) - s) for s in on_edge[int(ae[k])])
            pd_[k] = min(pd_[k], direct)
        ok = pd_ <= reach
        points = dict(zip(attachments.point_ids[ok].tolist(), pd_[ok].tolist(), strict=True))
    notes.append(
        f"{len(entries)} entry points; {len(nodes)} nodes, {len(edges)} edges and "
        f"{len(points)} attached points within {reach:g} m along the network (pipes undirected)"
    )
    return Reach(reach, nodes, edges, pipes, points, tuple(notes))


def _union_length(intervals: list[tuple[float, float]], length: float) -> float:
    """Length of the union of intervals clipped to [0, length]."""
    clipped = sorted(
        (max(a, 0.0), min(b, length)) for a, b in intervals if min(b, length) > max(a, 0.0)
    )
    total, end = 0.0, -math.inf
    for a, b in clipped:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


# --------------------------------------------------------------------------------------------
# Gas migration


def gas_migration(
    underground: PipeNetwork,
    leak: BaseGeometry,
    *,
    spaces: Attachment | None = None,
    adjacent_m: float = ADJACENT_M,
    reach_m: float = REACH_M,
) -> Migration:
    """Where gas leaking from a main may travel along an underground network.

    The chain of Qingdao 2013 and Kaohsiung 2014: gas (or oil vapour) leaving a pipe enters the
    drainage pipes, cable ducts or utility tunnels that pass within ``adjacent_m`` of the leak,
    then travels along them. Entries are the nearest points of every underground pipe within
    ``adjacent_m`` (straight line) of the leak geometry; from them gas is followed along the
    underground network up to ``reach_m``.

    Parameters
    ----------
    underground : PipeNetwork
        The connected underground network (drains, ducts, tunnels), built with
        :func:`build_network`.
    leak : shapely Point or LineString
        The leak location, or the leaking stretch of main, WGS84 degrees.
    spaces : Attachment, optional
        Underground spaces (manholes, cable wells, vaults) attached to ``underground``.
    adjacent_m : float, default 5.0
        Straight-line distance from the leak within which the underground network and spaces
        are adjacent [m] (:data:`ADJACENT_M`).
    reach_m : float, default 1000.0
        Network distance followed from the entries [m] (:data:`REACH_M`).

    Returns
    -------
    Migration
        Entries, adjacent spaces (straight-line distance), reached spaces (network distance)
        and the reach along the network.

    Raises
    ------
    ValueError
        If the leak is not a Point or LineString in WGS84 degrees, the distances are negative,
        or the spaces are attached to another network.

    Notes
    -----
    The network distance of a space starts at the entry, not at the leak: the soil leg is
    at most ``adjacent_m``. Gas is assumed to travel both ways along a pipe (no flow, no
    ventilation, no concentration decay): this says where to look, not what concentration
    to expect. No underground pipe within ``adjacent_m``: nothing is reached, and the
    result says so.

    Examples
    --------
    A drain passing 3 m from a leak, with manholes 150 m and 600 m along it:

    >>> from shapely import LineString, Point
    >>> d = 1 / 111_320
    >>> drain = build_network([1], [LineString([(0, 3 * d), (800 * d, 3 * d)])])
    >>> wells = attach_points(drain, [10, 11], [Point(150 * d, 3 * d), Point(600 * d, 3 * d)])
    >>> m = gas_migration(drain, Point(0, 0), spaces=wells, adjacent_m=5.0, reach_m=500.0)
    >>> {k: round(v) for k, v in m.reached_spaces.items()}
    {10: 150}
    """
    adj = _positive(adjacent_m, "adjacent_m", zero_ok=True)
    reach = _positive(reach_m, "reach_m", zero_ok=True)
    if not isinstance(leak, BaseGeometry) or shapely.get_type_id(leak) not in (0, 1):
        raise ValueError(f"leak was {leak!r}; expected a shapely Point or LineString (WGS84)")
    if leak.is_empty:
        raise ValueError("leak is an empty geometry; expected a Point or LineString (WGS84)")
    if spaces is not None and spaces.network is not underground:
        raise ValueError("spaces were attached to another network; attach them to `underground`")
    notes: list[str] = []
    if underground.n_edges == 0:
        empty = Reach(reach, {}, {}, {}, {}, ("empty underground network",))
        return Migration(adj, reach, (), {}, {}, empty, ("empty underground network",))
    xy = shapely.get_coordinates(leak)
    _check_lonlat(xy, "leak")
    leak_local = underground.frame.geometry_to_local(leak)
    pipes = underground._pipe_tree.query(leak_local, predicate="dwithin", distance=adj)
    pipes = np.sort(np.asarray(pipes, dtype=np.int64))
    entries: list[tuple[int, float, float]] = []
    locations: list[Location] = []
    if len(pipes):
        nearest_on_pipe = shapely.shortest_line(underground._pipes_local[pipes], leak_local)
        on_pipe = shapely.get_point(nearest_on_pipe, 0)
        along = np.asarray(
            shapely.line_locate_point(underground._pipes_local[pipes], on_pipe), dtype=np.float64
        )
        local_len = underground._pipes_local_length[pipes]
        ratio = np.divide(
            underground.pipe_length_m[pipes],
            local_len,
            out=np.ones(len(pipes)),
            where=local_len > 0,
        )
        along_m = along * ratio
        straight = np.asarray(shapely.length(nearest_on_pipe), dtype=np.float64)
        edge, pos = _edge_at(underground, pipes, along_m)
        for k in range(len(pipes)):
            entries.append(
                (int(underground.pipe_ids[pipes[k]]), float(along_m[k]), float(straight[k]))
            )
            locations.append(Location(edge=int(edge[k]), position_m=float(pos[k])))
    adjacent: dict[int, float] = {}
    if spaces is not None and len(spaces.point_ids):
        sx, sy = underground.frame.to_local(spaces.lon, spaces.lat)
        d = np.asarray(shapely.distance(shapely.points(sx, sy), leak_local), dtype=np.float64)
        near = d <= adj
        adjacent = dict(zip(spaces.point_ids[near].tolist(), d[near].tolist(), strict=True))
    result = network_reach(underground, locations, max_distance_m=reach, attachments=spaces)
    if not locations:
        notes.append(
            f"no underground pipe within {adj:g} m of the leak: gas does not enter this network"
        )
    else:
        notes.append(
            f"gas enters {len(locations)} underground pipes within {adj:g} m of the leak and is "
            f"followed {reach:g} m along the network both ways (no flow, ventilation or decay "
            "modelled); network distances start at the entry"
        )
    return Migration(
        adjacent_m=adj,
        reach_m=reach,
        entries=tuple(entries),
        adjacent_spaces=adjacent,
        reached_spaces=dict(result.points),
        reach=result,
        notes=tuple(notes) + result.notes,
    )
