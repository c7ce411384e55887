"""Engine, sessions and the PostGIS readiness check.

Services ``flush()`` and never ``commit()``: the request dependency (:func:`get_session`) or the
CLI command owns the transaction, so several service calls commit or roll back together.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any

import numpy as np
import pandas as pd
import psycopg
from fastapi import Depends, Request
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.errors import CityriskError, DatabaseUnavailable
from app.local.cluster import ClusterError, LocalCluster
from app.settings import Settings

MIN_POSTGIS = (3, 1)

# Deterministic constraint names keep Alembic migrations stable and reviewable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every cityrisk table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(settings: Settings, *, driver: bool = True) -> str:
    """The service's URL: DATABASE_URL, else the project-local cluster's service role.

    ``driver``: the SQLAlchemy form (``postgresql+psycopg://``); False gives the libpq form
    (``psql "$(cityrisk db url)"``). Raises :class:`DatabaseUnavailable` for the local cluster
    before its first ``cityrisk db up``.
    """
    if settings.database_url is not None:
        return settings.database_url if driver else libpq_url(settings.database_url)
    try:
        return LocalCluster(settings).url(driver=driver)
    except ClusterError as exc:
        raise DatabaseUnavailable(str(exc)) from exc


def database_migrate_url(settings: Settings, *, driver: bool = True) -> str:
    """The URL migrations use: DATABASE_MIGRATE_URL, else DATABASE_URL, else the local superuser.

    The service's own role may not create extensions; the local cluster's superuser may, and
    :func:`app.migrations.upgrade` acts as the database's owner for everything else. With one
    role on an external server (DATABASE_URL alone) that role migrates, as before.
    """
    url = settings.database_migrate_url or settings.database_url
    if url is not None:
        return url if driver else libpq_url(url)
    try:
        return LocalCluster(settings).admin_url(driver=driver)
    except ClusterError as exc:
        raise DatabaseUnavailable(str(exc)) from exc


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL in the form psycopg / libpq take (``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, dbname: str) -> str:
    """``url`` naming the database ``dbname`` on the same server."""
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def create_db_engine(
    url: str,
    *,
    connect_timeout_s: int = 5,
    pool_size: int = 10,
    statement_timeout_s: float | None = None,
) -> Engine:
    """An engine for ``url`` that fails fast when the server is away.

    ``statement_timeout_s``: the server cancels any statement of its connections that runs
    longer (set at connection start, so it holds for every transaction, committed or not).
    """
    connect_args: dict[str, Any] = {
        "connect_timeout": connect_timeout_s,
        "application_name": "cityrisk",
    }
    if statement_timeout_s is not None:
        connect_args["options"] = (
            f"-c statement_timeout={max(1, round(statement_timeout_s * 1000))}"
        )
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def redacted(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class PostgisInfo:
    postgres_version: str
    postgis_version: str
    database: str


def postgis_info(conn: Connection) -> PostgisInfo:
    """Versions of the server and its PostGIS; raises DatabaseUnavailable without PostGIS >= 3.1."""
    row = conn.execute(
        text(
            "SELECT current_setting('server_version'), current_database(), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
        )
    ).one()
    server, dbname, ext = row
    if ext is None:
        raise DatabaseUnavailable(
            f"database {dbname!r} has no PostGIS extension: run `cityrisk migrate` "
            "(it runs CREATE EXTENSION postgis) or install PostGIS >= 3.1 on the server"
        )
    lib = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    if _version_tuple(lib) < MIN_POSTGIS:
        raise DatabaseUnavailable(f"PostGIS {lib} in {dbname!r} is too old; cityrisk needs >= 3.1")
    return PostgisInfo(postgres_version=server, postgis_version=lib, database=dbname)


def ensure_postgis(conn: Connection) -> None:
    """Create the PostGIS extension if the database lacks it, with a clear error if it cannot."""
    present = conn.execute(
        text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
    ).scalar_one_or_none()
    if present:
        return
    available = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    ).scalar_one_or_none()
    dbname = conn.execute(text("SELECT current_database()")).scalar_one()
    if not available:
        raise DatabaseUnavailable(
            f"the server of database {dbname!r} has no PostGIS installed: install PostGIS >= 3.1 "
            "there (Debian: apt-get install postgresql-<major>-postgis-3)"
        )
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"database {dbname!r} has no PostGIS extension and it could not be created ({reason}); "
            "ask a superuser to run CREATE EXTENSION postgis in it, or migrate as one "
            "(DATABASE_MIGRATE_URL)"
        ) from None


def check_connection(engine: Engine) -> PostgisInfo:
    """Connect once and return PostGIS info; DatabaseUnavailable with a one-line reason if not."""
    try:
        with engine.connect() as conn:
            return postgis_info(conn)
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {redacted(str(engine.url))}: {_first_line(exc)}"
        ) from None


def _first_line(exc: OperationalError) -> str:
    orig = exc.orig
    msg = str(orig) if isinstance(orig, psycopg.Error) else str(exc)
    return msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class StatementTimeout(CityriskError):
    """The server cancelled a statement of the request at ``CITYRISK_MAX_STATEMENT_S`` (503)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; commits when the handler returns, rolls back when it raises.

    A statement cancelled by the connection's ``statement_timeout`` becomes a 503 that says so.
    """
    factory: sessionmaker[Session] | None = request.app.state.sessionmaker
    if factory is None:
        raise DatabaseUnavailable(request.app.state.db_error or "no database configured")
    with factory() as session:
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            if isinstance(exc.orig, psycopg.errors.QueryCanceled):
                limit = request.app.state.settings.limits.statement_s
                raise StatementTimeout(
                    f"a database statement of {request.method} {request.url.path} ran longer "
                    f"than {limit:g} s (CITYRISK_MAX_STATEMENT_S) and was cancelled; nothing "
                    "was written"
                ) from exc
            raise
        except Exception:
            session.rollback()
            raise


DbSession = Annotated[Session, Depends(get_session)]


def stage_table(session: Session, ddl: str, name: str) -> None:
    """Create (``ddl``: a ``CREATE TEMP TABLE IF NOT EXISTS … ON COMMIT DROP`` or ``… ON COMMIT
    DELETE ROWS``) and empty a staging table for a COPY in this transaction.

    DELETE, not TRUNCATE: the table is empty or small (an earlier COPY in this transaction), and
    TRUNCATE gives it a new file each time — catalogue work that cost ingest ≈ 1 ms per batch.
    """
    session.execute(text(ddl))
    session.execute(text(f"DELETE FROM {name}"))


@contextmanager
def ordered_scans(session: Session) -> Iterator[None]:
    """Plan the statements run inside without a Sort node, for this transaction only.

    For "the last *k* readings of each sensor" (``CROSS JOIN LATERAL (… ORDER BY ts DESC LIMIT
    k)`` over the day partitions of ``reading``), PostgreSQL 15 prefers to read all of a
    sensor's readings in the partitions and top-N sort them, since it expects about one row per
    partition. So the alarm engine's context query grew with the day: 100 ms per 1,540-sensor
    batch at 30 readings per sensor in the day, 172 ms at 125 (EXPLAIN ANALYZE on the soak's
    demo city), and a full day of one-minute readings would read 1,440 rows per sensor. Without
    Sort it takes the ordered Append of backward index scans and stops after *k* rows: 37 ms,
    flat with the day. The previous value comes back at the end. Not in a ``finally``: after a
    failed statement the transaction is aborted, a restore would hide the error behind "current
    transaction is aborted", and the rollback undoes ``set_config(…, true)`` anyway.
    """
    before = session.execute(
        text("SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)")
    ).scalar_one()
    yield
    session.execute(text("SELECT set_config('enable_sort', :v, true)"), {"v": before})


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction, for COPY and the hot paths that
    need psycopg itself (a COPY's errors, plain-tuple fetches); the transaction stays the
    session's."""
    raw = session.connection().connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


def copy_into(
    session: Session,
    copy_sql: str,
    rows: Iterable[Sequence[Any]] | bytes,
    *,
    every: int = 10_000,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """COPY ``rows`` (tuples, or a ready binary COPY payload) on the session's connection."""
    with raw_connection(session).cursor() as cur, cur.copy(copy_sql) as copy:
        if isinstance(rows, bytes):
            copy.write(rows)
            return
        for done, row in enumerate(rows, start=1):
            copy.write_row(row)
            if on_progress is not None and done % every == 0:
                on_progress(done)


def copy_out(session: Session, copy_sql: str) -> bytes:
    """The whole output of ``copy_sql`` (a ``COPY … TO STDOUT``) on the session's connection."""
    with raw_connection(session).cursor() as cur, cur.copy(copy_sql) as copy:
        return b"".join(bytes(block) for block in copy)


# -- binary COPY: the one codec (ingest, risk) ------------------------------------------------
# PostgreSQL, "COPY … Binary Format": a header, rows of (field count, then each field's length
# and big-endian value, -1 for NULL), a trailer.

#: Binary COPY framing: signature, flags, extension length.
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PGCOPY_TRAILER = b"\xff\xff"  # a field count of -1
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in µs since the Unix epoch


def binary_copy_payload(columns: Sequence[np.ndarray[Any, Any]]) -> bytes:
    """A ``COPY … (FORMAT binary)`` payload of fixed-width, non-NULL columns, built by numpy.

    The fast path of the one binary COPY codec (this section): whole columns at once. Columns
    with NULLs, text, jsonb or arrays go field by field instead (:func:`fixed_fields`,
    :func:`text_fields`, :func:`int8_array_fields`, joined by :func:`binary_rows`).

    Columns are int16/int32/int64, float64, or datetime64 (sent as ``timestamptz``: µs since
    PostgreSQL's epoch). Every row is its field count, then each field's length and big-endian
    value, so one structured array is the whole body: no per-row Python work.
    """
    n = len(columns[0]) if columns else 0
    fields: list[tuple[str, str]] = [("n", ">i2")]
    values: list[np.ndarray[Any, Any]] = []
    for j, col in enumerate(columns):
        if len(col) != n:
            raise ValueError("columns differ in length")
        if col.dtype.kind == "M":
            col = col.astype("datetime64[us]").astype(np.int64) - PG_EPOCH_US
        code = {"i": "i", "u": "i", "f": "f"}.get(col.dtype.kind, "?") + str(col.dtype.itemsize)
        if code not in ("i2", "i4", "i8", "f8"):
            raise ValueError(f"unsupported column type {col.dtype}")
        fields += [(f"l{j}", ">i4"), (f"v{j}", ">" + code)]
        values.append(col)
    body = np.empty(n, dtype=np.dtype(fields))
    body["n"] = len(columns)
    for j, col in enumerate(values):
        body[f"l{j}"] = col.dtype.itemsize
        body[f"v{j}"] = col
    return PGCOPY_HEADER + body.tobytes() + PGCOPY_TRAILER


# Field by field: for columns with NULLs, text, jsonb or arrays (the risk score rows). Each
# function encodes a whole column into its fields (length-prefixed values), numpy where it can;
# :func:`binary_rows` joins the columns' fields row by row.
_NULL_FIELD = b"\xff\xff\xff\xff"
_INT8_OID = 20


def fixed_fields(values: np.ndarray[Any, Any], code: str) -> list[bytes]:
    """Fields of a numeric column (``code``: big-endian numpy type); NaN becomes NULL."""
    n, width = len(values), np.dtype(code).itemsize
    body = np.empty(n, dtype=np.dtype([("len", ">i4"), ("v", code)]))
    body["len"] = width
    body["v"] = values
    raw = body.tobytes()
    step = 4 + width
    out = [raw[i : i + step] for i in range(0, n * step, step)]
    if values.dtype.kind == "f":
        for i in np.flatnonzero(np.isnan(values)).tolist():
            out[i] = _NULL_FIELD
    return out


def text_fields(values: Sequence[str | bytes | None], prefix: bytes = b"") -> list[bytes]:
    """Fields of a text column (``prefix`` b"\\x01": jsonb's format version); None is NULL."""
    memo: dict[Any, bytes] = {}

    def field(v: str | bytes | None) -> bytes:
        if v is None:
            return _NULL_FIELD
        data = prefix + (v.encode() if isinstance(v, str) else v)
        return len(data).to_bytes(4, "big") + data

    out = []
    for v in values:
        f = memo.get(v)
        if f is None:
            f = memo[v] = field(v)
        out.append(f)
    return out


def int8_array_fields(values: Sequence[Sequence[int]]) -> list[bytes]:
    """Fields of a ``bigint[]`` column (one dimension, no NULL elements)."""
    memo: dict[tuple[int, ...], bytes] = {}
    out = []
    for v in values:
        key = tuple(v)
        f = memo.get(key)
        if f is None:
            if key:
                data = struct.pack(f">iiiii{'iq' * len(key)}", 1, 0, _INT8_OID, len(key), 1,
                                   *(x for a in key for x in (8, a)))  # fmt: skip
            else:
                data = struct.pack(">iii", 0, 0, _INT8_OID)
            f = memo[key] = len(data).to_bytes(4, "big") + data
        out.append(f)
    return out


def binary_rows(columns: Sequence[Sequence[bytes]]) -> bytes:
    """A binary COPY payload from per-column field lists."""
    count = len(columns).to_bytes(2, "big")
    rows = map(b"".join, zip(itertools.repeat(count), *columns))
    return PGCOPY_HEADER + b"".join(rows) + PGCOPY_TRAILER


def binary_copy_columns(data: bytes, codes: Sequence[str]) -> list[np.ndarray[Any, Any]]:
    """Columns of a ``COPY … TO STDOUT (FORMAT binary)`` output of fixed-width, non-NULL
    fields (``codes``: numpy type codes such as ``"i4"``, ``"f8"``), the inverse of
    :func:`binary_copy_payload`."""
    header = len(PGCOPY_HEADER)
    if data[: header - 8] != PGCOPY_HEADER[:-8] or data[-2:] != PGCOPY_TRAILER:
        raise ValueError("not a binary COPY output")
    extension = int.from_bytes(data[header - 4 : header], "big")
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for j, code in enumerate(codes):
        fields += [(f"l{j}", ">i4"), (f"v{j}", ">" + code)]
    dtype = np.dtype(fields)
    rows = data[header + extension : -2]
    if len(rows) % dtype.itemsize:
        raise ValueError(f"rows are not non-NULL fields of types {list(codes)}")
    body = np.frombuffer(rows, dtype=dtype)
    for j, code in enumerate(codes):
        if len(body) and (
            np.any(body["n"] != len(codes)) or np.any(body[f"l{j}"] != np.dtype(code).itemsize)
        ):
            raise ValueError(f"field {j} is not a non-NULL {code}")
    return [body[f"v{j}"].astype(code) for j, code in enumerate(codes)]


def frame_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """The rows of ``frame`` with every missing value (None, NaN, NA, NaT) as None.

    pandas may hold a missing string as NaN; written as is, COPY would store the text 'nan'.
    """
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.itertuples(index=False, name=None)
