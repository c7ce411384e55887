"""Risk refresh: set-based SQL for the inputs and the aggregates, numpy for the maths.

A refresh has three stages, a few statements each, and writes every asset once:

1. **inputs**: one ``SELECT`` reads each scored asset's representative point, attributes and
   alarms (and, for a rescore, the context stored on its ``risk_score`` row);
2. **context** (geometry-derived; skipped when the stored one is reused): the impact radius
   (:func:`gis.scoring.impact_radius_m`) and the H3 cell of the point (Python ``h3``) go into a
   temporary stage with each asset's **local planar frame** (metres east / north of its point,
   scaled by the WGS84 radii of curvature there: an affine map, so a population cell that is a
   lon/lat rectangle stays a rectangle) and its radius-expanded box under a GiST index; the
   (zone, population cell) pairs go into a second temporary table, those of points and
   straight segments across a cell edge come back by binary ``COPY`` to be clipped in numpy;
   one ``SELECT`` then joins the few big things (sites, population cells, hazard zones, admin
   areas) on the outer side to the stage's index: identified sites inside the impact zone,
   area-weighted population, flood and landslide overlays, admin areas of the point;
3. **score** :func:`gis.scoring.score` computes every factor, level and class vectorised; one
   ``COPY`` writes the asset rows with their context and a short array of score inputs;
4. **aggregate**: one ``INSERT … SELECT … GROUP BY GROUPING SETS`` per scope writes the H3
   cell rows and the admin-area rows, per plate and composite.

The explanation of a score (``GET /assets/{id}/risk``) is rebuilt from the stored inputs and
context by the same model code (:func:`asset_components`): building and storing 1.4 KB of
JSON per asset was most of a full refresh's write.

A full refresh replaces everything inside the caller's transaction (readers see the old
scores until it commits). An incremental refresh takes asset ids (or alarm ids, mapped to
their assets) and rewrites only those assets' rows and the cells and areas they are (or were)
in; an alarm does not move an asset, so by default it reuses the stored context.

Aggregates are exactly the same whichever way they were reached (full or incremental): sums of
norms are taken in ``numeric`` (order-independent) and ties for the worst asset go to the lower
asset id.

Services flush and never commit (``app/db.py``).
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
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
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Float, Text

from app.db import (
    PGCOPY_HEADER,
    PGCOPY_TRAILER,
    binary_copy_columns,
    binary_copy_payload,
)
from app.errors import InvalidInput, NotFound
from app.params import BBox, bbox_sql, feature, feature_collection, geometry
from app.taxonomy.alarms import NOT_ANOMALIES, OPEN_STATES, sql_list
from app.taxonomy.risk import COMPOSITE, RISK_CLASSES
from gis import scoring as model
from gis import zones
from gis.frames import metres_per_degree

DEFAULT_H3_RES = 8
PIPE_KINDS = ("gas_pipe", "water_pipe", "drainage_pipe", "heating_pipe")


@dataclass
class RefreshReport:
    """What a refresh did and where the time went (``db_s``: inside database calls)."""

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

    def _add(self, stage: str, took: float) -> None:
        self.report.db_s += took
        self.report.stages[stage] = self.report.stages.get(stage, 0.0) + took

    def run(self, stage: str, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        started = time.perf_counter()
        result = self.session.execute(statement, dict(params or {}))
        self._add(stage, time.perf_counter() - started)
        return result

    def copy_out(self, stage: str, sql: str) -> bytes:
        """The whole output of a ``COPY … TO STDOUT``."""
        started = time.perf_counter()
        raw = self.session.connection().connection.driver_connection
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            data = b"".join(bytes(block) for block in copy)
        self._add(stage, time.perf_counter() - started)
        return data

    def copy(self, stage: str, sql: str, payload: bytes) -> None:
        """COPY a ready text-format payload (built beforehand: Python time, not DB time)."""
        started = time.perf_counter()
        raw = self.session.connection().connection.driver_connection
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            copy.write(payload)
        self._add(stage, time.perf_counter() - started)


_BIG = ARRAY(BigInteger)
_TXT = ARRAY(Text)
_FLT = ARRAY(Float)


# -- stage 1: inputs -----------------------------------------------------------------------
# One read per refresh: point, attributes, alarms, and the context stored on the asset's
# current row (NULL when it has none yet). Alarms are restricted to the assets asked for.
# A full refresh that recomputes the context reads none of it (:data:`_INPUTS_FRESH_SQL`):
# joining 100 k stored rows it throws away cost ~0.15 s.
_STORED_CONTEXT = """c.h3_res, c.cell_id, array_to_string(c.area_ids, ',') AS area_ids, c.radius_m,
           c.radius_basis, c.population,
           c.site_persons, c.sites::text AS sites, c.flood_rp_yr, c.landslide"""
_NO_CONTEXT = (
    "NULL::smallint AS h3_res, NULL::text AS cell_id, NULL::text AS area_ids, "
    "NULL::float8 AS radius_m, NULL::text AS radius_basis, NULL::float8 AS population, "
    "NULL::float8 AS site_persons, NULL::text AS sites, NULL::float8 AS flood_rp_yr, "
    "NULL::text AS landslide"
)
_STORED_JOIN = "LEFT JOIN risk_score c ON c.asset_id = a.id AND c.scope = 'asset'"


def _inputs_sql(stored: bool) -> Any:
    return text(
        f"""
    WITH al AS (
        -- a closed alarm keeps only 'closed': its verdict is in the audit trail
        SELECT coalesce(x.asset_id, s.asset_id) AS asset_id, x.level, x.opened_at,
               CASE WHEN x.state = 'closed' AND EXISTS (
                        SELECT 1 FROM alarm_event e WHERE e.alarm_id = x.id
                        AND e.to_state IN ({sql_list(NOT_ANOMALIES)}))
                    THEN 'false_alarm' ELSE x.state END AS state
        FROM alarm x LEFT JOIN sensor s ON s.id = x.sensor_id
        WHERE CAST(:ids AS bigint[]) IS NULL OR x.asset_id = ANY(:ids) OR s.asset_id = ANY(:ids)
    ),
    open_al AS (
        SELECT asset_id, min(level) AS level, count(*) AS n
        FROM al WHERE state IN ({sql_list(OPEN_STATES)})
        GROUP BY asset_id
    ),
    recent AS (
        SELECT asset_id, count(*) AS n
        FROM al
        WHERE state NOT IN ({sql_list(NOT_ANOMALIES)})
          AND state NOT IN ({sql_list(OPEN_STATES)})
          AND opened_at > now() - make_interval(days => :recent_days)
        GROUP BY asset_id
    )
    SELECT a.id, a.kind, a.plate, ST_X(p.pt) AS lon, ST_Y(p.pt) AS lat,
           coalesce(a.attributes->>'install_year', a.attributes->>'year_built') AS year,
           a.attributes->>'material' AS material,
           a.attributes->>'condition' AS condition,
           (a.attributes->>'sufficiency_rating')::float AS sufficiency,
           a.attributes->>'pressure_class' AS pressure_class,
           (a.attributes->>'pressure_mpa')::float AS p_mpa,
           (a.attributes->>'diameter_mm')::float AS d_mm,
           coalesce(o.level, 0) AS alarm_level, coalesce(r.n, 0) AS recent_alarms,
           {_STORED_CONTEXT if stored else _NO_CONTEXT}
    FROM asset a
    CROSS JOIN LATERAL (SELECT ST_PointOnSurface(a.geom) AS pt) p
    {_STORED_JOIN if stored else ""}
    LEFT JOIN open_al o ON o.asset_id = a.id
    LEFT JOIN recent r ON r.asset_id = a.id
    WHERE a.plate <> 'exposure' AND (CAST(:ids AS bigint[]) IS NULL OR a.id = ANY(:ids))
    ORDER BY a.id
    """
    ).bindparams(bindparam("ids", type_=_BIG))


_INPUTS_SQL, _INPUTS_FRESH_SQL = _inputs_sql(True), _inputs_sql(False)


# -- stage 2: context ----------------------------------------------------------------------
# The stage: each asset in its own local frame (x = kx·Δlon, y = ky·Δlat metres from its
# point; an equirectangular map at the point, within 0.01 % of geodesic distances over a
# kilometre — better than the city's UTM zone, 0.04 % at Hefei, and no PROJ call per row),
# and its box expanded by the radius in degrees, GiST-indexed, so every join below probes it
# with a small outer side (1,600 population cells, 1,000 sites, 16 areas, 20 flood zones in
# the bench) instead of probing the asset index 100 k times. TEMP: no WAL; never seen by
# parallel workers, which the joins below do not need.
#
# Loaded by a binary COPY built by numpy (binding six 100 k-element array parameters took
# ~0.6 s), then joined to the geometries in ``ord`` order, which is H3 order: the stage
# outgrows the 8 MB of temp buffers, and index probes that read neighbouring pages stop
# re-reading the table from disk (local reads 92 k → 9 k pages).
_STAGE_IN_SQL = (
    "CREATE TEMPORARY TABLE risk_ctx_in (ord int4, asset_id int8, r float8, kx float8, "
    "ky float8, lon0 float8, lat0 float8) ON COMMIT DROP"
)
_STAGE_COPY_SQL = "COPY risk_ctx_in FROM STDIN (FORMAT binary)"
_STAGE_SQL = (
    "CREATE TEMPORARY TABLE risk_ctx_stage ON COMMIT DROP AS "
    "SELECT t.ord, t.asset_id, t.r, t.kx, t.ky, t.lon0, t.lat0, a.geom "
    "FROM risk_ctx_in t JOIN asset a ON a.id = t.asset_id ORDER BY t.ord"
)
# The box of the zone (the geometry expanded by r metres, in degrees) is an index expression,
# not a column: the stage stays narrow (it outgrew temp_buffers and went to disk). No ANALYZE:
# statistics on geometry columns cost more than they could save here.
_BOX = "ST_Expand(x.geom, x.r / x.kx, x.r / x.ky)"
_STAGE_INDEX_SQL = (f"CREATE INDEX ON risk_ctx_stage USING gist (({_BOX.replace('x.', '')}))",)

# The impact zone is the asset buffered by its radius in its local frame with 4 segments a
# quarter circle (a 16-gon for a point; what the scores always used), or the asset itself for
# radius 0. A site counts when it lies in the zone: the zone lies between the discs of radius
# r·cos(π/16) and r, so only the few sites in that ring need the polygon.
#
# Population is area-weighted: Σ population × area(zone ∩ cell) / area(cell), exactly, in the
# asset's frame, computing polygons only where needed:
# - a zone whose box lies inside a rectangular cell is inside it: its area is closed-form for a
#   point (8 r² sin(π/8), the 16-gon) or a straight segment of length L (2 r L + 8 r² sin(π/8)),
#   else the buffer's area; the same test with ST_Covers for other cells;
# - a point's or a straight segment's zone crossing a rectangular cell edge is built and
#   clipped by the rectangle in numpy (:mod:`gis.zones`: GEOS's vertices to float noise; a
#   GEOS buffer and clip per pair were ~0.3 s of a 100 k refresh);
# - any other zone crossing a rectangular cell edge is buffered once, mapped back to degrees
#   (a share is a ratio of areas, which the affine map keeps) and clipped by each rectangle
#   (ST_ClipByBox2D, ~10× cheaper than an overlay); any other cell takes ST_Intersection.
_Z16 = 8.0 * math.sin(math.pi / 8.0)  # area of the 16-gon of radius 1
_LOCAL = "ST_Affine({g}, x.kx, 0, 0, x.ky, -x.kx * x.lon0, -x.ky * x.lat0)"
_ZONE = (
    f"(CASE WHEN x.r > 0 THEN ST_Buffer({_LOCAL.format(g='x.geom')}, x.r, 'quad_segs=4') "
    f"ELSE {_LOCAL.format(g='x.geom')} END)"
)
# Each (zone, population cell) pair whose boxes meet, in a temporary table: a zone inside the
# cell takes its share here (its area in its frame over the cell's, degrees² × kx·ky). A
# *simple* pair is a point's or a straight segment's zone across a rectangular cell's edge:
# its share is computed in numpy (:mod:`gis.zones`: the same 16-gon or stadium, clipped by
# the rectangle), which saves a GEOS buffer and a GEOS clip per pair; it is read back by a
# binary COPY with its segment's ends (degrees), radius and frame. Others stay in SQL.
_PAIR_SQL = text(
    f"""
    CREATE TEMPORARY TABLE risk_ctx_pair ON COMMIT DROP AS
    WITH pc AS MATERIALIZED (
        SELECT c.id, c.geom, c.geom::box2d AS box, ST_Area(c.geom) AS area,
               coalesce((c.attributes->>'population')::float, 0) AS people,
               ST_Area(c.geom) >= ST_Area(ST_Envelope(c.geom)) * (1 - 1e-12) AS is_box
        FROM asset c WHERE c.kind = 'population_cell' AND ST_Area(c.geom) > 0
    )
        SELECT x.ord, c.id AS cid, c.people, c.is_box, c.box, c.area, i.inside, q.simple,
               CASE WHEN i.inside THEN c.people * (
                   CASE WHEN x.r = 0 THEN ST_Area(x.geom) * x.kx * x.ky
                        WHEN GeometryType(x.geom) = 'POINT' THEN {_Z16} * x.r * x.r
                        WHEN GeometryType(x.geom) = 'LINESTRING' AND ST_NPoints(x.geom) = 2
                            THEN 2 * x.r * ST_Length({_LOCAL.format(g="x.geom")})
                                 + {_Z16} * x.r * x.r
                        ELSE ST_Area(ST_Buffer({_LOCAL.format(g="x.geom")}, x.r, 'quad_segs=4'))
                   END) / (c.area * x.kx * x.ky) END AS people_in
        FROM pc c JOIN risk_ctx_stage x ON {_BOX} && c.geom
        CROSS JOIN LATERAL (
            SELECT CASE WHEN c.is_box THEN c.geom ~ {_BOX} ELSE ST_Covers(c.geom, {_BOX}) END
                AS inside) i
        CROSS JOIN LATERAL (
            SELECT NOT i.inside AND c.is_box AND x.r > 0 AND (GeometryType(x.geom) = 'POINT'
                   OR GeometryType(x.geom) = 'LINESTRING' AND ST_NPoints(x.geom) = 2) AS simple
        ) q
        WHERE c.people <> 0
    """
)
_SIMPLE_COPY_SQL = (
    "COPY (SELECT p.ord, p.people, p.area, ST_XMin(p.box), ST_YMin(p.box), ST_XMax(p.box), "
    "ST_YMax(p.box), ST_X(e.a), ST_Y(e.a), ST_X(e.b), ST_Y(e.b), x.r, x.kx, x.ky "
    "FROM risk_ctx_pair p JOIN risk_ctx_stage x USING (ord) "
    "CROSS JOIN LATERAL (SELECT coalesce(ST_StartPoint(x.geom), x.geom) AS a, "
    "coalesce(ST_EndPoint(x.geom), x.geom) AS b "
    "OFFSET 0) e WHERE p.simple) TO STDOUT (FORMAT binary)"
)
_CONTEXT_SQL = text(
    f"""
    WITH w AS (
        SELECT * FROM unnest(:site_kinds, :site_persons, :site_vuln, :site_attr)
            AS w(kind, persons, vuln, attr)
    ),
    site_k AS (
        SELECT x.ord, e.kind, count(*) AS n,
               sum(w.vuln * coalesce(
                   (CASE WHEN w.attr IS NOT NULL AND e.attributes->>w.attr ~ '^[0-9.]+$'
                         THEN (e.attributes->>w.attr)::float END), w.persons)) AS persons
        FROM asset e
        JOIN w ON w.kind = e.kind AND e.kind = ANY(:site_kinds)
        JOIN risk_ctx_stage x ON {_BOX} && e.geom
        CROSS JOIN LATERAL (SELECT {_LOCAL.format(g="x.geom")} AS g,
                                   {_LOCAL.format(g="e.geom")} AS eg) l
        WHERE e.id <> x.asset_id AND ST_DWithin(l.g, l.eg, x.r)
          AND (ST_DWithin(l.g, l.eg, x.r * cos(pi() / 16)) OR ST_Intersects({_ZONE}, l.eg))
        GROUP BY x.ord, e.kind
    ),
    st AS (
        SELECT ord, sum(persons) AS persons, jsonb_object_agg(kind, n ORDER BY kind) AS sites
        FROM site_k GROUP BY ord
    ),
    -- Zones crossing a cell edge (but the simple ones, see :data:`_PAIR_SQL`), back in
    -- degrees: a share is a ratio of areas, which an affine map keeps, so each zone is mapped
    -- back once instead of every cell it meets being mapped into its frame.
    zone AS MATERIALIZED (
        SELECT x.ord, CASE WHEN x.r > 0 THEN ST_Affine({_ZONE}, 1 / x.kx, 0, 0, 1 / x.ky,
                                                          x.lon0, x.lat0)
                           ELSE x.geom END AS z
        FROM risk_ctx_stage x
        WHERE x.ord IN (SELECT ord FROM risk_ctx_pair WHERE NOT inside AND NOT simple)
    ),
    share AS (
        SELECT p.ord, p.people * ST_Area(
                   CASE WHEN p.is_box THEN ST_ClipByBox2D(x.z, p.box)
                        ELSE ST_Intersection(x.z, (SELECT geom FROM asset WHERE id = p.cid))
                   END) / p.area AS people
        FROM risk_ctx_pair p JOIN zone x USING (ord)
        WHERE NOT p.inside AND NOT p.simple
        UNION ALL
        SELECT ord, people_in FROM risk_ctx_pair WHERE inside
    ),
    pop AS (SELECT ord, sum(people) AS population FROM share GROUP BY ord),
    fl AS (
        SELECT x.ord, min(coalesce((f.attributes->>'return_period_yr')::float, 100)) AS rp
        FROM asset f
        JOIN risk_ctx_stage x ON {_BOX} && f.geom AND ST_Intersects(f.geom, x.geom)
        WHERE f.kind = 'flood_zone' AND f.id <> x.asset_id
        GROUP BY x.ord
    ),
    ls AS (
        SELECT x.ord,
               (array_agg(l.attributes->>'susceptibility' ORDER BY
                   array_position(ARRAY['very_high', 'high', 'medium', 'low'],
                                  l.attributes->>'susceptibility') NULLS LAST))[1]
               AS susceptibility
        FROM asset l
        JOIN risk_ctx_stage x ON {_BOX} && l.geom AND ST_Intersects(l.geom, x.geom)
        WHERE l.kind = 'landslide_zone' AND l.id <> x.asset_id
        GROUP BY x.ord
    ),
    -- string_agg without ORDER BY: an ordered aggregate sorts each of 100 k groups apart;
    -- the ids are sorted in Python (:func:`_ids`), once per distinct list.
    ar AS (
        SELECT x.ord, string_agg(ad.id::text, ',') AS ids
        FROM asset ad
        JOIN risk_ctx_stage x ON {_BOX} && ad.geom
            AND ST_Intersects(ad.geom, ST_SetSRID(ST_MakePoint(x.lon0, x.lat0), 4326))
        WHERE ad.kind = 'admin_area'
        GROUP BY x.ord
    )
    SELECT x.ord, coalesce(ar.ids, '') AS area_ids,
           coalesce(pop.population, 0) AS population,
           coalesce(st.persons, 0) AS site_persons, coalesce(st.sites::text, '{{}}') AS sites,
           fl.rp AS flood_rp_yr, ls.susceptibility AS landslide
    FROM risk_ctx_stage x
    LEFT JOIN st USING (ord)
    LEFT JOIN pop USING (ord)
    LEFT JOIN fl USING (ord)
    LEFT JOIN ls USING (ord)
    LEFT JOIN ar USING (ord)
    ORDER BY x.ord
    """
).bindparams(
    bindparam("site_kinds", type_=_TXT),
    bindparam("site_persons", type_=_FLT),
    bindparam("site_vuln", type_=_FLT),
    bindparam("site_attr", type_=_TXT),
)
# JIT compiled these plans for ~1 s (their PostGIS cost estimates are huge) to save nothing;
# sorts and hashes of 100 k rows need more than the default 4 MB. The ANALYZE at the end of
# a full refresh samples 300 rows per point of statistics target: 10 (3,000 rows, not 30,000)
# is plenty for what incremental refreshes filter on (scope, asset ids, a few cells or areas)
# and keeps their plans (index scans; checked by the bench's one-alarm refresh). Set for the
# refresh only.
_SETTINGS = {"jit": "off", "work_mem": "64MB", "default_statistics_target": "10"}


@functools.lru_cache(maxsize=4096)
def _ids(joined: str) -> tuple[int, ...]:
    return tuple(sorted(int(x) for x in joined.split(","))) if joined else ()


def _id_list(joined: str | None) -> list[int]:
    """Area ids sent as ``array_to_string(ids, ',')``: loading 100 k ``bigint[]`` values
    took psycopg ~0.5 s, text a few ms (and there are only a few distinct lists)."""
    return list(_ids(joined or ""))


def _floats(values: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass
class _Context:
    """Geometry-derived inputs of a batch of assets, one element per asset."""

    cell_id: list[str]
    area_ids: list[list[int]]
    radius_m: np.ndarray[Any, np.dtype[np.float64]]
    radius_basis: list[str]
    population: np.ndarray[Any, np.dtype[np.float64]]
    site_persons: np.ndarray[Any, np.dtype[np.float64]]
    sites: list[str]  # JSON text {kind: count}
    flood_rp_yr: np.ndarray[Any, np.dtype[np.float64]]
    landslide: list[str | None]


def _stored_context(rows: Sequence[Any], res: int) -> _Context:
    return _Context(
        cell_id=[
            r.cell_id if r.h3_res == res else h3.latlng_to_cell(r.lat, r.lon, res) for r in rows
        ],
        area_ids=[_id_list(r.area_ids) for r in rows],
        radius_m=_floats(r.radius_m for r in rows),
        radius_basis=[r.radius_basis for r in rows],
        population=_floats(r.population for r in rows),
        site_persons=_floats(r.site_persons for r in rows),
        sites=[r.sites or "{}" for r in rows],
        flood_rp_yr=_floats(r.flood_rp_yr for r in rows),
        landslide=[r.landslide for r in rows],
    )


def _simple_shares(data: bytes, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Population of each stage row (by ``ord``) from its simple pairs (:data:`_PAIR_SQL`)."""
    (ord_, people, area, xmin, ymin, xmax, ymax, ax, ay, bx, by, r, kx, ky) = binary_copy_columns(
        data, ["i4"] + ["f8"] * 13
    )
    x, y = zones.zone_rings((bx - ax) * kx, (by - ay) * ky, r, kx, ky)
    clipped = zones.clipped_areas(x, y, xmin - ax, ymin - ay, xmax - ax, ymax - ay)
    shares = np.bincount(ord_ - 1, weights=people * clipped / area, minlength=n)
    return np.asarray(shares, dtype=np.float64)


