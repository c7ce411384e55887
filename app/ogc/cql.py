"""CQL2 filters (OGC API Features Part 3): parse into a pygeofilter AST, translate to SQLAlchemy.

Parsing
-------
Both encodings end in pygeofilter's AST (``pygeofilter.ast`` nodes and ``pygeofilter.values``),
but not through pygeofilter's own CQL2 parsers: version 0.4.0 (the latest) fails on parts of
CQL2 1.0 that a server must accept — each of these was tried against it:

* cql2-text: ``T_*`` temporal functions in function form (``T_AFTER(a, b)``), ``INTERVAL`` with
  dates or ``'..'``, ``BBOX(…)`` literals, doubled quotes (``'O''Brien'``), one-letter property
  names, and ``AND`` binding tighter than ``OR`` (it gives both the same precedence);
* cql2-json: ``between`` with three arguments, ``{"bbox": …}`` (its corners are swapped),
  ``t_intersects`` (read as ``t_overlaps``).

So the text grammar below is a small LALR grammar written against the CQL2 1.0 BNF that reuses
pygeofilter's WKT grammar and transformer, and the JSON reader is a short walk of the document.

Translation
-----------
:func:`to_where` turns the AST into a SQLAlchemy boolean expression over ``asset``. Property
names are checked against the collection (:mod:`app.assets.catalog`), operand types are checked
before any SQL runs (a string compared with a number is a 400, not a PostgreSQL error), and
every literal is a bound parameter. pygeofilter's own SQLAlchemy backend was not used: it cannot
type JSONB attributes, measures ``DWITHIN`` in degrees, converts kilometres the wrong way round
and has no notion of a year-valued temporal property.

Semantics worth knowing:

* LIKE follows CQL2: ``%`` any run, ``_`` one character, ``\\`` escapes — PostgreSQL's own
  LIKE syntax, so patterns pass through unchanged.
* ``CASEI`` is ``lower()``. ``ACCENTI`` and arithmetic are refused (400).
* Spatial functions take CRS84 longitude/latitude; ``S_DWITHIN(geometry, <geom>, <metres>)`` is
  an extension measured geodesically (served by the ``geom::geography`` index).
* Temporal functions apply to the collection's year property (e.g. ``install_year``): a feature
  is the closed year interval ``[Y, Y]``; a literal instant is reduced to its calendar year and
  an interval to ``[start year, end year]`` (``'..'`` open). The CQL2 begin/end definitions of
  each ``T_*`` operator are then applied to those year intervals.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import orjson
import pygeofilter.parsers
import shapely
import shapely.geometry
from geoalchemy2 import Geography
from lark import Lark, Token, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, VisitError
from pygeofilter import ast, values
from pygeofilter.parsers.wkt import WKTTransformer
from shapely.validation import explain_validity
from sqlalchemy import (
    Boolean,
    LargeBinary,
    Numeric,
    Text,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.sql.elements import ColumnElement

from app.assets.catalog import GEOMETRY, Collection, JsonType
from app.errors import BadRequest
from app.settings import LimitSettings

#: Deepest nesting accepted in a filter unless told (the default of CITYRISK_MAX_CQL_DEPTH, read
#: from the class: no environment at import); deeper is refused before it exhausts the stack.
MAX_DEPTH: int = LimitSettings.model_fields["cql_depth"].default


def _bad(message: str) -> BadRequest:
    return BadRequest(f"filter: {message}")


# -- AST nodes pygeofilter lacks --------------------------------------------------------------


@dataclass
class TimeIntersects(ast.Predicate):  # type: ignore[misc]
    """``T_INTERSECTS(a, b)``: pygeofilter folds it into ``T_OVERLAPS``, which differs."""

    lhs: Any
    rhs: Any

    def get_sub_nodes(self) -> list[Any]:
        return [self.lhs, self.rhs]

    def get_template(self) -> str:
        return "T_INTERSECTS({}, {})"


#: CQL2 1.0 temporal function names → AST classes (pygeofilter still uses the draft names
#: BEGINS/ENDS for STARTS/FINISHES).
TEMPORAL_OPS: dict[str, type[Any]] = {
    "t_after": ast.TimeAfter,
    "t_before": ast.TimeBefore,
    "t_contains": ast.TimeContains,
    "t_disjoint": ast.TimeDisjoint,
    "t_during": ast.TimeDuring,
    "t_equals": ast.TimeEquals,
    "t_finishedby": ast.TimeEndedBy,
    "t_finishes": ast.TimeEnds,
    "t_intersects": TimeIntersects,
    "t_meets": ast.TimeMeets,
    "t_metby": ast.TimeMetBy,
    "t_overlappedby": ast.TimeOverlappedBy,
    "t_overlaps": ast.TimeOverlaps,
    "t_startedby": ast.TimeBegunBy,
    "t_starts": ast.TimeBegins,
}

SPATIAL_OPS: dict[str, type[Any]] = {
    "s_intersects": ast.GeometryIntersects,
    "s_equals": ast.GeometryEquals,
    "s_disjoint": ast.GeometryDisjoint,
    "s_touches": ast.GeometryTouches,
    "s_within": ast.GeometryWithin,
    "s_overlaps": ast.GeometryOverlaps,
    "s_crosses": ast.GeometryCrosses,
    "s_contains": ast.GeometryContains,
}

COMPARISON_OPS: dict[str, type[Any]] = {
    "=": ast.Equal,
    "<>": ast.NotEqual,
    "<": ast.LessThan,
    "<=": ast.LessEqual,
    ">": ast.GreaterThan,
    ">=": ast.GreaterEqual,
}


# -- literals shared by both encodings --------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(f"DATE {text!r} is not a date like 2005-06-30") from None


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _bad(
            f"TIMESTAMP {text!r} is not an RFC 3339 time like 2005-06-30T12:00:00Z"
        ) from None


def _instant(text: str) -> date | datetime | None:
    """An interval bound: ``'..'`` (open), a date or a timestamp."""
    if text in ("..", ""):
        return None
    return _timestamp(text) if "T" in text.upper() else _date(text)


def _envelope(coords: Sequence[Any]) -> values.Envelope:
    """A ``BBOX`` literal (4 numbers, or 6 with heights that are ignored) as an envelope."""
    if len(coords) not in (4, 6) or not all(_is_number(c) for c in coords):
        raise _bad(f"a bbox takes 4 or 6 numbers, got {list(coords)!r}")
    minx, miny, maxx, maxy = (
        (coords[0], coords[1], coords[2], coords[3])
        if len(coords) == 4
        else (coords[0], coords[1], coords[3], coords[4])
    )
    # pygeofilter's Envelope is (x1, x2, y1, y2), not the bbox order.
    return values.Envelope(minx, maxx, miny, maxy)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- cql2-text --------------------------------------------------------------------------------

# Keywords are string literals so that Lark retypes a matching identifier into the keyword (a
# keyword regex would lose against the longer identifier regex). Keywords are case-insensitive;
# a property whose name is a keyword must be double-quoted ("date").
_GRAMMAR = r"""
?start: bool_expr

