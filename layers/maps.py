"""The map page: a folium/Leaflet page assembled from the layer registry (pure: no DB, no HTTP).

What the page shows (``GET /``, ``GET /map?layers=…``, ``cityrisk map --out``):

- no basemap: command centres run on intranets with no tile server to reach, so the page has a
  plain background and the city's admin areas as context;
- every registry layer as an MVT overlay from ``/tiles/{id}/{z}/{x}/{y}.mvt`` through
  Leaflet.VectorGrid, coloured by its :class:`~layers.styles.Style` (classes become a JS
  function of the feature's properties), in a layer control grouped by plate;
- the four-colour risk hexagons (the ``risk_cells_*`` tile layers) and a heatmap of asset risk
  (points given by the caller, which reads them from the database);
- open alarms polled from ``/alarms?f=geojson`` every few seconds (Leaflet Realtime), coloured
  by warning level;
- open suspected events (alarms grouped in space and data time) polled from ``/events`` the
  same way, as the areas to look in, coloured by their worst alarm's level; a click lists the
  member alarms and the top candidate pipes (``/events/{id}``) and, for a water main, offers
  its burst impact (the impact panel's ``POST /impact``);
- click-to-inspect answered by ``/ogc/collections/{kind}/items?bbox=`` around the click, for
  each visible asset layer: Leaflet.VectorGrid's own MVT click handling is broken with
  Leaflet 1.9 (``L.DomEvent.fakeStop is not a function``), so the tiles are not interactive;
- a legend of risk classes and warning levels, from the registry's styles;
- the impact panel (:mod:`layers.impact`): an alarm's impact and "what if here", the zones in
  the warning levels' colours, who is inside, the cascade, the actions, opening an incident.

Every script and stylesheet is loaded from ``{base_url}/static/vendor/<npm package>/…`` (see
:data:`VENDOR_FILES`): folium's defaults point at public CDNs, which an intranet cannot reach,
so each folium element's ``default_js`` / ``default_css`` is replaced on the instance (never on
the class: the process may render other folium maps).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import folium
from branca.element import Element, Figure, MacroElement
from folium.plugins import GroupedLayerControl, HeatMap, Realtime, VectorGridProtobuf
from folium.utilities import JsCode
from jinja2 import Template

from app.assets.catalog import COLLECTIONS
from app.taxonomy.alarms import LEVEL_NUMERALS
from app.taxonomy.assets import PLATE_TITLES
from app.taxonomy.risk import COMPOSITE
from layers.base import LIVE_PLATE, Layer, Registry
from layers.impact import ImpactPanel
from layers.styles import FOUR_COLOURS, ColourClass, Style, warning_level_classes

#: URL path under which the app serves ``node_modules/<package>/…``.
VENDOR_PATH = "/static/vendor"

#: npm package → the files of it the page loads (pinned in package.json / package-lock.json).
#: Only these packages are served; leaflet.css also pulls ``dist/images/*`` relatively.
VENDOR_FILES: dict[str, tuple[str, ...]] = {
    "leaflet": ("dist/leaflet.js", "dist/leaflet.css"),
    "leaflet.vectorgrid": ("dist/Leaflet.VectorGrid.bundled.min.js",),
    "leaflet.heat": ("dist/leaflet-heat.js",),
    "leaflet-realtime": ("dist/leaflet-realtime.min.js",),
    "leaflet-groupedlayercontrol": (
        "dist/leaflet.groupedlayercontrol.min.js",
        "dist/leaflet.groupedlayercontrol.min.css",
    ),
}

#: Pseudo layer of ``?layers=``: the asset-risk heatmap (not a tile layer).
HEATMAP_ID = "risk_heat"
#: The registry layer drawn live from ``/alarms?f=geojson`` instead of from tiles.
ALARMS_ID = "alarms"
#: The registry layer of open suspected events, drawn live from ``/events`` instead of tiles.
EVENTS_ID = "suspected_events"
#: Layers drawn as context (thin grey outlines), in their own group at the top of the control.
CONTEXT_IDS = ("admin_area",)
#: What ``GET /`` shows when no ``?layers=`` is given (those not registered are skipped).
DEFAULT_VISIBLE = ("admin_area", "risk_cells_composite", HEATMAP_ID, ALARMS_ID, EVENTS_ID)

#: Half the side of the click-to-inspect box [CSS px].
INSPECT_PX = 6
BACKGROUND = "#eef0f2"

HeatPoint = tuple[float, float, float]
"""``(lat, lon, weight)`` of one asset's risk, weight in [0, 1]."""


