"""A real browser loads the map page: Debian's headless Chromium, driven by Playwright.

Playwright only drives the system ``/usr/bin/chromium`` (``make test`` installs it with apt);
its own browser download is never used. The server is uvicorn on a free port over a database
of this module's own: a few gas mains, hydrants, an admin area, a sensor and an open alarm,
with risk scores refreshed so that hexagons and the heatmap have data.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import migrations
from app.db import create_db_engine
from app.main import create_app
from app.maps.service import map_page
from app.risk import refresh as risk
from app.scratch import scratch_database, serve_in_thread
from app.settings import Settings
from layers.maps import render_page
from layers.registry import default_registry
from tests import factories as f

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAYERS = "admin_area,gas_pipe,hydrant,risk_cells_composite,risk_heat,alarms"


def seed(url: str) -> None:
    """A small district of Cambridge, MA, committed."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            for i in range(8):  # a grid of gas mains, E-W and N-S
                y, x = 42.360 + 0.003 * i, -71.120 + 0.005 * i
                for ext, wkt in (
                    (f"gas-ew-{i}", f"LINESTRING(-71.120 {y:.3f}, -71.085 {y:.3f})"),
                    (f"gas-ns-{i}", f"LINESTRING({x:.3f} 42.360, {x:.3f} 42.381)"),
                ):
                    f.asset(
                        conn,
                        "gas_pipe",
                        wkt,
                        source="map-test",
                        external_id=ext,
                        name=ext,
                        material="cast_iron",
                        install_year=1950,
                        diameter_mm=300,
                        pressure_class="medium",
                    )
            for i in range(6):
                f.asset(
                    conn,
                    "hydrant",
                    f"POINT({-71.118 + 0.006 * i:.3f} 42.371)",
                    source="map-test",
                    external_id=f"hy-{i}",
                    name=f"H{i}",
                )
            f.asset(
                conn,
                "admin_area",
                "POLYGON((-71.125 42.355, -71.08 42.355, -71.08 42.385, "
                "-71.125 42.385, -71.125 42.355))",
                source="map-test",
                external_id="area-1",
                name="District",
            )
            rule = f.rule(conn, thresholds={"1": 50}, code="map-ch4")
            sensor_id = f.sensor(conn, lon=-71.1, lat=42.37, external_id="map-s1")
            f.alarm(
                conn,
                rule,
                level=1,
                sensor_id=sensor_id,
                lon=None,
                lat=None,
                title="Methane 62 %LEL",
                event=False,
            )
        with Session(engine) as session, session.begin():
            risk.refresh_all(session)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seeded(server_url: str, admin_url: str) -> Iterator[str]:
    """The URL of this module's own database, migrated and seeded."""
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        seed(url)
        yield url


def map_settings(url: str, data_dir: Path, cors_origins: list[str] | None = None) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        mqtt_consumer=False,
        offline_check_s=0,
        cors_origins=cors_origins or [],
    )


@pytest.fixture(scope="module")
def server(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT: the whole app under uvicorn, on a seeded database of its own."""
    with serve_in_thread(create_app(map_settings(seeded, tmp_path_factory.mktemp("map")))) as base:
        yield base


@pytest.fixture(scope="module")
def cors_server(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same app and data with ``CITYRISK_CORS_ORIGINS=["null"]``: for a file from disk."""
    settings = map_settings(seeded, tmp_path_factory.mktemp("map-cors"), ["null"])
    with serve_in_thread(create_app(settings)) as base:
        yield base


@dataclass
class Visit:
    console: list[str] = field(default_factory=list)  # errors and warnings the page logged
    failed: list[str] = field(default_factory=list)  # requests that never got an answer
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, status)
    bad: list[str] = field(default_factory=list)  # answers >= 400
    popup: str = ""


def kind_of(url: str) -> str:
    path = url.split("//", 1)[-1].split("/", 1)[-1]
    return path.split("/", 1)[0].split("?", 1)[0]


