"""How a layer is drawn: a colour per class or level of one property, and the legend from it.

The colours of warning levels and risk classes follow the four-colour convention of the
Emergency Response Law of the PRC (art. 42): I red, II orange, III yellow, IV blue. Styles are
data, not renderer code: the map page and any MapLibre/Leaflet client read them from
``GET /layers`` (the legend), so one definition serves every client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from app.taxonomy.alarms import LEVEL_NUMERALS, WARNING_LEVELS

GeometryType = Literal["point", "line", "polygon", "mixed"]

_HEX_COLOUR = re.compile(r"^#[0-9a-f]{6}$")

#: Four colours of warning levels and risk classes, 1 (most severe) to 4.
FOUR_COLOURS: dict[int, str] = {1: "#e60012", 2: "#ff8c00", 3: "#ffd400", 4: "#0068b7"}


#: One hue per plate, so assets of one plate read as a family on the map.
PLATE_COLOURS: dict[str, str] = {
    "lifeline": "#1f78b4",
    "public_safety": "#6a3d9a",
    "production_safety": "#b15928",
    "natural_disaster": "#33a02c",
    "exposure": "#e7298a",
    "live": "#444444",
}


@dataclass(frozen=True)
class ColourClass:
    """Features whose ``Style.by`` property equals ``value`` are drawn in ``colour``."""

    value: int | str
    colour: str
    label: str


@dataclass(frozen=True)
class Style:
    """The drawing of a layer.

    Parameters
    ----------
    geometry : {"point", "line", "polygon", "mixed"}
        Geometry family of the features (hexagon aggregates are always polygons).
    colour : str
        ``#rrggbb`` used when ``by`` is None or a value matches no class.
    by : str or None, default None
        Property whose value picks the colour; it must be one of the layer's properties.
    classes : tuple of ColourClass, default ()
        The value → colour table, in legend order.

    Examples
    --------
    >>> s = Style("point", "#444444", by="level", classes=warning_level_classes())
    >>> s.colour_of(1)
    '#e60012'
    >>> s.legend()["items"][0]["label"]
    'Level I (red)'
    """

    geometry: GeometryType
    colour: str
    by: str | None = None
    classes: tuple[ColourClass, ...] = ()

    def __post_init__(self) -> None:
        for colour in (self.colour, *(c.colour for c in self.classes)):
            if not _HEX_COLOUR.match(colour):
                raise ValueError(f"colour {colour!r} is not #rrggbb in lower case")
        if self.classes and self.by is None:
            raise ValueError("a style with colour classes needs `by`, the property they read")
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values):
            raise ValueError(f"colour classes repeat a value: {values}")

    def colour_of(self, value: int | str | None) -> str:
        """The colour of a feature whose ``by`` property is ``value``."""
        for cls in self.classes:
            if cls.value == value:
                return cls.colour
        return self.colour

    def legend(self) -> dict[str, Any]:
        """A JSON-ready legend: the property read, and one item per class (or one swatch)."""
        items: list[dict[str, Any]] = [
            {"value": c.value, "colour": c.colour, "label": c.label} for c in self.classes
        ]
        if not items:
            items = [{"value": None, "colour": self.colour, "label": "feature"}]
        return {"geometry": self.geometry, "property": self.by, "items": items}


def warning_level_classes() -> tuple[ColourClass, ...]:
    """Levels I-IV of an alarm as colour classes on the integer ``level`` (1 = I, red)."""
    return tuple(
        ColourClass(level, FOUR_COLOURS[level], f"Level {LEVEL_NUMERALS[level]} ({colour})")
        for level, colour in WARNING_LEVELS.items()
    )
