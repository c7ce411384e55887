"""Risk refresh: set-based SQL for the inputs and the aggregates, numpy for the maths.

A refresh has four stages, a few statements each (their SQL is :mod:`app.risk.sql`), and writes
every asset once:

1. **inputs**: one ``SELECT`` reads each scored asset's representative point, attributes and
   alarms (and, for a rescore, the context stored on its ``risk_score`` row);
2. **context** (geometry-derived; skipped when the stored one is reused): the impact radius
   (:func:`gis.scoring.impact_radius_m`) and the H3 cell of the point (Python ``h3``) go into a
   temporary stage with each asset's **local planar frame** (:mod:`gis.frames`: metres east /
   north of its point, scaled by the WGS84 radii of curvature there: an affine map, so a
   population cell that is a lon/lat rectangle stays a rectangle) and its radius-expanded box
   under a GiST index; the (zone, population cell) pairs go into a second temporary table,
   those of points and straight segments across a cell edge come back by binary ``COPY`` to be
   clipped in numpy (:mod:`gis.zones`); one ``SELECT`` then joins the few big things (sites,
   population cells, hazard zones, admin areas) on the outer side to the stage's index:
   identified sites inside the impact zone, area-weighted population, flood and landslide
   overlays, admin areas of the point;
3. **score**: :func:`gis.scoring.score` computes every factor, level and class vectorised; one
   binary ``COPY`` (:mod:`app.db`'s codec) writes the asset rows with their context and a short
   array of score inputs;
4. **aggregate**: one ``INSERT … SELECT … GROUP BY GROUPING SETS`` per scope writes the H3
   cell rows and the admin-area rows, per plate and composite.

The explanation of a score (``GET /assets/{id}/risk``, :mod:`app.risk.explain`) is rebuilt from
the stored inputs and context by the same model code: building and storing 1.4 KB of JSON per
asset was most of a full refresh's write.

A full refresh replaces everything inside the caller's transaction (readers see the old
scores until it commits). An incremental refresh takes asset ids (or alarm ids, mapped to
their assets) and rewrites only those assets' rows and the cells and areas they are (or were)
in; an alarm does not move an asset, so by default it reuses the stored context.

Aggregates are exactly the same whichever way they were reached (full or incremental): sums of
norms are exact integer sums (order-independent) and ties for the worst asset go to the lower
asset id.

Services flush and never commit (``app/db.py``).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np
import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from app.db import (
    binary_copy_columns,
    binary_copy_payload,
    binary_rows,
    copy_into,
    copy_out,
    fixed_fields,
    int8_array_fields,
    text_fields,
)
from app.errors import InvalidInput
from app.risk.sql import (
    AREAS_ALL,
    AREAS_SOME,
    BIG,
    CELLS_ALL,
    CELLS_SOME,
    CONTEXT_SQL,
    GIN_CLEANUP_SQL,
    INPUTS_FRESH_SQL,
    INPUTS_SQL,
    PAIR_SQL,
    SCORE_COPY_SQL,
    SET_CONFIG_SQL,
    SETTINGS,
    SIMPLE_COPY_SQL,
    STAGE_COPY_SQL,
    STAGE_IN_SQL,
    STAGE_INDEX_SQL,
    STAGE_SQL,
)
from app.taxonomy.alarms import NOT_ANOMALIES, OPEN_STATES
from gis import scoring as model
from gis import zones
from gis.frames import metres_per_degree

DEFAULT_H3_RES = 8


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

    def copy_out(self, stage: str, copy_sql: str) -> bytes:
        """The whole output of a ``COPY … TO STDOUT``."""
        started = time.perf_counter()
        data = copy_out(self.session, copy_sql)
        self._add(stage, time.perf_counter() - started)
        return data

    def copy(self, stage: str, copy_sql: str, payload: bytes) -> None:
        """COPY a ready binary payload (built beforehand: Python time, not DB time)."""
        started = time.perf_counter()
        copy_into(self.session, copy_sql, payload)
        self._add(stage, time.perf_counter() - started)


@functools.lru_cache(maxsize=4096)
def _ids(joined: str) -> tuple[int, ...]:
    return tuple(sorted(int(x) for x in joined.split(","))) if joined else ()


def _id_list(joined: str | None) -> list[int]:
    """Area ids sent as ``array_to_string(ids, ',')``: loading 100 k ``bigint[]`` values
    took psycopg ~0.5 s, text a few ms (and there are only a few distinct lists)."""
    return list(_ids(joined or ""))


def floats(values: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
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
        radius_m=floats(r.radius_m for r in rows),
        radius_basis=[r.radius_basis for r in rows],
        population=floats(r.population for r in rows),
        site_persons=floats(r.site_persons for r in rows),
        sites=[r.sites or "{}" for r in rows],
        flood_rp_yr=floats(r.flood_rp_yr for r in rows),
        landslide=[r.landslide for r in rows],
    )


def _simple_shares(data: bytes, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Population of each stage row (by ``ord``) from its simple pairs (:data:`PAIR_SQL`)."""
    (ord_, people, area, xmin, ymin, xmax, ymax, ax, ay, bx, by, r, kx, ky) = binary_copy_columns(
        data, ["i4"] + ["f8"] * 13
    )
    x, y = zones.zone_rings((bx - ax) * kx, (by - ay) * ky, r, kx, ky)
    clipped = zones.clipped_areas(x, y, xmin - ax, ymin - ay, xmax - ax, ymax - ay)
    shares = np.bincount(ord_ - 1, weights=people * clipped / area, minlength=n)
    return np.asarray(shares, dtype=np.float64)


