"""Suspected events on the map page in a real browser (Debian's headless Chromium through
Playwright, as tests/app/maps/test_browser.py): the burst on the hand-made water grid is drawn
as an area; its popup lists the member alarms and the top candidate pipes; its button runs the
burst impact of the top main in the impact panel. Screenshots go to /tmp/shots/events-*.png
(``CITYRISK_SHOTS`` to change)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import migrations
from app.db import create_db_engine
from app.events import service
from app.main import create_app
from app.scratch import scratch_database, serve_in_thread
from app.settings import EventSettings
from tests.app.events import city as c
from tests.app.maps.test_browser import CHROMIUM, CHROMIUM_ARGS, Visit, map_settings, watch
from tests.app.maps.test_impact_browser import SHOTS, click_latlng

LAYERS = "water_pipe,alarms,suspected_events"


@pytest.fixture(scope="module")
def grid_db(server_url: str, admin_url: str) -> Iterator[tuple[str, c.City, list[int], int]]:
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        engine = create_db_engine(url)
        try:
            with Session(engine) as s, s.begin():
                city = c.build(s, 117.28, 31.86)
                ids = c.burst(s, city)
                event_id = service.update_for_alarms(s, ids, settings=EventSettings()).opened[0]
        finally:
            engine.dispose()
        yield url, city, ids, event_id


@pytest.fixture(scope="module")
def server(
    grid_db: tuple[str, c.City, list[int], int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = map_settings(grid_db[0], tmp_path_factory.mktemp("events-map"))
    with serve_in_thread(create_app(settings)) as base:
        yield base


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"events-{name}.png"
    page.screenshot(path=str(path))
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


@pytest.mark.slow
def test_the_event_area_its_popup_and_its_burst_impact(
    server: str, grid_db: tuple[str, c.City, list[int], int], tmp_path: Path
) -> None:
    from playwright import sync_api as playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: `make test` installs it (apt-get install chromium)")
    _, city, ids, event_id = grid_db
    visit = Visit()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            watch(page, visit)
            page.goto(f"{server}/map?layers={LAYERS}", wait_until="networkidle")
            page.wait_for_selector("path.cr-event-area", timeout=15_000)
            assert page.locator("path.cr-event-area").count() == 1
            page.evaluate(
                "([lat, lon]) => { const m = window[Object.keys(window)"
                ".find(k => k.startsWith('map_'))]; m.setView([lat, lon], 16); }",
                list(reversed(city.ll(300, 200))),
            )
            page.wait_for_timeout(800)
            shot(page, tmp_path, "area")

            # The area's popup: the member alarms and the top candidate pipes (GET /events/{id}).
            click_latlng(page, *city.ll(300, 160))  # inside the area, off the alarm markers
            page.wait_for_selector(".cr-event-pop", timeout=10_000)
            popup = page.inner_text(".cr-event-pop")
            assert f"疑似事件 Suspected event {event_id}" in popup, popup
            for alarm_id in ids:
                assert f"报警 alarm {alarm_id}" in popup, popup
            assert f"1. water_pipe {city.target}" in popup, popup
            page.wait_for_timeout(400)  # the popup's fade-in
            shot(page, tmp_path, "popup")

            # Its button: the burst of the top main, in the impact panel.
            page.click(f"[data-cr-burst='{city.target}']")
            page.wait_for_selector(".cr-impact .cr-zone", timeout=30_000)
            doc = page.evaluate("() => window.crImpact.current()")
            assert doc["call"]["scenario"] == "water_main_burst"
            assert doc["call"]["asset_id"] == city.target
            assert "供水管爆管" in page.inner_text("#cr-impact")
            shot(page, tmp_path, "burst")
        finally:
            browser.close()
    assert not visit.console, visit.console
    assert not visit.failed, visit.failed
    assert not visit.bad, visit.bad
