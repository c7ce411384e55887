"""Pipe topology, point attachment, network reach and gas migration (gis.network), on hand-made
networks with known answers and on the KY10 and Seaside networks (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely import LineString, Point

from gis.frames import LocalFrame
from gis.network import (
    Location,
    attach_points,
    build_network,
    component_labels,
    gas_migration,
    network_reach,
)

DATA = Path(__file__).resolve().parents[1] / "data"
HEFEI = LocalFrame(117.28, 31.86)  # hand-made networks are drawn in metres around Hefei


def line(*xy_m: tuple[float, float]) -> LineString:
    """A LineString given in metres east/north of HEFEI's origin, in WGS84 degrees."""
    x, y = np.array(xy_m, dtype=float).T
    lon, lat = HEFEI.to_lonlat(x, y)
    return LineString(np.column_stack([lon, lat]))


def point(x_m: float, y_m: float) -> Point:
    lon, lat = HEFEI.to_lonlat(x_m, y_m)
    return Point(float(lon), float(lat))


def ids(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def node_near(net, x_m: float, y_m: float) -> int:
    """Index of the network node nearest (x_m, y_m) in HEFEI metres."""
    lon, lat = HEFEI.to_lonlat(x_m, y_m)
    x, y = net.frame.to_local(lon, lat)
    return int(np.argmin(np.hypot(net.node_x_m - x, net.node_y_m - y)))


# --- union-find ---------------------------------------------------------------------------


def test_component_labels_agree_with_networkx_on_random_graphs() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 400))
        m = int(rng.integers(0, 500))
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        labels = component_labels(n, a, b)
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(a.tolist(), b.tolist(), strict=True))
        comps = list(nx.connected_components(g))
        assert labels.max() + 1 == len(comps)
        for c in comps:
            assert len(set(labels[list(c)].tolist())) == 1


def test_component_labels_of_a_long_path_in_bad_order() -> None:
    # A 10,000-node path whose labels alternate ends: the slowest case for naive min-label
    # propagation (diameter 9,999); pointer jumping must still join it into one component.
    order = np.empty(10_000, dtype=np.int64)
    order[0::2] = np.arange(5_000)
    order[1::2] = np.arange(9_999, 4_999, -1)
    labels = component_labels(10_000, order[:-1], order[1:])
    assert set(labels.tolist()) == {0}


def test_component_labels_refuse_out_of_range_pairs() -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        component_labels(3, [0], [3])


# --- snapping ------------------------------------------------------------------------------


def test_ends_within_the_tolerance_become_one_node() -> None:
    # Pipes 0-100 m and 100.4-200 m: a 0.4 m undershoot. At 1 m one node (each end moved
    # 0.2 m to the mean); at 0.3 m two nodes and two components.
    lines = [line((0, 0), (100, 0)), line((100.4, 0), (200, 0))]
    net = build_network(ids(2), lines, snap_tolerance_m=1.0)
    r = net.report
    assert (r.nodes, r.edges, r.components, r.snapped_pairs) == (3, 2, 1, 1)
    assert r.max_snap_m == pytest.approx(0.2, abs=1e-3)
    assert r.dangling_ends == 2
    apart = build_network(ids(2), lines, snap_tolerance_m=0.3).report
    assert (apart.nodes, apart.components, apart.snapped_pairs) == (4, 2, 0)


def test_a_chain_of_near_ends_is_one_node_and_is_flagged() -> None:
    # Ends at x = 0, 0.8, 1.6 m: each within 1 m of the next, the outer two 1.6 m apart.
    # Single linkage joins all three; the node (mean x = 0.8) is 0.8 m from the outer ends,
    # within the tolerance, so not "wide"; with ends at 0, 0.9, 1.8, 2.7 the outer ones are
    # 1.35 m from the mean: wide.
    three = [line((0, 0), (0, -50)), line((0.8, 0), (0.8, 50)), line((1.6, 0), (60, 0))]
    r = build_network(ids(3), three).report
    assert (r.nodes, r.wide_nodes) == (4, 0)
    four = [*three[:2], line((1.8, 0), (60, 0)), line((2.7, 0), (2.7, 80))]
    four[1] = line((0.9, 0), (0.9, 50))
    r = build_network(ids(4), four).report
    assert (r.nodes, r.wide_nodes) == (5, 1)
    assert any("check them" in s for s in r.notes)


