"""The impact panel in a real browser, and the incident report printed to PDF.

Debian's headless Chromium driven by Playwright (as tests/app/maps/test_browser.py), against
the whole app under uvicorn on a scratch database holding the small city of
:mod:`tests.app.maps.impact_city`: a methane alarm in a manhole beside a gas main. A commander
clicks the alarm, asks for its impact, reads the panel, opens an incident; then asks "what if
a 1 t cloud explodes here", first with a bad mass (the form says which field is wrong), then a
good one; opens its report and prints it to PDF.

Screenshots go to the test's tmp dir and are copied to /tmp/shots/impact-*.png for review
(``CITYRISK_SHOTS`` to put them elsewhere).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import migrations
from app.db import create_db_engine
from app.main import create_app
from app.scratch import scratch_database, serve_in_thread
from tests import factories as f
from tests.app.maps import impact_city
from tests.app.maps.test_browser import CHROMIUM, CHROMIUM_ARGS, Visit, map_settings, watch

#: Where the screenshots and the PDF are copied for review (CITYRISK_SHOTS, default /tmp/shots).
SHOTS = Path(os.environ.get("CITYRISK_SHOTS") or Path(tempfile.gettempdir()) / "shots")
LAYERS = "gas_pipe,drainage_pipe,manhole,school,substation,hospital,alarms"
ZONES = ".leaflet-crImpactZones-pane path.cr-impact-zone"


@pytest.fixture(scope="module")
def city_db(server_url: str, admin_url: str) -> Iterator[tuple[str, impact_city.City]]:
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        engine = create_db_engine(url)
        try:
            with engine.begin() as conn:
                city = impact_city.build(conn)
        finally:
            engine.dispose()
        yield url, city


@pytest.fixture(scope="module")
def server(
    city_db: tuple[str, impact_city.City], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = map_settings(city_db[0], tmp_path_factory.mktemp("impact-map"))
    with serve_in_thread(create_app(settings)) as base:
        yield base


def shot(page: Any, tmp_path: Path, name: str, **kw: Any) -> Path:
    path = tmp_path / f"impact-{name}.png"
    page.screenshot(path=str(path), **kw)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def click_latlng(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate(
        "([lat, lon]) => { const m = window[Object.keys(window).find(k => k.startsWith('map_'))];"
        " const p = m.latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }",
        [lat, lon],
    )
    box = page.locator(".folium-map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def pdf_text(pdf: Path) -> str:
    """The PDF's text: ``pdftotext`` when poppler-utils is installed, else what the file holds
    uncompressed or in its Flate streams (the document title, link URIs, ToUnicode maps)."""
    tool = shutil.which("pdftotext")
    if tool:
        return subprocess.run(
            [tool, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout
    raw = pdf.read_bytes()
    parts = [raw.decode("latin-1")]
    # The document's title (Info /Title), written by Chromium as UTF-16BE hex.
    parts += [
        bytes.fromhex(h.decode()).decode("utf-16")
        for h in re.findall(rb"/Title\s*<([0-9A-Fa-f]+)>", raw)
    ]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.DOTALL):
        try:
            parts.append(zlib.decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(parts)


def pdf_pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))


@pytest.mark.slow
def test_commander_impact_whatif_incident_and_report(
    server: str, city_db: tuple[str, impact_city.City], tmp_path: Path
) -> None:
    from playwright import sync_api as playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: `make test` installs it (apt-get install chromium)")
    city = city_db[1]
    commander_key = f.token(city_db[0], "commander", name="张指挥")
    leak = impact_city.ll(*impact_city.LEAK_XY)
    visit = Visit()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = context.new_page()
            watch(page, visit)
            page.goto(f"{server}/map?layers={LAYERS}", wait_until="networkidle")
            page.wait_for_selector(".leaflet-overlay-pane path.leaflet-interactive")

            # 1. The alarm's popup offers its impact.
            click_latlng(page, *leak)
            page.wait_for_selector(f"[data-cr-alarm='{city.alarm}']", timeout=10_000)
            popup = page.inner_text(".leaflet-popup-content")
            assert "影响分析 Impact" in popup, popup
            page.click(f"[data-cr-alarm='{city.alarm}']")
            page.wait_for_selector(".cr-impact .cr-zone", timeout=20_000)
            alarm_doc = page.evaluate("() => window.crImpact.current().doc")
            n_zones = len(alarm_doc["zones"]["features"])
            assert n_zones == 2  # gas enters the drains (red), gas along them (orange)
            assert page.locator(ZONES).count() == n_zones
            assert page.locator(f"{ZONES}.cr-sev-1").count() == 1
            panel = page.inner_text("#cr-impact")
            assert "燃气窜入地下空间" in panel
            assert "居民 residents" in panel
            for label in ("T+0 h", "T+1 h", "T+6 h", "T+24 h"):
                assert label in panel
            assert page.locator(".cr-actions input[type=checkbox]").count() == len(
                alarm_doc["actions"]
            )
            assert "Ventilate" in panel
            assert "默认 default" in panel  # the inputs say where they come from
            page.locator(".cr-actions input[type=checkbox]").first.check()
            shot(page, tmp_path, "alarm")

            # 2. An incident from the alarm: refused without a token (saying so), then opened
            # with the commander's; the token's name is who opened it.
            page.click(".cr-open-incident")
            page.wait_for_selector(".cr-incident-out.cr-error", timeout=20_000)
            refused = page.inner_text(".cr-incident-out")
            assert "需要令牌 A token is needed" in refused, refused
            page.fill(".cr-token", commander_key)
            page.dispatch_event(".cr-token", "change")
            page.click(".cr-open-incident")
            page.wait_for_selector(".cr-incident-id", timeout=20_000)
            assert page.inner_text(".cr-by") == "张指挥"
            first_incident = int(page.inner_text(".cr-incident-id").lstrip("#"))

            # 3. What if a 1 t cloud explodes at the manhole: a bad mass first.
            page.click(".cr-whatif-toggle a")
            click_latlng(page, *leak)
            page.wait_for_selector(".cr-whatif select[name=scenario]", timeout=10_000)
            page.select_option(".cr-whatif select[name=scenario]", "vapour_cloud_explosion")
            page.fill(".cr-whatif input[name=mass_kg]", "-5")
            page.click(".cr-compute")
            page.wait_for_function(
                "() => document.querySelector('.cr-form-error').textContent.length > 0"
            )
            error = page.inner_text(".cr-form-error")
            assert "params.mass_kg" in error, error
            assert "输入有误" in error, error
            shot(page, tmp_path, "whatif-error")
            page.fill(".cr-whatif input[name=mass_kg]", "1000")
            page.click(".cr-compute")
            page.wait_for_function(
                "() => (window.crImpact.current() || {}).call &&"
                " window.crImpact.current().call.scenario === 'vapour_cloud_explosion'",
                timeout=20_000,
            )
            vce = page.evaluate("() => window.crImpact.current().doc")
            assert len(vce["zones"]["features"]) == 3  # 55.2, 24.1, 6.9 kPa
            assert page.locator(ZONES).count() == 3
            for sev in (1, 2, 3):
                assert page.locator(f"{ZONES}.cr-sev-{sev}").count() == 1
            panel = page.inner_text("#cr-impact")
            assert "蒸气云爆炸" in panel
            assert "第一中学 No.1 Middle School" in panel
            assert "城东变电站 East substation" in panel
            assert "二号泵站 Pump station 2" in panel  # fails at +1 h: no power
            assert "市第二医院 No.2 Hospital" in panel  # on its buffer until +6 h
            # The explanation chains name the assets, not their ids.
            assert "城东变电站 East substation failed at T+0" in panel
            assert "请求 request" in panel  # mass_kg came from the form
            page.wait_for_selector(".cr-whatif-popup", state="detached")
            shot(page, tmp_path, "whatif")
            page.locator("#cr-impact").screenshot(path=str(tmp_path / "impact-panel.png"))
            shutil.copy(tmp_path / "impact-panel.png", SHOTS / "impact-panel.png")

            # 4. An incident from the what-if, and its report printed to PDF.
            page.click(".cr-open-incident")
            page.wait_for_selector(".cr-incident-id", timeout=20_000)
            incident = int(page.inner_text(".cr-incident-id").lstrip("#"))
            assert incident > first_incident
            with context.expect_page() as opened:
                page.click(".cr-report")
            report = opened.value
            watch(report, visit)
            report.wait_for_load_state("networkidle")
            assert f"#{incident}" in report.inner_text("h1")
            text = report.inner_text("body")
            assert "张指挥" in text
            assert "T+6 h" in text
            assert "城东变电站 East substation failed at T+0" in text
            assert report.locator("svg.zone-map path.zone").count() == 3
            report.set_viewport_size({"width": 900, "height": 1000})
            shot(report, tmp_path, "report", full_page=True)
            pdf = tmp_path / "impact-report.pdf"
            report.pdf(path=str(pdf), format="A4", print_background=True)
            shutil.copy(pdf, SHOTS / pdf.name)
        finally:
            browser.close()

    # Chromium logs the 401 of the incident without a token and the 422 of the bad mass as
    # failed resources; nothing else may be logged.
    logged = [c for c in visit.console if not re.search("status of (401|422)", c)]
    assert logged == [], visit.console
    assert visit.failed == [], visit.failed
    # The only answers >= 400: the incident without a token, the bad mass.
    assert [b.split(" ", 1)[0] for b in visit.bad] == ["401", "422"], visit.bad
    assert pdf.stat().st_size > 10_000
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert pdf_pages(pdf) >= 1
    text = pdf_text(pdf)
    assert f"Incident report #{incident}" in text
    assert f"/incidents/{incident}" in text  # the header's link, kept as a URI in the PDF


def test_report_of_an_unknown_incident_is_404(client: TestClient) -> None:
    response = client.get("/incidents/987654321/report")
    assert response.status_code == 404
    assert "987654321" in response.json()["detail"]
    assert client.get("/incidents/0/report").status_code == 422
