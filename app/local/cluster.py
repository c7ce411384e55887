"""The project-local PostGIS cluster: installed, initialised and started by ``cityrisk db up``.

Used only when ``DATABASE_URL`` is unset. The cluster lives under ``<data_dir>/pg`` (``.data/pg``
in a checkout), listens on 127.0.0.1 only, on ``CITYRISK_PG_PORT`` (55432), with generated
passwords kept in ``<data_dir>/cluster.json`` (mode 600). ``initdb`` and ``postgres`` refuse to run
as root, so as root every server command runs as the ``postgres`` system user via ``runuser``.

Two roles log in, as a DBA would set them up:

- the cluster's **superuser** (``postgres``; ``cityrisk`` in clusters made before the split), used
  only by ``db up`` itself, by ``cityrisk migrate`` (PostGIS is an untrusted extension: only a
  superuser may create or update it) and by the test suite and benchmarks to create their
  throwaway databases;
- the **service role** ``cityrisk_app``: LOGIN and nothing else (no SUPERUSER, CREATEDB,
  CREATEROLE, REPLICATION or BYPASSRLS). It owns the ``cityrisk`` database and every object of
  the schema, because the service does DDL at run time: it creates and attaches the daily
  partitions of ``reading`` on demand, drops them to prune, and ANALYZEs ``risk_score`` — each
  needs ownership. Migrations run as the superuser but ``SET ROLE`` to the database's owner
  (:func:`app.migrations.upgrade`), so what they create belongs to the service role; PostGIS and
  its ``spatial_ref_sys`` stay the superuser's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from app.local.system import apt_install, is_root, run
from app.settings import Settings

#: The superuser of a cluster made by this version (initdb's bootstrap role).
SUPERUSER = "postgres"
#: The superuser of clusters made before the service got its own role (state without "superuser").
LEGACY_SUPERUSER = "cityrisk"
#: The service's role: owns the database and its objects, may do nothing else.
APP_USER = "cityrisk_app"
LOCAL_DB = "cityrisk"
MIN_PG_MAJOR = 13
# Debian/Ubuntu layout: one bin directory per major version, extensions in the share directory.
PG_LIB = Path("/usr/lib/postgresql")
PG_SHARE = Path("/usr/share/postgresql")

Log = Callable[[str], None]


class ClusterError(RuntimeError):
    """The local cluster cannot be installed, started or reached; the message says why."""


@dataclass(frozen=True)
class ClusterState:
    """What ``db up`` recorded: where the data directory is and how to log in.

    ``password`` is the superuser's; ``app_password`` the service role's (None in a cluster
    made before that role existed, until the next ``db up`` creates it).
    """

    pgdata: Path
    port: int
    password: str
    bindir: Path
    superuser: str = SUPERUSER
    app_password: str | None = None


@dataclass(frozen=True)
class ClusterStatus:
    initialised: bool
    running: bool
    detail: str


def _as_server_user() -> list[str]:
    """Prefix that runs a PostgreSQL server command as an unprivileged user."""
    return ["runuser", "-u", "postgres", "--"] if is_root() else []


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory whose share directory has PostGIS."""
    if not PG_LIB.is_dir():
        return None
    majors = sorted(
        (int(p.name) for p in PG_LIB.iterdir() if p.name.isdigit() and int(p.name) >= MIN_PG_MAJOR),
        reverse=True,
    )
    for major in majors:
        bindir = PG_LIB / str(major) / "bin"
        has_postgis = (PG_SHARE / str(major) / "extension" / "postgis.control").exists()
        if (bindir / "initdb").exists() and has_postgis:
            return bindir
    return None


def _installed_majors() -> list[int]:
    if not PG_LIB.is_dir():
        return []
    return sorted(
        (int(p.name) for p in PG_LIB.iterdir() if p.name.isdigit() and (p / "bin").is_dir()),
        reverse=True,
    )