def _compute_context(timer: _Timer, rows: Sequence[Any], res: int) -> _Context:
    """Context of ``rows`` (from :data:`_INPUTS_SQL`): radius, cell, then the spatial joins."""
    kind = np.array([r.kind for r in rows], dtype=object)
    pclass = np.array([r.pressure_class or "" for r in rows], dtype=object)
    radius, basis = model.impact_radius_m(
        kind, _floats(r.p_mpa for r in rows), _floats(r.d_mm for r in rows), pclass
    )
    lons = np.array([r.lon for r in rows], dtype=np.float64)
    lats = np.array([r.lat for r in rows], dtype=np.float64)
    kx, ky = metres_per_degree(lats)
    cells = [
        h3.latlng_to_cell(la, lo, res) for la, lo in zip(lats.tolist(), lons.tolist(), strict=True)
    ]
    # The stage is written in H3 order (the index's hierarchy is a space-filling order): each
    # probe of its index then reads a few neighbouring pages, not pages all over the table.
    spatial = np.argsort(np.array([int(c, 16) for c in cells], dtype=np.uint64), kind="stable")
    ids = np.array([r.id for r in rows], dtype=np.int64)
    sites = model.SITE_EXPOSURE
    saved = _set(timer, _SETTINGS)
    timer.run("context", text("DROP TABLE IF EXISTS risk_ctx_in, risk_ctx_stage, risk_ctx_pair"))
    timer.run("context", text(_STAGE_IN_SQL))
    payload = binary_copy_payload(
        [
            np.arange(1, len(rows) + 1, dtype=np.int32),
            ids[spatial],
            radius[spatial],
            kx[spatial],
            ky[spatial],
            lons[spatial],
            lats[spatial],
        ]
    )
    timer.copy("context", _STAGE_COPY_SQL, payload)
    timer.run("context", text(_STAGE_SQL))
    for ddl in _STAGE_INDEX_SQL:
        timer.run("context", text(ddl))
    timer.run("context", _PAIR_SQL)
    simple = timer.copy_out("context", _SIMPLE_COPY_SQL)
    got = timer.run(
        "context",
        _CONTEXT_SQL,
        {
            "site_kinds": list(sites),
            "site_persons": [s.persons for s in sites.values()],
            "site_vuln": [s.vulnerability for s in sites.values()],
            "site_attr": [s.capacity_attr for s in sites.values()],
        },
    ).all()
    timer.run("context", text("DROP TABLE risk_ctx_in, risk_ctx_stage, risk_ctx_pair"))
    _set(timer, saved)
    population = _simple_shares(simple, len(rows))
    # got[k] is the asset at stage position k: back to the order of ``rows``.
    at = np.empty(len(rows), dtype=np.int64)
    at[spatial] = np.arange(len(rows))
    back = [got[k] for k in at.tolist()]
    return _Context(
        cell_id=cells,
        area_ids=[_id_list(g.area_ids) for g in back],
        radius_m=radius,
        radius_basis=[str(b) for b in basis],
        population=_floats(g.population for g in back) + population[at],
        site_persons=_floats(g.site_persons for g in back),
        sites=[g.sites for g in back],
        flood_rp_yr=_floats(g.flood_rp_yr for g in back),
        landslide=[g.landslide for g in back],
    )


