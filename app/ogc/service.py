"""The queries behind the OGC endpoints: features, one feature, collection extents.

SQLAlchemy Core with bound parameters throughout. A page is one statement; ``numberMatched``
costs at most one more, bounded, statement (see :func:`list_features`). Geometries leave
PostgreSQL as GeoJSON text (``ST_AsGeoJSON``), so Python never decodes WKB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, Select, and_, case, func, literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from app.assets.catalog import ASSET, ASSET_SOURCE, COLLECTIONS, Collection
from app.ogc.params import ItemsQuery, YearRange
from app.params import bbox_condition
from app.taxonomy.assets import KINDS, AssetKind

#: Up to this many matches ``numberMatched`` is an exact count; past it, see list_features.
EXACT_COUNT_LIMIT = 100_000

#: Below this many rows in ``asset`` (planner statistics) extents are exact per collection.
EXACT_EXTENT_LIMIT = 200_000


@dataclass(frozen=True)
class Feature:
    id: int
    geometry: dict[str, Any]
    properties: dict[str, Any]


@dataclass(frozen=True)
class FeaturePage:
    features: list[Feature]
    has_more: bool
    """Whether features follow this page (known from fetching one row past the limit)."""
    matched: int | None = None
    """Exact number of matching features, when it was counted."""
    matched_estimate: int | None = None
    """The planner's estimate, given instead of ``matched`` for very large results."""


@dataclass(frozen=True)
class Extent:
    bbox: tuple[float, float, float, float] | None
    """CRS84 minx, miny, maxx, maxy; None when the collection is empty."""
    years: tuple[int | None, int | None] | None = None
    """First and last year of the temporal property; None when the collection has none."""
    exact: bool = True
    """False when ``bbox`` is the estimated extent of the whole table (large tables)."""
    notes: tuple[str, ...] = ()


# -- features ---------------------------------------------------------------------------------


def list_features(
    *,
    session: Session,
    collection: Collection,
    query: ItemsQuery,
    exact_count_limit: int | None = None,
) -> FeaturePage:
    """One page of ``collection``'s features matching ``query``, and how many match in all.

    Notes
    -----
    The page query fetches ``limit + 1`` rows: the extra row says whether a next page exists
    without trusting a count. ``numberMatched`` then costs nothing when the page is the last one
    (it is ``offset + returned``); otherwise one statement counts the matches, stopping at
    ``exact_count_limit + 1`` rows (default :data:`EXACT_COUNT_LIMIT`) so a huge result never
    costs a full count (pygeoapi #1969).
    Past that limit the count is replaced by the planner's row estimate (``EXPLAIN``), reported
    as ``matched_estimate`` rather than as a number clients would take as exact.
    """
    conditions = where(collection, query)
    stmt = (
        select(*_feature_columns(collection, query.properties))
        .select_from(collection.source.from_)
        .where(*conditions)
        .order_by(*_order(query), collection.source.id)
        .limit(query.limit + 1)
        .offset(query.offset)
    )
    rows = session.execute(stmt).all()
    has_more = len(rows) > query.limit
    features = [_feature(row, collection, query.properties) for row in rows[: query.limit]]
    if not has_more and (features or query.offset == 0):
        return FeaturePage(features, has_more, matched=query.offset + len(features))
    limit = EXACT_COUNT_LIMIT if exact_count_limit is None else exact_count_limit
    matched, estimate = _count(session, collection, conditions, limit)
    return FeaturePage(features, has_more, matched=matched, matched_estimate=estimate)


def get_feature(*, session: Session, collection: Collection, feature_id: int) -> Feature | None:
    """The feature ``feature_id`` if it exists and belongs to ``collection``."""
    stmt = (
        select(*_feature_columns(collection, None))
        .select_from(collection.source.from_)
        .where(collection.source.id == feature_id, *collection.conditions())
    )
    row = session.execute(stmt).one_or_none()
    return None if row is None else _feature(row, collection, None)


def where(collection: Collection, query: ItemsQuery) -> list[ColumnElement[bool]]:
    """The WHERE of ``query`` on ``collection`` (AND-ed), for a page and for its count alike."""
    conditions = collection.conditions()
    if query.bbox is not None:
        conditions.append(bbox_condition(collection.source.geom, query.bbox))
    if query.years is not None and collection.temporal is not None:
        conditions.append(_years_condition(collection, query.years))
    if query.where is not None:
        conditions.append(query.where)
    return conditions


