"""The map layers: what each one reads, how it is drawn, tiled and cached.

A :class:`Layer` is pure data plus a ``source``: a callable returning a SQLAlchemy Core
``Select`` with a ``geom`` column (EPSG:4326) and one column per property. :mod:`layers.tiles`
wraps any source into one MVT statement, so adding a layer is adding a :class:`Layer`; nothing
here touches a database. Every layer is checked once, when it is registered at start-up (as
pygeoapi's providers are not: their definition errors surface on the first request).

Extension point
---------------
The risk layers (source: the ``risk_score`` table) are added by the scoring code: write a
function returning ``list[Layer]`` and append it to :data:`LAYER_BUILDERS`. Give each layer
``tables=frozenset({"risk_score", ...})`` so that a risk refresh (a write to ``risk_score``,
which bumps its data version) makes the next tile fresh.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import BigInteger, Float, Select, Table, and_, cast, func, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from app.alarms.models import Alarm
from app.assets.models import Asset
from app.ogc.catalog import COLLECTIONS, EXPOSURE, Collection, Property
from app.sensors.models import LatestReading, Sensor
from app.taxonomy.alarms import ENDED_STATES
from app.taxonomy.assets import KINDS, PLATE_TITLES
from app.taxonomy.risk import COMPOSITE
from layers.styles import (
    PLATE_COLOURS,
    ColourClass,
    GeometryType,
    Style,
    warning_level_classes,
)

DataKind = Literal["features", "aggregate", "live"]
FieldType = Literal["Number", "String", "Boolean"]
AggregateFunc = Literal["count", "min", "max", "avg", "sum"]
Source = Callable[[], Select[Any]]

#: Zoom levels of WebMercatorQuad that tiles are served for.
MAX_ZOOM = 24

#: Plate of the live layers (alarms, readings), which belong to no asset plate.
LIVE_PLATE = "live"


_LAYER_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Circumference of the Web Mercator world (EPSG:3857 x range) [m].
WORLD_M = 2 * math.pi * 6378137.0

ASSET: Table = Asset.__table__  # type: ignore[assignment]
ALARM: Table = Alarm.__table__  # type: ignore[assignment]
SENSOR: Table = Sensor.__table__  # type: ignore[assignment]
LATEST_READING: Table = LatestReading.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Field:
    """One property of a layer's features, as TileJSON ``vector_layers[].fields`` lists it."""

    name: str
    type: FieldType
    description: str = ""


@dataclass(frozen=True)
class Aggregate:
    """One property of a hexagon at low zoom: ``func`` over the source column ``column``.

    ``count`` takes no column. ``min`` of a warning level or risk class is the *worst* one
    (1 = I, red), which is what a planner wants to see on a hexagon.
    """

    name: str
    func: AggregateFunc
    column: str | None = None

    def __post_init__(self) -> None:
        if (self.func == "count") != (self.column is None):
            raise ValueError(f"aggregate {self.name!r}: count takes no column, the others one")


