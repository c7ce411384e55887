"""Import throughput: `cityrisk import` versus a raw `ogr2ogr` load of the same file, same run.

Usage: .venv/bin/python bench/import.py [--copies N] [--repeat R]

Input is the demo city's derived gas-pipe layer (data/demo/cambridge.gpkg, 2,390 lines),
optionally repeated N times with shifted copies and fresh ids to make a bigger file. Both loads
go into a throwaway database on the server cityrisk uses (DATABASE_URL or the local cluster),
which is dropped afterwards. ogr2ogr uses COPY (PG_USE_COPY=YES) and builds a GiST index: it
is the floor for "read a GeoPackage into PostGIS". cityrisk does more per row (CRS resolution,
geometry hygiene, per-kind attribute validation, upsert against existing rows), so the ratio
says what that costs. A re-import (all rows unchanged) is timed too.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy.engine import make_url

from app.assets.importer import ImportOptions, import_file
from app.db import create_db_engine, make_sessionmaker
from app.flows.demo import demo_path
from app.scratch import scratch_for
from app.settings import Settings


def build_input(copies: int, folder: Path) -> tuple[Path, int]:
    base = gpd.read_file(demo_path(), layer="gas_pipe")
    frames = []
    for i in range(copies):
        part = base.copy()
        part["external_id"] = part["external_id"] + f"-c{i}"
        # Shift each copy ~1.1 km north so geometries differ too.
        part["geometry"] = shapely.transform(
            part.geometry.to_numpy(), lambda xy, i=i: xy + np.array([0.0, 0.01 * i])
        )
        frames.append(part)
    merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=base.crs)
    path = folder / "gas_pipe.gpkg"
    merged.to_file(path, layer="gas_pipe", driver="GPKG")
    return path, len(merged)


def time_ogr2ogr(path: Path, url: str) -> float:
    u = make_url(url)
    pg = (
        f"PG:host={u.host} port={u.port or 5432} dbname={u.database} user={u.username} "
        f"password={u.password}"
    )
    started = time.perf_counter()
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            pg,
            str(path),
            "gas_pipe",
            "-nln",
            "bench_ogr",
            "-overwrite",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-lco",
            "SPATIAL_INDEX=GIST",
            "--config",
            "PG_USE_COPY",
            "YES",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def time_cityrisk(path: Path, url: str, *, clear: bool) -> tuple[float, int]:
    engine = create_db_engine(url, pool_size=1)
    try:
        if clear:
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE asset CASCADE")
        started = time.perf_counter()
        with make_sessionmaker(engine)() as session, session.begin():
            report = import_file(session, path, ImportOptions(kind="gas_pipe", source="bench"))
        elapsed = time.perf_counter() - started
        return elapsed, report.inserted + report.updated
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10, help="copies of the 2,390-line layer")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    if shutil.which("ogr2ogr") is None:
        print("ogr2ogr not found: apt-get install gdal-bin", file=sys.stderr)
        return 2

    settings = Settings()
    with (
        scratch_for(settings, prefix="cityrisk_bench", migrate=True) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        path, rows = build_input(args.copies, Path(tmp))
        ogr = statistics.median(time_ogr2ogr(path, url) for _ in range(args.repeat))
        ours = statistics.median(
            time_cityrisk(path, url, clear=True)[0] for _ in range(args.repeat)
        )
        again, changed = time_cityrisk(path, url, clear=False)

    print(f"input: {rows:,} gas-pipe lines (GeoPackage), median of {args.repeat} runs")
    print(f"ogr2ogr (COPY, GiST)         {ogr:7.2f} s  {rows / ogr:10,.0f} rows/s")
    print(f"cityrisk import (fresh)      {ours:7.2f} s  {rows / ours:10,.0f} rows/s")
    print(f"cityrisk re-import (no-op)   {again:7.2f} s  {rows / again:10,.0f} rows/s", end="")
    print(f"  changed={changed}")
    print(f"ratio cityrisk / ogr2ogr throughput: {ogr / ours:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
