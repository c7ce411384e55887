"""Dependencies from a file (``cityrisk links import``) and the default supply rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets import links
from tests import factories as f

HEADER = "from_external_id,to_external_id,link_type,delay_h,buffer_h,note\n"


@pytest.fixture
def plant(session: Session) -> dict[str, int]:
    return {
        "sub": f.asset(session, "substation", f.point(11.0, 46.0), external_id="sub-7"),
        "pump": f.asset(session, "pump_station", f.point(11.001, 46.0), external_id="pump-3"),
        "hosp": f.asset(session, "hospital", f.point(11.002, 46.0), external_id="hosp-1"),
    }


def rows(session: Session, ids: list[int]) -> list[tuple[int, int, str, str, float, float]]:
    return [
        tuple(r)
        for r in session.execute(
            text(
                "SELECT from_asset_id, to_asset_id, link_type, rule, delay_h, buffer_h "
                "FROM asset_link WHERE to_asset_id = ANY(:ids) AND rule = 'imported' "
                "ORDER BY to_asset_id"
            ),
            {"ids": ids},
        ).all()
    ]


def test_import_is_all_or_none_and_idempotent(
    session: Session, plant: dict[str, int], tmp_path: Path
) -> None:
    good = tmp_path / "deps.csv"
    good.write_text(
        HEADER + "sub-7,pump-3,physical,0,0,feeder 12\nsub-7,hosp-1,physical,0,24,generator\n"
    )
    report = links.import_links(session, good)
    assert (report.rows_read, report.inserted, report.rejected) == (2, 2, [])
    assert rows(session, [plant["pump"], plant["hosp"]]) == [
        (plant["sub"], plant["pump"], "physical", "imported", 0.0, 0.0),
        (plant["sub"], plant["hosp"], "physical", "imported", 0.0, 24.0),
    ]
    again = links.import_links(session, good)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER
        + "sub-7,pump-3,physical,0,6,longer backup\n"  # would update
        + "sub-7,nope,physical,0,0,\n"
        + "sub-7,sub-7,physical,0,0,\n"
        + "sub-7,hosp-1,electric,0,0,\n"
        + "sub-7,hosp-1,physical,-1,0,\n"
    )
    refused = links.import_links(session, bad)
    assert not refused.written
    assert [(r.row, r.reason.split(";")[0]) for r in refused.rejected] == [
        (2, "to_external_id matches no asset"),
        (3, "from and to are the same asset"),
        (4, "link_type must be one of physical, cyber, geographic, logical"),
        (5, "delay_h must be a number of hours >= 0"),
    ]
    assert rows(session, [plant["pump"]])[0][5] == 0.0  # nothing written
    partial = links.import_links(session, bad, partial=True)
    assert (partial.written, partial.updated) == (True, 1)
    assert rows(session, [plant["pump"]])[0][5] == 6.0


def test_a_file_without_the_required_columns_is_refused(tmp_path: Path, session: Session) -> None:
    path = tmp_path / "x.csv"
    path.write_text("from,to\na,b\n")
    with pytest.raises(Exception, match="lacks the column"):
        links.import_links(session, path)


def test_rebuild_keeps_imported_links_and_derives_nearest_supplies(
    session: Session, plant: dict[str, int], tmp_path: Path
) -> None:
    path = tmp_path / "deps.csv"
    path.write_text(HEADER + "sub-7,pump-3,physical,0.5,2,\n")
    links.import_links(session, path)
    far = f.asset(session, "substation", f.point(11.2, 46.0))  # ~15 km: never the nearest
    links.rebuild(session)
    assert rows(session, [plant["pump"]]) == [
        (plant["sub"], plant["pump"], "physical", "imported", 0.5, 2.0)
    ]
    derived = session.execute(
        text(
            "SELECT from_asset_id, rule, buffer_h FROM asset_link "
            "WHERE to_asset_id = :h AND rule LIKE 'nearest_%'"
        ),
        {"h": plant["hosp"]},
    ).all()
    assert [tuple(d) for d in derived] == [
        (plant["sub"], "nearest_substation_feeds_hospital", 24.0)
    ]
    assert far not in {d[0] for d in derived}
