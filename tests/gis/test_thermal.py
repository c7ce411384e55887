"""Jet and pool fires (gis.consequence): the point-source model, the orifice equation and the
Babrauskas burning rates, against docs/impact-models.md and hand calculations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gis.consequence import (
    R_J_MOL_K,
    gas_orifice_release,
    get_fuel,
    get_pool_fuel,
    jet_fire,
    point_source_heat_flux_kw_m2,
    point_source_radius_m,
    pool_fire,
)


def test_worked_methane_jet() -> None:
    # docs/impact-models.md: ṁ = 10 kg/s, X_r = 0.2, ΔH_c = 50 MJ/kg → 28, 40, 63 m.
    r = jet_fire(mass_rate_kg_s=10.0, fuel="methane", radiant_fraction=0.2)
    for ring, stated_m in zip(r.rings, [28, 40, 63], strict=True):
        assert abs(ring.radius_m - stated_m) <= max(0.01 * stated_m, 0.5)
    assert [ring.threshold for ring in r.rings] == [10.0, 5.0, 2.0]
    assert r.rings[0].label == "10 kW/m2: potentially lethal within 60 s"
    assert r.inputs["heat_release_rate_kw"] == (pytest.approx(500_000.0), "kW")
    assert r.model == "jet_fire_point_source"
    assert "NUREG-1805" in r.source
    json.dumps(r.to_dict())


def test_point_source_round_trip_and_inverse_square() -> None:
    radii = point_source_radius_m([10.0, 5.0, 2.0], 500_000.0, 0.2)
    flux = point_source_heat_flux_kw_m2(radii, 500_000.0, 0.2)
    np.testing.assert_allclose(flux, [10.0, 5.0, 2.0], rtol=1e-12)
    # Inverse square: twice the distance, a quarter of the flux.
    assert point_source_heat_flux_kw_m2(20.0, 1e5, 0.3) == pytest.approx(
        point_source_heat_flux_kw_m2(10.0, 1e5, 0.3) / 4
    )
    with pytest.raises(ValueError, match=r"distance_m was 0\.0"):
        point_source_heat_flux_kw_m2(0.0, 1e5, 0.3)
    with pytest.raises(ValueError, match="heat_flux_kw_m2 was"):
        point_source_radius_m([10.0, -1.0], 1e5, 0.3)
    with pytest.raises(ValueError, match=r"radiant_fraction was 1.2; expected a fraction"):
        point_source_radius_m(10.0, 1e5, 1.2)


def test_choked_release_by_hand() -> None:
    # 50 mm hole, 0.4 MPa gauge methane at 15 °C: ṁ = A·p0·√(γM/(RT)·(2/(γ+1))^((γ+1)/(γ-1))).
    g, m, t = 1.31, 0.016043, 288.15
    p0 = 0.4e6 + 101_325.0
    area = math.pi * 0.05**2 / 4
    by_hand = (
        area * p0 * math.sqrt(g * m / (8.314462618 * t) * (2 / (g + 1)) ** ((g + 1) / (g - 1)))
    )
    rel = gas_orifice_release(50.0, 0.4, "methane")
    assert rel.is_choked
    assert rel.mass_rate_kg_s == pytest.approx(by_hand, rel=1e-9)
    assert rel.mass_rate_kg_s == pytest.approx(1.70, abs=0.01)
    assert rel.upstream_pressure_kpa == pytest.approx(501.325)
    # Choked flow is linear in C_d, in hole area and in absolute pressure.
    assert gas_orifice_release(50.0, 0.4, discharge_coefficient=0.6).mass_rate_kg_s == (
        pytest.approx(0.6 * rel.mass_rate_kg_s)
    )
    assert gas_orifice_release(100.0, 0.4).mass_rate_kg_s == pytest.approx(4 * rel.mass_rate_kg_s)
    p0_double = 2 * p0 / 1e6 - 0.101325
    assert gas_orifice_release(50.0, p0_double).mass_rate_kg_s == pytest.approx(
        2 * rel.mass_rate_kg_s
    )


def test_subsonic_meets_choked_at_the_critical_ratio() -> None:
    g = get_fuel("methane").heat_capacity_ratio
    critical = (2 / (g + 1)) ** (g / (g - 1))
    p_gauge_mpa = (101.325 / critical - 101.325) / 1000  # p_a/p0 exactly critical
    below = gas_orifice_release(50.0, p_gauge_mpa * 0.999)
    above = gas_orifice_release(50.0, p_gauge_mpa * 1.001)
    assert not below.is_choked
    assert above.is_choked
    assert below.mass_rate_kg_s == pytest.approx(above.mass_rate_kg_s, rel=2e-3)
    # A 1 kPa (gauge) service line: almost incompressible, so ṁ → A·√(2·ρ0·Δp) (Bernoulli),
    # the gas's expansion taking off a fraction of a per cent.
    low = gas_orifice_release(50.0, 0.001)
    rho0 = 102_325.0 * 0.016043 / (R_J_MOL_K * 288.15)
    bernoulli = math.pi * 0.05**2 / 4 * math.sqrt(2 * rho0 * 1000.0)
    assert not low.is_choked
    assert low.mass_rate_kg_s == pytest.approx(bernoulli, rel=0.01)
    assert low.mass_rate_kg_s < bernoulli


def test_jet_fire_from_a_hole_equals_the_rate_it_implies() -> None:
    from_hole = jet_fire(hole_diameter_mm=300.0, pressure_mpa=0.4, fuel="natural gas")
    rate = gas_orifice_release(300.0, 0.4).mass_rate_kg_s
    from_rate = jet_fire(mass_rate_kg_s=rate)
    assert [r.radius_m for r in from_hole.rings] == pytest.approx(
        [r.radius_m for r in from_rate.rings]
    )
    assert from_hole.inputs["flow"] == ("choked", "")
    assert "orifice" in from_hole.source


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "expected either mass_rate_kg_s or both"),
        ({"mass_rate_kg_s": 1.0, "hole_diameter_mm": 50.0}, "expected either mass_rate_kg_s"),
        ({"hole_diameter_mm": 50.0}, "expected both to compute the release rate"),
        ({"mass_rate_kg_s": -1.0}, r"mass_rate_kg_s was -1.0; expected a finite number > 0"),
        ({"mass_rate_kg_s": 1.0, "fuel": "diesel"}, r"fuel was 'diesel'; expected one of"),
        ({"mass_rate_kg_s": 1.0, "thresholds_kw_m2": [0.0]}, "expected a non-empty sequence"),
        (
            {"hole_diameter_mm": 50.0, "pressure_mpa": 0.4, "discharge_coefficient": 0.0},
            "discharge_coefficient was 0.0",
        ),
    ],
)
def test_jet_fire_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jet_fire(**kwargs)  # type: ignore[arg-type]


def test_pool_fire_by_hand() -> None:
    # 100 m² of gasoline: D = 11.28 m, m'' = 0.055·(1 − e^(−2.1·11.28)) ≈ 0.055 kg/(m²·s),
    # Q = 0.055 · 100 · 43,700 = 240,350 kW; r(10) = √(0.30·Q/(4π·10)) = 23.95 m.
    r = pool_fire(100.0, "gasoline")
    assert r.inputs["equivalent_diameter_m"][0] == pytest.approx(math.sqrt(400 / math.pi))
    assert r.inputs["heat_release_rate_kw"][0] == pytest.approx(240_350.0, rel=1e-6)
    assert r.rings[0].radius_m == pytest.approx(math.sqrt(0.3 * 240_350 / (40 * math.pi)))
    assert r.rings[0].radius_m == pytest.approx(23.95, abs=0.01)
    assert "Babrauskas" in r.source


def test_small_pools_burn_slower() -> None:
    # D = 0.5 m of gasoline: m'' = 0.055·(1 − e^(−2.1·0.5)) = 0.650 · m''∞.
    area = math.pi * 0.25**2
    r = pool_fire(area, "汽油")
    assert r.inputs["mass_burning_rate_kg_m2_s"][0] == pytest.approx(
        0.055 * (1 - math.exp(-1.05)), rel=1e-9
    )
    assert get_pool_fuel("Kerosine").name == "kerosene"


def test_pool_fire_flags_rings_inside_the_pool() -> None:
    r = pool_fire(10_000.0, "methanol", thresholds_kw_m2=[100.0, 5.0])
    assert r.rings[0].radius_m < r.inputs["equivalent_diameter_m"][0] / 2  # type: ignore[operator]
    assert any("inside the pool edge" in n for n in r.notes)
    assert r.rings[1].label == "5 kW/m2: second-degree burns within 60 s"
    assert r.rings[0].label == "100 kW/m2"


def test_pool_fire_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"fuel was 'LNG'; expected one of"):
        pool_fire(10.0, "LNG")
    with pytest.raises(ValueError, match="pool_area_m2 was 0"):
        pool_fire(0, "diesel")