def test_a_pipe_shorter_than_the_tolerance_keeps_its_two_nodes() -> None:
    # A 0.6 m valve pipe between two 100 m mains (as KY10 has): its ends are 0.6 m apart,
    # inside the 1 m tolerance, but a pipe joins them, so they stay two nodes and three edges.
    lines = [line((0, 0), (100, 0)), line((100, 0), (100.6, 0)), line((100.6, 0), (200, 0))]
    net = build_network(ids(3), lines)
    assert (net.report.nodes, net.report.edges, net.report.kept_apart) == (4, 3, 1)
    assert net.report.self_loops == 0
    assert net.edge_length_m[1] == pytest.approx(0.6, abs=1e-3)


def test_t_junction_is_split_and_connected_or_only_counted() -> None:
    # A branch from (40, 30) ending 0.5 m above the main's interior at x = 40.
    lines = [line((0, 0), (100, 0)), line((40, 30), (40, 0.5))]
    net = build_network(ids(2), lines)
    r = net.report
    assert (r.nodes, r.edges, r.components, r.t_junctions, r.t_junction_pipes) == (4, 3, 1, 1, (1,))
    main = net.pipe_edges(1)
    assert net.edge_length_m[main] == pytest.approx([40.0, 60.0], abs=0.01)
    assert net.edge_start_m[main] == pytest.approx([0.0, 40.0], abs=0.01)
    off = build_network(ids(2), lines, split_t_junctions=False).report
    assert (off.edges, off.components, off.t_junctions) == (2, 2, 1)
    assert any("NOT connected" in s for s in off.notes)


def test_pipes_crossing_in_their_interiors_are_not_connected() -> None:
    # An X: the pipes cross at (50, 0) at different depths, no end there.
    net = build_network(ids(2), [line((0, 0), (100, 0)), line((50, -50), (50, 50))])
    assert (net.report.nodes, net.report.components, net.report.t_junctions) == (4, 2, 0)


def test_a_closed_ring_is_a_self_loop() -> None:
    ring = line((0, 0), (100, 0), (100, 100), (0, 100), (0, 0))
    net = build_network(ids(1), [ring])
    assert (net.report.nodes, net.report.self_loops) == (1, 1)
    assert net.edge_length_m[0] == pytest.approx(400.0, rel=1e-4)


def test_lengths_are_geodesic_lengths() -> None:
    # 5 km north-south and east-west pipes at 45° N, given in degrees: the segment-wise
    # scaling agrees with the WGS84 geodesic (pyproj) to better than 1 mm in 5 km.
    geod = Geod(ellps="WGS84")
    ns = LineString([(7.0, 45.0), (7.0, 45.045)])
    ew = LineString([(7.0, 45.0), (7.0 + 5_000 / 78_847, 45.0)])
    net = build_network(ids(2), [ns, ew])
    for k, g in enumerate((ns, ew)):
        assert net.pipe_length_m[k] == pytest.approx(geod.geometry_length(g), abs=1e-3)


