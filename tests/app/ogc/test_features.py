"""OGC API Features under /ogc, on real PostGIS: structure, every query parameter, CQL2 filters,
paging, errors and HTML.

The module gets its own migrated database with committed rows (a few kinds with known
geometries and attributes); expected answers are computed in Python from the same rows, so
each filter is checked against an independent evaluation rather than against itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_openapi
from shapely.geometry import Point, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import migrations
from app.assets.catalog import COLLECTIONS
from app.db import create_db_engine
from app.main import create_app
from app.ogc import service
from app.ogc.params import ItemsQuery
from app.scratch import scratch_database
from app.settings import Settings
from app.taxonomy.assets import KINDS
from tests import factories as f

# -- the rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str
    external_id: str
    name: str | None
    wkt: str
    attributes: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None

    @property
    def geom(self) -> shapely.Geometry:
        return shapely.from_wkt(self.wkt)

    def get(self, name: str) -> Any:
        if name in ("name", "owner", "kind", "external_id"):
            return getattr(self, name)
        return self.attributes.get(name)


MATERIALS = ("steel", "PE", "cast_iron")


def _gas(i: int) -> Row:
    x = 117.20 + 0.01 * i
    attributes: dict[str, Any] = {
        "diameter_mm": 100 + 50 * i,
        "material": MATERIALS[i % 3],
        "pressure_mpa": round(0.05 * i, 2),
        "pressure_class": ("low", "medium", "high")[i % 3],
    }
    if i != 11:  # one pipe has no install year
        attributes["install_year"] = 1960 + 5 * i
    return Row(
        "gas_pipe",
        f"gas-{i:02d}",
        "O'Brien Rd" if i == 5 else f"Gas {chr(65 + i)}",
        f"LINESTRING({x:.2f} 31.80, {x:.2f} 31.81)",
        attributes,
        owner="Hefei Gas" if i % 2 == 0 else None,
    )


GAS = [_gas(i) for i in range(12)]
HYDRANTS = [
    Row("hydrant", f"hy-{i}", f"Hydrant {i}", f"POINT({117.20 + 0.02 * i:.2f} 31.85)", attrs)
    for i, attrs in enumerate(
        [
            {"install_year": 1990, "flow_gpm": 500.0},
            {"install_year": 2005, "flow_gpm": 1000.0},
            {"install_year": 2005, "flow_gpm": 750.0},
            {"flow_gpm": 250.0},
        ]
    )
]
VALVES = [  # two on either side of the antimeridian, one far from it
    Row("valve", "va-east", "East valve", "POINT(179.5 0.5)", {"network": "gas"}),
    Row("valve", "va-west", "West valve", "POINT(-179.5 0.5)", {"network": "water"}),
    Row("valve", "va-zero", "Zero valve", "POINT(0.5 0.5)", {"network": "gas"}),
    Row("valve", "va-empty", "Unplaced valve", "POINT EMPTY", {"network": "water"}),
]
MANHOLES = [
    Row("manhole", f"mh-{i}", f"Manhole {i}", f"POINT({117.21 + 0.01 * i:.2f} 31.805)", attrs)
    for i, attrs in enumerate([{"manhole_type": "gas_valve"}, {"manhole_type": "sewer"}, {}])
]
SCHOOLS = [
    Row(
        "school",
        "sc-1",
        "No. 1 Middle School",
        "POLYGON((117.25 31.82, 117.26 31.82, 117.26 31.83, 117.25 31.83, 117.25 31.82))",
        {"capacity": 1200, "school_type": "middle"},
    ),
    Row("school", "sc-2", "Sunrise Primary", "POINT(117.27 31.84)", {"capacity": 400}),
]
HOSPITALS = [
    Row("hospital", "ho-1", "City Hospital", "POINT(117.22 31.86)", {"beds": 800}),
    Row("hospital", "ho-2", "Clinic Hospital", "POINT(117.28 31.87)", {"beds": 60}),
]
FLOOD = [
    Row(
        "flood_zone",
        "fz-1",
        "Low ground",
        "POLYGON((117.19 31.79, 117.23 31.79, 117.23 31.82, 117.19 31.82, 117.19 31.79))",
        {"sfha": True, "depth_m": 1.5, "return_period_yr": 100},
    ),
    Row(
        "flood_zone",
        "fz-2",
        "River bank",
        "POLYGON((117.30 31.80, 117.32 31.80, 117.32 31.82, 117.30 31.82, 117.30 31.80))",
        {"sfha": False, "depth_m": 0.3, "return_period_yr": 500},
    ),
]
BRIDGES = [  # dated by year_built, not install_year
    Row(
        "bridge",
        "br-1",
        "Old bridge",
        "LINESTRING(117.24 31.83, 117.25 31.83)",
        {"year_built": 1930},
    ),
    Row(
        "bridge",
        "br-2",
        "New bridge",
        "LINESTRING(117.26 31.83, 117.27 31.83)",
        {"year_built": 2012},
    ),
]
ROWS = [*GAS, *HYDRANTS, *VALVES, *MANHOLES, *SCHOOLS, *HOSPITALS, *FLOOD, *BRIDGES]
EXPOSURE = [*SCHOOLS, *HOSPITALS]


@dataclass(frozen=True)
class Seeded:
    url: str
    ids: dict[str, int]

    def id_of(self, row: Row) -> int:
        return self.ids[row.external_id]

    def ids_of(self, rows: list[Row]) -> set[int]:
        return {self.ids[r.external_id] for r in rows}


def seed(url: str) -> Seeded:
    """Insert ROWS in one committed transaction; ANALYZE so the planner has statistics."""
    engine = create_db_engine(url)
    ids: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            for row in ROWS:
                ids[row.external_id] = f.asset(
                    conn,
                    row.kind,
                    row.wkt,
                    source="ogc-test",
                    external_id=row.external_id,
                    name=row.name,
                    owner=row.owner,
                    **row.attributes,
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE asset"))
    finally:
        engine.dispose()
    return Seeded(url, ids)


@pytest.fixture(scope="module")
def seeded(server_url: str, admin_url: str) -> Iterator[Seeded]:
    """A database of this module's own, migrated, with ROWS committed; dropped afterwards."""
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        yield seed(url)


