"""Domain errors and the one place that maps them onto HTTP responses.

Only 4xx messages reach clients as written; anything unexpected becomes a 500 that says
"internal error" and is logged with its traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("cityrisk")


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
    """The database cannot be reached or lacks PostGIS; the message names the problem."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


def _handle_cityrisk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CityriskError)
    return JSONResponse(
        status_code=exc.status_code,
        content={"code": type(exc).__name__, "detail": exc.message},
        headers=exc.headers,
    )


def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500, content={"code": "InternalError", "detail": "internal error"}
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping from domain errors to responses on ``app``."""
    app.add_exception_handler(CityriskError, _handle_cityrisk_error)
    app.add_exception_handler(Exception, _handle_unexpected)
