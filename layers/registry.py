"""The layers cityrisk serves: one per asset kind and ``exposure``, the live ones, the risk ones.

- **assets**: one layer per kind of the taxonomy (from its OGC collection: the same properties
  and types), then ``exposure`` (every exposure kind);
- **live**: ``alarms`` (open alarms coloured by warning level), ``latest_readings`` and
  ``impact_zones`` (the stored zones of incidents under way, coloured by severity);
- **risk**: scored assets and H3 risk hexagons per scored plate and composite. Both read
  ``risk_score`` (written by :mod:`app.risk.refresh`): the asset layers join its
  ``scope = 'asset'`` rows to the asset geometry, the hexagon layers take the ``scope = 'cell'``
  rows with their own ``geom``. Every risk layer names ``risk_score`` and ``asset`` in
  ``tables``, so a refresh, full or incremental (a write to ``risk_score``, which bumps its data
  version), or an asset edit makes the next tile fresh. They are coloured by the four-colour
  **risk class** (1 red 重大, 2 orange 较大, 3 yellow 一般, 4 blue 低) — a class of a place, not
  an alarm's warning level, though it shares the colours.

The framework (:class:`~layers.base.Layer`, :class:`~layers.base.Registry`) is in
:mod:`layers.base`; :func:`default_registry` validates every layer at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, Float, Select, Table, and_, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from app.alarms.models import Alarm
from app.assets.catalog import COLLECTIONS, EXPOSURE, Collection, Property
from app.assets.models import Asset
from app.events.models import SuspectedEvent
from app.impact.catalog import IMPACT_ZONES
from app.risk.models import RiskScore
from app.sensors.models import LatestReading, Sensor
from app.taxonomy.alarms import ENDED_STATES
from app.taxonomy.assets import KINDS, PLATE_TITLES
from app.taxonomy.risk import COMPOSITE, RISK_CLASSES, SCORED_PLATES
from layers.base import (
    LIVE,
    LIVE_PLATE,
    STATIC,
    Aggregate,
    CachePolicy,
    Field,
    FieldType,
    Layer,
    Registry,
    Source,
    ZoomRules,
)
from layers.styles import (
    FOUR_COLOURS,
    PLATE_COLOURS,
    ColourClass,
    GeometryType,
    Style,
    warning_level_classes,
)

ASSET: Table = Asset.__table__  # type: ignore[assignment]
ALARM: Table = Alarm.__table__  # type: ignore[assignment]
SENSOR: Table = Sensor.__table__  # type: ignore[assignment]
LATEST_READING: Table = LatestReading.__table__  # type: ignore[assignment]
RISK_SCORE: Table = RiskScore.__table__  # type: ignore[assignment]
SUSPECTED_EVENT: Table = SuspectedEvent.__table__  # type: ignore[assignment]


# -- asset layers ------------------------------------------------------------------------------

_FIELD_TYPES: dict[str, FieldType] = {
    "integer": "Number",
    "number": "Number",
    "boolean": "Boolean",
    "string": "String",
    "date": "String",
}

#: Asset columns every asset layer carries (the rest of the OGC properties stay off tiles to keep
#: them small: a client clicks through to ``/ogc/collections/{id}/items`` for the full record).
_ASSET_COLUMNS = ("name", "kind")


def _mvt_value(prop: Property) -> ColumnElement[Any]:
    """``prop`` typed as ST_AsMVT encodes it: numeric would be written as a string."""
    expr = prop.expression()
    if prop.type == "integer":
        return cast(expr, BigInteger)
    if prop.type == "number":
        return cast(expr, Float)
    return expr


def _asset_source(collection: Collection) -> Source:
    props = [p for p in collection.properties.values() if p.column in _ASSET_COLUMNS] + [
        p for p in collection.properties.values() if p.column is None
    ]

    def source() -> Select[Any]:
        # The collection's own conditions: the layer shows what its OGC items list.
        return (
            select(
                ASSET.c.id,
                *(_mvt_value(p).label(p.name) for p in props),
                ASSET.c.geom,
            )
            .select_from(collection.source.from_)
            .where(*collection.conditions())
        )

    return source


def _asset_fields(collection: Collection) -> tuple[Field, ...]:
    props = [p for p in collection.properties.values() if p.column in _ASSET_COLUMNS] + [
        p for p in collection.properties.values() if p.column is None
    ]
    return (
        Field("id", "Number", "asset id (GET /assets/{id})"),
        *(Field(p.name, _FIELD_TYPES[p.type], p.description or p.title) for p in props),
    )


def _geometry_type(collection: Collection) -> GeometryType:
    if len(collection.geometries) == 1:
        (only,) = collection.geometries
        return only
    return "mixed"


def asset_layers() -> list[Layer]:
    """One layer per asset kind of the taxonomy, then ``exposure`` (every exposure kind).

    Lines and polygons are simplified with zoom; every asset layer ships hexagons below z13,
    where a city's pipes would otherwise fill a tile with raw geometry.
    """
    out = []
    for collection_id, collection in COLLECTIONS.items():
        plate = KINDS[collection_id].plate if collection_id in KINDS else EXPOSURE
        out.append(
            Layer(
                id=collection_id,
                title=collection.title,
                plate=plate,
                data="features",
                source=_asset_source(collection),
                properties=_asset_fields(collection),
                style=Style(_geometry_type(collection), PLATE_COLOURS[plate]),
                zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=13),
                tables=frozenset({"asset"}),
                cache=STATIC,
                description=collection.description,
            )
        )
    return out


# -- live layers -------------------------------------------------------------------------------


def _alarms_source() -> Select[Any]:
    return select(
        ALARM.c.id,
        cast(ALARM.c.level, BigInteger).label("level"),
        ALARM.c.state,
        ALARM.c.rule_code,
        ALARM.c.title,
        ALARM.c.asset_id,
        ALARM.c.sensor_id,
        func.to_char(
            func.timezone("UTC", ALARM.c.opened_at), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ).label("opened_at"),
        func.to_char(
            func.timezone("UTC", ALARM.c.opened_ts), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ).label("opened_ts"),
        cast(func.coalesce(ALARM.c.peak_level, ALARM.c.level), BigInteger).label("peak_level"),
        ALARM.c.cleared_at.is_not(None).label("cleared"),
        ALARM.c.geom,
    ).where(and_(ALARM.c.state.not_in(ENDED_STATES), ALARM.c.geom.is_not(None)))


def alarms_layer() -> Layer:
    """Open alarms coloured by warning level (I red, II orange, III yellow, IV blue)."""
    return Layer(
        id="alarms",
        title="Open alarms",
        plate=LIVE_PLATE,
        data="live",
        source=_alarms_source,
        properties=(
            Field("id", "Number", "alarm id (GET /alarms/{id})"),
            Field("level", "Number", "warning level: 1 = I (red) … 4 = IV (blue)"),
            Field("state", "String", "lifecycle state"),
            Field("rule_code", "String", "the rule that raised it"),
            Field("title", "String"),
            Field("asset_id", "Number"),
            Field("sensor_id", "Number"),
            Field("opened_at", "String", "recorded, RFC 3339, UTC"),
            Field("opened_ts", "String", "data time of the reading that raised it, RFC 3339"),
            Field("peak_level", "Number", "the most severe level it reached"),
            Field("cleared", "Boolean", "readings back to normal; shown until closed"),
        ),
        style=Style(
            "point", PLATE_COLOURS[LIVE_PLATE], by="level", classes=warning_level_classes()
        ),
        zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=11),
        tables=frozenset({"alarm"}),
        cache=LIVE,
        description="Alarms not yet closed, at the sensor or asset that raised them: an alarm "
        "whose readings are back to normal (cleared) stays until an analyst closes it.",
        # The worst (lowest-numbered) level in a hexagon colours it.
        aggregates=(Aggregate("count", "count"), Aggregate("level", "min", "level")),
    )


def _latest_readings_source() -> Select[Any]:
    return (
        select(
            SENSOR.c.id,
            SENSOR.c.external_id,
            SENSOR.c.kind,
            SENSOR.c.unit,
            cast(LATEST_READING.c.value, Float).label("value"),
            cast(LATEST_READING.c.quality, BigInteger).label("quality"),
            func.to_char(
                func.timezone("UTC", LATEST_READING.c.ts), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"')
            ).label("ts"),
            cast(SENSOR.c.asset_id, BigInteger).label("asset_id"),
            SENSOR.c.geom,
        )
        .join(LATEST_READING, LATEST_READING.c.sensor_id == SENSOR.c.id)
        .where(SENSOR.c.geom.is_not(None))
    )


def latest_readings_layer() -> Layer:
    """Each located sensor with its newest reading.

    ``latest_reading`` is upserted by every ingest batch, too hot for a version trigger; the
    layer is instead cached in-process for two seconds and served with ``max-age=2``.
    """
    return Layer(
        id="latest_readings",
        title="Latest sensor readings",
        plate=LIVE_PLATE,
        data="live",
        source=_latest_readings_source,
        properties=(
            Field("id", "Number", "sensor id"),
            Field("external_id", "String"),
            Field("kind", "String", "indicator, e.g. methane_ppm"),
            Field("unit", "String"),
            Field("value", "Number"),
            Field("quality", "Number"),
            Field("ts", "String", "RFC 3339, UTC"),
            Field("asset_id", "Number", "the asset the sensor watches"),
        ),
        style=Style("point", PLATE_COLOURS[LIVE_PLATE]),
        zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=12),
        tables=frozenset({"sensor", "latest_reading"}),
        cache=CachePolicy(max_age_s=2, server_ttl_s=2.0),
        description="Live: where each sensor is and what it last said.",
    )


def severity_classes() -> tuple[ColourClass, ...]:
    """Zone severities 1-4 as colour classes on ``severity`` (1 red … 4 blue)."""
    names = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}
    return tuple(
        ColourClass(s, FOUR_COLOURS[s], f"Severity {s} ({names[s]})") for s in sorted(names)
    )


def _zone_source() -> Select[Any]:
    collection = IMPACT_ZONES
    source = collection.source
    status = collection.properties["status"].expression()
    return (
        select(
            cast(source.id, BigInteger).label("id"),
            *(_mvt_value(collection.properties[n]).label(n) for n in _ZONE_PROPERTIES),
            source.geom,
        )
        .select_from(source.from_)
        # The collection's conditions, and only incidents under way: closed ones stay
        # listed in the OGC collection (status = 'closed') but leave the map.
        .where(*collection.conditions(), status != "closed")
    )


#: Properties of the zones on tiles (the OGC items carry them all).
_ZONE_PROPERTIES = (
    "incident_id",
    "scenario",
    "model",
    "label",
    "threshold",
    "unit",
    "radius_m",
    "severity",
    "status",
    "data_at",
)


def impact_zones_layer() -> Layer:
    """The stored zones of incidents not closed, coloured by severity (1 red … 4 blue).

    They read ``incident_zone`` and ``incident``, both versioned (migration 0013): a new
    incident, a recompute or a status change makes the next tile fresh.
    """
    props = IMPACT_ZONES.properties
    types: dict[str, FieldType] = {"integer": "Number", "number": "Number", "string": "String"}
    return Layer(
        id=IMPACT_ZONES.id,
        title=IMPACT_ZONES.title,
        plate=LIVE_PLATE,
        data="live",
        source=_zone_source,
        properties=(
            Field("id", "Number", "zone id (GET /ogc/collections/impact_zones/items/{id})"),
            *(
                Field(n, types[props[n].type], props[n].description or props[n].title)
                for n in _ZONE_PROPERTIES
            ),
        ),
        style=Style("polygon", FOUR_COLOURS[4], by="severity", classes=severity_classes()),
        # Zones are few and large: raw polygons at every zoom, no hexagons.
        zoom=ZoomRules(minzoom=0, maxzoom=22),
        tables=frozenset({"incident_zone", "incident"}),
        cache=LIVE,
        description="Zones of the incidents under way (open or contained), by severity.",
    )


def _utc(column: Any) -> ColumnElement[Any]:
    return func.to_char(func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"'))


def _events_source() -> Select[Any]:
    e = SUSPECTED_EVENT.c
    return select(
        e.id,
        e.family,
        cast(e.n_alarms, BigInteger).label("n_alarms"),
        cast(e.n_sensors, BigInteger).label("n_sensors"),
        cast(e.peak_level, BigInteger).label("level"),
        e.top_asset_id,
        _utc(e.first_ts).label("first_ts"),
        _utc(e.last_ts).label("last_ts"),
        e.area.label("geom"),
    ).where(e.state == "open")


def suspected_events_layer() -> Layer:
    """Open suspected events (alarms grouped in space and data time) as the areas to look
    in, coloured by their worst alarm's level (I red … IV blue)."""
    return Layer(
        id="suspected_events",
        title="Suspected events",
        plate=LIVE_PLATE,
        data="live",
        source=_events_source,
        properties=(
            Field("id", "Number", "event id (GET /events/{id})"),
            Field("family", "String", "network/indicator family, e.g. water/hydraulic"),
            Field("n_alarms", "Number", "member alarms"),
            Field("n_sensors", "Number", "distinct sensors that alarmed"),
            Field("level", "Number", "worst member level: 1 = I (red) … 4 = IV (blue)"),
            Field("top_asset_id", "Number", "the best candidate asset (pipe)"),
            Field("first_ts", "String", "first alarm's onset, data time, RFC 3339 UTC"),
            Field("last_ts", "String", "latest member reading, data time, RFC 3339 UTC"),
        ),
        style=Style(
            "polygon", PLATE_COLOURS[LIVE_PLATE], by="level", classes=warning_level_classes()
        ),
        # Events are few and small: raw polygons at every zoom, no hexagons.
        zoom=ZoomRules(minzoom=0, maxzoom=22),
        tables=frozenset({"suspected_event"}),
        cache=LIVE,
        description="Open suspected events: where several nearby sensors alarmed together.",
    )