@dataclass(frozen=True)
class MapPage:
    """Everything the page is built from.

    Parameters
    ----------
    layers : tuple of Layer
        The layers offered in the layer control, in registry order.
    visible : frozenset of str
        Ids shown on load (layer ids, plus :data:`HEATMAP_ID`); the rest start unticked.
    bounds : tuple of 4 floats or None
        ``(min_lon, min_lat, max_lon, max_lat)`` to fit on load; None: the whole world.
    heat : tuple of HeatPoint
        Points of the risk heatmap.
    base_url : str, default ""
        Prefix of every URL the page loads: ``""`` for the served page (same origin), the
        server's URL for a standalone file.
    alarm_poll_s : float, default 5
        Seconds between two polls of the open alarms.
    title : str
    """

    layers: tuple[Layer, ...]
    visible: frozenset[str]
    bounds: tuple[float, float, float, float] | None = None
    heat: tuple[HeatPoint, ...] = ()
    base_url: str = ""
    alarm_poll_s: float = 5.0
    title: str = "cityrisk — risk map"
    links: tuple[tuple[str, str], ...] = field(default=())


def vendor_urls(base_url: str = "") -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(js, css)`` as folium's ``default_js`` / ``default_css``: ``(name, url)`` pairs."""
    js: list[tuple[str, str]] = []
    css: list[tuple[str, str]] = []
    for package, files in VENDOR_FILES.items():
        for path in files:
            url = f"{base_url}{VENDOR_PATH}/{package}/{path}"
            (css if path.endswith(".css") else js).append((f"{package}/{path}", url))
    return js, css


def parse_visible(registry: Registry, raw: str | None) -> frozenset[str]:
    """The ids of ``?layers=a,b`` (default :data:`DEFAULT_VISIBLE`).

    Raises
    ------
    ValueError
        Naming the unknown ids and the known ones, for a 4xx answer.
    """
    known = [layer.id for layer in registry] + [HEATMAP_ID]
    if raw is None:
        return frozenset(i for i in DEFAULT_VISIBLE if i in known)
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:
        raise ValueError("layers is empty; give one or more ids, comma-separated")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}; known layers: {', '.join(known)}")
    return frozenset(ids)


def plate_title(plate: str) -> str:
    """The group name of a plate in the layer control."""
    if plate == LIVE_PLATE:
        return "Live"
    if plate == COMPOSITE:
        return "Risk: all plates"
    return PLATE_TITLES.get(plate, plate)


def _style_options(style: Style, *, context: bool = False) -> dict[str, Any]:
    """Leaflet path options for one colour (``radius`` is read for points only)."""
    colour = style.colour
    if context:
        return {"color": "#7a7f87", "weight": 1, "fill": False, "opacity": 0.8}
    filled = style.geometry != "line"
    return {
        "color": colour,
        "weight": 1.5 if style.geometry == "line" else 1,
        "opacity": 0.9,
        "fill": filled,
        "fillColor": colour,
        "fillOpacity": 0.45 if style.geometry == "polygon" else 0.7,
        "radius": 3,
    }


def style_js(style: Style, *, context: bool = False) -> str:
    """A VectorGrid style function ``(properties, zoom) => options`` for ``style``.

    Classes pick the colour from ``properties[style.by]``; hexagons of an aggregated zoom carry
    the same property name (e.g. the worst ``level``) or none, and then get the default colour.
    """
    base = json.dumps(_style_options(style, context=context))
    if context or style.by is None or not style.classes:
        return f"function (p, z) {{ return {base}; }}"
    table = json.dumps({str(c.value): c.colour for c in style.classes})
    return (
        f"function (p, z) {{ var o = {base}; var c = {table}[String(p[{json.dumps(style.by)}])];"
        " if (c) { o.color = c; o.fillColor = c; } return o; }"
    )


