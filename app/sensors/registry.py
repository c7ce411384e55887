"""Sensor registry: bulk import from GIS files and binding each sensor to the asset it watches.

A sensor file (any format assets take) has fields ``external_id``, ``kind`` (indicator),
``unit``, ``interval_s`` and optionally ``asset_external_id`` (plus ``asset_source`` when the
same external id exists in several sources), ``status``, ``installed_on``; geometry is a point.

Binding, set-based in SQL after the upsert:
1. explicit — ``asset_external_id`` names the asset (rule ``explicit``);
2. spatial — the nearest asset of a kind the indicator watches, within ``tolerance_m`` metres
   (geodesic), found with the ``geom::geography`` GiST index (rule ``nearest_within_<n>m``);
3. junction — when the nearest candidates tie (less than ``ambiguity_m`` apart in distance)
   because they are pipes of one kind that meet at one node (an end of one of them, within
   ``junction_m`` of every one, and the point of them all nearest to the sensor), the sensor
   sits on a network junction and is bound to the pipe of the largest ``diameter_mm`` (no
   diameter counts as smallest), then the lowest asset id (rule
   ``junction_max_diameter_within_<n>m``); the report names the pipes' number and the pick.
   Any other tie is **ambiguous** and a sensor with no candidate is **too far**: both are
   reported and left unbound rather than bound at random.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from app.assets.readers import read_layer
from app.db import copy_into, frame_rows, stage_table
from app.errors import InvalidInput
from app.sensors.models import SENSOR_STATUSES
from app.settings import LimitSettings
from app.taxonomy.assets import NETWORK_NODES
from app.taxonomy.indicators import INDICATORS
from gis.crs import resolve_crs, to_wgs84
from gis.hygiene import clean_geometries, finite_and_present

DEFAULT_TOLERANCE_M = 25.0
DEFAULT_AMBIGUITY_M = 1.0
#: How far apart the ends of pipes meeting at one node may be, and still be one node [m].
#: EPANET/WNTR exports draw every link from its end nodes' coordinates (identical ends); 0.5 m
#: leaves room for coordinates rounded as RFC 7946 §11.2 suggests (6 decimals: ≤ 0.08 m per
#: rounding) and a reprojection, and stays below ``DEFAULT_AMBIGUITY_M``.
DEFAULT_JUNCTION_M = 0.5


@dataclass(frozen=True)
class SensorIssue:
    row: int | None
    external_id: str | None
    reason: str


@dataclass(frozen=True)
class JunctionBinding:
    """A sensor at a pipe junction and the pipe it was bound to (and why that one)."""

    external_id: str
    asset_id: int
    asset_external_id: str
    pipes: int
    note: str


@dataclass
class SensorImportReport:
    file: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[SensorIssue] = field(default_factory=list)
    bound_explicit: int = 0
    bound_spatial: int = 0  # by position, the junction ones included
    bound_junction: int = 0
    at_junctions: list[JunctionBinding] = field(default_factory=list)
    unbound: list[SensorIssue] = field(default_factory=list)
    written: bool = False
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_sensors(
    session: Session,
    path: Path,
    *,
    layer: str | None = None,
    crs: str | None = None,
    partial: bool = False,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    ambiguity_m: float = DEFAULT_AMBIGUITY_M,
    junction_m: float = DEFAULT_JUNCTION_M,
    limits: LimitSettings | None = None,
    encoding: str | None = None,
) -> SensorImportReport:
    """Upsert the sensors of ``path`` by external id, then bind them; flushes, never commits.

    ``limits`` bound the file as for assets, ``encoding`` is its text encoding when not UTF-8
    (:func:`app.assets.readers.read_layer`)."""
    read = read_layer(path, layer=layer, limits=limits, encoding=encoding)
    frame = read.frame
    report = SensorImportReport(file=path.name, rows_read=len(frame))
    missing = [c for c in ("external_id", "kind", "unit") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{path.name} lacks field(s) {', '.join(missing)}")
    spec_text = crs or read.file_crs
    if spec_text is None:
        raise InvalidInput(f"{path.name} declares no CRS; say which with --crs")
    try:
        spec = resolve_crs(spec_text)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None

    reasons = np.full(len(frame), None, dtype=object)
    table = _columns(frame, reasons)
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    ok = finite_and_present(geoms)
    if ok.any() and (spec.offset or spec.crs.to_epsg() != 4326):
        geoms[ok] = to_wgs84(geoms[ok], spec)
    cleaned = clean_geometries(geoms, frozenset({"point"}))
    for i in np.flatnonzero(pd.notna(cleaned.rejected)):
        reasons[i] = reasons[i] or str(cleaned.rejected[i])
    multi = shapely.get_type_id(cleaned.geometries) == 4
    _reject(reasons, multi, "a sensor is one point, not a MultiPoint")

    bad = pd.notna(reasons)
    report.rejected = [
        SensorIssue(int(i) + 1, table["external_id"][i], str(reasons[i]))
        for i in np.flatnonzero(bad)
    ]
    if bad.all() or (bad.any() and not partial):
        return report
    good = ~bad
    staged = table[good].copy()
    staged["geom"] = shapely.to_wkb(cleaned.geometries[good], hex=True)
    report.inserted, report.updated = _upsert(session, staged)
    report.unchanged = int(good.sum()) - report.inserted - report.updated
    report.written = True
    result = bind(
        session,
        external_ids=list(staged["external_id"]),
        tolerance_m=tolerance_m,
        ambiguity_m=ambiguity_m,
        junction_m=junction_m,
    )
    report.bound_explicit, report.bound_spatial = result.explicit, result.spatial
    report.bound_junction, report.at_junctions = len(result.junctions), result.junctions
    report.unbound = result.unbound
    return report


def _columns(frame: pd.DataFrame, reasons: np.ndarray) -> pd.DataFrame:
    def col(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series([None] * len(frame), index=frame.index, dtype=object)
        values = frame[name].astype("string").str.strip()
        return values.mask(values == "").astype(object).where(values.notna(), None)

    table = pd.DataFrame(
        {
            "external_id": col("external_id"),
            "kind": col("kind"),
            "unit": col("unit"),
            "status": col("status").fillna("active"),
            "asset_external_id": col("asset_external_id"),
            "asset_source": col("asset_source"),
        }
    ).reset_index(drop=True)
    interval = pd.to_numeric(col("interval_s"), errors="coerce")
    installed = pd.to_datetime(col("installed_on"), errors="coerce")
    _reject(reasons, table["external_id"].isna(), "no external_id")
    _reject(
        reasons,
        table["external_id"].duplicated() & table["external_id"].notna(),
        "duplicate external_id",
    )
    kinds = table["kind"]
    known = kinds.isin(INDICATORS).to_numpy()
    for i in np.flatnonzero(~known):
        reasons[i] = reasons[i] or (
            f"unknown indicator kind {kinds[i]!r}; known: {', '.join(sorted(INDICATORS))}"
        )
    for i in np.flatnonzero(known):
        indicator = INDICATORS[kinds[i]]
        unit = table["unit"][i]
        if unit is None or not (unit == indicator.unit or indicator.accepts_unit(unit)):
            reasons[i] = reasons[i] or (
                f"unit {unit!r} does not fit {indicator.id} (expected {indicator.unit!r})"
            )
    has_interval = col("interval_s").notna().to_numpy()
    _reject(
        reasons,
        has_interval & ~((interval > 0) & (interval % 1 == 0)).to_numpy(),
        "interval_s must be a whole number of seconds > 0",
    )
    _reject(
        reasons,
        col("installed_on").notna().to_numpy() & installed.isna().to_numpy(),
        "installed_on is not a date",
    )
    _reject(
        reasons,
        ~table["status"].isin(SENSOR_STATUSES).to_numpy(),
        f"status must be one of {', '.join(SENSOR_STATUSES)}",
    )
    table["unit"] = [
        INDICATORS[k].unit if k in INDICATORS else u
        for k, u in zip(kinds, table["unit"], strict=True)
    ]
    table["interval_s"] = (
        interval.round().astype("Int64").astype(object).where(interval.notna(), None)
    )
    dates = installed.dt.strftime("%Y-%m-%d").astype(object)
    table["installed_on"] = dates.where(installed.notna(), None)
    return table


def _reject(reasons: np.ndarray, mask: Any, reason: str) -> None:
    mask = np.asarray(mask, dtype=bool)
    free = np.array([r is None for r in reasons], dtype=bool)
    reasons[mask & free] = reason


STAGE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS sensor_stage (
    external_id text, kind text, unit text, status text, asset_external_id text,
    asset_source text, interval_s int, installed_on date, geom text
) ON COMMIT DROP
"""