def live_layers() -> list[Layer]:
    return [alarms_layer(), latest_readings_layer(), impact_zones_layer(), suspected_events_layer()]


# -- risk layers -------------------------------------------------------------------------------


#: What every risk layer reads: a risk refresh or an asset edit bumps one of their versions.
RISK_TABLES = frozenset({"risk_score", "asset"})

#: Colour of a feature whose class is unknown (never expected: risk_class is 1..4 by a CHECK).
_NO_CLASS = "#888888"

#: Properties of hexagons at low zoom: how many features, the worst class, the highest norm.
_AGGREGATES = (
    Aggregate("count", "count"),
    # min of a class is the worst one (1 = red), which is what colours a hexagon.
    Aggregate("risk_class", "min", "risk_class"),
    Aggregate("norm", "max", "norm"),
)


def risk_class_classes() -> tuple[ColourClass, ...]:
    """Classes 1-4 as colour classes on ``risk_class``, labelled with their Chinese names."""
    return tuple(
        ColourClass(
            cls, FOUR_COLOURS[cls], f"{RISK_CLASSES[cls][1]} {RISK_CLASSES[cls][2]} ({colour})"
        )
        for cls, (colour, _, _) in sorted(RISK_CLASSES.items())
    )


def _plate_title(plate: str) -> str:
    return "all plates" if plate == COMPOSITE else PLATE_TITLES[plate]


