"""Explanations of stored asset scores: every component with its value, input and source.

Rebuilt from the inputs and context stored with each score by the same model code that scored
it (:func:`gis.scoring.score`), so it explains the stored score even if attributes changed
since; no JSON per asset is stored (it was most of a full refresh's write).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.risk.refresh import floats
from app.risk.sql import EXPLAIN_SQL
from gis import scoring as model

_FACTOR_INPUT_UNIT = {
    "age": "years",
    "sufficiency": "NBI 0-100",
    "flood": "return period, years",
    "alarm": "worst open level (1 red … 4 blue)",
    "recent": f"alarms in {model.RECENT_DAYS} days",
}


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _unknown(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def _components(i: int, inputs: model.Inputs, s: model.Scores, row: Any) -> dict[str, Any]:
    """The explanation of one asset's score: every component, its value, input and source.

    Sources are keys of :data:`gis.scoring.SOURCES` (the text is the same for every asset);
    :func:`explain` puts the text back. ``row`` has the stored ``radius_m``,
    ``radius_basis`` and ``sites``.
    """
    pressure = str(inputs.pressure_class[i])
    age = float(inputs.age_yr[i])
    factor_inputs: dict[str, Any] = {
        "age": None if math.isnan(age) else round(age, 1),
        "material": None if _unknown(inputs.material[i]) else str(inputs.material[i]),
        "condition": None if _unknown(inputs.condition[i]) else str(inputs.condition[i]),
        "sufficiency": None
        if _unknown(float(inputs.sufficiency[i]))
        else float(inputs.sufficiency[i]),
        "pressure": (pressure or None) if inputs.kind[i] in model.PRESSURE_KINDS else "n/a",
        "flood": None if _unknown(float(inputs.flood_rp_yr[i])) else float(inputs.flood_rp_yr[i]),
        "landslide": None if _unknown(inputs.landslide[i]) else str(inputs.landslide[i]),
        "alarm": int(inputs.alarm_level[i]) or None,
        "recent": int(inputs.recent_alarms[i]),
    }
    likelihood = {
        name: {"value": _r(s.factors[name][i]), "input": factor_inputs[name], "source": name}
        for name in s.factors
    }
    method = str(s.method[i])
    basis = str(row.radius_basis)
    out: dict[str, Any] = {
        "model": model.MODEL_VERSION,
        "method": method,
        "likelihood": {
            "factors": likelihood,
            "index": _r(s.likelihood_index[i]),
            "level": int(s.l_level[i]),
        },
        "consequence": {
            "radius_m": _r(float(row.radius_m), 1),
            "radius_basis": basis,
            "radius_source": "pir" if basis.startswith("pir") else "radius",
            "population": {"value": _r(inputs.population[i], 1), "source": "population"},
            "sites": {
                "value": row.sites or {},
                "persons": _r(inputs.site_persons[i], 1),
                "source": "sites",
            },
            "persons": _r(s.persons[i], 1),
            "exposure_level": int(s.exposure_level[i]),
            "severity": {"value": int(s.severity[i]), "source": "severity"},
            "level": int(s.s_level[i]),
        },
        "score": {
            "value": _r(s.score[i]),
            "band": str(s.band[i]),
            "norm": _r(s.norm[i], 4),
            "class": int(s.risk_class[i]),
            "source": method,
        },
    }
    if method == "lec":
        out["lec"] = {"L": float(s.lec_l[i]), "E": float(s.lec_e[i]), "C": float(s.lec_c[i])}
    return out


def _rebuild(row: Any) -> dict[str, Any]:
    if row.inputs is None:  # scored before migration 0011: the stored explanation
        return dict(row.components or {})
    kind, age, material, condition, suff, pclass, alarm, recent = row.inputs
    inputs = model.Inputs(
        kind=np.array([kind], dtype=object),
        plate=np.array([row.plate], dtype=object),
        age_yr=floats([age]),
        material=np.array([material], dtype=object),
        condition=np.array([condition], dtype=object),
        sufficiency=floats([suff]),
        pressure_class=np.array([pclass], dtype=object),
        flood_rp_yr=floats([row.flood_rp_yr]),
        landslide=np.array([row.landslide or ""], dtype=object),
        alarm_level=np.array([alarm], dtype=np.int64),
        recent_alarms=np.array([recent], dtype=np.int64),
        radius_m=floats([row.radius_m]),
        population=floats([row.population]),
        site_persons=floats([row.site_persons]),
        sites=np.array([sum((row.sites or {}).values())], dtype=np.int64),
    )
    s = model.score(inputs, {row.plate: row.method})
    return _components(0, inputs, s, row)


def asset_components(db: Session | Connection, asset_ids: Iterable[int]) -> dict[int, Any]:
    """The explanation of each stored asset score, with ``source`` keys (see :func:`explain`).

    Rebuilt from the inputs and context stored with the score by the same model code that
    scored it, so it is the explanation of the stored score even if attributes changed since.
    """
    rows = db.execute(EXPLAIN_SQL, {"ids": sorted(set(asset_ids))}).all()
    return {int(r.asset_id): _rebuild(r) for r in rows}


def explain(components: Any, key: str | None = None) -> Any:
    """Stored components with each ``source`` key replaced by its text (and input units)."""
    if isinstance(components, dict):
        out = {k: explain(v, k) for k, v in components.items()}
        src = out.get("source")
        if isinstance(src, str) and src in model.SOURCES:
            out["source"] = model.SOURCES[src]
            if src in _FACTOR_INPUT_UNIT and "input" in out:
                out["unit"] = _FACTOR_INPUT_UNIT[src]
        rsrc = out.get("radius_source")
        if isinstance(rsrc, str) and rsrc in model.SOURCES:
            out["radius_source"] = model.SOURCES[rsrc]
        return out
    return components