def _vector_layer(page: MapPage, layer: Layer) -> VectorGridProtobuf:
    context = layer.id in CONTEXT_IDS
    url = f"{page.base_url}/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt"
    style = style_js(layer.style, context=context)
    options = (
        "{"
        f"vectorTileLayerStyles: {{{json.dumps(layer.id)}: {style}}}"
        f", interactive: false, maxNativeZoom: {layer.zoom.maxzoom}, minZoom: 0"
        f", attribution: {json.dumps('cityrisk')}"
        "}"
    )
    vg = VectorGridProtobuf(url, name=layer.title, options=options, show=layer.id in page.visible)
    js, _css = vendor_urls(page.base_url)
    vg.default_js = [pair for pair in js if pair[0].startswith("leaflet.vectorgrid/")]
    return vg


def _alarm_layer(page: MapPage, layer: Layer) -> tuple[folium.FeatureGroup, Realtime]:
    """A feature group refilled from ``/alarms?f=geojson`` every ``alarm_poll_s`` seconds."""
    group = folium.FeatureGroup(name=layer.title, show=layer.id in page.visible)
    colours = json.dumps({str(c.value): c.colour for c in layer.style.classes})
    numerals = json.dumps({str(k): v for k, v in LEVEL_NUMERALS.items()})
    url = json.dumps(f"{page.base_url}/alarms?f=geojson&active=true&limit=1000")
    # A source function rather than a URL: alarms without a location come back with a null
    # geometry, which Leaflet cannot place; they are dropped here.
    source = JsCode(
        "function (ok, fail) { fetch(" + url + ")"
        ".then(function (r) { if (!r.ok) { throw new Error('alarms: HTTP ' + r.status); }"
        " return r.json(); })"
        ".then(function (fc) { fc.features = fc.features.filter(function (f) {"
        " return f.geometry; }); ok(fc); })"
        ".catch(fail); }"
    )
    # The popup's button is wired by the impact panel (layers/impact_panel.js, by delegation);
    # the marker's click does not bubble to the map, whose click would open the inspector's
    # popup in its place.
    point = JsCode(
        "function (f, latlng) { var lv = String(f.properties.level);"
        f" var c = {colours}[lv] || {json.dumps(layer.style.colour)};"
        " var t = String(f.properties.title || f.properties.rule_code || '')"
        ".replace(/[&<>\"']/g, function (ch) { return '&#' + ch.charCodeAt(0) + ';'; });"
        f" var n = {numerals}[lv] || lv;"
        " return L.circleMarker(latlng, {radius: 8, color: '#222', weight: 1, fillColor: c,"
        " fillOpacity: 0.9, bubblingMouseEvents: false})"
        ".bindTooltip('报警 Alarm ' + f.id + ' — ' + n + ' 级 level ' + n + ': ' + t)"
        ".bindPopup('<div class=\"cr-alarm-pop\"><b>报警 Alarm ' + f.id + '</b> · ' + n +"
        " ' 级 level ' + n + '<br>' + t + '<br><button type=\"button\" data-cr-alarm=\"' +"
        " f.id + '\">影响分析 Impact</button></div>'); }"
    )
    realtime = Realtime(
        source,
        interval=int(page.alarm_poll_s * 1000),
        get_feature_id=JsCode("function (f) { return f.id; }"),
        remove_missing=True,
        container=group,
        point_to_layer=point,
    )
    js, _css = vendor_urls(page.base_url)
    realtime.default_js = [pair for pair in js if pair[0].startswith("leaflet-realtime/")]
    return group, realtime