UPSERT_SQL = """
WITH upserted AS (
    INSERT INTO sensor AS s (external_id, kind, unit, status, interval_s, installed_on, geom,
                             attributes)
    SELECT external_id, kind, unit, status, interval_s, installed_on,
           ST_SetSRID(ST_GeomFromWKB(decode(geom, 'hex')), 4326),
           jsonb_strip_nulls(jsonb_build_object('asset_external_id', asset_external_id,
                                                'asset_source', asset_source))
    FROM sensor_stage
    ON CONFLICT (external_id) DO UPDATE SET
        kind = EXCLUDED.kind, unit = EXCLUDED.unit, status = EXCLUDED.status,
        interval_s = EXCLUDED.interval_s, installed_on = EXCLUDED.installed_on,
        geom = EXCLUDED.geom, attributes = EXCLUDED.attributes
    WHERE (s.kind, s.unit, s.status, s.interval_s, s.installed_on, ST_AsEWKB(s.geom),
           s.attributes)
          IS DISTINCT FROM
          (EXCLUDED.kind, EXCLUDED.unit, EXCLUDED.status, EXCLUDED.interval_s,
           EXCLUDED.installed_on, ST_AsEWKB(EXCLUDED.geom), EXCLUDED.attributes)
    RETURNING (xmax = 0) AS is_insert
)
SELECT count(*) FILTER (WHERE is_insert), count(*) FILTER (WHERE NOT is_insert) FROM upserted
"""


