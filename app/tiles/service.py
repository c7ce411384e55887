"""Serving tiles: resolve layers, read data versions, answer from the cache or from PostGIS.

The tile path is asynchronous end to end (no worker-thread hop) and costs at most one database
round trip per request: a cache hit none while the data versions are pushed by NOTIFY
(:class:`~app.tiles.versions.VersionWatch`), and a miss one prepared query on a connection
whose ``statement_timeout`` and ``jit`` are set when it opens.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from http import HTTPStatus

import psycopg
from psycopg import AsyncRawCursor
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from app.db import libpq_url
from app.errors import CityriskError, DatabaseUnavailable, NotFound
from app.settings import TileSettings
from app.tiles.cache import CachedTile, TileCache
from app.tiles.versions import (
    VersionReader,
    VersionWatch,
    layers_version,
    read_versions,
    short_hash,
)
from layers.base import Layer, Registry
from layers.tiles import TileAddress, TileOptions, TileSQL, compile_tile, mode_of

#: Most layers one composite request may name (each adds a subquery to the statement).
MAX_COMPOSITE = 16
#: Tiles larger than this (bytes) are gzipped on a worker thread, not on the event loop.
GZIP_OFFLOAD_BYTES = 256 * 1024

# Tile SQL is compiled with $n placeholders and run on a raw cursor: psycopg converts
# %(name)s queries on every execute and caches that only under 4,096 characters; the tile
# statements are ~4,600, and converting them was 10 % of the server's GIL time under the soak
# (py-spy --gil, stop 23).
_DIALECT = PGDialect_psycopg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


class TileTimeout(CityriskError):
    """The tile statement ran past ``statement_timeout``; the client may retry or zoom in."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


@dataclass(frozen=True)
class TileResult:
    """A tile and what the HTTP layer needs to answer for it."""

    tile: CachedTile | None
    """None when the client's ``If-None-Match`` matched: answer 304 with ``matched``."""
    etag_base: str
    version: str | None
    cache_hit: bool
    matched: str | None = None


#: psycopg's automatic preparation after this many runs of a statement: never, in practice;
#: the tile statement asks for it (``prepare=True``).
PREPARE_ON_REQUEST = 2**31 - 1