def ensure_installed(log: Log) -> Path:
    """Install PostgreSQL and PostGIS with apt when missing; return the bin directory."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if shutil.which("apt-get") is None:
        raise ClusterError(
            "PostgreSQL with PostGIS is not installed and this machine has no apt-get. "
            "Install PostGIS >= 3.1 yourself, or set "
            "DATABASE_URL=postgresql://USER:PASS@HOST:PORT/DB to any PostGIS >= 3.1 server."
        )
    if not _installed_majors():
        apt_install(
            ["postgresql", "postgresql-contrib"], log=log, error=ClusterError, why="PostgreSQL"
        )
    major = _installed_majors()[0]
    apt_install([f"postgresql-{major}-postgis-3"], log=log, error=ClusterError, why="PostGIS")
    bindir = find_bindir()
    if bindir is None:
        raise ClusterError(f"apt-get installed postgresql-{major}-postgis-3 but it is not usable")
    return bindir


def _run(cmd: Sequence[str], *, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(cmd, error=ClusterError, input_text=input_text)


class LocalCluster:
    """Provision and control the project-local cluster described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.data_dir = settings.data_dir.resolve()
        self.port = settings.pg_port
        self.state_file = self.data_dir / "cluster.json"

    # -- state ------------------------------------------------------------------------------
    def state(self) -> ClusterState | None:
        """The recorded state, or None before the first ``db up``."""
        if not self.state_file.exists():
            return None
        raw = orjson.loads(self.state_file.read_bytes())
        return ClusterState(
            pgdata=Path(raw["pgdata"]),
            port=int(raw["port"]),
            password=raw["password"],
            bindir=Path(raw["bindir"]),
            superuser=raw.get("superuser", LEGACY_SUPERUSER),
            app_password=raw.get("app_password"),
        )

    def _save(self, state: ClusterState) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "pgdata": str(state.pgdata),
            "port": state.port,
            "password": state.password,
            "bindir": str(state.bindir),
            "superuser": state.superuser,
            "app_password": state.app_password,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def url(self, *, driver: bool = True, dbname: str = LOCAL_DB) -> str:
        """The service role's URL; raises ClusterError before ``db up`` has made that role."""
        state = self._recorded()
        if state.app_password is None:
            raise ClusterError(
                f"the local cluster has no service role {APP_USER} yet: run `cityrisk db up` "
                "(or `make setup`)"
            )
        return _url(APP_USER, state.app_password, state.port, dbname, driver=driver)

    def admin_url(self, *, driver: bool = True, dbname: str = LOCAL_DB) -> str:
        """The superuser's URL (migrations, throwaway databases); ClusterError before ``db up``."""
        state = self._recorded()
        return _url(state.superuser, state.password, state.port, dbname, driver=driver)

    def _recorded(self) -> ClusterState:
        state = self.state()
        if state is None:
            raise ClusterError(
                "DATABASE_URL is not set and the local cluster does not exist yet: "
                "run `cityrisk db up` (or `make setup`)"
            )
        return state

    # -- control ----------------------------------------------------------------------------
    def status(self) -> ClusterStatus:
        state = self.state()
        if state is None or not (state.pgdata / "PG_VERSION").exists():
            return ClusterStatus(False, False, f"no local cluster under {self.data_dir}")
        proc = subprocess.run(
            [*_as_server_user(), str(state.bindir / "pg_ctl"), "status", "-D", str(state.pgdata)],
            capture_output=True,
            text=True,
            check=False,
        )
        running = proc.returncode == 0
        where = f"{state.pgdata} on 127.0.0.1:{state.port}"
        return ClusterStatus(True, running, f"{'running' if running else 'stopped'}: {where}")

    def up(self, log: Log) -> bool:
        """Make the cluster exist, run and hold the database with PostGIS; True if work was done.

        Idempotent: with the cluster already running this only checks it.
        """
        current = self.status()
        if current.running:
            self._ensure_database(log)
            return False
        bindir = ensure_installed(log)
        state = self.state()
        if state is None or not (state.pgdata / "PG_VERSION").exists():
            state = self._initdb(bindir, log)
        elif state.bindir != bindir and not (state.bindir / "pg_ctl").exists():
            state = replace(state, bindir=bindir)
        if state.port != self.port:
            state = replace(state, port=self.port)
        self._save(state)
        self._write_conf(state)
        log(f"starting PostgreSQL on 127.0.0.1:{state.port}")
        _run(
            [
                *_as_server_user(),
                str(state.bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(state.pgdata),
                "-l",
                str(state.pgdata / "server.log"),
            ]
        )
        self._ensure_database(log)
        return True

    def down(self, log: Log) -> bool:
        """Stop the cluster if it runs; True if it was running."""
        state = self.state()
        if state is None or not self.status().running:
            return False
        log("stopping PostgreSQL")
        _run(
            [
                *_as_server_user(),
                str(state.bindir / "pg_ctl"),
                "stop",
                "-w",
                "-m",
                "fast",
                "-D",
                str(state.pgdata),
            ]
        )
        return True

    # -- steps ------------------------------------------------------------------------------
    def _pgdata_location(self) -> Path:
        """``<data_dir>/pg``, unless the server user cannot reach it (a root-only checkout)."""
        preferred = self.data_dir / "pg"
        if not is_root():
            return preferred
        self.data_dir.mkdir(parents=True, exist_ok=True)
        reachable = subprocess.run(
            [*_as_server_user(), "test", "-x", str(self.data_dir)], check=False
        )
        if reachable.returncode == 0:
            return preferred
        # e.g. a clone under /root: keep the cluster where postgres can reach it, one per checkout.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"cityrisk-pg-{digest}"  # noqa: S108 - owned 0700 by postgres

    def _initdb(self, bindir: Path, log: Log) -> ClusterState:
        pgdata = self._pgdata_location()
        log(f"initialising a PostgreSQL cluster in {pgdata}")
        pgdata.mkdir(parents=True, exist_ok=True)
        if is_root():
            shutil.chown(pgdata, "postgres", "postgres")
        pgdata.chmod(0o700)
        password = secrets.token_urlsafe(18)
        # initdb reads the password from a file the server user can open; it never hits argv.
        fd, pwfile = tempfile.mkstemp(prefix="cityrisk-pw-")
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        if is_root():
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            _run(
                [
                    *_as_server_user(),
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
        finally:
            os.unlink(pwfile)
        state = ClusterState(
            pgdata=pgdata, port=self.port, password=password, bindir=bindir, superuser=SUPERUSER
        )
        self._save(state)
        return state

    def _write_conf(self, state: ClusterState) -> None:
        # The cluster's own conf include, rewritten on each start so a changed port applies.
        conf = (
            "# written by cityrisk db up\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {state.port}\n"
            "unix_socket_directories = ''\n"
            "max_connections = 100\n"
            "shared_buffers = '256MB'\n"
            "logging_collector = off\n"
        )
        target = state.pgdata / "cityrisk.conf"
        _run([*_as_server_user(), "tee", str(target)], input_text=conf)
        main_conf = state.pgdata / "postgresql.conf"
        include = "include_if_exists = 'cityrisk.conf'"
        probe = subprocess.run(
            [*_as_server_user(), "grep", "-qF", include, str(main_conf)], check=False
        )
        if probe.returncode != 0:
            _run([*_as_server_user(), "tee", "-a", str(main_conf)], input_text=include + "\n")

    def _ensure_database(self, log: Log) -> None:
        """Create the service role, the cityrisk database it owns, and PostGIS, if absent."""
        admin_url = self.admin_url(driver=False, dbname="postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (LOCAL_DB,)
                    ).fetchone()
                    self._ensure_app_role(conn, log)
                    if not exists:
                        log(f"creating database {LOCAL_DB}")
                        conn.execute(
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                                sql.Identifier(LOCAL_DB), sql.Identifier(APP_USER)
                            )
                        )
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"local cluster is not accepting connections: {exc}"
                    ) from exc
                time.sleep(0.5)
        admin_db_url = self.admin_url(driver=False)
        with psycopg.connect(admin_db_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            hand_over(conn, APP_USER, log)

    def _ensure_app_role(self, conn: psycopg.Connection[Any], log: Log) -> None:
        """Make the service role exist with exactly LOGIN and the recorded password."""
        state = self._recorded()
        if state.app_password is None:
            # Recorded before the role is made: a crash in between cannot lose the password.
            state = replace(state, app_password=secrets.token_urlsafe(18))
            self._save(state)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone()
        if not exists:
            log(f"creating the service role {APP_USER} (not a superuser)")
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(APP_USER)))
        # Every time, so a role someone widened by hand is narrowed back.
        conn.execute(
            sql.SQL(
                "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                "NOBYPASSRLS PASSWORD {}"
            ).format(sql.Identifier(APP_USER), sql.Literal(state.app_password))
        )


