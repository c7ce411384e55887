"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__, health, pages
from app.assets import routes as assets_routes
from app.db import create_db_engine, database_url, make_sessionmaker
from app.errors import DatabaseUnavailable, install_error_handlers
from app.settings import Settings, get_settings

log = logging.getLogger("cityrisk")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment).

    The engine is made at start-up but connects lazily, so the service starts even while the
    database is away: ``/healthz`` answers and ``/readyz`` says 503 with the reason.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = None
        app.state.sessionmaker = None
        app.state.db_error = None
        app.state.page_links = []
        try:
            engine = create_db_engine(
                database_url(settings), connect_timeout_s=settings.db_connect_timeout_s
            )
        except DatabaseUnavailable as exc:
            app.state.db_error = exc.message
            log.warning("starting without a database: %s", exc.message)
        else:
            app.state.engine = engine
            app.state.sessionmaker = make_sessionmaker(engine)
        try:
            yield
        finally:
            if app.state.engine is not None:
                app.state.engine.dispose()

    app = FastAPI(
        title="cityrisk",
        version=__version__,
        summary="Urban safety risk map: assets, live readings, graded alarms, risk layers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(assets_routes.router)
    return app