def _upsert(session: Session, staged: pd.DataFrame) -> tuple[int, int]:
    stage_table(session, STAGE_SQL, "sensor_stage")
    columns = [
        "external_id",
        "kind",
        "unit",
        "status",
        "asset_external_id",
        "asset_source",
        "interval_s",
        "installed_on",
        "geom",
    ]
    copy_sql = f"COPY sensor_stage ({', '.join(columns)}) FROM STDIN"
    copy_into(session, copy_sql, frame_rows(staged[columns]))
    inserted, updated = session.execute(text(UPSERT_SQL)).one()
    return int(inserted), int(updated)


# -- binding ----------------------------------------------------------------------------------
_IDS = ARRAY(Text)

EXPLICIT_SQL = text(
    """
    WITH wanted AS (
        SELECT s.id, s.external_id, s.attributes->>'asset_external_id' AS asset_eid,
               s.attributes->>'asset_source' AS asset_source
        FROM sensor s
        WHERE s.external_id = ANY(:ids) AND s.attributes ? 'asset_external_id'
    ), matches AS (
        SELECT w.id, w.external_id, w.asset_eid, count(a.id) AS n, min(a.id) AS asset_id
        FROM wanted w
        LEFT JOIN asset a ON a.external_id = w.asset_eid
             AND (w.asset_source IS NULL OR a.source = w.asset_source)
        GROUP BY w.id, w.external_id, w.asset_eid
    ), bound AS (
        UPDATE sensor s SET asset_id = m.asset_id, binding_rule = 'explicit',
                            binding_distance_m = ST_Distance(s.geom::geography, a.geom::geography)
        FROM matches m JOIN asset a ON a.id = m.asset_id
        WHERE s.id = m.id AND m.n = 1
        RETURNING s.id
    )
    SELECT external_id, asset_eid, n FROM matches WHERE n <> 1
    """
).bindparams(bindparam("ids", type_=_IDS))

