"""A small inline SVG sketch of GeoJSON geometries for the HTML pages (no map scripts).

Longitudes are scaled by cos(mid-latitude) so shapes keep roughly their proportions; only
numbers computed here reach the markup, so it is safe to mark it as such.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup

Coord = tuple[float, float]


def _rings(geometry: dict[str, Any]) -> Iterator[tuple[str, list[list[Coord]]]]:
    """(kind, parts) for each simple piece: kind is point, line or polygon."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Point":
        yield "point", [[tuple(coords[:2])]]  # type: ignore[index]
    elif kind == "MultiPoint":
        for c in coords or []:
            yield "point", [[tuple(c[:2])]]
    elif kind == "LineString":
        yield "line", [[tuple(c[:2]) for c in coords or []]]
    elif kind == "MultiLineString":
        for line in coords or []:
            yield "line", [[tuple(c[:2]) for c in line]]
    elif kind == "Polygon":
        yield "polygon", [[tuple(c[:2]) for c in ring] for ring in coords or []]
    elif kind == "MultiPolygon":
        for poly in coords or []:
            yield "polygon", [[tuple(c[:2]) for c in ring] for ring in poly]
    elif kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            yield from _rings(part)


def preview(geometries: dict[str, Any] | list[dict[str, Any]], size_px: int = 480) -> Markup:
    """An ``<svg>`` drawing of one geometry or a list of them (empty markup if none)."""
    items = geometries if isinstance(geometries, list) else [geometries]
    pieces = [
        (kind, [[c for c in part if len(c) == 2] for part in parts])  # empty geometries: ()
        for g in items
        if g
        for kind, parts in _rings(g)
    ]
    points = [c for _, parts in pieces for part in parts for c in part]
    if not points:
        return Markup("")
    if len(points) == 1:
        size_px = 120
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    minx, maxx, miny, maxy = min(xs), max(xs), min(ys), max(ys)
    # Widen a degenerate side (a point, a north-south line) so the drawing is not a sliver:
    # to a tenth of the other side, or about 100 m around a single point.
    pad = max(maxx - minx, maxy - miny) / 10 or 0.001
    if maxx - minx < pad:
        minx, maxx = (minx + maxx) / 2 - pad / 2, (minx + maxx) / 2 + pad / 2
    if maxy - miny < pad:
        miny, maxy = (miny + maxy) / 2 - pad / 2, (miny + maxy) / 2 + pad / 2
    kx = math.cos(math.radians((miny + maxy) / 2))
    width, height = (maxx - minx) * kx, maxy - miny
    scale = (size_px - 20) / max(width, height)
    w_px, h_px = width * scale + 20, height * scale + 20

    def xy(c: Coord) -> str:
        return f"{(c[0] - minx) * kx * scale + 10:.1f},{(maxy - c[1]) * scale + 10:.1f}"

    shapes: list[str] = []
    for kind, parts in pieces:
        if kind == "point":
            if not parts[0]:
                continue
            x, y = xy(parts[0][0]).split(",")
            shapes.append(f'<circle cx="{x}" cy="{y}" r="3"/>')
        else:
            d = " ".join(
                "M" + " L".join(xy(c) for c in part) + (" Z" if kind == "polygon" else "")
                for part in parts
                if part
            )
            css = "area" if kind == "polygon" else "line"
            shapes.append(f'<path class="{css}" d="{d}"/>')
    # Only numbers formatted above and fixed text reach the markup (coordinates go through
    # float formatting), so nothing from the data can inject HTML.
    return Markup(  # noqa: S704
        f'<svg class="preview" xmlns="http://www.w3.org/2000/svg" width="{w_px:.0f}" '
        f'height="{h_px:.0f}" viewBox="0 0 {w_px:.0f} {h_px:.0f}" role="img" '
        f'aria-label="geometry preview">{"".join(shapes)}</svg>'
    )