@pytest.mark.parametrize(
    ("geoms", "match"),
    [
        ([shapely.MultiLineString([[(0, 0), (0.001, 0)]])], "MultiLineString"),
        ([Point(0, 0)], "Point"),
        ([LineString()], "empty"),
        ([LineString([(5765080.5, 3843715.0), (5765082.2, 3843800.0)])], "WGS84"),
        ([LineString([(117.0, 30.0), (117.0, 40.0)])], "scale error"),
        ([LineString([(179.99, 0.0), (-179.99, 0.0)])], "antimeridian"),
    ],
)
def test_bad_geometries_are_refused_with_what_was_expected(geoms: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_network(ids(len(geoms)), geoms)


def test_bad_ids_and_tolerances_are_refused() -> None:
    two = [line((0, 0), (10, 0)), line((10, 0), (20, 0))]
    with pytest.raises(ValueError, match="not unique"):
        build_network([5, 5], two)
    with pytest.raises(ValueError, match="integer"):
        build_network(np.array([1.5, 2.5]), two)
    with pytest.raises(ValueError, match="one geometry per id"):
        build_network(ids(3), two)
    with pytest.raises(ValueError, match="snap_tolerance_m"):
        build_network(ids(2), two, snap_tolerance_m=-1.0)


def test_no_pipes_is_an_empty_network() -> None:
    net = build_network(np.zeros(0, dtype=np.int64), [])
    assert (net.n_nodes, net.n_edges, net.report.components) == (0, 0, 0)
    assert attach_points(net, [1], [point(0, 0)]).unattached_ids.tolist() == [1]
    assert network_reach(net, [], max_distance_m=100.0).nodes == {}


# --- attachment ----------------------------------------------------------------------------


def test_points_attach_to_the_nearest_pipe_with_position_and_node() -> None:
    # Main 0-100 m along y = 0 and a branch north from (100, 0).
    net = build_network(ids(2), [line((0, 0), (100, 0)), line((100, 0), (100, 80))])
    a = attach_points(
        net,
        [10, 11, 12, 13],
        [point(30, 2), point(99.6, 0.2), point(100, 81), point(50, 4)],
        tolerance_m=3.0,
    )
    # 10: 2 m north of the main, 30 m along it; 11: 0.4 m before the junction, so at node;
    # 12: 1 m past the branch's end, attached at its end node; 13: 4 m off, unattached.
    assert a.point_ids.tolist() == [10, 11, 12]
    assert a.edge.tolist() == [0, 0, 1]
    assert a.position_m == pytest.approx([30.0, 99.6, 80.0], abs=0.01)
    assert a.offset_m == pytest.approx([2.0, 0.2, 1.0], abs=0.01)
    junction, branch_end = node_near(net, 100, 0), node_near(net, 100, 80)
    assert a.node.tolist() == [-1, junction, branch_end]
    assert a.unattached_ids.tolist() == [13]


def test_a_point_exactly_at_a_junction_goes_to_the_lowest_pipe() -> None:
    net = build_network(
        ids(3), [line((0, 0), (50, 0)), line((50, 0), (100, 0)), line((50, 0), (50, 60))]
    )
    a = attach_points(net, [1], [point(50, 0)])
    assert (a.edge.tolist(), a.node.tolist()) == ([0], [node_near(net, 50, 0)])


def test_attach_refuses_non_points() -> None:
    net = build_network(ids(1), [line((0, 0), (10, 0))])
    with pytest.raises(ValueError, match="LineString"):
        attach_points(net, [1], [line((0, 0), (1, 0))])


# --- reach ---------------------------------------------------------------------------------


def square_with_tail():
    """A 100 m square (corners A0 B(100,0) C(100,100) D(0,100)) with a 300 m tail east of B."""
    lines = [
        line((0, 0), (100, 0)),  # 1: A-B
        line((100, 0), (100, 100)),  # 2: B-C
        line((100, 100), (0, 100)),  # 3: C-D
        line((0, 100), (0, 0)),  # 4: D-A
        line((100, 0), (400, 0)),  # 5: B-E
    ]
    return build_network(ids(5), lines)


def test_reach_distances_on_a_loop_with_a_tail() -> None:
    net = square_with_tail()
    a, b, c, d, e = (
        node_near(net, *xy) for xy in [(0, 0), (100, 0), (100, 100), (0, 100), (400, 0)]
    )
    # Entry 20 m along A-B: B at 80, A at 20, D at 120 (via A), C at 180 (via B, equal via D
    # 20 + 100 + 100 = 220: the shorter), E at 380.
    r = network_reach(net, [net.locate(1, 20.0)], max_distance_m=250.0)
    assert {k: round(v, 1) for k, v in r.nodes.items()} == {a: 20.0, b: 80.0, c: 180.0, d: 120.0}
    # The tail B-E is reached for 250 - 80 = 170 m of its 300 m; A-B wholly.
    assert r.edges[4].reached_m == pytest.approx(170.0, abs=0.05)
    assert r.edges[4].distance_m == pytest.approx(80.0, abs=0.05)
    assert r.edges[0].is_whole
    assert r.edges[0].distance_m == 0.0
    # C-D: from C (180) 70 m, from D (120) 130 m: the whole 100 m.
    assert r.edges[2].is_whole
    assert e not in r.nodes
    assert r.pipes[5] == pytest.approx(80.0, abs=0.05)


def test_reach_of_points_and_of_an_entry_on_the_same_edge() -> None:
    net = square_with_tail()
    pts = attach_points(net, [1, 2, 3], [point(60, 0), point(300, 0), point(0, 50)])
    # From 20 m along A-B: point 1 at 40 m directly on the same edge, point 2 at 80 + 200,
    # point 3 at 20 + 50 (via A).
    r = network_reach(net, [net.locate(1, 20.0)], max_distance_m=1000.0, attachments=pts)
    assert r.points == pytest.approx({1: 40.0, 2: 280.0, 3: 70.0}, abs=0.05)
    near = network_reach(net, [net.locate(1, 20.0)], max_distance_m=50.0, attachments=pts)
    assert set(near.points) == {1}
    assert near.edges[0].reached_m == pytest.approx(70.0, abs=0.05)  # [0, 70] of A-B


def test_reach_from_several_entries_and_a_node() -> None:
    net = square_with_tail()
    e = node_near(net, 400, 0)
    r = network_reach(net, [Location(node=e), net.locate(4, 50.0)], max_distance_m=60.0)
    # From E: 60 m back along the tail; from the middle of D-A: 50 m to each of D and A.
    assert r.edges[4].reached_m == pytest.approx(60.0, abs=0.05)
    assert set(r.nodes) == {e, node_near(net, 0, 0), node_near(net, 0, 100)}


def test_reach_refuses_locations_off_the_network() -> None:
    net = square_with_tail()
    with pytest.raises(ValueError, match="exactly one of node or edge"):
        network_reach(net, [Location()], max_distance_m=10.0)
    with pytest.raises(ValueError, match="outside edge"):
        network_reach(net, [Location(edge=0, position_m=150.0)], max_distance_m=10.0)
    with pytest.raises(ValueError, match="max_distance_m"):
        network_reach(net, [Location(node=0)], max_distance_m=-1.0)


# --- gas migration -------------------------------------------------------------------------


def u_shaped_drain():
    """A drain passing 3 m north of a leak at (0, 0): east 91.5 m, north 117 m, west 91.5 m.

    Space S1 at its far end (0, 120): 120 m from the leak in a straight line, 91.5 + 117 + 91.5
    = 300 m along the pipes from where gas enters (0, 3). Space S2 on the north leg at
    (91.5, 111.5): 144 m in a straight line, 91.5 + 108.5 = 200 m along the pipes.
    """
    drain = build_network(
        ids(3), [line((0, 3), (91.5, 3)), line((91.5, 3), (91.5, 120)), line((91.5, 120), (0, 120))]
    )
    spaces = attach_points(drain, [1, 2], [point(0, 120), point(91.5, 111.5)])
    return drain, spaces


def test_gas_migrates_along_the_drain_not_in_a_straight_line() -> None:
    drain, spaces = u_shaped_drain()
    m = gas_migration(drain, point(0, 0), spaces=spaces, adjacent_m=5.0, reach_m=250.0)
    # S1 is 120 m away in a straight line (inside a 250 m circle) but 300 m along the pipes:
    # outside. S2 is 200 m along the pipes: inside.
    assert 1 not in m.reached_spaces
    assert m.reached_spaces[2] == pytest.approx(200.0, abs=0.1)
    assert [e[0] for e in m.entries] == [1]  # gas enters the first leg only, 3 m from the leak
    assert m.entries[0][2] == pytest.approx(3.0, abs=0.01)
    assert m.adjacent_spaces == {}
    further = gas_migration(drain, point(0, 0), spaces=spaces, adjacent_m=5.0, reach_m=310.0)
    assert further.reached_spaces[1] == pytest.approx(300.0, abs=0.1)


def test_gas_does_not_enter_a_drain_beyond_adjacent_m() -> None:
    drain, spaces = u_shaped_drain()
    m = gas_migration(drain, point(0, 0), spaces=spaces, adjacent_m=2.0, reach_m=1000.0)
    assert (m.entries, m.reached_spaces) == ((), {})
    assert any("does not enter" in s for s in m.notes)


def test_a_leaking_stretch_of_main_enters_every_adjacent_pipe() -> None:
    # A 200 m main along y = -2 under the drain's first leg and a second drain 4 m south:
    # both within 5 m; a manhole on the first leg 1 m from the main is adjacent.
    drain = build_network(ids(2), [line((0, 3), (90, 3)), line((0, -6), (200, -6))])
    wells = attach_points(drain, [7], [point(45, 3)])
    main = line((0, -2), (200, -2))
    m = gas_migration(drain, main, spaces=wells, adjacent_m=5.0, reach_m=10.0)
    assert sorted(e[0] for e in m.entries) == [1, 2]
    assert m.adjacent_spaces == pytest.approx({7: 5.0}, abs=0.01)
    with pytest.raises(ValueError, match="Point or LineString"):
        gas_migration(drain, shapely.box(0, 0, 1, 1))


# --- real networks -------------------------------------------------------------------------


def load(path: Path) -> tuple[list[dict], np.ndarray]:
    """Features of a GeoJSON file (properties, shapely geometries), read without GDAL."""
    features = json.loads(path.read_text())["features"]
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in features])
    return [f["properties"] for f in features], np.asarray(geoms, dtype=object)