class TileService:
    """Per-process tile machinery: registry, compiled statements, cache, database pools."""

    def __init__(self, registry: Registry, settings: TileSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.options = TileOptions(buffer=settings.buffer, max_features=settings.max_features)
        self.cache = TileCache(int(settings.cache_mb * 1024 * 1024))
        self._compiled: dict[tuple[tuple[str, ...], tuple[str, ...]], TileSQL] = {}
        self._lock = threading.Lock()
        self._db: Engine | None = None
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Future[AsyncConnectionPool] | None = None
        self._versions: VersionReader | VersionWatch | None = None
        self._building: dict[Hashable, asyncio.Future[CachedTile]] = {}

    # -- connections -------------------------------------------------------------------

    def db(self, app_engine: Engine) -> Engine:
        """A small synchronous pool for TileJSON and the map page (version tokens, bounds)."""
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = create_engine(
                        app_engine.url,
                        pool_pre_ping=False,
                        isolation_level="AUTOCOMMIT",
                        pool_size=2,
                        max_overflow=4,
                        connect_args={"connect_timeout": 5, "application_name": "cityrisk-tiles"},
                    )
        return self._db

    async def pool(self, app_engine: Engine) -> AsyncConnectionPool:
        """The tiles' async pool on the app's database, opened on first use in this loop.

        Autocommit (a tile is one read-only statement); ``statement_timeout`` and JIT off are
        connection options, so they cost no round trip per tile. JIT off: tile statements are
        short, and their estimated cost often crosses ``jit_above_cost``, where compiling
        would take longer than the query (~200 ms).
        """
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open(app_engine))
        try:
            return await asyncio.shield(self._opening)
        except Exception:
            self._opening = None  # the next request tries again
            raise

    async def _open(self, app_engine: Engine) -> AsyncConnectionPool:
        options = f"-c statement_timeout={int(self.settings.statement_timeout_ms)} -c jit=off"
        conninfo = libpq_url(app_engine.url.render_as_string(hide_password=False))
        pool = AsyncConnectionPool(
            conninfo,
            kwargs={
                "autocommit": True,
                # Prepared on request only (prepare=True). Not None: in psycopg 3.3 None turns
                # prepare=True off too, and every tile was planned again.
                "prepare_threshold": PREPARE_ON_REQUEST,
                "connect_timeout": 5,
                "application_name": "cityrisk-tiles",
                "options": options,
            },
            min_size=1,
            max_size=self.settings.pool_size,
            timeout=self.settings.pool_timeout_s,
            open=False,
        )
        await pool.open(wait=False)
        reader = VersionReader(conninfo)
        self._versions = (
            VersionWatch(conninfo, reader) if self.settings.freshness == "notify" else reader
        )
        self._pool = pool
        return pool

    def close(self) -> None:
        """Close the synchronous pool (the async one closes in :meth:`aclose`)."""
        if self._db is not None:
            self._db.dispose()
            self._db = None

    async def aclose(self) -> None:
        """Close both pools (at shutdown, in the loop that opened the async one)."""
        self.close()
        pool, self._pool, self._opening = self._pool, None, None
        versions, self._versions = self._versions, None
        if versions is not None:
            versions.close()
        if pool is not None:
            await pool.close()

    @property
    def versions(self) -> VersionReader | VersionWatch | None:
        """How this process learns data versions (None until the first tile request)."""
        return self._versions

    # -- layers and statements ---------------------------------------------------------

    def resolve(self, spec: str) -> tuple[Layer, ...]:
        """``"a"`` or ``"a,b"`` to layers; :class:`NotFound` naming unknown ids."""
        ids = [s for s in spec.split(",") if s]
        if not ids or len(ids) > MAX_COMPOSITE or len(set(ids)) != len(ids):
            raise NotFound(
                f"layers {spec!r}: name 1 to {MAX_COMPOSITE} distinct layer ids, comma-separated"
            )
        unknown = [i for i in ids if i not in self.registry]
        if unknown:
            raise NotFound(
                f"no layer {', '.join(map(repr, unknown))}; GET /layers lists the "
                f"{len(self.registry)} layers"
            )
        return tuple(self.registry.get(i) for i in ids)

    def statement(self, layers: tuple[Layer, ...], z: int) -> TileSQL:
        """The compiled statement for ``layers`` at zoom ``z`` (compiled once per mode)."""
        modes = tuple(mode_of(layer, z) for layer in layers)
        key = (tuple(layer.id for layer in layers), modes)
        found = self._compiled.get(key)
        if found is None:
            found = compile_tile(layers, z, self.options, _DIALECT)
            with self._lock:
                self._compiled.setdefault(key, found)
        return found

    # -- tiles -------------------------------------------------------------------------

    async def get_tile(
        self,
        engine: Engine,
        layers: tuple[Layer, ...],
        tile: TileAddress,
        *,
        if_none_match: frozenset[str] = frozenset(),
    ) -> TileResult:
        """The tile, from the cache when its data version is unchanged, else from PostGIS.

        The data versions come first (see :mod:`app.tiles.versions`); a client already
        holding this version's ETag gets a 304 without the tile being looked up or built.
        """
        pool = await self.pool(engine)
        assert self._versions is not None
        ids = ",".join(layer.id for layer in layers)
        try:
            versions = await self._versions.current()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"tiles: the database did not answer: {exc}") from None
        version = layers_version(layers, versions)
        if version is None:
            built = await self._build(pool, layers, tile)
            etag_base = short_hash(ids, tile.z, tile.x, tile.y, built.raw)
            matched = _matching(etag_base, if_none_match)
            if matched is not None:
                return TileResult(None, etag_base, None, cache_hit=False, matched=matched)
            return TileResult(built, etag_base, None, cache_hit=False)
        etag_base = short_hash(ids, tile.z, tile.x, tile.y, version)
        matched = _matching(etag_base, if_none_match)
        if matched is not None:
            return TileResult(None, etag_base, version, cache_hit=True, matched=matched)
        key = (ids, tile.z, tile.x, tile.y, version)
        cached = self.cache.get(key)
        if cached is not None:
            return TileResult(cached, etag_base, version, cache_hit=True)
        built = await self._build_once(key, pool, layers, tile)
        return TileResult(built, etag_base, version, cache_hit=False)

    async def _build_once(
        self, key: Hashable, pool: AsyncConnectionPool, layers: tuple[Layer, ...], tile: TileAddress
    ) -> CachedTile:
        """Build and cache a tile; concurrent misses of the same key share one build."""
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedTile] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            built = await self._build(pool, layers, tile)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) raise it themselves
            raise
        finally:
            del self._building[key]
        self.cache.put(key, built)
        future.set_result(built)
        return built

    async def _build(
        self, pool: AsyncConnectionPool, layers: tuple[Layer, ...], tile: TileAddress
    ) -> CachedTile:
        compiled = self.statement(layers, tile.z)
        if all(mode == "none" for mode in compiled.modes):
            return CachedTile(b"", b"", tuple(0 for _ in layers))
        try:
            async with pool.connection() as conn:
                cur = AsyncRawCursor(conn)
                await cur.execute(compiled.sql, compiled.args(tile), prepare=True)
                row = await cur.fetchone()
        except pg_errors.QueryCanceled:
            raise TileTimeout(
                f"tile {tile.z}/{tile.x}/{tile.y} of {','.join(x.id for x in layers)} took "
                f"longer than {self.settings.statement_timeout_ms} ms; zoom in or retry"
            ) from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"tiles: the database did not answer: {exc}") from None
        assert row is not None
        raw = bytes(row[0] or b"")
        if len(raw) > GZIP_OFFLOAD_BYTES:
            gz = await asyncio.to_thread(_gzip, raw)
        else:
            gz = _gzip(raw)
        return CachedTile(raw, gz, tuple(int(n or 0) for n in row[1:]))

    def version_token(self, engine: Engine, layers: tuple[Layer, ...]) -> str | None:
        """The current ``?v=`` token of ``layers`` (None when they have no version)."""
        with self.db(engine).connect() as conn:
            version = layers_version(layers, read_versions(conn))
        return None if version is None else short_hash(version)[:12]


def _gzip(raw: bytes) -> bytes:
    # mtime=0: the same tile compresses to the same bytes in every process.
    return gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""


def etag(base: str, gzipped: bool) -> str:
    """Strong ETag of one representation: the gzip body is other bytes, so another tag."""
    return f'"{base}-gz"' if gzipped else f'"{base}"'


def _matching(base: str, if_none_match: frozenset[str]) -> str | None:
    """The tag of ``base`` the client holds, if any (either encoding: same data version)."""
    if "*" in if_none_match:
        return etag(base, False)
    for gzipped in (True, False):
        tag = etag(base, gzipped)
        if tag in if_none_match:
            return tag
    return None