def _event_layer(page: MapPage, layer: Layer) -> tuple[folium.FeatureGroup, Realtime]:
    """Open suspected events' areas, refilled from ``/events`` every ``alarm_poll_s`` seconds;
    a click fetches the event and lists its alarms and top candidates."""
    group = folium.FeatureGroup(name=layer.title, show=layer.id in page.visible)
    colours = json.dumps({str(c.value): c.colour for c in layer.style.classes})
    numerals = json.dumps({str(k): v for k, v in LEVEL_NUMERALS.items()})
    base = json.dumps(page.base_url)
    url = json.dumps(f"{page.base_url}/events?state=open&limit=500")
    source = JsCode(
        "function (ok, fail) { fetch(" + url + ")"
        ".then(function (r) { if (!r.ok) { throw new Error('events: HTTP ' + r.status); }"
        " return r.json(); }).then(ok).catch(fail); }"
    )
    style = JsCode(
        "function (f) { var c = " + colours + "[String(f.properties.peak_level)] || "
        f"{json.dumps(layer.style.colour)};"
        " return {color: c, weight: 2, dashArray: '6 4', fillColor: c, fillOpacity: 0.18,"
        " className: 'cr-event-area'}; }"
    )
    # The popup is filled from GET /events/{id} when it opens; its burst button is wired by
    # the impact panel (layers/impact_panel.js, by delegation on data-cr-burst).
    each = JsCode(
        "function (f, lyr) { var p = f.properties, n = " + numerals + ";"
        " function esc(s) { return String(s === null || s === undefined ? '' : s)"
        ".replace(/[&<>\"']/g, function (ch) { return '&#' + ch.charCodeAt(0) + ';'; }); }"
        " lyr.options.bubblingMouseEvents = false;"
        " lyr.bindTooltip('疑似事件 Suspected event ' + f.id + ' — ' + p.n_sensors +"
        " ' 传感器 sensors');"
        " lyr.bindPopup('疑似事件 Suspected event ' + f.id + '…', {maxWidth: 380});"
        " lyr.on('popupopen', function (e) { fetch(" + base + " + '/events/' + f.id)"
        ".then(function (r) { return r.json(); }).then(function (ev) { var q = ev.properties;"
        " var alarms = (q.alarms || []).map(function (a) { return '<li>' + esc(n[a.peak_level]"
        " || a.peak_level) + ' · 报警 alarm ' + esc(a.id) + ' ' + esc(a.title || a.rule_code) +"
        " (a.sensor ? ' (' + esc(a.sensor) + ')' : '') + '</li>'; }).join('');"
        " var cands = (q.candidates || []).slice(0, 3).map(function (c) { return '<li>' +"
        " esc(c.rank) + '. ' + esc(c.kind) + ' ' + esc(c.name || c.asset_id) + ' · score ' +"
        " esc((+c.score).toFixed(3)) + '</li>'; }).join('');"
        ' var b = q.impact ? \'<button type="button" data-cr-burst="\' + esc(q.impact.asset_id)'
        " + '\" data-cr-at=\"' + esc(q.impact.at) + '\" data-cr-event=\"' + esc(f.id) +"
        " '\">爆管影响 Burst impact</button>' : '';"
        " e.popup.setContent('<div class=\"cr-event-pop\"><b>疑似事件 Suspected event ' +"
        " esc(f.id) + '</b> · ' + esc(q.family) + '<br>' + esc(q.first_ts) + ' → ' +"
        " esc(q.last_ts) + '<h4>报警 Alarms (' + esc(q.n_alarms) + ')</h4><ul>' + alarms +"
        " '</ul><h4>疑似位置 Candidate pipes</h4><ul>' + (cands || '<li>—</li>') + '</ul>' + b"
        " + '</div>'); }).catch(function (err) { e.popup.setContent('events: ' +"
        " esc(err.message)); }); }); }"
    )
    realtime = Realtime(
        source,
        interval=int(page.alarm_poll_s * 1000),
        get_feature_id=JsCode("function (f) { return f.id; }"),
        remove_missing=True,
        container=group,
        style=style,
        on_each_feature=each,
    )
    js, _css = vendor_urls(page.base_url)
    realtime.default_js = [pair for pair in js if pair[0].startswith("leaflet-realtime/")]
    return group, realtime


