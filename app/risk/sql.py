"""The SQL of a risk refresh, stage by stage, as tuned (see :mod:`app.risk.refresh`).

Every statement here is set-based and was measured on 100,000 assets (``bench/risk.py``); the
comments say what each form bought. The numbers are only ever the model's and the vocabulary's
constants, never input.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger, Float, Text

from app.taxonomy.alarms import NOT_ANOMALIES, OPEN_STATES, sql_list
from app.taxonomy.risk import COMPOSITE, UNSCORED_KINDS

BIG = ARRAY(BigInteger)
TXT = ARRAY(Text)
FLT = ARRAY(Float)

# -- stage 1: inputs -----------------------------------------------------------------------
# One read per refresh: point, attributes, alarms, and the context stored on the asset's
# current row (NULL when it has none yet). Alarms are restricted to the assets asked for.
# A full refresh that recomputes the context reads none of it (:data:`INPUTS_FRESH_SQL`):
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
    WHERE a.plate <> 'exposure' AND a.kind NOT IN ({sql_list(UNSCORED_KINDS)})
      AND (CAST(:ids AS bigint[]) IS NULL OR a.id = ANY(:ids))
    ORDER BY a.id
    """
    ).bindparams(bindparam("ids", type_=BIG))


INPUTS_SQL, INPUTS_FRESH_SQL = _inputs_sql(True), _inputs_sql(False)


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
STAGE_IN_SQL = (
    "CREATE TEMPORARY TABLE risk_ctx_in (ord int4, asset_id int8, r float8, kx float8, "
    "ky float8, lon0 float8, lat0 float8) ON COMMIT DROP"
)
STAGE_COPY_SQL = "COPY risk_ctx_in FROM STDIN (FORMAT binary)"
STAGE_SQL = (
    "CREATE TEMPORARY TABLE risk_ctx_stage ON COMMIT DROP AS "
    "SELECT t.ord, t.asset_id, t.r, t.kx, t.ky, t.lon0, t.lat0, a.geom "
    "FROM risk_ctx_in t JOIN asset a ON a.id = t.asset_id ORDER BY t.ord"
)
# The box of the zone (the geometry expanded by r metres, in degrees) is an index expression,
# not a column: the stage stays narrow (it outgrew temp_buffers and went to disk). No ANALYZE:
# statistics on geometry columns cost more than they could save here.
_BOX = "ST_Expand(x.geom, x.r / x.kx, x.r / x.ky)"
STAGE_INDEX_SQL = (f"CREATE INDEX ON risk_ctx_stage USING gist (({_BOX.replace('x.', '')}))",)

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
# A geometry of more vertices than this is buffered in parts (ST_Subdivide) whose buffers are
# unioned: the same zone (the parts cover the geometry, and a part's end cap lies in the
# buffer of the whole), but GEOS buffers a zig-zag line of n vertices in O(n²) or worse, and
# does not check for cancellation meanwhile. Measured on a 50 m zig-zag of 1 m steps with
# r = 20 m, whole: 500 vertices 0.65 s, 1,000 2.4 s, 2,000 11 s (the security review: 5,000
# took minutes, 20,000 3 GB in 15 s); in parts of 64: 2,000 0.18 s, 5,000 0.48 s, 20,000
# 2.2 s (parts of 8 to 256 made no difference). Ordinary assets (the demo city's mains have
# at most 59 vertices) take the plain buffer, as before. A statement_timeout now takes effect
# between parts (20,000 vertices, 0.5 s timeout: cancelled at 1.4 s), though not inside the
# final union (100,000 vertices, 1 s: after 9 s; a two-level union saved only a quarter).
PART_VERTICES = 64
_BUFFER = (
    f"(CASE WHEN ST_NPoints(x.geom) <= {PART_VERTICES} "
    "THEN ST_Buffer({g}, x.r, 'quad_segs=4') "
    "ELSE (SELECT ST_Union(ST_Buffer(p.part, x.r, 'quad_segs=4')) "
    f"FROM ST_Subdivide({{g}}, {PART_VERTICES}) AS p(part)) END)"
)
_ZONE = (
    f"(CASE WHEN x.r > 0 THEN {_BUFFER.format(g=_LOCAL.format(g='x.geom'))} "
    f"ELSE {_LOCAL.format(g='x.geom')} END)"
)
# Each (zone, population cell) pair whose boxes meet, in a temporary table: a zone inside the
# cell takes its share here (its area in its frame over the cell's, degrees² × kx·ky). A
# *simple* pair is a point's or a straight segment's zone across a rectangular cell's edge:
# its share is computed in numpy (:mod:`gis.zones`: the same 16-gon or stadium, clipped by
# the rectangle), which saves a GEOS buffer and a GEOS clip per pair; it is read back by a
# binary COPY with its segment's ends (degrees), radius and frame. Others stay in SQL.
PAIR_SQL = text(
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
                        ELSE ST_Area({_BUFFER.format(g=_LOCAL.format(g="x.geom"))})
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
SIMPLE_COPY_SQL = (
    "COPY (SELECT p.ord, p.people, p.area, ST_XMin(p.box), ST_YMin(p.box), ST_XMax(p.box), "
    "ST_YMax(p.box), ST_X(e.a), ST_Y(e.a), ST_X(e.b), ST_Y(e.b), x.r, x.kx, x.ky "
    "FROM risk_ctx_pair p JOIN risk_ctx_stage x USING (ord) "
    "CROSS JOIN LATERAL (SELECT coalesce(ST_StartPoint(x.geom), x.geom) AS a, "
    "coalesce(ST_EndPoint(x.geom), x.geom) AS b "
    "OFFSET 0) e WHERE p.simple) TO STDOUT (FORMAT binary)"
)
CONTEXT_SQL = text(
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
    -- Zones crossing a cell edge (but the simple ones, see :data:`PAIR_SQL`), back in
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
    bindparam("site_kinds", type_=TXT),
    bindparam("site_persons", type_=FLT),
    bindparam("site_vuln", type_=FLT),
    bindparam("site_attr", type_=TXT),
)
# JIT compiled these plans for ~1 s (their PostGIS cost estimates are huge) to save nothing;
# sorts and hashes of 100 k rows need more than the default 4 MB. The ANALYZE at the end of
# a full refresh samples 300 rows per point of statistics target: 10 (3,000 rows, not 30,000)
# is plenty for what incremental refreshes filter on (scope, asset ids, a few cells or areas)
# and keeps their plans (index scans; checked by the bench's one-alarm refresh). Set for the
# refresh only.
SETTINGS = {"jit": "off", "work_mem": "64MB", "default_statistics_target": "10"}

# -- stage 3: score ------------------------------------------------------------------------
SCORE_COPY_SQL = (
    "COPY risk_score (scope, asset_id, cell_id, plate, method, likelihood, consequence, score, "
    "risk_class, norm, h3_res, area_ids, radius_m, radius_basis, population, site_persons, "
    "sites, flood_rp_yr, landslide, inputs) FROM STDIN (FORMAT binary)"
)

GIN_CLEANUP_SQL = text(
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
    ).bindparams(bindparam("cells", type_=TXT), bindparam("wkts", type_=TXT))


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
    return statement.bindparams(bindparam("areas", type_=BIG)) if restricted else statement


CELLS_ALL, CELLS_SOME = _cells_sql(False), _cells_sql(True)
AREAS_ALL, AREAS_SOME = _areas_sql(False), _areas_sql(True)

# -- settings and explanations ---------------------------------------------------------------
# Sets each setting for the rest of the transaction and returns the previous value.
SET_CONFIG_SQL = text(
    "SELECT name, current_setting(name), set_config(name, value, true) "
    "FROM unnest(:names, :values) AS s(name, value)"
).bindparams(bindparam("names", type_=TXT), bindparam("values", type_=TXT))

EXPLAIN_SQL = text(
    "SELECT asset_id, plate, method, inputs, radius_m, radius_basis, population, site_persons, "
    "sites, flood_rp_yr, landslide, components FROM risk_score "
    "WHERE scope = 'asset' AND asset_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=BIG))
