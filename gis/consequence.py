"""Consequence distances: the potential impact radius (PIR) of a natural-gas pipeline.

Pure functions over scalars or numpy arrays; no database. Units are in every name.

Source: ASME B31.8S-2022, *Managing System Integrity of Gas Pipelines*, §3.2 (potential impact
circle), adopted by 49 CFR 192.903 ("potential impact radius"):

    r = 0.69 · √(p · d²)        r in ft, p = MAOP in psig, d = outside diameter in inches

The factor 0.69 is for natural gas only (it folds in methane's heat of combustion and a
5,000 Btu/h·ft² ≈ 15.8 kW/m² heat-flux threshold, GRI-00/0189); other gases need their own
factor (ASME B31.8S §3.2), so nothing here applies to them.

The SI form is the same formula with units converted, r[m] = 0.0997 · d[mm] · √(p[MPa]); the
constant is derived below from the exact conversion factors rather than typed in, so the two
forms agree to rounding.
"""

from __future__ import annotations

import math
from typing import Final, overload

import numpy as np
import numpy.typing as npt

__all__ = ["PIR_FT_FACTOR", "PIR_SI_FACTOR", "pir_ft", "pir_m"]

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | npt.ArrayLike

FT_M: Final = 0.3048  # international foot, exact
IN_MM: Final = 25.4  # inch, exact
PSI_PA: Final = 6894.757293168  # pound-force per square inch (NIST SP 811)

#: ASME B31.8S §3.2 / 49 CFR 192.903 constant, ft / (in · psi^½), natural gas.
PIR_FT_FACTOR: Final = 0.69
#: The same constant for r in m, d in mm, p in MPa: 0.69 · 0.3048 / 25.4 · √(10⁶ / 6894.757).
PIR_SI_FACTOR: Final = PIR_FT_FACTOR * FT_M / IN_MM * math.sqrt(1e6 / PSI_PA)


def _checked(name: str, value: ArrayLike) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    # NaN passes through (unknown input, unknown radius); negatives are a data error.
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    return arr


@overload
def pir_ft(p_psig: float, d_in: float) -> float: ...
@overload
def pir_ft(p_psig: npt.ArrayLike, d_in: npt.ArrayLike) -> FloatArray: ...
def pir_ft(p_psig: ArrayLike, d_in: ArrayLike) -> float | FloatArray:
    """Potential impact radius of a natural-gas pipeline, US customary units.

    Parameters
    ----------
    p_psig : float or array_like
        Maximum allowable operating pressure, psig (gauge).
    d_in : float or array_like
        Outside diameter, inches.

    Returns
    -------
    float or ndarray
        Radius in feet, ``0.69 · d · √p`` (ASME B31.8S §3.2; 49 CFR 192.903). NaN in, NaN out.

    Raises
    ------
    ValueError
        If a pressure or diameter is negative.

    Examples
    --------
    The worked values of ASME B31.8S / docs ``impact-models.md``:

    >>> round(pir_ft(1000, 30))
    655
    >>> round(pir_ft(720, 24))
    444
    >>> round(pir_ft(400, 12))
    166
    >>> round(pir_ft(60, 6))
    32
    """
    p = _checked("p_psig", p_psig)
    d = _checked("d_in", d_in)
    r = PIR_FT_FACTOR * np.sqrt(p * d * d)
    return float(r) if r.ndim == 0 else r


@overload
def pir_m(p_mpa: float, d_mm: float) -> float: ...
@overload
def pir_m(p_mpa: npt.ArrayLike, d_mm: npt.ArrayLike) -> FloatArray: ...
def pir_m(p_mpa: ArrayLike, d_mm: ArrayLike) -> float | FloatArray:
    """Potential impact radius of a natural-gas pipeline, SI units.

    Parameters
    ----------
    p_mpa : float or array_like
        Maximum allowable operating pressure, MPa (gauge).
    d_mm : float or array_like
        Outside diameter, mm. Where only the nominal diameter is known (``diameter_mm`` in
        the asset taxonomy) it stands in for the outside diameter: for city mains the two
        differ by a few per cent, which moves the radius by the same few per cent.

    Returns
    -------
    float or ndarray
        Radius in metres, ``0.0997 · d · √p`` (the ASME B31.8S §3.2 formula in SI units).

    Raises
    ------
    ValueError
        If a pressure or diameter is negative.

    Examples
    --------
    30 in (762 mm) at 1000 psi (6.895 MPa) → 200 m; 6 in (152.4 mm) at 60 psi → 9.8 m:

    >>> round(pir_m(6.894757, 762.0))
    200
    >>> round(pir_m(60 * 0.006894757, 152.4), 1)
    9.8
    """
    p = _checked("p_mpa", p_mpa)
    d = _checked("d_mm", d_mm)
    r = PIR_SI_FACTOR * d * np.sqrt(p)
    return float(r) if r.ndim == 0 else r
