"""Zones of points and straight segments, and their areas inside rectangles (gis.zones),
against GEOS (shapely): the buffer ST_Buffer(g, r, 'quad_segs=4') builds, and its clip."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from gis.zones import ZONE_VERTICES, clipped_areas, zone_rings

KX, KY = 94_500.0, 110_900.0  # metres per degree near 32° N


def _reference(dx: float, dy: float, r: float) -> shapely.Polygon:
    """GEOS's buffer in the local frame (metres), mapped to degrees like the rings."""
    g = shapely.Point(0, 0) if dx == dy == 0 else shapely.LineString([(0, 0), (dx, dy)])
    buffered = shapely.buffer(g, r, quad_segs=4)
    return shapely.affinity.scale(buffered, 1 / KX, 1 / KY, origin=(0, 0))


CASES = [(0.0, 0.0, 30.0), (120.0, 0.0, 12.5), (-40.0, 75.0, 60.0), (3.0, -200.0, 150.0),
         (0.0, 90.0, 9.8), (-55.0, -55.0, 200.0)]  # fmt: skip


def _rings(cases: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    dx, dy, r = (np.array(c, dtype=np.float64) for c in zip(*cases, strict=True))
    n = len(cases)
    return zone_rings(dx, dy, r, np.full(n, KX), np.full(n, KY))


def test_rings_have_the_vertices_of_geos_buffers() -> None:
    x, y = _rings(CASES)
    assert x.shape == (len(CASES), ZONE_VERTICES)
    for i, (dx, dy, r) in enumerate(CASES):
        want = np.array(_reference(dx, dy, r).exterior.coords)[:-1]
        got = np.unique(np.round(np.column_stack([x[i], y[i]]) * 1e9), axis=0)
        assert len(got) == len(want)  # 16 for a point, 18 for a segment
        assert np.array_equal(got, np.unique(np.round(want * 1e9), axis=0))


@pytest.mark.parametrize(
    "box",
    [
        (-1.0, -1.0, 1.0, 1.0),  # the whole zone
        (0.0002, -1.0, 1.0, 1.0),  # across one edge
        (-1.0, -1.0, 0.0001, -0.0003),  # across a corner
        (0.00005, 0.00002, 0.0003, 0.0004),  # a small box inside or across the zone
        (0.01, 0.01, 0.02, 0.02),  # outside: nothing
    ],
)
def test_clipped_areas_equal_geos_clips(box: tuple[float, float, float, float]) -> None:
    x, y = _rings(CASES)
    n = len(CASES)
    got = clipped_areas(x, y, *(np.full(n, v) for v in box))
    for i, (dx, dy, r) in enumerate(CASES):
        zone = _reference(dx, dy, r)
        want = shapely.clip_by_rect(zone, *box).area
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-12 * zone.area)


def test_clipped_areas_of_many_random_zones() -> None:
    rng = np.random.default_rng(7)
    n = 500
    cases = [
        (0.0, 0.0, r) if i % 4 == 0 else (dx, dy, r)
        for i, (dx, dy, r) in enumerate(
            zip(rng.uniform(-150, 150, n), rng.uniform(-150, 150, n), rng.uniform(5, 200, n),
                strict=True)
        )
    ]  # fmt: skip
    x, y = _rings(cases)
    x0, y0 = rng.uniform(-0.003, 0.003, n), rng.uniform(-0.003, 0.003, n)
    x1, y1 = x0 + rng.uniform(0, 0.005, n), y0 + rng.uniform(0, 0.005, n)
    got = clipped_areas(x, y, x0, y0, x1, y1)
    zones = [_reference(*c) for c in cases]
    want = np.array(
        [shapely.clip_by_rect(z, a, b, c, d).area for z, a, b, c, d in zip(zones, x0, y0, x1, y1,
                                                                          strict=True)]
    )  # fmt: skip
    full = np.array([z.area for z in zones])
    assert np.max(np.abs(got - want) / full) < 1e-12
    assert (want == 0).any()  # some boxes miss their zone,
    assert (want == full).any()  # some hold it all,
    assert ((want > 0) & (want < full)).any()  # some cut it
