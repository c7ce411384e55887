"""Coupling links between assets, derived by spatial rules in SQL (Rinaldi et al. 2001 types).

Each rule is data: which kinds, which predicate, which distance in metres. ``rebuild`` replaces
every derived link in one transaction with one ``INSERT … SELECT`` per rule; links made by hand
(rule ``manual``) are left alone. Distances are geodesic (``geography``), served by the GiST
expression index on ``geom::geography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from app.taxonomy.assets import KINDS

LinkType = Literal["physical", "cyber", "geographic", "logical"]
PIPES = ("gas_pipe", "water_pipe", "drainage_pipe", "heating_pipe")
# Whatever a hazard zone can hold, except other zones and the areal exposure layers.
ZONE_TARGETS = tuple(
    k.id
    for k in KINDS.values()
    if k.plate != "natural_disaster" and k.id not in ("population_cell", "admin_area")
)


@dataclass(frozen=True)
class LinkRule:
    """Link every ``from_kinds`` asset to every ``to_kinds`` asset the predicate pairs.

    ``within_m`` set: geodesic distance <= within_m metres; unset: the geometries intersect.
    """

    id: str
    link_type: LinkType
    from_kinds: tuple[str, ...]
    to_kinds: tuple[str, ...]
    within_m: float | None
    why: str


RULES: tuple[LinkRule, ...] = (
    LinkRule(
        "gas_pipe_near_manhole_10m",
        "geographic",
        ("gas_pipe",),
        ("manhole",),
        10.0,
        "leaking gas migrates into adjacent underground spaces (Hefei manhole CH4 monitoring)",
    ),
    LinkRule(
        "gas_pipe_near_drainage_5m",
        "geographic",
        ("gas_pipe",),
        ("drainage_pipe", "utility_tunnel"),
        5.0,
        "gas entering drains or culverts explodes along them (Kaohsiung 2014, Qingdao 2013)",
    ),
    LinkRule(
        "pipe_near_pipe_5m",
        "geographic",
        ("water_pipe", "heating_pipe"),
        ("gas_pipe", "drainage_pipe"),
        5.0,
        "a burst main scours the ground under neighbouring pipes (road collapse)",
    ),
    LinkRule(
        "bridge_carries_pipe",
        "physical",
        ("bridge",),
        PIPES,
        None,
        "pipes on a bridge fail with it; a pipe fire or burst damages the bridge",
    ),
    LinkRule(
        "flood_zone_contains",
        "geographic",
        ("flood_zone",),
        ZONE_TARGETS,
        None,
        "assets inside a floodplain are exposed to its flooding",
    ),
    LinkRule(
        "landslide_zone_contains",
        "geographic",
        ("landslide_zone",),
        ZONE_TARGETS,
        None,
        "assets inside a landslide zone are exposed to ground movement",
    ),
)

_KINDS = ARRAY(Text)

_WITHIN_SQL = text(
    """
    INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m)
    SELECT a.id, b.id, :link_type, :rule, ST_Distance(a.geom::geography, b.geom::geography)
    FROM asset a
    JOIN asset b ON ST_DWithin(a.geom::geography, b.geom::geography, :within_m)
    WHERE a.kind = ANY(:from_kinds) AND b.kind = ANY(:to_kinds) AND a.id <> b.id
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("from_kinds", type_=_KINDS), bindparam("to_kinds", type_=_KINDS))

_INTERSECTS_SQL = text(
    """
    INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m)
    SELECT a.id, b.id, :link_type, :rule, 0
    FROM asset a
    JOIN asset b ON ST_Intersects(a.geom, b.geom)
    WHERE a.kind = ANY(:from_kinds) AND b.kind = ANY(:to_kinds) AND a.id <> b.id
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("from_kinds", type_=_KINDS), bindparam("to_kinds", type_=_KINDS))


def rebuild(session: Session, rules: tuple[LinkRule, ...] = RULES) -> dict[str, int]:
    """Replace all derived links by what ``rules`` give now; links made per rule id."""
    session.execute(text("DELETE FROM asset_link WHERE rule <> 'manual'"))
    made: dict[str, int] = {}
    for rule in rules:
        params = {
            "link_type": rule.link_type,
            "rule": rule.id,
            "from_kinds": list(rule.from_kinds),
            "to_kinds": list(rule.to_kinds),
        }
        if rule.within_m is None:
            result = session.execute(_INTERSECTS_SQL, params)
        else:
            result = session.execute(_WITHIN_SQL, {**params, "within_m": rule.within_m})
        made[rule.id] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return made
