"""OGC API – Tiles under /ogc over plain HTTP: tile matrix sets (morecantile), a collection's
tilesets and tileset metadata, and tiles by z/row/col decoded with mapbox-vector-tile."""

from __future__ import annotations

from collections.abc import Iterator

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests import factories as f

SOURCE = "ogc-tiles-test"
TMS = morecantile.tms.get("WebMercatorQuad")
LON, LAT = -71.1100, 42.3750
OGC_TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"


@pytest.fixture
def hydrant(engine: Engine) -> Iterator[int]:
    with engine.begin() as conn:
        asset_id = f.asset(
            conn, "hydrant", f.point(LON, LAT), source=SOURCE, external_id="h1", name="ogc-h1"
        )
    yield asset_id
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM asset WHERE source = :s"), {"s": SOURCE})


def test_tile_matrix_sets_come_from_morecantile(client: TestClient) -> None:
    listed = client.get("/ogc/tileMatrixSets").json()["tileMatrixSets"]
    assert [t["id"] for t in listed] == ["WebMercatorQuad"]
    href = listed[0]["links"][0]["href"]
    doc = client.get(href).json()
    # A valid TileMatrixSet 2.0 document: morecantile reads it back as the same grid.
    parsed = morecantile.TileMatrixSet.model_validate(doc)
    assert parsed.id == "WebMercatorQuad"
    assert parsed.matrix(15).matrixWidth == 2**15
    assert client.get("/ogc/tileMatrixSets/NZTM2000Quad").status_code == 404


def test_conformance_and_collection_link_to_tiles(client: TestClient) -> None:
    conforms = client.get("/ogc/conformance").json()["conformsTo"]
    for cls in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt"):
        assert OGC_TILES + cls in conforms
    links = client.get("/ogc/collections/hydrant").json()["links"]
    rels = {link["rel"]: link["href"] for link in links}
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"].endswith(
        "/ogc/collections/hydrant/tiles"
    )


def test_tilesets_metadata_and_tiles_by_row_and_column(client: TestClient, hydrant: int) -> None:
    tilesets = client.get("/ogc/collections/hydrant/tiles").json()["tilesets"]
    assert len(tilesets) == 1
    assert tilesets[0]["dataType"] == "vector"
    assert tilesets[0]["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    meta_href = next(x["href"] for x in tilesets[0]["links"] if x["rel"] == "self")
    meta = client.get(meta_href).json()
    templates = [x["href"] for x in meta["links"] if x["rel"] == "item"]
    assert templates[0] == ("http://testserver/tiles/hydrant/{tileMatrix}/{tileCol}/{tileRow}.mvt")
    assert templates[1].endswith(
        "/ogc/collections/hydrant/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"
    )
    assert meta["layers"][0]["id"] == "hydrant"
    assert meta["layers"][0]["geometryDimension"] == 0
    assert meta["tileMatrixSetLimits"][0]["tileMatrix"] == "0"

    tile = TMS.tile(LON, LAT, 16)
    values = {"tileMatrix": str(tile.z), "tileRow": str(tile.y), "tileCol": str(tile.x)}
    bodies = []
    for template in templates:
        url = template
        for name, value in values.items():
            url = url.replace("{" + name + "}", value)
        response = client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        bodies.append(response.content)
    assert bodies[0] == bodies[1]  # the same tile through both paths
    features = mapbox_vector_tile.decode(bodies[1])["hydrant"]["features"]
    assert hydrant in {f["properties"]["id"] for f in features}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ogc/collections/nope/tiles", 404),
        ("/ogc/collections/hydrant/tiles/NZTM2000Quad", 404),
        ("/ogc/collections/hydrant/tiles/WebMercatorQuad/1/2/0", 404),
        ("/ogc/collections/hydrant/tiles/WebMercatorQuad/1/0/x", 422),
    ],
)
def test_bad_tile_requests_get_ogc_exceptions(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["description"]