def _compute_context(timer: _Timer, rows: Sequence[Any], res: int) -> _Context:
    """Context of ``rows`` (from :data:`INPUTS_SQL`): radius, cell, then the spatial joins."""
    kind = np.array([r.kind for r in rows], dtype=object)
    pclass = np.array([r.pressure_class or "" for r in rows], dtype=object)
    radius, basis = model.impact_radius_m(
        kind, floats(r.p_mpa for r in rows), floats(r.d_mm for r in rows), pclass
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
    saved = _set(timer, SETTINGS)
    timer.run("context", text("DROP TABLE IF EXISTS risk_ctx_in, risk_ctx_stage, risk_ctx_pair"))
    timer.run("context", text(STAGE_IN_SQL))
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
    timer.copy("context", STAGE_COPY_SQL, payload)
    timer.run("context", text(STAGE_SQL))
    for ddl in STAGE_INDEX_SQL:
        timer.run("context", text(ddl))
    timer.run("context", PAIR_SQL)
    simple = timer.copy_out("context", SIMPLE_COPY_SQL)
    got = timer.run(
        "context",
        CONTEXT_SQL,
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
        population=floats(g.population for g in back) + population[at],
        site_persons=floats(g.site_persons for g in back),
        sites=[g.sites for g in back],
        flood_rp_yr=floats(g.flood_rp_yr for g in back),
        landslide=[g.landslide for g in back],
    )


def sites_count(sites_json: str) -> int:
    return 0 if sites_json in ("{}", "") else int(sum(orjson.loads(sites_json).values()))


def _model_inputs(rows: Sequence[Any], ctx: _Context, now_year: int) -> model.Inputs:
    years = floats(
        (float(r.year) if r.year and str(r.year).lstrip("-").isdigit() else None) for r in rows
    )
    kind = np.array([r.kind for r in rows], dtype=object)
    p_mpa = floats(r.p_mpa for r in rows)
    # A missing class on a gas asset is derived from its pressure (GB 50028 edges).
    stated = np.array([r.pressure_class or "" for r in rows], dtype=object)
    pclass = np.where(stated == "", model.pressure_class_of(p_mpa), stated).astype(object)
    return model.Inputs(
        kind=kind,
        plate=np.array([r.plate for r in rows], dtype=object),
        age_yr=np.where(np.isnan(years), np.nan, np.maximum(now_year - years, 0.0)),
        material=np.array([r.material or "" for r in rows], dtype=object),
        condition=np.array([r.condition or "" for r in rows], dtype=object),
        sufficiency=floats(r.sufficiency for r in rows),
        pressure_class=pclass,
        flood_rp_yr=ctx.flood_rp_yr,
        landslide=np.array([v or "" for v in ctx.landslide], dtype=object),
        alarm_level=np.array([r.alarm_level for r in rows], dtype=np.int64),
        recent_alarms=np.array([r.recent_alarms for r in rows], dtype=np.int64),
        radius_m=ctx.radius_m,
        population=ctx.population,
        site_persons=ctx.site_persons,
        sites=np.array([sites_count(s) for s in ctx.sites], dtype=np.int64),
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
        text_fields(["asset"] * n),
        fixed_fields(ids[order], ">i8"),
        text_fields(pick(ctx.cell_id)),
        text_fields(pick([r.plate for r in rows])),
        text_fields(s.method[order].tolist()),
        fixed_fields(np.where(is_lec, s.lec_l, s.l_level)[order].astype(np.float64), ">f8"),
        fixed_fields(
            np.where(is_lec, s.lec_e * s.lec_c, s.s_level)[order].astype(np.float64), ">f8"
        ),
        fixed_fields(s.score[order].astype(np.float64), ">f8"),
        fixed_fields(s.risk_class[order], ">i2"),
        fixed_fields(s.norm[order], ">f8"),
        fixed_fields(np.full(n, res), ">i2"),
        int8_array_fields(pick(ctx.area_ids)),
        fixed_fields(ctx.radius_m[order], ">f8"),
        text_fields(pick(ctx.radius_basis)),
        fixed_fields(ctx.population[order], ">f8"),
        fixed_fields(ctx.site_persons[order], ">f8"),
        text_fields(pick(ctx.sites), b"\x01"),
        fixed_fields(ctx.flood_rp_yr[order], ">f8"),
        text_fields(pick(ctx.landslide)),
        text_fields(pick(_stored_inputs(inputs)), b"\x01"),
    ]
    timer.copy("score", SCORE_COPY_SQL, binary_rows(columns))
    return n


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
            CELLS_SOME if restricted else CELLS_ALL,
            {"cells": ordered, "wkts": [_hexagon_wkt(c) for c in ordered], "res": res},
        )
        report.cells += int(result.rowcount or 0)
    if areas is None:
        result = timer.run("areas", AREAS_ALL)
        report.areas += int(result.rowcount or 0)
    elif areas:
        result = timer.run("areas", AREAS_SOME, {"areas": sorted(areas)})
        report.areas += int(result.rowcount or 0)


