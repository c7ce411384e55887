"""Vapour-cloud explosions (gis.consequence): TNT equivalence, the Kingery-Bulmash fit of
Swisdak (1994) and its inverse, against the worked values of docs/impact-models.md."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gis.consequence import (
    CLANCEY_DAMAGE,
    KB_P_MAX_KPA,
    KB_P_MIN_KPA,
    KB_Z_MAX,
    KB_Z_MIN,
    get_fuel,
    kb_overpressure_kpa,
    kb_scaled_distance,
    overpressure_damage,
    tnt_equivalence_kg,
    vapour_cloud_explosion,
)


def worked(value: float, stated: float, decimals: int) -> bool:
    """A worked value of docs/impact-models.md is met to 1 % or to its stated rounding."""
    return abs(value - stated) <= max(0.01 * abs(stated), 0.5 * 10.0**-decimals)


@pytest.mark.parametrize(("z", "p_kpa"), [(3, 115.7), (5, 43.2), (10, 14.9), (20, 6.1), (40, 2.4)])
def test_worked_overpressures(z: float, p_kpa: float) -> None:
    # docs/impact-models.md gives one decimal (2.4 kPa is 2.37 rounded).
    assert worked(kb_overpressure_kpa(z), p_kpa, 1)


@pytest.mark.parametrize(("p_kpa", "z"), [(55.2, 4.36), (24.1, 7.15), (6.9, 18.1)])
def test_worked_scaled_distances_of_the_aloha_thresholds(p_kpa: float, z: float) -> None:
    assert worked(kb_scaled_distance(p_kpa), z, 2)


def test_inverse_round_trips_across_the_whole_fit() -> None:
    z = np.geomspace(KB_Z_MIN, KB_Z_MAX, 400)
    # Away from the 23.8 step (see the next test) the inverse recovers Z to 1e-9.
    z = z[np.abs(z - 23.8) > 0.2]
    back = kb_scaled_distance(kb_overpressure_kpa(z))
    np.testing.assert_allclose(back, z, rtol=1e-9)


def test_each_piece_is_monotone_and_the_step_at_23_8_returns_the_farther_root() -> None:
    z = np.geomspace(KB_Z_MIN, KB_Z_MAX, 20001)
    p = kb_overpressure_kpa(z)
    steps_up = np.flatnonzero(np.diff(p) > 0)
    # Only one place where the published fit rises: across Z = 23.8 (4.894 → 4.929 kPa).
    assert len(steps_up) == 1
    assert z[steps_up[0]] <= 23.8 < z[steps_up[0] + 1]
    # A threshold inside that step is met just below 23.8 and again above it: the farther
    # (conservative) radius is returned.
    assert kb_scaled_distance(4.91) > 23.8
    assert kb_overpressure_kpa(kb_scaled_distance(4.91)) == pytest.approx(4.91, rel=1e-9)


def test_fit_range_is_refused_outside() -> None:
    assert pytest.approx(0.2495, rel=1e-3) == KB_P_MIN_KPA
    assert pytest.approx(17310, rel=1e-3) == KB_P_MAX_KPA
    with pytest.raises(ValueError, match=r"expected finite values in 0.2-198.5 m/kg\^\(1/3\)"):
        kb_overpressure_kpa(0.1)
    with pytest.raises(ValueError, match="scaled_distance_m_kg13 was"):
        kb_overpressure_kpa([10.0, 250.0])
    with pytest.raises(ValueError, match=r"overpressure_kpa was 0\.1; expected finite"):
        kb_scaled_distance(0.1)
    with pytest.raises(ValueError, match="overpressure_kpa was"):
        kb_scaled_distance(math.nan)
    # For many assets at once, NaN beyond the fit instead of an error.
    p = kb_overpressure_kpa([10.0, 250.0], out_of_range="nan")
    assert p[0] == pytest.approx(14.89, rel=1e-3)
    assert math.isnan(p[1])
    with pytest.raises(ValueError, match="out_of_range was 'clip'"):
        kb_overpressure_kpa(10.0, out_of_range="clip")


def test_tnt_equivalence_of_one_tonne_methane() -> None:
    assert tnt_equivalence_kg(1000.0, "methane") == pytest.approx(534, rel=0.01)
    # Linear in mass, yield and heat of combustion; inverse in E_TNT.
    assert tnt_equivalence_kg(2000.0, "methane", yield_fraction=0.1) == pytest.approx(
        4 * tnt_equivalence_kg(1000.0, "methane")
    )
    assert tnt_equivalence_kg(1.0, heat_of_combustion_mj_kg=4.68, yield_fraction=1.0) == 1.0
    # Hydrogen carries 2.4 × methane's energy per kg.
    assert tnt_equivalence_kg(1.0, "hydrogen") / tnt_equivalence_kg(1.0, "methane") == (
        pytest.approx(2.4)
    )


def test_worked_vce_one_tonne_methane() -> None:
    r = vapour_cloud_explosion(mass_kg=1000.0, fuel="methane")
    assert r.model == "vce_tnt_kingery_bulmash"
    assert r.inputs["tnt_equivalent_kg"][0] == pytest.approx(534, rel=0.01)
    for ring, stated_m in zip(r.rings, [35, 58, 147], strict=True):
        assert worked(ring.radius_m, stated_m, 0)
    assert [ring.threshold for ring in r.rings] == [55.2, 24.1, 6.9]
    assert r.rings[1].label == "3.5 psi (24.1 kPa): serious injury likely"
    assert r.rings[2].values["overpressure_psi"] == pytest.approx(1.0, abs=0.001)
    assert r.rings[0].values["scaled_distance_m_kg13"] == pytest.approx(4.36, rel=0.01)
    assert "Swisdak" in r.source
    assert "TNT equivalence" in r.source
    json.dumps(r.to_dict())


def test_vce_from_tnt_mass_and_city_thresholds() -> None:
    r = vapour_cloud_explosion(tnt_equivalent_kg=1000.0, thresholds_kpa=[13.8, 2.07])
    # Z · W^(1/3), W^(1/3) = 10 for one tonne of TNT.
    assert [ring.radius_m for ring in r.rings] == pytest.approx(
        [10 * kb_scaled_distance(13.8), 10 * kb_scaled_distance(2.07)]
    )
    # Custom thresholds are labelled from Clancey's damage ladder.
    assert r.rings[0].label == "13.8 kPa (2 psi): walls and roofs of houses partly collapse"
    assert "mass_kg" not in r.inputs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "expected exactly one of them"),
        ({"mass_kg": 10.0, "tnt_equivalent_kg": 5.0}, "expected exactly one of them"),
        ({"mass_kg": -5.0}, r"mass_kg was -5.0; expected a finite number > 0"),
        ({"mass_kg": math.nan}, "mass_kg was nan"),
        ({"mass_kg": 5.0, "fuel": "unobtainium"}, r"fuel was 'unobtainium'; expected one of"),
        ({"mass_kg": 5.0, "yield_fraction": 1.5}, r"expected a fraction in \(0, 1\]"),
        ({"mass_kg": 5.0, "thresholds_kpa": []}, "expected a non-empty sequence"),
        ({"mass_kg": 5.0, "thresholds_kpa": [20000.0]}, "range of the Kingery-Bulmash fit"),
    ],
)
def test_vce_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vapour_cloud_explosion(**kwargs)  # type: ignore[arg-type]


def test_fuel_table_and_aliases() -> None:
    for name in ("methane", "propane", "butane", "hydrogen", "ethylene", "propylene"):
        f = get_fuel(name)
        assert 40.0 < f.heat_of_combustion_mj_kg < 125.0
        assert 1.0 < f.heat_capacity_ratio < 1.7
        assert f.source
    assert get_fuel("天然气") is get_fuel("METHANE")
    assert get_fuel("methane").molar_mass_kg_mol == pytest.approx(0.016043, rel=1e-4)
    assert get_fuel("hydrogen").formula == "H2"
    assert get_fuel("propylene").formula == "C3H6"


def test_clancey_ladder() -> None:
    assert overpressure_damage(70.0) == "probable total destruction of buildings"
    assert overpressure_damage(6.9) == "houses partly demolished, made uninhabitable"
    assert overpressure_damage(6.89) == CLANCEY_DAMAGE[0][1]
    assert "safe distance" in overpressure_damage(0.0)
    with pytest.raises(ValueError, match="overpressure_kpa was -1"):
        overpressure_damage(-1.0)
