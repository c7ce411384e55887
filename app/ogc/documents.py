"""The JSON documents of the OGC API (landing page, collections, features …) and their links.

Pure functions of already-fetched data and URLs; the routes pick JSON or HTML and the service
does the SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import URL, QueryParams

from app.assets.catalog import GEOMETRY, Collection, Property
from app.ogc.params import CRS84, ItemsQuery
from app.ogc.processes import CONFORMANCE as PROCESSES_CONFORMANCE
from app.ogc.service import Extent, Feature, FeaturePage

JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
SCHEMA_JSON = "application/schema+json"
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
OPENAPI_31 = "application/vnd.oai.openapi+json;version=3.1"

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
TRS_GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"

#: What this API implements (GET /ogc/conformance). See the module docs of app.ogc.cql for the
#: CQL2 parts left out: temporal functions (evaluated per year, so not claimed), arrays,
#: arithmetic, ACCENTI and user functions.
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    # OGC API – Tiles (app.ogc.tiles): collections' tilesets, MVT, WebMercatorQuad only.
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    # OGC API – Processes (app.ogc.processes): the impact scenarios, executed synchronously.
    *PROCESSES_CONFORMANCE,
)

_GEOMETRY_FORMATS = {
    frozenset({"point"}): "geometry-point-or-multipoint",
    frozenset({"line"}): "geometry-linestring-or-multilinestring",
    frozenset({"polygon"}): "geometry-polygon-or-multipolygon",
}


def link(href: URL | str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    doc = {"href": str(href), "rel": rel, "type": type_}
    if title:
        doc["title"] = title
    return doc


def self_links(url: URL, json_type: str = JSON) -> list[dict[str, str]]:
    """``self`` in the format served and ``alternate`` in the other one."""
    is_html = QueryParams(url.query).get("f") == "html"
    as_json = url.remove_query_params("f")
    as_html = url.include_query_params(f="html")
    if is_html:
        return [
            link(as_html, "self", HTML, "this document"),
            link(as_json, "alternate", json_type, "this document as JSON"),
        ]
    return [
        link(url, "self", json_type, "this document"),
        link(as_html, "alternate", HTML, "this document as HTML"),
    ]


def landing(url: URL, base: URL) -> dict[str, Any]:
    """``base`` is the API root (…/ogc); ``url`` the request's own URL."""
    root = str(base).rstrip("/")
    host = root.rsplit("/ogc", 1)[0]
    return {
        "title": "cityrisk — urban safety assets",
        "description": "City assets of the four safety plates (lifeline, public safety, "
        "production safety, natural disaster) and the exposure layer, one collection per "
        "asset kind, and the impact zones of incidents, as OGC API Features with CQL2 "
        "filtering and vector tiles; the impact scenarios as OGC API Processes.",
        "links": [
            *self_links(url),
            link(f"{root}/api", "service-desc", OPENAPI_30, "API definition (OpenAPI 3.0)"),
            link(
                f"{host}/openapi.json",
                "service-desc",
                OPENAPI_31,
                "whole cityrisk API (OpenAPI 3.1)",
            ),
            link(f"{host}/docs", "service-doc", HTML, "API documentation"),
            link(f"{root}/conformance", "conformance", JSON, "conformance classes"),
            link(f"{root}/conformance", OGC_REL + "conformance", JSON, "conformance classes"),
            link(f"{root}/collections", "data", JSON, "collections"),
            link(f"{root}/collections", OGC_REL + "data", JSON, "collections"),
            link(f"{root}/tileMatrixSets", OGC_REL + "tiling-schemes", JSON, "tile matrix sets"),
            link(f"{root}/processes", OGC_REL + "processes", JSON, "processes (impact scenarios)"),
            link(f"{root}/jobs", OGC_REL + "job-list", JSON, "jobs (none: synchronous only)"),
        ],
    }


def conformance(url: URL) -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE), "links": self_links(url)}


def collection(coll: Collection, extent: Extent | None, base: URL) -> dict[str, Any]:
    root = f"{str(base).rstrip('/')}/collections/{coll.id}"
    doc: dict[str, Any] = {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            link(root, "self", JSON, "this collection"),
            link(f"{root}?f=html", "alternate", HTML, "this collection as HTML"),
            link(f"{root}/items", "items", GEOJSON, f"{coll.title} features"),
            link(f"{root}/items?f=html", "items", HTML, f"{coll.title} features as HTML"),
            link(f"{root}/queryables", OGC_REL + "queryables", SCHEMA_JSON, "queryables"),
            link(f"{root}/schema", OGC_REL + "schema", SCHEMA_JSON, "feature schema"),
            link(f"{root}/schema", "describedby", SCHEMA_JSON, "feature schema"),
            link(f"{root}/tiles", OGC_REL + "tilesets-vector", JSON, "vector tilesets"),
        ],
    }
    if extent is not None:
        extent_doc = _extent(extent, temporal=coll.temporal is not None)
        if extent_doc:
            doc["extent"] = extent_doc
    if coll.temporal is not None:
        doc["description"] += (
            f" Dated by the year in {coll.temporal!r}: datetime and T_* filters compare years."
        )
    return doc


