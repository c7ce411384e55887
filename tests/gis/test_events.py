"""Alarm events (gis.events): space–time clustering (straight-line, lon/lat, network distance)
and localisation of the pipe that explains which sensors moved, on hand-made layouts."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import LineString, Point

from gis.events import cluster_alarms, localise, network_distance_matrix, network_pipe_distances
from gis.frames import LocalFrame
from gis.network import attach_points, build_network

HEFEI = LocalFrame(117.28, 31.86)


def line(*xy_m: tuple[float, float]) -> LineString:
    x, y = np.array(xy_m, dtype=float).T
    lon, lat = HEFEI.to_lonlat(x, y)
    return LineString(np.column_stack([lon, lat]))


def lonlat(x_m: float, y_m: float) -> Point:
    lon, lat = HEFEI.to_lonlat(x_m, y_m)
    return Point(float(lon), float(lat))


# --- clustering ----------------------------------------------------------------------------


def test_alarms_close_in_time_and_space_are_one_event() -> None:
    # A burst at 08:00 seen by 3 sensors within 300 m and 20 min; a second, unrelated drop
    # 4 km away at the same time; the first place again 5 hours later (a new event).
    t = np.array([0.0, 600.0, 1200.0, 300.0, 18_000.0])
    x = np.array([0.0, 200.0, 400.0, 4000.0, 100.0])  # 0-200-400: a chain of 200 m links
    y = np.zeros(5)
    c = cluster_alarms(
        t, x, y, window_s=3600, distance_m=250, sensor_ids=[11, 12, 13, 40, 11],
        magnitude=[3.0, 6.0, 4.0, 5.0, 2.0],
    )  # fmt: skip
    assert c.labels.tolist() == [0, 0, 0, 1, 2]
    first = c.events[0]
    assert first.members == (0, 1, 2)
    assert first.sensor_ids == (11, 12, 13)
    assert (first.t_start, first.t_end, first.peak) == (0.0, 1200.0, 1)
    # A 500 s window splits the chain (alarms 600 s apart): five events, numbered in time order.
    split = cluster_alarms(t, x, y, window_s=500, distance_m=250)
    assert split.labels.tolist() == [0, 2, 3, 1, 4]


def test_lon_lat_alarms_are_measured_in_a_local_frame() -> None:
    pts = [lonlat(0, 0), lonlat(0, 290), lonlat(0, 620)]
    lon = [p.x for p in pts]
    lat = [p.y for p in pts]
    c = cluster_alarms([0, 0, 0], lon, lat, distance_m=300, frame=HEFEI)
    assert c.labels.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="lon/lat"):
        cluster_alarms([0], [5000.0], [0.0], frame=HEFEI)


def test_network_distance_keeps_apart_sensors_on_pipes_that_do_not_meet_nearby() -> None:
    # A U: pipe 1 up x = 0, pipe 2 across y = 1000, pipe 3 down x = 100. Sensors at (0, 10)
    # and (100, 10): 100 m apart in a straight line, 990 + 100 + 990 = 2,080 m along the network.
    net = build_network(
        [1, 2, 3],
        [line((0, 0), (0, 1000)), line((0, 1000), (100, 1000)), line((100, 1000), (100, 0))],
    )
    sensors = [lonlat(0, 10), lonlat(100, 10)]
    att = attach_points(net, [7, 8], sensors)
    dm = network_distance_matrix(att, max_distance_m=5000)
    assert dm[0, 1] == pytest.approx(2080.0, abs=0.5)
    assert network_distance_matrix(att, max_distance_m=500)[0, 1] == np.inf
    lon, lat = [p.x for p in sensors], [p.y for p in sensors]
    straight = cluster_alarms([0, 60], lon, lat, distance_m=300, frame=HEFEI)
    along = cluster_alarms(
        [0, 60], lon, lat, distance_m=300, frame=HEFEI, distance=lambda i, j: dm[i, j]
    )
    assert straight.labels.tolist() == [0, 0]
    assert along.labels.tolist() == [0, 1]


def test_clustering_agrees_with_brute_force_on_random_alarms() -> None:
    import networkx as nx

    rng = np.random.default_rng(3)
    m = 300
    t = rng.uniform(0, 86_400, m)
    x, y = rng.uniform(0, 5000, m), rng.uniform(0, 5000, m)
    c = cluster_alarms(t, x, y, window_s=1800, distance_m=400)
    g = nx.Graph()
    g.add_nodes_from(range(m))
    close = (np.abs(t[:, None] - t[None, :]) <= 1800) & (
        np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) <= 400
    )
    g.add_edges_from(zip(*np.nonzero(np.triu(close, 1)), strict=True))
    comps = list(nx.connected_components(g))
    assert len(c.events) == len(comps)
    for comp in comps:
        assert len({int(c.labels[i]) for i in comp}) == 1
    # Labels follow the time of each event's first alarm.
    assert np.all(np.diff([e.t_start for e in c.events]) >= 0)
    # The callable path (time first) finds the same events as the STRtree path (space first).
    via = cluster_alarms(
        t,
        x,
        y,
        window_s=1800,
        distance_m=400,
        distance=lambda i, j: np.hypot(x[i] - x[j], y[i] - y[j]),
    )
    np.testing.assert_array_equal(via.labels, c.labels)


# --- localisation --------------------------------------------------------------------------


def grid_pipes() -> tuple[np.ndarray, list[LineString]]:
    """A 4 × 4 street grid of 200 m blocks: 24 pipes, ids 100 + k."""
    pipes = []
    for i in range(4):
        for j in range(3):
            pipes.append(LineString([(i * 200, j * 200), (i * 200, (j + 1) * 200)]))
            pipes.append(LineString([(j * 200, i * 200), ((j + 1) * 200, i * 200)]))
    return np.arange(100, 100 + len(pipes)), pipes


def test_three_alarms_near_one_pipe_localise_to_it() -> None:
    ids, pipes = grid_pipes()
    target = next(k for k, p in enumerate(pipes) if p.equals(LineString([(200, 200), (400, 200)])))
    # Three alarming sensors 20-40 m off the target pipe (|z| 6, 5, 4), 9 quiet ones elsewhere.
    sx = [250.0, 330.0, 300.0, 0, 600, 0, 600, 100, 500, 300, 100, 500]
    sy = [220.0, 180.0, 235.0, 0, 0, 600, 600, 400, 400, 500, 0, 0]
    mag = [6.0, 5.0, 4.0, 0.3, 0.2, 0.1, 0.4, 0.5, 0.3, 0.6, 0.2, 0.3]
    r = localise(ids, pipes, sx, sy, mag)
    assert r.candidate_ids[0] == ids[target]
    assert r.score[0] > r.score[1] > 0
    assert np.all(np.diff(r.score) <= 0)
    assert r.area.contains(Point(300, 200))
    assert r.area.area < 0.3 * 600 * 600  # a few blocks, not the town
    # The same in lon/lat through a frame: same ranking, area in degrees around the pipe.
    ll = [HEFEI.geometry_to_lonlat(p) for p in pipes]
    lon, lat = HEFEI.to_lonlat(np.array(sx), np.array(sy))
    r_ll = localise(ids, ll, lon, lat, mag, frame=HEFEI)
    np.testing.assert_array_equal(r_ll.candidate_ids, r.candidate_ids)
    np.testing.assert_allclose(r_ll.score, r.score, rtol=1e-6)
    assert r_ll.area.contains(lonlat(300, 200))


def test_a_far_candidate_does_not_win_on_pattern_alone() -> None:
    # Two sensors moved equally. A pipe 3 km away is about equally far from both (a perfect
    # cosine); the pipe between them is near both: the proximity term makes it win.
    pipes = [LineString([(0, 0), (100, 0)]), LineString([(3000, -50), (3000, 50)])]
    r = localise([1, 2], pipes, [0.0, 100.0], [30.0, 30.0], [3.0, 3.0])
    assert r.candidate_ids.tolist() == [1, 2]
    assert r.fit[1] > 0.999  # the far pipe fits the pattern as well …
    assert r.proximity[1] < 0.05  # … but explains none of the magnitude


def test_given_distances_replace_the_straight_line() -> None:
    pipes = [Point(0, 0), Point(1000, 0)]
    d = np.array([[500.0, np.inf], [10.0, 20.0]])  # e.g. network distances
    r = localise([1, 2], pipes, [0.0, 5.0], [0.0, 0.0], [2.0, 1.0], distance_m=d)
    assert r.candidate_ids.tolist() == [2, 1]
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        localise([1, 2], pipes, [0.0, 5.0], [0.0, 0.0], [2.0, 1.0], distance_m=d[:1])
    with pytest.raises(ValueError, match="not all 0"):
        localise([1], pipes[:1], [0.0], [0.0], [0.0])


def test_the_area_covers_the_top_candidates() -> None:
    ids, pipes = grid_pipes()
    r = localise(ids, pipes, [300.0], [210.0], [5.0], top=2, area_buffer_m=10)
    top = [pipes[int(k)] for k in r.ranking[:2]]
    assert all(r.area.contains(p) for p in top)
    assert shapely.get_num_geometries(r.area) == 1


def test_network_pipe_distances_go_along_the_pipes() -> None:
    # The U again: a sensor 10 m up pipe 1 (on it) is 2,080 m along the network from the far
    # end of pipe 3, though 100 m away in a straight line; pipe 3 itself starts 990 + 100 away.
    net = build_network(
        [1, 2, 3],
        [line((0, 0), (0, 1000)), line((0, 1000), (100, 1000)), line((100, 1000), (100, 0))],
    )
    att = attach_points(net, [7], [lonlat(2, 10)], tolerance_m=5)
    d = network_pipe_distances(att, max_distance_m=5000)
    assert d.shape == (3, 1)
    assert d[:, 0] == pytest.approx([2.0, 992.0, 1092.0], abs=0.5)  # offset + along
    assert np.isinf(network_pipe_distances(att, max_distance_m=500)[1:, 0]).all()
