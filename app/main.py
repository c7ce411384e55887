"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import __version__
from app.api import alarms as alarms_routes
from app.api import assets as assets_routes
from app.api import auth as auth_routes
from app.api import events as events_routes
from app.api import health
from app.api import impact as impact_routes
from app.api import risk as risk_routes
from app.api import rules as rules_routes
from app.api import sensors as sensors_routes
from app.api.mqtt import start_background_consumer
from app.api.openapi import install_openapi
from app.api.watch import OfflineWatch
from app.auth.dependencies import read_gate
from app.db import create_db_engine, database_url, make_sessionmaker
from app.errors import CORSMiddleware, DatabaseUnavailable, install_error_handlers
from app.limits import BodyLimitMiddleware, BodyTooLarge, handle_body_too_large
from app.maps import pages
from app.maps import routes as map_routes
from app.ogc import routes as ogc_routes
from app.ogc import tiles as ogc_tiles
from app.params import refuse_nul
from app.settings import Settings, get_settings
from app.tiles import routes as tiles_routes

log = logging.getLogger("cityrisk")

#: Response headers a cross-origin client may read (the tile cache's and the conditional GET's).
CORS_EXPOSE_HEADERS = ("ETag", "X-Tile-Cache", "Tile-Feature-Cap-Reached", "Content-Encoding")


_frozen = threading.Event()


def freeze_startup_heap() -> bool:
    """Move what is alive at start-up out of the cyclic collector's sight, once per process.

    The modules, the layer registry, the ORM's mappers and the like (~275,000 objects tracked by
    the collector in a served process) live as long as the process, yet every full (gen-2)
    collection walked them all while holding the GIL: 150–190 ms of CPU, every ~20 s under
    ``bench/soak.py``, during which no request of any client made progress. Frozen
    (``gc.freeze``), they are skipped: gen-2 collections took 5–15 ms (stop 23, measured with
    ``gc.callbacks``), and the soak's quiet ingest p99 fell from 1,158 to 814 ms (one 60 s run
    each). Returns whether this call froze (False: already done in this process).
    """
    if _frozen.is_set():
        return False
    _frozen.set()
    gc.collect()
    gc.freeze()
    log.debug("froze %d start-up objects", gc.get_freeze_count())
    return True


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
        app.state.page_links = [{"href": "ogc", "title": "OGC API – Features: the assets"}]
        # The layer registry is validated here, once: a broken layer stops the start-up.
        app.state.tiles = tiles_routes.build_service(settings.tiles)
        try:
            # Every query a request can start (the risk refresh too) is bounded by the server.
            engine = create_db_engine(
                database_url(settings),
                connect_timeout_s=settings.db_connect_timeout_s,
                statement_timeout_s=settings.limits.statement_s,
            )
        except DatabaseUnavailable as exc:
            app.state.db_error = exc.message
            log.warning("starting without a database: %s", exc.message)
        else:
            app.state.engine = engine
            app.state.sessionmaker = make_sessionmaker(engine)
        app.state.offline_watch = (
            OfflineWatch(app.state.sessionmaker, settings.offline_check_s).start()
            if app.state.sessionmaker is not None and settings.offline_check_s > 0
            else None
        )
        # Live readings over MQTT, on a thread; None unless enabled and a broker is configured/up.
        app.state.mqtt_consumer = start_background_consumer(settings)
        freeze_startup_heap()
        try:
            yield
        finally:
            if app.state.mqtt_consumer is not None:
                app.state.mqtt_consumer.stop()
            if app.state.offline_watch is not None:
                app.state.offline_watch.stop()
            await app.state.tiles.aclose()
            if app.state.engine is not None:
                app.state.engine.dispose()

    app = FastAPI(
        title="cityrisk",
        version=__version__,
        summary="Urban safety risk map: assets, live readings, graded alarms, risk layers.",
        lifespan=lifespan,
        # Every route but the tiles' (which solve no dependencies and check their own strings);
        # closed reads add one app-wide gate (open reads, the default: none at all).
        dependencies=[Depends(refuse_nul)]
        + ([] if settings.auth.open_reads else [Depends(read_gate)]),
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_exception_handler(BodyTooLarge, handle_body_too_large)
    app.include_router(health.router)
    # Routes match in order, each a regex test: the hottest paths (tiles) go first.
    app.include_router(tiles_routes.router)
    app.include_router(pages.router)
    app.include_router(map_routes.router)
    app.include_router(assets_routes.router)
    app.include_router(sensors_routes.router)
    app.include_router(ogc_routes.router)
    app.include_router(ogc_tiles.router)
    app.include_router(alarms_routes.router)
    app.include_router(rules_routes.router)
    app.include_router(events_routes.router)
    app.include_router(risk_routes.router)
    app.include_router(impact_routes.router)
    app.include_router(auth_routes.router)
    # Bodies are counted as they stream in and refused at their route's limit (app/limits.py).
    app.add_middleware(BodyLimitMiddleware, limits=settings.limits)
    if settings.cors_origins:
        # Opt-in only: every middleware layer costs the tile hot path throughput.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=["If-None-Match"],
            allow_credentials=False,
            expose_headers=list(CORS_EXPOSE_HEADERS),
        )
    return app