_INSPECT = Template(
    """
{% macro script(this, kwargs) %}
(function () {
  var map = {{ this._parent.get_name() }};
  var layers = { {%- for id, title, name in this.targets %}
    {{ id|tojson }}: [{{ title|tojson }}, {{ name }}],{% endfor %} };
  var base = {{ this.base_url|tojson }};
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  map.on("click", function (e) {
    if (map.crMode) { return; }  // "what if here" is choosing a point (layers/impact_panel.js)
    var ids = Object.keys(layers).filter(function (id) { return map.hasLayer(layers[id][1]); });
    if (!ids.length) { return; }
    var p = map.latLngToContainerPoint(e.latlng), r = {{ this.px }};
    var sw = map.containerPointToLatLng([p.x - r, p.y + r]);
    var ne = map.containerPointToLatLng([p.x + r, p.y - r]);
    var bbox = [sw.lng, sw.lat, ne.lng, ne.lat]
      .map(function (v) { return v.toFixed(6); }).join(",");
    var popup = L.popup({maxWidth: 360}).setLatLng(e.latlng).setContent("Looking up…").openOn(map);
    Promise.all(ids.map(function (id) {
      return fetch(base + "/ogc/collections/" + id + "/items?f=json&limit=5&bbox=" + bbox)
        .then(function (r) { return r.ok ? r.json() : {features: []}; })
        .then(function (fc) { return [id, fc.features || []]; })
        .catch(function () { return [id, []]; });
    })).then(function (results) {
      var out = [];
      results.forEach(function (res) {
        res[1].forEach(function (f) {
          var props = f.properties || {};
          var rows = Object.keys(props).slice(0, 8).map(function (k) {
            return "<tr><th>" + esc(k) + "</th><td>" + esc(props[k]) + "</td></tr>";
          }).join("");
          out.push("<div class='cr-inspect'><b>" + esc(layers[res[0]][0]) + " " + esc(f.id) +
            "</b> <a href='" + base + "/assets/" + encodeURIComponent(f.id) + "/risk'" +
            " target='_blank'>risk</a><table>" + rows + "</table></div>");
        });
      });
      popup.setContent(out.length ? out.join("") : "Nothing here in the visible asset layers.");
    });
  });
})();
{% endmacro %}
"""
)


