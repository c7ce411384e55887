"""The risk refresh stays bounded on pathological geometry: a zig-zag gas main.

GEOS buffers a zig-zag line in O(n²) or worse and ignores cancellation meanwhile: a 5,000-vertex
main made the next refresh run for minutes (2,000 vertices: 11 s for one buffer). The refresh
buffers such a geometry in parts; the test compares the refresh with the zig-zag to the same
refresh with a straight main (a ratio, not a wall-clock bound) and checks the population
share against shapely's buffer of the whole line.
"""

from __future__ import annotations

import secrets
import time

import numpy as np
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.risk import refresh
from gis.frames import metres_per_degree
from tests import factories as f

LON, LAT = 12.0, 46.0  # far from other tests' cities
VERTICES = 2_000
KX, KY = (float(v[0]) for v in metres_per_degree(np.array([LAT])))  # metres per degree


def zigzag(n: int) -> tuple[str, np.ndarray]:
    """A main zig-zagging ±25 m across its axis every metre eastwards, as WKT and in metres."""
    kx, ky = KX, KY
    x = np.arange(n, dtype=float)
    y = np.where(np.arange(n) % 2, 25.0, -25.0)
    coords = ",".join(f"{LON + a / kx:.9f} {LAT + b / ky:.9f}" for a, b in zip(x, y, strict=True))
    wkt = f"LINESTRING({coords})"
    return wkt, np.column_stack([x, y])


CELLS = [(LON + 0.0125 + i * 0.0012, LAT + j * 0.0009) for i in range(-2, 3) for j in range(-2, 3)]
CELL_HALF = (0.0006, 0.00045)  # degrees: 92 m x 100 m, smaller than the zone


def score_once(session: Session, wkt: str) -> tuple[float, float, float]:
    """Refresh a small city around the main ``wkt``; (seconds, the main's population and
    impact radius in metres)."""
    source = f"test-zigzag-{secrets.token_hex(3)}"
    main = f.asset(
        session, "gas_pipe", wkt, source=source, pressure_mpa=1.6, pressure_class="high",
        diameter_mm=300, material="steel", install_year=1990,
    )  # fmt: skip
    started = time.perf_counter()
    refresh.refresh_all(session, now_year=2026)
    took = time.perf_counter() - started
    row = session.execute(
        text("SELECT population, radius_m FROM risk_score WHERE scope = 'asset' AND asset_id = :i"),
        {"i": main},
    ).one()
    return took, float(row.population), float(row.radius_m)


def test_a_zigzag_main_refreshes_in_a_small_multiple_of_a_straight_one(session: Session) -> None:
    wkt, metres = zigzag(VERTICES)
    # Population cells smaller than the zone, so it crosses their edges (the costly path).
    for lon, lat in CELLS:
        f.asset(session, "population_cell", f.square(lon, lat, *CELL_HALF), population=100)
    f.asset(session, "school", f"POINT({LON + 0.0125} {LAT + 0.0004})")
    straight = f"LINESTRING({LON} {LAT},{LON + (VERTICES - 1) / KX} {LAT})"
    score_once(session, straight)  # warm: plans, caches
    plain_s, _, _ = score_once(session, straight)
    zigzag_s, population, radius_m = score_once(session, wkt)
    print(f"\nrefresh: straight main {plain_s:.3f} s, {VERTICES}-vertex zig-zag {zigzag_s:.3f} s")
    # Measured: 23.4 s whole (1,460x the straight main's refresh), 0.12 s in parts (8x).
    assert zigzag_s < 20 * plain_s + 1.0, (zigzag_s, plain_s)
    # The same share as the buffer of the whole line (shapely, metres from (LON, LAT)).
    zone = shapely.LineString(metres).buffer(radius_m, quad_segs=4)
    expected = sum(
        100 * zone.intersection(shapely.box(
            (lon - CELL_HALF[0] - LON) * KX, (lat - CELL_HALF[1] - LAT) * KY,
            (lon + CELL_HALF[0] - LON) * KX, (lat + CELL_HALF[1] - LAT) * KY,
        )).area / (4 * CELL_HALF[0] * KX * CELL_HALF[1] * KY)
        for lon, lat in CELLS
    )  # fmt: skip
    assert population == pytest.approx(expected, rel=5e-3)