def hand_over(conn: psycopg.Connection[Any], owner: str, log: Log) -> None:
    """Make ``owner`` own the connected database and every object of its ``public`` schema.

    For clusters made before the service role existed, where the superuser owned everything;
    a no-op once done. Objects of extensions (PostGIS's ``spatial_ref_sys``, its functions)
    stay where they are; indexes and the sequences of identity or serial columns follow their
    tables.
    """
    owner_id = sql.Identifier(owner)
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(row[0]), owner_id))
    rows = conn.execute(HAND_OVER_SQL, {"owner": owner}).fetchall()
    if rows:
        log(f"handing {len(rows)} objects of {row[0]} over to {owner}")
    for kind, name in rows:
        # kind and name come from the catalogue (format('%I…')), already quoted.
        conn.execute(sql.SQL(f"ALTER {kind} {name} OWNER TO {{}}").format(owner_id))


_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass "
    "AND d.objid = o.oid AND d.deptype = 'e')"
)
#: (ALTER kind, quoted name) of each object in ``public`` not owned by %(owner)s nor by an
#: extension. Sequences owned by a column (serial, identity) are left out: ALTER TABLE moves them.
HAND_OVER_SQL = f"""
SELECT CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                      WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
       format('%%I.%%I', n.nspname, o.relname)
FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
WHERE n.nspname = 'public' AND o.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND pg_get_userbyid(o.relowner) <> %(owner)s AND {_NOT_EXTENSION.format(cat="pg_class")}
  AND NOT (o.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = o.oid
      AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'ROUTINE', o.oid::regprocedure::text
FROM pg_proc o JOIN pg_namespace n ON n.oid = o.pronamespace
WHERE n.nspname = 'public' AND pg_get_userbyid(o.proowner) <> %(owner)s
  AND {_NOT_EXTENSION.format(cat="pg_proc")}
UNION ALL
SELECT 'TYPE', format('%%I.%%I', n.nspname, o.typname)
FROM pg_type o JOIN pg_namespace n ON n.oid = o.typnamespace
WHERE n.nspname = 'public' AND o.typtype IN ('e', 'd')
  AND pg_get_userbyid(o.typowner) <> %(owner)s AND {_NOT_EXTENSION.format(cat="pg_type")}
"""


def _url(user: str, password: str, port: int, dbname: str, *, driver: bool) -> str:
    scheme = "postgresql+psycopg" if driver else "postgresql"
    return f"{scheme}://{user}:{password}@127.0.0.1:{port}/{dbname}"