# -- stage 3: score ------------------------------------------------------------------------
_COPY_SQL = (
    "COPY risk_score (scope, asset_id, cell_id, plate, method, likelihood, consequence, score, "
    "risk_class, norm, h3_res, area_ids, radius_m, radius_basis, population, site_persons, "
    "sites, flood_rp_yr, landslide, inputs) FROM STDIN (FORMAT binary)"
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


def _sites_count(sites_json: str) -> int:
    return 0 if sites_json in ("{}", "") else int(sum(orjson.loads(sites_json).values()))


def _model_inputs(rows: Sequence[Any], ctx: _Context, now_year: int) -> model.Inputs:
    years = _floats(
        (float(r.year) if r.year and str(r.year).lstrip("-").isdigit() else None) for r in rows
    )
    kind = np.array([r.kind for r in rows], dtype=object)
    p_mpa = _floats(r.p_mpa for r in rows)
    # A missing class on a gas asset is derived from its pressure (GB 50028 edges).
    stated = np.array([r.pressure_class or "" for r in rows], dtype=object)
    pclass = np.where(stated == "", model.pressure_class_of(p_mpa), stated).astype(object)
    return model.Inputs(
        kind=kind,
        plate=np.array([r.plate for r in rows], dtype=object),
        age_yr=np.where(np.isnan(years), np.nan, np.maximum(now_year - years, 0.0)),
        material=np.array([r.material or "" for r in rows], dtype=object),
        condition=np.array([r.condition or "" for r in rows], dtype=object),
        sufficiency=_floats(r.sufficiency for r in rows),
        pressure_class=pclass,
        flood_rp_yr=ctx.flood_rp_yr,
        landslide=np.array([v or "" for v in ctx.landslide], dtype=object),
        alarm_level=np.array([r.alarm_level for r in rows], dtype=np.int64),
        recent_alarms=np.array([r.recent_alarms for r in rows], dtype=np.int64),
        radius_m=ctx.radius_m,
        population=ctx.population,
        site_persons=ctx.site_persons,
        sites=np.array([_sites_count(s) for s in ctx.sites], dtype=np.int64),
    )


def _stored_inputs(inputs: model.Inputs) -> list[bytes]:
    """What :func:`asset_components` needs besides the context: a short JSON array per asset."""
    age = [None if math.isnan(v) else v for v in inputs.age_yr.tolist()]
    suff = [None if math.isnan(v) else v for v in inputs.sufficiency.tolist()]
    return [
        orjson.dumps(list(t))
        for t in zip(
            inputs.kind.tolist(),
            age,
            inputs.material.tolist(),
            inputs.condition.tolist(),
            suff,
            inputs.pressure_class.tolist(),
            inputs.alarm_level.tolist(),
            inputs.recent_alarms.tolist(),
            strict=True,
        )
    ]


# Binary COPY fields (length-prefixed values) of whole columns, numpy where it can.
_NULL_FIELD = b"\xff\xff\xff\xff"
_INT8_OID = 20


def _fixed_fields(values: np.ndarray[Any, Any], code: str) -> list[bytes]:
    """Fields of a numeric column (``code``: big-endian numpy type); NaN becomes NULL."""
    n, width = len(values), np.dtype(code).itemsize
    body = np.empty(n, dtype=np.dtype([("len", ">i4"), ("v", code)]))
    body["len"] = width
    body["v"] = values
    raw = body.tobytes()
    step = 4 + width
    out = [raw[i : i + step] for i in range(0, n * step, step)]
    if values.dtype.kind == "f":
        for i in np.flatnonzero(np.isnan(values)).tolist():
            out[i] = _NULL_FIELD
    return out


def _text_fields(values: Sequence[str | bytes | None], prefix: bytes = b"") -> list[bytes]:
    """Fields of a text column (``prefix`` b"\\x01": jsonb's format version); None is NULL."""
    memo: dict[Any, bytes] = {}

    def field(v: str | bytes | None) -> bytes:
        if v is None:
            return _NULL_FIELD
        data = prefix + (v.encode() if isinstance(v, str) else v)
        return len(data).to_bytes(4, "big") + data

    out = []
    for v in values:
        f = memo.get(v)
        if f is None:
            f = memo[v] = field(v)
        out.append(f)
    return out


def _int8_array_fields(values: Sequence[Sequence[int]]) -> list[bytes]:
    """Fields of a ``bigint[]`` column (one dimension, no NULL elements)."""
    memo: dict[tuple[int, ...], bytes] = {}
    out = []
    for v in values:
        key = tuple(v)
        f = memo.get(key)
        if f is None:
            if key:
                data = struct.pack(f">iiiii{'iq' * len(key)}", 1, 0, _INT8_OID, len(key), 1,
                                   *(x for a in key for x in (8, a)))  # fmt: skip
            else:
                data = struct.pack(">iii", 0, 0, _INT8_OID)
            f = memo[key] = len(data).to_bytes(4, "big") + data
        out.append(f)
    return out


def _binary_rows(columns: Sequence[Sequence[bytes]]) -> bytes:
    """A binary COPY payload from per-column field lists."""
    count = len(columns).to_bytes(2, "big")
    rows = map(b"".join, zip(itertools.repeat(count), *columns))
    return PGCOPY_HEADER + b"".join(rows) + PGCOPY_TRAILER


def _score_rows(
    timer: _Timer,
    rows: Sequence[Any],
    ctx: _Context,
    res: int,
    methods: Mapping[str, model.Method] | None,
    now_year: int,
) -> int:
    """Score ``rows`` with their context and COPY the asset rows in; returns how many."""
    if not rows:
        return 0
    inputs = _model_inputs(rows, ctx, now_year)
    s = model.score(inputs, methods)
    is_lec = s.method == "lec"
    ids = np.array([r.id for r in rows], dtype=np.int64)
    # Written grouped by area, then cell: re-aggregating one area (after one alarm) then reads
    # a few contiguous pages instead of one page per asset all over the table.
    first_area = np.array([a[0] if a else -1 for a in ctx.area_ids], dtype=np.int64)
    order = np.lexsort((ids, np.array(ctx.cell_id), first_area))
    o = order.tolist()

    def pick(values: Sequence[Any]) -> list[Any]:
        return [values[i] for i in o]

    n = len(rows)
    columns = [
        _text_fields(["asset"] * n),
        _fixed_fields(ids[order], ">i8"),
        _text_fields(pick(ctx.cell_id)),
        _text_fields(pick([r.plate for r in rows])),
        _text_fields(s.method[order].tolist()),
        _fixed_fields(np.where(is_lec, s.lec_l, s.l_level)[order].astype(np.float64), ">f8"),
        _fixed_fields(
            np.where(is_lec, s.lec_e * s.lec_c, s.s_level)[order].astype(np.float64), ">f8"
        ),
        _fixed_fields(s.score[order].astype(np.float64), ">f8"),
        _fixed_fields(s.risk_class[order], ">i2"),
        _fixed_fields(s.norm[order], ">f8"),
        _fixed_fields(np.full(n, res), ">i2"),
        _int8_array_fields(pick(ctx.area_ids)),
        _fixed_fields(ctx.radius_m[order], ">f8"),
        _text_fields(pick(ctx.radius_basis)),
        _fixed_fields(ctx.population[order], ">f8"),
        _fixed_fields(ctx.site_persons[order], ">f8"),
        _text_fields(pick(ctx.sites), b"\x01"),
        _fixed_fields(ctx.flood_rp_yr[order], ">f8"),
        _text_fields(pick(ctx.landslide)),
        _text_fields(pick(_stored_inputs(inputs)), b"\x01"),
    ]
    timer.copy("score", _COPY_SQL, _binary_rows(columns))
    return n


_GIN_CLEANUP_SQL = text(
    "SELECT gin_clean_pending_list(c.oid) FROM pg_class c "
    "WHERE c.oid = 'ix_risk_score_area_ids'::regclass AND pg_has_role(c.relowner, 'USAGE')"
)


# -- stage 4: aggregate --------------------------------------------------------------------
# The aggregate of a cell or area is as risky as its worst asset: its likelihood, consequence,
# class and norm are that asset's; components add the counts, the sum and mean of norm. One
# pass: the worst asset is max([norm, -asset_id]) (highest norm, then lowest id) joined back by
# id, instead of five sorted array_aggs; sums are exact integer sums of each norm in units of
# 2⁻⁵³ (norm ∈ [0, 1], so that is its float value to 1e-16; bigint sums are int128 inside,
# ~25 ms cheaper per 100 k rows than converting every norm to numeric), so the result does not
# depend on the order rows are read in (a full and an incremental refresh give the very same
# aggregates). Each statement deletes the old rows of its keys and inserts the new ones.
_NORM_UNIT = float(2**53)
_AGG_CTES = """
    agg AS (
        SELECT {key} AS key, coalesce(r.plate, '{composite}') AS plate, count(*) AS n,
               count(*) FILTER (WHERE r.risk_class = 1) AS c1,
               count(*) FILTER (WHERE r.risk_class = 2) AS c2,
               count(*) FILTER (WHERE r.risk_class = 3) AS c3,
               count(*) FILTER (WHERE r.risk_class = 4) AS c4,
               min(r.risk_class) AS risk_class, max(r.norm) AS norm,
               sum((r.norm * {unit})::bigint)::float8 / {unit} AS sum_norm,
               (-(max(ARRAY[r.norm, -r.asset_id::float8]))[2])::bigint AS worst
        FROM {source}
        GROUP BY GROUPING SETS (({key}, r.plate), ({key}))
    ),
    x AS (
        SELECT agg.key, agg.plate, agg.risk_class, agg.norm, w.likelihood, w.consequence,
               jsonb_build_object(
                   'assets', agg.n,
                   'by_class', jsonb_build_object('1', agg.c1, '2', agg.c2, '3', agg.c3,
                                                  '4', agg.c4),
                   'max_norm', agg.norm, 'sum_norm', agg.sum_norm,
                   'mean_norm', agg.sum_norm / agg.n,
                   'worst_asset_id', agg.worst, 'worst_method', w.method,
                   'worst_score', w.score) AS components
        FROM agg JOIN risk_score w ON w.asset_id = agg.worst AND w.scope = 'asset'
    )
"""


def _cells_sql(restricted: bool) -> Any:
    only = " AND cell_id = ANY(:cells)" if restricted else ""
    ctes = _AGG_CTES.format(
        key="r.cell_id",
        composite=COMPOSITE,
        unit=repr(_NORM_UNIT),
        source="risk_score r WHERE r.scope = 'asset' AND r.cell_id = ANY(:cells)",
    )
    return text(
        f"""
        WITH del AS (DELETE FROM risk_score WHERE scope = 'cell'{only}),
        g AS (SELECT * FROM unnest(:cells, :wkts) AS g(cell_id, wkt)),
        {ctes}
        INSERT INTO risk_score (scope, cell_id, plate, method, likelihood, consequence, score,
                                risk_class, norm, components, geom)
        SELECT 'cell', x.key, x.plate, 'max', x.likelihood, x.consequence, x.norm,
               x.risk_class, x.norm, x.components || jsonb_build_object('h3_res', :res),
               ST_GeomFromText(g.wkt, 4326)
        FROM x JOIN g ON g.cell_id = x.key
        """
    ).bindparams(bindparam("cells", type_=_TXT), bindparam("wkts", type_=_TXT))


def _areas_sql(restricted: bool) -> Any:
    # Restricted: the GIN index on the asset rows' area_ids finds the areas' assets.
    only = " AND asset_id = ANY(:areas)" if restricted else ""
    where = " AND r.area_ids && :areas AND u.area_id = ANY(:areas)" if restricted else ""
    ctes = _AGG_CTES.format(
        key="u.area_id",
        composite=COMPOSITE,
        unit=repr(_NORM_UNIT),
        source="risk_score r CROSS JOIN LATERAL unnest(r.area_ids) AS u(area_id) "
        f"WHERE r.scope = 'asset'{where}",
    )
    statement = text(
        f"""
        WITH del AS (DELETE FROM risk_score WHERE scope = 'area'{only}),
        {ctes}
        INSERT INTO risk_score (scope, asset_id, plate, method, likelihood, consequence, score,
                                risk_class, norm, components)
        SELECT 'area', x.key, x.plate, 'max', x.likelihood, x.consequence, x.norm,
               x.risk_class, x.norm, x.components
        FROM x
        """
    )
    return statement.bindparams(bindparam("areas", type_=_BIG)) if restricted else statement


_CELLS_ALL, _CELLS_SOME = _cells_sql(False), _cells_sql(True)
_AREAS_ALL, _AREAS_SOME = _areas_sql(False), _areas_sql(True)


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
    """Rewrite the rows of ``cells`` and ``areas`` (None: all of them)."""
    if cells is None:
        cells = {
            c
            for (c,) in timer.run(
                "cells",
                text("SELECT DISTINCT cell_id FROM risk_score WHERE scope = 'asset'"),
            ).all()
        }
        restricted = False
    else:
        restricted = True
    ordered = sorted(c for c in cells if c)
    if ordered or not restricted:
        result = timer.run(
            "cells",
            _CELLS_SOME if restricted else _CELLS_ALL,
            {"cells": ordered, "wkts": [_hexagon_wkt(c) for c in ordered], "res": res},
        )
        report.cells += int(result.rowcount or 0)
    if areas is None:
        result = timer.run("areas", _AREAS_ALL)
        report.areas += int(result.rowcount or 0)
    elif areas:
        result = timer.run("areas", _AREAS_SOME, {"areas": sorted(areas)})
        report.areas += int(result.rowcount or 0)


# -- entry points --------------------------------------------------------------------------
def _check(h3_res: int, methods: Mapping[str, str] | None) -> None:
    if not 0 <= h3_res <= 15:
        raise InvalidInput(f"h3_res must be 0..15, got {h3_res}")
    for plate, method in (methods or {}).items():
        if method not in ("matrix", "lec"):
            raise InvalidInput(f"method for plate {plate!r} must be 'matrix' or 'lec'")


def _context(
    timer: _Timer, rows: Sequence[Any], res: int, recontext: bool, report: RefreshReport
) -> _Context:
    """Stored context where there is one (and ``recontext`` is off), computed otherwise."""
    if recontext:
        todo = list(range(len(rows)))
    else:
        todo = [i for i, r in enumerate(rows) if r.radius_m is None]
    if not todo:
        return _stored_context(rows, res)
    fresh = _compute_context(timer, [rows[i] for i in todo], res)
    report.contexts += len(todo)
    if len(todo) == len(rows):
        return fresh
    ctx = _stored_context(rows, res)
    for j, i in enumerate(todo):
        ctx.cell_id[i] = fresh.cell_id[j]
        ctx.area_ids[i] = fresh.area_ids[j]
        ctx.radius_m[i] = fresh.radius_m[j]
        ctx.radius_basis[i] = fresh.radius_basis[j]
        ctx.population[i] = fresh.population[j]
        ctx.site_persons[i] = fresh.site_persons[j]
        ctx.sites[i] = fresh.sites[j]
        ctx.flood_rp_yr[i] = fresh.flood_rp_yr[j]
        ctx.landslide[i] = fresh.landslide[j]
    return ctx


def _set(timer: _Timer, settings: Mapping[str, str]) -> dict[str, str]:
    """Set ``settings`` for the rest of the transaction; returns the previous values."""
    rows = timer.run(
        "settings",
        text(
            "SELECT name, current_setting(name), set_config(name, value, true) "
            "FROM unnest(:names, :values) AS s(name, value)"
        ).bindparams(bindparam("names", type_=_TXT), bindparam("values", type_=_TXT)),
        {"names": list(settings), "values": list(settings.values())},
    ).all()
    return {r[0]: r[1] for r in rows}


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
    areas): right when only attributes, alarms or the model changed, not geometry.
    """
    _check(h3_res, methods)
    started = time.perf_counter()
    report = RefreshReport()
    timer = _Timer(session, report)
    saved = _set(timer, _SETTINGS)
    rows = timer.run(
        "inputs",
        _INPUTS_FRESH_SQL if recontext else _INPUTS_SQL,
        {"ids": None, "recent_days": model.RECENT_DAYS},
    ).all()
    ctx = _context(timer, rows, h3_res, recontext, report)
    timer.run("score", text("DELETE FROM risk_score WHERE scope = 'asset'"))
    report.assets = _score_rows(
        timer, rows, ctx, h3_res, methods, now_year or datetime.now(UTC).year
    )
    # The GIN index took the new rows into its pending list, which every search of it scans
    # (one alarm's areas: 30 ms instead of 5) until a vacuum: merge it now, in one sorted pass
    # (a few ms). Only the index's owner may; otherwise autovacuum will.
    timer.run("score", _GIN_CLEANUP_SQL)
    # Fresh statistics after a bulk replace, before the aggregates (statistics saying "empty"
    # — a vacuum of an empty table — turned their joins into nested loops over 100 k rows) and
    # for the next incremental refresh (measured: 0.3 s instead of 5 ms for one area at 10 k
    # assets on stale ones); only the columns incremental refreshes filter on (the JSON and
    # geometry ones cost most to sample). The cell and area rows are rewritten after it: a
    # few hundred rows, no matter to a plan.
    timer.run("analyze", text("ANALYZE risk_score (scope, asset_id, cell_id, area_ids, plate)"))
    _aggregate(timer, set(ctx.cell_id) if rows else set(), None, h3_res, report)
    _set(timer, saved)
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
    rows = timer.run("inputs", _INPUTS_SQL, {"ids": ids, "recent_days": model.RECENT_DAYS}).all()
    stored_res = next((r.h3_res for r in rows if r.h3_res is not None), None)
    res = h3_res or stored_res or DEFAULT_H3_RES
    cells = {r.cell_id for r in rows if r.cell_id}
    areas = {a for r in rows for a in _id_list(r.area_ids)}
    ctx = _context(timer, rows, res, recontext, report)
    timer.run(
        "score",
        text("DELETE FROM risk_score WHERE scope = 'asset' AND asset_id = ANY(:ids)").bindparams(
            bindparam("ids", type_=_BIG)
        ),
        {"ids": ids},
    )
    report.assets = _score_rows(timer, rows, ctx, res, methods, now_year or datetime.now(UTC).year)
    cells |= set(ctx.cell_id)
    areas |= {a for ids_ in ctx.area_ids for a in ids_}
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


# -- explanations ----------------------------------------------------------------------------
_EXPLAIN_SQL = text(
    "SELECT asset_id, plate, method, inputs, radius_m, radius_basis, population, site_persons, "
    "sites, flood_rp_yr, landslide, components FROM risk_score "
    "WHERE scope = 'asset' AND asset_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=_BIG))


def _rebuild(row: Any) -> dict[str, Any]:
    if row.inputs is None:  # scored before migration 0011: the stored explanation
        return dict(row.components or {})
    kind, age, material, condition, suff, pclass, alarm, recent = row.inputs
    inputs = model.Inputs(
        kind=np.array([kind], dtype=object),
        plate=np.array([row.plate], dtype=object),
        age_yr=_floats([age]),
        material=np.array([material], dtype=object),
        condition=np.array([condition], dtype=object),
        sufficiency=_floats([suff]),
        pressure_class=np.array([pclass], dtype=object),
        flood_rp_yr=_floats([row.flood_rp_yr]),
        landslide=np.array([row.landslide or ""], dtype=object),
        alarm_level=np.array([alarm], dtype=np.int64),
        recent_alarms=np.array([recent], dtype=np.int64),
        radius_m=_floats([row.radius_m]),
        population=_floats([row.population]),
        site_persons=_floats([row.site_persons]),
        sites=np.array([sum((row.sites or {}).values())], dtype=np.int64),
    )
    s = model.score(inputs, {row.plate: row.method})
    return _components(0, inputs, s, row)


def asset_components(db: Session | Connection, asset_ids: Iterable[int]) -> dict[int, Any]:
    """The explanation of each stored asset score, with ``source`` keys (see :func:`explain`).

    Rebuilt from the inputs and context stored with the score by the same model code that
    scored it, so it is the explanation of the stored score even if attributes changed since.
    """
    rows = db.execute(_EXPLAIN_SQL, {"ids": sorted(set(asset_ids))}).all()
    return {int(r.asset_id): _rebuild(r) for r in rows}


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
                "r.consequence, r.score, r.risk_class, r.norm, r.cell_id, r.computed_at, "
                "r.area_ids FROM risk_score r JOIN asset a ON a.id = r.asset_id "
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
    colour, zh, en = RISK_CLASSES[cls]
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
        "components": explain(asset_components(session, [asset_id]).get(asset_id, {})),
        "computed_at": row["computed_at"],
    }


def _class_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    cls = int(row["risk_class"])
    return {"risk_class": cls, "class_colour": RISK_CLASSES[cls][0]}


def cells(session: Session, *, plate: str = COMPOSITE, bbox: BBox | None = None) -> dict[str, Any]:
    """Cell scores of a plate (or the composite) as a GeoJSON FeatureCollection."""
    where = "scope = 'cell' AND plate = :plate"
    params: dict[str, Any] = {"plate": plate}
    if bbox is not None:
        where += " AND " + bbox_sql("geom", bbox)
    rows = session.execute(
        text(
            "SELECT cell_id, plate, score, norm, risk_class, likelihood, consequence, "
            f"components, ST_AsGeoJSON(geom, 7) AS geometry FROM risk_score WHERE {where} "
            "ORDER BY cell_id"
        ),
        params,
    ).mappings()
    features = [
        feature(
            r["cell_id"],
            geometry(r["geometry"]),
            {
                "cell_id": r["cell_id"],
                "plate": r["plate"],
                "score": r["score"],
                "norm": r["norm"],
                **_class_fields(r),
                **r["components"],
            },
        )
        for r in rows
    ]
    return feature_collection(features)


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
            str(k): {"colour": c, "name": f"{zh} {en}"} for k, (c, zh, en) in RISK_CLASSES.items()
        },
        "areas": "/risk/areas",
    }


def area_cells(session: Session, area_id: int, *, plate: str = COMPOSITE) -> dict[str, Any]:
    """Drill-down area → cells: the cells holding the area's scored assets."""
    ids = [
        r[0]
        for r in session.execute(
            text(
                "SELECT DISTINCT cell_id FROM risk_score WHERE scope = 'asset' "
                "AND area_ids @> ARRAY[CAST(:a AS bigint)]"
            ),
            {"a": area_id},
        ).all()
    ]
    wanted = set(ids)
    return feature_collection(
        f for f in cells(session, plate=plate)["features"] if f["id"] in wanted
    )


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