@dataclass(frozen=True)
class ZoomRules:
    """Zooms a layer is served at, its simplification, and where it turns into hexagons.

    Parameters
    ----------
    minzoom, maxzoom : int, default 0 and 22
        Tiles outside ``[minzoom, maxzoom]`` are empty (``maxzoom`` is also TileJSON's
        ``maxzoom``: clients overzoom beyond it).
    aggregate_below : int or None, default None
        Below this zoom the layer ships hexagons (count and the layer's aggregates), never raw
        geometry; None: always raw features.
    hex_px : int, default 128
        Hexagon edge length in tile units (of the 4096 extent), so the hexagons look the same
        size at every zoom: 128 gives about 20 hexagons across a tile.
    simplify_px : float, default 1.0
        Default simplification tolerance in tile units (pixels of the 4096 grid), converted to
        metres at each zoom; ``0`` turns simplification off.
    simplify_m : tuple of (int, float), default ()
        Explicit tolerances ``(from_zoom, metres)``: from that zoom up (until the next entry),
        the tolerance is that many ground metres. Overrides ``simplify_px`` where given.

    Examples
    --------
    >>> rules = ZoomRules(aggregate_below=12, simplify_m=((10, 20.0), (14, 2.0)))
    >>> rules.aggregates_at(11), rules.aggregates_at(12)
    (True, False)
    >>> rules.tolerance_m(12), rules.tolerance_m(16)
    (20.0, 2.0)
    """

    minzoom: int = 0
    maxzoom: int = 22
    aggregate_below: int | None = None
    hex_px: int = 128
    simplify_px: float = 1.0
    simplify_m: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.minzoom <= self.maxzoom <= MAX_ZOOM:
            raise ValueError(
                f"zooms {self.minzoom}..{self.maxzoom} must satisfy 0 <= minzoom <= maxzoom "
                f"<= {MAX_ZOOM}"
            )
        if self.aggregate_below is not None and not (
            self.minzoom <= self.aggregate_below <= self.maxzoom + 1
        ):
            raise ValueError(
                f"aggregate_below {self.aggregate_below} must lie in "
                f"{self.minzoom}..{self.maxzoom + 1}"
            )
        if not 8 <= self.hex_px <= 2048:
            raise ValueError(f"hex_px {self.hex_px} must lie in 8..2048 tile units")
        if self.simplify_px < 0 or any(m < 0 for _, m in self.simplify_m):
            raise ValueError("simplification tolerances must be >= 0")
        zooms = [z for z, _ in self.simplify_m]
        if zooms != sorted(set(zooms)):
            raise ValueError(f"simplify_m zooms {zooms} must be strictly increasing")

    def aggregates_at(self, z: int) -> bool:
        """True when tiles at zoom ``z`` are hexagons rather than features."""
        return self.aggregate_below is not None and z < self.aggregate_below

    def serves(self, z: int) -> bool:
        """True when zoom ``z`` lies in ``[minzoom, maxzoom]``."""
        return self.minzoom <= z <= self.maxzoom

    def tolerance_m(self, z: int) -> float:
        """Simplification tolerance at zoom ``z`` [ground metres at the equator scale].

        The explicit ``simplify_m`` step for ``z`` if any, else ``simplify_px`` tile units.
        """
        chosen: float | None = None
        for from_zoom, metres in self.simplify_m:
            if z >= from_zoom:
                chosen = metres
        if chosen is not None:
            return chosen
        return self.simplify_px * tile_unit_m(z)


@dataclass(frozen=True)
class CachePolicy:
    """How long a layer's tiles may be reused.

    Parameters
    ----------
    max_age_s : int
        ``Cache-Control: max-age`` of a tile asked for without the data version in its URL
        (``0``: ``no-cache``, clients revalidate every time with the ETag). Tiles asked for with
        the current version (``?v=``, as the TileJSON ``tiles`` URL gives) are immutable.
    server_ttl_s : float or None, default None
        For layers that read a table without a data version (too hot to carry triggers, like
        ``latest_reading``): the in-process cache keeps their tiles this long; None: such a
        layer is not cached in-process at all. Layers whose tables all carry a data version are
        cached until a write bumps it, whatever this says.
    """

    max_age_s: int
    server_ttl_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_age_s < 0 or (self.server_ttl_s is not None and self.server_ttl_s <= 0):
            raise ValueError("max_age_s must be >= 0 and server_ttl_s > 0")


#: Static layers change only on imports or refreshes; live ones are revalidated every time.
STATIC = CachePolicy(max_age_s=300)
LIVE = CachePolicy(max_age_s=0)


