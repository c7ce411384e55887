"""Domain errors and the one place that maps them onto HTTP responses.

Only 4xx messages reach clients as written; anything unexpected becomes a 500 that says
"internal error" and is logged with its traceback. A database that cannot be reached is not
unexpected: every connection-level failure (:func:`database_unavailable`) is answered as
:class:`DatabaseUnavailable`, a 503 with ``Retry-After``, on every route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.responses import Response

log = logging.getLogger("cityrisk")

#: ``Retry-After`` when the app carries no settings (an app built without its lifespan).
DEFAULT_RETRY_AFTER_S = 5
#: Longest echoed ``input`` of a 422 without settings (``CITYRISK_ERROR_INPUT_MAX_CHARS``).
DEFAULT_ERROR_INPUT_MAX_CHARS = 200

# SQLSTATEs that say "the server is away or refuses connections now", not "your query failed":
# class 08 (connection exception), 57P01 admin_shutdown (a fast or smart stop), 57P02
# crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, in recovery) and 53300
# too_many_connections. Not 57014 (statement timeout) or 55P03 (lock timeout): those are the
# query's, and have their own answers.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def listed(names: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` of ``names`` for a message, and how many more: messages stay short
    whatever a request held.

    >>> listed(["a", "b"]), listed([f"s{i}" for i in range(8)])
    ('a, b', 's0, s1, s2, s3, s4 and 3 more')
    """
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


class CityriskError(Exception):
    """Base of cityrisk's errors; ``status_code`` says how the API answers it."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class NotFound(CityriskError):
    status_code = HTTPStatus.NOT_FOUND


class InvalidInput(CityriskError):
    """Malformed or out-of-range input (bbox, CRS, limits, files)."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


class BadRequest(CityriskError):
    """A request parameter the protocol defines as 400 (OGC API parameters)."""

    status_code = HTTPStatus.BAD_REQUEST


class Conflict(CityriskError):
    status_code = HTTPStatus.CONFLICT


class Unauthorized(CityriskError):
    """No credentials, or credentials that are not valid (RFC 6750: with ``WWW-Authenticate``)."""

    status_code = HTTPStatus.UNAUTHORIZED


class Forbidden(CityriskError):
    """Valid credentials whose role may not do this."""

    status_code = HTTPStatus.FORBIDDEN


class UnsupportedMediaType(CityriskError):
    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class TooManyRequests(CityriskError):
    """A rate limit: ``Retry-After`` says when to come back."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS


class DatabaseUnavailable(CityriskError):
    """The database cannot be reached or lacks PostGIS; the message names the problem.

    Answered as a 503 with ``Retry-After`` (``CITYRISK_RETRY_AFTER_S``).
    """

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


def _sqlstate(exc: BaseException | None) -> str | None:
    return getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None


def _is_connection_failure(exc: psycopg.Error) -> bool:
    """A psycopg error that says the connection failed (no SQLSTATE: the client saw it)."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = _sqlstate(exc)
    return state is None or state.startswith("08") or state in _UNAVAILABLE_SQLSTATES


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as :class:`DatabaseUnavailable` if it is a connection-level failure, else None.

    Connection-level: SQLAlchemy's ``OperationalError``/``InterfaceError`` over such a psycopg
    error (or any ``DBAPIError`` that invalidated its connection), psycopg's own
    ``OperationalError``/``InterfaceError`` (COPY and the tile pool talk to psycopg directly)
    with no SQLSTATE, class 08, 57P01/57P02/57P03 or 53300, and a pool timeout (SQLAlchemy's
    ``TimeoutError``, psycopg_pool's ``PoolTimeout``: every connection is stuck on the outage).

    Examples
    --------
    >>> database_unavailable(psycopg.OperationalError("connection refused")).message
    'the database is unavailable: connection refused'
    >>> database_unavailable(ValueError("no")) is None
    True
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    reason: BaseException | None = None
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool: no connection freed in pool_timeout
        reason = exc
    elif isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        if exc.connection_invalidated or (
            isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            and (not isinstance(orig, psycopg.Error) or _is_connection_failure(orig))
        ):
            reason = orig if orig is not None else exc
    elif isinstance(exc, psycopg.Error) and _is_connection_failure(exc):
        reason = exc  # psycopg_pool.PoolTimeout is a psycopg OperationalError without SQLSTATE
    if reason is None:
        return None
    first = next((line for line in str(reason).strip().splitlines() if line.strip()), "")
    return DatabaseUnavailable(
        f"the database is unavailable: {first.strip() or type(reason).__name__}"
    )


def text_refused(exc: BaseException) -> InvalidInput | None:
    """``exc`` as :class:`InvalidInput` if PostgreSQL (or psycopg, before sending) refused a
    text value of the request because it holds a NUL byte, else None.

    The routes refuse NUL in parameters up front, naming them (:func:`app.params.refuse_nul`);
    this catches the rest — a field of a body or a file — so that it is a 422, not a 500.
    psycopg refuses NUL in text client-side (``DataError``, no SQLSTATE); the server refuses
    ``\\u0000`` in jsonb with 22P05 untranslatable_character.
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if not isinstance(orig, psycopg.DataError):
        return None
    state = _sqlstate(orig)
    if (state is None and "NUL" in str(orig)) or state == "22P05":
        return InvalidInput(
            "a text value in the request holds a NUL byte (\\x00 or \\u0000), which PostgreSQL "
            "text cannot store; expected text without NUL bytes"
        )
    return None


def retry_after_s(request: Request) -> int:
    """The ``Retry-After`` of a 503 (seconds), from the app's settings."""
    settings = getattr(request.app.state, "settings", None)
    reliability = getattr(settings, "reliability", None)
    return int(getattr(reliability, "retry_after_s", DEFAULT_RETRY_AFTER_S))


def error_headers(request: Request, exc: CityriskError) -> dict[str, str] | None:
    """Headers an error response carries: its own (``WWW-Authenticate`` on a 401, a rate
    limit's ``Retry-After``), and ``Retry-After`` on every 503."""
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.SERVICE_UNAVAILABLE:
        headers.setdefault("Retry-After", str(retry_after_s(request)))
    return headers or None


def _handle_cityrisk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CityriskError)
    return JSONResponse(
        status_code=exc.status_code,
        content={"code": type(exc).__name__, "detail": exc.message},
        headers=error_headers(request, exc),
    )


