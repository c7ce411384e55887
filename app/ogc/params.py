"""Query parameters of the OGC endpoints, checked and parsed into typed values.

Every problem is a :class:`~app.errors.BadRequest` (400) whose message says what was received
and what is allowed, as OGC API Features asks (``/req/core/query-param-invalid``); nothing a
client types reaches SQL unparsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy.sql.elements import ColumnElement
from starlette.datastructures import QueryParams
from starlette.requests import Request

from app.assets.catalog import Collection, Property
from app.errors import BadRequest
from app.ogc import cql
from app.params import BBox, parse_bbox

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_CRS84_SPELLINGS = frozenset(
    {CRS84, "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "[OGC:CRS84]"}
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 2**63 - 2  # OFFSET is a bigint in PostgreSQL; past it is an error, not an empty page

FILTER_LANGS = ("cql2-text", "cql2-json")

#: Parameters of /items; any other is a 400 (``/req/core/query-param-unknown``).
ITEMS_PARAMS = frozenset(
    {
        "f",
        "bbox",
        "bbox-crs",
        "limit",
        "offset",
        "datetime",
        "properties",
        "sortby",
        "filter",
        "filter-lang",
        "filter-crs",
    }
)

Format = Literal["json", "html"]


@dataclass(frozen=True)
class YearRange:
    """Inclusive calendar years; None is an open end."""

    start: int | None
    end: int | None


@dataclass(frozen=True)
class SortKey:
    prop: Property
    descending: bool = False


@dataclass(frozen=True)
class ItemsQuery:
    """What ``/items`` was asked for, parsed and checked against the collection."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: BBox | None = None
    years: YearRange | None = None
    properties: tuple[str, ...] | None = None
    """Requested properties in order; None means all."""
    sortby: tuple[SortKey, ...] = ()
    where: ColumnElement[bool] | None = None
    """The translated ``filter``."""


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} was given {len(values)} times; give it once")
    return values[0] if values else None


def _check_unknown(params: QueryParams, allowed: Iterable[str]) -> None:
    allowed = frozenset(allowed)
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; "
            f"this endpoint takes {', '.join(sorted(allowed))}"
        )


def parse_items_query(
    params: QueryParams, collection: Collection, *, max_depth: int = cql.MAX_DEPTH
) -> ItemsQuery:
    """Check and parse the query parameters of ``/collections/{id}/items`` (a filter at most
    ``max_depth`` levels deep)."""
    _check_unknown(params, ITEMS_PARAMS)
    _check_crs(params, "bbox-crs")
    _check_crs(params, "filter-crs")
    return ItemsQuery(
        limit=parse_limit(_single(params, "limit")),
        offset=parse_offset(_single(params, "offset")),
        bbox=parse_bbox(_single(params, "bbox")),
        years=parse_datetime(_single(params, "datetime"), collection),
        properties=parse_properties(_single(params, "properties"), collection),
        sortby=parse_sortby(_single(params, "sortby"), collection),
        where=parse_filter(
            _single(params, "filter"), _single(params, "filter-lang"), collection, max_depth
        ),
    )


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = None
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit was {raw!r}; it must be an integer from 1 to {MAX_LIMIT}")
    return limit


def parse_offset(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        offset = int(raw)
    except ValueError:
        offset = None
    if offset is None or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"offset was {raw!r}; it must be an integer >= 0")
    return offset


def _check_crs(params: QueryParams, name: str) -> None:
    raw = _single(params, name)
    if raw is not None and raw not in _CRS84_SPELLINGS:
        raise BadRequest(f"{name} was {raw!r}; the only CRS supported is {CRS84}")


