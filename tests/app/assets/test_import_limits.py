"""Imports are bounded before the work: features, bytes (zipped and unzipped), zip members,
nested archives, vertices per geometry. Each refusal is a 422 that says what was given and
what is allowed, and which setting allows it.

A 680 KB zip holding 50 M point features passed 8 GB RSS in 96 s before these limits; the
same shape, scaled down (20,000 features against a limit of 1,000), is refused from the
Shapefile's header and the zip's directory, before a feature is read.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions, ImportReport, import_file
from app.errors import InvalidInput
from app.main import create_app
from app.scratch import scratch_token
from app.settings import LimitSettings, Settings

LON, LAT = -71.1097, 42.3736


def run(session: Session, path: Path, limits: LimitSettings, **options: Any) -> ImportReport:
    return import_file(session, path, ImportOptions(**options), limits=limits)


def points_zip(tmp_path: Path, n: int) -> Path:
    """A zipped Shapefile of ``n`` points (regular, so it compresses like the reported bomb)."""
    frame = gpd.GeoDataFrame(
        {"gid": np.arange(n).astype(str)},
        geometry=shapely.points(LON + np.arange(n) * 1e-6, np.full(n, LAT)),
        crs=4326,
    )
    shp = tmp_path / "shp"
    shp.mkdir()
    frame.to_file(shp / "many.shp", engine="pyogrio")
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in shp.iterdir():
            zf.write(part, part.name)
    return archive


def test_features_are_counted_from_the_header_before_reading(
    session: Session, tmp_path: Path
) -> None:
    archive = points_zip(tmp_path, 20_000)
    limits = LimitSettings(import_features=1_000)
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as refused:
        run(session, archive, limits, kind="valve", id_field="gid")
    took = time.perf_counter() - started
    message = refused.value.message
    assert "20,000 features" in message
    assert "1,000" in message
    assert "CITYRISK_MAX_IMPORT_FEATURES" in message
    # Reading and validating 20,000 points takes ~0.5 s; the refusal reads a header.
    assert took < 0.5, took
    assert run(session, archive, LimitSettings(), kind="valve", id_field="gid").inserted == 20_000


def test_a_geojson_or_csv_over_the_feature_limit_is_refused(
    session: Session, tmp_path: Path
) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON, LAT + i * 1e-5]},
             "properties": {"gid": str(i)}}
            for i in range(11)
        ],
    }  # fmt: skip
    (tmp_path / "a.geojson").write_text(json.dumps(doc))
    limits = LimitSettings(import_features=10)
    with pytest.raises(InvalidInput, match=r"has 11 features.*CITYRISK_MAX_IMPORT_FEATURES"):
        run(session, tmp_path / "a.geojson", limits, kind="valve", crs="EPSG:4326")
    csv = "gid,lon,lat\n" + "".join(f"{i},{LON},{LAT}\n" for i in range(11))
    (tmp_path / "a.csv").write_text(csv)
    with pytest.raises(InvalidInput, match="more than 10 features"):
        run(session, tmp_path / "a.csv", limits, kind="valve", crs="EPSG:4326")


def test_a_zip_bomb_is_refused_from_its_directory(session: Session, tmp_path: Path) -> None:
    # Wide: one member that inflates 1,000x (64 MB of zeros in 64 KB).
    wide = tmp_path / "wide.zip"
    with zipfile.ZipFile(wide, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.shp", bytes(64 << 20))
        zf.writestr("a.shx", b"")
        zf.writestr("a.dbf", b"")
    assert wide.stat().st_size < 1 << 20
    limits = LimitSettings(uncompressed_bytes=16 << 20)
    with pytest.raises(InvalidInput) as refused:
        run(session, wide, limits, kind="valve")
    assert f"{(64 << 20):,} bytes unzipped" in refused.value.message
    assert "CITYRISK_MAX_UNCOMPRESSED_BYTES" in refused.value.message

    # Many members.
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("a.shp", b"")
        for i in range(70):
            zf.writestr(f"junk/{i}.txt", b"x")
    with pytest.raises(InvalidInput, match=r"71 members.*64.*CITYRISK_MAX_ZIP_MEMBERS"):
        run(session, many, LimitSettings(), kind="valve")

    # Deep: a zip inside the zip (42.zip-style nesting), found by name or by content.
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("b.shp", b"")
    for name in ("inner.zip", "inner.dat"):
        deep = tmp_path / f"deep-{name}.zip"
        with zipfile.ZipFile(deep, "w") as zf:
            zf.writestr("a.shp", b"")
            zf.writestr(name, inner.getvalue())
        with pytest.raises(InvalidInput, match=f"nested archive {name!r}"):
            run(session, deep, LimitSettings(), kind="valve")


def test_an_unreadable_member_is_a_422_not_a_500(session: Session, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.shp", b"\x00\x00\x27\x0a" + bytes(96))
    raw = bytearray(buffer.getvalue())
    # Method 9 (Deflate64), which zipfile cannot inflate, in both headers.
    raw[raw.find(b"PK\x03\x04") + 8] = 9
    raw[raw.find(b"PK\x01\x02") + 10] = 9
    path = tmp_path / "deflate64.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInput, match=r"cannot read its member 'a\.shp'"):
        run(session, path, LimitSettings(), kind="valve")


def test_a_file_over_the_byte_limits_is_refused(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "big.geojson"
    path.write_bytes(b" " * 40_000)
    with pytest.raises(InvalidInput, match=r"40,000 bytes.*CITYRISK_MAX_UNCOMPRESSED_BYTES"):
        run(session, path, LimitSettings(uncompressed_bytes=30_000), kind="valve")


def test_a_geometry_over_the_vertex_limit_is_rejected_by_name(
    session: Session, tmp_path: Path
) -> None:
    zigzag = [[LON + i * 1e-5, LAT + (i % 2) * 1e-4] for i in range(101)]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": zigzag},
             "properties": {"gid": "zigzag"}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": zigzag[:3]},
             "properties": {"gid": "short"}},
        ],
    }  # fmt: skip
    path = tmp_path / "mains.geojson"
    path.write_text(json.dumps(doc))
    report = run(session, path, LimitSettings(vertices=100), kind="gas_pipe", id_field="gid")
    assert not report.written
    assert [(r.row, r.external_id) for r in report.rejected] == [(1, "zigzag")]
    assert report.rejected[0].reason == (
        "101 vertices; the limit is 100 per geometry (CITYRISK_MAX_VERTICES)"
    )


def api_client(settings: Settings) -> TestClient:
    """The app over ``settings`` as an admin (the one place this module builds a client)."""
    key = scratch_token(str(settings.database_url))
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def test_the_api_answers_422_for_a_zip_bomb(settings: Settings, tmp_path: Path) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.shp", bytes(64 << 20))
    limits = LimitSettings(uncompressed_bytes=16 << 20)
    with api_client(settings.model_copy(update={"limits": limits})) as client:
        answer = client.post(
            "/assets/import",
            files={"file": ("bomb.zip", bomb.getvalue())},
            data={"kind": "valve", "crs": "EPSG:4326"},
        )
    assert answer.status_code == 422, answer.text
    assert "bytes unzipped" in answer.json()["detail"]
