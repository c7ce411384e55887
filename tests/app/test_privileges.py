"""Least privilege in the database: the service's role owns its schema and may do nothing else.

The whole suite runs as that role (``server_url``, the local cluster's ``cityrisk_app``), so
everything the service does — ingest making and dropping partitions, risk refresh, tiles,
LISTEN — is proved possible by the other tests; this module proves what it may *not* do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from app import migrations
from app.db import create_db_engine, libpq_url, make_sessionmaker, with_database
from app.local.cluster import LocalCluster, hand_over
from app.scratch import scratch_database
from app.sensors import partitions


def role_of(url: str) -> str:
    user = make_url(url).username
    assert user is not None
    return user


@pytest.fixture
def service(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database as the service's role."""
    with psycopg.connect(libpq_url(database_url), autocommit=True, connect_timeout=5) as conn:
        yield conn


def refused(conn: psycopg.Connection, statement: str) -> str:
    """Run ``statement``, which must fail for lack of privilege; return the server's message."""
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(statement)  # type: ignore[arg-type]
    return str(caught.value)


def test_the_service_role_is_not_a_superuser_and_may_not_make_roles(
    service: psycopg.Connection, server_url: str, admin_url: str
) -> None:
    row = service.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
        "current_user FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row is not None
    superuser, createrole, createdb, replication, bypassrls, me = row
    assert me == role_of(server_url)
    assert not superuser, f"the service connects as {me}, a superuser"
    assert not createrole
    assert not replication
    assert not bypassrls
    if role_of(admin_url) != me:  # one role for everything must create the test databases
        assert not createdb
        refused(service, "CREATE DATABASE cityrisk_must_not_exist")
    refused(service, "CREATE ROLE cityrisk_must_not_exist LOGIN")
    # Membership in a privileged role would hand its rights over through SET ROLE.
    granted = service.execute(
        "SELECT array_agg(b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchone()
    assert granted is not None
    assert granted[0] is None, f"{me} is a member of {granted[0]}"


def test_the_service_role_may_not_touch_the_server_or_extensions(
    service: psycopg.Connection,
) -> None:
    assert "permission denied" in refused(service, "ALTER SYSTEM SET work_mem = '1GB'")
    # Untrusted extensions (PostGIS and its companions, dblink) are a superuser's to create.
    assert "permission denied" in refused(service, "CREATE EXTENSION postgis_topology")
    refused(service, "DROP EXTENSION postgis")
    refused(service, "SELECT pg_read_file('PG_VERSION')")
    refused(service, "SELECT rolpassword FROM pg_authid")
    refused(service, "COPY (SELECT 1) TO PROGRAM 'true'")


def test_the_service_role_owns_its_tables_and_not_postgis_ones(
    service: psycopg.Connection, database_url: str, admin_url: str
) -> None:
    """Migrations made the schema as the database's owner, whoever connected to migrate."""
    foreign = service.execute(
        "SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
        "AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e')"
    ).fetchone()
    assert foreign is not None
    assert foreign[0] is None, f"not the service's: {foreign[0]}"
    owner = service.execute(
        "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database "
        "WHERE datname = current_database()"
    ).fetchone()
    assert owner == (True,)
    # PostGIS's table is readable (SRIDs) but neither writable nor alterable by the service.
    assert service.execute("SELECT count(*) FROM spatial_ref_sys").fetchone() != (0,)
    refused(service, "DELETE FROM spatial_ref_sys WHERE srid = 4326")
    assert "must be owner" in refused(service, "ALTER TABLE spatial_ref_sys ADD COLUMN x int")
    if role_of(admin_url) == role_of(database_url):
        return
    # Nor may it drop what another role keeps outside its schema, even in its own database and
    # where it may read. (Inside `public` it may: the owner of a schema may drop what is in it.)
    admin_db = libpq_url(with_database(admin_url, make_url(database_url).database or ""))
    me = sql.Identifier(role_of(database_url))
    with psycopg.connect(admin_db, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA not_the_services")
        try:
            admin.execute("CREATE TABLE not_the_services.audit (id int)")
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA not_the_services TO {}").format(me))
            admin.execute(sql.SQL("GRANT SELECT ON not_the_services.audit TO {}").format(me))
            assert service.execute("SELECT count(*) FROM not_the_services.audit").fetchone() == (0,)
            assert "must be owner" in refused(service, "DROP TABLE not_the_services.audit")
            refused(service, "DELETE FROM not_the_services.audit")
            refused(service, "DROP SCHEMA not_the_services CASCADE")
        finally:
            admin.execute("DROP SCHEMA not_the_services CASCADE")


def test_hand_over_gives_an_old_clusters_objects_to_the_service_role(
    two_roles: LocalCluster,
) -> None:
    """A database migrated when the superuser was the service (before this split) ends up
    owned by the service's role, which can then make its partitions again (`db up` does this
    to the local cluster's database). On a cluster of the suite's own: it has both roles."""
    server_url, admin_url = two_roles.url(), two_roles.admin_url()
    me, admin = role_of(server_url), role_of(admin_url)
    assert me != admin
    # As before the split: the superuser creates, owns and migrates the database.
    with scratch_database(admin_url, postgis=False) as old_url:
        migrations.upgrade(old_url)
        with psycopg.connect(libpq_url(old_url), autocommit=True) as conn:
            hand_over(conn, me, lambda _: None)
            hand_over(conn, me, lambda _: None)  # a second time finds nothing to do
        service_url = with_database(server_url, make_url(old_url).database or "")
        with psycopg.connect(libpq_url(service_url), autocommit=True) as conn:
            assert "must be owner" in refused(conn, "ALTER TABLE spatial_ref_sys ADD COLUMN x int")
            conn.execute("DROP TABLE alembic_version")  # its own now, as is every table
        engine = create_db_engine(service_url, pool_size=1)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                made = partitions.ensure(session, partitions.days_ahead())
            assert made
        finally:
            engine.dispose()
            partitions.forget()
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            owner = conn.execute(
                sql.SQL(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {}"
                ).format(sql.Literal(make_url(old_url).database))
            ).fetchone()
        assert owner == (me,)


def test_db_up_narrows_a_widened_service_role_back(two_roles: LocalCluster) -> None:
    """Someone granted the local cluster's service role more by hand: `db up` takes it back.
    (`db up` manages the local cluster only: run on the suite's own, whatever DATABASE_URL.)"""
    server_url, admin_url = two_roles.url(), two_roles.admin_url()
    state = two_roles.state()
    assert state is not None
    me = sql.Identifier(role_of(server_url))
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CREATEDB CREATEROLE").format(me))
        try:
            up = subprocess.run(
                [sys.executable, "-m", "app", "db", "up"],
                env={
                    **{
                        k: v
                        for k, v in os.environ.items()
                        if k not in ("DATABASE_URL", "DATABASE_MIGRATE_URL")
                    },
                    "CITYRISK_DATA_DIR": str(two_roles.data_dir),
                    "CITYRISK_PG_PORT": str(state.port),
                },
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert up.returncode == 0, up.stderr
            row = admin.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
                "WHERE rolname = %s",
                (role_of(server_url),),
            ).fetchone()
        finally:
            admin.execute(sql.SQL("ALTER ROLE {} NOCREATEDB NOCREATEROLE").format(me))
    assert row == (False, False, False, True)
