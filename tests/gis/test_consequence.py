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
