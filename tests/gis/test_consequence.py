"""PIR of natural-gas mains (ASME B31.8S §3.2; 49 CFR 192.903): the worked values, both unit
systems, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gis.consequence import PIR_SI_FACTOR, pir_ft, pir_m

PSI_MPA = 0.006894757293168
IN_MM = 25.4

# (d in, p psig, r ft, r m) from docs/impact-models.md.
WORKED = [(30, 1000, 655, 200.0), (24, 720, 444, 135.0), (12, 400, 166, 50.5), (6, 60, 32, 9.8)]


@pytest.mark.parametrize(("d_in", "p_psig", "r_ft", "r_m"), WORKED)
def test_worked_values_us_units(d_in: float, p_psig: float, r_ft: float, r_m: float) -> None:
    assert pir_ft(p_psig, d_in) == pytest.approx(r_ft, abs=0.6)


@pytest.mark.parametrize(("d_in", "p_psig", "r_ft", "r_m"), WORKED)
def test_worked_values_si(d_in: float, p_psig: float, r_ft: float, r_m: float) -> None:
    # The published metres are rounded to 3 significant figures: 0.5 % tolerance.
    assert pir_m(p_psig * PSI_MPA, d_in * IN_MM) == pytest.approx(r_m, rel=0.005)


def test_si_constant_is_the_unit_conversion_of_069() -> None:
    assert pytest.approx(0.0997, abs=5e-5) == PIR_SI_FACTOR
    # Same radius either way, to 1e-9.
    assert pir_m(2.0, 500.0) == pytest.approx(pir_ft(2.0 / PSI_MPA, 500.0 / IN_MM) * 0.3048)


def test_vectorised_with_nan_passthrough() -> None:
    r = pir_m(np.array([6.894757, np.nan, 0.0]), np.array([762.0, 300.0, 300.0]))
    assert r.shape == (3,)
    assert round(float(r[0])) == 200
    assert math.isnan(r[1])
    assert r[2] == 0.0


def test_negative_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="p_mpa"):
        pir_m(-0.1, 300)
    with pytest.raises(ValueError, match="d_in"):
        pir_ft(100, -1)


# --- the PIR as a consequence result ----------------------------------------------------------


def test_gas_pipe_rupture_ring_is_the_pir() -> None:
    from gis.consequence import PIR_HEAT_FLUX_KW_M2, gas_pipe_rupture

    r = gas_pipe_rupture(diameter_mm=24 * IN_MM, pressure_mpa=720 * PSI_MPA)
    (ring,) = r.rings
    assert ring.radius_m == pytest.approx(135.0, rel=0.005)
    assert ring.values["radius_ft"] == pytest.approx(444, abs=0.6)
    # 5,000 Btu/(h·ft²) = 15.77 kW/m² (GRI-00/0189).
    assert ring.threshold == pytest.approx(15.77, abs=0.01) == PIR_HEAT_FLUX_KW_M2
    assert ring.threshold_unit == "kW/m2"
    assert "ASME B31.8S" in r.source
    assert "192.903" in r.source
    assert r.inputs["pressure_psig"] == (pytest.approx(720), "psig")


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "300", True])
def test_gas_pipe_rupture_refuses_bad_input(bad: object) -> None:
    from gis.consequence import gas_pipe_rupture

    with pytest.raises(ValueError, match=r"diameter_mm was .*expected a finite number > 0"):
        gas_pipe_rupture(diameter_mm=bad, pressure_mpa=0.4)  # type: ignore[arg-type]


def test_result_to_dict_is_json() -> None:
    import json

    from gis.consequence import gas_pipe_rupture

    d = gas_pipe_rupture(300.0, 0.4).to_dict()
    back = json.loads(json.dumps(d))
    assert back["model"] == "gas_pipe_pir_asme_b31_8s"
    assert back["inputs"]["diameter_mm"] == {"value": 300.0, "unit": "mm"}
    assert back["rings"][0]["radius_m"] == pytest.approx(pir_m(0.4, 300.0))


# --- US high-consequence areas (49 CFR 192.903) -----------------------------------------------


def test_hca_at_twenty_buildings_not_at_nineteen() -> None:
    from gis.consequence import high_consequence_area

    yes = high_consequence_area(buildings_inside=20, identified_sites_inside=0)
    no = high_consequence_area(buildings_inside=19, identified_sites_inside=0)
    assert yes.is_hca
    assert not no.is_hca
    assert "(2)(i)" in yes.reasons[0]
    assert yes.grade is None
    assert "192.903" in yes.source


def test_hca_one_identified_site_is_enough() -> None:
    from gis.consequence import high_consequence_area

    r = high_consequence_area(buildings_inside=0, identified_sites_inside=1)
    assert r.is_hca
    assert r.reasons == (
        "1 identified site(s) inside the potential impact circle (49 CFR 192.903 method (2)(ii))",
    )


def test_hca_city_threshold() -> None:
    from gis.consequence import high_consequence_area

    assert high_consequence_area(10, 0, building_threshold=10).is_hca
    assert not high_consequence_area(10, 0, building_threshold=11).is_hca


@pytest.mark.parametrize(
    ("buildings", "sites", "threshold"),
    [(-1, 0, 20), (1.5, 0, 20), (True, 0, 20), (0, -2, 20), (0, 0, 0)],
)
def test_hca_refuses_bad_counts(buildings: object, sites: object, threshold: object) -> None:
    from gis.consequence import high_consequence_area

    with pytest.raises(ValueError, match=r"was .*; expected"):
        high_consequence_area(buildings, sites, threshold)  # type: ignore[arg-type]


# --- GB 32167-2015 grading ------------------------------------------------------------------


def test_sliding_window_finds_the_most_crowded_2_km() -> None:
    from gis.consequence import households_in_sliding_window

    # Dwellings at 0..1999 m (150 of them) and a denser cluster of 180 at 5000..6000 m.
    chain = np.r_[np.linspace(0, 1999, 150), np.linspace(5000, 6000, 180)]
    w = households_in_sliding_window(chain)
    assert w.households == 180.0
    assert 4000.0 <= w.start_m <= 5000.0
    assert w.end_m - w.start_m == 2000.0
    # The window is closed: points exactly 2000 m apart are in one window.
    assert households_in_sliding_window([0.0, 2000.0]).households == 2.0
    assert households_in_sliding_window([0.0, 2000.1]).households == 1.0


def test_sliding_window_weights_and_empty() -> None:
    from gis.consequence import households_in_sliding_window

    assert households_in_sliding_window([10.0, 20.0], [30, 90]).households == 120.0
    empty = households_in_sliding_window([])
    assert empty.households == 0.0
    with pytest.raises(ValueError, match="households has 1 values"):
        households_in_sliding_window([1.0, 2.0], [3.0])
    with pytest.raises(ValueError, match="finite"):
        households_in_sliding_window([1.0, np.nan])
    with pytest.raises(ValueError, match="households >= 0"):
        households_in_sliding_window([1.0], [-4.0])


def test_corridor_households_counts_only_within_200_m() -> None:
    import shapely

    from gis.consequence import corridor_households
    from gis.frames import LocalFrame

    # A 6 km main running north-east at 31.8° N, built in metres and mapped to degrees.
    f = LocalFrame(117.2, 31.8)
    line = f.geometry_to_lonlat(shapely.LineString([(0, 0), (4243, 4243)]))
    # Offsets perpendicular to the line: 150 m (in), 199 m (in), 201 m (out), 400 m (out).
    ux, uy = np.array([1.0, 1.0]) / math.sqrt(2)
    along = np.array([500.0, 1000.0, 1500.0, 2000.0])
    offset = np.array([150.0, -199.0, 201.0, -400.0])
    x, y = along * ux - offset * uy, along * uy + offset * ux
    lon, lat = f.to_lonlat(x, y)
    w = corridor_households(line, lon, lat, households=[60, 45, 500, 500])
    assert w.households == 105.0
    assert w.start_m == pytest.approx(500.0, abs=1.0)
    assert w.half_width_m == 200.0
    with pytest.raises(ValueError, match="expected a non-empty LineString"):
        corridor_households(shapely.Point(0, 0), lon, lat)


def test_gb32167_gas_grades() -> None:
    from gis.consequence import gb32167_gas_hca_grade

    assert gb32167_gas_hca_grade(100).grade == "II"  # ≥ 100 households: class 3 area
    assert not gb32167_gas_hca_grade(99.9).is_hca
    top = gb32167_gas_hca_grade(10, four_storey_buildings_prevalent=True)
    assert top.grade == "III"
    assert "class-4" in top.reasons[0]
    assert "GB 32167-2015" in top.source
    assert any("not graded" in n for n in top.notes)
    with pytest.raises(ValueError, match="max_households_2km was -1"):
        gb32167_gas_hca_grade(-1)


def test_gb32167_oil_grades_take_the_most_severe() -> None:
    from gis.consequence import gb32167_oil_hca_grade

    assert gb32167_oil_hca_grade(0, road_rail_or_flammable_site_within_50m=True).grade == "I"
    assert gb32167_oil_hca_grade(0, village_households_within_200m=50).grade == "II"
    assert not gb32167_oil_hca_grade(0, village_households_within_200m=49).is_hca
    both = gb32167_oil_hca_grade(
        150, road_rail_or_flammable_site_within_50m=True, water_source_within_200m=True
    )
    assert both.grade == "III"
    assert len(both.reasons) == 3
