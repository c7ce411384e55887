"""Serving tiles: resolve layers, read data versions, answer from the cache or from PostGIS."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from app.errors import CityriskError, NotFound
from app.tiles.cache import CachedTile, TileCache
from app.tiles.settings import TileSettings
from app.tiles.versions import layers_version, read_versions, short_hash
from layers.registry import Layer, Registry
from layers.tiles import TileAddress, TileOptions, TileSQL, compile_tile, mode_of

#: Most layers one composite request may name (each adds a subquery to the statement).
MAX_COMPOSITE = 16


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


class TileService:
    """Per-process tile machinery: registry, compiled statements, cache. Thread-safe."""

    def __init__(self, registry: Registry, settings: TileSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.options = TileOptions(buffer=settings.buffer, max_features=settings.max_features)
        self.cache = TileCache(int(settings.cache_mb * 1024 * 1024))
        self._compiled: dict[tuple[tuple[str, ...], tuple[str, ...]], TileSQL] = {}
        self._lock = threading.Lock()
        self._db: Engine | None = None

    def db(self, app_engine: Engine) -> Engine:
        """The tiles' own pool on the app's database: autocommit, no pre-ping.

        Reading the data versions is then one round trip per request (the app engine's
        checkout adds a ping, a BEGIN and a ROLLBACK: three more, which on a cache hit cost
        more than everything else). A connection that died is invalidated by SQLAlchemy on
        the error, so one request fails with 503 and the next reconnects.
        """
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = create_engine(
                        app_engine.url,
                        pool_pre_ping=False,
                        isolation_level="AUTOCOMMIT",
                        pool_size=8,
                        max_overflow=8,
                        connect_args={"connect_timeout": 5, "application_name": "cityrisk-tiles"},
                    )
        return self._db

    def close(self) -> None:
        """Close the tiles' pool (at shutdown)."""
        if self._db is not None:
            self._db.dispose()
            self._db = None

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

    def statement(self, layers: tuple[Layer, ...], z: int, engine: Engine) -> TileSQL:
        """The compiled statement for ``layers`` at zoom ``z`` (compiled once per mode)."""
        modes = tuple(mode_of(layer, z) for layer in layers)
        key = (tuple(layer.id for layer in layers), modes)
        found = self._compiled.get(key)
        if found is None:
            found = compile_tile(layers, z, self.options, engine.dialect)
            with self._lock:
                self._compiled.setdefault(key, found)
        return found

    def get_tile(
        self,
        engine: Engine,
        layers: tuple[Layer, ...],
        tile: TileAddress,
        *,
        if_none_match: frozenset[str] = frozenset(),
    ) -> TileResult:
        """The tile, from the cache when its data version is unchanged, else from PostGIS.

        One small query reads the data versions; a client already holding this version's
        ETag gets a 304 without the tile being looked up or built.
        """
        ids = ",".join(layer.id for layer in layers)
        with self.db(engine).connect() as conn:
            version = layers_version(layers, read_versions(conn))
            if version is not None:
                etag_base = short_hash(ids, tile.z, tile.x, tile.y, version)
                matched = _matching(etag_base, if_none_match)
                if matched is not None:
                    return TileResult(None, etag_base, version, cache_hit=True, matched=matched)
                key = (ids, tile.z, tile.x, tile.y, version)
                cached = self.cache.get(key)
                if cached is not None:
                    return TileResult(cached, etag_base, version, cache_hit=True)
            built = self._build(conn, layers, tile, engine)
        if version is None:
            etag_base = short_hash(ids, tile.z, tile.x, tile.y, built.raw)
            matched = _matching(etag_base, if_none_match)
            if matched is not None:
                return TileResult(None, etag_base, None, cache_hit=False, matched=matched)
        else:
            self.cache.put(key, built)
        return TileResult(built, etag_base, version, cache_hit=False)

    def _build(
        self, conn: Any, layers: tuple[Layer, ...], tile: TileAddress, engine: Engine
    ) -> CachedTile:
        compiled = self.statement(layers, tile.z, engine)
        if all(mode == "none" for mode in compiled.modes):
            return CachedTile(b"", b"", tuple(0 for _ in layers))
        conn.exec_driver_sql("BEGIN")  # the pool is autocommit: a transaction for SET LOCAL
        try:
            # Local settings end with this transaction: the pooled connection keeps none. JIT
            # off: tile statements are short, and their estimated cost often crosses
            # jit_above_cost, where compiling would take longer than the query (~200 ms).
            conn.exec_driver_sql(
                "SELECT set_config('statement_timeout', %(ms)s, true), "
                "set_config('jit', 'off', true)",
                {"ms": str(int(self.settings.statement_timeout_ms))},
            )
            row = conn.exec_driver_sql(compiled.sql, compiled.params(tile)).one()
        except DBAPIError as exc:
            if isinstance(exc.orig, pg_errors.QueryCanceled):
                raise TileTimeout(
                    f"tile {tile.z}/{tile.x}/{tile.y} of {','.join(x.id for x in layers)} took "
                    f"longer than {self.settings.statement_timeout_ms} ms; zoom in or retry"
                ) from None
            raise
        finally:
            conn.exec_driver_sql("ROLLBACK")  # read-only: nothing to commit; ends the settings
        raw = bytes(row[0] or b"")
        # mtime=0: the same tile compresses to the same bytes in every process.
        gz = gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""
        return CachedTile(raw, gz, tuple(int(n or 0) for n in row[1:]))

    def version_token(self, engine: Engine, layers: tuple[Layer, ...]) -> str | None:
        """The current ``?v=`` token of ``layers`` (None when they have no version)."""
        with self.db(engine).connect() as conn:
            version = layers_version(layers, read_versions(conn))
        return None if version is None else short_hash(version)[:12]


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
