"""Flood depth-damage (gis.consequence): the JRC curves of Huizinga et al. (2017), their
interpolation and clipping, against docs/impact-models.md."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gis.consequence import JRC_CURVES, JRC_DEPTHS_M, flood_damage, flood_damage_fraction

# docs/impact-models.md, JRC Europe residential.
EUROPE = [(0, 0.0), (0.5, 0.25), (1, 0.40), (1.5, 0.50), (2, 0.60), (3, 0.75), (4, 0.85),
          (5, 0.95), (6, 1.00)]  # fmt: skip
# JRC Asia residential (Huizinga et al. 2017, as carried by CLIMADA-petals).
ASIA = [(0.5, 0.327), (1, 0.494), (1.5, 0.617), (2, 0.721), (3, 0.870), (4, 0.931),
        (5, 0.984), (6, 1.0)]  # fmt: skip


@pytest.mark.parametrize(("depth_m", "fraction"), EUROPE)
def test_europe_residential_table(depth_m: float, fraction: float) -> None:
    assert flood_damage_fraction(depth_m, "europe", "residential") == pytest.approx(fraction)


@pytest.mark.parametrize(("depth_m", "fraction"), ASIA)
def test_asia_residential_table(depth_m: float, fraction: float) -> None:
    assert flood_damage_fraction(depth_m, "Asia") == pytest.approx(fraction)


def test_linear_between_nodes_and_clipped_at_the_ends() -> None:
    assert flood_damage_fraction(0.25) == pytest.approx(0.125)
    assert flood_damage_fraction(2.5) == pytest.approx(0.675)
    assert flood_damage_fraction(-1.0) == 0.0  # dry ground
    assert flood_damage_fraction(12.0) == 1.0
    assert flood_damage_fraction(7.0, "asia", "industrial") == 1.0


def test_vectorised_over_depths() -> None:
    depths = np.array([[0.0, 0.5], [1.0, 10.0]])
    frac = flood_damage_fraction(depths, "europe")
    assert frac.shape == (2, 2)
    np.testing.assert_allclose(frac, [[0.0, 0.25], [0.40, 1.0]])


def test_curves_start_dry_and_never_fall() -> None:
    for key, curve in JRC_CURVES.items():
        assert len(curve) == len(JRC_DEPTHS_M), key
        assert curve[0] == 0.0, key
        assert np.all(np.diff(curve) >= 0), key
        assert curve[-1] == 1.0, key


def test_damage_is_value_times_fraction_broadcast() -> None:
    assert flood_damage(2.0, 1000.0, "asia") == pytest.approx(721.0)
    d = flood_damage([0.5, 1.0, 3.0], [100.0, 200.0, 300.0], "europe")
    np.testing.assert_allclose(d, [25.0, 80.0, 225.0])
    np.testing.assert_allclose(flood_damage([0.5, 1.0], 10.0), [2.5, 4.0])


def test_flood_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="depth_m was"):
        flood_damage_fraction([0.5, math.nan])
    with pytest.raises(ValueError, match=r"region/sector was 'mars'/'residential'; expected"):
        flood_damage_fraction(1.0, "mars")
    with pytest.raises(ValueError, match="expected one of"):
        flood_damage_fraction(1.0, "europe", "industrial")
    with pytest.raises(ValueError, match=r"value was -5\.0"):
        flood_damage(1.0, -5.0)


def test_flood_depth_damage_carries_its_source() -> None:
    import json

    from gis.consequence import flood_depth_damage

    r = flood_depth_damage([0.5, 2.0], "Asia", value=[1000.0, 1000.0])
    np.testing.assert_allclose(r.damage_fraction, [0.327, 0.721])
    assert r.damage is not None
    np.testing.assert_allclose(r.damage, [327.0, 721.0])
    assert r.region == "asia"
    assert "Huizinga" in r.source
    assert "doi:10.2760/16510" in r.source
    d = json.loads(json.dumps(r.to_dict()))
    assert d["damage_fraction"] == pytest.approx([0.327, 0.721])
    assert flood_depth_damage(1.0).damage is None
