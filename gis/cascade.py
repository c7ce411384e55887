"""Dependency cascades: typed dependency graphs, time-stepped failure propagation with
explanation chains, reachability on supply networks, and Leontief inoperability.

**Dependencies.** An edge ``(from_id, to_id, link_type, delay_h, buffer_h)`` means *to depends
on from*: when ``from`` fails, ``to`` loses that supply ``delay_h`` hours later (the time the
loss takes to arrive: pressure decay in a main, a battery in a relay) and then runs on its own
backup for ``buffer_h`` hours (a generator's fuel, a tank's storage), after which it fails. Link
types are Rinaldi, Peerenboom & Kelly (2001): *physical* (a material output: power, water),
*cyber* (information: SCADA, telecom), *geographic* (co-location: one event hits both, as a gas
main and the duct beside it), *logical* (any other: a policy, a market, staff). Dependencies in
both directions and cycles are allowed (a power plant needs cooling water, the pumps need
power): pyincore's NCI propagates one way only (IN-CORE/pyincore#466).

**Redundancy.** Edges into one asset that share a ``group`` are alternatives: the asset loses
the group only when every supplier in it is lost, at the latest of their arrival times, and
fails at the latest ``loss + buffer`` among them. Edges without a group are each their own
group: any one lost fails the asset. An asset fails at the earliest time any of its groups
fails it. Failure times are found by a Dijkstra-like event sweep (Knuth 1977's generalisation
to superior functions: a group's time is a max of its inputs plus non-negative delays), exact,
whatever the cycles.

**Supply networks.** A node of a supply network (a ``networkx`` graph of power lines, water
mains) works while it can reach a working source along working nodes (the connectivity rule
of pyincore and OpenQuake ≥ 3.15); once cut off it loses supply at once, plus the network's
``delay_h`` and ``buffer_h``. A directed graph is followed along its edges. A node cut off from
every source is "unserved", never an error; nodes unserved before any failure are reported as
such, not as cascade failures.

**Probabilities.** Edges may carry the probability that a lost supply fails the dependent, and
initial failures a probability of having happened. Probabilities combine as a noisy-OR over
groups with independence (an AND within a redundancy group):
``P_b(t) = 1 − (1 − P0_b(t)) · Π_groups (1 − Π_edges p_e · P_from(t − delay_e − buffer_e))``,
iterated to its least fixed point on cycles, on a time grid of ``time_resolution_h``. States
and times are the worst case (every dependency propagates); the probability qualifies them.
Independence overstates a failure reached by several correlated paths.

**Leontief inoperability** (Haimes & Jiang 2001; impact-models.md convention, as pyincore's
NCI): ``q = (I − Mᵀ)⁻¹ u``, where ``M[j, i]`` (row: supplier j, column: dependent i) is the
fraction of j's inoperability passed on to i, ``u`` the initial perturbation, ``q`` the
resulting inoperability, clipped to [0, 1].

Pure functions over networkx graphs and plain values; no database, no HTTP.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import networkx as nx
import numpy as np
import numpy.typing as npt

from gis.network import component_labels

__all__ = [
    "DEFAULT_STEPS_H",
    "LINK_TYPES",
    "TIME_RESOLUTION_H",
    "AssetState",
    "Cascade",
    "CascadeStep",
    "Dependency",
    "Explanation",
    "Hop",
    "InitialFailure",
    "Inoperability",
    "SupplyNetwork",
    "dependency_graph",
    "leontief_inoperability",
    "propagate",
    "unserved",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Rinaldi, Peerenboom & Kelly (2001), *Identifying, understanding, and analyzing critical
#: infrastructure interdependencies*, IEEE Control Systems 21(6).
LINK_TYPES: Final = ("physical", "cyber", "geographic", "logical")
#: What commanders ask for: what fails now and at T+1 h, +6 h, +24 h (impact-models.md).
DEFAULT_STEPS_H: Final = (0.0, 1.0, 6.0, 24.0)
#: Time grid of the probability computation [h]: one minute, finer than any delay or backup
#: time worth stating, and at most 1,441 grid times over 24 h.
TIME_RESOLUTION_H: Final = 1.0 / 60.0
_MAX_GRID_TIMES: Final = 200_000

State = Literal["failed", "on_buffer"]


# --------------------------------------------------------------------------------------------
# Inputs


def _finite_nonneg(value: float, name: str, *, inf_ok: bool = False) -> float:
    v = float(value)
    if math.isnan(v) or v < 0 or (math.isinf(v) and not inf_ok):
        allowed = ">= 0 (inf allowed: never runs out)" if inf_ok else "finite and >= 0"
        raise ValueError(f"{name} was {value!r}; expected {allowed}, in hours")
    return v


def _probability(value: float, name: str) -> float:
    v = float(value)
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{name} was {value!r}; expected a probability in (0, 1]")
    return v


@dataclass(frozen=True)
class Dependency:
    """``to_id`` depends on ``from_id``.

    Attributes
    ----------
    from_id, to_id : hashable
        Supplier and dependent.
    link_type : {"physical", "cyber", "geographic", "logical"}
        Rinaldi (2001) dependency type.
    delay_h : float, default 0.0
        Hours from the supplier's failure until the dependent loses the supply.
    buffer_h : float, default 0.0
        Hours the dependent then runs on backup before it fails (``inf``: indefinitely).
    probability : float, default 1.0
        Probability that the loss fails the dependent (noisy-OR, module notes).
    group : hashable, optional
        Redundancy group: edges into one dependent with the same group are alternatives.

    Raises
    ------
    ValueError
        For an unknown link type, negative or NaN hours, a probability outside (0, 1], or an
        asset depending on itself.
    """

    from_id: Hashable
    to_id: Hashable
    link_type: str
    delay_h: float = 0.0
    buffer_h: float = 0.0
    probability: float = 1.0
    group: Hashable | None = None

    def __post_init__(self) -> None:
        if self.link_type not in LINK_TYPES:
            raise ValueError(
                f"link_type of {self.from_id!r} -> {self.to_id!r} was {self.link_type!r}; "
                f"expected one of {LINK_TYPES} (Rinaldi 2001)"
            )
        if self.from_id == self.to_id:
            raise ValueError(f"{self.to_id!r} depends on itself; expected two distinct assets")
        _finite_nonneg(self.delay_h, f"delay_h of {self.from_id!r} -> {self.to_id!r}")
        _finite_nonneg(
            self.buffer_h, f"buffer_h of {self.from_id!r} -> {self.to_id!r}", inf_ok=True
        )
        _probability(self.probability, f"probability of {self.from_id!r} -> {self.to_id!r}")


DependencyLike = (
    Dependency
    | tuple[Hashable, Hashable, str, float, float]
    | tuple[Hashable, Hashable, str, float, float, float]
    | tuple[Hashable, Hashable, str, float, float, float, Hashable]
)


def _as_dependency(item: DependencyLike) -> Dependency:
    if isinstance(item, Dependency):
        return item
    if not isinstance(item, tuple) or not 5 <= len(item) <= 7:
        raise ValueError(
            f"dependency {item!r}: expected a Dependency or a tuple (from_id, to_id, link_type, "
            "delay_h, buffer_h[, probability[, group]])"
        )
    return Dependency(*item)


def dependency_graph(dependencies: Iterable[DependencyLike]) -> nx.MultiDiGraph:
    """A typed dependency graph: an edge from supplier to dependent per dependency.

    Parameters
    ----------
    dependencies : iterable of Dependency or tuple
        ``Dependency`` objects or tuples ``(from_id, to_id, link_type, delay_h, buffer_h
        [, probability[, group]])``, meaning "to depends on from".

    Returns
    -------
    networkx.MultiDiGraph
        Edges ``from_id -> to_id`` with attributes ``link_type``, ``delay_h``, ``buffer_h``,
        ``probability`` and ``group``; parallel edges kept (a pump may need power and SCADA
        from the same substation).

    Raises
    ------
    ValueError
        For a malformed dependency (see :class:`Dependency`).

    Examples
    --------
    >>> g = dependency_graph([("substation", "pump", "physical", 0.0, 2.0),
    ...                       ("pump", "plant", "physical", 0.5, 6.0)])
    >>> sorted(g.edges(data="buffer_h"))
    [('pump', 'plant', 6.0), ('substation', 'pump', 2.0)]
    """
    g: nx.MultiDiGraph = nx.MultiDiGraph()
    for item in dependencies:
        d = _as_dependency(item)
        g.add_edge(
            d.from_id,
            d.to_id,
            link_type=d.link_type,
            delay_h=float(d.delay_h),
            buffer_h=float(d.buffer_h),
            probability=float(d.probability),
            group=d.group,
        )
    return g


def _check_graph(graph: nx.DiGraph) -> None:
    if not isinstance(graph, nx.DiGraph):
        raise ValueError(
            f"graph was a {type(graph).__name__}; expected a directed networkx graph "
            "(dependency_graph builds one)"
        )


def _dependency(u: Hashable, v: Hashable, data: Mapping[str, Any]) -> Dependency:
    if "link_type" not in data:
        raise ValueError(f"edge {u!r} -> {v!r} has no link_type; build it with dependency_graph")
    return Dependency(
        u,
        v,
        str(data["link_type"]),
        float(data.get("delay_h", 0.0)),
        float(data.get("buffer_h", 0.0)),
        float(data.get("probability", 1.0)),
        data.get("group"),
    )


GroupKey = tuple[Hashable, Hashable]


def _out_edges(graph: nx.DiGraph, a: Hashable) -> list[tuple[GroupKey, Dependency]]:
    """Dependencies on ``a`` (validated when first used), each with its redundancy group key."""
    if a not in graph:
        return []
    succ = graph.succ[a]
    if graph.is_multigraph():
        raw = [(v, k, data) for v, kd in succ.items() for k, data in kd.items()]
    else:
        raw = [(v, None, data) for v, data in succ.items()]
    out: list[tuple[GroupKey, Dependency]] = []
    for v, k, data in raw:
        d = _dependency(a, v, data)
        g = ("group", d.group) if d.group is not None else ("edge", a, k)
        out.append(((v, g), d))
    return out


def _group_size(graph: nx.DiGraph, key: GroupKey) -> int:
    """Number of edges in a redundancy group (1 for an edge of its own)."""
    b, g = key
    if not isinstance(g, tuple) or g[0] != "group":
        return 1
    pred = graph.pred[b]
    if graph.is_multigraph():
        return sum(d.get("group") == g[1] for kd in pred.values() for d in kd.values())
    return sum(d.get("group") == g[1] for d in pred.values())


@dataclass(frozen=True)
class InitialFailure:
    """An asset that fails first, and why.

    Attributes
    ----------
    asset_id : hashable
        The asset.
    cause : str
        What happened, in words ("flooded", "PGA exceeds fragility median").
    hazard_value, threshold : float, optional
        The hazard value met and the threshold it crossed (as the caller's rule states them).
    unit : str, default ""
        Unit of both ("m", "g", "kPa").
    at_h : float, default 0.0
        When it fails, hours after T+0.
    probability : float, default 1.0
        Probability that it failed (from a fragility curve, say).
    """

    asset_id: Hashable
    cause: str
    hazard_value: float | None = None
    threshold: float | None = None
    unit: str = ""
    at_h: float = 0.0
    probability: float = 1.0

    def __post_init__(self) -> None:
        _finite_nonneg(self.at_h, f"at_h of initial failure {self.asset_id!r}")
        _probability(self.probability, f"probability of initial failure {self.asset_id!r}")

    def describe(self) -> str:
        """The cause in words, with the hazard value against its threshold."""
        text = self.cause
        if self.hazard_value is not None and self.threshold is not None:
            unit = f" {self.unit}" if self.unit else ""
            text += f" ({self.hazard_value:g}{unit} ≥ threshold {self.threshold:g}{unit})"
        elif self.hazard_value is not None:
            text += f" ({self.hazard_value:g}{' ' + self.unit if self.unit else ''})"
        if self.probability < 1:
            text += f", probability {self.probability:.2f}"
        return text


@dataclass(frozen=True, eq=False)
class SupplyNetwork:
    """A supply network whose nodes work while they reach a working source.

    Built once per data version and reused: the graph is compiled into index arrays when the
    object is made, so it must not change afterwards (make a new SupplyNetwork instead).

    Attributes
    ----------
    name : str
        Name used in results ("power", "water").
    graph : networkx.Graph or DiGraph
        The network; its node ids are asset ids of the cascade. A DiGraph is followed along its
        edges (supply flows from source downstream).
    sources : frozenset
        Source nodes (substations, treatment plants, tanks).
    link_type : str, default "physical"
        Link type reported for cut-off hops.
    delay_h, buffer_h : float, default 0.0
        Hours from being cut off to losing supply, and backup hours after that (storage).
    """

    name: str
    graph: nx.Graph = field(repr=False)
    sources: frozenset[Hashable]
    link_type: str = "physical"
    delay_h: float = 0.0
    buffer_h: float = 0.0
    _nodes: list[Hashable] = field(init=False, repr=False)
    _index: dict[Hashable, int] = field(init=False, repr=False)
    _u: IntArray = field(init=False, repr=False)
    _v: IntArray = field(init=False, repr=False)
    _src: IntArray = field(init=False, repr=False)
    _succ: list[list[int]] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", frozenset(self.sources))
        missing = [s for s in self.sources if s not in self.graph]
        if missing:
            raise ValueError(
                f"sources {missing[:5]!r} are not nodes of supply network {self.name!r}"
            )
        if self.link_type not in LINK_TYPES:
            raise ValueError(f"link_type was {self.link_type!r}; expected one of {LINK_TYPES}")
        _finite_nonneg(self.delay_h, f"delay_h of supply network {self.name!r}")
        _finite_nonneg(self.buffer_h, f"buffer_h of supply network {self.name!r}", inf_ok=True)
        nodes = list(self.graph.nodes)
        index = {x: i for i, x in enumerate(nodes)}
        pairs = np.array(
            [(index[a], index[b]) for a, b in self.graph.edges()], dtype=np.int64
        ).reshape(-1, 2)
        succ: list[list[int]] | None = None
        if self.graph.is_directed():
            succ = [[] for _ in nodes]
            for a, b in pairs.tolist():
                succ[a].append(b)
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_u", pairs[:, 0].copy())
        object.__setattr__(self, "_v", pairs[:, 1].copy())
        object.__setattr__(
            self, "_src", np.array(sorted(index[x] for x in self.sources), dtype=np.int64)
        )
        object.__setattr__(self, "_succ", succ)

    def _reachable(self, down: BoolArray) -> BoolArray:
        """Which nodes reach a working source through working nodes."""
        up = ~down
        live = self._src[up[self._src]]
        reach = np.zeros(len(self._nodes), dtype=bool)
        if not len(live):
            return reach
        if self._succ is None:
            keep = up[self._u] & up[self._v]
            labels = component_labels(len(self._nodes), self._u[keep], self._v[keep])
            return np.isin(labels, labels[live]) & up
        stack = live.tolist()
        reach[live] = True
        while stack:
            for nxt in self._succ[stack.pop()]:
                if up[nxt] and not reach[nxt]:
                    reach[nxt] = True
                    stack.append(nxt)
        return reach


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Hop:
    """One step of an explanation chain: ``to_id`` failed because ``from_id`` did.

    Attributes
    ----------
    from_id, to_id : hashable
        Supplier and dependent.
    link_type : str
        Dependency type.
    delay_h, buffer_h : float
        The dependency's delay and backup hours.
    supply_lost_at_h, failed_at_h : float
        When ``to_id`` lost the supply and when it failed [h after T+0].
    via : str
        "dependency", or "cut off from every source of <network>".
    redundant : tuple
        Other suppliers of the same redundancy group, lost earlier.
    """

    from_id: Hashable
    to_id: Hashable
    link_type: str
    delay_h: float
    buffer_h: float
    supply_lost_at_h: float
    failed_at_h: float
    via: str = "dependency"
    redundant: tuple[Hashable, ...] = ()


@dataclass(frozen=True, eq=False)
class Explanation:
    """Why an asset fails: the initial cause, then the dependency path to it.

    Stored as a linked chain (each explanation points to its supplier's), so a cascade of n
    assets keeps n hops, not n² (``hops`` walks the chain when asked).

    Attributes
    ----------
    initial : InitialFailure
        Where the chain starts.
    last : Hop or None
        The final hop into the asset (None for the initial failure itself).
    previous : Explanation or None
        The supplier's explanation.
    """

    initial: InitialFailure
    last: Hop | None = None
    previous: Explanation | None = field(default=None, repr=False)

    @property
    def hops(self) -> tuple[Hop, ...]:
        """The path from the initial failure to the asset (empty for the initial failure)."""
        out: list[Hop] = []
        node: Explanation | None = self
        while node is not None and node.last is not None:
            out.append(node.last)
            node = node.previous
        return tuple(reversed(out))

    @property
    def text(self) -> str:
        """The chain in words."""
        parts = [
            f"{self.initial.asset_id} failed at T+{self.initial.at_h:g} h: "
            f"{self.initial.describe()}"
        ]
        for h in self.hops:
            how = (
                f"{h.link_type}, +{h.delay_h:g} h delay, {h.buffer_h:g} h buffer"
                if h.via == "dependency"
                else f"{h.link_type}, {h.via}"
            )
            if h.redundant:
                how += f", backups {', '.join(map(str, h.redundant))} lost too"
            parts.append(f"→ [{how}] → {h.to_id} fails at T+{h.failed_at_h:g} h")
        return " ".join(parts)


@dataclass(frozen=True)
class AssetState:
    """An asset's state at a step.

    Attributes
    ----------
    asset_id : hashable
        The asset.
    state : {"failed", "on_buffer"}
        Failed by the step, or lost its supply and running on backup (failing later).
    supply_lost_at_h, fail_at_h : float
        When it lost supply and when it fails (``inf``: its backup does not run out) [h].
    probability : float
        Probability that it has failed by this step (1/0 without probabilities).
    explanation : Explanation
        Initial cause → dependency path.
    """

    asset_id: Hashable
    state: State
    supply_lost_at_h: float
    fail_at_h: float
    probability: float
    explanation: Explanation


@dataclass(frozen=True)
class CascadeStep:
    """What the cascade looks like at one step.

    Attributes
    ----------
    at_h : float
        The step [h after T+0].
    newly_failed : tuple of AssetState
        Assets failing after the previous step, up to this one (by fail time).
    on_buffer : tuple of AssetState
        Assets that lost supply and run on backup at this step: what fails next, and when.
    failed_count : int
        All assets failed by this step.
    unserved : dict of str to tuple
        Per supply network, its non-source nodes out of service by this step (failed
        themselves or cut off).
    """

    at_h: float
    newly_failed: tuple[AssetState, ...]
    on_buffer: tuple[AssetState, ...]
    failed_count: int
    unserved: dict[str, tuple[Hashable, ...]]


@dataclass(frozen=True)
class Cascade:
    """A propagated cascade (:func:`propagate`).

    Attributes
    ----------
    steps : tuple of CascadeStep
        One per requested step.
    fail_at_h : dict
        Every asset that fails, at any time, → its fail time [h].
    supply_lost_at_h : dict
        Every asset that lost supply → when [h] (initial failures: their own time).
    explanations : dict
        Asset → its explanation chain.
    notes : tuple of str
        What was assumed.
    """

    steps: tuple[CascadeStep, ...]
    fail_at_h: dict[Hashable, float]
    supply_lost_at_h: dict[Hashable, float]
    explanations: dict[Hashable, Explanation]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Inoperability:
    """Leontief inoperability (:func:`leontief_inoperability`).

    Attributes
    ----------
    ids : tuple
        Assets, in matrix order.
    q : dict
        Inoperability of each asset, clipped to [0, 1].
    unclipped : dict
        The solution before clipping.
    clipped : tuple
        Assets whose inoperability exceeded 1 (fully inoperable).
    spectral_radius : float
        Spectral radius of M (< 1 for the system to converge).
    notes : tuple of str
        The convention, and what was clipped.
    """

    ids: tuple[Hashable, ...]
    q: dict[Hashable, float]
    unclipped: dict[Hashable, float]
    clipped: tuple[Hashable, ...]
    spectral_radius: float
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Reachability


def _reachable(graph: nx.Graph, sources: Iterable[Hashable], down: set[Hashable]) -> set[Hashable]:
    """Nodes reachable from the working sources through working nodes."""
    directed = graph.is_directed()
    seen = {s for s in sources if s not in down}
    stack = list(seen)
    while stack:
        node = stack.pop()
        nbrs = graph.successors(node) if directed else graph.neighbors(node)
        for nxt in nbrs:
            if nxt not in seen and nxt not in down:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def unserved(
    graph: nx.Graph,
    sources: Iterable[Hashable],
    demands: Iterable[Hashable] | None = None,
    failed: Iterable[Hashable] = (),
) -> frozenset[Hashable]:
    """Demand nodes that cannot reach any working source.

    Parameters
    ----------
    graph : networkx.Graph or DiGraph
        The supply network (a DiGraph is followed along its edges, from source downstream).
    sources : iterable
        Source nodes.
    demands : iterable, optional
        The demand nodes asked about; default every node that is not a source.
    failed : iterable, default ()
        Failed nodes: out of service themselves, and nothing passes through them.

    Returns
    -------
    frozenset
        The unserved demand nodes (failed ones included). No source, or every source failed:
        every demand is unserved. Never an error for a disconnected network.

    Raises
    ------
    ValueError
        If a source or demand is not a node of the graph.

    Examples
    --------
    >>> g = nx.path_graph(["plant", "a", "b", "c"])
    >>> sorted(unserved(g, ["plant"], failed=["b"]))
    ['b', 'c']
    >>> sorted(unserved(g, []))
    ['a', 'b', 'c', 'plant']
    """
    src = list(sources)
    want = [n for n in graph if n not in set(src)] if demands is None else list(demands)
    missing = [n for n in [*src, *want] if n not in graph]
    if missing:
        raise ValueError(f"{missing[:5]!r} are not nodes of the supply network")
    reach = _reachable(graph, src, set(failed))
    return frozenset(n for n in want if n not in reach)


# --------------------------------------------------------------------------------------------
# Propagation


@dataclass
class _Group:
    remaining: int
    fail_h: float = -math.inf
    loss_h: float = -math.inf
    binding: Dependency | None = None
    lost: list[Hashable] = field(default_factory=list)


def _check_steps(steps_h: Sequence[float]) -> tuple[float, ...]:
    steps = tuple(float(s) for s in steps_h)
    if not steps or any(not math.isfinite(s) or s < 0 for s in steps):
        raise ValueError(f"steps_h was {steps_h!r}; expected finite hours >= 0")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError(f"steps_h was {steps_h!r}; expected strictly increasing hours")
    return steps


def propagate(
    graph: nx.DiGraph,
    initial: Sequence[InitialFailure],
    *,
    steps_h: Sequence[float] = DEFAULT_STEPS_H,
    networks: Sequence[SupplyNetwork] = (),
    time_resolution_h: float = TIME_RESOLUTION_H,
) -> Cascade:
    """Propagate initial failures through dependencies and supply networks, step by step.

    Parameters
    ----------
    graph : networkx.DiGraph or MultiDiGraph
        Dependency graph (:func:`dependency_graph`); may be empty when only networks matter.
    initial : sequence of InitialFailure
        The first failures, each with its cause and time.
    steps_h : sequence of float, default (0, 1, 6, 24)
        Steps reported [h after T+0], strictly increasing.
    networks : sequence of SupplyNetwork, default ()
        Supply networks whose nodes fail when cut off from every working source.
    time_resolution_h : float, default 1/60
        Time grid of the probability computation [h] (only used when probabilities < 1).

    Returns
    -------
    Cascade
        Per step: newly failed assets, assets on backup (failing later), unserved nodes per
        network; fail and supply-loss times and explanation chains of every asset.

    Raises
    ------
    ValueError
        For malformed dependencies, steps or initial failures, duplicate network names, or
        probabilities combined with supply networks (reachability of uncertain failures needs
        sampling, not a closed form).

    Notes
    -----
    Semantics in the module docstring: "to depends on from"; delay then buffer; redundancy
    groups; supply networks by reachability. An asset fails once, at its earliest time.
    Nothing is restored: this is the loss side of the timeline.

    Examples
    --------
    Power and cooling water depend on each other (both ways):

    >>> g = dependency_graph([("grid", "pump", "physical", 0.0, 2.0),
    ...                       ("pump", "plant", "physical", 0.5, 3.0),
    ...                       ("plant", "pump", "physical", 0.0, 1.0)])
    >>> c = propagate(g, [InitialFailure("grid", "substation flooded", 0.8, 0.5, "m")])
    >>> c.fail_at_h
    {'grid': 0.0, 'pump': 2.0, 'plant': 5.5}
    >>> [s.asset_id for s in c.steps[1].on_buffer]
    ['pump']
    >>> c.explanations["plant"].text  # doctest: +NORMALIZE_WHITESPACE
    'grid failed at T+0 h: substation flooded (0.8 m ≥ threshold 0.5 m)
     → [physical, +0 h delay, 2 h buffer] → pump fails at T+2 h
     → [physical, +0.5 h delay, 3 h buffer] → plant fails at T+5.5 h'
    """
    steps = _check_steps(steps_h)
    _check_graph(graph)
    if not (time_resolution_h > 0 and math.isfinite(time_resolution_h)):
        raise ValueError(f"time_resolution_h was {time_resolution_h!r}; expected hours > 0")
    names = [n.name for n in networks]
    if len(set(names)) != len(names):
        raise ValueError(f"supply network names {names} repeat; expected unique names")
    initial = list(initial)
    for f in initial:
        if not isinstance(f, InitialFailure):
            raise ValueError(f"initial failure {f!r}: expected an InitialFailure")
    uncertain = any(f.probability < 1 for f in initial)
    notes: list[str] = []

    # Only the part of the graph the failures reach is read (and validated): a query costs
    # what it touches, not the size of the graph.
    groups: dict[GroupKey, _Group] = {}
    touched: list[tuple[GroupKey, Dependency]] = []
    fail_at: dict[Hashable, float] = {}
    lost_at: dict[Hashable, float] = {}
    cause: dict[Hashable, tuple[object, ...]] = {}
    holding: dict[Hashable, tuple[object, ...]] = {}  # supply lost, backup never runs out
    heap: list[tuple[float, int, Hashable, tuple[object, ...]]] = []
    seq = 0
    for f in initial:
        heap.append((f.at_h, seq, f.asset_id, ("initial", f)))
        seq += 1
    heapq.heapify(heap)

    down = [np.zeros(len(n._nodes), dtype=bool) for n in networks]
    down_ids: list[set[Hashable]] = [set() for _ in networks]
    before = [n._reachable(d) for n, d in zip(networks, down, strict=True)]
    flagged = [np.zeros(len(n._nodes), dtype=bool) for n in networks]
    for net, reach0 in zip(networks, before, strict=True):
        never = int((~reach0).sum())
        if never:
            notes.append(
                f"{never} nodes of {net.name!r} reach no source even before any failure: "
                "unserved from the start, not counted as cascade failures"
            )

    while heap:
        t = heap[0][0]
        batch: list[Hashable] = []
        while heap and heap[0][0] == t:
            _, _, asset, why = heapq.heappop(heap)
            if asset in fail_at:
                continue
            fail_at[asset] = t
            lost_at.setdefault(asset, t)
            cause[asset] = why
            batch.append(asset)
        for a in batch:
            for key, d in _out_edges(graph, a):
                touched.append((key, d))
                uncertain = uncertain or d.probability < 1
                b = d.to_id
                g = groups.get(key)
                if g is None:
                    g = groups[key] = _Group(remaining=_group_size(graph, key))
                g.remaining -= 1
                g.lost.append(a)
                g.loss_h = max(g.loss_h, t + d.delay_h)
                if t + d.delay_h + d.buffer_h >= g.fail_h:
                    g.fail_h, g.binding = t + d.delay_h + d.buffer_h, d
                if g.remaining == 0 and b not in fail_at:
                    lost_at[b] = min(lost_at.get(b, math.inf), g.loss_h)
                    if math.isfinite(g.fail_h):
                        heapq.heappush(heap, (g.fail_h, seq, b, ("dependency", g)))
                        seq += 1
                    else:
                        holding.setdefault(b, ("dependency", g))
        for k, net in enumerate(networks):
            hit = [net._index[a] for a in batch if a in net._index]
            if not hit:
                continue
            down[k][hit] = True
            down_ids[k].update(net._nodes[i] for i in hit)
            reach = net._reachable(down[k])
            cut_idx = np.flatnonzero(before[k] & ~reach & ~down[k] & ~flagged[k])
            if not len(cut_idx):
                continue
            flagged[k][cut_idx] = True
            cut = [net._nodes[i] for i in cut_idx.tolist()]
            trigger = _triggers(net.graph, cut, down_ids[k], fail_at)
            for x in cut:
                loss = t + net.delay_h
                lost_at[x] = min(lost_at.get(x, math.inf), loss)
                why = ("network", net, trigger[x], loss)
                if math.isfinite(net.buffer_h):
                    heapq.heappush(heap, (loss + net.buffer_h, seq, x, why))
                    seq += 1
                else:
                    holding.setdefault(x, why)
    if uncertain and networks:
        raise ValueError(
            "probabilities < 1 were given together with supply networks; reachability of "
            "uncertain failures is not a noisy-OR (it needs sampling): drop one or the other"
        )

    explanations: dict[Hashable, Explanation] = {}
    for asset in fail_at:  # in the order they failed: every supplier comes before
        explanations[asset] = _explain(
            asset, cause[asset], fail_at[asset], cause, fail_at, explanations
        )
    for asset, why in holding.items():  # lost supply, but their backup never runs out
        if asset not in fail_at:
            explanations[asset] = _explain(asset, why, math.inf, cause, fail_at, explanations)

    complete = [(key, d) for key, d in touched if groups[key].remaining == 0]
    prob = _probabilities(complete, initial, steps, time_resolution_h) if uncertain else None
    if uncertain:
        notes.append(
            "probabilities: noisy-OR over dependencies with independence (AND within a "
            f"redundancy group), on a {time_resolution_h * 60:g} min grid; states and times "
            "are the worst case"
        )
    result_steps = []
    prev = -math.inf
    for s_idx, step in enumerate(steps):

        def state(a: Hashable, st: State, s_idx: int = s_idx, step: float = step) -> AssetState:
            if prob is not None:
                p = prob.get(a, [0.0] * len(steps))[s_idx]
            else:
                p = 1.0 if fail_at.get(a, math.inf) <= step else 0.0
            return AssetState(a, st, lost_at[a], fail_at.get(a, math.inf), p, explanations[a])

        newly = sorted(
            (a for a, ft in fail_at.items() if prev < ft <= step),
            key=lambda a: (fail_at[a], str(a)),
        )
        buffering = sorted(
            (a for a, lt in lost_at.items() if lt <= step < fail_at.get(a, math.inf)),
            key=lambda a: (fail_at.get(a, math.inf), str(a)),
        )
        # Over the failed (few), not over every pipe and junction of each network: the same
        # set, and ≈ 17 ms less per impact on the demo city (2 networks × 4 steps × ~5,000
        # nodes), ~10x that on a city of 100,000 assets (bench/impact.py).
        failed_now = [x for x, ft in fail_at.items() if ft <= step]
        out_of_service = {
            net.name: tuple(
                sorted(
                    (x for x in failed_now if x in net.graph and x not in net.sources),
                    key=str,
                )
            )
            for net in networks
        }
        result_steps.append(
            CascadeStep(
                at_h=step,
                newly_failed=tuple(state(a, "failed") for a in newly),
                on_buffer=tuple(state(a, "on_buffer") for a in buffering),
                failed_count=sum(1 for ft in fail_at.values() if ft <= step),
                unserved=out_of_service,
            )
        )
        prev = step
    if not initial:
        notes.append("no initial failures: nothing fails")
    late = sum(1 for ft in fail_at.values() if ft > steps[-1])
    if late:
        notes.append(f"{late} assets fail after the last step (T+{steps[-1]:g} h): see fail_at_h")
    return Cascade(
        steps=tuple(result_steps),
        fail_at_h=dict(sorted(fail_at.items(), key=lambda kv: (kv[1], str(kv[0])))),
        supply_lost_at_h=lost_at,
        explanations=explanations,
        notes=tuple(notes),
    )


def _triggers(
    graph: nx.Graph, cut: list[Hashable], down: set[Hashable], fail_at: dict[Hashable, float]
) -> dict[Hashable, Hashable]:
    """For each newly cut-off node, the failed node that cut its piece off (the latest to fail
    among the failed neighbours of its piece; ties by name)."""
    cut_set = set(cut)
    piece: nx.Graph = (
        nx.Graph(graph.subgraph(cut_set)) if graph.is_directed() else graph.subgraph(cut_set)
    )
    out: dict[Hashable, Hashable] = {}
    for comp in nx.connected_components(piece):
        nbrs = {
            y
            for x in comp
            for y in (nx.all_neighbors(graph, x) if graph.is_directed() else graph.neighbors(x))
            if y in down
        }
        # A cut-off piece borders a failed node (else it would have been cut off earlier);
        # should a directed network defeat that, the latest failure in it is named instead.
        trigger = max(nbrs or down, key=lambda y: (fail_at[y], str(y)))
        for x in comp:
            out[x] = trigger
    return out


def _explain(
    asset: Hashable,
    why: tuple[object, ...],
    failed_at_h: float,
    cause: dict[Hashable, tuple[object, ...]],
    fail_at: dict[Hashable, float],
    done: dict[Hashable, Explanation],
) -> Explanation:
    """The chain to ``asset`` (failing at ``failed_at_h``, inf if never) from its cause."""
    if why[0] == "initial":
        first = why[1]
        if not isinstance(first, InitialFailure):  # pragma: no cover
            raise TypeError(f"cause of {asset!r} is not an initial failure")
        return Explanation(first)
    if why[0] == "dependency":
        g = why[1]
        if not isinstance(g, _Group) or g.binding is None:  # pragma: no cover
            raise TypeError(f"cause of {asset!r} has no binding dependency")
        d = g.binding
        hop = Hop(
            d.from_id,
            asset,
            d.link_type,
            d.delay_h,
            d.buffer_h,
            g.loss_h,
            failed_at_h,
            redundant=tuple(x for x in g.lost if x != d.from_id),
        )
        supplier: Hashable = d.from_id
    else:
        _, net, trigger, loss = why
        if not isinstance(net, SupplyNetwork) or not isinstance(loss, float):  # pragma: no cover
            raise TypeError(f"cause of {asset!r} is not a network cut-off")
        hop = Hop(
            trigger,
            asset,
            net.link_type,
            net.delay_h,
            net.buffer_h,
            loss,
            failed_at_h,
            via=f"cut off from every source of {net.name}",
        )
        supplier = trigger
    if supplier not in done:  # suppliers fail first, so this only recurses along the chain
        done[supplier] = _explain(
            supplier, cause[supplier], fail_at[supplier], cause, fail_at, done
        )
    before = done[supplier]
    return Explanation(before.initial, hop, before)


def _probabilities(
    edges: list[tuple[GroupKey, Dependency]],
    initial: list[InitialFailure],
    steps: tuple[float, ...],
    resolution_h: float,
) -> dict[Hashable, list[float]]:
    """P(failed by each step) of the initial failures and what they can fail.

    ``edges`` are the dependencies of the redundancy groups whose every supplier fails in the
    worst case (the sweep of :func:`propagate`): only through those can a failure have a
    probability above 0.
    """
    if not initial:
        return {}
    assets = {f.asset_id for f in initial} | {d.from_id for _, d in edges}
    assets |= {d.to_id for _, d in edges}
    index = {a: i for i, a in enumerate(sorted(assets, key=str))}
    n = len(index)
    # Groups holding an edge with infinite backup never fail the asset: drop them whole.
    dead = {key for key, d in edges if not math.isfinite(d.buffer_h)}
    gkeys: dict[GroupKey, int] = {}
    e_src, e_grp, e_w, e_p = [], [], [], []
    for key, d in edges:
        if key in dead:
            continue
        e_src.append(index[d.from_id])
        e_grp.append(gkeys.setdefault(key, len(gkeys)))
        e_w.append(round((d.delay_h + d.buffer_h) / resolution_h))
        e_p.append(d.probability)
    g_node = np.array([index[key[0]] for key in gkeys], dtype=np.int64)
    src = np.asarray(e_src, dtype=np.int64)
    grp = np.asarray(e_grp, dtype=np.int64)
    w = np.asarray(e_w, dtype=np.int64)
    p_edge = np.asarray(e_p, dtype=np.float64)

    t0: dict[int, list[tuple[int, float]]] = {}
    for f in initial:
        t0.setdefault(index[f.asset_id], []).append((round(f.at_h / resolution_h), f.probability))
    tmin = min(t for lst in t0.values() for t, _ in lst)
    positive = sorted({int(x) for x in w.tolist() if x > 0})
    wanted = {round(s / resolution_h) for s in steps}
    grid: set[int] = set()
    todo = list(wanted)
    while todo:
        tau = todo.pop()
        if tau < tmin or tau in grid:
            continue
        grid.add(tau)
        if len(grid) > _MAX_GRID_TIMES:
            raise ValueError(
                f"the probability grid needs more than {_MAX_GRID_TIMES} times at "
                f"time_resolution_h={resolution_h!r}; use a coarser resolution"
            )
        todo.extend(tau - x for x in positive)
    times = sorted(grid)
    times_arr = np.asarray(times, dtype=np.int64)
    at = {tau: i for i, tau in enumerate(times)}
    hist = np.zeros((len(times), n))
    current = np.zeros(n)
    for i, tau in enumerate(times):
        p0 = np.zeros(n)
        for node, lst in t0.items():
            keep = 1.0
            for t_init, p_init in lst:
                if t_init <= tau:
                    keep *= 1 - p_init
            p0[node] = 1 - keep
        target = tau - w
        past = np.minimum(np.searchsorted(times_arr, target), len(times) - 1)
        found = (w > 0) & (times_arr[past] == target)
        delayed = np.where(found, hist[past, src], 0.0)
        instant = w == 0
        p: FloatArray = np.maximum(current, p0)
        for _ in range(10_000):
            p_src = np.where(instant, p[src], delayed)
            g_prob = np.ones(len(gkeys))
            np.multiply.at(g_prob, grp, p_edge * p_src)
            survive = np.ones(n)
            np.multiply.at(survive, g_node, 1 - g_prob)
            new: FloatArray = 1 - (1 - p0) * survive
            if np.abs(new - p).max(initial=0.0) < 1e-13:
                p = new
                break
            p = new
        hist[i] = p
        current = p
    result: dict[Hashable, list[float]] = {}
    for a, i in index.items():
        result[a] = [
            float(hist[at[round(s / resolution_h)], i]) if round(s / resolution_h) in at else 0.0
            for s in steps
        ]
    return result


# --------------------------------------------------------------------------------------------
# Leontief


def leontief_inoperability(
    coefficients: Mapping[tuple[Hashable, Hashable], float]
    | Iterable[tuple[Hashable, Hashable, float]],
    perturbation: Mapping[Hashable, float],
) -> Inoperability:
    """Inoperability of interdependent assets: ``q = (I − Mᵀ)⁻¹ u``, clipped to [0, 1].

    Parameters
    ----------
    coefficients : mapping (from_id, to_id) → float, or iterable of (from_id, to_id, a)
        ``M[from, to] = a``: the fraction of ``from``'s inoperability passed on to ``to`` (``to``
        depends on ``from``), ``a >= 0``. Both directions may be given.
    perturbation : mapping id → float
        Initial inoperability ``u`` of the assets hit directly, in [0, 1].

    Returns
    -------
    Inoperability
        ``q`` per asset (and before clipping), the clipped assets, and ρ(M).

    Raises
    ------
    ValueError
        For a negative or non-finite coefficient, a perturbation outside [0, 1], or a spectral
        radius ρ(M) >= 1: then ``Σ (Mᵀ)ᵏ u`` diverges and ``I − Mᵀ`` is singular or has
        negative entries in its inverse, so no inoperability follows (scale the coefficients
        down: each asset's total dependence must stay below 1).

    Notes
    -----
    Convention of impact-models.md and pyincore's NCI (``q = inv(I - M.T) @ u`` with ``M`` the
    adjacency matrix, supplier row, dependent column): ``q_i = u_i + Σ_j M[j, i] q_j``.
    Haimes & Jiang (2001) write ``q = A* q + c*`` with ``A* = Mᵀ``.

    Examples
    --------
    Two assets depending on each other (a = 0.5 from 1 to 2, b = 0.4 back), 1 hit at 0.2:
    q1 = 0.2 / (1 − ab) = 0.25, q2 = a · q1 = 0.125.

    >>> r = leontief_inoperability({(1, 2): 0.5, (2, 1): 0.4}, {1: 0.2})
    >>> round(r.q[1], 6), round(r.q[2], 6)
    (0.25, 0.125)
    """
    triples: list[tuple[Hashable, Hashable, float]]
    if isinstance(coefficients, Mapping):
        triples = [(k[0], k[1], float(v)) for k, v in coefficients.items()]
    else:
        triples = [(a, b, float(c)) for a, b, c in coefficients]
    ids: list[Hashable] = []
    seen: set[Hashable] = set()
    for a, b, c in triples:
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"coefficient {a!r} -> {b!r} was {c!r}; expected a finite a >= 0")
        if a == b:
            raise ValueError(f"coefficient {a!r} -> {b!r}: an asset cannot depend on itself")
        for x in (a, b):
            if x not in seen:
                seen.add(x)
                ids.append(x)
    for x, ux in perturbation.items():
        if not (0.0 <= float(ux) <= 1.0):
            raise ValueError(f"perturbation of {x!r} was {ux!r}; expected a value in [0, 1]")
        if x not in seen:
            seen.add(x)
            ids.append(x)
    n = len(ids)
    if n == 0:
        return Inoperability((), {}, {}, (), 0.0, ("nothing given: no inoperability",))
    pos = {x: i for i, x in enumerate(ids)}
    m = np.zeros((n, n))
    for a, b, c in triples:
        m[pos[a], pos[b]] += c
    rho = float(np.abs(np.linalg.eigvals(m)).max())
    if rho >= 1.0 - 1e-9:
        raise ValueError(
            f"the interdependency matrix has spectral radius {rho:.4f} >= 1: inoperability does "
            "not converge (I - Mᵀ is singular or not an M-matrix); expected coefficients whose "
            "products around every cycle, and sums into each asset, stay below 1"
        )
    u = np.array([float(perturbation.get(x, 0.0)) for x in ids])
    q = np.linalg.solve(np.eye(n) - m.T, u)
    clipped = tuple(x for x, v in zip(ids, q.tolist(), strict=True) if v > 1.0)
    notes = [
        "q = (I - Mᵀ)⁻¹ u with M[from, to] = share of from's inoperability passed to to "
        f"(spectral radius {rho:.3f})"
    ]
    if clipped:
        notes.append(f"{len(clipped)} assets exceed 1 and are clipped to fully inoperable")
    return Inoperability(
        ids=tuple(ids),
        q={x: float(min(max(v, 0.0), 1.0)) for x, v in zip(ids, q.tolist(), strict=True)},
        unclipped=dict(zip(ids, q.tolist(), strict=True)),
        clipped=clipped,
        spectral_radius=rho,
        notes=tuple(notes),
    )