?bool_expr: bool_term
          | bool_expr "OR"i bool_term                               -> or_
?bool_term: bool_factor
          | bool_term "AND"i bool_factor                            -> and_
?bool_factor: bool_primary
            | "NOT"i bool_primary                                   -> not_
?bool_primary: predicate
             | "(" bool_expr ")"
             | "TRUE"i                                              -> include
             | "FALSE"i                                             -> exclude

?predicate: scalar COMP_OP scalar                                   -> compare
          | scalar "LIKE"i scalar                                   -> like
          | scalar "NOT"i "LIKE"i scalar                            -> not_like
          | scalar "BETWEEN"i scalar "AND"i scalar                  -> between
          | scalar "NOT"i "BETWEEN"i scalar "AND"i scalar           -> not_between
          | scalar "IN"i "(" scalar ("," scalar)* ")"               -> in_
          | scalar "NOT"i "IN"i "(" scalar ("," scalar)* ")"        -> not_in
          | scalar "IS"i "NULL"i                                    -> is_null
          | scalar "IS"i "NOT"i "NULL"i                             -> is_not_null
          | spatial_fn "(" geom_expr "," geom_expr ")"              -> spatial
          | "S_DWITHIN"i "(" geom_expr "," geom_expr "," number ")" -> dwithin
          | temporal_fn "(" temporal_expr "," temporal_expr ")"     -> temporal
          | function

!spatial_fn: "S_INTERSECTS"i | "S_EQUALS"i | "S_DISJOINT"i | "S_TOUCHES"i | "S_WITHIN"i
           | "S_OVERLAPS"i | "S_CROSSES"i | "S_CONTAINS"i
!temporal_fn: "T_AFTER"i | "T_BEFORE"i | "T_CONTAINS"i | "T_DISJOINT"i | "T_DURING"i
            | "T_EQUALS"i | "T_FINISHEDBY"i | "T_FINISHES"i | "T_INTERSECTS"i | "T_MEETS"i
            | "T_METBY"i | "T_OVERLAPPEDBY"i | "T_OVERLAPS"i | "T_STARTEDBY"i | "T_STARTS"i

?scalar: property
       | STRING                                                     -> string
       | number
       | "TRUE"i                                                    -> true
       | "FALSE"i                                                   -> false
       | "CASEI"i "(" scalar ")"                                    -> casei
       | "ACCENTI"i "(" scalar ")"                                  -> accenti
       | date
       | timestamp
       | function

?geom_expr: property
          | ewkt_geometry                                           -> geometry
          | "BBOX"i "(" number ("," number)* ")"                    -> bbox
          | function

?temporal_expr: property
              | date
              | timestamp
              | "INTERVAL"i "(" STRING "," STRING ")"               -> interval
              | function

date: "DATE"i "(" STRING ")"
timestamp: "TIMESTAMP"i "(" STRING ")"
function: IDENT "(" [scalar ("," scalar)*] ")"
property: IDENT | QUOTED_IDENT
number: NUMBER

COMP_OP: "<>" | "<=" | ">=" | "=" | "<" | ">"
IDENT: /[A-Za-z_][A-Za-z0-9_.:]*/i
QUOTED_IDENT: /"[^"]+"/
STRING: /'(?:[^']|'')*'/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/