def _int(column: Any) -> ColumnElement[Any]:
    # ST_AsMVT writes smallint fine, but BigInteger keeps every layer's integers one MVT type.
    return cast(column, BigInteger)


def _risk_asset_source(plate: str) -> Source:
    def source() -> Select[Any]:
        where = RISK_SCORE.c.scope == "asset"
        if plate != COMPOSITE:
            where = and_(where, RISK_SCORE.c.plate == plate)
        # Join on the asset so `geom` is asset.geom itself: the tile prefilter reaches its GiST
        # index, and an asset that moved is drawn where it is now.
        return (
            select(
                _int(ASSET.c.id).label("id"),
                _int(RISK_SCORE.c.risk_class).label("risk_class"),
                cast(RISK_SCORE.c.norm, Float).label("norm"),
                cast(RISK_SCORE.c.score, Float).label("score"),
                RISK_SCORE.c.method,
                RISK_SCORE.c.plate,
                ASSET.c.kind,
                ASSET.c.name,
                ASSET.c.geom,
            )
            .select_from(RISK_SCORE)
            .join(ASSET, ASSET.c.id == RISK_SCORE.c.asset_id)
            .where(where)
        )

    return source


_RISK_ASSET_FIELDS = (
    Field("id", "Number", "asset id (GET /assets/{id}/risk explains the score)"),
    Field("risk_class", "Number", "risk class: 1 重大 red … 4 低 blue"),
    Field("norm", "Number", "band-aligned score in [0, 1], comparable across methods"),
    Field("score", "Number", "the method's score (L × S, or LEC's D)"),
    Field("method", "String", "matrix (5 × 5 L × S) or lec"),
    Field("plate", "String"),
    Field("kind", "String", "asset kind"),
    Field("name", "String"),
)