def test_ky10_geometry_gives_the_epanet_topology() -> None:
    props, geoms = load(DATA / "ky10" / "pipes.geojson")
    net = build_network(ids(len(geoms)), geoms)
    # EPANET: 935 nodes, 1,043 pipes; its 13 pumps and 5 valves are zero-length links whose
    # two nodes coincide, so geometry sees 935 - 18 = 917 nodes. One pipe is 0.74 m long,
    # shorter than the 1 m tolerance: kept (its two nodes kept apart).
    r = net.report
    assert (r.nodes, r.edges, r.components, r.self_loops, r.t_junctions) == (917, 1043, 1, 0, 0)
    assert r.kept_apart == 1
    g = nx.MultiGraph()
    g.add_edges_from((p["start_node_name"], p["end_node_name"]) for p in props)
    vp, _ = load(DATA / "ky10" / "valves_pumps.geojson")
    for link in vp:  # merge each zero-length pump/valve's two nodes, as geometry does
        g = nx.contracted_nodes(g, link["start_node_name"], link["end_node_name"], self_loops=False)
    # Node for node: every EPANET node (after merging) is one node of ours and back.
    ours: dict[str, set[int]] = {}
    for k, p in enumerate(props):
        for name, node in (
            (p["start_node_name"], net.edge_u[k]),
            (p["end_node_name"], net.edge_v[k]),
        ):
            ours.setdefault(name, set()).add(int(node))
    merged = {n: n for n in g.nodes}
    for link in vp:
        merged[link["end_node_name"]] = link["start_node_name"]
    epanet_of_ours: dict[int, set[str]] = {}
    for name, nodes in ours.items():
        assert len(nodes) == 1
        epanet_of_ours.setdefault(nodes.pop(), set()).add(merged.get(name, name))
    assert all(len(v) == 1 for v in epanet_of_ours.values())
    assert len(epanet_of_ours) == g.number_of_nodes() == 917


