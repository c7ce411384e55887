"""Request parameters and response shapes shared by every route: the bbox, GeoJSON.

One parser and one SQL condition for ``bbox`` (CRS84, OGC API – Features' form, boxes across
the antimeridian included), used by every route that takes one; one way to write a GeoJSON
feature, a FeatureCollection and its response.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, Field
from sqlalchemy import func, literal_column, or_
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from app.errors import BadRequest, InvalidInput

GEOJSON = "application/geo+json"

_BBOX_ALLOWED = (
    "4 comma-separated numbers minLon,minLat,maxLon,maxLat in CRS84 "
    "(or 6 with minHeight and maxHeight third and sixth)"
)


@dataclass(frozen=True)
class BBox:
    """A CRS84 box; ``minx > maxx`` means it crosses the antimeridian (OGC API – Features).

    Examples
    --------
    >>> BBox(170.0, 40.0, -170.0, 45.0).envelopes()
    ((170.0, 40.0, 180.0, 45.0), (-180.0, 40.0, -170.0, 45.0))
    """

    minx: float
    miny: float
    maxx: float
    maxy: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.minx > self.maxx

    def envelopes(self) -> tuple[tuple[float, float, float, float], ...]:
        """The box as one or two ordinary envelopes ``(minx, miny, maxx, maxy)``.

        A box across the antimeridian is the part east of ``minx`` up to 180° and the part
        west of ``maxx`` from -180°: built from the corners instead, it would span the rest of
        the world.
        """
        if not self.crosses_antimeridian:
            return ((self.minx, self.miny, self.maxx, self.maxy),)
        return (
            (self.minx, self.miny, 180.0, self.maxy),
            (-180.0, self.miny, self.maxx, self.maxy),
        )


def parse_bbox(raw: str | None) -> BBox | None:
    """``minx,miny,maxx,maxy`` (or 6 numbers with heights, which are ignored) in CRS84.

    Raises :class:`~app.errors.BadRequest` (400) saying what was received and what is allowed.

    >>> parse_bbox("-71.12,42.36,-71.10,42.38")
    BBox(minx=-71.12, miny=42.36, maxx=-71.1, maxy=42.38)
    """
    if raw is None:
        return None
    try:
        numbers = [float(p) for p in raw.split(",")]
    except ValueError:
        raise BadRequest(f"bbox was {raw!r}; expected {_BBOX_ALLOWED}") from None
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise BadRequest(f"bbox was {raw!r}; expected {_BBOX_ALLOWED}")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest(
            f"bbox was {raw!r}; longitudes must lie in [-180, 180] and latitudes in [-90, 90] "
            "with minLat <= maxLat (minLon > maxLon crosses the antimeridian)"
        )
    return BBox(minx, miny, maxx, maxy)


def bbox_query(
    bbox: Annotated[
        str | None,
        Query(
            description="minLon,minLat,maxLon,maxLat in CRS84 (minLon > maxLon crosses the "
            "antimeridian)",
            examples=["-71.12,42.36,-71.08,42.39"],
        ),
    ] = None,
) -> BBox | None:
    """The ``bbox`` query parameter, parsed (a FastAPI dependency)."""
    return parse_bbox(bbox)


BBoxQuery = Annotated[BBox | None, Depends(bbox_query)]

#: A bigint primary key in a body (Dispatch's PrimaryKey): beyond it, PostgreSQL says "bigint out
#: of range" and that was a 500.
DbId = Annotated[int, Field(gt=0, lt=2**63)]

#: PostgreSQL's OFFSET is a bigint: 2**63 and beyond was a 500 ("bigint out of range").
Offset = Annotated[int, Query(ge=0, lt=2**63, description="Skip this many results")]


def bbox_condition(geom: ColumnElement[Any], box: BBox) -> ColumnElement[bool]:
    """``ST_Intersects(geom, envelope)`` for each envelope of ``box``, or-ed.

    ``geom`` is left untouched, so a GiST index on it serves the filter.
    """
    parts = [func.ST_Intersects(geom, func.ST_MakeEnvelope(*env, 4326)) for env in box.envelopes()]
    return parts[0] if len(parts) == 1 else or_(*parts)


def bbox_sql(geom: str, box: BBox) -> str:
    """:func:`bbox_condition` as SQL text, for statements written as text.

    The numbers are inlined: they are floats parsed by :func:`parse_bbox`, never raw input.

    >>> bbox_sql("s.geom", BBox(0.0, 1.0, 2.0, 3.0))
    'ST_Intersects(s.geom, ST_MakeEnvelope(0.0, 1.0, 2.0, 3.0, 4326))'
    """
    condition = bbox_condition(literal_column(geom), box)
    compiled = condition.compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    return str(compiled)


# -- text PostgreSQL can store -----------------------------------------------------------------


def nul_message(where: str, value: str) -> str:
    """What to tell a client whose ``value`` (at ``where``) holds a NUL byte.

    >>> "position 3" in nul_message("query parameter 'kind'", "ch4" + chr(0))
    True
    """
    return (
        f"{where} was {value[:80]!r}{'…' if len(value) > 80 else ''}: it holds a NUL byte (\\x00) "
        f"at position {value.index(chr(0))}, which PostgreSQL text cannot store; expected text "
        "without NUL bytes"
    )


def _refuse_nul_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError(
            f"holds a NUL byte (\\x00) at position {value.index(chr(0))}, which PostgreSQL "
            "text cannot store; expected text without NUL bytes"
        )
    return value


#: Free text of a request body that is stored: a NUL is a 422 naming the field, before any SQL.
Text = Annotated[str, AfterValidator(_refuse_nul_text)]


def refuse_nul(request: Request) -> None:
    """Refuse a NUL byte in any query or path parameter (an app-wide FastAPI dependency).

    PostgreSQL text cannot hold NUL: psycopg refuses to send it ("PostgreSQL text fields cannot
    contain NUL (0x00) bytes"), which used to surface as a 500 wherever a parameter reached SQL.
    OGC API parameters are 400s there (``/req/core/query-param-invalid``), others 422.
    """
    error = BadRequest if request.url.path.startswith("/ogc") else InvalidInput
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise error(nul_message(f"path parameter {name!r}", value))
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise error(
                nul_message(f"query parameter {name!r}", value if "\x00" in value else name)
            )


# -- GeoJSON -------------------------------------------------------------------------------------


def geometry(raw: str | bytes | None) -> orjson.Fragment | None:
    """A geometry written by ``ST_AsGeoJSON``, embedded as is (no parse and re-encode)."""
    return None if raw is None else orjson.Fragment(raw)


def feature(id_: int | str | None, geom: Any, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature (RFC 7946 §3.2)."""
    return {"type": "Feature", "id": id_, "geometry": geom, "properties": dict(properties)}


def feature_collection(features: Iterable[Mapping[str, Any]], **members: Any) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with ``numberReturned`` and any other foreign ``members``."""
    listed = list(features)
    return {
        "type": "FeatureCollection",
        "numberReturned": len(listed),
        **members,
        "features": listed,
    }


#: The 200 of a route answering a GeoJSON FeatureCollection (``application/geo+json``).
GEOJSON_FEATURES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A GeoJSON FeatureCollection (RFC 7946)",
        "content": {
            GEOJSON: {
                "schema": {
                    "type": "object",
                    "required": ["type", "features"],
                    "properties": {
                        "type": {"type": "string", "enum": ["FeatureCollection"]},
                        "numberReturned": {"type": "integer", "minimum": 0},
                        "features": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}
#: The 200 of a route answering one GeoJSON Feature.
GEOJSON_FEATURE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A GeoJSON Feature (RFC 7946)",
        "content": {
            GEOJSON: {
                "schema": {
                    "type": "object",
                    "required": ["type", "geometry", "properties"],
                    "properties": {"type": {"type": "string", "enum": ["Feature"]}},
                }
            }
        },
    }
}


class GeoJSONResponse(Response):
    """``application/geo+json``: what the OpenAPI document says a GeoJSON route answers."""

    media_type = GEOJSON


def geojson_response(document: Mapping[str, Any], status_code: int = 200) -> Response:
    """``document`` as ``application/geo+json`` (orjson: datetimes as RFC 3339)."""
    return Response(
        orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        media_type=GEOJSON,
    )