def _cell_source(plate: str) -> Source:
    def source() -> Select[Any]:
        return select(
            RISK_SCORE.c.cell_id,
            _int(RISK_SCORE.c.risk_class).label("risk_class"),
            cast(RISK_SCORE.c.norm, Float).label("norm"),
            _int(RISK_SCORE.c.components["assets"].astext.cast(BigInteger)).label("assets"),
            RISK_SCORE.c.components["mean_norm"].astext.cast(Float).label("mean_norm"),
            RISK_SCORE.c.plate,
            RISK_SCORE.c.geom,
        ).where(and_(RISK_SCORE.c.scope == "cell", RISK_SCORE.c.plate == plate))

    return source


_CELL_FIELDS = (
    Field("cell_id", "String", "H3 cell (GET /risk/cells/{cell}/assets drills down)"),
    Field("risk_class", "Number", "worst class of the cell's assets: 1 重大 red … 4 低 blue"),
    Field("norm", "Number", "highest asset norm in the cell"),
    Field("assets", "Number", "scored assets in the cell"),
    Field("mean_norm", "Number", "mean asset norm in the cell"),
    Field("plate", "String"),
)


def _risk_style(geometry: Any) -> Style:
    return Style(geometry, _NO_CLASS, by="risk_class", classes=risk_class_classes())