def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    refused = text_refused(exc)
    if refused is not None:
        return _handle_cityrisk_error(request, refused)
    unavailable = database_unavailable(exc)
    if unavailable is None:
        raise exc  # neither the input's fault nor an outage: the catch-all 500, traceback logged
    log.warning("%s %s: %s", request.method, request.url.path, unavailable.message)
    return _handle_cityrisk_error(request, unavailable)


def clip(value: Any, max_chars: int) -> Any:
    """``value`` cut for echoing in an error: text longer than ``max_chars`` ends "… (N more)".

    Containers are clipped item by item, and shown as cut JSON when still too long, so a
    validation error never echoes a 10 MB field (or body) back whole.

    Examples
    --------
    >>> clip("x" * 12, 5)
    'xxxxx… (7 more)'
    >>> clip({"note": "y" * 30, "n": 1}, 10)
    '{"note": "… (40 more)'
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        extra = len(value) - max_chars
        return value if extra <= 0 else f"{value[:max_chars]}… ({extra:,} more)"
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return value if len(text) <= max_chars else clip(text, max_chars)
    return value


def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``detail``: the list of errors), with ``code`` and each ``input`` clipped
    to ``CITYRISK_ERROR_INPUT_MAX_CHARS``."""
    assert isinstance(exc, RequestValidationError)
    settings = getattr(request.app.state, "settings", None)
    reliability = getattr(settings, "reliability", None)
    max_chars = int(getattr(reliability, "error_input_max_chars", DEFAULT_ERROR_INPUT_MAX_CHARS))
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = clip(error["input"], max_chars)
        if isinstance(error.get("ctx"), dict):
            error["ctx"] = {k: clip(v, max_chars) for k, v in error["ctx"].items()}
        errors.append(error)
    return JSONResponse(
        status_code=HTTPStatus.UNPROCESSABLE_ENTITY,
        content=jsonable_encoder({"code": "RequestValidationError", "detail": errors}),
    )


#: What FastAPI says of a body it cannot decode, and what cityrisk says instead.
_UNPARSEABLE_BODY = "There was an error parsing the body"


def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors (a body that is not JSON, an unknown path, a wrong
    method), in the shape of every other error: ``{"code", "detail"}``."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == HTTPStatus.BAD_REQUEST and detail == _UNPARSEABLE_BODY:
        media = request.headers.get("content-type", "none")
        detail = f"the body could not be parsed as {media!r}; expected a well-formed JSON document"
    try:
        code = HTTPStatus(exc.status_code).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        code = "HTTPError"
    return JSONResponse(
        status_code=exc.status_code,
        content={"code": code, "detail": detail},
        headers=dict(exc.headers) if exc.headers else None,
    )


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORS middleware whose refused preflight is an error in the one shape.

    Starlette answers a preflight it refuses with a ``text/plain`` 400 ("Disallowed CORS
    origin"), outside every exception handler (it runs before the app); this one answers
    ``{"code": "BadRequest", "detail": …}`` naming what was asked and what is allowed.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != HTTPStatus.BAD_REQUEST:
            return answer
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        asked = [
            h.strip() for h in request_headers.get("access-control-request-headers", "").split(",")
        ]
        problems: list[str] = []
        if not self.is_allowed_origin(origin=origin):
            problems.append(
                f"origin {origin!r} is not one of CITYRISK_CORS_ORIGINS {self.allow_origins}"
            )
        if method not in self.allow_methods:
            problems.append(f"method {method!r} is not one of {', '.join(self.allow_methods)}")
        refused = [
            h
            for h in asked
            if h and h.lower() not in self.allow_headers and not self.allow_all_headers
        ]
        if refused:
            problems.append(f"headers {refused} are not among {sorted(self.allow_headers)}")
        if (
            "access-control-request-private-network" in request_headers
            and not self.allow_private_network
        ):
            problems.append("private-network access is not allowed")
        headers = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return JSONResponse(
            status_code=HTTPStatus.BAD_REQUEST,
            content={
                "code": "BadRequest",
                "detail": "CORS preflight refused: " + "; ".join(problems or ["not allowed"]),
            },
            headers=headers,
        )


def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500, content={"code": "InternalError", "detail": "internal error"}
    )


#: The exception types :func:`database_unavailable` may turn into a 503.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    psycopg.Error,
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping from domain errors to responses on ``app``."""
    app.add_exception_handler(CityriskError, _handle_cityrisk_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _handle_database_error)
    app.add_exception_handler(Exception, _handle_unexpected)
