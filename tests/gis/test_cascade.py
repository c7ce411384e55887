"""Dependency cascades (gis.cascade): time-stepped propagation with known failure times, cycles
and dependencies both ways, redundancy, probabilities, supply-network reachability, Leontief
inoperability in closed form, and the Seaside water + power networks (tests/data/seaside)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from gis.cascade import (
    Dependency,
    InitialFailure,
    SupplyNetwork,
    dependency_graph,
    leontief_inoperability,
    propagate,
    unserved,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def ids_of(states) -> list:
    return [s.asset_id for s in states]


# --- time-stepped propagation --------------------------------------------------------------


def test_a_chain_fails_at_delay_plus_buffer_and_is_reported_per_step() -> None:
    # A fails at T+0; B loses A's supply 1 h later, runs 2 h on backup: fails at T+3;
    # C loses B 0.5 h later with no backup: T+3.5; D has 30 h of backup: fails at T+33.5,
    # after the last step.
    g = dependency_graph(
        [
            ("A", "B", "physical", 1.0, 2.0),
            ("B", "C", "cyber", 0.5, 0.0),
            ("C", "D", "logical", 0.0, 30.0),
        ]
    )
    c = propagate(g, [InitialFailure("A", "flooded", 0.6, 0.3, "m")])
    assert c.fail_at_h == {"A": 0.0, "B": 3.0, "C": 3.5, "D": 33.5}
    assert c.supply_lost_at_h == {"A": 0.0, "B": 1.0, "C": 3.5, "D": 3.5}
    t0, t1, t6, t24 = c.steps
    assert (ids_of(t0.newly_failed), ids_of(t0.on_buffer)) == (["A"], [])
    assert (ids_of(t1.newly_failed), ids_of(t1.on_buffer)) == ([], ["B"])
    assert t1.on_buffer[0].fail_at_h == 3.0  # what fails next, and when
    assert (ids_of(t6.newly_failed), ids_of(t6.on_buffer)) == (["B", "C"], ["D"])
    assert (t24.failed_count, ids_of(t24.on_buffer)) == (3, ["D"])
    assert t6.newly_failed[0].probability == 1.0
    assert t1.on_buffer[0].probability == 0.0
    assert any("after the last step" in s for s in c.notes)


def test_explanation_chains_name_cause_links_and_delays() -> None:
    g = dependency_graph([("A", "B", "physical", 1.0, 2.0), ("B", "C", "cyber", 0.5, 0.0)])
    c = propagate(g, [InitialFailure("A", "flooded", 0.6, 0.3, "m")])
    chain = c.explanations["C"]
    assert chain.initial.asset_id == "A"
    assert [(h.from_id, h.to_id, h.link_type) for h in chain.hops] == [
        ("A", "B", "physical"),
        ("B", "C", "cyber"),
    ]
    assert [(h.delay_h, h.buffer_h, h.failed_at_h) for h in chain.hops] == [
        (1.0, 2.0, 3.0),
        (0.5, 0.0, 3.5),
    ]
    assert chain.text.startswith("A failed at T+0 h: flooded (0.6 m ≥ threshold 0.3 m)")
    assert chain.text.endswith("C fails at T+3.5 h")


def test_power_and_cooling_water_depend_on_each_other_both_ways() -> None:
    # The plant P needs cooling water W (6 h of storage); W's pumps need P's power (2 h of
    # battery). One direction only (pyincore#466) would miss whichever fails second.
    deps = [("P", "W", "physical", 0.0, 2.0), ("W", "P", "physical", 0.0, 6.0)]
    g = dependency_graph(deps)
    assert propagate(g, [InitialFailure("P", "turbine trip")]).fail_at_h == {"P": 0.0, "W": 2.0}
    assert propagate(g, [InitialFailure("W", "intake blocked")]).fail_at_h == {"W": 0.0, "P": 6.0}
    # A three-asset cycle with zero delays: all fail at once, each exactly once.
    ring = dependency_graph(
        [("x", "y", "physical", 0, 0), ("y", "z", "physical", 0, 0), ("z", "x", "physical", 0, 0)]
    )
    c = propagate(ring, [InitialFailure("y", "fire")])
    assert c.fail_at_h == {"y": 0.0, "z": 0.0, "x": 0.0}
    assert len(c.explanations["x"].hops) == 2  # y -> z -> x


def test_redundant_suppliers_fail_the_dependent_only_when_both_are_lost() -> None:
    # Pump W is fed by substation P or by grid G (group "power", 2 h battery). P failing alone
    # changes nothing; G failing at T+3 too leaves the battery: W fails at T+5.
    deps = [
        Dependency("P", "W", "physical", 0.0, 2.0, group="power"),
        Dependency("G", "W", "physical", 0.0, 2.0, group="power"),
    ]
    g = dependency_graph(deps)
    assert propagate(g, [InitialFailure("P", "flooded")]).fail_at_h == {"P": 0.0}
    c = propagate(g, [InitialFailure("P", "flooded"), InitialFailure("G", "storm", at_h=3.0)])
    assert c.fail_at_h["W"] == 5.0
    assert c.supply_lost_at_h["W"] == 3.0
    hop = c.explanations["W"].hops[-1]
    assert (hop.from_id, hop.redundant) == ("G", ("P",))


def test_infinite_backup_runs_on_buffer_at_every_step() -> None:
    g = dependency_graph([("grid", "hospital", "physical", 0.0, math.inf)])
    c = propagate(g, [InitialFailure("grid", "blackout")])
    assert "hospital" not in c.fail_at_h
    assert all(ids_of(s.on_buffer) == ["hospital"] for s in c.steps)
    assert c.steps[-1].on_buffer[0].fail_at_h == math.inf
    assert c.explanations["hospital"].hops[0].from_id == "grid"


def test_no_initial_failures_and_an_empty_graph() -> None:
    c = propagate(dependency_graph([]), [])
    assert c.fail_at_h == {}
    assert [s.failed_count for s in c.steps] == [0, 0, 0, 0]
    c = propagate(nx.MultiDiGraph(), [InitialFailure("lonely", "fire")])
    assert c.fail_at_h == {"lonely": 0.0}


@pytest.mark.parametrize(
    ("deps", "match"),
    [
        ([("a", "b", "electrical", 0, 0)], "link_type"),
        ([("a", "b", "physical", -1, 0)], "delay_h"),
        ([("a", "b", "physical", 0, float("nan"))], "buffer_h"),
        ([("a", "a", "physical", 0, 0)], "itself"),
        ([("a", "b", "physical", 0, 0, 1.5)], "probability"),
        ([("a", "b")], "tuple"),
    ],
)
def test_bad_dependencies_are_refused(deps: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dependency_graph(deps)


def test_bad_steps_and_mixtures_are_refused() -> None:
    g = dependency_graph([("a", "b", "physical", 0, 0, 0.5)])
    with pytest.raises(ValueError, match="increasing"):
        propagate(g, [], steps_h=(0, 6, 1))
    net = SupplyNetwork("power", nx.path_graph(["a", "c"]), frozenset({"a"}))
    with pytest.raises(ValueError, match="sampling"):
        propagate(g, [InitialFailure("a", "x")], networks=[net])
    with pytest.raises(ValueError, match="not nodes of supply network"):
        SupplyNetwork("power", nx.path_graph(["a", "c"]), frozenset({"z"}))
    with pytest.raises(ValueError, match="link_type"):
        propagate(nx.DiGraph([("a", "b")]), [InitialFailure("a", "x")])


# --- probabilities -------------------------------------------------------------------------


def test_noisy_or_and_redundancy_and_initial_probability() -> None:
    # B depends on A1 (p = 0.5) and A2 (p = 0.4), both failed: 1 - 0.5 · 0.6 = 0.7.
    or_ = dependency_graph([("A1", "B", "physical", 0, 0, 0.5), ("A2", "B", "physical", 0, 0, 0.4)])
    c = propagate(or_, [InitialFailure("A1", "x"), InitialFailure("A2", "y")])
    assert c.steps[0].newly_failed[-1].asset_id == "B"
    assert c.steps[0].newly_failed[-1].probability == pytest.approx(0.7)
    # The same two as redundant alternatives: both must propagate, 0.5 · 0.4 = 0.2.
    and_ = dependency_graph(
        [
            Dependency("A1", "B", "physical", probability=0.5, group="g"),
            Dependency("A2", "B", "physical", probability=0.4, group="g"),
        ]
    )
    c = propagate(and_, [InitialFailure("A1", "x"), InitialFailure("A2", "y")])
    p_b = {s.asset_id: s.probability for s in c.steps[0].newly_failed}["B"]
    assert p_b == pytest.approx(0.2)
    # An initial failure with probability 0.8, passed on with 0.5 after 2 h: 0 at T+1, 0.4 at
    # T+6.
    late = dependency_graph([("A", "B", "physical", 2.0, 0.0, 0.5)])
    c = propagate(late, [InitialFailure("A", "fragility", 0.4, 0.35, "g", probability=0.8)])
    b1 = [s for s in c.steps[1].on_buffer if s.asset_id == "B"]
    assert b1 == []  # supply not lost yet at T+1
    b6 = next(s for s in c.steps[2].newly_failed if s.asset_id == "B")
    assert b6.probability == pytest.approx(0.4)
    a0 = c.steps[0].newly_failed[0]
    assert a0.probability == pytest.approx(0.8)


def test_noisy_or_on_a_cycle_reaches_the_least_fixed_point() -> None:
    # A (failed) -> B with 0.5; B <-> C with 0.5 each way, no delays.
    # B = 1 - (1 - 0.5)(1 - 0.5 C), C = 0.5 B  =>  B = 0.5 / 0.875 = 4/7, C = 2/7.
    g = dependency_graph(
        [
            ("A", "B", "physical", 0, 0, 0.5),
            ("B", "C", "physical", 0, 0, 0.5),
            ("C", "B", "physical", 0, 0, 0.5),
        ]
    )
    c = propagate(g, [InitialFailure("A", "x")])
    p = {s.asset_id: s.probability for s in c.steps[0].newly_failed}
    assert p["B"] == pytest.approx(4 / 7, abs=1e-9)
    assert p["C"] == pytest.approx(2 / 7, abs=1e-9)


# --- supply networks -----------------------------------------------------------------------


def test_unserved_is_reachability_never_an_error() -> None:
    g = nx.path_graph(["plant", "a", "b", "c"])
    assert unserved(g, ["plant"], failed=["b"]) == {"b", "c"}
    assert unserved(g, ["plant"], demands=["a"], failed=["b"]) == frozenset()
    assert unserved(g, []) == {"plant", "a", "b", "c"}
    d = nx.DiGraph([("plant", "a"), ("a", "b"), ("c", "b")])  # c feeds nothing upstream
    assert unserved(d, ["plant"]) == {"c"}
    with pytest.raises(ValueError, match="not nodes"):
        unserved(g, ["nowhere"])


def test_cut_off_nodes_fail_and_their_dependents_follow() -> None:
    # Power line S - a - b - c; pump P is fed from c (1 h battery); the water main from P
    # feeds taps t1, t2 (no storage). Failing a cuts off b and c at T+0, P fails at T+1 and
    # t1, t2 with it.
    power = SupplyNetwork("power", nx.path_graph(["S", "a", "b", "c"]), frozenset({"S"}))
    water = SupplyNetwork("water", nx.path_graph(["P", "t1", "t2"]), frozenset({"P"}))
    g = dependency_graph([("c", "P", "physical", 0.0, 1.0)])
    c = propagate(
        g, [InitialFailure("a", "pole down")], networks=[power, water], steps_h=(0.0, 0.5, 1.0)
    )
    assert c.fail_at_h == {"a": 0.0, "b": 0.0, "c": 0.0, "P": 1.0, "t1": 1.0, "t2": 1.0}
    assert c.steps[0].unserved == {"power": ("a", "b", "c"), "water": ()}
    assert ids_of(c.steps[1].on_buffer) == ["P"]
    assert c.steps[2].unserved["water"] == ("t1", "t2")
    hops = c.explanations["t2"].hops
    assert [h.to_id for h in hops] == ["c", "P", "t2"]
    assert hops[0].via == "cut off from every source of power"


def test_storage_that_never_runs_dry_keeps_cut_off_nodes_on_buffer() -> None:
    # A directed water network whose taps have tanks that never run dry (buffer inf): cut off,
    # they lose supply at T+0 and stay on their buffer, explained by the cut.
    d = nx.DiGraph([("plant", "main"), ("main", "tap")])
    net = SupplyNetwork("water", d, frozenset({"plant"}), buffer_h=math.inf)
    c = propagate(nx.DiGraph(), [InitialFailure("main", "burst")], networks=[net])
    assert c.fail_at_h == {"main": 0.0}
    assert ids_of(c.steps[-1].on_buffer) == ["tap"]
    assert c.explanations["tap"].hops[0].via == "cut off from every source of water"
    assert c.steps[-1].unserved["water"] == ("main",)


def test_a_long_chain_keeps_every_hop() -> None:
    # 3,000 assets in a row, no delays: each explanation is linked to its supplier's, so the
    # last one still lists all 2,999 hops in order.
    g = dependency_graph([(i, i + 1, "cyber", 0.0, 0.0) for i in range(2_999)])
    c = propagate(g, [InitialFailure(0, "ransomware")])
    hops = c.explanations[2_999].hops
    assert len(hops) == 2_999
    assert [h.to_id for h in hops[:3]] == [1, 2, 3]
    assert hops[-1].to_id == 2_999


def test_a_network_part_never_connected_is_not_a_cascade_failure() -> None:
    g = nx.Graph([("S", "a"), ("x", "y")])  # x-y reach no source from the start
    net = SupplyNetwork("water", g, frozenset({"S"}))
    c = propagate(nx.DiGraph(), [InitialFailure("a", "burst")], networks=[net])
    assert c.fail_at_h == {"a": 0.0}
    assert any("before any failure" in s for s in c.notes)


# --- Leontief ------------------------------------------------------------------------------


def test_leontief_two_assets_depending_on_each_other() -> None:
    # q1 = u1 + b q2, q2 = a q1  =>  q1 = u1 / (1 - ab), q2 = a u1 / (1 - ab).
    a, b, u1 = 0.5, 0.4, 0.2
    r = leontief_inoperability({("power", "water"): a, ("water", "power"): b}, {"power": u1})
    assert r.q["power"] == pytest.approx(u1 / (1 - a * b))
    assert r.q["water"] == pytest.approx(a * u1 / (1 - a * b))
    assert r.spectral_radius == pytest.approx(math.sqrt(a * b))
    # One direction only (what pyincore's NCI does) understates the supplier: u1 exactly.
    one_way = leontief_inoperability([("power", "water", a)], {"power": u1})
    assert one_way.q["power"] == pytest.approx(u1)


def test_leontief_matches_the_neumann_series_and_clips() -> None:
    rng = np.random.default_rng(5)
    m = rng.uniform(0, 0.3, (4, 4))
    np.fill_diagonal(m, 0.0)
    coeffs = {(i, j): float(m[i, j]) for i in range(4) for j in range(4) if i != j}
    u = {0: 0.3, 2: 0.1}
    r = leontief_inoperability(coeffs, u)
    uu = np.array([0.3, 0.0, 0.1, 0.0])
    series = sum(np.linalg.matrix_power(m.T, k) @ uu for k in range(200))
    assert [r.q[i] for i in range(4)] == pytest.approx(series.tolist(), abs=1e-12)
    # a = 0.9 and b = 0.5 with u1 = 1: q1 = 1 / 0.55 = 1.82 and q2 = 0.9 q1 = 1.64, both
    # clipped to 1 (fully inoperable).
    big = leontief_inoperability({(1, 2): 0.9, (2, 1): 0.5}, {1: 1.0})
    assert big.unclipped == pytest.approx({1: 1 / 0.55, 2: 0.9 / 0.55})
    assert (big.q, big.clipped) == ({1: 1.0, 2: 1.0}, (1, 2))


def test_leontief_refuses_a_system_that_does_not_converge() -> None:
    with pytest.raises(ValueError, match=r"spectral radius 1\.0000"):
        leontief_inoperability({(1, 2): 1.0, (2, 1): 1.0}, {1: 0.1})
    with pytest.raises(ValueError, match="a >= 0"):
        leontief_inoperability({(1, 2): -0.1}, {1: 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        leontief_inoperability({(1, 2): 0.1}, {1: 1.5})
    assert leontief_inoperability({}, {}).q == {}


# --- Seaside, Oregon: water pumps fed by the power network ----------------------------------


def props(name: str) -> list[dict]:
    return [f["properties"] for f in json.loads((DATA / "seaside" / name).read_text())["features"]]


@pytest.fixture(scope="module")
def seaside():
    power_arcs, power_nodes = props("power_arcs.geojson"), props("power_nodes.geojson")
    water_arcs, facilities = props("water_arcs.geojson"), props("water_nodes.geojson")
    pg = nx.Graph([(f"power:{a['fromnode']}", f"power:{a['tonode']}") for a in power_arcs])
    wg = nx.Graph([(f"water:{a['fromnode']}", f"water:{a['tonode']}") for a in water_arcs])
    substation = next(f"power:{p['nodenwid']}" for p in power_nodes if p["utilfcltyc"] == "ESSL2")
    power_of = {p["guid"]: f"power:{p['nodenwid']}" for p in power_nodes}
    # The interdependency in the data: each water facility's elec_node is the power node
    # feeding it. A pump station keeps running 4 h on its generator (an assumption of this
    # test, not in the data).
    feeds = {f"water:{f['nodenwid']}": power_of[f["elec_node"]] for f in facilities}
    deps = [(p, w, "physical", 0.0, 4.0) for w, p in feeds.items()]
    return {
        "power": SupplyNetwork("power", pg, frozenset({substation})),
        "water": SupplyNetwork("water", wg, frozenset(feeds)),
        "graph": dependency_graph(deps),
        "feeds": feeds,
        "substation": substation,
    }


def test_seaside_substation_failure_stops_every_pump_after_its_generator(seaside) -> None:
    c = propagate(
        seaside["graph"],
        [InitialFailure(seaside["substation"], "flooded", 1.2, 0.5, "m")],
        networks=[seaside["power"], seaside["water"]],
    )
    t0, t1, t6, _ = c.steps
    # All 323 power nodes hang off the one substation: out at T+0.
    assert len(t0.unserved["power"]) == 322
    # The 4 water facilities run on generators: on backup at T+1, failed by T+6 (at T+4).
    assert sorted(ids_of(t1.on_buffer)) == sorted(seaside["feeds"])
    assert t1.unserved["water"] == ()
    assert {
        s.asset_id: s.fail_at_h for s in t6.newly_failed if s.asset_id in seaside["feeds"]
    } == dict.fromkeys(seaside["feeds"], 4.0)
    # Then every other water node of the 417 is unserved.
    assert len(t6.unserved["water"]) == 413


def test_seaside_one_pole_cuts_one_pump_and_the_demand_behind_it(seaside) -> None:
    pg, wg, feeds = seaside["power"].graph, seaside["water"].graph, seaside["feeds"]
    pump = "water:352"  # the "Pump House", fed from power node 244
    # The first pole whose loss leaves exactly this pump without power (found with networkx).
    for pole in sorted(pg.nodes, key=lambda n: int(n.split(":")[1])):
        if pole == seaside["substation"]:
            continue
        h = pg.copy()
        h.remove_node(pole)
        dark = set(pg) - nx.node_connected_component(h, seaside["substation"])
        if [w for w, p in feeds.items() if p in dark] == [pump]:
            break
    else:
        pytest.fail("no pole feeds the Pump House alone")
    # Independently: the water nodes that reach no other facility once the pump is down.
    wh = wg.copy()
    wh.remove_node(pump)
    fed = set().union(*(nx.node_connected_component(wh, f) for f in feeds if f != pump))
    behind = sorted(set(wh) - fed)
    assert len(behind) == 4
    c = propagate(
        seaside["graph"],
        [InitialFailure(pole, "pole down")],
        networks=[seaside["power"], seaside["water"]],
    )
    _, t1, t6, t24 = c.steps
    assert ids_of(t1.on_buffer) == [pump]
    assert pump in ids_of(t6.newly_failed)
    assert c.fail_at_h[pump] == 4.0
    assert t1.unserved["water"] == ()
    assert sorted(t6.unserved["water"]) == behind
    assert t24.unserved["water"] == t6.unserved["water"]
    # Why is the first of them dry? pole -> (power cut-off) -> feeder -> pump -> (water cut-off).
    hops = c.explanations[behind[0]].hops
    assert c.explanations[behind[0]].initial.asset_id == pole
    assert hops[-2].to_id == pump
    assert hops[-2].link_type == "physical"
    assert hops[-2].buffer_h == 4.0
    assert hops[-1].via == "cut off from every source of water"