def asset_risk_layer(plate: str) -> Layer:
    """Scored assets of ``plate`` (or every plate: ``composite``) coloured by risk class."""
    return Layer(
        id=f"risk_{plate}",
        title=f"Risk of assets: {_plate_title(plate)}",
        plate=plate,
        data="features",
        source=_risk_asset_source(plate),
        properties=_RISK_ASSET_FIELDS,
        style=_risk_style("mixed"),
        # Like the asset layers: a city's pipes are hexagons (worst class) below z13.
        zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=13),
        tables=RISK_TABLES,
        cache=STATIC,
        description=(
            f"Assets ({_plate_title(plate)}) in their four-colour risk class; "
            "hexagons with the worst class below z13."
        ),
        aggregates=_AGGREGATES,
    )


def cell_risk_layer(plate: str) -> Layer:
    """H3 risk hexagons of ``plate`` (or ``composite``), coloured by their worst class."""
    return Layer(
        id=f"risk_cells_{plate}",
        title=f"Risk hexagons: {_plate_title(plate)}",
        plate=plate,
        data="aggregate",
        source=_cell_source(plate),
        properties=_CELL_FIELDS,
        style=_risk_style("polygon"),
        # H3 res-8 cells (≈ 0.7 km²) are under a pixel below z9: there they are grouped into
        # screen hexagons again; no simplification, or neighbouring cells would open gaps.
        zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=9, simplify_px=0.0),
        tables=RISK_TABLES,
        cache=STATIC,
        description=f"H3 cells ({_plate_title(plate)}) in the worst class of their assets.",
        aggregates=_AGGREGATES,
    )


def risk_layers() -> list[Layer]:
    """Asset and hexagon risk layers per scored plate, then the composite ones."""
    plates = (*SCORED_PLATES, COMPOSITE)
    return [asset_risk_layer(p) for p in plates] + [cell_risk_layer(p) for p in plates]


# -- the registry ------------------------------------------------------------------------------

#: Functions adding layers to :func:`default_registry`, in order: a new family of layers is a
#: function returning ``list[Layer]`` appended here.
LAYER_BUILDERS: list[Callable[[], list[Layer]]] = [asset_layers, live_layers, risk_layers]


def default_registry() -> Registry:
    """Every layer cityrisk serves, validated (``ValueError`` on the first bad one)."""
    return Registry(layer for build in LAYER_BUILDERS for layer in build())


__all__ = [
    "LAYER_BUILDERS",
    "RISK_TABLES",
    "alarms_layer",
    "asset_layers",
    "asset_risk_layer",
    "cell_risk_layer",
    "default_registry",
    "impact_zones_layer",
    "latest_readings_layer",
    "live_layers",
    "risk_class_classes",
    "risk_layers",
    "severity_classes",
    "suspected_events_layer",
]