def _years_condition(collection: Collection, years: YearRange) -> ColumnElement[bool]:
    assert collection.temporal is not None
    year = collection.properties[collection.temporal].expression()
    parts: list[ColumnElement[bool]] = [year.is_not(None)]
    if years.start is not None:
        parts.append(year >= years.start)
    if years.end is not None:
        parts.append(year <= years.end)
    return and_(*parts)


def _order(query: ItemsQuery) -> list[ColumnElement[Any]]:
    # NULLS LAST both ways: features without the value go to the end whatever the direction.
    return [
        (k.prop.expression().desc() if k.descending else k.prop.expression().asc()).nulls_last()
        for k in query.sortby
    ]


def _feature_columns(
    collection: Collection, names: tuple[str, ...] | None
) -> list[ColumnElement[Any]]:
    source = collection.source
    columns: list[ColumnElement[Any]] = [
        source.id.label("id"),
        func.ST_AsGeoJSON(source.geom).label("geometry"),
    ]
    wanted = (
        list(collection.column_properties)
        if names is None
        else [collection.properties[n] for n in names]
    )
    columns.extend(p.expression().label(p.name) for p in wanted if p.column is not None)
    if source.attributes is not None and (
        names is None or any(collection.properties[n].column is None for n in names)
    ):
        columns.append(source.attributes.label("attributes"))
    return columns


def _feature(row: Row[Any], collection: Collection, names: tuple[str, ...] | None) -> Feature:
    """Assemble a feature: columns, then the taxonomy attributes, then any other JSONB keys.

    Every taxonomy attribute of the collection is present (null when the asset lacks it) so
    that all features of a collection share one schema, which clients such as GDAL expect.
    """
    mapping = row._mapping
    attributes: dict[str, Any] = mapping.get("attributes") or {}
    properties: dict[str, Any] = {}
    if names is None:
        for prop in collection.column_properties:
            properties[prop.name] = mapping[prop.name]
        for name in collection.attribute_names:
            properties[name] = attributes.get(name)
        for key, value in attributes.items():
            properties.setdefault(key, value)
    else:
        for name in names:
            prop = collection.properties[name]
            properties[name] = mapping[name] if prop.column else attributes.get(name)
    return Feature(int(mapping["id"]), orjson.loads(mapping["geometry"]), properties)


# -- numberMatched ----------------------------------------------------------------------------


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <statement>`` keeping the statement's bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def _count(
    session: Session, collection: Collection, conditions: list[ColumnElement[bool]], limit: int
) -> tuple[int | None, int | None]:
    """(exact count, None) up to ``limit`` matches, else (None, planner estimate > limit)."""
    source = collection.source
    capped = select(literal(1)).select_from(source.from_).where(*conditions).limit(limit + 1)
    count = session.execute(select(func.count()).select_from(capped.subquery())).scalar_one()
    if count <= limit:
        return int(count), None
    everything = select(source.id).select_from(source.from_).where(*conditions)
    plan = session.execute(_Explain(everything)).scalar_one()
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    # The estimate can be far off; at least limit + 1 rows are known to match.
    return None, max(estimate, limit + 1)


# -- extents ----------------------------------------------------------------------------------


def collection_extents(
    *,
    session: Session,
    collections: Sequence[Collection],
    exact_limit: int = EXACT_EXTENT_LIMIT,
) -> dict[str, Extent]:
    """Spatial and temporal extent of each collection: one query per source table.

    Notes
    -----
    While a source table is small (planner statistics below ``exact_limit`` rows) its
    collections get exact extents: for asset collections one ``ST_Extent`` / ``min`` / ``max``
    grouped by kind, for any other one ``ST_Extent`` over its :meth:`Collection.conditions`.
    On a larger table that scan would run on every ``/collections`` request, so each collection
    gets ``ST_EstimatedExtent`` of the whole table instead: a cheap box from the statistics
    that contains every feature but is not tight per collection, and the temporal extent is
    left open.
    """
    by_table: dict[str, list[Collection]] = {}
    for collection in collections:
        by_table.setdefault(collection.source.table, []).append(collection)
    extents: dict[str, Extent] = {}
    for table, colls in by_table.items():
        rows_estimate = session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        ).scalar()
        if rows_estimate is not None and rows_estimate >= exact_limit:
            extents.update(_estimated_extents(session, colls))
            continue
        by_kind = [c for c in colls if c.kinds]
        if by_kind:
            extents.update(_exact_extents(session, by_kind))
        for collection in colls:
            if not collection.kinds:
                extents[collection.id] = _exact_extent(session, collection)
    return extents