@dataclass(frozen=True)
class Layer:
    """One map layer.

    Parameters
    ----------
    id : str
        ``[a-z][a-z0-9_]*``: it appears in URLs and as the MVT layer name.
    title : str
        Human title, shown in the layer control.
    plate : str
        One of the plates (:data:`app.taxonomy.assets.PLATE_TITLES`) or ``"live"``.
    data : {"features", "aggregate", "live"}
        Features (one per asset), an aggregate (scores per cell or area) or live state
        (open alarms, latest readings).
    source : callable returning Select
        The features: a ``geom`` column in EPSG:4326, plus exactly one column per property.
        The ``geom`` column should be a plain table column, so the tile prefilter
        ``geom && envelope`` reaches its GiST index.
    properties : tuple of Field
        The properties, in the source's column order.
    style : Style
    zoom : ZoomRules
    tables : frozenset of str
        Tables the source reads. A write to one of them bumps its data version (migration
        0007's triggers), which changes the layer's tiles' cache key and ETag.
    cache : CachePolicy
    description : str, default ""
    aggregates : tuple of Aggregate, default (count,)
        Properties of the hexagons below ``zoom.aggregate_below``.
    """

    id: str
    title: str
    plate: str
    data: DataKind
    source: Source = field(compare=False)
    properties: tuple[Field, ...]
    style: Style
    zoom: ZoomRules
    tables: frozenset[str]
    cache: CachePolicy
    description: str = ""
    aggregates: tuple[Aggregate, ...] = (Aggregate("count", "count"),)

    @property
    def is_live(self) -> bool:
        return self.data == "live"

    def aggregate_fields(self) -> tuple[Field, ...]:
        """The hexagon properties, typed for TileJSON (all numbers)."""
        return tuple(
            Field(a.name, "Number", f"{a.func} of {a.column or 'features'}")
            for a in self.aggregates
        )

    def validate(self) -> None:
        """Check the layer against itself; raise ``ValueError`` naming the first problem.

        Builds the source and compiles it for PostgreSQL, so a broken source fails at
        start-up, not on the first tile request.
        """
        if not _LAYER_ID.match(self.id):
            raise ValueError(f"layer id {self.id!r} must match {_LAYER_ID.pattern}")
        if self.plate not in PLATE_TITLES and self.plate not in (LIVE_PLATE, COMPOSITE):
            raise ValueError(f"layer {self.id!r}: unknown plate {self.plate!r}")
        if not self.tables:
            raise ValueError(f"layer {self.id!r} names no tables it reads")
        query = self.source()
        columns = [c.name for c in query.selected_columns]
        names = [f.name for f in self.properties]
        if "geom" not in columns:
            raise ValueError(f"layer {self.id!r}: its source has no `geom` column")
        if len(set(names)) != len(names) or "geom" in names:
            raise ValueError(f"layer {self.id!r}: property names repeat or use `geom`: {names}")
        if [c for c in columns if c != "geom"] != names:
            raise ValueError(
                f"layer {self.id!r}: source columns {columns} do not match its properties "
                f"{names} (same order, plus `geom`)"
            )
        if self.style.by is not None and self.style.by not in names:
            raise ValueError(f"layer {self.id!r}: style reads unknown property {self.style.by!r}")
        agg_names = [a.name for a in self.aggregates]
        if len(set(agg_names)) != len(agg_names) or "geom" in agg_names:
            raise ValueError(f"layer {self.id!r}: aggregate names repeat or use `geom`")
        for agg in self.aggregates:
            if agg.column is not None and agg.column not in names:
                raise ValueError(
                    f"layer {self.id!r}: aggregate {agg.name!r} reads unknown column {agg.column!r}"
                )
        query.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]


class Registry:
    """Layers by id, in registration order; each is validated as it is registered."""

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        self._layers: dict[str, Layer] = {}
        for layer in layers:
            self.register(layer)

    def register(self, layer: Layer) -> Layer:
        """Validate ``layer`` and add it; ``ValueError`` if invalid or its id is taken."""
        if layer.id in self._layers:
            raise ValueError(f"layer id {layer.id!r} is already registered")
        layer.validate()
        self._layers[layer.id] = layer
        return layer

    def get(self, layer_id: str) -> Layer:
        """The layer ``layer_id``; ``KeyError`` listing the known ids if there is none."""
        try:
            return self._layers[layer_id]
        except KeyError:
            raise KeyError(
                f"no layer {layer_id!r}; known layers: {', '.join(self._layers)}"
            ) from None

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers.values())

    def __len__(self) -> int:
        return len(self._layers)


def tile_unit_m(z: int, extent: int = 4096) -> float:
    """Size of one tile unit (of an ``extent``-wide MVT grid) at zoom ``z`` [Web Mercator m].

    Examples
    --------
    >>> round(tile_unit_m(0), 3)
    9783.94
    """
    return WORLD_M / float(2**z) / extent


# -- the default layers ------------------------------------------------------------------------

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
        return select(
            ASSET.c.id,
            *(_mvt_value(p).label(p.name) for p in props),
            ASSET.c.geom,
        ).where(collection.kind_filter())

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
            Field("opened_at", "String", "RFC 3339, UTC"),
        ),
        style=Style(
            "point", PLATE_COLOURS[LIVE_PLATE], by="level", classes=warning_level_classes()
        ),
        zoom=ZoomRules(minzoom=0, maxzoom=22, aggregate_below=11),
        tables=frozenset({"alarm"}),
        cache=LIVE,
        description="Alarms not yet closed, at the sensor or asset that raised them.",
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


def live_layers() -> list[Layer]:
    return [alarms_layer(), latest_readings_layer()]


def _risk_layers() -> list[Layer]:
    from layers.risk_layers import risk_layers  # imported here: that module imports this one

    return risk_layers()


#: Functions adding layers to :func:`default_registry`, in order. Risk layers go here.
LAYER_BUILDERS: list[Callable[[], list[Layer]]] = [asset_layers, live_layers, _risk_layers]


def default_registry() -> Registry:
    """Every layer cityrisk serves, validated (``ValueError`` on the first bad one)."""
    return Registry(layer for build in LAYER_BUILDERS for layer in build())


__all__ = [
    "LIVE",
    "STATIC",
    "Aggregate",
    "CachePolicy",
    "ColourClass",
    "Field",
    "Layer",
    "Registry",
    "ZoomRules",
    "default_registry",
]
