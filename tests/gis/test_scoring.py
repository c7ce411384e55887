"""Pure scoring (layers/risk.py): band edges of both methods, the factor tables, and the two
reference assets of a small city (old cast-iron high-pressure main by a school: red; new PE
low-pressure main in an empty area: blue)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gis import scoring as risk


@pytest.mark.parametrize(
    ("l_level", "s_level", "r", "cls"),
    [
        (2, 4, 8, 4),  # highest blue
        (3, 3, 9, 3),  # lowest yellow
        (3, 4, 12, 3),  # highest yellow
        (3, 5, 15, 2),  # lowest orange
        (4, 4, 16, 2),  # highest orange
        (4, 5, 20, 1),  # lowest red
        (5, 5, 25, 1),
        (1, 1, 1, 4),
    ],
)
def test_matrix_band_edges(l_level: int, s_level: int, r: int, cls: int) -> None:
    got_r, got_cls = risk.classify_matrix([l_level], [s_level])
    assert got_r.tolist() == [r]
    assert got_cls.tolist() == [cls]


@pytest.mark.parametrize(
    ("d", "cls", "band"),
    [
        (320.01, 1, "extreme"),
        (320.0, 2, "high"),
        (160.01, 2, "high"),
        (160.0, 3, "significant"),
        (70.01, 3, "significant"),
        (70.0, 4, "general"),
        (20.01, 4, "general"),
        (20.0, 4, "slight"),
        (0.05, 4, "slight"),
    ],
)
def test_lec_band_edges(d: float, cls: int, band: str) -> None:
    got_cls, got_band = risk.classify_lec([d])
    assert got_cls.tolist() == [cls]
    assert got_band.tolist() == [band]


def test_levels_and_factor_edges() -> None:
    assert risk.likelihood_level([0.49, 0.5, 0.99, 1.0, 2.0, 3.99, 4.0]).tolist() == [
        1, 2, 2, 3, 4, 4, 5,
    ]  # fmt: skip
    assert risk.age_factor([0, 9.9, 10, 29.9, 30, 50, np.nan]).tolist() == [
        0.7, 0.7, 0.85, 1.0, 1.4, 2.0, 1.0,
    ]  # fmt: skip
    assert risk.pressure_class_of([0.01, 0.0101, 0.4, 0.41, np.nan]).tolist() == [
        "low", "medium", "medium", "high", "",
    ]  # fmt: skip
    # Identified site: at least level 4 whatever the head count.
    assert risk.exposure_level([0, 0.5, 9, 10, 999, 1000], [0, 1, 0, 0, 0, 0]).tolist() == [
        1, 4, 2, 3, 4, 5,
    ]  # fmt: skip


def test_gas_main_radius_is_the_pir_and_others_are_set() -> None:
    kind = np.array(["gas_pipe", "gas_pipe", "water_pipe"], dtype=object)
    r, basis = risk.impact_radius_m(
        kind, [6.894757, np.nan, 0.5], [762.0, 300.0, 300.0], np.array(["", "high", ""], object)
    )
    assert round(r[0]) == 200
    assert r[1] == pytest.approx(0.0997 * 300 * np.sqrt(1.6), rel=1e-3)  # class default 1.6 MPa
    assert r[2] == risk.RADII_M["water_pipe"].m
    assert basis.tolist() == ["pir", "pir:default_pressure", "radius:water_pipe"]


def inputs(**overrides: Any) -> risk.Inputs:
    """Two gas mains: 0 old cast iron, high pressure, poor, by a school; 1 new PE, low."""
    base: dict[str, Any] = {
        "kind": np.array(["gas_pipe", "gas_pipe"], dtype=object),
        "plate": np.array(["lifeline", "lifeline"], dtype=object),
        "age_yr": np.array([76.0, 2.0]),
        "material": np.array(["Cast Iron", "PE"], dtype=object),
        "condition": np.array(["poor", "good"], dtype=object),
        "sufficiency": np.array([np.nan, np.nan]),
        "pressure_class": np.array(["high", "low"], dtype=object),
        "flood_rp_yr": np.array([np.nan, np.nan]),
        "landslide": np.array(["", ""], dtype=object),
        "alarm_level": np.array([0, 0]),
        "recent_alarms": np.array([0, 0]),
        "radius_m": np.array([37.8, 1.1]),
        "population": np.array([250.0, 0.0]),
        "site_persons": np.array([1000.0, 0.0]),
        "sites": np.array([1, 0]),
    }
    base.update(overrides)
    return risk.Inputs(**base)


def test_old_cast_iron_by_a_school_is_red_and_new_pe_in_nowhere_is_blue() -> None:
    s = risk.score(inputs())
    assert s.factors["material"].tolist() == [3.0, 0.5]  # "Cast Iron" normalised
    assert s.likelihood_index[0] == pytest.approx(2.0 * 3.0 * 2.0 * 1.5)
    assert s.l_level.tolist() == [5, 1]
    assert s.s_level.tolist() == [5, 3]  # ⌈√(5·5)⌉, ⌈√(5·1)⌉
    assert s.score.tolist() == [25.0, 3.0]
    assert s.risk_class.tolist() == [1, 4]
    assert s.norm[0] == 1.0
    assert 0 <= s.norm[1] < 0.25


def test_method_per_plate_and_alarm_raise_likelihood() -> None:
    s = risk.score(inputs(), {"lifeline": "lec"})
    assert s.method.tolist() == ["lec", "lec"]
    # L 10 (level 5) × E 10 (1,250 persons: exposure level 5) × C 100 (severity 5 with
    # exposure 5: catastrophe).
    assert s.score[0] == pytest.approx(10 * 10 * 100)
    assert s.risk_class.tolist()[0] == 1
    calm = risk.score(inputs())
    alarmed = risk.score(inputs(alarm_level=np.array([0, 1])))
    assert alarmed.factors["alarm"].tolist() == [1.0, 4.0]
    assert alarmed.l_level[1] > calm.l_level[1]
