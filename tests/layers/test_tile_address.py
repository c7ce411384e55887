"""Tile addresses: parsing against WebMercatorQuad and the closed-form centre latitude."""

from __future__ import annotations

import random

import morecantile
import pytest

from layers.tiles import TileAddressError, TileOutOfRange, parse_tile

TMS = morecantile.tms.get("WebMercatorQuad")


def test_centre_latitude_matches_morecantile_bounds() -> None:
    rng = random.Random(3)
    for z in range(25):
        n = 2**z
        for y in {0, n - 1, rng.randrange(n), rng.randrange(n)}:
            x = rng.randrange(n)
            bounds = TMS.bounds(morecantile.Tile(x, y, z))
            tile = parse_tile(str(z), str(x), str(y))
            assert tile.centre_lat == pytest.approx((bounds.bottom + bounds.top) / 2, abs=1e-9)


def test_matrix_limits_come_from_the_tile_matrix_set() -> None:
    for z in (0, 1, 14, TMS.maxzoom):
        matrix = TMS.matrix(z)
        last = parse_tile(str(z), str(matrix.matrixWidth - 1), str(matrix.matrixHeight - 1))
        assert (last.x, last.y) == (matrix.matrixWidth - 1, matrix.matrixHeight - 1)
        with pytest.raises(TileOutOfRange):
            parse_tile(str(z), str(matrix.matrixWidth), "0")
    with pytest.raises(TileOutOfRange):
        parse_tile(str(TMS.maxzoom + 1), "0", "0")
    with pytest.raises(TileAddressError):
        parse_tile("1", "-1", "0")
