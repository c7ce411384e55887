"""The risk layers: scored assets and H3 risk hexagons, per plate and composite.

Both read ``risk_score`` (written by :mod:`app.risk.service`): the asset layers join its
``scope = 'asset'`` rows to the asset geometry, the hexagon layers take the ``scope = 'cell'``
rows with their own ``geom``. Every layer names ``risk_score`` and ``asset`` in ``tables``, so a
refresh, full or incremental (a write to ``risk_score``, which bumps its data version), or an
asset edit makes the next tile fresh.

Features are coloured by the four-colour **risk class** (1 red 重大, 2 orange 较大, 3 yellow
一般, 4 blue 低) — a class of a place, not an alarm's warning level, though it shares the colours.

Registered through :data:`layers.registry.LAYER_BUILDERS` (:func:`risk_layers`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Select, Table, and_, cast, select
from sqlalchemy.sql.elements import ColumnElement

from app.risk.models import RiskScore
from app.taxonomy.assets import PLATE_TITLES
from app.taxonomy.risk import COMPOSITE, RISK_CLASSES, SCORED_PLATES
from layers.registry import (
    ASSET,
    STATIC,
    Aggregate,
    Field,
    Layer,
    Source,
    ZoomRules,
)
from layers.styles import FOUR_COLOURS, ColourClass, Style

RISK_SCORE: Table = RiskScore.__table__  # type: ignore[assignment]


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


def _asset_source(plate: str) -> Source:
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


_ASSET_FIELDS = (
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


def _style(geometry: Any) -> Style:
    return Style(geometry, _NO_CLASS, by="risk_class", classes=risk_class_classes())


def asset_risk_layer(plate: str) -> Layer:
    """Scored assets of ``plate`` (or every plate: ``composite``) coloured by risk class."""
    return Layer(
        id=f"risk_{plate}",
        title=f"Risk of assets: {_plate_title(plate)}",
        plate=plate,
        data="features",
        source=_asset_source(plate),
        properties=_ASSET_FIELDS,
        style=_style("mixed"),
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
        style=_style("polygon"),
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


__all__ = [
    "RISK_TABLES",
    "SCORED_PLATES",
    "asset_risk_layer",
    "cell_risk_layer",
    "risk_class_classes",
    "risk_layers",
]
