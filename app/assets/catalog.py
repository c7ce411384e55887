"""The OGC collections and their properties, derived once from the asset taxonomy.

One collection per asset kind, plus ``exposure`` (every kind of the exposure plate). A feature's
properties are the ``asset`` columns in :data:`COLUMN_PROPERTIES` followed by the kind's taxonomy
attributes, which live in the ``attributes`` JSONB column. Each property has a JSON type; the
filter, ``sortby`` and the queryables all read it from here, so what a client may query is exactly
what the queryables document lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Boolean, Numeric, Table, case, cast, func
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from app.assets.models import Asset
from app.errors import BadRequest
from app.taxonomy.assets import KINDS, PLATE_TITLES, AssetKind, Attribute, GeometryFamily

JsonType = Literal["string", "integer", "number", "boolean", "date"]

ASSET: Table = Asset.__table__  # type: ignore[assignment]

#: Name of the geometry in filters and queryables (the column is ``geom``).
GEOMETRY = "geometry"

#: Plate of the extra collection that gathers all exposure kinds.
EXPOSURE = "exposure"

_ATTR_TYPES: dict[str, JsonType] = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "date": "date",
}


@dataclass(frozen=True)
class Property:
    """One feature property: where it lives, its JSON type and what it means."""

    name: str
    type: JsonType
    title: str = ""
    description: str = ""
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    column: str | None = None
    """The ``asset`` column holding it, or None for a key of ``attributes``."""
    value: ColumnElement[Any] | None = field(default=None, compare=False)
    """The SQL value, for a property of a collection that is not made of assets (then
    ``column`` names it in the collection's source); None for asset properties."""

    def expression(self) -> ColumnElement[Any]:
        """The SQL value of this property, typed so comparisons and sorting behave.

        A JSONB value of the wrong type (``"12"`` where a number is expected) reads as NULL
        rather than failing the whole query with a cast error: a filter then simply does not
        match it, as CQL2 treats a missing value.
        """
        if self.value is not None:
            return self.value
        if self.column is not None:
            return ASSET.c[self.column]
        node = ASSET.c.attributes[self.name]
        if self.type in ("integer", "number"):
            return case(
                (func.jsonb_typeof(node) == "number", cast(node.astext, Numeric)), else_=None
            )
        if self.type == "boolean":
            return case(
                (func.jsonb_typeof(node) == "boolean", cast(node.astext, Boolean)), else_=None
            )
        # Strings, and dates kept as ISO 8601 text (which sorts and compares chronologically).
        return case((func.jsonb_typeof(node) == "string", node.astext), else_=None)


def _column(name: str, type_: JsonType, title: str, description: str = "", **kw: Any) -> Property:
    return Property(name, type_, title, description, column=name, **kw)


COLUMN_PROPERTIES: tuple[Property, ...] = (
    _column("name", "string", "Name"),
    _column("kind", "string", "Asset kind", "taxonomy kind id, e.g. gas_pipe"),
    _column("plate", "string", "Plate", "lifeline, public_safety, production_safety, …"),
    _column("owner", "string", "Owner", "operator or owner of the asset"),
    _column("source", "string", "Source", "dataset the asset was imported from"),
    _column("external_id", "string", "External id", "identifier within the source"),
    _column(
        "length_m",
        "number",
        "Length",
        "geodesic length on the WGS84 spheroid (0 for points and polygons) [m]",
        unit="m",
    ),
    _column("area_m2", "number", "Area", "geodesic area on the WGS84 spheroid [m2]", unit="m2"),
)


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """Where a collection's features live: the FROM clause and its id and geometry columns.

    ``geom`` should be a plain indexed column (EPSG:4326) so that bbox, spatial filters and
    the tile prefilter reach its GiST index. ``attributes``: a JSONB column holding the
    properties that are not columns (assets), or None. ``table``: the table whose planner
    statistics say how big the source is (extents switch to estimates on big tables).
    """

    from_: FromClause
    id: ColumnElement[Any]
    geom: ColumnElement[Any]
    table: str
    attributes: ColumnElement[Any] | None = None


#: The source of every asset collection.
ASSET_SOURCE = FeatureSource(ASSET, ASSET.c.id, ASSET.c.geom, "asset", ASSET.c.attributes)


@dataclass(frozen=True)
class Collection:
    """A feature collection: where its features are, which of them, and their properties.

    Asset collections name their ``kinds``; a collection of another table (impact zones)
    gives its own ``source`` and ``where``. :meth:`conditions` is the one base WHERE that the
    features, their counts, their extents and the map layer built from the collection share.
    """

    id: str
    title: str
    description: str
    kinds: tuple[str, ...]
    geometries: frozenset[GeometryFamily]
    properties: dict[str, Property]
    temporal: str | None = None
    """The integer year property that ``datetime`` and temporal filters use, if any."""
    source: FeatureSource = field(default=ASSET_SOURCE, compare=False)
    where: ColumnElement[bool] | None = field(default=None, compare=False)
    """A condition every feature meets, for collections without ``kinds``."""

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties.values() if p.column is None)

    @property
    def column_properties(self) -> tuple[Property, ...]:
        """The properties that are columns of the source, in order."""
        return tuple(p for p in self.properties.values() if p.column is not None)

    def conditions(self) -> list[ColumnElement[bool]]:
        """What makes a row of the source a feature of this collection (AND-ed; may be [])."""
        out = [self.kind_filter()] if self.kinds else []
        if self.where is not None:
            out.append(self.where)
        return out

    def lookup(self, name: str, *, what: str) -> Property:
        """The property ``name``, or a 400 naming the ones that exist (``what`` says where)."""
        try:
            return self.properties[name]
        except KeyError:
            raise BadRequest(
                f"{what}: unknown property {name!r} in collection {self.id!r}; "
                f"known properties: {', '.join(self.properties)}"
            ) from None

    def kind_filter(self) -> ColumnElement[bool]:
        """``kind = …`` (one kind) or ``kind IN (…)``, served by ``ix_asset_kind``."""
        if len(self.kinds) == 1:
            return ASSET.c.kind == self.kinds[0]
        return ASSET.c.kind.in_(self.kinds)