%import wkt.ewkt_geometry
%import common.WS
%ignore WS
"""


@v_args(inline=True)
class _TextTransformer(WKTTransformer):  # type: ignore[misc]
    """Builds pygeofilter AST nodes while parsing (WKT handled by pygeofilter's transformer)."""

    def or_(self, lhs: Any, rhs: Any) -> Any:
        return ast.Or(lhs, rhs)

    def and_(self, lhs: Any, rhs: Any) -> Any:
        return ast.And(lhs, rhs)

    def not_(self, node: Any) -> Any:
        return ast.Not(node)

    def include(self) -> Any:
        return ast.Include(False)

    def exclude(self) -> Any:
        return ast.Include(True)

    def compare(self, lhs: Any, op: Token, rhs: Any) -> Any:
        return COMPARISON_OPS[str(op)](lhs, rhs)

    def like(self, lhs: Any, pattern: Any) -> Any:
        return _like(lhs, pattern, not_=False)

    def not_like(self, lhs: Any, pattern: Any) -> Any:
        return _like(lhs, pattern, not_=True)

    def between(self, lhs: Any, low: Any, high: Any) -> Any:
        return ast.Between(lhs, low, high, False)

    def not_between(self, lhs: Any, low: Any, high: Any) -> Any:
        return ast.Between(lhs, low, high, True)

    def in_(self, lhs: Any, *items: Any) -> Any:
        return ast.In(lhs, list(items), False)

    def not_in(self, lhs: Any, *items: Any) -> Any:
        return ast.In(lhs, list(items), True)

    def is_null(self, lhs: Any) -> Any:
        return ast.IsNull(lhs, False)

    def is_not_null(self, lhs: Any) -> Any:
        return ast.IsNull(lhs, True)

    def spatial_fn(self, token: Token) -> str:
        return str(token).lower()

    def temporal_fn(self, token: Token) -> str:
        return str(token).lower()

    def spatial(self, op: str, lhs: Any, rhs: Any) -> Any:
        return SPATIAL_OPS[op](lhs, rhs)

    def dwithin(self, lhs: Any, rhs: Any, distance: Any) -> Any:
        return ast.DistanceWithin(lhs, rhs, distance, "meters")

    def temporal(self, op: str, lhs: Any, rhs: Any) -> Any:
        return TEMPORAL_OPS[op](lhs, rhs)

    def string(self, token: Token) -> str:
        return str(token)[1:-1].replace("''", "'")

    def number(self, token: Token) -> int | float:
        text = str(token)
        try:
            return int(text)
        except ValueError:
            return float(text)

    def true(self) -> bool:
        return True

    def false(self) -> bool:
        return False

    def casei(self, arg: Any) -> Any:
        return ast.Function("casei", [arg])

    def accenti(self, arg: Any) -> Any:
        return ast.Function("accenti", [arg])

    def function(self, name: Token, *args: Any) -> Any:
        return ast.Function(str(name), [a for a in args if a is not None])

    def property(self, token: Token) -> Any:
        text = str(token)
        return ast.Attribute(text[1:-1] if text.startswith('"') else text)

    def date(self, text: Token) -> date:
        return _date(self.string(text))

    def timestamp(self, text: Token) -> datetime:
        return _timestamp(self.string(text))

    def interval(self, start: Token, end: Token) -> Any:
        return values.Interval(_instant(self.string(start)), _instant(self.string(end)))

    def geometry(self, geojson: dict[str, Any]) -> Any:
        return values.Geometry(geojson)

    def bbox(self, *coords: Any) -> Any:
        return _envelope(coords)

    # pygeofilter's versions of these two print to stdout; SRID= is refused (filter-crs rules).
    def wkt__geometry_with_srid(self, srid: Any, geometry: Any) -> Any:
        raise _bad("SRID= is not accepted in WKT; coordinates are CRS84 longitude/latitude")

    def wkt__multipoint_2(self, *coordinates: Any) -> Any:
        return {"type": "MultiPoint", "coordinates": coordinates}


def _like(lhs: Any, pattern: Any, *, not_: bool) -> Any:
    # The pattern is kept as given (a string or CASEI(string)); CQL2's wildcards are fixed.
    return ast.Like(lhs, pattern, False, "%", "_", "\\", not_)


_TEXT_PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    transformer=_TextTransformer(),
    import_paths=[os.path.dirname(pygeofilter.parsers.__file__)],
    maybe_placeholders=False,
)


def parse_cql2_text(text: str) -> Any:
    """Parse a cql2-text filter into a pygeofilter AST; 400 with the position if it is not one."""
    try:
        return _TEXT_PARSER.parse(text)
    except VisitError as exc:
        if isinstance(exc.orig_exc, BadRequest):
            raise exc.orig_exc from None
        raise _bad(f"cannot read {_clip(text)}: {exc.orig_exc}") from None
    except UnexpectedInput as exc:
        raise _bad(_describe_parse_error(text, exc)) from None
    except LarkError as exc:
        raise _bad(f"cannot parse {_clip(text)}: {exc}") from None
    except RecursionError:
        raise _bad("nested too deeply") from None