def _exact_extent(session: Session, collection: Collection) -> Extent:
    source = collection.source
    extent = func.ST_Extent(source.geom)
    row = session.execute(
        select(
            func.ST_XMin(extent), func.ST_YMin(extent), func.ST_XMax(extent), func.ST_YMax(extent)
        )
        .select_from(source.from_)
        .where(*collection.conditions())
    ).one()
    bbox = None if row[0] is None else (row[0], row[1], row[2], row[3])
    return Extent(bbox, (None, None) if collection.temporal is not None else None)


def _exact_extents(session: Session, collections: Sequence[Collection]) -> dict[str, Extent]:
    """Extents of asset collections (by kind), in one grouped query."""
    kinds = sorted({k for c in collections for k in c.kinds})
    dated = [KINDS[k] for k in kinds if KINDS[k].temporal is not None]
    year_sql: ColumnElement[Any] = _year_by_kind(dated) if dated else literal(None)
    extent = func.ST_Extent(ASSET.c.geom)
    stmt = (
        select(
            ASSET.c.kind,
            func.ST_XMin(extent),
            func.ST_YMin(extent),
            func.ST_XMax(extent),
            func.ST_YMax(extent),
            func.min(year_sql),
            func.max(year_sql),
        )
        .where(ASSET.c.kind.in_(kinds))
        .group_by(ASSET.c.kind)
    )
    per_kind = {row[0]: row[1:] for row in session.execute(stmt).all()}
    extents: dict[str, Extent] = {}
    for collection in collections:
        found = [per_kind[k] for k in collection.kinds if k in per_kind]
        bbox = None
        years: tuple[int | None, int | None] | None = None
        if found:
            bbox = (
                min(r[0] for r in found),
                min(r[1] for r in found),
                max(r[2] for r in found),
                max(r[3] for r in found),
            )
        if collection.temporal is not None:
            firsts = [int(r[4]) for r in found if r[4] is not None]
            lasts = [int(r[5]) for r in found if r[5] is not None]
            years = (min(firsts) if firsts else None, max(lasts) if lasts else None)
        extents[collection.id] = Extent(bbox, years)
    return extents


def _year_by_kind(kinds: Sequence[AssetKind]) -> ColumnElement[Any]:
    """The year of each row, read from its kind's temporal attribute (kinds differ)."""
    return case(
        *(
            (
                ASSET.c.kind == k.id,
                COLLECTIONS[k.id].properties[str(k.temporal)].expression(),
            )
            for k in kinds
        ),
        else_=None,
    )


def _estimated_extents(session: Session, collections: Sequence[Collection]) -> dict[str, Extent]:
    """The table's estimated extent for each of ``collections`` (all of one source table)."""
    table = collections[0].source.table
    column = str(getattr(collections[0].source.geom, "name", "geom"))
    estimated = func.ST_EstimatedExtent(table, column)
    try:
        # A savepoint: without statistics some PostGIS versions raise instead of returning NULL,
        # and that must not abort the request's transaction.
        with session.begin_nested():
            box = session.execute(
                select(
                    func.ST_XMin(estimated),
                    func.ST_YMin(estimated),
                    func.ST_XMax(estimated),
                    func.ST_YMax(estimated),
                )
            ).one()
    except DBAPIError:
        box = None
    bbox = None if box is None or box[0] is None else (box[0], box[1], box[2], box[3])
    what = "all assets" if table == ASSET_SOURCE.table else f"all of {table}"
    note = f"bbox: estimated extent of {what} (large table), not of this collection alone"
    return {
        c.id: Extent(
            bbox,
            (None, None) if c.temporal is not None else None,
            exact=False,
            notes=(note,),
        )
        for c in collections
    }