def ogc_app(settings: Settings) -> FastAPI:
    """The service as it runs (app.main mounts the OGC router)."""
    return create_app(settings)


@pytest.fixture(scope="module")
def api(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(database_url=seeded.url, data_dir=tmp_path_factory.mktemp("ogc"))
    with TestClient(ogc_app(settings)) as client:
        yield client


@pytest.fixture
def db(seeded: Seeded) -> Iterator[Session]:
    engine = create_db_engine(seeded.url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def items(api: TestClient, collection: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/ogc/collections/{collection}/items", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> set[int]:
    return {f["id"] for f in body["features"]}


def bad(api: TestClient, url: str, *fragments: str) -> dict[str, Any]:
    """GET url, expect an OGC 400 whose description contains every fragment."""
    response = api.get(url)
    assert response.status_code == 400, (url, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["code"] == "InvalidParameterValue"
    for fragment in fragments:
        assert fragment in body["description"], (fragment, body["description"])
    return body


# -- landing, conformance, collections ------------------------------------------------------


def test_landing_page_links(api: TestClient) -> None:
    response = api.get("/ogc")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    links = {(link["rel"], link["type"]): link["href"] for link in response.json()["links"]}
    assert links[("self", "application/json")] == "http://testserver/ogc"
    assert links[("alternate", "text/html")] == "http://testserver/ogc?f=html"
    assert links[("service-desc", "application/vnd.oai.openapi+json;version=3.0")].endswith(
        "/ogc/api"
    )
    assert links[("service-desc", "application/vnd.oai.openapi+json;version=3.1")].endswith(
        "/openapi.json"
    )
    assert links[("service-doc", "text/html")] == "http://testserver/docs"
    assert links[("conformance", "application/json")] == "http://testserver/ogc/conformance"
    assert links[("data", "application/json")] == "http://testserver/ogc/collections"
    # Every link resolves.
    for href in links.values():
        assert api.get(href).status_code == 200, href


def test_conformance_declares_core_and_filtering(api: TestClient) -> None:
    classes = set(api.get("/ogc/conformance").json()["conformsTo"])
    for suffix in ("core", "geojson", "html", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{suffix}" in classes
    for suffix in ("filter", "features-filter", "queryables"):
        assert f"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/{suffix}" in classes
    for suffix in ("cql2-text", "cql2-json", "basic-cql2", "advanced-comparison-operators"):
        assert f"http://www.opengis.net/spec/cql2/1.0/conf/{suffix}" in classes
    # Not claimed: evaluated per year only, or not implemented.
    for suffix in ("temporal-functions", "arithmetic", "array-functions", "accent-insensitive"):
        assert not any(c.endswith(suffix) for c in classes)


def test_openapi_30_definition_is_valid(api: TestClient) -> None:
    response = api.get("/ogc/api")
    assert response.headers["content-type"].startswith(
        "application/vnd.oai.openapi+json;version=3.0"
    )
    spec = response.json()
    assert spec["openapi"].startswith("3.0")
    validate_openapi(spec)
    operation = spec["paths"]["/ogc/collections/{collection_id}/items"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"bbox", "limit", "offset", "datetime", "filter", "filter-lang", "sortby"} <= set(
        parameters
    )
    assert parameters["limit"]["schema"]["maximum"] == 10_000
    assert "422" not in operation["responses"]


def test_collections_are_the_kinds_plus_exposure_and_impact_zones(api: TestClient) -> None:
    body = api.get("/ogc/collections").json()
    listed = [c["id"] for c in body["collections"]]
    assert listed == [*KINDS, "exposure", "impact_zones"]
    by_id = {c["id"]: c for c in body["collections"]}

    gas = by_id["gas_pipe"]
    assert gas["title"] == "Gas main"
    assert "Urban lifeline" in gas["description"]
    bounds = shapely.union_all([r.geom for r in GAS]).bounds
    assert gas["extent"]["spatial"]["bbox"][0] == pytest.approx(list(bounds))
    assert gas["extent"]["spatial"]["crs"].endswith("/OGC/1.3/CRS84")
    years = [r.attributes["install_year"] for r in GAS if "install_year" in r.attributes]
    assert gas["extent"]["temporal"]["interval"] == [
        [f"{min(years)}-01-01T00:00:00Z", f"{max(years)}-12-31T23:59:59Z"]
    ]
    rels = {(link["rel"], link["type"]) for link in gas["links"]}
    assert ("items", "application/geo+json") in rels
    assert ("http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json") in rels

    # An empty kind is listed (the registry is the taxonomy) but has no spatial extent.
    assert "extent" not in by_id["heating_pipe"] or "spatial" not in by_id["heating_pipe"]["extent"]
    # Timeless kinds have no temporal extent.
    assert "temporal" not in by_id["manhole"]["extent"]
    exposure_bounds = shapely.union_all([r.geom for r in EXPOSURE]).bounds
    assert by_id["exposure"]["extent"]["spatial"]["bbox"][0] == pytest.approx(list(exposure_bounds))
    # No incident in this database: the impact zones are listed, without a spatial extent.
    assert "spatial" not in by_id["impact_zones"].get("extent", {})


def test_one_collection_and_unknown_collection(api: TestClient) -> None:
    body = api.get("/ogc/collections/hydrant").json()
    assert body["id"] == "hydrant"
    assert body["links"][0]["rel"] == "self"
    assert body["links"][0]["href"] == "http://testserver/ogc/collections/hydrant"
    for url in (
        "/ogc/collections/nope",
        "/ogc/collections/nope/items",
        "/ogc/collections/x/queryables",
    ):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == "NotFound"
        assert "nope" in response.json()["description"] or "'x'" in response.json()["description"]


def test_without_a_database_the_landing_page_answers_and_data_is_503(tmp_path: Path) -> None:
    # No DATABASE_URL and no local cluster in this data directory.
    with TestClient(ogc_app(Settings(database_url=None, data_dir=tmp_path))) as client:
        assert client.get("/ogc").status_code == 200
        assert client.get("/ogc/conformance").status_code == 200
        response = client.get("/ogc/collections/gas_pipe/items")
    assert response.status_code == 503
    assert response.json()["code"] == "DatabaseUnavailable"
    assert "cityrisk db up" in response.json()["description"]


def test_extents_fall_back_to_the_table_estimate_on_large_tables(db: Session) -> None:
    extents = service.collection_extents(
        session=db, collections=[COLLECTIONS["gas_pipe"]], exact_limit=0
    )
    extent = extents["gas_pipe"]
    assert not extent.exact
    assert extent.years == (None, None)
    # The estimated extent covers the whole table (valves sit on the antimeridian).
    assert extent.bbox is not None
    assert extent.bbox[0] == pytest.approx(-179.5, abs=0.01)
    assert extent.bbox[2] == pytest.approx(179.5, abs=0.01)


# -- items: structure, bbox, paging, limit ---------------------------------------------------


def test_items_are_a_geojson_feature_collection(api: TestClient, seeded: Seeded) -> None:
    body = items(api, "gas_pipe")
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == len(GAS)
    assert body["numberReturned"] == len(GAS)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timeStamp"])
    assert ids(body) == seeded.ids_of(GAS)
    assert not any(link["rel"] == "next" for link in body["links"])
    by_id = {f["id"]: f for f in body["features"]}
    pipe = by_id[seeded.id_of(GAS[3])]
    assert pipe["geometry"] == {
        "type": "LineString",
        "coordinates": [[117.23, 31.8], [117.23, 31.81]],
    }
    props = pipe["properties"]
    assert props["name"] == "Gas D"
    assert props["kind"] == "gas_pipe"
    assert props["plate"] == "lifeline"
    assert props["diameter_mm"] == 250
    assert props["install_year"] == 1975
    assert props["condition"] is None  # a taxonomy attribute the row lacks is present, as null
    assert props["length_m"] == pytest.approx(1109, rel=0.01)  # 0.01 degree of latitude
    assert list(props)[:8] == [
        "name",
        "kind",
        "plate",
        "owner",
        "source",
        "external_id",
        "length_m",
        "area_m2",
    ]


def test_bbox_keeps_exactly_the_intersecting_features(api: TestClient, seeded: Seeded) -> None:
    bbox = (117.195, 31.795, 117.245, 31.9)
    expected = [r for r in GAS if r.geom.intersects(box(*bbox))]
    assert 0 < len(expected) < len(GAS)
    body = items(api, "gas_pipe", bbox=",".join(map(str, bbox)))
    assert ids(body) == seeded.ids_of(expected)
    assert body["numberMatched"] == len(expected)
    # Six numbers: heights are ignored.
    six = items(api, "gas_pipe", bbox="117.195,31.795,-10,117.245,31.9,10")
    assert ids(six) == ids(body)
    # bbox-crs CRS84 is accepted.
    crs = items(
        api,
        "gas_pipe",
        bbox=",".join(map(str, bbox)),
        **{"bbox-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
    )
    assert ids(crs) == ids(body)


def test_bbox_across_the_antimeridian(api: TestClient, seeded: Seeded) -> None:
    body = items(api, "valve", bbox="179,0,-179,1")
    assert ids(body) == seeded.ids_of(VALVES[:2])


def test_paging_with_next_links_returns_every_feature_once(api: TestClient, seeded: Seeded) -> None:
    url: str | None = "/ogc/collections/gas_pipe/items?limit=5&sortby=-install_year"
    seen: list[int] = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        seen.extend(f["id"] for f in body["features"])
        assert body["numberMatched"] == len(GAS)
        assert body["numberReturned"] == len(body["features"])
        rels = {link["rel"]: link["href"] for link in body["links"]}
        assert ("prev" in rels) == (pages > 1)
        url = rels.get("next")
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(GAS)
    assert set(seen) == seeded.ids_of(GAS)


def test_offset_past_the_end_is_an_empty_page(api: TestClient) -> None:
    body = items(api, "gas_pipe", offset=100)
    assert body["features"] == []
    assert body["numberReturned"] == 0
    assert body["numberMatched"] == len(GAS)  # counted, since the page says nothing


def test_limit_bounds(api: TestClient) -> None:
    assert items(api, "gas_pipe", limit=1)["numberReturned"] == 1
    assert items(api, "gas_pipe", limit=10_000)["numberReturned"] == len(GAS)
    for value in ("0", "-1", "10001", "x", "1.5", ""):
        bad(
            api,
            f"/ogc/collections/gas_pipe/items?limit={value}",
            f"limit was '{value}'",
            "1 to 10000",
        )


def test_number_matched_is_exact_below_the_limit_and_estimated_above(
    db: Session, seeded: Seeded
) -> None:
    gas = COLLECTIONS["gas_pipe"]
    exact = service.list_features(session=db, collection=gas, query=ItemsQuery(limit=2))
    assert exact.matched == len(GAS)
    assert exact.matched_estimate is None
    assert exact.has_more
    # Over the exact-count limit: no numberMatched, an estimate known to exceed the limit.
    big = service.list_features(
        session=db, collection=gas, query=ItemsQuery(limit=2), exact_count_limit=5
    )
    assert big.matched is None
    assert big.matched_estimate is not None
    assert big.matched_estimate > 5
    assert len(big.features) == 2
    # The last page needs no count at all: matched = offset + returned.
    last = service.list_features(
        session=db, collection=gas, query=ItemsQuery(limit=5, offset=10), exact_count_limit=5
    )
    assert last.matched == len(GAS)
    assert not last.has_more


def test_estimated_number_matched_is_reported_apart(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EXACT_COUNT_LIMIT", 3)
    body = items(api, "gas_pipe", limit=2)
    assert "numberMatched" not in body
    assert body["numberMatchedEstimate"] > 3
    assert any(link["rel"] == "next" for link in body["links"])


# -- properties, sortby --------------------------------------------------------------------


def test_properties_selects_a_subset_in_order(api: TestClient) -> None:
    body = items(api, "gas_pipe", properties="install_year,name", limit=3)
    for feature in body["features"]:
        assert list(feature["properties"]) == ["install_year", "name"]
        assert feature["geometry"]["type"] == "LineString"
    empty = items(api, "gas_pipe", properties="", limit=1)
    assert empty["features"][0]["properties"] == {}


@pytest.mark.parametrize(
    ("sortby", "key", "reverse"),
    [
        ("name", "name", False),
        ("+name", "name", False),
        ("-name", "name", True),
        ("-install_year", "install_year", True),
        ("install_year", "install_year", False),
        ("-diameter_mm", "diameter_mm", True),
    ],
)
def test_sortby(api: TestClient, sortby: str, key: str, reverse: bool) -> None:
    body = items(api, "gas_pipe", sortby=sortby)
    values = [f["properties"][key] for f in body["features"]]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=reverse)
    # Features without the value come last in both directions.
    assert values[len(present) :] == [None] * (len(values) - len(present))


def test_sortby_unencoded_plus_and_several_keys(api: TestClient) -> None:
    # An unencoded '+' reaches the server as a space.
    # Lower-case values only, so the order is the same under any collation.
    response = api.get("/ogc/collections/gas_pipe/items?sortby=+pressure_class,-diameter_mm")
    assert response.status_code == 200
    rows = [
        (f["properties"]["pressure_class"], f["properties"]["diameter_mm"])
        for f in response.json()["features"]
    ]
    assert rows == sorted(rows, key=lambda r: (r[0], -r[1]))


# -- CQL2 ----------------------------------------------------------------------------------

POLYGON = "POLYGON((117.215 31.79, 117.255 31.79, 117.255 31.82, 117.215 31.82, 117.215 31.79))"
POLY = shapely.from_wkt(POLYGON)


def year(r: Row) -> int | None:
    value = r.attributes.get("install_year")
    return int(value) if value is not None else None


# (cql2-text, cql2-json, expected gas pipes)
CQL_CASES: list[tuple[str, dict[str, Any], Callable[[Row], bool]]] = [
    (
        "diameter_mm > 300",
        {"op": ">", "args": [{"property": "diameter_mm"}, 300]},
        lambda r: r.attributes["diameter_mm"] > 300,
    ),
    (
        "pressure_mpa <= 0.2",
        {"op": "<=", "args": [{"property": "pressure_mpa"}, 0.2]},
        lambda r: r.attributes["pressure_mpa"] <= 0.2,
    ),
    (
        "name LIKE 'Gas _'",
        {"op": "like", "args": [{"property": "name"}, "Gas _"]},
        lambda r: bool(r.name and re.fullmatch(r"Gas .", r.name)),
    ),
    (
        "name NOT LIKE 'Gas%'",
        {"op": "not", "args": [{"op": "like", "args": [{"property": "name"}, "Gas%"]}]},
        lambda r: not (r.name or "").startswith("Gas"),
    ),
    (
        "CASEI(material) = casei('pe')",
        {
            "op": "=",
            "args": [
                {"op": "casei", "args": [{"property": "material"}]},
                {"op": "casei", "args": ["pe"]},
            ],
        },
        lambda r: r.attributes["material"].lower() == "pe",
    ),
    (
        "material IN ('steel', 'cast_iron')",
        {"op": "in", "args": [{"property": "material"}, ["steel", "cast_iron"]]},
        lambda r: r.attributes["material"] in ("steel", "cast_iron"),
    ),
    (
        "install_year BETWEEN 1970 AND 1990",
        {"op": "between", "args": [{"property": "install_year"}, 1970, 1990]},
        lambda r: year(r) is not None and 1970 <= year(r) <= 1990,  # type: ignore[operator]
    ),
    (
        "owner IS NULL",
        {"op": "isNull", "args": [{"property": "owner"}]},
        lambda r: r.owner is None,
    ),
    (
        "install_year IS NOT NULL AND owner IS NOT NULL",
        {
            "op": "and",
            "args": [
                {"op": "not", "args": [{"op": "isNull", "args": [{"property": "install_year"}]}]},
                {"op": "not", "args": [{"op": "isNull", "args": [{"property": "owner"}]}]},
            ],
        },
        lambda r: year(r) is not None and r.owner is not None,
    ),
    (
        "NOT (material = 'steel') AND (diameter_mm < 300 OR install_year > 2000)",
        {
            "op": "and",
            "args": [
                {"op": "not", "args": [{"op": "=", "args": [{"property": "material"}, "steel"]}]},
                {
                    "op": "or",
                    "args": [
                        {"op": "<", "args": [{"property": "diameter_mm"}, 300]},
                        {"op": ">", "args": [{"property": "install_year"}, 2000]},
                    ],
                },
            ],
        },
        lambda r: (
            r.attributes["material"] != "steel"
            and (r.attributes["diameter_mm"] < 300 or (year(r) or 0) > 2000)
        ),
    ),
    (
        # AND binds tighter than OR.
        "material = 'PE' OR material = 'steel' AND diameter_mm > 500",
        {
            "op": "or",
            "args": [
                {"op": "=", "args": [{"property": "material"}, "PE"]},
                {
                    "op": "and",
                    "args": [
                        {"op": "=", "args": [{"property": "material"}, "steel"]},
                        {"op": ">", "args": [{"property": "diameter_mm"}, 500]},
                    ],
                },
            ],
        },
        lambda r: (
            r.attributes["material"] == "PE"
            or (r.attributes["material"] == "steel" and r.attributes["diameter_mm"] > 500)
        ),
    ),
    (
        "name = 'O''Brien Rd'",
        {"op": "=", "args": [{"property": "name"}, "O'Brien Rd"]},
        lambda r: r.name == "O'Brien Rd",
    ),
    (
        f"S_INTERSECTS(geometry, {POLYGON})",
        {"op": "s_intersects", "args": [{"property": "geometry"}, shapely.geometry.mapping(POLY)]},
        lambda r: r.geom.intersects(POLY),
    ),
    (
        "S_INTERSECTS(geometry, BBOX(117.215, 31.79, 117.255, 31.82))",
        {
            "op": "s_intersects",
            "args": [{"property": "geometry"}, {"bbox": [117.215, 31.79, 117.255, 31.82]}],
        },
        lambda r: r.geom.intersects(POLY),
    ),
    (
        f"S_WITHIN(geometry, {POLYGON})",
        {"op": "s_within", "args": [{"property": "geometry"}, shapely.geometry.mapping(POLY)]},
        lambda r: r.geom.within(POLY),
    ),
    (
        f"S_DISJOINT(geometry, {POLYGON})",
        {"op": "s_disjoint", "args": [{"property": "geometry"}, shapely.geometry.mapping(POLY)]},
        lambda r: r.geom.disjoint(POLY),
    ),
    (
        "S_CROSSES(geometry, LINESTRING(117.205 31.805, 117.235 31.805))",
        {
            "op": "s_crosses",
            "args": [
                {"property": "geometry"},
                {"type": "LineString", "coordinates": [[117.205, 31.805], [117.235, 31.805]]},
            ],
        },
        lambda r: r.geom.crosses(shapely.from_wkt("LINESTRING(117.205 31.805, 117.235 31.805)")),
    ),
    (
        "S_CONTAINS(geometry, POINT(117.23 31.805))",
        {
            "op": "s_contains",
            "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [117.23, 31.805]}],
        },
        lambda r: r.geom.contains(Point(117.23, 31.805)),
    ),
    (
        # On pipe 0; pipes are 0.01° of longitude (about 946 m at 31.8°N) apart: pipes 0 and 1.
        "S_DWITHIN(geometry, POINT(117.20 31.805), 1000)",
        {
            "op": "s_dwithin",
            "args": [
                {"property": "geometry"},
                {"type": "Point", "coordinates": [117.20, 31.805]},
                1000,
            ],
        },
        lambda r: r.external_id in ("gas-00", "gas-01"),
    ),
    (
        "T_AFTER(install_year, DATE('1999-06-01'))",
        {"op": "t_after", "args": [{"property": "install_year"}, {"date": "1999-06-01"}]},
        lambda r: (year(r) or 0) > 1999,
    ),
    (
        "T_BEFORE(TIMESTAMP('1975-03-01T00:00:00Z'), install_year)",
        {
            "op": "t_before",
            "args": [{"timestamp": "1975-03-01T00:00:00Z"}, {"property": "install_year"}],
        },
        lambda r: (year(r) or 0) > 1975,
    ),
    (
        "T_INTERSECTS(install_year, INTERVAL('1970-01-01', '1980-12-31'))",
        {
            "op": "t_intersects",
            "args": [{"property": "install_year"}, {"interval": ["1970-01-01", "1980-12-31"]}],
        },
        lambda r: year(r) is not None and 1970 <= year(r) <= 1980,  # type: ignore[operator]
    ),
    (
        "T_DURING(install_year, INTERVAL('..', '1975-01-01T00:00:00Z'))",
        {
            "op": "t_during",
            "args": [{"property": "install_year"}, {"interval": ["..", "1975-01-01T00:00:00Z"]}],
        },
        lambda r: year(r) is not None and year(r) < 1975,  # type: ignore[operator]
    ),
    (
        "T_DISJOINT(install_year, INTERVAL('1965-01-01', '2010-12-31'))",
        {
            "op": "t_disjoint",
            "args": [{"property": "install_year"}, {"interval": ["1965-01-01", "2010-12-31"]}],
        },
        lambda r: year(r) is not None and not 1965 <= year(r) <= 2010,  # type: ignore[operator]
    ),
    (
        "T_EQUALS(install_year, DATE('1985-07-01'))",
        {"op": "t_equals", "args": [{"property": "install_year"}, {"date": "1985-07-01"}]},
        lambda r: year(r) == 1985,
    ),
    (
        "name = owner OR TRUE AND FALSE",
        {
            "op": "or",
            "args": [{"op": "=", "args": [{"property": "name"}, {"property": "owner"}]}, False],
        },
        lambda r: False,
    ),
]


@pytest.mark.parametrize(
    ("cql_text", "cql_json", "keep"), CQL_CASES, ids=[c[0][:60] for c in CQL_CASES]
)
def test_cql2_filters_match_a_python_evaluation(
    api: TestClient,
    seeded: Seeded,
    cql_text: str,
    cql_json: dict[str, Any],
    keep: Callable[[Row], bool],
) -> None:
    expected = seeded.ids_of([r for r in GAS if keep(r)])
    as_text = items(api, "gas_pipe", filter=cql_text)
    assert ids(as_text) == expected, cql_text
    assert as_text["numberMatched"] == len(expected)
    as_json = items(api, "gas_pipe", filter=json.dumps(cql_json), **{"filter-lang": "cql2-json"})
    assert ids(as_json) == expected, cql_json
    explicit = items(api, "gas_pipe", filter=cql_text, **{"filter-lang": "cql2-text"})
    assert ids(explicit) == expected


def test_cql2_on_boolean_attribute_and_filter_crs(api: TestClient, seeded: Seeded) -> None:
    body = items(
        api,
        "flood_zone",
        filter="sfha = TRUE AND depth_m > 1",
        **{"filter-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
    )
    assert ids(body) == {seeded.id_of(FLOOD[0])}


def test_cql2_filter_on_the_exposure_collection(api: TestClient, seeded: Seeded) -> None:
    body = items(api, "exposure", filter="capacity > 500 OR beds > 500")
    assert ids(body) == {seeded.id_of(SCHOOLS[0]), seeded.id_of(HOSPITALS[0])}
    assert ids(items(api, "exposure")) == seeded.ids_of(EXPOSURE)


def test_filter_combines_with_bbox_datetime_and_paging(api: TestClient, seeded: Seeded) -> None:
    keep = [
        r
        for r in GAS
        if r.attributes["diameter_mm"] >= 200
        and r.geom.intersects(box(117.2, 31.79, 117.28, 31.82))
        and year(r) is not None
        and 1965 <= year(r) <= 1995  # type: ignore[operator]
    ]
    first = items(
        api,
        "gas_pipe",
        filter="diameter_mm >= 200",
        bbox="117.2,31.79,117.28,31.82",
        datetime="1965-01-01T00:00:00Z/1995-12-31T23:59:59Z",
        limit=2,
    )
    assert first["numberMatched"] == len(keep)
    next_href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert "filter=" in next_href
    assert "bbox=" in next_href
    assert "datetime=" in next_href
    seen = ids(first)
    href: str | None = next_href
    while href:
        page = api.get(href).json()
        seen |= ids(page)
        href = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == seeded.ids_of(keep)


# -- datetime ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "keep"),
    [
        ("2005-06-30T12:00:00Z", lambda y: y == 2005),
        ("2005-06-30", lambda y: y == 2005),
        ("1985-01-01T00:00:00Z/2006-01-01T00:00:00Z", lambda y: 1985 <= y <= 2006),
        ("1990-01-01T00:00:00Z/..", lambda y: y >= 1990),
        ("../1990-12-31T00:00:00Z", lambda y: y <= 1990),
        ("/1990-12-31T00:00:00Z", lambda y: y <= 1990),
        ("../..", lambda y: True),
    ],
)
def test_datetime_selects_by_year(
    api: TestClient, seeded: Seeded, value: str, keep: Callable[[int], bool]
) -> None:
    for collection, rows in (("gas_pipe", GAS), ("hydrant", HYDRANTS)):
        expected = [r for r in rows if year(r) is not None and keep(year(r))]  # type: ignore[arg-type]
        assert ids(items(api, collection, datetime=value)) == seeded.ids_of(expected), (
            collection,
            value,
        )


def test_datetime_uses_each_kinds_own_year_property(api: TestClient, seeded: Seeded) -> None:
    assert ids(items(api, "bridge", datetime="1930-06-01")) == {seeded.id_of(BRIDGES[0])}
    assert ids(items(api, "bridge", filter="T_AFTER(year_built, DATE('2000-01-01'))")) == {
        seeded.id_of(BRIDGES[1])
    }
    bridge = api.get("/ogc/collections/bridge").json()
    assert bridge["extent"]["temporal"]["interval"] == [
        ["1930-01-01T00:00:00Z", "2012-12-31T23:59:59Z"]
    ]


def test_datetime_is_refused_where_there_is_no_year(api: TestClient) -> None:
    for collection in ("manhole", "exposure"):
        bad(
            api,
            f"/ogc/collections/{collection}/items?datetime=2005-01-01T00:00:00Z",
            "has no temporal property",
        )
    bad(api, "/ogc/collections/gas_pipe/items?datetime=2010-01-01/2000-01-01", "ends before")
    bad(api, "/ogc/collections/gas_pipe/items?datetime=last%20year", "RFC 3339")
    bad(api, "/ogc/collections/gas_pipe/items?datetime=..", "'..' is allowed only")


# -- queryables and schema -----------------------------------------------------------------


def test_queryables_type_every_property(api: TestClient) -> None:
    response = api.get("/ogc/collections/gas_pipe/queryables")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "http://testserver/ogc/collections/gas_pipe/queryables"
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["geometry"]["format"] == "geometry-linestring-or-multilinestring"
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert props["name"]["type"] == "string"
    assert props["length_m"]["type"] == "number"
    assert props["diameter_mm"]["type"] == "integer"
    assert "[mm]" in props["diameter_mm"]["description"]
    assert props["diameter_mm"]["x-ogc-unit"] == "mm"
    assert props["diameter_mm"]["minimum"] == 10
    assert props["pressure_mpa"]["type"] == "number"
    assert props["pressure_class"]["enum"] == ["low", "medium", "high"]
    assert "datetime" in props["install_year"]["description"]
    assert set(props) == {"geometry", *COLLECTIONS["gas_pipe"].properties}

    flood = api.get("/ogc/collections/flood_zone/queryables").json()["properties"]
    assert flood["sfha"]["type"] == "boolean"
    assert flood["geometry"]["format"] == "geometry-polygon-or-multipolygon"
    exposure = api.get("/ogc/collections/exposure/queryables").json()["properties"]
    assert {"beds", "capacity", "population"} <= set(exposure)
    assert exposure["geometry"]["format"] == "geometry-any"


def test_feature_schema_is_open(api: TestClient) -> None:
    schema = api.get("/ogc/collections/gas_pipe/schema").json()
    assert schema["additionalProperties"] is True
    assert schema["properties"]["install_year"]["type"] == "integer"


# -- one feature ---------------------------------------------------------------------------


def test_single_feature_and_404s(api: TestClient, seeded: Seeded) -> None:
    fid = seeded.id_of(HOSPITALS[0])
    response = api.get(f"/ogc/collections/hospital/items/{fid}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    feature = response.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == fid
    assert feature["geometry"] == {"type": "Point", "coordinates": [117.22, 31.86]}
    assert feature["properties"]["beds"] == 800
    rels = {link["rel"] for link in feature["links"]}
    assert {"self", "alternate", "collection"} <= rels
    # Also through the exposure collection.
    assert api.get(f"/ogc/collections/exposure/items/{fid}").status_code == 200
    for url in (
        f"/ogc/collections/gas_pipe/items/{fid}",  # another kind's feature
        "/ogc/collections/hospital/items/abc",
        "/ogc/collections/hospital/items/-1",
        "/ogc/collections/hospital/items/0",
        "/ogc/collections/hospital/items/1.5",
        "/ogc/collections/hospital/items/99999999999999999999999999",
        "/ogc/collections/hospital/items/999999999",
        "/ogc/collections/nope/items/1",
    ):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == "NotFound"


# -- bad parameters ------------------------------------------------------------------------

ITEMS = "/ogc/collections/gas_pipe/items"


@pytest.mark.parametrize(
    ("query", "fragments"),
    [
        ("bbox=a,b,c,d", ["bbox was 'a,b,c,d'", "4 comma-separated numbers"]),
        ("bbox=1,2,3", ["bbox was '1,2,3'"]),
        ("bbox=0,10,1,5", ["minLat <= maxLat"]),
        ("bbox=0,0,200,1", ["[-180, 180]"]),
        ("bbox=nan,0,1,1", ["bbox was 'nan,0,1,1'"]),
        ("bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4326", ["only CRS supported is"]),
        ("limit=-1", ["limit was '-1'"]),
        ("offset=x", ["offset was 'x'"]),
        ("offset=-1", ["offset was '-1'"]),
        ("offset=99999999999999999999", ["offset was"]),
        ("sortby=nope", ["sortby: unknown property 'nope'", "known properties: name"]),
        ("sortby=,", ["sortby was ','"]),
        ("properties=name,nope", ["properties: unknown property 'nope'"]),
        ("filter=nope%20%3D%201", ["filter: unknown property 'nope'"]),
        ("filter=name%20%3D", ["cannot parse", "unexpected end"]),
        ("filter=name%20%3D%201", ["compares values of one type", "(string)", "(number)"]),
        ("filter=install_year%20%3E%20DATE('2000-01-01')", ["install_year is a year number"]),
        ("filter=diameter_mm%20%2B%201%20%3E%202", ["cannot parse"]),
        ("filter=name%20LIKE%20'a%5C'", ["lone escape"]),
        (
            "filter=S_INTERSECTS(geometry,%20POLYGON((0%200,%201%201,%201%200,%200%201,%200%200)))",
            ["invalid geometry", "Self-intersection"],
        ),
        ("filter=S_INTERSECTS(geometry,%20POINT(500%200))", ["outside CRS84"]),
        ("filter=S_INTERSECTS(name,%20POINT(1%200))", ["spatial functions take geometries"]),
        ("filter=T_AFTER(name,%20DATE('2000-01-01'))", ["temporal property 'install_year'"]),
        ("filter=ACCENTI(name)%20%3D%20'a'", ["ACCENTI is not supported"]),
        ("filter=foo(name)%20%3D%20'a'", ["unknown function 'foo'"]),
        ("filter=name%20BETWEEN%20'a'%20AND%20'b'", ["BETWEEN takes numbers"]),
        ("filter=" + quote("NOT (" * 150 + "name = 'a'" + ")" * 150), ["nested deeper"]),
        ("filter=%7Bnot%20json&filter-lang=cql2-json", ["not JSON"]),
        ("filter=%5B1%5D&filter-lang=cql2-json", ["expected a predicate"]),
        ('filter=%7B"op"%3A"%2B"%2C"args"%3A%5B1%2C2%5D%7D&filter-lang=cql2-json', ["arithmetic"]),
        ("filter-lang=ecql", ["filter-lang was 'ecql'", "cql2-text, cql2-json"]),
        ("filter-crs=EPSG:4326", ["filter-crs was 'EPSG:4326'"]),
        ("fitler=name%3D'a'", ["unknown query parameter(s) fitler"]),
        ("f=xml", ["f was 'xml'", "json, geojson, html"]),
        ("limit=1&limit=2", ["limit was given 2 times"]),
    ],
)
def test_bad_parameters_are_400_with_a_message(
    api: TestClient, query: str, fragments: list[str]
) -> None:
    bad(api, f"{ITEMS}?{query}", *fragments)


@pytest.mark.parametrize(
    "name",
    [
        "bbox",
        "limit",
        "offset",
        "datetime",
        "properties",
        "sortby",
        "filter",
        "f",
        "bbox-crs",
        "filter-lang",
        "filter-crs",
    ],
)
def test_no_input_makes_a_500(api: TestClient, name: str) -> None:
    garbage = [
        "",
        " ",
        "%00",
        "'",
        '"',
        "(",
        ")",
        "..",
        "/",
        ",",
        "-",
        "1e400",
        "NaN",
        "\u00e9",
        "%2525",
        "{}",
        "[]",
        "null",
        "0x10",
        "１２",
    ]
    for value in garbage:
        response = api.get(f"{ITEMS}?{name}={value}")
        assert response.status_code in (200, 400), (name, value, response.status_code)
        if response.status_code == 400:
            assert response.json()["description"]


def test_non_items_endpoints_check_f(api: TestClient) -> None:
    bad(api, "/ogc/collections?f=csv", "f was 'csv'", "json, html")
    bad(api, "/ogc?f=geojson", "f was 'geojson'")


# -- HTML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/ogc?f=html", "Collections"),
        ("/ogc/conformance?f=html", "conf/core"),
        ("/ogc/collections?f=html", "Gas main"),
        ("/ogc/collections/gas_pipe?f=html", "Queryables"),
        ("/ogc/collections/gas_pipe/queryables?f=html", "diameter_mm"),
        ("/ogc/collections/gas_pipe/items?f=html&limit=5", 'rel="next"'),
        (
            "/ogc/collections/gas_pipe/items?f=html&filter=name%20%3D%20'O''Brien%20Rd'",
            "O&#39;Brien Rd",
        ),
    ],
)
def test_html_pages_render(api: TestClient, url: str, expected: str) -> None:
    response = api.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert expected in response.text
    assert "<script" not in response.text


def test_html_item_page_and_accept_header(api: TestClient, seeded: Seeded) -> None:
    fid = seeded.id_of(SCHOOLS[0])
    browser = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    response = api.get(f"/ogc/collections/school/items/{fid}", headers=browser)
    assert response.headers["content-type"].startswith("text/html")
    assert "No. 1 Middle School" in response.text
    assert "<svg" in response.text
    assert "<path" in response.text
    # A client asking for GeoJSON, or for anything, gets JSON.
    for accept in ("application/geo+json", "*/*", ""):
        response = api.get(f"/ogc/collections/school/items/{fid}", headers={"accept": accept})
        assert response.headers["content-type"].startswith("application/geo+json"), accept
    # Next links of an HTML page stay HTML.
    page = api.get("/ogc/collections/gas_pipe/items?f=html&limit=5").text
    assert re.search(r'href="[^"]*offset=5[^"]*"', page)
    assert "f=html" in re.search(r'rel="next" href="([^"]*)"', page).group(1)  # type: ignore[union-attr]


def test_an_empty_geometry_is_served_and_drawn(api: TestClient, seeded: Seeded) -> None:
    fid = seeded.id_of(VALVES[3])
    feature = api.get(f"/ogc/collections/valve/items/{fid}").json()
    assert feature["geometry"] == {"type": "Point", "coordinates": []}
    for url in (
        f"/ogc/collections/valve/items/{fid}?f=html",
        "/ogc/collections/valve/items?f=html",
    ):
        response = api.get(url)
        assert response.status_code == 200, url
        assert "Unplaced valve" in response.text
