"""Domain errors and the one place that maps them onto HTTP responses.

Only 4xx messages reach clients as written; anything unexpected becomes a 500 that says
"internal error" and is logged with its traceback. A database that cannot be reached is not
unexpected: every connection-level failure (:func:`database_unavailable`) is answered as
:class:`DatabaseUnavailable`, a 503 with ``Retry-After``, on every route.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = logging.getLogger("cityrisk")

#: ``Retry-After`` when the app carries no settings (an app built without its lifespan).
DEFAULT_RETRY_AFTER_S = 5

# SQLSTATEs that say "the server is away or refuses connections now", not "your query failed":
# class 08 (connection exception), 57P01 admin_shutdown (a fast or smart stop), 57P02
# crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, in recovery) and 53300
# too_many_connections. Not 57014 (statement timeout) or 55P03 (lock timeout): those are the
# query's, and have their own answers.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class CityriskError(Exception):
    """Base of cityrisk's errors; ``status_code`` says how the API answers it."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def retry_after_s(request: Request) -> int:
    """The ``Retry-After`` of a 503 (seconds), from the app's settings."""
    settings = getattr(request.app.state, "settings", None)
    reliability = getattr(settings, "reliability", None)
    return int(getattr(reliability, "retry_after_s", DEFAULT_RETRY_AFTER_S))


def error_headers(request: Request, exc: CityriskError) -> dict[str, str] | None:
    """Headers an error response carries: ``Retry-After`` on every 503."""
    if exc.status_code == HTTPStatus.SERVICE_UNAVAILABLE:
        return {"Retry-After": str(retry_after_s(request))}
    return None


def _handle_cityrisk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CityriskError)
    return JSONResponse(
        status_code=exc.status_code,
        content={"code": type(exc).__name__, "detail": exc.message},
        headers=error_headers(request, exc),
    )


def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    unavailable = database_unavailable(exc)
    if unavailable is None:
        raise exc  # not an outage: on to the catch-all 500, traceback logged
    log.warning("%s %s: %s", request.method, request.url.path, unavailable.message)
    return _handle_cityrisk_error(request, unavailable)


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
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _handle_database_error)
    app.add_exception_handler(Exception, _handle_unexpected)
