"""Importing GIS files into real PostGIS: formats, CRSs, hygiene, validation, idempotence."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely import LineString, MultiLineString, Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions, ImportReport, import_file, parse_field_map
from app.errors import InvalidInput

CAMBRIDGE = (-71.1097, 42.3736)


def write_geojson(path: Path, features: list[dict[str, Any]], crs: str | None = None) -> Path:
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def feature(geometry: dict[str, Any] | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def line(*coords: tuple[float, ...]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [list(c) for c in coords]}


def rows(session: Session, source: str) -> list[Any]:
    return list(
        session.execute(
            text(
                "SELECT external_id, kind, plate, name, attributes, "
                "ST_X(ST_PointOnSurface(geom)) x, ST_Y(ST_PointOnSurface(geom)) y, "
                "ST_AsText(geom) wkt, updated_at "
                "FROM asset WHERE source = :s ORDER BY external_id"
            ),
            {"s": source},
        )
    )


def run(session: Session, path: Path, **options: Any) -> ImportReport:
    return import_file(session, path, ImportOptions(**options))


def test_geojson_import_then_reimport_changes_nothing(session: Session, tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "schools.geojson",
        [
            feature(point(-71.11, 42.37), id="s1", name="Baldwin", capacity=300),
            feature(point(-71.10, 42.38), id="s2", name="Graham", capacity="420"),
        ],
    )
    first = run(session, path, kind="school", id_field="id", source="t")
    assert (first.rows_read, first.inserted, first.updated, first.rejected) == (2, 2, 0, [])
    stored = rows(session, "t")
    assert [r.external_id for r in stored] == ["s1", "s2"]
    assert stored[1].attributes == {"capacity": 420}  # typed by the taxonomy
    assert stored[0].plate == "exposure"
    assert (stored[0].x, stored[0].y) == pytest.approx((-71.11, 42.37), abs=1e-9)

    again = run(session, path, kind="school", id_field="id", source="t")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert [r.updated_at for r in rows(session, "t")] == [r.updated_at for r in stored]

    write_geojson(
        path,
        [
            feature(point(-71.11, 42.37), id="s1", name="Baldwin", capacity=300),
            feature(point(-71.10, 42.38), id="s2", name="Graham", capacity=450),
        ],
    )
    changed = run(session, path, kind="school", id_field="id", source="t")
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 1)


def test_broken_file_is_reported_row_by_row_and_nothing_is_written(
    session: Session, tmp_path: Path
) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    path = write_geojson(
        tmp_path / "mains.geojson",
        [
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="ok1", diameter_mm=200),
            feature(point(-71.11, 42.37), external_id="pt", diameter_mm=200),
            feature(None, external_id="nogeom"),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="neg", diameter_mm=-5),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="txt", diameter_mm="big"),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="ok1", diameter_mm=300),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), diameter_mm=300),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="pc", pressure_class="x"),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="yr", install_year=1950.5),
            feature(bowtie, external_id="poly"),
            feature(line((-71.11, 42.37), (-71.10, 42.37)), external_id="ok2", material="PE"),
        ],
    )
    before = session.execute(text("SELECT count(*) FROM asset")).scalar_one()
    report = run(session, path, kind="gas_pipe", source="broken")
    reasons = {r.row: r.reason for r in report.rejected}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "Point geometry, but this kind takes line" in reasons[2]
    assert reasons[3] == "no geometry"
    assert "diameter_mm=-5 mm is outside 10–5000 mm" in reasons[4]
    assert "'big' is not a number" in reasons[5]
    assert "duplicate external_id 'ok1' (first at row 1)" in reasons[6]
    assert "no value in id field 'external_id'" in reasons[7]
    assert "pressure_class='x' is not one of low, medium, high" in reasons[8]
    assert "install_year=1950.5 is not whole" in reasons[9]
    assert "Polygon geometry, but this kind takes line" in reasons[10]
    assert not report.written
    assert report.inserted == 0
    assert "nothing written" in report.notes[-1]
    assert session.execute(text("SELECT count(*) FROM asset")).scalar_one() == before

    partial = run(session, path, kind="gas_pipe", source="broken", partial=True)
    assert partial.written
    assert partial.inserted == 2
    assert [r.external_id for r in rows(session, "broken")] == ["ok1", "ok2"]


def test_invalid_polygon_is_repaired_when_it_stays_a_polygon(
    session: Session, tmp_path: Path
) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    spike = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0], [0, 0]]]}
    path = write_geojson(
        tmp_path / "zones.geojson",
        [feature(bowtie, external_id="bow"), feature(spike, external_id="spike")],
    )
    report = run(session, path, kind="flood_zone", source="z", partial=True)
    assert report.inserted == 1
    assert "1 invalid geometry(ies) repaired with make_valid" in report.notes
    assert [r.row for r in report.rejected] == [2]
    assert "no repair keeps as polygon" in report.rejected[0].reason
    stored = rows(session, "z")[0]
    assert stored.wkt.startswith("MULTIPOLYGON")


def test_z_is_dropped_with_a_note_and_multipart_lines_are_kept(
    session: Session, tmp_path: Path
) -> None:
    frame = gpd.GeoDataFrame(
        {"external_id": ["a", "b"]},
        geometry=[
            LineString([(-71.11, 42.37, 5.0), (-71.10, 42.37, 6.0)]),
            MultiLineString(
                [[(-71.11, 42.36), (-71.10, 42.36)], [(-71.09, 42.36), (-71.08, 42.36)]]
            ),
        ],
        crs="EPSG:4326",
    )
    path = tmp_path / "z.gpkg"
    frame.to_file(path, layer="mains", driver="GPKG")
    report = run(session, path, kind="water_pipe", source="zz")
    assert report.inserted == 2
    assert "Z/M coordinates dropped: geometries are stored 2D" in report.notes
    wkts = [r.wkt for r in rows(session, "zz")]
    assert wkts[0] == "LINESTRING(-71.11 42.37,-71.1 42.37)"
    assert wkts[1].startswith("MULTILINESTRING")


def test_geopackage_with_several_layers_needs_layer(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "city.gpkg"
    gpd.GeoDataFrame({"external_id": ["h1"]}, geometry=[Point(*CAMBRIDGE)], crs=4326).to_file(
        path, layer="hospitals"
    )
    gpd.GeoDataFrame({"external_id": ["c1"]}, geometry=[Point(*CAMBRIDGE)], crs=4326).to_file(
        path, layer="clinics"
    )
    with pytest.raises(InvalidInput, match="has 2 layers; choose one with --layer"):
        run(session, path, kind="hospital")
    with pytest.raises(InvalidInput, match="has no layer 'nope'"):
        run(session, path, kind="hospital", layer="nope")
    assert run(session, path, kind="clinic", layer="clinics", source="g").inserted == 1


def test_zipped_shapefile_in_a_projected_crs_is_reprojected(
    session: Session, tmp_path: Path
) -> None:
    # Massachusetts State Plane (metres); the point is Cambridge City Hall.
    frame = gpd.GeoDataFrame(
        {"gid": ["cityhall"], "name": ["City Hall"]},  # Shapefile field names: 10 chars
        geometry=[Point(*CAMBRIDGE)],
        crs=4326,
    ).to_crs(26986)
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    frame.to_file(shp_dir / "halls.shp")
    archive = tmp_path / "halls.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp_dir.iterdir():
            zf.write(part, part.name)
    report = run(session, archive, kind="shelter", source="shp", id_field="gid")
    assert report.crs == "EPSG:26986"
    assert report.inserted == 1
    stored = rows(session, "shp")[0]
    assert (stored.external_id, stored.name) == ("cityhall", "City Hall")
    assert (stored.x, stored.y) == pytest.approx(CAMBRIDGE, abs=1e-7)

    no_prj = tmp_path / "noprj.zip"
    with zipfile.ZipFile(no_prj, "w") as zf:
        for part in shp_dir.iterdir():
            if part.suffix != ".prj":
                zf.write(part, part.name)
    with pytest.raises(InvalidInput, match="declares no CRS; say which with --crs"):
        run(session, no_prj, kind="shelter", id_field="gid")
    forced = run(session, no_prj, kind="shelter", crs="EPSG:26986", source="shp2", id_field="gid")
    assert forced.inserted == 1


def test_csv_with_wkt_or_lonlat_needs_a_crs(session: Session, tmp_path: Path) -> None:
    wkt = tmp_path / "hydrants.csv"
    wkt.write_text(
        'id,WKT,flow_gpm\nh1,"POINT (-71.11 42.37)",1000\nh2,"POINT (-71.12 42.38)",\n'
        "h3,not wkt,500\n"
    )
    with pytest.raises(InvalidInput, match="declares no CRS"):
        run(session, wkt, kind="hydrant", id_field="id")
    report = run(
        session, wkt, kind="hydrant", id_field="id", crs="EPSG:4326", source="c", partial=True
    )
    assert report.inserted == 2
    assert [(r.row, r.reason) for r in report.rejected] == [(3, "no geometry")]

    lonlat = tmp_path / "valves.csv"
    lonlat.write_text("external_id,lon,lat,network\nv1,-71.11,42.37,gas\nv2,x,42.37,water\n")
    report = run(session, lonlat, kind="valve", crs="WGS84", source="v", partial=True)
    assert report.inserted == 1
    assert report.rejected[0].reason == "NaN or infinite coordinates"

    bare = tmp_path / "bare.csv"
    bare.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="CSV needs a WKT column"):
        run(session, bare, kind="valve", crs="EPSG:4326")


def test_gcj02_file_is_converted_to_wgs84(session: Session, tmp_path: Path) -> None:
    """Published pairs: coordtransform README (Beijing) and prcoords (Hefei centre)."""
    path = write_geojson(
        tmp_path / "hefei.geojson",
        [
            feature(point(116.41024449916938, 39.91640428150164), external_id="beijing"),
            feature(point(117.283042, 31.86119), external_id="hefei"),
        ],
        crs="EPSG:4326",  # labelled WGS84, but really GCJ-02, like the Hefei district file
    )
    report = run(session, path, kind="admin_area", crs="gcj02", source="gcj")
    assert report.crs == "gcj02"
    assert report.inserted == 0
    assert report.rejected
    # Points are not admin areas: the same file as police stations instead.
    report = run(session, path, kind="police_station", crs="gcj02", source="gcj")
    assert report.inserted == 2
    assert any("overrides the CRS the file declares" in n for n in report.notes)
    stored = {r.external_id: (r.x, r.y) for r in rows(session, "gcj")}
    assert stored["beijing"] == pytest.approx((116.404, 39.915), abs=2e-7)
    assert stored["hefei"] == pytest.approx((117.277529761, 31.863192222), abs=2e-7)


def test_cgcs2000_gauss_kruger_zone(session: Session, tmp_path: Path) -> None:
    hefei = gpd.GeoDataFrame(
        {"external_id": ["p"]}, geometry=[Point(117.2775, 31.8632)], crs=4490
    ).to_crs(4548)
    path = tmp_path / "gk.gpkg"
    hefei.to_file(path, layer="x")
    report = run(session, path, kind="police_station", source="gk")
    assert report.crs == "EPSG:4548"
    assert report.inserted == 1
    stored = rows(session, "gk")[0]
    assert (stored.x, stored.y) == pytest.approx((117.2775, 31.8632), abs=1e-7)


def test_whole_file_errors_are_clear(session: Session, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "a.geojson", [feature(point(*CAMBRIDGE), NAME="x")])
    with pytest.raises(InvalidInput, match="unknown asset kind 'pipe'; known kinds: "):
        run(session, path, kind="pipe")
    with pytest.raises(InvalidInput, match="--map names field"):
        run(session, path, kind="school", field_map={"SITE": "name"})
    with pytest.raises(InvalidInput, match="--id-field 'gid' is not a field"):
        run(session, path, kind="school", id_field="gid")
    with pytest.raises(InvalidInput, match="FILE_FIELD=ASSET_FIELD"):
        parse_field_map(["oops"])
    junk = tmp_path / "junk.geojson"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InvalidInput, match="not a recognised GIS file"):
        run(session, junk, kind="school")
    with pytest.raises(InvalidInput, match="no such file"):
        run(session, tmp_path / "missing.gpkg", kind="school")
    with pytest.raises(InvalidInput, match="CRS was 'EPSG:999999' but is expected to be"):
        run(session, path, kind="school", crs="EPSG:999999")


def test_field_map_and_content_ids(session: Session, tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "sites.geojson",
        [feature(point(*CAMBRIDGE), SITE_NAME="Youville House", BEDS="12")],
    )
    report = run(session, path, kind="elderly_care", field_map={"SITE_NAME": "name"}, source="m")
    assert report.inserted == 1
    assert any("external ids are derived" in n for n in report.notes)
    stored = rows(session, "m")[0]
    assert stored.name == "Youville House"
    assert stored.external_id.startswith("elderly_care-")
    assert stored.attributes == {"BEDS": "12"}  # not in the taxonomy: kept as given
    assert (
        run(
            session, path, kind="elderly_care", field_map={"SITE_NAME": "name"}, source="m"
        ).unchanged
        == 1
    )


def test_demo_layers_import_with_clean_reports(session: Session) -> None:
    """Every layer of the shipped demo city (Cambridge, MA) imports without a rejected row."""
    import pyogrio

    from app.flows.demo import demo_path

    for layer, _ in pyogrio.list_layers(demo_path()):
        report = run(session, demo_path(), kind=str(layer), layer=str(layer))
        expected = pyogrio.read_info(demo_path(), layer=str(layer))["features"]
        assert (report.rows_read, report.accepted, report.rejected) == (expected, expected, []), (
            layer
        )
        assert report.inserted + report.updated + report.unchanged == expected


def test_content_ids_cope_with_missing_values(session: Session, tmp_path: Path) -> None:
    """Regression: a file without ids whose properties have nulls (Cambridge's bridges)."""
    square = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    path = write_geojson(
        tmp_path / "bridges.geojson",
        [feature(square, TYPE="ROAD BRIDGE", BridgeDetails=None), feature(square, TYPE=None)],
    )
    report = run(session, path, kind="bridge", source="nulls")
    assert (report.inserted, report.rejected) == (2, [])
    assert run(session, path, kind="bridge", source="nulls").unchanged == 2


def test_missing_names_are_null_not_the_text_nan(session: Session, tmp_path: Path) -> None:
    """Regression: pandas turned a missing name into NaN, which COPY stored as 'nan'."""
    path = write_geojson(
        tmp_path / "clinics.geojson",
        [
            feature(point(*CAMBRIDGE), external_id="c1", name=None, owner="City"),
            feature(point(*CAMBRIDGE), external_id="c2", name="Windsor St", owner=None),
        ],
    )
    assert run(session, path, kind="clinic", source="nan").inserted == 2
    got = session.execute(
        text("SELECT external_id, name, owner FROM asset WHERE source = 'nan' ORDER BY 1")
    ).all()
    assert [tuple(r) for r in got] == [("c1", None, "City"), ("c2", "Windsor St", None)]