def _attribute_property(attr: Attribute) -> Property:
    unit = f" [{attr.unit}]" if attr.unit else ""
    return Property(
        name=attr.name,
        type=_ATTR_TYPES[attr.type],
        title=attr.name.replace("_", " "),
        description=f"{attr.description}{unit}".strip(),
        unit=attr.unit,
        minimum=attr.minimum,
        maximum=attr.maximum,
        enum=attr.choices,
    )


def _properties(kinds: list[AssetKind]) -> dict[str, Property]:
    """Column properties, then the kinds' attributes in taxonomy order (first definition wins).

    Raises ``ValueError`` when two kinds of one collection give an attribute different types,
    or an attribute shadows a column: both are taxonomy mistakes to catch at import time.
    """
    props = {p.name: p for p in COLUMN_PROPERTIES}
    if GEOMETRY in props:
        raise ValueError(f"{GEOMETRY!r} is reserved for the geometry")
    for kind in kinds:
        for attr in kind.attributes:
            prop = _attribute_property(attr)
            seen = props.get(attr.name)
            if seen is None:
                props[attr.name] = prop
            elif seen.column is not None or attr.name == GEOMETRY:
                raise ValueError(f"attribute {attr.name!r} of {kind.id!r} shadows a column")
            elif seen.type != prop.type:
                raise ValueError(
                    f"attribute {attr.name!r} is {seen.type} in one kind and {prop.type} in "
                    f"{kind.id!r}; one collection needs one type per property"
                )
    return props


def _kind_collection(kind: AssetKind) -> Collection:
    plate = PLATE_TITLES[kind.plate]
    description = f"{kind.title}. Plate: {plate}."
    if kind.description:
        description = f"{description} {kind.description}"
    return Collection(
        id=kind.id,
        title=kind.title,
        description=description,
        kinds=(kind.id,),
        geometries=kind.geometries,
        properties=_properties([kind]),
        temporal=kind.temporal,
    )


def _plate_collection(plate: str) -> Collection:
    kinds = [k for k in KINDS.values() if k.plate == plate]
    temporals = {k.temporal for k in kinds}
    return Collection(
        id=plate,
        title=PLATE_TITLES[plate],
        description=f"Every asset of the plate {PLATE_TITLES[plate]}: "
        + ", ".join(k.title for k in kinds)
        + ".",
        kinds=tuple(k.id for k in kinds),
        geometries=frozenset().union(*(k.geometries for k in kinds)),
        properties=_properties(kinds),
        # A plate collection is dated only if all its kinds are dated by the same attribute.
        temporal=temporals.pop() if len(temporals) == 1 else None,
    )


def _build() -> dict[str, Collection]:
    collections = {kind.id: _kind_collection(kind) for kind in KINDS.values()}
    if EXPOSURE in collections:
        raise ValueError(f"kind id {EXPOSURE!r} clashes with the exposure collection")
    collections[EXPOSURE] = _plate_collection(EXPOSURE)
    return collections


#: Every collection by id, in taxonomy order, exposure last. Pure data: built at import.
COLLECTIONS: dict[str, Collection] = _build()
