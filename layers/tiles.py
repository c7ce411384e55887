"""Mapbox Vector Tiles built in PostGIS: one SQL statement per tile, for one or several layers.

The shape is Martin's (see docs/rivals.md)::

    ST_AsMVT(ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(z, x, y), 4096, 64, true))

with the prefilter ``geom && ST_Transform(ST_TileEnvelope(z, x, y, margin => 64/4096), 4326)``:
the envelope is transformed to the column's CRS, never the column to the envelope's, so the GiST
index on ``geom`` serves it. Each layer adds a feature cap and, per zoom, a simplification
tolerance; below its ``aggregate_below`` zoom it ships hexagons (count and aggregates) instead
of raw geometry, so a low-zoom tile stays small whatever the layer's size.

Statements are built once per (layers, zoom mode) and compiled to SQL text with named
parameters (``%(z)s``…): the text is the same for every tile of that kind, so psycopg prepares it
server-side after a few executions, and no SQLAlchemy construction runs per request.

Nothing here connects to a database: :mod:`app.tiles` executes what this module builds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import morecantile
from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    LargeBinary,
    Select,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from layers.base import Aggregate, Layer, tile_unit_m

#: The tile matrix set every tile address refers to (OGC 17-083r4 WebMercatorQuad).
TMS = morecantile.tms.get("WebMercatorQuad")

SQRT3 = math.sqrt(3.0)


class TileAddressError(ValueError):
    """A z/x/y that is not a tile of WebMercatorQuad; the message says what is allowed."""


class TileOutOfRange(TileAddressError):
    """Well-formed integers, but no such tile in WebMercatorQuad (HTTP answers 404)."""


@dataclass(frozen=True)
class TileAddress:
    """A tile of WebMercatorQuad (``y`` counted from the north, as XYZ and OGC do)."""

    z: int
    x: int
    y: int

    @property
    def centre_lat(self) -> float:
        """Latitude [degrees] midway between the tile's north and south edges.

        Closed form of the spherical (Web) Mercator inverse, φ = atan(sinh(π (1 − 2 t / 2^z)))
        (EPSG:3857; Snyder 1987, eq. 7-4), used for metre ↔ Web Mercator scaling. It is what
        morecantile's ``bounds`` gives, without a pyproj transform per tile (a tenth of a
        cache-off tile's time).
        """
        n = 2.0**self.z
        north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * self.y / n))))
        south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (self.y + 1) / n))))
        return (north + south) / 2


#: (matrixWidth, matrixHeight) per zoom, read once: looking a matrix up costs more than a tile hit.
_MATRIX_SIZES: dict[int, tuple[int, int]] = {
    zoom: (TMS.matrix(zoom).matrixWidth, TMS.matrix(zoom).matrixHeight)
    for zoom in range(TMS.minzoom, TMS.maxzoom + 1)
}


def parse_tile(z: str, x: str, y: str) -> TileAddress:
    """Parse and check a tile address against WebMercatorQuad's matrices.

    Parameters
    ----------
    z, x, y : str
        Path segments as received.

    Returns
    -------
    TileAddress

    Raises
    ------
    TileAddressError
        When a part is not a non-negative integer.
    TileOutOfRange
        When ``z`` is outside the matrix set's zooms, or ``x``/``y`` outside ``0 .. 2**z - 1``.

    Examples
    --------
    >>> parse_tile("10", "309", "378")
    TileAddress(z=10, x=309, y=378)
    >>> parse_tile("1", "2", "0")
    Traceback (most recent call last):
    ...
    layers.tiles.TileOutOfRange: x was 2 at zoom 1; it must lie in 0..1
    """
    values: dict[str, int] = {}
    for name, raw in (("z", z), ("x", x), ("y", y)):
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise TileAddressError(f"{name} was {raw!r}; expected a non-negative integer")
        values[name] = int(raw)
    zoom = values["z"]
    if not TMS.minzoom <= zoom <= TMS.maxzoom:
        raise TileOutOfRange(
            f"z was {zoom}; WebMercatorQuad has zooms {TMS.minzoom}..{TMS.maxzoom}"
        )
    for name, size in zip(("x", "y"), _MATRIX_SIZES[zoom], strict=True):
        if not 0 <= values[name] < size:
            raise TileOutOfRange(
                f"{name} was {values[name]} at zoom {zoom}; it must lie in 0..{size - 1}"
            )
    return TileAddress(zoom, values["x"], values["y"])


@dataclass(frozen=True)
class TileOptions:
    """How tiles are encoded.

    Parameters
    ----------
    extent : int, default 4096
        MVT grid size in tile units.
    buffer : int, default 64
        Tile units kept beyond each edge so lines and labels join across tiles.
    max_features : int, default 10000
        Most raw features per layer per tile (tipg's default); the rest are left out and the
        response says so (``Tile-Feature-Cap-Reached``).
    """

    extent: int = 4096
    buffer: int = 64
    max_features: int = 10_000


@dataclass(frozen=True)
class TileSQL:
    """A compiled tile statement: SQL text with parameters, and fixed values.

    The statement returns one row: the tile (``bytea``), then the feature count of each layer
    in order. Per-tile values (``z``, ``x``, ``y`` and the tolerances) come from
    :meth:`params` (by name, for ``%(name)s`` SQL) or :meth:`args` (in ``order``, for the
    ``$n`` SQL of a ``numeric_dollar`` dialect).
    """

    sql: str
    fixed: dict[str, Any]
    layers: tuple[Layer, ...]
    modes: tuple[str, ...]
    options: TileOptions
    order: tuple[str, ...] | None = None  # parameter names of $1, $2, … (positional SQL)

    def params(self, tile: TileAddress) -> dict[str, Any]:
        """Bound values for ``tile``: the fixed ones plus z/x/y, tolerances, hex sizes."""
        values = dict(self.fixed)
        values.update(z=tile.z, x=tile.x, y=tile.y)
        unit = tile_unit_m(tile.z, self.options.extent)
        # Ground metres → Web Mercator metres at this tile's latitude (1 / cos φ larger).
        stretch = 1.0 / max(math.cos(math.radians(tile.centre_lat)), 1e-6)
        for i, (layer, mode) in enumerate(zip(self.layers, self.modes, strict=True)):
            if mode == "hex":
                size = layer.zoom.hex_px * unit
                values[f"hex_{i}"] = size
                # A hexagon touching the tile reaches at most 2 edges beyond it.
                values[f"pad_{i}"] = 2 * size
            elif mode == "raw":
                values[f"tol_{i}"] = layer.zoom.tolerance_m(tile.z) * stretch
        return values

    def args(self, tile: TileAddress) -> list[Any]:
        """:meth:`params` as the positional list of ``$n`` SQL."""
        if self.order is None:
            raise ValueError("this statement has named parameters: use params(), not args()")
        values = self.params(tile)
        return [values[name] for name in self.order]


def mode_of(layer: Layer, z: int) -> str:
    """``"hex"``, ``"raw"`` or ``"none"`` (outside the layer's zooms: no features)."""
    if not layer.zoom.serves(z):
        return "none"
    return "hex" if layer.zoom.aggregates_at(z) else "raw"


def _per_tile(name: str, type_: Any = None) -> Any:
    """A parameter set per tile; the placeholder value lets the statement compile beforehand."""
    return bindparam(name, value=0, type_=type_)


def _envelope(margin: float = 0.0) -> ColumnElement[Any]:
    # Untyped: the psycopg dialect would render ``::BIGINT`` casts, and ST_TileEnvelope takes int4.
    z, x, y = _per_tile("z"), _per_tile("x"), _per_tile("y")
    if margin:
        # ST_TileEnvelope's margin is a named argument; the value is ours, never the client's.
        return func.ST_TileEnvelope(z, x, y, literal_column(f"margin => {float(margin)!r}"))
    return func.ST_TileEnvelope(z, x, y)


#: Lines and polygons with more vertices than this are cut to the tile before anything else.
CLIP_ABOVE_POINTS = 64


def _raw_layer(layer: Layer, i: int, options: TileOptions) -> Select[Any]:
    src = layer.source().subquery(f"src_{i}")
    reach = func.ST_Transform(_envelope(options.buffer / options.extent), 4326)
    prefilter = src.c.geom.op("&&")(reach)
    capped = select(src).where(prefilter).limit(options.max_features).subquery(f"capped_{i}")
    geom: ColumnElement[Any] = capped.c.geom
    if layer.style.geometry != "point":
        # A big line or polygon is cut to the tile and its buffer before it is transformed and
        # simplified: at high zoom most of its vertices lie outside. The cut is a rectangle in
        # degrees, and Web Mercator maps that rectangle to the tile's, so nothing visible
        # changes; ST_AsMVTGeom clips again. Small ones go whole (the cut would cost more).
        geom = case(
            (func.ST_NPoints(geom) > CLIP_ABOVE_POINTS, func.ST_ClipByBox2D(geom, reach)),
            else_=geom,
        )
    geom_3857: ColumnElement[Any] = func.ST_Transform(geom, 3857)
    if layer.style.geometry != "point":
        # preserveCollapsed: small polygons and short lines stay visible rather than vanish.
        geom_3857 = func.ST_Simplify(geom_3857, _per_tile(f"tol_{i}", Float), True)
    mvt_geom = func.ST_AsMVTGeom(
        geom_3857, _envelope(), options.extent, options.buffer, True
    ).label("geom")
    props = [capped.c[f.name] for f in layer.properties]
    rows = select(mvt_geom, *props).subquery(f"rows_{i}")
    return select(
        func.ST_AsMVT(rows.table_valued(), layer.id, options.extent, "geom").label("mvt"),
        func.count(rows.c.geom).label("n"),
    ).where(rows.c.geom.is_not(None))


def _hex_index(px: ColumnElement[Any], py: ColumnElement[Any], size: Any) -> tuple[Any, Any]:
    """Cell (i, j) of ST_HexagonGrid's grid (edge ``size``, origin 0,0) holding point (px, py).

    ST_HexagonGrid's hexagons are flat-topped: cell (i, j) is centred at
    ``(1.5 size i, √3 size (j + ½ if i is odd))``. A point between the centres of columns
    ``i0 = floor(px / 1.5 size)`` and ``i0 + 1`` lies in one of their cells: the one whose centre
    is nearest (a regular hexagon tiling is the Voronoi diagram of its centres). This is O(1) per
    point; joining points to the generated grid with ST_Intersects would be O(points × cells).
    """
    h = size * SQRT3
    i0 = func.floor(px / (size * 1.5))
    i1 = i0 + 1

    def candidate(i: Any) -> tuple[Any, Any]:
        shift = func.mod(cast(i, BigInteger), 2) * (h / 2)  # mod of a negative: -1 or 0
        shift = func.abs(shift)
        j = func.round((py - shift) / h)
        dist = func.power(px - i * size * 1.5, 2) + func.power(py - (j * h + shift), 2)
        return j, dist

    j0, d0 = candidate(i0)
    j1, d1 = candidate(i1)
    i = case((d0 <= d1, i0), else_=i1)
    j = case((d0 <= d1, j0), else_=j1)
    # int4: ST_Hexagon takes integer cell indices (enough: 2**31 cells of >= 8 units each).
    return cast(i, Integer), cast(j, Integer)


def _agg_expr(agg: Aggregate, table: Any) -> ColumnElement[Any]:
    if agg.func == "count":
        return cast(func.count(), BigInteger).label(agg.name)
    column = table.c[agg.column]
    # getattr(func, name): func.min etc. are generic functions; the name is from a Literal.
    return cast(getattr(func, agg.func)(column), Float).label(agg.name)


def _hex_layer(layer: Layer, i: int, options: TileOptions) -> Select[Any]:
    size = _per_tile(f"hex_{i}", Float)
    src = layer.source().subquery(f"src_{i}")
    search = func.ST_Transform(func.ST_Expand(_envelope(), _per_tile(f"pad_{i}", Float)), 4326)
    # One representative point per feature: a line or polygon counts once, in one hexagon.
    point = func.ST_Transform(func.ST_PointOnSurface(src.c.geom), 3857)
    columns = {a.column for a in layer.aggregates if a.column is not None}
    pts = (
        select(
            func.ST_X(point).label("px"),
            func.ST_Y(point).label("py"),
            *(src.c[c] for c in sorted(columns)),
        )
        .where(src.c.geom.op("&&")(search))
        # OFFSET 0 keeps PostgreSQL from inlining this subquery: px and py appear many times in
        # the cell arithmetic, and inlined, each would re-run ST_Transform(ST_PointOnSurface).
        .offset(0)
        .subquery(f"pts_{i}")
    )
    hi, hj = _hex_index(pts.c.px, pts.c.py, size)
    cells = select(hi.label("i"), hj.label("j"), *(pts.c[c] for c in sorted(columns))).subquery(
        f"cells_{i}"
    )
    grouped = (
        select(cells.c.i, cells.c.j, *(_agg_expr(a, cells) for a in layer.aggregates))
        .group_by(cells.c.i, cells.c.j)
        .subquery(f"grouped_{i}")
    )
    hexagon = func.ST_SetSRID(func.ST_Hexagon(size, grouped.c.i, grouped.c.j), 3857)
    mvt_geom = func.ST_AsMVTGeom(hexagon, _envelope(), options.extent, options.buffer, True).label(
        "geom"
    )
    rows = select(mvt_geom, *(grouped.c[a.name] for a in layer.aggregates)).subquery(f"rows_{i}")
    return select(
        func.ST_AsMVT(rows.table_valued(), layer.id, options.extent, "geom").label("mvt"),
        func.count(rows.c.geom).label("n"),
    ).where(rows.c.geom.is_not(None))


def tile_statement(layers: tuple[Layer, ...], z: int, options: TileOptions) -> Select[Any]:
    """One statement returning ``(tile bytea, n_0, n_1, …)`` for ``layers`` at zoom ``z``.

    Parameters
    ----------
    layers : tuple of Layer
        One or more layers; their MVT layers are concatenated in this order (a tile is a
        sequence of layers, so concatenating ST_AsMVT outputs is a valid tile).
    z : int
        Zoom, which picks each layer's mode (raw, hexagons or nothing).
    options : TileOptions

    Returns
    -------
    Select
        With bind parameters ``z``, ``x``, ``y`` and per layer ``tol_i`` or ``hex_i``/``pad_i``;
        use :func:`compile_tile` to get SQL text and :meth:`TileSQL.params` for values.

    Notes
    -----
    A layer outside its zooms contributes no bytes and count 0. An empty tile is a zero-length
    body, which is a valid MVT (a tile with no layers).
    """
    parts: list[ColumnElement[Any]] = []
    counts: list[ColumnElement[Any]] = []
    subs = []
    empty = cast(literal(b""), LargeBinary)
    for i, layer in enumerate(layers):
        mode = mode_of(layer, z)
        if mode == "none":
            parts.append(empty)
            counts.append(literal(0).label(f"n_{i}"))
            continue
        built = _raw_layer(layer, i, options) if mode == "raw" else _hex_layer(layer, i, options)
        sub = built.subquery(f"layer_{i}")
        subs.append(sub)
        parts.append(func.coalesce(sub.c.mvt, empty))
        counts.append(sub.c.n.label(f"n_{i}"))
    tile: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        tile = tile.op("||")(part)
    stmt = select(tile.label("tile"), *counts)
    if subs:
        # Each layer's subquery is one aggregate row: joining them on true is a 1 x 1 product,
        # and each is computed once (a scalar subquery per column would compute it twice).
        joined: Any = subs[0]
        for sub in subs[1:]:
            joined = joined.join(sub, true())
        stmt = stmt.select_from(joined)
    return stmt


def compile_tile(
    layers: tuple[Layer, ...], z: int, options: TileOptions, dialect: Dialect
) -> TileSQL:
    """Compile :func:`tile_statement` for ``dialect`` into reusable SQL text and values."""
    stmt = tile_statement(layers, z, options)
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    per_tile = {"z", "x", "y"} | {
        f"{p}_{i}" for i in range(len(layers)) for p in ("tol", "hex", "pad")
    }
    fixed = {k: v for k, v in compiled.params.items() if k not in per_tile}
    return TileSQL(
        sql=str(compiled),
        fixed=fixed,
        layers=layers,
        modes=tuple(mode_of(layer, z) for layer in layers),
        options=options,
        order=tuple(compiled.positiontup or ()) if compiled.positional else None,
    )
