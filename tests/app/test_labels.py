"""The Chinese names cover the whole vocabulary the commanders' screens show."""

from __future__ import annotations

from app.impact.params import SCENARIOS
from app.taxonomy.assets import KINDS
from app.taxonomy.labels import KIND_ZH, SCENARIO_ZH


def test_every_asset_kind_has_a_chinese_name() -> None:
    assert sorted(set(KINDS) - set(KIND_ZH)) == []


def test_every_scenario_has_a_chinese_name() -> None:
    assert sorted(set(SCENARIOS) - set(SCENARIO_ZH)) == []
