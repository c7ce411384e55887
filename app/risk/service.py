"""Risk refresh: set-based SQL for the inputs and the aggregates, numpy for the maths.

A refresh has three stages, each a few statements:

1. **context** (geometry-derived, cached in ``risk_asset_context``): representative point → H3
   cell (Python ``h3``: no H3 extension in PostGIS here), admin areas covering the point,
   impact radius (:func:`layers.risk.impact_radius_m`), exposure inside the radius
   (identified sites by ``ST_DWithin`` on ``geom::geography`` — the GiST expression index —
   and population area-weighted from population cells), hazard overlays (flood and landslide
   zones by ``ST_Intersects`` on the ``geom`` GiST index) — one ``INSERT … SELECT`` with
   lateral joins;
2. **score**: one ``SELECT`` joins attributes, the context and the alarms; :func:`layers.risk.score`
   computes every factor, level and class vectorised; one ``INSERT … SELECT unnest(…)`` writes
   the asset rows with their components;
3. **aggregate**: one ``INSERT … SELECT … GROUP BY GROUPING SETS`` per scope writes the H3
   cell rows and the admin-area rows, per plate and composite.

A full refresh replaces everything inside the caller's transaction (readers see the old
scores until it commits). An incremental refresh takes asset ids (or alarm ids, mapped to
their assets) and rewrites only those assets' rows and the cells and areas they are in; an
alarm does not move an asset, so by default it skips stage 1.

Services flush and never commit (``app/db.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np
import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Float, Text

from app.errors import InvalidInput, NotFound
from layers import risk as model

DEFAULT_H3_RES = 8
COMPOSITE = "composite"
# Alarm states that still stand for a live condition (disposed: handled on site).
OPEN_STATES = ("raised", "verified", "pushed", "acknowledged", "dispatched")
NOT_ANOMALIES = ("false_alarm", "test")
PIPE_KINDS = ("gas_pipe", "water_pipe", "drainage_pipe", "heating_pipe")


@dataclass
class RefreshReport:
    """What a refresh did and where the time went (``db_s``: inside ``execute`` calls)."""

    assets: int = 0
    cells: int = 0
    areas: int = 0
    contexts: int = 0
    db_s: float = 0.0
    total_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


class _Timer:
    """Sums the wall time of database calls, so reports can separate DB from Python."""

    def __init__(self, session: Session, report: RefreshReport) -> None:
        self.session = session
        self.report = report

    def run(self, stage: str, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        started = time.perf_counter()
        result = self.session.execute(statement, dict(params or {}))
        took = time.perf_counter() - started
        self.report.db_s += took
        self.report.stages[stage] = self.report.stages.get(stage, 0.0) + took
        return result

    def copy(self, stage: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """COPY asset score rows in (5× faster than INSERT … unnest for JSONB payloads)."""
        started = time.perf_counter()
        raw = self.session.connection().connection.driver_connection
        with raw.cursor() as cur, cur.copy(_COPY_SQL) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(("asset", *row))
        took = time.perf_counter() - started
        self.report.db_s += took
        self.report.stages[stage] = self.report.stages.get(stage, 0.0) + took


_BIG = ARRAY(BigInteger)
_TXT = ARRAY(Text)
_FLT = ARRAY(Float)


# -- stage 1: context ----------------------------------------------------------------------
_POINTS_SQL = text(
    """
    SELECT a.id, a.kind, ST_X(p.pt) AS lon, ST_Y(p.pt) AS lat,
           (a.attributes->>'pressure_mpa')::float AS p_mpa,
           (a.attributes->>'diameter_mm')::float AS d_mm,
           a.attributes->>'pressure_class' AS pressure_class
    FROM asset a CROSS JOIN LATERAL (SELECT ST_PointOnSurface(a.geom) AS pt) p
    WHERE a.plate <> 'exposure' AND (CAST(:ids AS bigint[]) IS NULL OR a.id = ANY(:ids))
    """
).bindparams(bindparam("ids", type_=_BIG))

# Zones are buffered once, in the city's UTM zone (planar metres: a geography buffer costs ~10×
# more), into a temporary table with GiST indexes, so every join below is an index join with the
# big polygon (admin area, flood zone) on the outer side, where PostGIS caches it prepared.
_STAGE_SQL = text(
    """
    CREATE TEMPORARY TABLE risk_ctx_stage ON COMMIT DROP AS
    SELECT t.asset_id, t.cell_id, t.radius_m, t.radius_basis, a.geom,
           ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326) AS pt,
           CASE WHEN t.radius_m > 0
                THEN ST_Transform(ST_Buffer(ST_Transform(a.geom, :srid), t.radius_m,
                                            'quad_segs=4'), 4326)
                ELSE a.geom END AS zone
    FROM unnest(:ids, :cells, :lons, :lats, :radii, :bases)
        AS t(asset_id, cell_id, lon, lat, radius_m, radius_basis)
    JOIN asset a ON a.id = t.asset_id
    """
).bindparams(
    bindparam("ids", type_=_BIG),
    bindparam("cells", type_=_TXT),
    bindparam("lons", type_=_FLT),
    bindparam("lats", type_=_FLT),
    bindparam("radii", type_=_FLT),
    bindparam("bases", type_=_TXT),
)
_STAGE_INDEX_SQL = (
    "CREATE INDEX ON risk_ctx_stage USING gist (zone)",
    "CREATE INDEX ON risk_ctx_stage USING gist (pt)",
    "CREATE INDEX ON risk_ctx_stage USING gist (geom)",
    "ANALYZE risk_ctx_stage",
)

# Population is area-weighted: a cell wholly inside the zone counts whole, otherwise by the
# share of its area the zone cuts; shares are of planar degree areas, whose local scale factor
# cancels within a city. A site counts when it lies in the (buffered) zone.
_CONTEXT_SQL = text(
    """
    WITH w AS (
        SELECT * FROM unnest(:site_kinds, :site_persons, :site_vuln, :site_attr)
            AS w(kind, persons, vuln, attr)
    ),
    site_k AS (
        SELECT x.asset_id, e.kind, count(*) AS n,
               sum(w.vuln * coalesce(
                   (CASE WHEN w.attr IS NOT NULL AND e.attributes->>w.attr ~ '^[0-9.]+$'
                         THEN (e.attributes->>w.attr)::float END), w.persons)) AS persons
        FROM risk_ctx_stage x
        JOIN asset e ON e.geom && x.zone AND ST_Intersects(x.zone, e.geom)
        JOIN w ON w.kind = e.kind
        WHERE e.id <> x.asset_id
        GROUP BY x.asset_id, e.kind
    ),
    st AS (
        SELECT asset_id, sum(persons) AS persons, jsonb_object_agg(kind, n) AS sites
        FROM site_k GROUP BY asset_id
    ),
    pop AS (
        SELECT x.asset_id, sum(
            coalesce((c.attributes->>'population')::float, 0) *
            CASE WHEN ST_Area(c.geom) = 0 THEN 0
                 WHEN ST_Covers(x.zone, c.geom) THEN 1
                 ELSE ST_Area(ST_Intersection(x.zone, c.geom)) / ST_Area(c.geom) END
        ) AS population
        FROM asset c
        JOIN risk_ctx_stage x ON c.geom && x.zone AND ST_Intersects(c.geom, x.zone)
        WHERE c.kind = 'population_cell'
        GROUP BY x.asset_id
    ),
    fl AS (
        SELECT x.asset_id, min(coalesce((f.attributes->>'return_period_yr')::float, 100)) AS rp
        FROM asset f
        JOIN risk_ctx_stage x ON f.geom && x.geom AND ST_Intersects(f.geom, x.geom)
        WHERE f.kind = 'flood_zone' AND f.id <> x.asset_id
        GROUP BY x.asset_id
    ),
    ls AS (
        SELECT x.asset_id,
               (array_agg(l.attributes->>'susceptibility' ORDER BY
                   array_position(ARRAY['very_high', 'high', 'medium', 'low'],
                                  l.attributes->>'susceptibility') NULLS LAST))[1]
               AS susceptibility
        FROM asset l
        JOIN risk_ctx_stage x ON l.geom && x.geom AND ST_Intersects(l.geom, x.geom)
        WHERE l.kind = 'landslide_zone' AND l.id <> x.asset_id
        GROUP BY x.asset_id
    ),
    ar AS (
        SELECT x.asset_id, array_agg(ad.id ORDER BY ad.id) AS ids
        FROM asset ad
        JOIN risk_ctx_stage x ON ad.geom && x.pt AND ST_Intersects(ad.geom, x.pt)
        WHERE ad.kind = 'admin_area'
        GROUP BY x.asset_id
    )
    INSERT INTO risk_asset_context (asset_id, h3_res, cell_id, area_ids, radius_m, radius_basis,
                                    population, site_persons, sites, flood_rp_yr, landslide,
                                    computed_at)
    SELECT x.asset_id, :res, x.cell_id, coalesce(ar.ids, '{}'), x.radius_m, x.radius_basis,
           coalesce(pop.population, 0), coalesce(st.persons, 0), coalesce(st.sites, '{}'),
           fl.rp, ls.susceptibility, now()
    FROM risk_ctx_stage x
    LEFT JOIN st USING (asset_id)
    LEFT JOIN pop USING (asset_id)
    LEFT JOIN fl USING (asset_id)
    LEFT JOIN ls USING (asset_id)
    LEFT JOIN ar USING (asset_id)
    ON CONFLICT (asset_id) DO UPDATE SET
        h3_res = EXCLUDED.h3_res, cell_id = EXCLUDED.cell_id, area_ids = EXCLUDED.area_ids,
        radius_m = EXCLUDED.radius_m, radius_basis = EXCLUDED.radius_basis,
        population = EXCLUDED.population, site_persons = EXCLUDED.site_persons,
        sites = EXCLUDED.sites, flood_rp_yr = EXCLUDED.flood_rp_yr,
        landslide = EXCLUDED.landslide, computed_at = EXCLUDED.computed_at
    """
).bindparams(
    bindparam("site_kinds", type_=_TXT),
    bindparam("site_persons", type_=_FLT),
    bindparam("site_vuln", type_=_FLT),
    bindparam("site_attr", type_=_TXT),
)


def utm_srid(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat): 326zz north, 327zz south."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def _floats(values: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _refresh_context(
    timer: _Timer, ids: Sequence[int] | None, res: int, report: RefreshReport
) -> None:
    if ids is None:
        timer.run("context", text("DELETE FROM risk_asset_context"))
    rows = timer.run("context", _POINTS_SQL, {"ids": None if ids is None else list(ids)}).all()
    if not rows:
        return
    kind = np.array([r.kind for r in rows], dtype=object)
    pclass = np.array([r.pressure_class or "" for r in rows], dtype=object)
    radius, basis = model.impact_radius_m(
        kind, _floats(r.p_mpa for r in rows), _floats(r.d_mm for r in rows), pclass
    )
    cells = [h3.latlng_to_cell(r.lat, r.lon, res) for r in rows]
    sites = model.SITE_EXPOSURE
    lons = np.array([r.lon for r in rows])
    lats = np.array([r.lat for r in rows])
    timer.run("context", text("DROP TABLE IF EXISTS risk_ctx_stage"))
    timer.run(
        "context",
        _STAGE_SQL,
        {
            "ids": [r.id for r in rows],
            "cells": cells,
            "lons": lons.tolist(),
            "lats": lats.tolist(),
            "radii": radius.tolist(),
            "bases": basis.tolist(),
            "srid": utm_srid(float(np.median(lons)), float(np.median(lats))),
        },
    )
    for ddl in _STAGE_INDEX_SQL:
        timer.run("context", text(ddl))
    timer.run(
        "context",
        _CONTEXT_SQL,
        {
            "res": res,
            "site_kinds": list(sites),
            "site_persons": [s.persons for s in sites.values()],
            "site_vuln": [s.vulnerability for s in sites.values()],
            "site_attr": [s.capacity_attr for s in sites.values()],
        },
    )
    timer.run("context", text("DROP TABLE risk_ctx_stage"))
    report.contexts += len(rows)


# -- stage 2: score ------------------------------------------------------------------------
_INPUTS_SQL = text(
    f"""
    WITH al AS (
        -- a closed alarm keeps only 'closed': its verdict is in the audit trail
        SELECT coalesce(x.asset_id, s.asset_id) AS asset_id, x.level, x.opened_at,
               CASE WHEN x.state = 'closed' AND EXISTS (
                        SELECT 1 FROM alarm_event e WHERE e.alarm_id = x.id
                        AND e.to_state IN ({", ".join(f"'{s}'" for s in NOT_ANOMALIES)}))
                    THEN 'false_alarm' ELSE x.state END AS state
        FROM alarm x LEFT JOIN sensor s ON s.id = x.sensor_id
    ),
    open_al AS (
        SELECT asset_id, min(level) AS level, count(*) AS n
        FROM al WHERE state IN ({", ".join(f"'{s}'" for s in OPEN_STATES)})
        GROUP BY asset_id
    ),
    recent AS (
        SELECT asset_id, count(*) AS n
        FROM al
        WHERE state NOT IN ({", ".join(f"'{s}'" for s in NOT_ANOMALIES)})
          AND state NOT IN ({", ".join(f"'{s}'" for s in OPEN_STATES)})
          AND opened_at > now() - make_interval(days => :recent_days)
        GROUP BY asset_id
    )
    SELECT a.id, a.kind, a.plate,
           coalesce(a.attributes->>'install_year', a.attributes->>'year_built') AS year,
           a.attributes->>'material' AS material,
           a.attributes->>'condition' AS condition,
           (a.attributes->>'sufficiency_rating')::float AS sufficiency,
           a.attributes->>'pressure_class' AS pressure_class,
           (a.attributes->>'pressure_mpa')::float AS p_mpa,
           (a.attributes->>'diameter_mm')::float AS d_mm,
           c.cell_id, c.radius_m, c.radius_basis, c.population, c.site_persons, c.sites,
           c.flood_rp_yr, c.landslide,
           coalesce(o.level, 0) AS alarm_level, coalesce(o.n, 0) AS open_alarms,
           coalesce(r.n, 0) AS recent_alarms
    FROM asset a
    JOIN risk_asset_context c ON c.asset_id = a.id
    LEFT JOIN open_al o ON o.asset_id = a.id
    LEFT JOIN recent r ON r.asset_id = a.id
    WHERE a.plate <> 'exposure' AND (CAST(:ids AS bigint[]) IS NULL OR a.id = ANY(:ids))
    """
).bindparams(bindparam("ids", type_=_BIG))

_COPY_SQL = (
    "COPY risk_score (scope, asset_id, cell_id, plate, method, likelihood, consequence, score, "
    "risk_class, norm, components) FROM STDIN"
)

_FACTOR_INPUT_UNIT = {
    "age": "years",
    "sufficiency": "NBI 0-100",
    "flood": "return period, years",
    "alarm": "worst open level (1 red … 4 blue)",
    "recent": f"alarms in {model.RECENT_DAYS} days",
}


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _components(
    i: int, row: Any, inputs: model.Inputs, s: model.Scores, factor_inputs: dict[str, Any]
) -> dict[str, Any]:
    """The explanation of one asset's score: every component, its value, input and source.

    Sources are stored as keys of :data:`layers.risk.SOURCES` (the text is the same for
    every asset: storing it 100 k times made the rows ~2 KB and the write 5× slower);
    :func:`explain` puts the text back.
    """
    likelihood = {
        name: {
            "value": _r(s.factors[name][i]),
            "input": factor_inputs[name][i],
            "source": name,
        }
        for name in s.factors
    }
    method = str(s.method[i])
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
            "radius_basis": row.radius_basis,
            "radius_source": "pir" if row.radius_basis.startswith("pir") else "radius",
            "population": {
                "value": _r(inputs.population[i], 1),
                "source": "population",
            },
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


def _score_assets(
    timer: _Timer,
    ids: Sequence[int] | None,
    methods: Mapping[str, model.Method] | None,
    now_year: int,
) -> tuple[int, set[str]]:
    """Rescore ``ids`` (None: all); returns how many and the cells they are in."""
    rows = timer.run(
        "score",
        _INPUTS_SQL,
        {"ids": None if ids is None else list(ids), "recent_days": model.RECENT_DAYS},
    ).all()
    if ids is None:
        timer.run("score", text("DELETE FROM risk_score WHERE scope = 'asset'"))
    else:
        timer.run(
            "score",
            text(
                "DELETE FROM risk_score WHERE scope = 'asset' AND asset_id = ANY(:ids)"
            ).bindparams(bindparam("ids", type_=_BIG)),
            {"ids": list(ids)},
        )
    if not rows:
        return 0, set()
    n = len(rows)
    years = _floats(
        (float(r.year) if r.year and str(r.year).lstrip("-").isdigit() else None) for r in rows
    )
    kind = np.array([r.kind for r in rows], dtype=object)
    p_mpa = _floats(r.p_mpa for r in rows)
    # A missing class on a gas asset is derived from its pressure (GB 50028 edges).
    stated = np.array([r.pressure_class or "" for r in rows], dtype=object)
    pclass = np.where(stated == "", model.pressure_class_of(p_mpa), stated).astype(object)
    inputs = model.Inputs(
        kind=kind,
        plate=np.array([r.plate for r in rows], dtype=object),
        age_yr=np.where(np.isnan(years), np.nan, np.maximum(now_year - years, 0.0)),
        material=np.array([r.material or "" for r in rows], dtype=object),
        condition=np.array([r.condition or "" for r in rows], dtype=object),
        sufficiency=_floats(r.sufficiency for r in rows),
        pressure_class=pclass,
        flood_rp_yr=_floats(r.flood_rp_yr for r in rows),
        landslide=np.array([r.landslide or "" for r in rows], dtype=object),
        alarm_level=np.array([r.alarm_level for r in rows], dtype=np.int64),
        recent_alarms=np.array([r.recent_alarms for r in rows], dtype=np.int64),
        radius_m=_floats(r.radius_m for r in rows),
        population=_floats(r.population for r in rows),
        site_persons=_floats(r.site_persons for r in rows),
        sites=np.array([sum((r.sites or {}).values()) for r in rows], dtype=np.int64),
    )
    s = model.score(inputs, methods)
    is_lec = s.method == "lec"
    likelihood = np.where(is_lec, s.lec_l, s.l_level.astype(np.float64))
    consequence = np.where(is_lec, s.lec_e * s.lec_c, s.s_level.astype(np.float64))

    def unknown_or(values: np.ndarray[Any, Any], fmt: Any = str) -> list[Any]:
        return [
            None if (v is None or v == "" or (isinstance(v, float) and np.isnan(v))) else fmt(v)
            for v in values
        ]

    factor_inputs: dict[str, list[Any]] = {
        "age": unknown_or(inputs.age_yr, lambda v: round(float(v), 1)),
        "material": unknown_or(inputs.material),
        "condition": unknown_or(inputs.condition),
        "sufficiency": unknown_or(inputs.sufficiency, float),
        "pressure": [
            (None if not pclass[i] else str(pclass[i]))
            if kind[i] in model.PRESSURE_KINDS
            else "n/a"
            for i in range(n)
        ],
        "flood": unknown_or(inputs.flood_rp_yr, float),
        "landslide": unknown_or(inputs.landslide),
        "alarm": [int(v) or None for v in inputs.alarm_level],
        "recent": [int(v) for v in inputs.recent_alarms],
    }
    comps = [
        orjson.dumps(_components(i, rows[i], inputs, s, factor_inputs)).decode() for i in range(n)
    ]
    cells_of = [r.cell_id for r in rows]
    plates = inputs.plate.tolist()
    methods_l = s.method.tolist()
    copy_rows = zip(
        (r.id for r in rows),
        cells_of,
        plates,
        methods_l,
        likelihood.tolist(),
        consequence.tolist(),
        s.score.tolist(),
        s.risk_class.tolist(),
        s.norm.tolist(),
        comps,
        strict=True,
    )
    timer.copy("score", copy_rows)
    return n, {r.cell_id for r in rows}


# -- stage 3: aggregate --------------------------------------------------------------------
# The aggregate of a cell or area is as risky as its worst asset: its likelihood, consequence,
# class and norm are that asset's; components add the counts, the sum and mean of norm.
_AGG_SELECT = """
    SELECT {key}, coalesce(r.plate, '{composite}') AS plate,
           (array_agg(r.likelihood ORDER BY r.norm DESC, r.asset_id))[1] AS likelihood,
           (array_agg(r.consequence ORDER BY r.norm DESC, r.asset_id))[1] AS consequence,
           max(r.norm) AS score, min(r.risk_class) AS risk_class, max(r.norm) AS norm,
           jsonb_build_object(
               'assets', count(*),
               'by_class', jsonb_build_object(
                   '1', count(*) FILTER (WHERE r.risk_class = 1),
                   '2', count(*) FILTER (WHERE r.risk_class = 2),
                   '3', count(*) FILTER (WHERE r.risk_class = 3),
                   '4', count(*) FILTER (WHERE r.risk_class = 4)),
               'max_norm', max(r.norm), 'sum_norm', sum(r.norm), 'mean_norm', avg(r.norm),
               'worst_asset_id', (array_agg(r.asset_id ORDER BY r.norm DESC, r.asset_id))[1],
               'worst_method', (array_agg(r.method ORDER BY r.norm DESC, r.asset_id))[1],
               'worst_score', (array_agg(r.score ORDER BY r.norm DESC, r.asset_id))[1]
           ) AS components