SPATIAL_SQL = text(
    """
    WITH compat AS (
        SELECT indicator, string_to_array(kinds, ',') AS kinds
        FROM unnest(:indicators, :kinds) AS t(indicator, kinds)
    ), wanted AS (
        SELECT s.id, s.external_id, s.geom, c.kinds
        FROM sensor s JOIN compat c ON c.indicator = s.kind
        WHERE s.external_id = ANY(:ids) AND NOT (s.attributes ? 'asset_external_id')
    ), near AS (
        -- every compatible asset in range (the geography index answers ST_DWithin)
        SELECT w.id, a.id AS asset_id, a.kind, a.external_id AS asset_eid, a.geom,
               (a.attributes->>'diameter_mm')::float8 AS diameter_mm,
               ST_Distance(a.geom::geography, w.geom::geography) AS distance_m
        FROM wanted w
        CROSS JOIN LATERAL (
            SELECT a.* FROM asset a
            WHERE a.kind = ANY(w.kinds)
              AND ST_DWithin(a.geom::geography, w.geom::geography, :tolerance_m)
        ) a
    ), tied AS (
        -- the nearest and every candidate less than ambiguity_m farther than it
        SELECT * FROM (
            SELECT n.*, min(n.distance_m) OVER (PARTITION BY n.id) AS d1,
                   row_number() OVER (PARTITION BY n.id ORDER BY n.distance_m, n.asset_id)
                       AS rank
            FROM near n
        ) r
        WHERE distance_m - d1 < :ambiguity_m
    ), ties AS (
        SELECT id, count(*) AS n, min(d1) AS d1,
               max(distance_m) FILTER (WHERE rank = 2) AS d2,
               max(asset_id) FILTER (WHERE rank = 1) AS nearest_id,
               count(DISTINCT kind) = 1 AND bool_and(GeometryType(geom) = 'LINESTRING')
                   AS one_kind_of_lines
        FROM tied GROUP BY id
    ), ends AS (
        -- ends of tied lines the sensor is as near to as to the lines themselves
        SELECT t.id, e.node
        FROM tied t
        JOIN ties x ON x.id = t.id AND x.n >= 2 AND x.one_kind_of_lines
        JOIN wanted w ON w.id = t.id
        CROSS JOIN LATERAL (VALUES (ST_StartPoint(t.geom)), (ST_EndPoint(t.geom))) e(node)
        WHERE ST_DWithin(e.node::geography, w.geom::geography, x.d1 + :junction_m)
    ), nodes AS (
        -- an end that every tied line passes within junction_m of: they meet there
        SELECT DISTINCT ON (e.id) e.id, e.node
        FROM ends e JOIN tied t ON t.id = e.id
        GROUP BY e.id, e.node
        HAVING bool_and(ST_DWithin(t.geom::geography, e.node::geography, :junction_m))
        ORDER BY e.id
    ), picked AS (
        SELECT DISTINCT ON (t.id) t.id, t.asset_id, t.asset_eid, t.kind, t.diameter_mm,
               t.distance_m
        FROM tied t JOIN nodes j ON j.id = t.id
        ORDER BY t.id, t.diameter_mm DESC NULLS LAST, t.asset_id
    ), judged AS (
        SELECT w.id, w.external_id, x.n, x.d1, x.d2, p.kind, p.diameter_mm, p.asset_eid,
               node.external_id AS node_eid,
               CASE WHEN x.n = 1 THEN x.nearest_id ELSE p.asset_id END AS asset_id,
               CASE WHEN x.n = 1 THEN x.d1 ELSE p.distance_m END AS distance_m,
               CASE WHEN x.n = 1 THEN :rule WHEN p.id IS NOT NULL THEN :junction_rule END
                   AS rule
        FROM wanted w
        LEFT JOIN ties x ON x.id = w.id
        LEFT JOIN picked p ON p.id = w.id
        LEFT JOIN nodes j ON j.id = w.id
        LEFT JOIN LATERAL (
            -- the node's own asset, when the network's nodes were imported: for the report
            SELECT a.external_id FROM asset a
            WHERE a.kind = ANY(:node_kinds)
              AND ST_DWithin(a.geom::geography, j.node::geography, :junction_m)
            ORDER BY a.geom <-> j.node, a.id LIMIT 1
        ) node ON j.id IS NOT NULL
    ), bound AS (
        UPDATE sensor s SET asset_id = v.asset_id, binding_rule = v.rule,
                            binding_distance_m = v.distance_m
        FROM judged v
        WHERE s.id = v.id AND v.rule IS NOT NULL
        RETURNING s.id
    ), cleared AS (
        UPDATE sensor s SET asset_id = NULL, binding_rule = NULL, binding_distance_m = NULL
        FROM judged v
        WHERE s.id = v.id AND v.rule IS NULL
        RETURNING s.id
    )
    SELECT external_id, n, d1, d2, rule, asset_id, asset_eid, kind, diameter_mm, node_eid
    FROM judged WHERE rule IS DISTINCT FROM :rule
    ORDER BY external_id
    """
).bindparams(
    bindparam("ids", type_=_IDS),
    bindparam("indicators", type_=ARRAY(Text)),
    bindparam("kinds", type_=ARRAY(Text)),
    bindparam("node_kinds", type_=ARRAY(Text)),
)


