"""A PostGIS cluster of a test's own: initdb'ed under /var/tmp on a free port, with the local
cluster's two roles (the superuser and the service's ``cityrisk_app``), removed whatever
happens. For tests that stop the server, change its roles, or need the two roles whatever
``DATABASE_URL`` the rest of the suite runs against."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app import migrations
from app.local.cluster import LocalCluster, find_bindir
from app.scratch import free_port
from app.settings import Settings


@contextmanager
def own_cluster(prefix: str, *, migrate: bool = True) -> Iterator[LocalCluster]:
    """A running cluster of one's own (migrated to head unless ``migrate`` is false)."""
    if find_bindir() is None:
        pytest.fail(
            "no PostgreSQL with PostGIS to initdb a cluster of the test's own: `make test` "
            "installs postgresql-15-postgis-3 (apt)",
            pytrace=False,
        )
    # Under /var/tmp, world-traversable: as root the server runs as `postgres`, which must reach
    # the data directory (pytest's tmp_path is 0700 root).
    data_dir = Path(tempfile.mkdtemp(prefix=f"cityrisk-{prefix}-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    cluster = LocalCluster(Settings(data_dir=data_dir, pg_port=free_port()))
    try:
        cluster.up(log=lambda _: None)
        if migrate:
            migrations.upgrade(cluster.url())
        yield cluster
    finally:
        try:
            cluster.down(log=lambda _: None)
        finally:
            state = cluster.state()
            if state is not None and state.pgdata.parent != data_dir:
                shutil.rmtree(state.pgdata, ignore_errors=True)
            shutil.rmtree(data_dir, ignore_errors=True)