"""

_CELLS_SQL = text(
    f"""
    WITH g AS (SELECT * FROM unnest(:cells, :wkts) AS g(cell_id, wkt)),
    agg AS (
        {_AGG_SELECT.format(key="r.cell_id", composite=COMPOSITE)}
        FROM risk_score r
        WHERE r.scope = 'asset' AND r.cell_id = ANY(:cells)
        GROUP BY GROUPING SETS ((r.cell_id, r.plate), (r.cell_id))
    )
    INSERT INTO risk_score (scope, cell_id, plate, method, likelihood, consequence, score,
                            risk_class, norm, components, geom)
    SELECT 'cell', agg.cell_id, agg.plate, 'max', agg.likelihood, agg.consequence, agg.score,
           agg.risk_class, agg.norm,
           agg.components || jsonb_build_object('h3_res', :res), ST_GeomFromText(g.wkt, 4326)
    FROM agg JOIN g USING (cell_id)
    """
).bindparams(bindparam("cells", type_=_TXT), bindparam("wkts", type_=_TXT))

_AREAS_INSERT = """
    INSERT INTO risk_score (scope, asset_id, plate, method, likelihood, consequence, score,
                            risk_class, norm, components)
    SELECT 'area', agg.area_id, agg.plate, 'max', agg.likelihood, agg.consequence, agg.score,
           agg.risk_class, agg.norm, agg.components
    FROM agg
