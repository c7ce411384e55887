"""What the map page needs from the database: the data's extent and the risk heatmap points.

Kept apart from :mod:`layers.maps` (pure page assembly) so that the served page and
``cityrisk map --out`` read the same things the same way.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from layers.base import Registry
from layers.maps import HeatPoint, MapPage, parse_visible

#: At most this many heatmap points, the riskiest first: every point is inlined in the page.
MAX_HEAT_POINTS = 20_000

_EXTENT = text(
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
    "FROM (SELECT ST_Extent(geom) AS e FROM asset) AS x"
)

# One point per asset (its worst score over plates); PointOnSurface keeps the point on the
# line or inside the polygon, where a centroid may fall off it.
_HEAT = text(
    "SELECT ST_Y(p), ST_X(p), w FROM ("
    " SELECT ST_PointOnSurface(a.geom) AS p, max(r.norm) AS w"
    " FROM risk_score r JOIN asset a ON a.id = r.asset_id"
    " WHERE r.scope = 'asset' AND r.norm IS NOT NULL AND a.geom IS NOT NULL"
    " GROUP BY a.id, a.geom) AS s"
    " ORDER BY w DESC LIMIT :n"
)


def extent(engine: Engine) -> tuple[float, float, float, float] | None:
    """``(min_lon, min_lat, max_lon, max_lat)`` of every asset; None when there are none."""
    with engine.connect() as conn:
        row = conn.execute(_EXTENT).one()
    if row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def heat_points(engine: Engine, limit: int = MAX_HEAT_POINTS) -> tuple[HeatPoint, ...]:
    """``(lat, lon, weight)`` per scored asset, weight its normalised score in [0, 1]."""
    with engine.connect() as conn:
        rows = conn.execute(_HEAT, {"n": limit}).all()
    return tuple((float(r[0]), float(r[1]), max(0.0, min(1.0, float(r[2])))) for r in rows)


def map_page(
    engine: Engine | None,
    registry: Registry,
    layers: str | None,
    *,
    base_url: str = "",
    links: tuple[tuple[str, str], ...] = (),
) -> MapPage:
    """The page for ``?layers=`` (``ValueError`` on unknown ids).

    Without a database (or before migrations) the page still renders, with no heatmap and the
    world in view: the tiles and alarms then answer 503 and the page says nothing is there.
    """
    visible = parse_visible(registry, layers)
    bounds: tuple[float, float, float, float] | None = None
    heat: tuple[HeatPoint, ...] = ()
    if engine is not None:
        try:
            bounds = extent(engine)
            heat = heat_points(engine)
        except SQLAlchemyError:
            bounds, heat = None, ()
    return MapPage(
        layers=tuple(registry),
        visible=visible,
        bounds=bounds,
        heat=heat,
        base_url=base_url.rstrip("/"),
        links=links,
    )
