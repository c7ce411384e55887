"""Valve isolation of a broken pipe: the valves to close, the segment shut off, who is cut off.

A valve sits on a pipe next to one of its end nodes (WNTR's valve layer model: valve *k* is on
link *L* and separates it from node *N*; after Walski 1993 on valve topology and Jun &
Loganathan 2007 on valve-controlled segments). Closing it cuts that one pipe-node contact.
The network cut at every valve falls into **valve segments**: pieces of pipes and nodes with
no valve between them (``wntr.metrics.topographic.valve_segments`` computes the same
partition). A break on a pipe is isolated by closing the
valves on the boundary of its segment; a valve that fails to close merges the segment on its
other side (the next-larger segment), whose own boundary valves must then be closed.

Everything here is topology: which pipes and nodes are shut off, and which demand nodes can no
longer reach any source (reservoir, tank, pump station) through open pipes. No hydraulics:
a node joined to a source by open pipes counts as served whatever its pressure.

Valve points are bound with :func:`gis.network.attach_points`: a valve is on the nearest edge,
next to the nearer end of it (``position_m`` from its ``edge_u`` end <= half the edge:
``edge_u``). A valve drawn exactly at a junction is on the lowest-indexed pipe there; at a node
of two pipes that is still the right cut (it separates them), at a node of three or more it may
not be, and the layout says how many such valves there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gis.network import Attachment, PipeNetwork, component_labels

__all__ = ["Isolation", "ValveClosure", "ValveLayout", "isolate", "valve_layout"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Sites (sources, demands): points attached to the network, or node indices.
Sites = Attachment | Sequence[int] | IntArray


@dataclass(frozen=True, eq=False)
class ValveLayout:
    """The valves of a network and the valve segments they make (:func:`valve_layout`).

    Attributes
    ----------
    network : PipeNetwork
        The network.
    valve_ids : ndarray of int64, shape (k,)
        Ids of the valves bound to the network.
    valve_edge, valve_node : ndarray of int64, shape (k,)
        The edge each valve is on and the end node it separates that edge from.
    valve_position_m : ndarray of float64, shape (k,)
        Position of the valve along its edge from ``edge_u`` [m].
    valve_at_node : ndarray of bool, shape (k,)
        Whether the valve sits at the node (within the attachment's ``node_tolerance_m``).
    segment_of_node, segment_of_edge : ndarray of int64
        Valve segment of each node and edge (0 … n_segments-1).
    n_segments : int
        Number of valve segments.
    notes : tuple of str
        What was assumed in binding the valves.
    """

    network: PipeNetwork = field(repr=False)
    valve_ids: IntArray
    valve_edge: IntArray
    valve_node: IntArray
    valve_position_m: FloatArray
    valve_at_node: BoolArray
    segment_of_node: IntArray
    segment_of_edge: IntArray
    n_segments: int
    notes: tuple[str, ...]
    _side_edge: IntArray = field(repr=False)  # segment on the valve's pipe side
    _side_node: IntArray = field(repr=False)  # segment on the valve's node side
    _seg_valve_ptr: IntArray = field(repr=False)
    _seg_valves: IntArray = field(repr=False)
    _seg_edge_ptr: IntArray = field(repr=False)
    _seg_edges: IntArray = field(repr=False)
    _seg_node_ptr: IntArray = field(repr=False)
    _seg_nodes: IntArray = field(repr=False)
    _node_component: IntArray = field(repr=False)


@dataclass(frozen=True)
class ValveClosure:
    """One valve to close.

    Attributes
    ----------
    valve_id : int
        The valve.
    pipe_id : int
        The pipe it is on.
    node : int
        The node it separates the pipe from.
    position_m : float
        Its position along the pipe from the pipe's start [m].
    at_node : bool
        Whether it sits at the node rather than along the pipe.
    """

    valve_id: int
    pipe_id: int
    node: int
    position_m: float
    at_node: bool


@dataclass(frozen=True)
class Isolation:
    """How to isolate a break, and what it cuts off (:func:`isolate`).

    Attributes
    ----------
    pipe_id : int
        The broken pipe.
    valves_to_close : tuple of ValveClosure
        The valves on the boundary of the isolated segment (empty in the junction fallback).
    failed_valves_used : tuple of int
        Failed valves that were on a boundary and so enlarged the segment.
    junctions_to_close : tuple of int
        In the fallback, the nodes at which the broken pipe is shut (both of its ends).
    is_fallback : bool
        True when no valve bounds the segment and the pipe is closed at its junctions instead.
    segment_edges : tuple of int
        Edges shut off.
    segment_pipes : tuple of int
        Ids of the pipes those edges belong to.
    segment_nodes : tuple of int
        Nodes inside the shut-off segment (none in the fallback: junctions stay in service).
    length_m : float
        Total length of the edges shut off [m].
    unserved_nodes : tuple of int or None
        Nodes that cannot reach any source once the segment is shut (segment nodes included);
        None when no sources were given.
    cut_off_nodes : tuple of int or None
        Of those, the ones outside the segment that were served before.
    unserved_demands : tuple of int or None
        Demand ids (attached point ids, or node indices) among the unserved; None when no
        sources or no demands were given.
    notes : tuple of str
        What was assumed, in words.
    """

    pipe_id: int
    valves_to_close: tuple[ValveClosure, ...]
    failed_valves_used: tuple[int, ...]
    junctions_to_close: tuple[int, ...]
    is_fallback: bool
    segment_edges: tuple[int, ...]
    segment_pipes: tuple[int, ...]
    segment_nodes: tuple[int, ...]
    length_m: float
    unserved_nodes: tuple[int, ...] | None
    cut_off_nodes: tuple[int, ...] | None
    unserved_demands: tuple[int, ...] | None
    notes: tuple[str, ...]


def _csr(keys: IntArray, values: IntArray, n_keys: int) -> tuple[IntArray, IntArray]:
    order = np.argsort(keys, kind="stable")
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=ptr[1:])
    return ptr, values[order].astype(np.int64)


def valve_layout(network: PipeNetwork, valves: Attachment | None) -> ValveLayout:
    """Bind valves to a network and split it into valve segments.

    Parameters
    ----------
    network : PipeNetwork
        The network.
    valves : Attachment or None
        Valve points attached to ``network`` (:func:`gis.network.attach_points`); None or an
        empty attachment for a network without valves.

    Returns
    -------
    ValveLayout
        The valves (edge, node, position) and the valve segment of every node and edge.

    Raises
    ------
    ValueError
        If ``valves`` were attached to another network.

    Notes
    -----
    Each valve separates its edge from the nearer end node of it. Two valves on the same edge
    next to the same node are one cut: the second is kept in the layout but changes nothing.
    Valves are taken as normally open; a network with normally closed boundary valves needs
    those pipes left out of it.

    Examples
    --------
    A row of three 100 m pipes with a valve 2 m into the middle one, at its left end:

    >>> from shapely import LineString, Point
    >>> from gis.network import attach_points, build_network
    >>> d = 1 / 111_320
    >>> net = build_network([1, 2, 3], [LineString([(x * d, 0), ((x + 100) * d, 0)])
    ...                                 for x in (0, 100, 200)])
    >>> lay = valve_layout(net, attach_points(net, [9], [Point(102 * d, 0)]))
    >>> lay.n_segments, lay.segment_of_edge.tolist(), lay.valve_node.tolist()
    (2, [0, 1, 1], [1])
    """
    if valves is not None and valves.network is not network:
        raise ValueError("valves were attached to another network; attach them to this one")
    n, m = network.n_nodes, network.n_edges
    notes: list[str] = []
    if valves is None or not len(valves.point_ids):
        ids = np.zeros(0, dtype=np.int64)
        edge, node, pos = ids, ids, np.zeros(0)
        at_node = np.zeros(0, dtype=bool)
        notes.append("no valves on this network")
    else:
        ids, edge, pos = valves.point_ids, valves.edge, valves.position_m
        length = network.edge_length_m[edge]
        near_u = pos <= length / 2
        node = np.where(near_u, network.edge_u[edge], network.edge_v[edge]).astype(np.int64)
        at_node = valves.node >= 0
        notes.append(
            f"{len(ids)} valves, each separating its pipe from the nearer end node "
            f"({int(at_node.sum())} drawn at the node itself)"
        )
        if len(valves.unattached_ids):
            notes.append(
                f"{len(valves.unattached_ids)} valves farther than {valves.tolerance_m:g} m from "
                f"every pipe were ignored: {valves.unattached_ids[:10].tolist()}"
            )
        degree = np.bincount(network.edge_u, minlength=n) + np.bincount(network.edge_v, minlength=n)
        ambiguous = at_node & (degree[node] >= 3)
        if ambiguous.any():
            notes.append(
                f"{int(ambiguous.sum())} valves drawn at a junction of 3 or more pipes were put "
                "on the lowest-indexed pipe there (which pipe they close is not in the data)"
            )
    # Elements: nodes 0..n-1 and edges n..n+m-1, joined at every pipe-node contact not valved.
    inc_edge = np.concatenate([np.arange(m), np.arange(m)]).astype(np.int64)
    inc_node = np.concatenate([network.edge_u, network.edge_v]).astype(np.int64)
    cut = np.isin(inc_edge * max(n, 1) + inc_node, edge * max(n, 1) + node)
    labels = component_labels(n + m, inc_edge[~cut] + n, inc_node[~cut])
    n_seg = int(labels.max()) + 1 if n + m else 0
    seg_node, seg_edge = labels[:n], labels[n:]
    side_edge, side_node = seg_edge[edge], seg_node[node]
    boundary = np.flatnonzero(side_edge != side_node).astype(np.int64)
    v_ptr, v_list = _csr(
        np.concatenate([side_edge[boundary], side_node[boundary]]),
        np.concatenate([boundary, boundary]),
        n_seg,
    )
    e_ptr, e_list = _csr(seg_edge, np.arange(m, dtype=np.int64), n_seg)
    n_ptr, n_list = _csr(seg_node, np.arange(n, dtype=np.int64), n_seg)
    if len(ids):
        notes.append(f"{n_seg} valve segments")
    return ValveLayout(
        network=network,
        valve_ids=ids,
        valve_edge=edge,
        valve_node=node,
        valve_position_m=pos,
        valve_at_node=at_node,
        segment_of_node=seg_node,
        segment_of_edge=seg_edge,
        n_segments=n_seg,
        notes=tuple(notes),
        _side_edge=side_edge,
        _side_node=side_node,
        _seg_valve_ptr=v_ptr,
        _seg_valves=v_list,
        _seg_edge_ptr=e_ptr,
        _seg_edges=e_list,
        _seg_node_ptr=n_ptr,
        _seg_nodes=n_list,
        _node_component=component_labels(n, network.edge_u, network.edge_v),
    )


def _elements(network: PipeNetwork, sites: Sites, what: str) -> tuple[IntArray, IntArray]:
    """(element index, id) of each site: a node i is element i, an edge e is n + e."""
    n = network.n_nodes
    if isinstance(sites, Attachment):
        if sites.network is not network:
            raise ValueError(f"{what} were attached to another network; attach them to this one")
        element = np.where(sites.node >= 0, sites.node, n + sites.edge).astype(np.int64)
        return element, sites.point_ids
    nodes = np.asarray(sites, dtype=np.int64).ravel()
    if nodes.size and (nodes.min() < 0 or nodes.max() >= n):
        raise ValueError(
            f"{what} node indices {nodes[(nodes < 0) | (nodes >= n)][:5].tolist()} are not "
            f"nodes of the network (0..{n - 1}); give node indices or attached points"
        )
    return nodes, nodes


def isolate(
    layout: ValveLayout,
    pipe_id: int,
    *,
    break_at_m: float | None = None,
    failed_valves: Sequence[int] = (),
    sources: Sites | None = None,
    demands: Sites | None = None,
) -> Isolation:
    """The valves to close for a break on ``pipe_id``, the segment shut off, who is cut off.

    Parameters
    ----------
    layout : ValveLayout
        Valves and segments of the network (:func:`valve_layout`).
    pipe_id : int
        The broken pipe.
    break_at_m : float, optional
        Where the break is along the pipe from its start [m]; only matters for pipes split at
        T-junctions (then only the part holding the break is isolated). Default: anywhere on
        the pipe, so every part of it.
    failed_valves : sequence of int, default ()
        Ids of valves that fail to close (seized, buried, broken): the segment grows past them.
    sources : Attachment or sequence of int, optional
        Sources (reservoirs, tanks, pump stations, regulator stations): attached points or node
        indices. Without them, who is cut off is not computed.
    demands : Attachment or sequence of int, optional
        Demand nodes or attached customers whose service is wanted.

    Returns
    -------
    Isolation
        Valves to close (or junctions, in the fallback), the segment shut off, unserved and
        cut-off nodes, unserved demands, and what was assumed.

    Raises
    ------
    ValueError
        If the pipe is not in the network, ``break_at_m`` is off the pipe, a failed valve id is
        unknown, or sites are not on this network.

    Notes
    -----
    Fallback: when no valve bounds the segment (a network without valves, or a valve-free area
    that is the whole connected network), the break is isolated at the nearest junctions: the
    broken pipe (or its broken part) is closed at both of its end nodes, which stay in service.
    The fallback is also taken when the valve segment holds a source (reservoir, tank, pump
    station): closing the segment's valves would not stop that source feeding the break (a
    source outlet valve belongs in the valve layer, which puts the source outside the
    segment). A network cut off from every source is "unserved", never an error.

    Examples
    --------
    A source at the west end of a row of three 100 m pipes, valves 2 m either side of node 1:

    >>> from shapely import LineString, Point
    >>> from gis.network import attach_points, build_network
    >>> d = 1 / 111_320
    >>> net = build_network([1, 2, 3], [LineString([(x * d, 0), ((x + 100) * d, 0)])
    ...                                 for x in (0, 100, 200)])
    >>> valves = attach_points(net, [8, 9], [Point(98 * d, 0), Point(102 * d, 0)])
    >>> iso = isolate(valve_layout(net, valves), 2, sources=[0], demands=[2, 3])
    >>> [v.valve_id for v in iso.valves_to_close], iso.segment_pipes, iso.unserved_demands
    ([9], (2, 3), (2, 3))

    Valve 9 seized: node 1 joins the segment, and valve 8 beyond it must be closed:

    >>> iso = isolate(valve_layout(net, valves), 2, failed_valves=[9], sources=[0])
    >>> [v.valve_id for v in iso.valves_to_close], iso.segment_nodes
    ([8], (1, 2, 3))
    """
    net = layout.network
    n = net.n_nodes
    edges = net.pipe_edges(pipe_id)
    if break_at_m is not None:
        edges = np.array([net.locate(pipe_id, break_at_m).edge], dtype=np.int64)
    failed = np.asarray(failed_valves, dtype=np.int64).ravel()
    unknown = failed[~np.isin(failed, layout.valve_ids)]
    if unknown.size:
        raise ValueError(
            f"failed_valves {unknown[:5].tolist()} are not valves of this layout "
            f"({len(layout.valve_ids)} valves)"
        )
    is_failed = np.isin(layout.valve_ids, failed)
    notes = list(layout.notes)

    # The segment(s) of the broken edges, grown through every failed boundary valve.
    segs: set[int] = {int(s) for s in layout.segment_of_edge[edges].tolist()}
    queue = list(segs)
    used: set[int] = set()
    while queue:
        s = queue.pop()
        for v in layout._seg_valves[layout._seg_valve_ptr[s] : layout._seg_valve_ptr[s + 1]]:
            if not is_failed[v]:
                continue
            used.add(int(v))
            for other in (int(layout._side_edge[v]), int(layout._side_node[v])):
                if other not in segs:
                    segs.add(other)
                    queue.append(other)
    seg_arr = np.array(sorted(segs), dtype=np.int64)
    cand = np.unique(
        np.concatenate(
            [
                layout._seg_valves[layout._seg_valve_ptr[s] : layout._seg_valve_ptr[s + 1]]
                for s in seg_arr.tolist()
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
    )
    inside_e = np.isin(layout._side_edge[cand], seg_arr)
    inside_n = np.isin(layout._side_node[cand], seg_arr)
    boundary = cand[(inside_e != inside_n) & ~is_failed[cand]]

    src_el = None if sources is None else _elements(net, sources, "sources")[0]
    seg_edges = seg_nodes = np.zeros(0, dtype=np.int64)
    if len(boundary):
        seg_edges = np.sort(
            np.concatenate(
                [
                    layout._seg_edges[layout._seg_edge_ptr[s] : layout._seg_edge_ptr[s + 1]]
                    for s in seg_arr.tolist()
                ]
            )
        )
        seg_nodes = np.sort(
            np.concatenate(
                [
                    layout._seg_nodes[layout._seg_node_ptr[s] : layout._seg_node_ptr[s + 1]]
                    for s in seg_arr.tolist()
                ]
            )
        )
    # A source inside the valve segment keeps feeding the break whatever valves are closed (an
    # outlet valve it has would be in the valve layer, and the source outside the segment).
    fed = 0
    if src_el is not None and len(boundary):
        inside = np.zeros(n + net.n_edges, dtype=bool)
        inside[n + seg_edges] = True
        inside[seg_nodes] = True
        fed = int(inside[src_el].sum())

    if len(boundary) == 0 or fed:
        is_fallback = True
        if not len(layout.valve_ids):
            why = "no valves on this network"
        elif fed:
            why = (
                f"the valve segment of this pipe ({len(seg_edges)} edges, "
                f"{float(net.edge_length_m[seg_edges].sum()):.0f} m) holds {fed} sources, so "
                "closing its valves cannot stop the flow into the break"
            )
        else:
            why = "no valve bounds the segment of this pipe" + (
                f" once valves {sorted(int(layout.valve_ids[v]) for v in used)} failed"
                if used
                else ""
            )
        seg_edges = np.unique(edges)
        seg_nodes = np.zeros(0, dtype=np.int64)
        junctions = np.unique(np.concatenate([net.edge_u[seg_edges], net.edge_v[seg_edges]]))
        notes.append(
            f"{why}: isolated at the nearest junctions (pipe {pipe_id} closed at both ends, "
            f"nodes {junctions.tolist()}, which stay in service)"
        )
        closures: tuple[ValveClosure, ...] = ()
    else:
        is_fallback = False
        junctions = np.zeros(0, dtype=np.int64)
        closures = tuple(
            ValveClosure(
                valve_id=int(layout.valve_ids[v]),
                pipe_id=int(net.edge_pipe_id[layout.valve_edge[v]]),
                node=int(layout.valve_node[v]),
                position_m=float(
                    net.edge_start_m[layout.valve_edge[v]] + layout.valve_position_m[v]
                ),
                at_node=bool(layout.valve_at_node[v]),
            )
            for v in boundary.tolist()
        )
        notes.append(
            f"close {len(closures)} valves: shuts {len(seg_edges)} edges "
            f"({float(net.edge_length_m[seg_edges].sum()):.0f} m) and {len(seg_nodes)} nodes"
        )
        if used:
            notes.append(
                f"valves {sorted(int(layout.valve_ids[v]) for v in used)} failed to "
                "close: the next valves out were taken"
            )

    unserved_nodes = cut_off = unserved_demands = None
    if src_el is None:
        notes.append(
            "no sources given: who is cut off was not computed, and a source inside the valve "
            "segment could not be checked for"
        )
    else:
        removed = np.zeros(n + net.n_edges, dtype=bool)
        removed[n + seg_edges] = True
        removed[seg_nodes] = True
        m = net.n_edges
        inc_e = np.concatenate([np.arange(m), np.arange(m)]) + n
        inc_n = np.concatenate([net.edge_u, net.edge_v])
        keep = ~removed[inc_e] & ~removed[inc_n]
        comp = component_labels(n + m, inc_e[keep], inc_n[keep])
        live = src_el[~removed[src_el]]
        served = np.isin(comp, comp[live]) & ~removed
        node_unserved = ~served[:n]
        unserved_nodes = tuple(np.flatnonzero(node_unserved).tolist())
        # Served before: in a connected component (whole network) that holds a source.
        src_nodes = np.where(src_el >= n, net.edge_u[np.maximum(src_el - n, 0)], src_el)
        before = np.isin(layout._node_component, layout._node_component[src_nodes])
        outside = np.ones(n, dtype=bool)
        outside[seg_nodes] = False
        cut_off = tuple(np.flatnonzero(node_unserved & before & outside).tolist())
        never = int((~before).sum())
        if not len(src_el):
            notes.append("no sources (an empty list): the whole network is unserved")
        elif not len(live):
            notes.append("every source is shut off: the whole network is unserved")
        if never:
            notes.append(
                f"{never} nodes reach no source even before the break (not counted as cut off)"
            )
        if demands is not None:
            dem_el, dem_ids = _elements(net, demands, "demands")
            unserved_demands = tuple(dem_ids[~served[dem_el]].tolist())
            notes.append(
                f"{len(unserved_demands)} of {len(dem_ids)} demands unserved "
                "(connectivity only: no pressure or flow computed)"
            )
    return Isolation(
        pipe_id=int(pipe_id),
        valves_to_close=closures,
        failed_valves_used=tuple(sorted(int(layout.valve_ids[v]) for v in used)),
        junctions_to_close=tuple(junctions.tolist()),
        is_fallback=is_fallback,
        segment_edges=tuple(seg_edges.tolist()),
        segment_pipes=tuple(np.unique(net.edge_pipe_id[seg_edges]).tolist()),
        segment_nodes=tuple(seg_nodes.tolist()),
        length_m=float(net.edge_length_m[seg_edges].sum()),
        unserved_nodes=unserved_nodes,
        cut_off_nodes=cut_off,
        unserved_demands=unserved_demands,
        notes=tuple(notes),
    )