"""
_AREAS_SQL = text(
    f"""
    WITH agg AS (
        {_AGG_SELECT.format(key="x.area_id", composite=COMPOSITE)}
        FROM risk_score r
        JOIN risk_asset_context c ON c.asset_id = r.asset_id
        CROSS JOIN LATERAL unnest(c.area_ids) AS x(area_id)
        WHERE r.scope = 'asset'
        GROUP BY GROUPING SETS ((x.area_id, r.plate), (x.area_id))
    )
    {_AREAS_INSERT}
    """
)
# Incremental: the GIN index on area_ids finds the areas' assets, their rows by asset id.
_SOME_AREAS_SQL = text(
    f"""
    WITH agg AS (
        {_AGG_SELECT.format(key="x.area_id", composite=COMPOSITE)}
        FROM risk_asset_context c
        CROSS JOIN LATERAL unnest(c.area_ids) AS x(area_id)
        JOIN risk_score r ON r.asset_id = c.asset_id AND r.scope = 'asset'
        WHERE c.area_ids && :areas AND x.area_id = ANY(:areas)
        GROUP BY GROUPING SETS ((x.area_id, r.plate), (x.area_id))
    )
    {_AREAS_INSERT}
    """
).bindparams(bindparam("areas", type_=_BIG))


def _hexagon_wkt(cell: str) -> str:
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    ring.append(ring[0])
    return "POLYGON((" + ",".join(f"{x:.7f} {y:.7f}" for x, y in ring) + "))"


def _aggregate(
    timer: _Timer,
    cells: set[str] | None,
    areas: set[int] | None,
    res: int,
    report: RefreshReport,
) -> None:
    if cells is None:
        timer.run("aggregate", text("DELETE FROM risk_score WHERE scope = 'cell'"))
        cells = {
            c
            for (c,) in timer.run(
                "aggregate",
                text("SELECT DISTINCT cell_id FROM risk_score WHERE scope = 'asset'"),
            ).all()
        }
    elif cells:
        timer.run(
            "aggregate",
            text("DELETE FROM risk_score WHERE scope = 'cell' AND cell_id = ANY(:c)").bindparams(
                bindparam("c", type_=_TXT)
            ),
            {"c": sorted(cells)},
        )
    if cells:
        ordered = sorted(c for c in cells if c)
        result = timer.run(
            "cells",
            _CELLS_SQL,
            {"cells": ordered, "wkts": [_hexagon_wkt(c) for c in ordered], "res": res},
        )
        report.cells += int(result.rowcount or 0)
    if areas is None:
        timer.run("aggregate", text("DELETE FROM risk_score WHERE scope = 'area'"))
    elif areas:
        timer.run(
            "aggregate",
            text("DELETE FROM risk_score WHERE scope = 'area' AND asset_id = ANY(:a)").bindparams(
                bindparam("a", type_=_BIG)
            ),
            {"a": sorted(areas)},
        )
    if areas is None or areas:
        result = timer.run(
            "areas",
            _AREAS_SQL if areas is None else _SOME_AREAS_SQL,
            {} if areas is None else {"areas": sorted(areas)},
        )
        report.areas += int(result.rowcount or 0)


# -- entry points --------------------------------------------------------------------------
def _check(h3_res: int, methods: Mapping[str, str] | None) -> None:
    if not 0 <= h3_res <= 15:
        raise InvalidInput(f"h3_res must be 0..15, got {h3_res}")
    for plate, method in (methods or {}).items():
        if method not in ("matrix", "lec"):
            raise InvalidInput(f"method for plate {plate!r} must be 'matrix' or 'lec'")


def refresh_all(
    session: Session,
    *,
    h3_res: int = DEFAULT_H3_RES,
    methods: Mapping[str, model.Method] | None = None,
    now_year: int | None = None,
    recontext: bool = True,
) -> RefreshReport:
    """Recompute every score (assets, cells, areas) in the caller's transaction.

    ``recontext=False`` reuses the stored geometry-derived context (radii, exposure, overlays,
    cells, areas): right when only attributes, alarms or the model changed, not geometry.
    """
    _check(h3_res, methods)
    started = time.perf_counter()
    report = RefreshReport()
    timer = _Timer(session, report)
    if recontext:
        _refresh_context(timer, None, h3_res, report)
    report.assets, _ = _score_assets(timer, None, methods, now_year or datetime.now(UTC).year)
    _aggregate(timer, None, None, h3_res, report)
    # Fresh statistics after a bulk replace, or the next incremental refresh is planned on
    # stale ones (measured: 0.3 s instead of 5 ms for one area at 10 k assets).
    timer.run("analyze", text("ANALYZE risk_score, risk_asset_context"))
    session.flush()
    report.total_s = time.perf_counter() - started
    return report


def refresh_assets(
    session: Session,
    asset_ids: Iterable[int],
    *,
    recontext: bool = False,
    h3_res: int | None = None,
    methods: Mapping[str, model.Method] | None = None,
    now_year: int | None = None,
) -> RefreshReport:
    """Rescore ``asset_ids`` and only the cells and areas they are (or were) in.

    ``recontext``: redo the geometry-derived context too (after an asset moved or exposure
    changed); an alarm change does not need it. ``h3_res`` defaults to the stored one.
    """
    _check(h3_res or DEFAULT_H3_RES, methods)
    started = time.perf_counter()
    report = RefreshReport()
    timer = _Timer(session, report)
    ids = sorted(set(asset_ids))
    if not ids:
        return report
    ids_param = {"ids": ids}
    before = timer.run(
        "aggregate",
        text(
            "SELECT cell_id, area_ids, h3_res FROM risk_asset_context WHERE asset_id = ANY(:ids)"
        ).bindparams(bindparam("ids", type_=_BIG)),
        ids_param,
    ).all()
    res = h3_res or (before[0].h3_res if before else DEFAULT_H3_RES)
    missing = len(before) < len(ids)
    if recontext or missing:
        _refresh_context(timer, ids, res, report)
    after = timer.run(
        "aggregate",
        text(
            "SELECT cell_id, area_ids FROM risk_asset_context WHERE asset_id = ANY(:ids)"
        ).bindparams(bindparam("ids", type_=_BIG)),
        ids_param,
    ).all()
    report.assets, _ = _score_assets(timer, ids, methods, now_year or datetime.now(UTC).year)
    cells = {r.cell_id for r in (*before, *after)}
    areas = {a for r in (*before, *after) for a in (r.area_ids or [])}
    _aggregate(timer, cells, areas, res, report)
    session.flush()
    report.total_s = time.perf_counter() - started
    return report


def assets_of_alarms(session: Session, alarm_ids: Iterable[int]) -> list[int]:
    """The assets alarms are about: the alarm's asset, else its sensor's."""
    rows = session.execute(
        text(
            "SELECT DISTINCT coalesce(x.asset_id, s.asset_id) FROM alarm x "
            "LEFT JOIN sensor s ON s.id = x.sensor_id WHERE x.id = ANY(:ids) "
            "AND coalesce(x.asset_id, s.asset_id) IS NOT NULL"
        ).bindparams(bindparam("ids", type_=_BIG)),
        {"ids": sorted(set(alarm_ids))},
    ).all()
    return [int(r[0]) for r in rows]


def refresh_alarms(session: Session, alarm_ids: Iterable[int]) -> RefreshReport:
    """Incremental refresh after alarms changed (raised, levelled, closed)."""
    return refresh_assets(session, assets_of_alarms(session, alarm_ids))


def _alarm_weight(state: str) -> str:
    """How an alarm in ``state`` enters a score (as ``_INPUTS_SQL`` reads it): open, past, none."""
    if state in OPEN_STATES:
        return "open"
    return "none" if state in NOT_ANOMALIES else "past"


def alarm_counts_changed(from_state: str, to_state: str) -> bool:
    """Whether moving an alarm between these states can change its asset's score.

    Scoring reads only the state's bucket (open alarms by level; recent past anomalies), so
    e.g. raised → verified changes nothing while raised → false_alarm and dispatched →
    disposed do.
    """
    return _alarm_weight(from_state) != _alarm_weight(to_state)


def refresh_after_alarms(session: Session, alarm_ids: Iterable[int]) -> RefreshReport | None:
    """Rescore the assets of changed alarms in the caller's transaction, if scoring is on.

    Called by ingest (alarms the engine raised, levelled or cleared) and by analyst
    transitions. Returns None without touching anything when no alarm was given or there are
    no scores yet (before the first full refresh): an incremental refresh would score these
    few assets alone and make a partial map look complete.
    """
    ids = sorted(set(alarm_ids))
    if not ids:
        return None
    scored = session.execute(
        text("SELECT EXISTS (SELECT 1 FROM risk_score WHERE scope = 'asset')")
    ).scalar_one()
    if not scored:
        return None
    return refresh_alarms(session, ids)


# -- reads ---------------------------------------------------------------------------------
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


def asset_risk(session: Session, asset_id: int) -> dict[str, Any]:
    """The stored score of one asset with everything that explains it."""
    row = (
        session.execute(
            text(
                "SELECT r.asset_id, a.kind, a.plate, a.name, r.method, r.likelihood, "
                "r.consequence, r.score, r.risk_class, r.norm, r.cell_id, r.components, "
                "r.computed_at, c.area_ids FROM risk_score r JOIN asset a ON a.id = r.asset_id "
                "LEFT JOIN risk_asset_context c ON c.asset_id = r.asset_id "
                "WHERE r.scope = 'asset' AND r.asset_id = :id"
            ),
            {"id": asset_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        exists = session.execute(text("SELECT 1 FROM asset WHERE id = :id"), {"id": asset_id})
        if exists.first() is None:
            raise NotFound(f"asset {asset_id} not found")
        raise NotFound(
            f"asset {asset_id} has no risk score (exposure layers are not scored, or no "
            "refresh has run: POST /risk/refresh)"
        )
    cls = int(row["risk_class"])
    colour, zh, en = model.RISK_CLASSES[cls]
    return {
        "asset_id": row["asset_id"],
        "kind": row["kind"],
        "plate": row["plate"],
        "name": row["name"],
        "method": row["method"],
        "likelihood": row["likelihood"],
        "consequence": row["consequence"],
        "score": row["score"],
        "norm": row["norm"],
        "risk_class": cls,
        "class_colour": colour,
        "class_name": f"{zh} {en}",
        "cell_id": row["cell_id"],
        "area_ids": list(row["area_ids"] or []),
        "components": explain(row["components"]),
        "computed_at": row["computed_at"],
    }


def _class_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    cls = int(row["risk_class"])
    return {"risk_class": cls, "class_colour": model.RISK_CLASSES[cls][0]}


def cells(
    session: Session, *, plate: str = COMPOSITE, bbox: Sequence[float] | None = None
) -> dict[str, Any]:
    """Cell scores of a plate (or the composite) as a GeoJSON FeatureCollection."""
    where = "scope = 'cell' AND plate = :plate"
    params: dict[str, Any] = {"plate": plate}
    if bbox is not None:
        where += " AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True)))
    rows = session.execute(
        text(
            "SELECT cell_id, plate, score, norm, risk_class, likelihood, consequence, "
            f"components, ST_AsGeoJSON(geom, 7) AS geometry FROM risk_score WHERE {where} "
            "ORDER BY cell_id"
        ),
        params,
    ).mappings()
    features = [
        {
            "type": "Feature",
            "id": r["cell_id"],
            "geometry": orjson.loads(r["geometry"]) if r["geometry"] else None,
            "properties": {
                "cell_id": r["cell_id"],
                "plate": r["plate"],
                "score": r["score"],
                "norm": r["norm"],
                **_class_fields(r),
                **r["components"],
            },
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features}


def areas(session: Session, *, plate: str = COMPOSITE) -> list[dict[str, Any]]:
    """Admin-area scores of a plate (or the composite), worst first."""
    rows = session.execute(
        text(
            "SELECT r.asset_id AS area_id, a.name, a.attributes->>'admin_level' AS admin_level, "
            "r.plate, r.score, r.norm, r.risk_class, r.components FROM risk_score r "
            "JOIN asset a ON a.id = r.asset_id WHERE r.scope = 'area' AND r.plate = :plate "
            "ORDER BY r.risk_class, r.norm DESC, r.asset_id"
        ),
        {"plate": plate},
    ).mappings()
    return [
        {
            **{k: r[k] for k in ("area_id", "name", "admin_level", "plate", "score", "norm")},
            **_class_fields(r),
            **r["components"],
        }
        for r in rows
    ]


def city(session: Session) -> dict[str, Any]:
    """Top of the drill-down: asset counts by class per plate, and the areas to open next."""
    rows = session.execute(
        text(
            "SELECT plate, risk_class, count(*) AS n, max(norm) AS max_norm FROM risk_score "
            "WHERE scope = 'asset' GROUP BY plate, risk_class ORDER BY plate, risk_class"
        )
    ).mappings()
    plates: dict[str, dict[str, Any]] = {}
    for r in rows:
        p = plates.setdefault(r["plate"], {"assets": 0, "by_class": {}, "max_norm": 0.0})
        p["assets"] += r["n"]
        p["by_class"][str(r["risk_class"])] = r["n"]
        p["max_norm"] = max(p["max_norm"], r["max_norm"] or 0.0)
    return {
        "plates": plates,
        "classes": {
            str(k): {"colour": c, "name": f"{zh} {en}"}
            for k, (c, zh, en) in model.RISK_CLASSES.items()
        },
        "areas": "/risk/areas",
    }


def area_cells(session: Session, area_id: int, *, plate: str = COMPOSITE) -> dict[str, Any]:
    """Drill-down area → cells: the cells holding the area's scored assets."""
    ids = [
        r[0]
        for r in session.execute(
            text("SELECT DISTINCT cell_id FROM risk_asset_context WHERE :a = ANY(area_ids)"),
            {"a": area_id},
        ).all()
    ]
    fc = cells(session, plate=plate)
    wanted = set(ids)
    fc["features"] = [f for f in fc["features"] if f["id"] in wanted]
    return fc


def cell_assets(
    session: Session, cell_id: str, *, plate: str | None = None
) -> list[dict[str, Any]]:
    """Drill-down cell → assets: the asset scores in one cell, worst first."""
    rows = session.execute(
        text(
            "SELECT r.asset_id, a.kind, a.name, r.plate, r.method, r.score, r.norm, "
            "r.risk_class FROM risk_score r JOIN asset a ON a.id = r.asset_id "
            "WHERE r.scope = 'asset' AND r.cell_id = :c AND (CAST(:p AS text) IS NULL "
            "OR r.plate = :p) ORDER BY r.risk_class, r.norm DESC, r.asset_id"
        ),
        {"c": cell_id, "p": plate},
    ).mappings()
    return [
        {
            **{k: r[k] for k in ("asset_id", "kind", "name", "plate", "method", "score", "norm")},
            **_class_fields(r),
            "explain": f"/assets/{r['asset_id']}/risk",
        }
        for r in rows
    ]
