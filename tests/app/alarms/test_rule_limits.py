"""A rule's area is bounded in vertices; a rules YAML may not use aliases.

A 200,000-vertex ``area_wkt`` made every CH4 batch take 8 s instead of 0.05 s: the area is
tested against the sensors of every batch the rule judges.
"""

from __future__ import annotations

import itertools
import math

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.alarms import rules
from app.alarms.rules import RuleSpec
from app.errors import InvalidInput

LON, LAT = -71.1097, 42.3736


def circle_wkt(vertices: int) -> str:
    ring = [
        (
            LON + 0.01 * math.cos(2 * math.pi * i / vertices),
            LAT + 0.01 * math.sin(2 * math.pi * i / vertices),
        )
        for i in range(vertices)
    ]
    ring.append(ring[0])
    return "POLYGON((" + ",".join(f"{x:.7f} {y:.7f}" for x, y in ring) + "))"


def rule(area_wkt: str) -> dict[str, object]:
    return {
        "code": "ch4.area",
        "title": "CH4 in the district",
        "indicator": "ch4_pct_lel",
        "thresholds": {1: 50, 2: 25, 3: 10, 4: 5},
        "target": {"area_wkt": area_wkt},
    }


def test_an_area_over_the_vertex_limit_is_refused(session: Session) -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.save(session, RuleSpec(**rule(circle_wkt(1_500))), actor="t", max_area_vertices=1_000)  # type: ignore[arg-type]
    assert refused.value.message == (
        "rule 'ch4.area': target.area_wkt has 1,501 vertices; the limit is 1,000 "
        "(CITYRISK_MAX_RULE_AREA_VERTICES): simplify the outline"
    )
    stored = rules.save(session, RuleSpec(**rule(circle_wkt(500))), actor="t")  # type: ignore[arg-type]
    assert stored.version == 1


def test_the_api_answers_422_for_a_big_area_or_no_polygon(client: TestClient) -> None:
    big = client.post("/rules", json=rule(circle_wkt(5_000)))
    assert big.status_code == 422, big.text
    assert "5,001 vertices" in big.json()["detail"]
    line = client.post("/rules", json=rule("LINESTRING(0 0, 1 1)"))
    assert line.status_code == 422
    assert "LineString" in line.json()["detail"]
    yaml_body = (
        "rules:\n- code: ch4.area\n  title: t\n  indicator: ch4_pct_lel\n"
        f"  thresholds: {{1: 50}}\n  target:\n    area_wkt: '{circle_wkt(5_000)}'\n"
    )
    imported = client.post(
        "/rules/import", content=yaml_body.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert imported.status_code == 422, imported.text
    assert "CITYRISK_MAX_RULE_AREA_VERTICES" in imported.json()["detail"]


def test_a_rules_yaml_with_aliases_is_refused() -> None:
    # Nine levels of nine aliases: 9**9 = 387 million leaves from 300 bytes.
    letters = "abcdefghi"
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for prev, name in itertools.pairwise(letters):
        laughs += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    laughs += "rules: *i\n"
    with pytest.raises(InvalidInput, match="aliases"):
        rules.parse_yaml(laughs)
