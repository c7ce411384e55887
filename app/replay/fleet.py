"""The fleet: the active sensors a replay speaks for, read from the database once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from numpy.dtypes import StringDType
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.replay.model import F64, I64, U64, Obj, model_of, profile_of, sensor_key, uniform
from app.taxonomy.indicators import INDICATORS

DEFAULT_INTERVAL_S = 60  # a sensor registered without interval_s


# -- the fleet --------------------------------------------------------------------------------
FLEET_SQL = text(
    """
    SELECT s.id, s.external_id, s.kind, s.interval_s, s.asset_id, a.kind AS asset_kind,
           a.external_id AS asset_external_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
           CASE WHEN jsonb_typeof(a.attributes->'pressure_mpa') = 'number'
                THEN (a.attributes->>'pressure_mpa')::float8 END AS pressure_mpa,
           CASE WHEN jsonb_typeof(a.attributes->'diameter_mm') = 'number'
                THEN (a.attributes->>'diameter_mm')::float8 END AS diameter_mm
    FROM sensor s LEFT JOIN asset a ON a.id = s.asset_id
    WHERE s.status = 'active'
    ORDER BY s.id
    """
)


@dataclass(frozen=True)
class Fleet:
    """The active sensors, one array per column (positions are the replay's sensor index)."""

    id: I64
    external_id: Obj
    kind: Obj
    interval_s: I64
    asset_id: I64  # 0 when unbound
    asset_kind: Obj
    asset_external_id: Obj
    lon: F64
    lat: F64
    profile: Obj  # the baseline model: the indicator, or pressure_gas / pressure_water
    nominal: F64  # level without daily cycle or noise (truth's baseline)
    key: U64  # hash of (seed, external id): the noise stream of the sensor
    phase: I64  # second of its interval at which the sensor reports
    low: F64  # clip bounds: physical range (and model floor, e.g. CH4 >= 0)
    high: F64
    scale: F64  # 10 ** decimals to round to
    json_prefix: npt.NDArray[Any]  # '{"sensor":"<external id>","ts":"' as StringDType

    def __len__(self) -> int:
        return len(self.id)

    def positions(self, ids: list[int] | I64) -> I64:
        """Fleet positions of sensor ids (ids not in the fleet are dropped)."""
        where = {int(s): n for n, s in enumerate(self.id)}
        return np.array([where[int(i)] for i in ids if int(i) in where], dtype=np.int64)


def load_fleet(session: Session, seed: int) -> Fleet:
    """Read the active sensors and derive each one's model, nominal level and noise key."""
    rows = session.execute(FLEET_SQL).all()
    n = len(rows)
    col = list(zip(*rows, strict=True)) if rows else [()] * 11
    kind = np.array(col[2], dtype=object)
    asset_kind = np.array(col[5], dtype=object)
    lon = np.array([np.nan if v is None else v for v in col[7]], dtype=np.float64)
    lat = np.array([np.nan if v is None else v for v in col[8]], dtype=np.float64)
    if n and np.isnan(lon).any():  # no position: take the fleet's mean for the solar clock
        lon[np.isnan(lon)] = np.nanmean(lon) if np.isfinite(lon).any() else 0.0
    external_id = np.array(col[1], dtype=object)
    interval = np.array([v or DEFAULT_INTERVAL_S for v in col[3]], dtype=np.int64)
    key = np.array([sensor_key(f"{seed}|{e}") for e in external_id], dtype=np.uint64)
    device = np.array([sensor_key(str(e)) for e in external_id], dtype=np.uint64)
    phase = (device % interval.astype(np.uint64)).astype(np.int64)
    profile = np.array(
        [
            profile_of(str(k), None if a is None else str(a))
            for k, a in zip(kind, asset_kind, strict=True)
        ],
        dtype=object,
    )
    pressure = np.array([np.nan if v is None else v for v in col[9]], dtype=np.float64)
    diameter = np.array([np.nan if v is None else v for v in col[10]], dtype=np.float64)
    u = uniform(key, 0, stream=1)
    nominal = np.zeros(n)
    low, high, scale = np.zeros(n), np.zeros(n), np.ones(n)
    for name in np.unique(profile) if n else []:
        m = profile == name
        model = model_of(str(name))
        nominal[m] = model.nominal(u[m], pressure[m], diameter[m])
        indicator = INDICATORS[str(kind[m][0])]
        low[m] = max(indicator.minimum, model.floor)
        high[m] = min(indicator.maximum, model.ceiling)
        scale[m] = 10.0**model.decimals
    prefix = np.array(
        ['{"sensor":' + orjson.dumps(str(e)).decode() + ',"ts":"' for e in external_id],
        dtype=StringDType(),
    )
    return Fleet(
        id=np.array(col[0], dtype=np.int64),
        external_id=external_id,
        kind=kind,
        interval_s=interval,
        asset_id=np.array([v or 0 for v in col[4]], dtype=np.int64),
        asset_kind=asset_kind,
        asset_external_id=np.array(col[6], dtype=object),
        lon=lon,
        lat=lat,
        profile=profile,
        nominal=nominal,
        key=key,
        phase=phase,
        low=low,
        high=high,
        scale=scale,
        json_prefix=prefix,
    )
