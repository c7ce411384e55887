"""Valve isolation (gis.isolation): valves to close, segments, failed valves, the junction
fallback and cut-off demand, on hand-made networks and on KY10 (tests/data/ky10), checked there
against networkx computations on the EPANET node names."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
from shapely import LineString, Point

from gis.frames import LocalFrame
from gis.isolation import isolate, valve_layout
from gis.network import PipeNetwork, attach_points, build_network

DATA = Path(__file__).resolve().parents[1] / "data"
HEFEI = LocalFrame(117.28, 31.86)


def line(*xy_m: tuple[float, float]) -> LineString:
    x, y = np.array(xy_m, dtype=float).T
    lon, lat = HEFEI.to_lonlat(x, y)
    return LineString(np.column_stack([lon, lat]))


def points(*xy_m: tuple[float, float]) -> list[Point]:
    out = []
    for x, y in xy_m:
        lon, lat = HEFEI.to_lonlat(x, y)
        out.append(Point(float(lon), float(lat)))
    return out


def node_near(net: PipeNetwork, x_m: float, y_m: float) -> int:
    lon, lat = HEFEI.to_lonlat(x_m, y_m)
    x, y = net.frame.to_local(lon, lat)
    return int(np.argmin(np.hypot(net.node_x_m - x, net.node_y_m - y)))


# --- a tree --------------------------------------------------------------------------------
#
#   S(0,0) --1-- A(100,0) --2-- B(200,0) --3-- C(300,0)
#                   |4
#                 D(100,100)
#                   |5
#                 E(100,200)
#
# Valves: 21 on pipe 2 next to A, 24 on pipe 4 next to A, 35 on pipe 5 next to D, 33 on pipe 3
# next to B. The source is S.


def tree():
    net = build_network(
        np.arange(1, 6),
        [
            line((0, 0), (100, 0)),
            line((100, 0), (200, 0)),
            line((200, 0), (300, 0)),
            line((100, 0), (100, 100)),
            line((100, 100), (100, 200)),
        ],
    )
    valves = attach_points(net, [21, 24, 35, 33], points((102, 0), (100, 2), (100, 102), (202, 0)))
    customers = attach_points(net, [901, 902, 903], points((100, 150), (300, 0), (50, 0)))
    return net, valve_layout(net, valves), customers


def test_a_break_on_a_branch_closes_the_two_valves_around_it() -> None:
    net, lay, customers = tree()
    s, d, e = node_near(net, 0, 0), node_near(net, 100, 100), node_near(net, 100, 200)
    iso = isolate(lay, 4, sources=[s], demands=customers)
    # Pipe 4 is cut from A by valve 24 and pipe 5 from D by valve 35: the segment is pipe 4
    # and node D; E beyond it is cut off, with customer 901 on pipe 5.
    assert sorted(v.valve_id for v in iso.valves_to_close) == [24, 35]
    assert (iso.segment_pipes, iso.segment_nodes) == ((4,), (d,))
    assert iso.length_m == pytest.approx(100.0, abs=0.05)
    assert iso.cut_off_nodes == (e,)
    assert set(iso.unserved_nodes or ()) == {d, e}
    assert iso.unserved_demands == (901,)
    assert not iso.is_fallback
    v24 = next(v for v in iso.valves_to_close if v.valve_id == 24)
    assert (v24.pipe_id, v24.node, v24.at_node) == (4, node_near(net, 100, 0), False)
    assert v24.position_m == pytest.approx(2.0, abs=0.01)


def test_a_valve_that_fails_to_close_gives_the_next_larger_segment() -> None:
    net, lay, customers = tree()
    s = node_near(net, 0, 0)
    iso = isolate(lay, 4, failed_valves=[35], sources=[s], demands=customers)
    # Valve 35 seized: pipe 5 and E join the segment; only valve 24 bounds it now.
    assert [v.valve_id for v in iso.valves_to_close] == [24]
    assert iso.segment_pipes == (4, 5)
    assert iso.length_m == pytest.approx(200.0, abs=0.05)
    assert iso.failed_valves_used == (35,)
    assert iso.cut_off_nodes == ()  # everything unserved is inside the segment
    # A failed valve that bounds nothing of this break changes nothing.
    same = isolate(lay, 4, failed_valves=[33], sources=[s])
    assert sorted(v.valve_id for v in same.valves_to_close) == [24, 35]
    assert same.failed_valves_used == ()


def test_a_failed_valve_that_lets_the_source_in_falls_back_to_junctions() -> None:
    net, lay, customers = tree()
    s = node_near(net, 0, 0)
    iso = isolate(lay, 4, failed_valves=[24], sources=[s], demands=customers)
    # Valve 24 seized: A, pipe 1 and the source S join the segment; no valve can stop S
    # feeding the break, so pipe 4 is closed at its junctions A and D instead.
    assert iso.is_fallback
    assert iso.valves_to_close == ()
    assert set(iso.junctions_to_close) == {node_near(net, 100, 0), node_near(net, 100, 100)}
    assert iso.segment_pipes == (4,)
    assert "holds 1 sources" in " ".join(iso.notes)
    assert iso.unserved_demands == (901,)  # pipe 5 hangs off D, which is now cut off


def test_no_valves_falls_back_to_the_pipe_junctions() -> None:
    net, _, customers = tree()
    lay = valve_layout(net, None)
    iso = isolate(lay, 2, sources=[node_near(net, 0, 0)], demands=customers)
    b, c = node_near(net, 200, 0), node_near(net, 300, 0)
    assert iso.is_fallback
    assert set(iso.junctions_to_close) == {node_near(net, 100, 0), b}
    assert iso.segment_nodes == ()
    # B and C, beyond pipe 2, are cut off; customer 902 at C with them.
    assert set(iso.cut_off_nodes or ()) == {b, c}
    assert iso.unserved_demands == (902,)
    assert any("no valves on this network" in s for s in iso.notes)


# --- a loop --------------------------------------------------------------------------------


def loop():
    """S(-100,0) -1- A(0,0) -2- B(100,0) -3- C(100,100) -4- D(0,100) -5- A; valves 2 m into
    pipe 3 from each of its ends."""
    net = build_network(
        np.arange(1, 6),
        [
            line((-100, 0), (0, 0)),
            line((0, 0), (100, 0)),
            line((100, 0), (100, 100)),
            line((100, 100), (0, 100)),
            line((0, 100), (0, 0)),
        ],
    )
    valves = attach_points(net, [31, 32], points((100, 2), (100, 98)))
    return net, valve_layout(net, valves)


def test_a_pipe_valved_at_both_ends_on_a_loop_cuts_nobody_off() -> None:
    net, lay = loop()
    s = node_near(net, -100, 0)
    iso = isolate(lay, 3, sources=[s])
    assert sorted(v.valve_id for v in iso.valves_to_close) == [31, 32]
    assert (iso.segment_pipes, iso.segment_nodes) == ((3,), ())
    assert iso.unserved_nodes == ()  # C is fed round the loop through D
    fallback = isolate(valve_layout(net, None), 3, sources=[s])
    assert fallback.is_fallback
    assert fallback.unserved_nodes == ()


def test_valves_that_bound_nothing_fall_back_and_say_so() -> None:
    net, lay = loop()
    # Pipe 1 is in the valve-free part holding everything but pipe 3: its segment is bounded
    # by valves 31 and 32, but holds the source, so closing them would not isolate the break.
    s = node_near(net, -100, 0)
    iso = isolate(lay, 1, sources=[s])
    assert iso.is_fallback
    assert iso.junctions_to_close == tuple(sorted((s, node_near(net, 0, 0))))
    # Without sources the valve segment is given, with a note that sources were not checked.
    blind = isolate(lay, 1)
    assert not blind.is_fallback
    assert blind.unserved_nodes is None
    assert any("no sources given" in s for s in blind.notes)


def test_cut_off_from_every_source_is_unserved_not_an_error() -> None:
    net, lay = loop()
    iso = isolate(lay, 3, sources=[])
    assert len(iso.unserved_nodes or ()) == net.n_nodes
    assert any("whole network is unserved" in s for s in iso.notes)


def test_a_break_on_one_part_of_a_split_pipe() -> None:
    # Main 1 (0-100 m) with a branch 2 teeing in at 40 m (no node drawn): the main is split
    # into parts 0-40 and 40-100. Valves 2 m either side of the tee on the main, 2 m up the
    # branch.
    net = build_network([1, 2], [line((0, 0), (100, 0)), line((40, 60), (40, 0))])
    lay = valve_layout(net, attach_points(net, [7, 8, 9], points((38, 0), (42, 0), (40, 2))))
    at_10 = isolate(lay, 1, break_at_m=10.0)
    assert [v.valve_id for v in at_10.valves_to_close] == [7]
    assert at_10.length_m == pytest.approx(40.0, abs=0.05)
    anywhere = isolate(lay, 1)
    assert sorted(v.valve_id for v in anywhere.valves_to_close) == [7, 8]
    assert anywhere.length_m == pytest.approx(100.0, abs=0.05)


def test_bad_queries_are_refused() -> None:
    net, lay, _ = tree()
    with pytest.raises(ValueError, match="not in this network"):
        isolate(lay, 99)
    with pytest.raises(ValueError, match="not valves of this layout"):
        isolate(lay, 4, failed_valves=[1234])
    with pytest.raises(ValueError, match="position_m"):
        isolate(lay, 4, break_at_m=500.0)
    with pytest.raises(ValueError, match="not nodes of the network"):
        isolate(lay, 4, sources=[net.n_nodes])
    other, _, _ = tree()
    with pytest.raises(ValueError, match="another network"):
        valve_layout(other, attach_points(net, [1], points((10, 0))))


# --- KY10 ----------------------------------------------------------------------------------


def load(path: Path) -> tuple[list[dict], np.ndarray]:
    features = json.loads(path.read_text())["features"]
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in features])
    return [f["properties"] for f in features], np.asarray(geoms, dtype=object)


@pytest.fixture(scope="module")
def ky10():
    props, geoms = load(DATA / "ky10" / "pipes.geojson")
    net = build_network(np.arange(len(geoms)), geoms)
    links, link_geoms = load(DATA / "ky10" / "valves_pumps.geojson")
    src_props, src_geoms = load(DATA / "ky10" / "sources.geojson")
    sources = attach_points(net, np.arange(len(src_geoms)), src_geoms)
    assert len(sources.point_ids) == 15  # 2 reservoirs and 13 tanks, all at pipe ends
    # EPANET's graph by names: pipes, pumps and valves (PRVs) as links.
    g = nx.MultiGraph()
    for k, p in enumerate(props):
        g.add_edge(p["start_node_name"], p["end_node_name"], key=f"P{k}")
    for link in links:
        g.add_edge(link["start_node_name"], link["end_node_name"], key=link["name"])
    node_of_name = {}  # each EPANET name is one node of ours (tests/gis/test_network.py)
    for k, p in enumerate(props):
        node_of_name[p["start_node_name"]] = int(net.edge_u[k])
        node_of_name[p["end_node_name"]] = int(net.edge_v[k])
    return {
        "props": props,
        "geoms": geoms,
        "net": net,
        "links": links,
        "link_geoms": link_geoms,
        "sources": sources,
        "source_names": {p["name"] for p in src_props},
        "g": g,
        "node_of_name": node_of_name,
    }


def pipe_partition(labels: dict[int, object]) -> set[frozenset[int]]:
    groups: dict[object, set[int]] = {}
    for pipe, label in labels.items():
        groups.setdefault(label, set()).add(pipe)
    return {frozenset(v) for v in groups.values()}


def test_ky10_prv_segments_equal_cutting_the_valve_links(ky10) -> None:
    net, links, g = ky10["net"], ky10["links"], ky10["g"]
    valve = np.array([link["kind"] == "valve" for link in links])
    lay = valve_layout(net, attach_points(net, np.flatnonzero(valve), ky10["link_geoms"][valve]))
    # The 5 PRVs sit at the (merged) nodes of their zero-length links; cutting there must
    # split the pipes exactly as removing the 5 valve links from EPANET's graph does.
    cut = g.copy()
    cut.remove_edges_from(
        [
            (v["start_node_name"], v["end_node_name"], v["name"])
            for v in links
            if v["kind"] == "valve"
        ]
    )
    comp = {n: i for i, c in enumerate(nx.connected_components(cut)) for n in c}
    want = pipe_partition({k: comp[p["start_node_name"]] for k, p in enumerate(ky10["props"])})
    got = pipe_partition({k: int(lay.segment_of_edge[k]) for k in range(net.n_edges)})
    assert got == want
    assert sorted(len(s) for s in got) == [5, 33, 1005]


def test_ky10_break_behind_a_prv_and_in_the_main_segment(ky10) -> None:
    net, links, g, props = ky10["net"], ky10["links"], ky10["g"], ky10["props"]
    valve = np.array([link["kind"] == "valve" for link in links])
    ids = np.flatnonzero(valve)
    lay = valve_layout(net, attach_points(net, ids, ky10["link_geoms"][valve]))
    small = int(np.bincount(lay.segment_of_edge).argmin())
    pipe = int(np.flatnonzero(lay.segment_of_edge == small)[0])
    iso = isolate(lay, pipe, sources=ky10["sources"])
    # The 5-pipe zone behind one PRV: closing that PRV isolates it (no source inside).
    assert len(iso.valves_to_close) == 1
    assert len(iso.segment_pipes) == 5
    assert not iso.is_fallback
    # A break in the 1,005-pipe main zone: all 15 sources are inside it, so the junction
    # fallback; who is cut off must equal networkx on EPANET names with the pipe removed.
    main = int(np.bincount(lay.segment_of_edge).argmax())
    bridges = {frozenset(e) for e in nx.bridges(nx.Graph(g))}
    chosen = None
    for k, p in enumerate(props):  # the first bridge pipe in the main zone that strands junctions
        if lay.segment_of_edge[k] != main:
            continue
        if frozenset((p["start_node_name"], p["end_node_name"])) not in bridges:
            continue
        h = g.copy()
        h.remove_edge(p["start_node_name"], p["end_node_name"], key=f"P{k}")
        fed = set().union(*(nx.node_connected_component(h, s) for s in ky10["source_names"]))
        stranded = set(h.nodes) - fed
        if len(stranded) >= 5:
            chosen = (k, stranded)
            break
    assert chosen is not None
    k, stranded = chosen
    # Demand: the junctions with a base demand (tests/data/ky10/junction_demands.csv).
    rows = (DATA / "ky10" / "junction_demands.csv").read_text().splitlines()[1:]
    demand = sorted(
        {ky10["node_of_name"][r.split(",")[0]] for r in rows if float(r.split(",")[1]) > 0}
    )
    iso = isolate(lay, k, sources=ky10["sources"], demands=demand)
    assert iso.is_fallback
    assert "holds 15 sources" in " ".join(iso.notes)
    want = {ky10["node_of_name"][n] for n in stranded}
    assert set(iso.cut_off_nodes or ()) == want
    assert set(iso.unserved_demands or ()) == want & set(demand)
    assert iso.unserved_demands  # the stranded branch has customers


def n_minus_1_valves(
    net: PipeNetwork, geoms: np.ndarray
) -> tuple[list[Point], list[tuple[int, int]]]:
    """A valve 1.5 m into every pipe at every junction of 3+ pipes, except the lowest-indexed
    pipe there (an "N-1" placement, as WNTR's strategic valve layers), on pipes over 4 m."""
    ends = np.concatenate([net.edge_u, net.edge_v])
    degree = np.bincount(ends, minlength=net.n_nodes)
    out, where = [], []
    for node in np.flatnonzero(degree >= 3).tolist():
        pipes = sorted(set(np.flatnonzero((net.edge_u == node) | (net.edge_v == node)).tolist()))
        for k in pipes[1:]:
            if net.pipe_length_m[k] < 4 or net.edge_u[k] == net.edge_v[k]:
                continue
            frac = 1.5 / net.pipe_length_m[k]
            at = frac if net.edge_u[k] == node else 1 - frac
            # ~1.5 m: a fraction of the pipe in degrees, near enough to metres for this
            out.append(shapely.line_interpolate_point(geoms[k], at, normalized=True))
            where.append((k, node))
    return out, where


def test_ky10_n_minus_1_segments_equal_a_brute_force_cut(ky10) -> None:
    net, props = ky10["net"], ky10["props"]
    valve_points, where = n_minus_1_valves(net, ky10["geoms"])
    assert len(valve_points) > 300
    lay = valve_layout(net, attach_points(net, np.arange(len(valve_points)), valve_points))
    # Every valve lands on the pipe it was placed on, next to the intended node.
    assert [(int(e), int(n)) for e, n in zip(lay.valve_edge, lay.valve_node, strict=True)] == where

    # Brute force on EPANET names: pipes as graph nodes, joined to their end junctions
    # except where a valve cuts; pumps and PRVs stay open links.
    def end_name(k: int, node: int) -> str:  # the name pipe k's own end has at that node
        return props[k]["start_node_name" if net.edge_u[k] == node else "end_node_name"]

    valved = {(k, end_name(k, n)) for k, n in where}
    h = nx.Graph()
    for k, p in enumerate(props):
        for end in (p["start_node_name"], p["end_node_name"]):
            h.add_node(("pipe", k))
            if (k, end) not in valved:
                h.add_edge(("pipe", k), end)
    for link in ky10["links"]:
        h.add_edge(link["start_node_name"], link["end_node_name"])
    comp = {n: i for i, c in enumerate(nx.connected_components(h)) for n in c}
    want = pipe_partition({k: comp[("pipe", k)] for k in range(len(props))})
    got = pipe_partition({k: int(lay.segment_of_edge[k]) for k in range(net.n_edges)})
    assert got == want
    # Valves to close for a few breaks: the valves with exactly one side in the segment.
    for pipe in (0, 250, 500, 750, 1000):
        seg = comp[("pipe", pipe)]
        boundary = {
            v
            for v, (k, node) in enumerate(where)
            if (comp[("pipe", k)] == seg) != (comp[end_name(k, node)] == seg)
        }
        iso = isolate(lay, pipe)
        assert {v.valve_id for v in iso.valves_to_close} == boundary
        # One of them seized: the segment grows by the segment beyond it.
        failed = min(boundary)
        k, node = where[failed]
        other = comp[end_name(k, node)] if comp[("pipe", k)] == seg else comp[("pipe", k)]
        bigger = isolate(lay, pipe, failed_valves=[failed])
        want_pipes = {q for q in range(len(props)) if comp[("pipe", q)] in (seg, other)}
        assert set(bigger.segment_pipes) == want_pipes