def watch(page: Any, visit: Visit) -> None:
    """Record into ``visit`` what ``page`` logs, which requests fail and how they are answered."""

    def on_console(m: object) -> None:
        kind, msg = m.type, m.text  # type: ignore[attr-defined]
        # Chromium's performance hint about leaflet.heat's canvas is not a fault.
        if kind in ("error", "warning") and "willReadFrequently" not in msg:
            visit.console.append(f"{kind}: {msg}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: visit.console.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: visit.failed.append(f"{r.url}: {r.failure}"))

    def on_response(r: object) -> None:
        status, url = r.status, r.url  # type: ignore[attr-defined]
        visit.statuses[(kind_of(url), status)] += 1
        if status >= 400:
            visit.bad.append(f"{status} {url}")

    page.on("response", on_response)


def inspect_gas_main(page: Any, visit: Visit) -> None:
    """Click-to-inspect: a click on a gas main (gas-ew-3 at 42.369 N) asks OGC items?bbox=
    and fills a popup, whose text goes to ``visit.popup``."""
    x, y = page.evaluate(
        "() => { const m = window[Object.keys(window).find(k => k.startsWith('map_'))];"
        " const p = m.latLngToContainerPoint([42.369, -71.1025]); return [p.x, p.y]; }"
    )
    page.mouse.click(x, y)
    page.wait_for_selector(".cr-inspect, .leaflet-popup-content", timeout=10_000)
    page.wait_for_function(
        "() => !document.querySelector('.leaflet-popup-content')"
        ".textContent.includes('Looking up')",
        timeout=10_000,
    )
    visit.popup = page.inner_text(".leaflet-popup-content")


@pytest.mark.slow
def test_chromium_loads_the_map_without_errors(server: str, tmp_path: Path) -> None:
    from playwright import sync_api as playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: `make test` installs it (apt-get install chromium)")
    visit = Visit()
    shot = tmp_path / "map.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            watch(page, visit)
            page.goto(f"{server}/map?layers={LAYERS}", wait_until="networkidle")
            # Two alarm polls (every 5 s), so the live layer has refreshed at least once.
            page.wait_for_timeout(6000)
            page.screenshot(path=str(shot))
            inspect_gas_main(page, visit)
            page.screenshot(path=str(tmp_path / "map-inspect.png"))
        finally:
            browser.close()
    print(f"\nmap screenshot: {shot}")  # kept out of git: pytest's tmp dir only

    assert visit.console == [], visit.console
    assert visit.failed == [], visit.failed
    assert visit.bad == [], visit.bad
    tiles_ok = visit.statuses[("tiles", 200)] + visit.statuses[("tiles", 304)]
    assert tiles_ok >= 4, visit.statuses
    assert visit.statuses[("static", 200)] >= 5, visit.statuses
    assert visit.statuses[("alarms", 200)] >= 2, visit.statuses  # polled, not loaded once
    assert "gas-ew-3" in visit.popup, visit.popup
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_standalone_file_works_from_disk(seeded: str, cors_server: str, tmp_path: Path) -> None:
    """`cityrisk map --out` against a server with CITYRISK_CORS_ORIGINS=["null"], opened from
    file://: scripts, tiles, alarm polls and the click lookup all come from the server."""
    from playwright import sync_api as playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: `make test` installs it (apt-get install chromium)")
    engine = create_db_engine(seeded, pool_size=1)  # what `cityrisk map --out` does
    try:
        standalone = map_page(engine, default_registry(), LAYERS, base_url=cors_server)
    finally:
        engine.dispose()
    html_file = tmp_path / "risk.html"
    html_file.write_text(render_page(standalone), encoding="utf-8")
    visit = Visit()
    shot = tmp_path / "map-file.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            watch(page, visit)
            page.goto(html_file.as_uri(), wait_until="networkidle")
            page.wait_for_timeout(6000)  # two alarm polls
            page.screenshot(path=str(shot))
            inspect_gas_main(page, visit)
        finally:
            browser.close()
    print(f"\nstandalone map screenshot: {shot}")

    assert visit.console == [], visit.console  # a CORS refusal is logged as an error
    assert visit.failed == [], visit.failed
    assert visit.bad == [], visit.bad
    assert visit.statuses[("tiles", 200)] >= 4, visit.statuses
    assert visit.statuses[("static", 200)] >= 5, visit.statuses
    assert visit.statuses[("alarms", 200)] >= 2, visit.statuses
    assert "gas-ew-3" in visit.popup, visit.popup
    assert shot.stat().st_size > 10_000