def parse_datetime(raw: str | None, collection: Collection) -> YearRange | None:
    """``datetime`` (an RFC 3339 instant or ``start/end`` with ``..`` for open ends) as years.

    Features are dated by a year (``install_year`` …), so an instant selects the features of
    its calendar year (as written, ignoring the offset) and an interval those whose year lies
    between the start's and the end's, inclusive. Features without a year never match. A
    collection without a temporal property refuses ``datetime`` with a 400: OGC API Features
    keeps only features whose temporal value intersects the parameter, and such a collection
    has none, so ignoring it would return features that do not match.
    """
    if raw is None:
        return None
    if collection.temporal is None:
        raise BadRequest(
            f"datetime was {raw!r} but collection {collection.id!r} has no temporal property; "
            "leave datetime out for this collection"
        )
    if "/" in raw:
        start_raw, _, end_raw = raw.partition("/")
        start = _year(start_raw, raw)
        end = _year(end_raw, raw)
        if start is not None and end is not None and start > end:
            raise BadRequest(f"datetime was {raw!r}; the interval ends before it starts")
        return YearRange(start, end)
    year = _year(raw, raw)
    if year is None:
        raise BadRequest(f"datetime was {raw!r}; '..' is allowed only as one end of an interval")
    return YearRange(year, year)


def _year(text: str, raw: str) -> int | None:
    if text in ("..", ""):
        return None
    try:
        parsed: date = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(
            f"datetime was {raw!r}; expected an RFC 3339 date-time (2018-02-12T23:20:50Z), a "
            "date (2018-02-12) or an interval start/end with '..' for an open end"
        ) from None
    return parsed.year


def parse_properties(raw: str | None, collection: Collection) -> tuple[str, ...] | None:
    """Comma-separated property names; an empty value asks for no properties at all."""
    if raw is None:
        return None
    names: list[str] = []
    for name in (n.strip() for n in raw.split(",")):
        if not name:
            continue
        collection.lookup(name, what="properties")
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_sortby(raw: str | None, collection: Collection) -> tuple[SortKey, ...]:
    """``+name,-install_year``: ``-`` descending, ``+`` or nothing ascending.

    A ``+`` arrives as a space when the client did not percent-encode it, hence the strip.
    """
    if raw is None:
        return ()
    keys: list[SortKey] = []
    for item in raw.split(","):
        token = item.strip()
        descending = token.startswith("-")
        name = token[1:] if token[:1] in ("+", "-") else token
        if not name:
            raise BadRequest(
                f"sortby was {raw!r}; expected comma-separated property names, each optionally "
                "prefixed with + (ascending) or - (descending), e.g. -install_year,+name"
            )
        keys.append(SortKey(collection.lookup(name, what="sortby"), descending))
    return tuple(keys)


def parse_filter(
    raw: str | None, lang: str | None, collection: Collection, max_depth: int = cql.MAX_DEPTH
) -> ColumnElement[bool] | None:
    if lang is not None and lang not in FILTER_LANGS:
        raise BadRequest(f"filter-lang was {lang!r}; allowed: {', '.join(FILTER_LANGS)}")
    if raw is None:
        return None
    node = cql.parse(raw, "cql2-json" if lang == "cql2-json" else "cql2-text", max_depth=max_depth)
    return cql.to_where(node, collection, max_depth=max_depth)


def parse_feature_id(raw: str) -> int | None:
    """The asset id in ``raw``, or None when it cannot be one (the caller answers 404)."""
    # isdigit() alone admits '²' and other Unicode digits, which int() then refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 1 <= value < 2**63 else None


# -- content negotiation ----------------------------------------------------------------------

_JSON_TYPES = frozenset(
    {
        "application/json",
        "application/geo+json",
        "application/schema+json",
        "application/*",
        "*/*",
    }
)


def negotiate(request: Request, *, formats: Iterable[str] = ("json", "html")) -> Format:
    """``f`` if given (its value must be one of ``formats``), else the ``Accept`` header.

    HTML is chosen only when the client prefers ``text/html`` over every JSON type (browsers
    do); clients that send no ``Accept`` or ``*/*`` get JSON.
    """
    allowed = tuple(formats)
    f = _single(request.query_params, "f")
    if f is not None:
        if f not in allowed:
            raise BadRequest(f"f was {f!r}; allowed: {', '.join(allowed)}")
        return "html" if f == "html" else "json"
    html_q, json_q = 0.0, 0.0
    for part in request.headers.get("accept", "").split(","):
        media, q = _media_range(part)
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media in _JSON_TYPES:
            json_q = max(json_q, q)
    return "html" if html_q > json_q else "json"


def _media_range(part: str) -> tuple[str, float]:
    media, *params = (p.strip() for p in part.split(";"))
    q = 1.0
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), q