def _extent(extent: Extent, *, temporal: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if extent.bbox is not None:
        doc["spatial"] = {"bbox": [list(extent.bbox)], "crs": CRS84}
    if temporal and extent.years is not None and extent.years != (None, None):
        first, last = extent.years
        doc["temporal"] = {
            "interval": [
                [
                    None if first is None else f"{first:04d}-01-01T00:00:00Z",
                    None if last is None else f"{last:04d}-12-31T23:59:59Z",
                ]
            ],
            "trs": TRS_GREGORIAN,
        }
    if not extent.exact:
        doc["description"] = "; ".join(extent.notes)
    return doc


def collections(
    colls: list[Collection], extents: dict[str, Extent], url: URL, base: URL
) -> dict[str, Any]:
    return {
        "links": self_links(url),
        "collections": [collection(c, extents.get(c.id), base) for c in colls],
    }


def feature(feat: Feature, coll: Collection, url: URL, base: URL) -> dict[str, Any]:
    root = f"{str(base).rstrip('/')}/collections/{coll.id}"
    return {
        "type": "Feature",
        "id": feat.id,
        "geometry": feat.geometry,
        "properties": feat.properties,
        "links": [
            *self_links(url, GEOJSON),
            link(root, "collection", JSON, coll.title),
        ],
    }


def feature_collection(
    page: FeaturePage, coll: Collection, query: ItemsQuery, url: URL, base: URL
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with OGC paging links and counts.

    ``next`` appears only when features follow; ``numberMatched`` only when it was counted
    exactly, otherwise ``numberMatchedEstimate`` carries the planner's estimate (see
    :func:`app.ogc.service.list_features`).
    """
    root = f"{str(base).rstrip('/')}/collections/{coll.id}"
    fmt = QueryParams(url.query).get("f")
    links = [*self_links(url, GEOJSON), link(root, "collection", JSON, coll.title)]
    if page.has_more:
        after = url.include_query_params(offset=query.offset + query.limit, limit=query.limit)
        links.append(link(after, "next", HTML if fmt == "html" else GEOJSON, "next page"))
    if query.offset > 0:
        before = max(0, query.offset - query.limit)
        previous = url.include_query_params(offset=before, limit=query.limit)
        links.append(link(previous, "prev", HTML if fmt == "html" else GEOJSON, "previous page"))
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": f.id,
                "geometry": f.geometry,
                "properties": f.properties,
            }
            for f in page.features
        ],
        "links": links,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "numberReturned": len(page.features),
    }
    if page.matched is not None:
        doc["numberMatched"] = page.matched
    elif page.matched_estimate is not None:
        doc["numberMatchedEstimate"] = page.matched_estimate
    return doc


def _property_schema(prop: Property) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": prop.title or prop.name}
    if prop.type == "date":
        schema.update(type="string", format="date")
    else:
        schema["type"] = prop.type
    if prop.description:
        schema["description"] = prop.description
    if prop.unit:
        schema["x-ogc-unit"] = prop.unit
    if prop.minimum is not None:
        schema["minimum"] = prop.minimum
    if prop.maximum is not None:
        schema["maximum"] = prop.maximum
    if prop.enum:
        schema["enum"] = list(prop.enum)
    return schema


def queryables(coll: Collection, url: URL, *, schema: bool = False) -> dict[str, Any]:
    """JSON Schema of the collection's properties (queryables, or the feature schema).

    Both list the geometry, every column and every taxonomy attribute of the collection with
    its JSON type; units appear in the description and in ``x-ogc-unit``. The queryables are
    closed (``additionalProperties: false``: nothing else can be filtered on); the feature
    schema is open, since assets may carry attributes outside the taxonomy.
    """
    props: dict[str, Any] = {
        GEOMETRY: {
            "title": "Geometry",
            "description": "CRS84 longitude/latitude",
            "format": _GEOMETRY_FORMATS.get(coll.geometries, "geometry-any"),
            "x-ogc-role": "primary-geometry",
        }
    }
    for prop in coll.properties.values():
        props[prop.name] = _property_schema(prop)
        if prop.name == coll.temporal:
            props[prop.name]["description"] = (
                f"{props[prop.name].get('description', '')}; used by datetime and T_* filters"
            ).lstrip("; ")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": str(url.remove_query_params("f")),
        "type": "object",
        "title": f"{coll.title}: {'feature schema' if schema else 'queryables'}",
        "properties": props,
        "additionalProperties": schema,
    }