@dataclass(frozen=True)
class Bound:
    """What :func:`bind` did: counts, the junction picks and the sensors left unbound."""

    explicit: int
    spatial: int  # by position, the junction ones included
    junctions: list[JunctionBinding]
    unbound: list[SensorIssue]


def bind(
    session: Session,
    *,
    external_ids: list[str],
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    ambiguity_m: float = DEFAULT_AMBIGUITY_M,
    junction_m: float = DEFAULT_JUNCTION_M,
) -> Bound:
    """Bind the named sensors (explicitly, by position, at a pipe junction); see the module."""
    if not external_ids:
        return Bound(0, 0, [], [])
    unbound: list[SensorIssue] = []
    explicit_rows = session.execute(EXPLICIT_SQL, {"ids": external_ids}).all()
    wanted_explicit = session.execute(
        text(
            "SELECT count(*) FROM sensor WHERE external_id = ANY(:ids) "
            "AND attributes ? 'asset_external_id'"
        ).bindparams(bindparam("ids", type_=_IDS)),
        {"ids": external_ids},
    ).scalar_one()
    for row in explicit_rows:
        why = "no asset" if row.n == 0 else f"{row.n} assets (give asset_source)"
        unbound.append(
            SensorIssue(None, row.external_id, f"asset_external_id {row.asset_eid!r} matches {why}")
        )
    explicit = int(wanted_explicit) - len(explicit_rows)
    rule = f"nearest_within_{tolerance_m:g}m"
    junction_rule = f"junction_max_diameter_within_{tolerance_m:g}m"
    spatial_rows = session.execute(
        SPATIAL_SQL,
        {
            "ids": external_ids,
            "indicators": list(INDICATORS),
            "kinds": [",".join(i.asset_kinds) for i in INDICATORS.values()],
            "node_kinds": list(NETWORK_NODES),
            "tolerance_m": tolerance_m,
            "ambiguity_m": ambiguity_m,
            "junction_m": junction_m,
            "rule": rule,
            "junction_rule": junction_rule,
        },
    ).all()
    junctions: list[JunctionBinding] = []
    for row in spatial_rows:
        if row.rule == junction_rule:
            junctions.append(_junction_binding(row))
        elif row.n is None:
            unbound.append(
                SensorIssue(None, row.external_id, f"no compatible asset within {tolerance_m:g} m")
            )
        else:
            many = "two" if row.n == 2 else f"{row.n}"
            reason = (
                f"ambiguous: {many} compatible assets at {row.d1:.1f} m and {row.d2:.1f} m "
                f"(closer than {ambiguity_m:g} m apart), not pipes of one kind meeting at one "
                f"junction (ends within {junction_m:g} m); bind it explicitly"
            )
            unbound.append(SensorIssue(None, row.external_id, reason))
    spatial_total = session.execute(
        text(
            "SELECT count(*) FROM sensor WHERE external_id = ANY(:ids) "
            "AND binding_rule IN (:rule, :junction_rule)"
        ).bindparams(bindparam("ids", type_=_IDS)),
        {"ids": external_ids, "rule": rule, "junction_rule": junction_rule},
    ).scalar_one()
    return Bound(explicit, int(spatial_total), junctions, unbound)


def _junction_binding(row: Any) -> JunctionBinding:
    """The report line of a sensor bound at a junction: how many pipes, which one, why."""
    size = "no diameter" if row.diameter_mm is None else f"{row.diameter_mm:g} mm"
    node = f" (node {row.node_eid})" if row.node_eid else ""
    note = (
        f"junction of {row.n} {row.kind}s{node}: bound to {row.asset_eid} (asset {row.asset_id}, "
        f"{size}; the largest diameter, then the lowest id)"
    )
    return JunctionBinding(row.external_id, int(row.asset_id), str(row.asset_eid), int(row.n), note)
