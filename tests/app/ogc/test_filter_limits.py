"""A CQL2 filter's nesting depth is a setting (CITYRISK_MAX_CQL_DEPTH): deeper is a 400 that
names it, in both encodings, and the deepest filter allowed is translated, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import LimitSettings, Settings

ITEMS = "/ogc/collections/gas_pipe/items"


def app_client(settings: Settings, headers: dict[str, str] | None = None) -> TestClient:
    """A TestClient over ``settings`` (the one place this module builds one)."""
    return TestClient(create_app(settings), headers=headers or {})


def nots_text(n: int) -> str:
    return "NOT (" * n + "name = 'a'" + ")" * n


def nots_json(n: int) -> str:
    node: object = {"op": "=", "args": [{"property": "name"}, "a"]}
    for _ in range(n):
        node = {"op": "not", "args": [node]}
    return json.dumps(node)  # orjson.dumps stops at 255 levels


@pytest.fixture
def shallow(settings: Settings) -> Iterator[TestClient]:
    limits = LimitSettings(cql_depth=5)
    with app_client(settings.model_copy(update={"limits": limits})) as client:
        yield client


def test_the_depth_is_the_setting(shallow: TestClient) -> None:
    assert shallow.get(ITEMS, params={"filter": nots_text(4)}).status_code == 200
    too_deep = shallow.get(ITEMS, params={"filter": nots_text(6)})
    assert too_deep.status_code == 400
    assert "deeper than 5 levels (CITYRISK_MAX_CQL_DEPTH)" in too_deep.json()["description"]
    as_json = shallow.get(ITEMS, params={"filter": nots_json(6), "filter-lang": "cql2-json"})
    assert as_json.status_code == 400
    assert "CITYRISK_MAX_CQL_DEPTH" in as_json.json()["description"]


def test_the_deepest_setting_allowed_is_translated(settings: Settings) -> None:
    field = LimitSettings.model_fields["cql_depth"]
    limits = LimitSettings(cql_depth=next(m.le for m in field.metadata if hasattr(m, "le")))
    deepest = limits.cql_depth
    with app_client(settings.model_copy(update={"limits": limits})) as client:
        text = client.get(ITEMS + "?filter=" + quote(nots_text(deepest - 2)))
        json = client.get(
            ITEMS, params={"filter": nots_json(deepest - 2), "filter-lang": "cql2-json"}
        )
    assert (text.status_code, json.status_code) == (200, 200), (text.text, json.text)
