"""Real OGC API Features clients against /ogc served by uvicorn on a local port.

OWSLib (``owslib.ogcapi.features``) and GDAL's OAPIF driver (``ogrinfo``, from Debian's
gdal-bin) read the landing page, the collections and the items, following next links; the
server runs in a background thread over this module's own seeded database.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from owslib.ogcapi.features import Features

from app.scratch import serve_in_thread
from app.settings import Settings
from app.taxonomy.assets import KINDS
from tests.app.ogc.test_features import (
    EXPOSURE,
    GAS,
    HYDRANTS,
    Seeded,
    ogc_app,
    seeded,
)

__all__ = ["seeded"]  # the module-scoped fixture, imported for this module's own database


@pytest.fixture(scope="module")
def base_url(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT/ogc, served by uvicorn until the module's tests are done."""
    settings = Settings(database_url=seeded.url, data_dir=tmp_path_factory.mktemp("clients"))
    with serve_in_thread(ogc_app(settings)) as base:
        yield f"{base}/ogc"


# -- OWSLib ----------------------------------------------------------------------------------


def test_owslib_lists_collections_and_reads_items(base_url: str, seeded: Seeded) -> None:
    api = Features(base_url, timeout=20)
    conformance = api.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert api.feature_collections() == [*KINDS, "exposure", "impact_zones"]
    assert api.collection("gas_pipe")["title"] == "Gas main"
    assert "install_year" in api.collection_queryables("gas_pipe")["properties"]

    page = api.collection_items("gas_pipe", limit=3)
    assert page["numberReturned"] == 3
    assert page["numberMatched"] == len(GAS)
    assert any(link["rel"] == "next" for link in page["links"])

    inside = api.collection_items("hydrant", bbox=[117.19, 31.84, 117.23, 31.86], limit=10)
    expected = [h for h in HYDRANTS if 117.19 <= h.geom.x <= 117.23]
    assert {f["id"] for f in inside["features"]} == seeded.ids_of(expected)

    exposure = api.collection_items("exposure", limit=100)
    assert {f["id"] for f in exposure["features"]} == seeded.ids_of(EXPOSURE)

    one = api.collection_item("gas_pipe", str(seeded.id_of(GAS[0])))
    assert one["properties"]["name"] == "Gas A"


def test_owslib_passes_cql2_filters(base_url: str, seeded: Seeded) -> None:
    api = Features(base_url, timeout=20)
    body = api.collection_items("gas_pipe", filter="diameter_mm > 500", limit=100)
    assert {f["id"] for f in body["features"]} == seeded.ids_of(
        [r for r in GAS if r.attributes["diameter_mm"] > 500]
    )


# -- GDAL ogrinfo ----------------------------------------------------------------------------


def ogrinfo(*args: str) -> str:
    if shutil.which("ogrinfo") is None:
        pytest.fail(
            "ogrinfo not found: install GDAL's command-line tools (apt-get install gdal-bin)",
            pytrace=False,
        )
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "20", "CPL_DEBUG": "ON", "GDAL_HTTP_MAX_RETRY": "0"}
    result = subprocess.run(
        ["ogrinfo", "-ro", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_ogrinfo_lists_every_collection_with_its_count(base_url: str) -> None:
    out = ogrinfo("-al", "-so", f"OAPIF:{base_url}")
    layers = re.findall(r"^Layer name: (\S+)$", out, flags=re.MULTILINE)
    assert layers == [*KINDS, "exposure", "impact_zones"]
    counts = dict(
        re.findall(r"^Layer name: (\S+)$.*?^Feature Count: (\d+)$", out, flags=re.M | re.S)
    )
    assert counts["gas_pipe"] == str(len(GAS))
    assert counts["hydrant"] == str(len(HYDRANTS))
    assert counts["exposure"] == str(len(EXPOSURE))
    assert counts["heating_pipe"] == "0"
    assert counts["impact_zones"] == "0"  # no incidents in this database


def test_ogrinfo_pages_through_every_feature(base_url: str, seeded: Seeded) -> None:
    # PAGE_SIZE=2 forces six requests for twelve pipes, each following the previous next link.
    out = ogrinfo("-oo", "PAGE_SIZE=2", f"OAPIF:{base_url}", "gas_pipe")
    fetched = re.findall(r"Fetch\((\S+/collections/gas_pipe/items\S*)\)", out)
    assert any("offset=10" in url for url in fetched), fetched
    features = [int(fid) for fid in re.findall(r"^OGRFeature\(gas_pipe\):(\d+)$", out, re.M)]
    assert sorted(features) == sorted(seeded.ids_of(GAS))
    assert "install_year (Integer) = 1975" in out
    assert "name (String) = O'Brien Rd" in out


def test_ogrinfo_spatial_filter_reaches_the_server(base_url: str, seeded: Seeded) -> None:
    out = ogrinfo(
        "-oo", "PAGE_SIZE=2", "-spat", "117.215", "31.79", "117.255", "31.82",
        f"OAPIF:{base_url}", "gas_pipe",
    )  # fmt: skip
    assert re.search(r"Fetch\(\S+bbox=117\.215", out)
    features = {int(fid) for fid in re.findall(r"^OGRFeature\(gas_pipe\):(\d+)$", out, re.M)}
    assert features == seeded.ids_of([r for r in GAS if 117.215 <= r.geom.bounds[0] <= 117.255])