# -- entry points --------------------------------------------------------------------------
def _set(timer: _Timer, settings: Mapping[str, str]) -> dict[str, str]:
    """Set ``settings`` for the rest of the transaction; returns the previous values."""
    rows = timer.run(
        "settings",
        SET_CONFIG_SQL,
        {"names": list(settings), "values": list(settings.values())},
    ).all()
    return {r[0]: r[1] for r in rows}


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
    saved = _set(timer, SETTINGS)
    rows = timer.run(
        "inputs",
        INPUTS_FRESH_SQL if recontext else INPUTS_SQL,
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
    timer.run("score", GIN_CLEANUP_SQL)
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
    rows = timer.run("inputs", INPUTS_SQL, {"ids": ids, "recent_days": model.RECENT_DAYS}).all()
    stored_res = next((r.h3_res for r in rows if r.h3_res is not None), None)
    res = h3_res or stored_res or DEFAULT_H3_RES
    cells = {r.cell_id for r in rows if r.cell_id}
    areas = {a for r in rows for a in _id_list(r.area_ids)}
    ctx = _context(timer, rows, res, recontext, report)
    timer.run(
        "score",
        text("DELETE FROM risk_score WHERE scope = 'asset' AND asset_id = ANY(:ids)").bindparams(
            bindparam("ids", type_=BIG)
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
        ).bindparams(bindparam("ids", type_=BIG)),
        {"ids": sorted(set(alarm_ids))},
    ).all()
    return [int(r[0]) for r in rows]


def refresh_alarms(session: Session, alarm_ids: Iterable[int]) -> RefreshReport:
    """Incremental refresh after alarms changed (raised, levelled, closed)."""
    return refresh_assets(session, assets_of_alarms(session, alarm_ids))


def _alarm_weight(state: str) -> str:
    """How an alarm in ``state`` enters a score (as ``INPUTS_SQL`` reads it): open, past, none."""
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
