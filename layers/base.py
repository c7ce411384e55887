"""The layer framework: what a map layer is, and the registry that holds them.

A :class:`Layer` is pure data plus a ``source``: a callable returning a SQLAlchemy Core
``Select`` with a ``geom`` column (EPSG:4326) and one column per property. :mod:`layers.tiles`
wraps any source into one MVT statement, so adding a layer is adding a :class:`Layer`; nothing
here touches a database. Every layer is checked once, when it is registered at start-up (as
pygeoapi's providers are not: their definition errors surface on the first request).

The layers cityrisk serves are built in :mod:`layers.registry`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from app.taxonomy.assets import PLATE_TITLES
from app.taxonomy.risk import COMPOSITE
from layers.styles import (
    Style,
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


__all__ = [
    "LIVE",
    "LIVE_PLATE",
    "MAX_ZOOM",
    "STATIC",
    "Aggregate",
    "CachePolicy",
    "Field",
    "Layer",
    "Registry",
    "Source",
    "ZoomRules",
    "tile_unit_m",
]
