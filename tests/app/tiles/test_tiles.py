"""Vector tiles on a real PostGIS: MVT decoded with mapbox-vector-tile, TileJSON, composite
tiles, hexagons at low zoom, the version-keyed cache, ETag/304 and freshness after a write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.affinity import scale
from shapely.geometry import shape
from sqlalchemy import Float, bindparam, func, select, text
from sqlalchemy.engine import Engine

from layers.tiles import _hex_index
from tests import factories as f

SOURCE = "tiles-test"
TMS = morecantile.tms.get("WebMercatorQuad")
# Demo city (Cambridge MA): the whole of it lies in this z10 tile.
CITY_Z10 = (10, 309, 378)
HYDRANTS = [(-71.1100, 42.3750), (-71.1000, 42.3700), (-71.1200, 42.3800), (-71.0900, 42.3600)]


def add_assets(engine: Engine, rows: list[tuple[str, str, str]]) -> None:
    """Insert (external_id, kind, WKT) rows, committed: the app sees them."""
    with engine.begin() as conn:
        for eid, kind, wkt in rows:
            f.asset(
                conn,
                kind,
                wkt,
                source=SOURCE,
                external_id=eid,
                name=eid,
                install_year=1990,
                diameter_mm=300,
            )


@pytest.fixture
def assets(engine: Engine) -> Iterator[None]:
    rows = [(f"h{i}", "hydrant", f"POINT({lon} {lat})") for i, (lon, lat) in enumerate(HYDRANTS)]
    rows.append(("g1", "gas_pipe", "LINESTRING(-71.115 42.375, -71.105 42.375)"))
    add_assets(engine, rows)
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alarm WHERE rule_code = 'tiles-test'"))
        conn.execute(text("DELETE FROM rule WHERE code = 'tiles-test'"))
        conn.execute(text("DELETE FROM asset WHERE source = :s"), {"s": SOURCE})


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    t = TMS.tile(lon, lat, z)
    return t.z, t.x, t.y


def get(client: TestClient, layers: str, zxy: tuple[int, int, int], **kw: Any) -> Any:
    z, x, y = zxy
    return client.get(f"/tiles/{layers}/{z}/{x}/{y}.mvt", **kw)


def decode(body: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(body)  # type: ignore[no-any-return]


def hydrant_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM asset WHERE kind = 'hydrant'")).scalar())


@pytest.mark.usefixtures("assets")
def test_known_asset_lands_in_its_tile_with_properties(client: TestClient) -> None:
    lon, lat = HYDRANTS[0]
    response = get(client, "hydrant", tile_of(lon, lat, 16))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = decode(response.content)["hydrant"]
    assert layer["extent"] == 4096
    feature = next(f for f in layer["features"] if f["properties"]["name"] == "h0")
    assert feature["geometry"]["type"] == "Point"
    px, py = feature["geometry"]["coordinates"]
    assert 0 <= px <= 4096
    assert 0 <= py <= 4096
    assert feature["properties"]["install_year"] == 1990
    assert feature["properties"]["kind"] == "hydrant"
    # Where it should be inside the tile (the decoder flips y to point up).
    bounds = TMS.xy_bounds(morecantile.Tile(*tile_of(lon, lat, 16)[1:], 16))
    mx, my = TMS.xy(lon, lat)
    assert abs(px - (mx - bounds.left) / (bounds.right - bounds.left) * 4096) <= 1
    assert abs(py - (my - bounds.bottom) / (bounds.top - bounds.bottom) * 4096) <= 1
    # A tile a few kilometres away does not carry it.
    z, x, y = tile_of(lon, lat, 16)
    far = decode(get(client, "hydrant", (z, x + 5, y)).content)
    names = {f["properties"]["name"] for f in far.get("hydrant", {"features": []})["features"]}
    assert "h0" not in names


def test_empty_tile_is_200_with_a_zero_length_body(client: TestClient) -> None:
    response = get(client, "hydrant", (16, 0, 0))  # the Arctic off Alaska
    assert response.status_code == 200
    assert response.content == b""
    assert decode(response.content) == {}
    assert response.headers["etag"]


@pytest.mark.usefixtures("assets")
def test_composite_tile_carries_both_layers(client: TestClient) -> None:
    response = get(client, "hydrant,gas_pipe", tile_of(-71.11, 42.375, 15))
    assert response.status_code == 200
    tile = decode(response.content)
    assert set(tile) == {"hydrant", "gas_pipe"}
    assert tile["gas_pipe"]["features"][0]["geometry"]["type"] == "LineString"
    assert any(f["properties"]["name"] == "h0" for f in tile["hydrant"]["features"])


@pytest.mark.usefixtures("assets")
def test_low_zoom_ships_hexagons_whose_counts_sum_to_the_features(
    client: TestClient, engine: Engine
) -> None:
    tile = decode(get(client, "hydrant", CITY_Z10).content)["hydrant"]
    assert tile["features"]
    for feature in tile["features"]:
        assert feature["geometry"]["type"] == "Polygon"  # hexagons, never raw points
        assert set(feature["properties"]) == {"count"}
    assert sum(f["properties"]["count"] for f in tile["features"]) == hydrant_count(engine)
    # At z13 and above, raw features again.
    raw = decode(get(client, "hydrant", tile_of(*HYDRANTS[0], 13)).content)["hydrant"]
    assert {f["geometry"]["type"] for f in raw["features"]} == {"Point"}


def test_hexagon_cell_arithmetic_matches_st_hexagon(engine: Engine) -> None:
    """Each point lies in ST_Hexagon(size, i, j) for the (i, j) the tiles compute."""
    size = 137.5
    pts = (
        select(
            (func.random() * 20000 - 10000).label("px"),
            (func.random() * 20000 - 10000).label("py"),
        )
        .select_from(func.generate_series(1, 2000).alias("g"))
        .subquery()
    )
    i, j = _hex_index(pts.c.px, pts.c.py, bindparam("size", size, type_=Float))
    inside = func.ST_Intersects(
        func.ST_Hexagon(bindparam("size", size, type_=Float), i, j),
        func.ST_MakePoint(pts.c.px, pts.c.py),
    )
    query = select(func.count()).select_from(pts).where(~inside)
    with engine.connect() as conn:
        assert conn.execute(query).scalar() == 0


@pytest.mark.usefixtures("assets")
def test_cache_hit_etag_304_and_a_write_makes_the_next_tile_fresh(
    client: TestClient, engine: Engine
) -> None:
    zxy = tile_of(-71.11, 42.375, 15)
    first = get(client, "hydrant", zxy)
    second = get(client, "hydrant", zxy)
    assert second.headers["x-tile-cache"] == "hit"
    assert second.headers["etag"] == first.headers["etag"]
    assert second.content == first.content
    assert second.headers["cache-control"] == "public, max-age=300"
    etag = first.headers["etag"]
    assert etag.startswith('"')  # strong
    not_modified = get(client, "hydrant", zxy, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == etag

    add_assets(engine, [("h-new", "hydrant", "POINT(-71.1101 42.3751)")])

    fresh = get(client, "hydrant", zxy, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["x-tile-cache"] == "miss"
    assert fresh.headers["etag"] != etag
    names = {f["properties"]["name"] for f in decode(fresh.content)["hydrant"]["features"]}
    assert "h-new" in names


@pytest.mark.usefixtures("assets")
def test_gzip_when_accepted_and_versioned_urls_are_immutable(client: TestClient) -> None:
    zxy = tile_of(-71.11, 42.375, 15)
    zipped = get(client, "hydrant", zxy, headers={"Accept-Encoding": "gzip"})
    plain = get(client, "hydrant", zxy, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.content == plain.content  # httpx inflates
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert zipped.headers["vary"] == "Accept-Encoding"
    url = client.get("/tiles/hydrant.json").json()["tiles"][0]
    z, x, y = zxy
    versioned = client.get(url.replace("{z}/{x}/{y}", f"{z}/{x}/{y}"))
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.usefixtures("assets")
def test_tilejson_is_tilejson_3(client: TestClient) -> None:
    doc = client.get("/tiles/hydrant,gas_pipe.json").json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"][0].startswith("http://testserver/tiles/hydrant,gas_pipe/{z}/{x}/{y}.mvt")
    assert 0 <= doc["minzoom"] <= doc["maxzoom"] <= 24
    minx, miny, maxx, maxy = doc["bounds"]
    assert minx <= -71.12
    assert miny <= 42.36
    assert maxx >= -71.09
    assert maxy >= 42.38
    layers = {v["id"]: v for v in doc["vector_layers"]}
    assert set(layers) == {"hydrant", "gas_pipe"}
    assert layers["gas_pipe"]["fields"]["diameter_mm"] == "Number"
    assert layers["gas_pipe"]["fields"]["material"] == "String"
    assert layers["hydrant"]["fields"]["count"] == "Number"  # hexagons at low zoom


def test_layers_lists_every_layer_with_legend(client: TestClient) -> None:
    layers = {entry["id"]: entry for entry in client.get("/layers").json()["layers"]}
    assert {"gas_pipe", "hydrant", "exposure", "alarms", "latest_readings"} <= set(layers)
    alarms = layers["alarms"]
    assert alarms["data"] == "live"
    assert alarms["tilejson"] == "http://testserver/tiles/alarms.json"
    assert [i["colour"] for i in alarms["legend"]["items"]] == [
        "#e60012",
        "#ff8c00",
        "#ffd400",
        "#0068b7",
    ]
    assert layers["gas_pipe"]["plate"] == "lifeline"


@pytest.mark.usefixtures("assets")
def test_alarms_layer_is_live_and_fresh_after_a_new_alarm(
    client: TestClient, engine: Engine
) -> None:
    zxy = tile_of(-71.11, 42.375, 15)
    before = get(client, "alarms", zxy)
    assert before.headers["cache-control"] == "no-cache"
    with engine.begin() as conn:
        rule = f.rule(
            conn, indicator="methane_ppm", title="test", thresholds={"1": 100}, code="tiles-test"
        )
        f.alarm(conn, rule, level=1, lon=-71.11, lat=42.375, event=False)
    after = get(client, "alarms", zxy, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    features = decode(after.content)["alarms"]["features"]
    assert [f["properties"]["level"] for f in features] == [1]
    assert features[0]["properties"]["state"] == "raised"
    # Hexagons at low zoom carry the worst level.
    hexes = decode(get(client, "alarms", CITY_Z10).content)["alarms"]["features"]
    assert [(f["properties"]["count"], f["properties"]["level"]) for f in hexes] == [(1, 1.0)]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tiles/no_such_layer/1/0/0.mvt", 404),
        ("/tiles/hydrant,no_such_layer/1/0/0.mvt", 404),
        ("/tiles/hydrant/1/2/0.mvt", 404),
        ("/tiles/hydrant/1/0/2.mvt", 404),
        ("/tiles/hydrant/25/0/0.mvt", 404),
        ("/tiles/hydrant/-1/0/0.mvt", 422),
        ("/tiles/hydrant/a/0/0.mvt", 422),
        ("/tiles/hydrant/1/0/1e3.mvt", 422),
        ("/tiles/hydrant/99999999999999999999/0/0.mvt", 422),
        ("/tiles/no_such_layer.json", 404),
    ],
)
def test_bad_addresses_are_4xx_with_a_message(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["detail"]


def test_big_polygons_are_cut_to_the_tile_without_changing_what_shows(
    client: TestClient, engine: Engine
) -> None:
    """A many-vertex polygon is clipped to the tile before it is simplified (for speed): the
    decoded tile must show the same shape as the uncut pipeline gives."""
    with engine.begin() as conn:
        # A 1.5 km circle of 512 segments, built by PostGIS; its WKT round-trips exactly.
        wkt = conn.execute(
            text(
                "SELECT ST_AsText(ST_Transform(ST_Buffer(ST_Transform("
                "ST_SetSRID(ST_MakePoint(-71.11, 42.375), 4326), 26986), 1500, 128), 4326))"
            )
        ).scalar_one()
        f.asset(conn, "flood_zone", wkt, source=SOURCE, external_id="fz-big", name="fz-big")
    try:
        with engine.connect() as conn:
            points = conn.execute(
                text("SELECT ST_NPoints(geom) FROM asset WHERE external_id = 'fz-big'")
            ).scalar_one()
        assert points > 64  # the cut applies
        # inside, across the east edge, across the north edge (the zone's radius is 1.5 km)
        for lon, lat, z in ((-71.11, 42.375, 16), (-71.0918, 42.375, 15), (-71.11, 42.3885, 14)):
            zxy = tile_of(lon, lat, z)
            got = decode(get(client, "flood_zone", zxy).content)["flood_zone"]["features"]
            mine = [f for f in got if f["properties"]["name"] == "fz-big"]
            assert len(mine) == 1
            with engine.connect() as conn:
                reference = conn.execute(
                    text(
                        "SELECT ST_AsText(ST_AsMVTGeom(ST_Simplify(ST_Transform(geom, 3857), "
                        ":tol, true), ST_TileEnvelope(:z, :x, :y), 4096, 64, true)) "
                        "FROM asset WHERE external_id = 'fz-big'"
                    ),
                    {"z": zxy[0], "x": zxy[1], "y": zxy[2], "tol": 0.0},
                ).scalar_one()
            expected = shapely.from_wkt(reference)
            # mapbox_vector_tile puts the origin bottom-left: flip y back to compare.
            shown = scale(shape(mine[0]["geometry"]), yfact=-1, origin=(0, 2048))
            tile_area = 4096 * 4096
            assert abs(shown.area - expected.area) < 0.005 * tile_area
            assert shown.symmetric_difference(expected).area < 0.005 * tile_area
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM asset WHERE external_id = 'fz-big'"))


def test_tile_statements_are_prepared_once_per_connection(engine: Engine) -> None:
    """A tile statement is planned once per pooled connection, not once per tile: the pool was
    opened with ``prepare_threshold=None``, which in psycopg 3.3 turns ``prepare=True`` off
    too, so every tile re-planned the layers' SQL and psycopg re-parsed its > 4 KB text (7 %
    of the event loop's time under the soak, py-spy)."""
    import asyncio

    from app.settings import TileSettings
    from app.tiles.service import TileService
    from layers.registry import default_registry
    from layers.tiles import TileAddress

    service = TileService(default_registry(), TileSettings(pool_size=1, cache_mb=0))
    layers = (service.registry.get("gas_pipe"), service.registry.get("alarms"))

    async def run() -> list[str]:
        for x in (19_813, 19_814, 19_815):
            await service.get_tile(engine, layers, TileAddress(16, x, 24_236))
        pool = await service.pool(engine)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            names = [str(r[0]) for r in await cur.fetchall()]
        await pool.close()
        return names

    prepared = asyncio.run(run())
    assert any("ST_AsMVT" in s for s in prepared), f"prepared on the tile connection: {prepared}"


def test_tile_statements_are_positional_so_psycopg_does_not_reparse_them() -> None:
    """psycopg converts ``%(name)s`` SQL on every execute and caches that only under 4,096
    characters; the tile statements are longer (gas_pipe + alarms: ~4,600), and converting them
    was 10 % of the server's GIL time under the soak (py-spy --gil, stop 23). Compiled with
    ``$n`` placeholders, they run on a raw cursor as they are."""
    from app.settings import TileSettings
    from app.tiles.service import TileService
    from layers.registry import default_registry
    from layers.tiles import TileAddress

    service = TileService(default_registry(), TileSettings(pool_size=1, cache_mb=0))
    layers = (service.registry.get("gas_pipe"), service.registry.get("alarms"))
    compiled = service.statement(layers, 16)
    assert len(compiled.sql) > 4096
    assert "%(" not in compiled.sql
    assert compiled.order is not None
    assert "$1" in compiled.sql
    tile = TileAddress(16, 19_813, 24_236)
    args, named = compiled.args(tile), compiled.params(tile)
    assert len(args) == len(compiled.order) == len(set(compiled.order))
    assert dict(zip(compiled.order, args, strict=True)) == {k: named[k] for k in compiled.order}
