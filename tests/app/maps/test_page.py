"""The map page: it renders, loads only our own assets, and those are served."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from layers.maps import (
    HEATMAP_ID,
    VENDOR_FILES,
    MapPage,
    legend_html,
    parse_visible,
    render_page,
    style_js,
    vendor_urls,
)
from layers.registry import default_registry
from layers.styles import ColourClass, Style, warning_level_classes

# Every src= / href= of the page, whatever the quoting.
_REFS = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def refs(page: str) -> list[str]:
    return _REFS.findall(page)


def test_start_page_is_the_map(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "cityrisk" in page
    assert "L.map(" in page
    assert "L.vectorGrid.protobuf(" in page
    assert "L.heatLayer(" in page
    assert "L.realtime(" in page
    assert "L.control.groupedLayers(" in page
    assert "/alarms?f=geojson" in page
    assert "/ogc/collections/" in page  # click-to-inspect
    # The legend: the four risk classes and the four warning levels, in our colours.
    for colour in ("#e60012", "#ff8c00", "#ffd400", "#0068b7"):
        assert colour in page
    assert "Level IV (blue)" in page


def test_page_loads_nothing_from_other_hosts(client: TestClient) -> None:
    page = client.get("/map", params={"layers": "gas_pipe,alarms,risk_heat"}).text
    found = refs(page)
    assert found, "the page references no scripts or stylesheets"
    for ref in found:
        assert ref.startswith(("/static/vendor/", "/", "data:")), ref
        assert not ref.startswith("//"), ref
    # No absolute URL anywhere in a script/link tag, nor a CDN name in the page.
    assert not re.search(r"<(?:script|link)[^>]+(?:https?:)?//", page)
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "bootstrapcdn", "code.jquery"):
        assert cdn not in page


def test_every_referenced_asset_is_served(client: TestClient) -> None:
    page = client.get("/").text
    assets = [r for r in refs(page) if r.startswith("/static/vendor/")]
    assert {a.split("/")[3] for a in assets} == set(VENDOR_FILES)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, f"{asset}: {response.status_code} {response.text}"
        kind = response.headers["content-type"]
        if asset.endswith(".js"):
            assert kind.startswith(("text/javascript", "application/javascript")), kind
        else:
            assert kind.startswith("text/css"), kind
        assert len(response.content) > 100


def test_leaflet_images_are_served_for_its_css(client: TestClient) -> None:
    response = client.get("/static/vendor/leaflet/dist/images/layers.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "path",
    [
        "/static/vendor/leaflet/../../package.json",
        "/static/vendor/leaflet/%2e%2e/%2e%2e/package.json",
        "/static/vendor/pbf/package.json",  # installed, but not a package the page loads
        "/static/vendor/leaflet/dist/no-such-file.js",
    ],
)
def test_vendor_serves_only_the_vendored_packages(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_unknown_layer_is_a_clear_4xx(client: TestClient) -> None:
    response = client.get("/map", params={"layers": "gas_pipe,unknown"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "unknown layer(s) unknown" in detail
    assert "gas_pipe" in detail  # the known ones are listed
    assert client.get("/map", params={"layers": " , "}).status_code == 422


def test_map_layers_choose_what_is_shown_on_load(client: TestClient) -> None:
    page = client.get("/map", params={"layers": "hydrant"}).text
    # A shown layer is added to the map; the others only sit in the layer control.
    shown = re.findall(r"(vector_grid_protobuf_\w+)\.addTo\(map_\w+\)", page)
    assert len(shown) == 1
    assert "/tiles/hydrant/{z}/{x}/{y}.mvt" in page


# -- pure page assembly (layers/maps.py) -----------------------------------------------------


def test_parse_visible() -> None:
    registry = default_registry()
    assert parse_visible(registry, "gas_pipe, risk_heat") == {"gas_pipe", HEATMAP_ID}
    assert "alarms" in parse_visible(registry, None)
    with pytest.raises(ValueError, match="unknown layer"):
        parse_visible(registry, "nope")


def test_style_function_colours_by_class() -> None:
    style = Style("point", "#444444", by="level", classes=warning_level_classes())
    js = style_js(style)
    assert js.startswith("function (p, z)")
    assert '"1": "#e60012"' in js
    assert 'p["level"]' in js
    plain = style_js(Style("line", "#1f78b4"))
    assert "#1f78b4" in plain
    assert "p[" not in plain


def test_legend_escapes_labels() -> None:
    out = legend_html([("<b>", [ColourClass(1, "#e60012", "a <script>")])])
    assert "<script>" not in out
    assert "&lt;script&gt;" in out


def test_standalone_page_points_at_the_base_url() -> None:
    registry = default_registry()
    page = MapPage(
        layers=tuple(registry),
        visible=parse_visible(registry, None),
        base_url="http://maps.example:8000",
    )
    html = render_page(page)
    js, css = vendor_urls("http://maps.example:8000")
    for _, url in js + css:
        assert url in html
    assert "http://maps.example:8000/tiles/gas_pipe/{z}/{x}/{y}.mvt" in html
    assert "http://maps.example:8000/alarms?f=geojson" in html
    assert "cdn" not in html.lower()
