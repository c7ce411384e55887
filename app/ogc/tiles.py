"""OGC API – Tiles (Part 1) over the layer registry, under ``/ogc``: vector tiles (MVT) of the
OGC collections in WebMercatorQuad.

- ``/ogc/tileMatrixSets`` and ``/ogc/tileMatrixSets/WebMercatorQuad``: the tile matrix set, as
  morecantile defines it (OGC 17-083r4 TileMatrixSet 2.0 JSON);
- ``/ogc/collections/{id}/tiles``: the collection's tilesets (one: WebMercatorQuad, vector);
- ``/ogc/collections/{id}/tiles/WebMercatorQuad``: the tileset metadata, whose ``item`` links
  are URI templates of the tiles — ours (``/tiles/{layer}/{z}/{x}/{y}.mvt``, with its ETag and
  cache) and the OGC path below;
- ``/ogc/collections/{id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}``: the same
  MVT as ``/tiles`` (note the order: zoom, **row** (y), **column** (x)).

A collection has tiles when the registry has a layer of the same id (every asset kind and
``exposure`` do). Mount with ``app.include_router(app.ogc.tiles.router)``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.errors import NotFound
from app.ogc.catalog import COLLECTIONS
from app.ogc.documents import JSON, OGC_REL, link
from app.ogc.routes import OGCRoute
from app.tiles import routes as tile_routes
from layers.base import Layer
from layers.tiles import TMS

router = APIRouter(prefix="/ogc", tags=["OGC API Tiles"], route_class=OGCRoute)

TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"


def _root(request: Request) -> str:
    return str(request.url_for("ogc_landing")).rstrip("/")


def _host(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _layer(request: Request, collection_id: str) -> Layer:
    """The layer of an OGC collection; 404 for unknown collections and those without tiles."""
    registry = tile_routes.tile_service(request).registry
    if collection_id not in COLLECTIONS or collection_id not in registry:
        raise NotFound(
            f"no collection {collection_id!r} with tiles; GET /ogc/collections lists them"
        )
    return registry.get(collection_id)


def _tms_summary(root: str) -> dict[str, Any]:
    href = f"{root}/tileMatrixSets/{TMS_ID}"
    return {
        "id": TMS_ID,
        "title": TMS.title or "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": CRS_3857,
        "links": [link(href, "self", JSON, "tile matrix set definition")],
    }


def _tileset_summary(root: str, layer: Layer) -> dict[str, Any]:
    href = f"{root}/collections/{layer.id}/tiles/{TMS_ID}"
    return {
        "title": f"{layer.title} ({TMS_ID})",
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "links": [
            link(href, "self", JSON, "tileset metadata"),
            link(
                f"{root}/tileMatrixSets/{TMS_ID}",
                OGC_REL + "tiling-scheme",
                JSON,
                "tile matrix set definition",
            ),
        ],
    }


@router.get("/tileMatrixSets", name="ogc_tile_matrix_sets")
def tile_matrix_sets(request: Request) -> JSONResponse:
    """The tile matrix sets tiles are served in (WebMercatorQuad only)."""
    root = _root(request)
    return JSONResponse(
        {
            "tileMatrixSets": [_tms_summary(root)],
            "links": [link(f"{root}/tileMatrixSets", "self", JSON, "this document")],
        }
    )


@router.get("/tileMatrixSets/{tms_id}", name="ogc_tile_matrix_set")
def tile_matrix_set(request: Request, tms_id: str) -> JSONResponse:
    """A tile matrix set definition (OGC TileMatrixSet 2.0 JSON, from morecantile)."""
    if tms_id != TMS_ID:
        raise NotFound(f"no tile matrix set {tms_id!r}; the only one is {TMS_ID}")
    doc = TMS.model_dump(exclude_none=True, mode="json")
    return JSONResponse(doc)


@router.get("/collections/{collection_id}/tiles", name="ogc_collection_tilesets")
def collection_tilesets(request: Request, collection_id: str) -> JSONResponse:
    """The tilesets of a collection: vector tiles in WebMercatorQuad."""
    layer = _layer(request, collection_id)
    root = _root(request)
    return JSONResponse(
        {
            "links": [
                link(f"{root}/collections/{collection_id}/tiles", "self", JSON, "tilesets"),
                link(f"{root}/collections/{collection_id}", "collection", JSON, "collection"),
            ],
            "tilesets": [_tileset_summary(root, layer)],
        }
    )


@router.get("/collections/{collection_id}/tiles/{tms_id}", name="ogc_collection_tileset")
def collection_tileset(request: Request, collection_id: str, tms_id: str) -> JSONResponse:
    """Tileset metadata: the tile URL templates, zooms and the layer's fields."""
    layer = _layer(request, collection_id)
    if tms_id != TMS_ID:
        raise NotFound(f"no tileset {tms_id!r}; the only tile matrix set is {TMS_ID}")
    root, host = _root(request), _host(request)
    doc = _tileset_summary(root, layer)
    ogc_template = (
        f"{root}/collections/{layer.id}/tiles/{TMS_ID}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    )
    # Our own tile URL is a valid template too, with the OGC variable names in XYZ order.
    own_template = f"{host}/tiles/{layer.id}/{{tileMatrix}}/{{tileCol}}/{{tileRow}}.mvt"
    doc["links"] += [
        {**link(own_template, "item", tile_routes.MVT, "vector tiles"), "templated": True},
        {
            **link(ogc_template, "item", tile_routes.MVT, "vector tiles (OGC path)"),
            "templated": True,
        },
        link(f"{root}/collections/{layer.id}", "geodata", JSON, "the collection"),
        link(f"{host}/tiles/{layer.id}.json", "describedby", "application/json", "TileJSON"),
    ]
    fields = {
        f.name: {"type": f.type.lower(), "description": f.description} for f in layer.properties
    }
    doc["layers"] = [
        {
            "id": layer.id,
            "title": layer.title,
            "dataType": "vector",
            "minTileMatrix": str(layer.zoom.minzoom),
            "maxTileMatrix": str(layer.zoom.maxzoom),
            "propertiesSchema": {"type": "object", "properties": fields},
        }
    ]
    dimension = _dimension(layer)
    if dimension is not None:
        doc["layers"][0]["geometryDimension"] = dimension
    doc["tileMatrixSetLimits"] = [
        {
            "tileMatrix": str(z),
            "minTileRow": 0,
            "maxTileRow": 2**z - 1,
            "minTileCol": 0,
            "maxTileCol": 2**z - 1,
        }
        for z in range(layer.zoom.minzoom, layer.zoom.maxzoom + 1)
    ]
    return JSONResponse(doc)


def _dimension(layer: Layer) -> int | None:
    dims = {"point": 0, "line": 1, "polygon": 2}
    return dims.get(layer.style.geometry)  # None for mixed layers: dropped from the document


class OGCTileRoute(OGCRoute, tile_routes.StringParamsRoute):
    """OGC exception bodies around the tile route's string-parameter handler."""


async def collection_tile(
    request: Request,
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
) -> Response:
    """One vector tile: ``tile_matrix`` is the zoom, ``tile_row`` y, ``tile_col`` x."""
    layer = _layer(request, collection_id)
    if tms_id != TMS_ID:
        raise NotFound(f"no tileset {tms_id!r}; the only tile matrix set is {TMS_ID}")
    # Same code path as /tiles: the cache, the ETag, 304 and gzip all apply.
    return await tile_routes.get_tile(request, layer.id, tile_matrix, tile_col, tile_row)


router.add_api_route(
    "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}",
    collection_tile,
    methods=["GET"],
    name="ogc_collection_tile",
    response_class=Response,
    responses={200: {"content": {tile_routes.MVT: {}}, "description": "An MVT tile"}},
    route_class_override=OGCTileRoute,
)