def test_ky10_lengths_match_geodesic_lengths() -> None:
    _, geoms = load(DATA / "ky10" / "pipes.geojson")
    net = build_network(ids(len(geoms)), geoms)
    geod = Geod(ellps="WGS84")
    want = np.array([geod.geometry_length(g) for g in geoms])
    # KY10 spans 34 km; segment-wise scaling stays within 20 ppm of the geodesic on every pipe
    # (total 1,403 km), where one frame for the whole network would be off by up to 0.2 %.
    assert np.abs(net.pipe_length_m / want - 1).max() < 2e-5
    assert net.pipe_length_m.sum() / 1000 == pytest.approx(want.sum() / 1000, rel=1e-6)


def test_ky10_reach_equals_networkx_dijkstra() -> None:
    _, geoms = load(DATA / "ky10" / "pipes.geojson")
    net = build_network(ids(len(geoms)), geoms)
    g = nx.Graph()
    for u, v, w in zip(
        net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist(), strict=True
    ):
        if not g.has_edge(u, v) or g[u][v]["w"] > w:
            g.add_edge(u, v, w=w)
    for src in (0, 400, 900):
        want = nx.single_source_dijkstra_path_length(g, src, cutoff=5_000.0, weight="w")
        got = network_reach(net, [Location(node=src)], max_distance_m=5_000.0).nodes
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k], abs=1e-6) for k in want)


def test_seaside_water_geometry_against_its_published_topology() -> None:
    props, geoms = load(DATA / "seaside" / "water_arcs.geojson")
    multi = shapely.get_type_id(geoms) == 5
    assert multi.sum() == 1  # one arc is a MultiLineString whose parts share an end
    geoms[multi] = shapely.line_merge(geoms[multi])
    net = build_network(np.array([p["linknwid"] for p in props], dtype=np.int64), geoms)
    published = nx.Graph([(p["fromnode"], p["tonode"]) for p in props])
    # Published: 417 nodes, one component. Geometry at 1 m: one component, 414 nodes, because
    # published nodes 54/55 are 0.34 m apart and 178/179 0.85 m apart (snapped), and 348/349
    # lie at one place (one arc's tonode, 349, is 69 m from its geometry's end).
    assert net.report.components == nx.number_connected_components(published) == 1
    assert published.number_of_nodes() - net.report.nodes == 3
    # At 0.5 m the 0.85 m pair stays apart: one node more.
    half = build_network(net.pipe_ids, geoms, snap_tolerance_m=0.5)
    assert half.report.nodes == net.report.nodes + 1