def _describe_parse_error(text: str, exc: UnexpectedInput) -> str:
    column = getattr(exc, "column", "?")
    if isinstance(exc, UnexpectedCharacters):
        start = exc.pos_in_stream or 0
        near = text[start : start + 20]
        found = f"unexpected text {near!r}"
    else:
        token = getattr(exc, "token", None)
        found = (
            "unexpected end of filter"
            if token is None or token.type == "$END"
            else (f"unexpected {str(token)!r}")
        )
    return (
        f"cannot parse {_clip(text)} as cql2-text: {found} at column {column}. "
        "Example: install_year >= 1990 AND material IN ('steel','PE')"
    )


# -- cql2-json --------------------------------------------------------------------------------


def parse_cql2_json(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a cql2-json filter (a JSON text) into a pygeofilter AST; 400 if it is not one."""
    try:
        document = orjson.loads(text)
    except ValueError as exc:
        raise _bad(
            f"not JSON ({exc}); cql2-json looks like "
            '{"op": "=", "args": [{"property": "name"}, "Main St"]}'
        ) from None
    return _JsonReader(max_depth).predicate(document, 0)


class _JsonReader:
    """A walk over a cql2-json document (CQL2 1.0 §8 encoding) producing pygeofilter nodes."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    def predicate(self, node: object, depth: int) -> Any:
        if depth > self.max_depth:
            raise _too_deep(self.max_depth)
        if isinstance(node, bool):
            return ast.Include(not node)
        op, args = self._op(node)
        if op in ("and", "or"):
            if len(args) < 2:
                raise _bad(f'"{op}" takes at least 2 arguments, got {len(args)}')
            items = [self.predicate(a, depth + 1) for a in args]
            combine = ast.And if op == "and" else ast.Or
            result = items[0]
            for item in items[1:]:
                result = combine(result, item)
            return result
        if op == "not":
            self._arity(op, args, 1)
            return ast.Not(self.predicate(args[0], depth + 1))
        if op in COMPARISON_OPS:
            self._arity(op, args, 2)
            return COMPARISON_OPS[op](*(self.scalar(a, depth + 1) for a in args))
        if op == "like":
            self._arity(op, args, 2)
            return _like(
                self.scalar(args[0], depth + 1), self.scalar(args[1], depth + 1), not_=False
            )
        if op == "between":
            self._arity(op, args, 3)
            lhs, low, high = (self.scalar(a, depth + 1) for a in args)
            return ast.Between(lhs, low, high, False)
        if op == "in":
            self._arity(op, args, 2)
            if not isinstance(args[1], list) or not args[1]:
                raise _bad('"in" takes a value and a non-empty array of values')
            items = [self.scalar(a, depth + 1) for a in args[1]]
            return ast.In(self.scalar(args[0], depth + 1), items, False)
        if op == "isnull":
            self._arity("isNull", args, 1)
            return ast.IsNull(self.scalar(args[0], depth + 1), False)
        if op in SPATIAL_OPS:
            self._arity(op, args, 2)
            return SPATIAL_OPS[op](*(self.spatial(a, depth + 1) for a in args))
        if op == "s_dwithin":
            self._arity(op, args, 3)
            distance = args[2]
            if not _is_number(distance):
                raise _bad(f"s_dwithin takes a distance in metres, got {distance!r}")
            lhs, rhs = (self.spatial(a, depth + 1) for a in args[:2])
            return ast.DistanceWithin(lhs, rhs, distance, "meters")
        if op in TEMPORAL_OPS:
            self._arity(op, args, 2)
            return TEMPORAL_OPS[op](*(self.scalar(a, depth + 1) for a in args))
        if op in ("+", "-", "*", "/", "%", "^", "div"):
            raise _bad("arithmetic (+ - * /) is not supported")
        # Anything else is a function used as a predicate; the translator names what it knows.
        return ast.Function(op, [self.scalar(a, depth + 1) for a in args])

    def scalar(self, node: object, depth: int) -> Any:
        if depth > self.max_depth:
            raise _too_deep(self.max_depth)
        if node is None:
            raise _bad("null is not a CQL2 literal; use isNull")
        if isinstance(node, str | bool) or _is_number(node):
            if isinstance(node, float) and not math.isfinite(node):
                raise _bad(f"{node!r} is not a finite number")
            return node
        if isinstance(node, dict):
            if "property" in node:
                name = node["property"]
                if not isinstance(name, str):
                    raise _bad(f"a property name is a string, got {name!r}")
                return ast.Attribute(name)
            if "date" in node:
                return _date(self._text(node["date"], "date"))
            if "timestamp" in node:
                return _timestamp(self._text(node["timestamp"], "timestamp"))
            if "interval" in node:
                return self._interval(node["interval"])
            if "op" in node:
                op, args = self._op(node)
                if op in ("+", "-", "*", "/", "%", "^", "div"):
                    raise _bad("arithmetic (+ - * /) is not supported")
                if op in ("casei", "accenti"):
                    self._arity(op, args, 1)
                    return ast.Function(op, [self.scalar(args[0], depth + 1)])
                return self.predicate(node, depth)
            if "type" in node or "bbox" in node:
                return self.spatial(node, depth)
        raise _bad(f"cannot read {orjson.dumps(node).decode()[:200]} as a CQL2 expression")

    def spatial(self, node: object, depth: int) -> Any:
        if isinstance(node, dict):
            if "bbox" in node:
                bbox = node["bbox"]
                if not isinstance(bbox, list):
                    raise _bad(f"bbox must be an array of numbers, got {bbox!r}")
                return _envelope(bbox)
            if "type" in node and ("coordinates" in node or "geometries" in node):
                return values.Geometry(node)
        return self.scalar(node, depth)

    def _interval(self, bounds: object) -> Any:
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise _bad(f"an interval is an array of 2 instants, got {bounds!r}")
        return values.Interval(*(_instant(self._text(b, "interval")) for b in bounds))

    @staticmethod
    def _text(value: object, what: str) -> str:
        if not isinstance(value, str):
            raise _bad(f"{what} takes a string, got {value!r}")
        return value

    @staticmethod
    def _op(node: object) -> tuple[str, list[Any]]:
        if not isinstance(node, dict) or "op" not in node:
            raise _bad(
                f'expected a predicate such as {{"op": "=", "args": [...]}}, '
                f"got {orjson.dumps(node).decode()[:200]}"
            )
        op, args = node["op"], node.get("args", [])
        if not isinstance(op, str) or not isinstance(args, list):
            raise _bad(
                f'"op" is a string and "args" an array, got {orjson.dumps(node).decode()[:200]}'
            )
        return op.lower(), args

    @staticmethod
    def _arity(op: str, args: list[Any], count: int) -> None:
        if len(args) != count:
            raise _bad(f'"{op}" takes {count} argument(s), got {len(args)}')


def parse(text: str, lang: Literal["cql2-text", "cql2-json"], *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` in ``lang`` into a pygeofilter AST (cql2-json: at most ``max_depth``
    levels deep; a cql2-text AST is measured by :func:`to_where`)."""
    if lang == "cql2-text":
        return parse_cql2_text(text)
    return parse_cql2_json(text, max_depth=max_depth)


def _too_deep(max_depth: int) -> BadRequest:
    return _bad(
        f"the filter is nested deeper than {max_depth} levels (CITYRISK_MAX_CQL_DEPTH); "
        "flatten it, e.g. a IN (1, 2) instead of a = 1 OR (a = 2 OR …)"
    )


# -- translation to SQL -----------------------------------------------------------------------

OperandType = Literal["string", "number", "boolean", "date", "geometry", "instant", "interval"]


_OPERAND_TYPES: dict[JsonType, OperandType] = {
    "integer": "number",
    "number": "number",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
}


@dataclass(frozen=True)
class _Operand:
    sql: ColumnElement[Any]
    type: OperandType
    value: Any = None
    """The Python value of a literal (None for a property or function)."""
    prop: str | None = None
    """The property name when the operand is a bare property."""
    casei: bool = False


_SPATIAL_SQL: dict[type[Any], Callable[..., ColumnElement[bool]]] = {
    ast.GeometryIntersects: func.ST_Intersects,
    ast.GeometryEquals: func.ST_Equals,
    ast.GeometryDisjoint: func.ST_Disjoint,
    ast.GeometryTouches: func.ST_Touches,
    ast.GeometryWithin: func.ST_Within,
    ast.GeometryOverlaps: func.ST_Overlaps,
    ast.GeometryCrosses: func.ST_Crosses,
    ast.GeometryContains: func.ST_Contains,
}

# T_op(literal, property) is T_inverse(property, literal).
_TEMPORAL_INVERSE: dict[type[Any], type[Any]] = {
    ast.TimeAfter: ast.TimeBefore,
    ast.TimeBefore: ast.TimeAfter,
    ast.TimeContains: ast.TimeDuring,
    ast.TimeDuring: ast.TimeContains,
    ast.TimeEndedBy: ast.TimeEnds,
    ast.TimeEnds: ast.TimeEndedBy,
    ast.TimeMeets: ast.TimeMetBy,
    ast.TimeMetBy: ast.TimeMeets,
    ast.TimeOverlappedBy: ast.TimeOverlaps,
    ast.TimeOverlaps: ast.TimeOverlappedBy,
    ast.TimeBegunBy: ast.TimeBegins,
    ast.TimeBegins: ast.TimeBegunBy,
    ast.TimeDisjoint: ast.TimeDisjoint,
    ast.TimeEquals: ast.TimeEquals,
    TimeIntersects: TimeIntersects,
}

_TEMPORAL_NAMES = {cls: name.upper() for name, cls in TEMPORAL_OPS.items()}


def to_where(
    node: Any, collection: Collection, *, max_depth: int = MAX_DEPTH
) -> ColumnElement[bool]:
    """The SQL condition for filter ``node`` on ``collection``; 400 for anything it cannot mean.

    Parameters
    ----------
    node : pygeofilter AST node
        As returned by :func:`parse`.
    collection : Collection
        Decides which properties exist, their types and the temporal property.
    max_depth : int, default MAX_DEPTH
        Deepest nesting accepted (``CITYRISK_MAX_CQL_DEPTH``).

    Raises
    ------
    BadRequest
        Unknown property or function, operands of mismatched types, an invalid geometry, or a
        construct this server does not implement (arithmetic, ACCENTI, arrays).
    """
    return _Translator(collection, max_depth).predicate(node, 0)


class _Translator:
    def __init__(self, collection: Collection, max_depth: int) -> None:
        self.collection = collection
        self.max_depth = max_depth

    # predicates ------------------------------------------------------------------------------

    def predicate(self, node: Any, depth: int) -> ColumnElement[bool]:
        if depth > self.max_depth:
            raise _too_deep(self.max_depth)
        if isinstance(node, ast.And | ast.Or):
            # Flatten chains iteratively: "a OR b OR … " a thousand times deep is still one level.
            kind = type(node)
            parts, stack = [], [node]
            while stack:
                item = stack.pop()
                if type(item) is kind:
                    stack.extend([item.rhs, item.lhs])
                else:
                    parts.append(self.predicate(item, depth + 1))
            return and_(*parts) if kind is ast.And else or_(*parts)
        if isinstance(node, ast.Not):
            return not_(self.predicate(node.sub_node, depth + 1))
        if isinstance(node, ast.Include):
            return false() if node.not_ else true()
        if isinstance(node, ast.Comparison):
            return self.comparison(node, depth)
        if isinstance(node, ast.Like):
            return self.like(node, depth)
        if isinstance(node, ast.Between):
            return self.between(node, depth)
        if isinstance(node, ast.In):
            return self.in_(node, depth)
        if isinstance(node, ast.IsNull):
            operand = self.operand(node.lhs, depth + 1)
            return operand.sql.is_not(None) if node.not_ else operand.sql.is_(None)
        if isinstance(node, ast.SpatialComparisonPredicate):
            lhs, rhs = self.geometries(node.lhs, node.rhs, depth)
            return _SPATIAL_SQL[type(node)](lhs, rhs)
        if isinstance(node, ast.DistanceWithin):
            return self.dwithin(node, depth)
        if isinstance(node, ast.TemporalPredicate | TimeIntersects):
            return self.temporal(node, depth)
        if isinstance(node, ast.Function):
            # Unknown functions raise here with their own message; CASEI(x) is a value, not a
            # predicate, and falls through to the error below.
            self.function(node, depth)
        if isinstance(node, bool):
            return true() if node else false()
        raise _bad(f"{_describe(node)} is not a predicate this server evaluates")

    def comparison(self, node: Any, depth: int) -> ColumnElement[bool]:
        op = node.op.value
        lhs, rhs = self.operand(node.lhs, depth + 1), self.operand(node.rhs, depth + 1)
        self.same_type(lhs, rhs, f"'{op}'")
        if lhs.type in ("geometry", "interval"):
            raise _bad(f"'{op}' does not compare {lhs.type}s; use S_EQUALS or T_EQUALS")
        if lhs.type == "boolean" and op not in ("=", "<>"):
            raise _bad(f"booleans compare only with = and <>, not {op!r}")
        ops: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
            "=": lambda a, b: a == b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return ops[op](lhs.sql, rhs.sql)

    def like(self, node: Any, depth: int) -> ColumnElement[bool]:
        lhs = self.operand(node.lhs, depth + 1)
        pattern = self.operand(node.pattern, depth + 1)
        if lhs.type != "string" or pattern.type != "string":
            raise _bad(
                f"LIKE compares strings; got {_describe(node.lhs)} ({lhs.type}) LIKE "
                f"{_describe(node.pattern)} ({pattern.type})"
            )
        if isinstance(pattern.value, str) and _ends_with_escape(pattern.value):
            raise _bad(f"LIKE pattern {pattern.value!r} ends with a lone escape character '\\'")
        # PostgreSQL's LIKE has CQL2's wildcards and escape, so the pattern goes through as is.
        condition = lhs.sql.like(pattern.sql)
        return not_(condition) if node.not_ else condition

    def between(self, node: Any, depth: int) -> ColumnElement[bool]:
        lhs, low, high = (self.operand(n, depth + 1) for n in (node.lhs, node.low, node.high))
        for operand, which in ((lhs, node.lhs), (low, node.low), (high, node.high)):
            if operand.type != "number":
                raise _bad(f"BETWEEN takes numbers; {_describe(which)} is a {operand.type}")
        condition = lhs.sql.between(low.sql, high.sql)
        return not_(condition) if node.not_ else condition

    def in_(self, node: Any, depth: int) -> ColumnElement[bool]:
        lhs = self.operand(node.lhs, depth + 1)
        items = [self.operand(item, depth + 1) for item in node.sub_nodes]
        for item in items:
            self.same_type(lhs, item, "IN")
        if lhs.type in ("geometry", "interval"):
            raise _bad(f"IN does not apply to {lhs.type}s")
        condition = lhs.sql.in_([item.sql for item in items])
        return not_(condition) if node.not_ else condition

    def dwithin(self, node: Any, depth: int) -> ColumnElement[bool]:
        lhs, rhs = self.geometries(node.lhs, node.rhs, depth)
        distance = node.distance
        if not _is_number(distance) or not math.isfinite(distance) or distance < 0:
            raise _bad(f"S_DWITHIN takes a distance in metres >= 0, got {distance!r}")
        # Geodesic metres; the geography cast on geom matches the ix_asset_geog index.
        return func.ST_DWithin(
            sql_cast(lhs, Geography), sql_cast(rhs, Geography), literal(float(distance))
        )

    def temporal(self, node: Any, depth: int) -> ColumnElement[bool]:
        name = _TEMPORAL_NAMES[type(node)]
        kind: type[Any] = type(node)
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs, kind = rhs, lhs, _TEMPORAL_INVERSE[kind]
        if not isinstance(lhs, ast.Attribute):
            raise _bad(f"{name} needs a property and a time literal, got {_describe(node.lhs)}")
        temporal = self.collection.temporal
        if temporal is None:
            raise _bad(f"{name}: collection {self.collection.id!r} has no temporal property")
        if lhs.name != temporal:
            self.collection.lookup(lhs.name, what="filter")
            raise _bad(f"{name} applies to the temporal property {temporal!r}, not {lhs.name!r}")
        start, end = _year_range(rhs, name)
        year = self.collection.properties[temporal].expression()
        return _year_relation(kind, year, start, end)

    def function(self, node: Any, depth: int) -> _Operand:
        name = node.name.lower()
        if name in ("casei", "lower"):
            if len(node.arguments) != 1:
                raise _bad(f"CASEI takes 1 argument, got {len(node.arguments)}")
            arg = self.operand(node.arguments[0], depth + 1)
            if arg.type != "string":
                raise _bad(f"CASEI takes a string, got a {arg.type}")
            value = arg.value.lower() if isinstance(arg.value, str) else None
            return _Operand(func.lower(arg.sql), "string", value=value, casei=True)
        if name == "accenti":
            raise _bad("ACCENTI is not supported (accent-insensitive comparison)")
        raise _bad(f"unknown function {node.name!r}; the functions here are CASEI")

    # operands --------------------------------------------------------------------------------

    def operand(self, node: Any, depth: int) -> _Operand:
        if depth > self.max_depth:
            raise _too_deep(self.max_depth)
        if isinstance(node, ast.Attribute):
            return self.property_operand(node.name)
        if isinstance(node, ast.Function):
            return self.function(node, depth)
        if isinstance(node, bool):
            return _Operand(literal(node, Boolean), "boolean", value=node)
        if isinstance(node, int | float):
            if not math.isfinite(node):
                raise _bad(f"{node!r} is not a finite number")
            return _Operand(literal(node, Numeric), "number", value=node)
        if isinstance(node, str):
            return _Operand(literal(node, Text), "string", value=node)
        if isinstance(node, datetime):
            return _Operand(literal(node.isoformat(), Text), "instant", value=node)
        if isinstance(node, date):
            return _Operand(literal(node.isoformat(), Text), "date", value=node)
        if isinstance(node, values.Interval):
            return _Operand(literal(None), "interval", value=node)
        if isinstance(node, values.Geometry | values.Envelope):
            return _Operand(_geometry_literal(node), "geometry", value=node)
        if isinstance(node, ast.Arithmetic):
            raise _bad("arithmetic (+ - * /) is not supported")
        raise _bad(f"{_describe(node)} is not a value this server evaluates")

    def property_operand(self, name: str) -> _Operand:
        if name == GEOMETRY:
            return _Operand(self.collection.source.geom, "geometry", prop=name)
        prop = self.collection.lookup(name, what="filter")
        return _Operand(prop.expression(), _OPERAND_TYPES[prop.type], prop=name)

    def geometries(self, lhs: Any, rhs: Any, depth: int) -> tuple[Any, Any]:
        a, b = self.operand(lhs, depth + 1), self.operand(rhs, depth + 1)
        for operand, node in ((a, lhs), (b, rhs)):
            if operand.type != "geometry":
                raise _bad(
                    f"spatial functions take geometries ({GEOMETRY!r} or a WKT/GeoJSON/BBOX "
                    f"literal); {_describe(node)} is a {operand.type}"
                )
        return a.sql, b.sql

    def same_type(self, lhs: _Operand, rhs: _Operand, what: str) -> None:
        if lhs.type == rhs.type:
            return
        hint = ""
        temporal = self.collection.temporal
        if temporal in (lhs.prop, rhs.prop) and {lhs.type, rhs.type} & {"date", "instant"}:
            hint = (
                f"; {temporal} is a year number: compare it with a number ({temporal} >= 2000) "
                f"or use T_AFTER({temporal}, DATE('2000-01-01'))"
            )
        raise _bad(
            f"{what} compares values of one type; got {lhs.prop or _show(lhs.value)} "
            f"({lhs.type}) and {rhs.prop or _show(rhs.value)} ({rhs.type}){hint}"
        )


def _ends_with_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _check_rings_closed(geo: Any) -> None:
    """Refuse a polygon ring whose last position is not its first (RFC 7946 §3.1.6, Simple
    Features): shapely would close it silently, answering a query the client did not write."""
    kind = geo.get("type") if isinstance(geo, dict) else None
    if kind == "GeometryCollection":
        for part in geo.get("geometries") or ():
            _check_rings_closed(part)
        return
    polygons = {"Polygon": [geo.get("coordinates")], "MultiPolygon": geo.get("coordinates")}
    for rings in polygons.get(kind or "") or ():
        for ring in rings or ():
            points = [tuple(p) for p in ring]
            if len(points) < 4 or points[0] != points[-1]:
                raise _bad(
                    f"invalid geometry: a {kind} ring has {len(points)} position(s) from "
                    f"{points[0] if points else None} to {points[-1] if points else None}; "
                    "expected a closed ring of at least 4 positions, the last equal to the first"
                )


def _geometry_literal(node: Any) -> ColumnElement[Any]:
    """A bound, validated CRS84 geometry: WKB in a parameter, never text spliced into SQL."""
    try:
        interface = node.__geo_interface__
        _check_rings_closed(interface)
        geom = shapely.geometry.shape(interface)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise _bad(f"invalid geometry: {exc}") from None
    geom = shapely.force_2d(geom)
    if not geom.is_empty:
        minx, miny, maxx, maxy = geom.bounds
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            raise _bad("geometry coordinates must be finite numbers")
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise _bad(
                f"geometry bounds {geom.bounds} fall outside CRS84 longitude [-180, 180] / "
                "latitude [-90, 90]"
            )
        if not geom.is_valid:
            raise _bad(f"invalid geometry: {explain_validity(geom)}")
    return func.ST_GeomFromWKB(literal(shapely.to_wkb(geom), LargeBinary), 4326)


def _year_range(node: Any, name: str) -> tuple[int | None, int | None]:
    """A temporal literal reduced to inclusive calendar years (None: open)."""
    if isinstance(node, values.Interval):
        start = None if node.start is None else _year_of(node.start, name)
        end = None if node.end is None else _year_of(node.end, name)
        if start is not None and end is not None and start > end:
            raise _bad(f"{name}: the interval ends before it starts")
        return start, end
    if isinstance(node, date):  # datetime is a date too
        year = node.year
        return year, year
    raise _bad(f"{name} compares with a DATE, TIMESTAMP or INTERVAL, got {_describe(node)}")


def _year_of(value: Any, name: str) -> int:
    if isinstance(value, date):
        return value.year
    raise _bad(f"{name}: interval bounds are dates or timestamps, got {value!r}")


def _year_relation(
    kind: type[Any], year: ColumnElement[Any], a: int | None, b: int | None
) -> ColumnElement[bool]:
    """CQL2's begin/end definition of ``kind`` for the feature ``[Y, Y]`` against ``[a, b]``.

    ``None`` bounds are open (``a`` = -infinity, ``b`` = +infinity). Relations that need the
    feature to outlast the literal at one end (``T_CONTAINS``, ``T_OVERLAPS``, ``T_STARTEDBY``
    …) cannot hold for a one-year feature and give FALSE. Features without a year never match.
    """

    def cmp(op: str, bound: int | None, *, open_is: bool) -> ColumnElement[bool]:
        if bound is None:
            return true() if open_is else false()
        return {"<": year < bound, ">": year > bound, "=": year == bound}[op]

    # Y > a and Y < b hold for open bounds; Y < a, Y > b and equalities do not.
    above_a = cmp(">", a, open_is=True)
    below_b = cmp("<", b, open_is=True)
    relations: dict[type[Any], ColumnElement[bool]] = {
        TimeIntersects: and_(not_(cmp("<", a, open_is=False)), not_(cmp(">", b, open_is=False))),
        ast.TimeDisjoint: or_(cmp("<", a, open_is=False), cmp(">", b, open_is=False)),
        ast.TimeBefore: cmp("<", a, open_is=False),
        ast.TimeAfter: cmp(">", b, open_is=False),
        ast.TimeEquals: and_(cmp("=", a, open_is=False), cmp("=", b, open_is=False)),
        ast.TimeDuring: and_(above_a, below_b),
        ast.TimeEnds: and_(above_a, cmp("=", b, open_is=False)),  # T_FINISHES
        ast.TimeBegins: and_(cmp("=", a, open_is=False), below_b),  # T_STARTS
        ast.TimeMeets: cmp("=", a, open_is=False),
        ast.TimeMetBy: cmp("=", b, open_is=False),
    }
    # T_CONTAINS, T_FINISHEDBY, T_STARTEDBY, T_OVERLAPS, T_OVERLAPPEDBY
    relation = relations.get(kind, false())
    return and_(year.is_not(None), relation)


def _describe(node: Any) -> str:
    if isinstance(node, ast.Attribute):
        return f"property {node.name!r}"
    if isinstance(node, ast.Function):
        return f"function {node.name}()"
    if isinstance(node, ast.Node):
        return type(node).__name__
    return _show(node)


def _show(value: Any) -> str:
    if isinstance(value, values.Geometry | values.Envelope):
        return "a geometry"
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    return repr(value)


def _clip(text: str, size: int = 200) -> str:
    """``text`` quoted, shortened for an error message."""
    return repr(text if len(text) <= size else text[:size] + "…")
