"""The layer registry, without a database: validation at registration, defaults, styles."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import Select, column, select, table

from app.taxonomy.assets import KINDS
from layers.base import (
    STATIC,
    Aggregate,
    CachePolicy,
    Field,
    Layer,
    Registry,
    ZoomRules,
    tile_unit_m,
)
from layers.registry import default_registry
from layers.styles import FOUR_COLOURS, Style, warning_level_classes
from layers.tiles import TileAddressError, TileOutOfRange, mode_of, parse_tile

THING = table("thing", column("id"), column("level"), column("geom"))


def thing_source() -> Select[Any]:
    return select(THING.c.id, THING.c.level, THING.c.geom)


def make(**changes: Any) -> Layer:
    base = Layer(
        id="things",
        title="Things",
        plate="lifeline",
        data="features",
        source=thing_source,
        properties=(Field("id", "Number"), Field("level", "Number")),
        style=Style("point", "#123456", by="level", classes=warning_level_classes()),
        zoom=ZoomRules(aggregate_below=10),
        tables=frozenset({"thing"}),
        cache=STATIC,
        aggregates=(Aggregate("count", "count"), Aggregate("level", "min", "level")),
    )
    return dataclasses.replace(base, **changes)


def test_default_registry_has_every_kind_exposure_and_live_layers() -> None:
    registry = default_registry()
    ids = [layer.id for layer in registry]
    assert set(KINDS) <= set(ids)
    assert {"exposure", "alarms", "latest_readings"} <= set(ids)
    assert len(ids) == len(set(ids))
    alarms = registry.get("alarms")
    assert alarms.is_live
    assert alarms.cache.max_age_s == 0
    assert [alarms.style.colour_of(level) for level in (1, 2, 3, 4)] == list(FOUR_COLOURS.values())
    assert registry.get("gas_pipe").tables == frozenset({"asset"})
    assert registry.get("latest_readings").cache.server_ttl_s is not None


def test_register_refuses_duplicate_ids() -> None:
    registry = Registry([make()])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make(title="again"))


def test_unknown_layer_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known layers: things"):
        Registry([make()]).get("nope")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "Bad-Id"}, "must match"),
        ({"plate": "nowhere"}, "unknown plate"),
        ({"tables": frozenset()}, "names no tables"),
        ({"properties": (Field("id", "Number"),)}, "do not match its properties"),
        ({"source": lambda: select(THING.c.id, THING.c.level)}, "no `geom` column"),
        ({"style": Style("point", "#123456", by="colour")}, "unknown property"),
        ({"aggregates": (Aggregate("max", "max", "missing"),)}, "unknown column"),
    ],
)
def test_invalid_layers_are_refused_at_registration(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Registry().register(make(**changes))


def test_zoom_rules_check_themselves_and_pick_modes() -> None:
    with pytest.raises(ValueError, match="minzoom"):
        ZoomRules(minzoom=5, maxzoom=4)
    with pytest.raises(ValueError, match="strictly increasing"):
        ZoomRules(simplify_m=((12, 1.0), (10, 2.0)))
    with pytest.raises(ValueError, match="count takes no column"):
        Aggregate("n", "count", "id")
    with pytest.raises(ValueError, match="max_age_s"):
        CachePolicy(max_age_s=-1)
    layer = make(zoom=ZoomRules(minzoom=2, maxzoom=16, aggregate_below=10))
    assert [mode_of(layer, z) for z in (1, 2, 9, 10, 16, 17)] == [
        "none",
        "hex",
        "hex",
        "raw",
        "raw",
        "none",
    ]
    # One tile unit per zoom by default: halves with each zoom.
    rules = ZoomRules()
    assert rules.tolerance_m(14) == pytest.approx(tile_unit_m(14))
    assert rules.tolerance_m(15) == pytest.approx(rules.tolerance_m(14) / 2)


def test_styles_refuse_bad_colours_and_build_legends() -> None:
    with pytest.raises(ValueError, match="#rrggbb"):
        Style("point", "red")
    with pytest.raises(ValueError, match="needs `by`"):
        Style("point", "#000000", classes=warning_level_classes())
    legend = make().style.legend()
    assert legend["property"] == "level"
    assert legend["items"][0]["label"] == "Level I (red)"


def test_parse_tile_checks_webmercatorquad() -> None:
    assert parse_tile("0", "0", "0").z == 0
    with pytest.raises(TileOutOfRange, match=r"0\.\.1"):
        parse_tile("1", "0", "2")
    with pytest.raises(TileOutOfRange, match=r"zooms 0\.\.24"):
        parse_tile("25", "0", "0")
    with pytest.raises(TileAddressError, match="non-negative integer"):
        parse_tile("1", "-1", "0")
    with pytest.raises(TileAddressError, match="non-negative integer"):
        parse_tile("１", "0", "0")  # a full-width digit is a digit to str.isdigit