class Inspector(MacroElement):
    """Click-to-inspect: an OGC API ``items?bbox=`` lookup per visible asset layer."""

    _template = _INSPECT

    def __init__(self, targets: Sequence[tuple[str, str, str]], base_url: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Inspector"
        self.targets = list(targets)
        self.base_url = base_url
        self.px = INSPECT_PX


_LEGEND = Template(
    """
{% macro script(this, kwargs) %}
(function () {
  var legend = L.control({position: "bottomright"});
  legend.onAdd = function () {
    var div = L.DomUtil.create("div", "cr-legend");
    div.innerHTML = {{ this.html|tojson }};
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  legend.addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
"""
)


class Legend(MacroElement):
    """A fixed legend (bottom right) from ``(heading, classes)`` sections."""

    _template = _LEGEND

    def __init__(self, sections: Iterable[tuple[str, Sequence[ColourClass]]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Legend"
        self.html = legend_html(sections)


def legend_html(sections: Iterable[tuple[str, Sequence[ColourClass]]]) -> str:
    """The legend's HTML: one heading and one swatch per class, text escaped."""
    parts: list[str] = []
    for heading, classes in sections:
        parts.append(f"<h4>{html.escape(heading)}</h4>")
        for c in classes:
            parts.append(
                f"<div><i style='background:{html.escape(c.colour)}'></i>"
                f"{html.escape(c.label)}</div>"
            )
    return "".join(parts)


def risk_classes(layers: Iterable[Layer]) -> tuple[ColourClass, ...]:
    """The four-colour risk classes as the registry styles them (by ``risk_class``)."""
    for layer in layers:
        if layer.style.by == "risk_class" and layer.style.classes:
            return layer.style.classes
    names = {1: "major (red)", 2: "significant (orange)", 3: "general (yellow)", 4: "low (blue)"}
    return tuple(ColourClass(k, FOUR_COLOURS[k], names[k]) for k in (1, 2, 3, 4))


_CSS = f"""
<link rel="icon" href="data:,">
<style>
  .leaflet-container {{ background: {BACKGROUND}; }}
  .cr-legend {{ background: #fff; padding: 6px 10px; font: 12px/1.4 sans-serif;
    border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.3); }}
  .cr-legend h4 {{ margin: 4px 0 2px; font-size: 12px; }}
  .cr-legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px;
    vertical-align: middle; border: 1px solid #555; }}
  .cr-title {{ position: absolute; z-index: 1000; left: 50px; top: 10px; background: #fff;
    padding: 4px 10px; font: bold 14px sans-serif; border-radius: 4px;
    box-shadow: 0 1px 4px rgba(0,0,0,.3); }}
  .cr-title a {{ font-weight: normal; margin-left: 8px; font-size: 12px; }}
  .leaflet-control-layers-expanded {{ max-height: 70vh; overflow-y: auto; }}
  .cr-inspect table {{ font-size: 11px; border-collapse: collapse; }}
  .cr-inspect th {{ text-align: left; padding-right: 6px; color: #555; }}
</style>
"""


def build_map(page: MapPage) -> folium.Map:
    """The folium map of ``page``: render it with ``m.get_root().render()``."""
    js, css = vendor_urls(page.base_url)
    fmap = folium.Map(tiles=None, location=[0.0, 0.0], zoom_start=2, control_scale=True)
    # Only Leaflet itself: folium's other defaults (jQuery, Bootstrap, awesome-markers, Font
    # Awesome) serve markers and popups this page does not use.
    fmap.default_js = [pair for pair in js if pair[0] == "leaflet/dist/leaflet.js"]
    fmap.default_css = [pair for pair in css if pair[0] == "leaflet/dist/leaflet.css"]
    root = fmap.get_root()
    assert isinstance(root, Figure)  # a Map's root is always its Figure
    root.title = page.title
    root.header.add_child(Element(_CSS), name="cityrisk_css")
    links = "".join(
        f"<a href='{html.escape(page.base_url + href)}'>{html.escape(text)}</a>"
        for href, text in page.links
    )
    root.html.add_child(
        Element(f"<div class='cr-title'>{html.escape(page.title)}{links}</div>"),
        name="cityrisk_title",
    )

    groups: dict[str, list[Any]] = {}
    targets: list[tuple[str, str, str]] = []
    realtimes: list[Realtime] = []
    for layer in page.layers:
        group = "Context" if layer.id in CONTEXT_IDS else plate_title(layer.plate)
        if layer.id in (ALARMS_ID, EVENTS_ID):
            build = _alarm_layer if layer.id == ALARMS_ID else _event_layer
            container, realtime = build(page, layer)
            container.add_to(fmap)
            realtimes.append(realtime)
            groups.setdefault(group, []).append(container)
            continue
        vg = _vector_layer(page, layer)
        vg.add_to(fmap)
        groups.setdefault(group, []).append(vg)
        if layer.id in COLLECTIONS and layer.id not in CONTEXT_IDS:
            targets.append((layer.id, layer.title, vg.get_name()))

    heat = HeatMap(  # type: ignore[no-untyped-call]
        [list(p) for p in page.heat],
        name="Risk heatmap (assets)",
        show=HEATMAP_ID in page.visible,
        radius=18,
        blur=14,
        min_opacity=0.3,
    )
    heat.default_js = [pair for pair in js if pair[0].startswith("leaflet.heat/")]
    heat.add_to(fmap)
    groups.setdefault(plate_title(COMPOSITE), []).insert(0, heat)

    for realtime in realtimes:
        realtime.add_to(fmap)

    # Context first, live last, plates in registry order between them.
    ordered = dict(sorted(groups.items(), key=lambda kv: (kv[0] != "Context", kv[0] == "Live")))
    control = GroupedLayerControl(  # type: ignore[no-untyped-call]
        ordered, exclusive_groups=False, collapsed=True
    )
    control.default_js = [pair for pair in js if pair[0].startswith("leaflet-groupedlayer")]
    control.default_css = [pair for pair in css if pair[0].startswith("leaflet-groupedlayer")]
    control.add_to(fmap)

    Inspector(targets, page.base_url).add_to(fmap)
    Legend(
        [
            ("Risk class (places)", risk_classes(page.layers)),
            ("预警等级 / 影响区 Warning level · impact zone", warning_level_classes()),
        ]
    ).add_to(fmap)
    ImpactPanel(page.base_url).add_to(fmap)

    if page.bounds is not None:
        x0, y0, x1, y1 = page.bounds
        fmap.fit_bounds([[y0, x0], [y1, x1]])
    return fmap


def render_page(page: MapPage) -> str:
    """The page as one HTML document."""
    return str(build_map(page).get_root().render())


__all__ = [
    "ALARMS_ID",
    "DEFAULT_VISIBLE",
    "EVENTS_ID",
    "HEATMAP_ID",
    "VENDOR_FILES",
    "VENDOR_PATH",
    "MapPage",
    "build_map",
    "parse_visible",
    "render_page",
    "vendor_urls",
]
