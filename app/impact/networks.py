"""The city's networks for the impact engine, built once per data version and reused.

A water-main burst needs the water network's topology and valves; gas migration the
underground network (drains, ducts, tunnels) with its manholes; a cascade the dependency
graph of ``asset_link`` and the supply networks. Building them from the ``asset`` table costs
tens to hundreds of milliseconds (:mod:`gis.network`: ~0.15 s for 10,000 pipes), so they are
kept in process, keyed by the database and the ``data_version`` of ``asset`` and
``asset_link``: a write to either makes the next request rebuild, never answer from an older
network.

A network is built for the *region* of the target: the 3 × 3 block of 0.25° tiles around it
(≈ 80 km across, a city and its outskirts). One local metric frame then measures it to better
than 0.7 % (``gis.network`` refuses frames worse than 1 %), and a province's pipes are not
all loaded for one break.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import networkx as nx
import numpy as np
import shapely
from shapely.geometry import Point
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from app.errors import InvalidInput
from gis import cascade, isolation
from gis import network as gnet

_KINDS = ARRAY(Text)

#: Pipe kinds of each network, the point kinds bound to it, and their roles.
WATER = ("water_pipe",)
GAS = ("gas_pipe",)
UNDERGROUND = ("drainage_pipe", "utility_tunnel")
#: Where a network is fed from (sources of the supply network).
SOURCES = {"water": ("pump_station",), "gas": ("gas_station",)}
#: Who each network serves: facilities bound to their nearest main. Hydrants draw water only
#: (a hydrant beside a gas main is not a gas customer); the facilities draw both, for cooking,
#: heating and process gas.
_FACILITIES = (
    "hospital",
    "clinic",
    "school",
    "daycare",
    "elderly_care",
    "shelter",
    "fire_station",
    "crowded_place",
    "subway_station",
    "chemical_plant",
)
#: Network nodes (``junction`` assets) are neither sources nor demands: the topology is built
#: from the pipes' own ends (:func:`gis.network.build_network`), so imported nodes add nothing.
DEMANDS = {"water": (*_FACILITIES, "hydrant"), "gas": _FACILITIES}
#: How far from a main a served facility may be bound to it [m]: a building's service line runs
#: from the street main to the building, typically tens of metres.
DEMAND_TOLERANCE_M = 80.0
#: How far from a main a pump station or regulator may be bound to it [m].
SOURCE_TOLERANCE_M = 100.0
#: Valves and manholes are drawn on the pipes; a few metres of drawing error are bridged.
VALVE_TOLERANCE_M = 5.0
SPACE_TOLERANCE_M = 10.0

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class PipeSystem:
    """One pipe network with what is bound to it."""

    name: str
    network: gnet.PipeNetwork
    valves: isolation.ValveLayout
    sources: gnet.Attachment | None
    demands: gnet.Attachment | None
    spaces: gnet.Attachment | None
    supply: cascade.SupplyNetwork | None
    kinds: dict[int, str] = field(default_factory=dict)


#: Tile size of the regions networks are built for [degrees], and the block around the target.
REGION_TILE_DEG = 0.25
_REGION = "geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
_PIPES_SQL = text(
    "SELECT id, ST_AsBinary(geom) FROM asset WHERE kind = ANY(:kinds) "
    f"AND GeometryType(geom) = 'LINESTRING' AND {_REGION} ORDER BY id"
).bindparams(bindparam("kinds", type_=_KINDS))
_POINTS_SQL = text(
    "SELECT id, kind, ST_AsBinary(ST_PointOnSurface(geom)) FROM asset WHERE kind = ANY(:kinds) "
    "AND (CAST(:network AS text) IS NULL OR attributes->>'network' IS NULL "
    f"OR attributes->>'network' = :network) AND {_REGION} ORDER BY id"
).bindparams(bindparam("kinds", type_=_KINDS))

Region = tuple[int, int]


def region_of(lon: float, lat: float) -> Region:
    """The tile of ``(lon, lat)``; its region is the 3 × 3 block of tiles around it."""
    return (math.floor(lon / REGION_TILE_DEG), math.floor(lat / REGION_TILE_DEG))


def _envelope(region: Region) -> dict[str, float]:
    i, j = region
    return {
        "x0": (i - 1) * REGION_TILE_DEG,
        "y0": (j - 1) * REGION_TILE_DEG,
        "x1": (i + 2) * REGION_TILE_DEG,
        "y1": (j + 2) * REGION_TILE_DEG,
    }


_LINKS_SQL = text(
    "SELECT from_asset_id, to_asset_id, link_type, coalesce(delay_h, 0), coalesce(buffer_h, 0), "
    "attributes->>'group', (attributes->>'probability')::float8 FROM asset_link "
    "WHERE link_type <> 'geographic' ORDER BY id"
)
_VERSIONS_SQL = text("SELECT name, version FROM data_version WHERE name IN ('asset', 'asset_link')")


def _points(
    session: Session, region: Region, kinds: tuple[str, ...], network_name: str | None = None
) -> tuple[np.ndarray[Any, Any], list[str], np.ndarray[Any, Any]]:
    params = {"kinds": list(kinds), "network": network_name, **_envelope(region)}
    rows = session.execute(_POINTS_SQL, params).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    geoms = shapely.from_wkb(np.array([bytes(r[2]) for r in rows], dtype=object))
    return ids, [r[1] for r in rows], np.asarray(geoms, dtype=object)


def _attach(
    net: gnet.PipeNetwork,
    ids: np.ndarray[Any, Any],
    geoms: np.ndarray[Any, Any],
    tolerance_m: float,
) -> gnet.Attachment | None:
    if not len(ids) or not len(net.pipe_ids):
        return None
    return gnet.attach_points(net, ids, geoms, tolerance_m=tolerance_m)


def _supply(
    name: str,
    net: gnet.PipeNetwork,
    sources: gnet.Attachment | None,
    demands: gnet.Attachment | None,
) -> cascade.SupplyNetwork | None:
    """The pipes as a supply network: pipes meet at junctions; sources and demands hang on
    their pipe. Nodes are asset ids (pipes, sources, demands) and junction keys."""
    if sources is None or not len(sources.point_ids):
        return None
    graph = nx.Graph()
    pipe = net.pipe_ids[net.edge_pipe]
    for p, u, v in zip(pipe.tolist(), net.edge_u.tolist(), net.edge_v.tolist(), strict=True):
        graph.add_edge(p, (name, u))
        graph.add_edge(p, (name, v))
    for att in (sources, demands):
        if att is None:
            continue
        for point, edge in zip(att.point_ids.tolist(), att.edge.tolist(), strict=True):
            graph.add_edge(point, int(pipe[edge]))
    return cascade.SupplyNetwork(name, graph, frozenset(sources.point_ids.tolist()))


def _build_system(session: Session, name: str, region: Region) -> PipeSystem | None:
    kinds = {"water": WATER, "gas": GAS, "underground": UNDERGROUND}[name]
    rows = session.execute(_PIPES_SQL, {"kinds": list(kinds), **_envelope(region)}).all()
    if not rows:
        return None
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lines = shapely.from_wkb(np.array([bytes(r[1]) for r in rows], dtype=object))
    try:
        net = gnet.build_network(ids, lines)
    except ValueError as exc:
        raise InvalidInput(f"the {name} network around the target cannot be built: {exc}") from None
    if name == "underground":
        space_ids, _, space_geoms = _points(session, region, ("manhole",))
        spaces = _attach(net, space_ids, space_geoms, SPACE_TOLERANCE_M)
        return PipeSystem(name, net, isolation.valve_layout(net, None), None, None, spaces, None)
    valve_ids, _, valve_geoms = _points(session, region, ("valve",), name)
    valves = _attach(net, valve_ids, valve_geoms, VALVE_TOLERANCE_M)
    source_ids, _, source_geoms = _points(session, region, SOURCES[name])
    sources = _attach(net, source_ids, source_geoms, SOURCE_TOLERANCE_M)
    demand_ids, demand_kinds, demand_geoms = _points(session, region, DEMANDS[name])
    demands = _attach(net, demand_ids, demand_geoms, DEMAND_TOLERANCE_M)
    return PipeSystem(
        name,
        net,
        isolation.valve_layout(net, valves),
        sources,
        demands,
        None,
        _supply(name, net, sources, demands),
        dict(zip(demand_ids.tolist(), demand_kinds, strict=True)),
    )


def _build_dependencies(session: Session) -> nx.MultiDiGraph:
    deps = []
    for a, b, kind, delay, buffer, group, probability in session.execute(_LINKS_SQL).all():
        if a == b:
            continue
        deps.append(
            cascade.Dependency(
                int(a),
                int(b),
                kind,
                float(delay),
                float(buffer),
                1.0 if probability is None else float(probability),
                group,
            )
        )
    return cascade.dependency_graph(deps)


class _Cache:
    """What was built, by (database, versions, what); the last few versions only."""

    def __init__(self, keep: int = 8) -> None:
        self._lock = threading.Lock()
        self._items: dict[Hashable, Any] = {}
        self._keep = keep

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                return self._items[key]  # type: ignore[no-any-return]
        value = build()  # outside the lock: a slow build does not stall other networks
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._keep:
                self._items.pop(next(iter(self._items)))
        return value


_cache = _Cache()


def _versions(session: Session) -> tuple[str, int, int]:
    got: dict[str, int] = {str(k): int(v) for k, v in session.execute(_VERSIONS_SQL).all()}
    return (
        str(session.connection().engine.url),
        int(got.get("asset", 0)),
        int(got.get("asset_link", 0)),
    )


def pipe_system(session: Session, name: str, near: Point) -> PipeSystem | None:
    """The ``water``, ``gas`` or ``underground`` network of the region around ``near`` as of
    the session's data; None if the region has none."""
    url, assets, _ = _versions(session)
    region = region_of(near.x, near.y)
    return _cache.get((url, assets, name, region), lambda: _build_system(session, name, region))


def dependencies(session: Session) -> nx.MultiDiGraph:
    """The dependency graph of every non-geographic link (``to`` depends on ``from``)."""
    url, assets, links = _versions(session)
    return _cache.get((url, assets, links, "deps"), lambda: _build_dependencies(session))
