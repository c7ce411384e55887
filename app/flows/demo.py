"""The demo city: Cambridge, MA (see data/demo/PROVENANCE.md), loaded idempotently.

Assets, derived links, sensors, then a full risk refresh: the demo opens on a coloured risk
map, whatever was loaded before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyogrio
from sqlalchemy.orm import Session

from app.assets import links
from app.assets.importer import ImportOptions, ImportReport, import_file
from app.assets.links import LinkImportReport
from app.errors import InvalidInput, NotFound
from app.risk import refresh
from app.risk.refresh import RefreshReport
from app.sensors.registry import SensorImportReport, import_sensors
from app.settings import project_root

BUILD_SENSORS = "data/demo/build_sensors.py"


def demo_path() -> Path:
    return project_root() / "data" / "demo" / "cambridge.gpkg"


def demo_sensors_path() -> Path:
    return project_root() / "data" / "demo" / "sensors.geojson"


def demo_dependencies_path() -> Path:
    return project_root() / "data" / "demo" / "dependencies.csv"


@dataclass(frozen=True)
class DemoReport:
    """What loading the demo did: each layer's import, links made per rule, the sensors, the
    risk refresh."""

    layers: list[ImportReport]
    links: dict[str, int]
    sensors: SensorImportReport | None
    risk: RefreshReport
    dependencies: LinkImportReport | None = None


def load(session: Session, path: Path | None = None, sensors: Path | None = None) -> DemoReport:
    """Import every layer, rebuild the derived links, import the demo's dependencies and
    sensors, score.

    All in the caller's transaction. Each feature carries its own ``source`` (``cambridge_gis``
    or ``derived``), so loading again updates nothing. The dependencies no geometry shows
    (``data/demo/dependencies.csv``, derived, built with the GeoPackage) are imported after the
    derived links (``links rebuild`` keeps imported links). Sensors come after the assets
    because they are bound to them (explicitly or to the nearest compatible asset).

    Parameters
    ----------
    session : Session
        Where to write; flushed, never committed.
    path : Path, optional
        The demo GeoPackage (default ``data/demo/cambridge.gpkg``).
    sensors : Path, optional
        The sensors to import (built by ``data/demo/build_sensors.py``). Default: the demo's
        ``data/demo/sensors.geojson`` with the default ``path``; none (``None`` in the result)
        with a custom ``path``, whose assets the demo sensors would not fit.

    Returns
    -------
    DemoReport
    """
    if path is None:
        path, sensors = demo_path(), sensors or demo_sensors_path()
    if not path.exists():
        raise NotFound(f"demo data not found at {path}; rebuild it with data/demo/build.py")
    reports = [
        import_file(session, path, ImportOptions(kind=str(layer), layer=str(layer)))
        for layer, _ in pyogrio.list_layers(path)
    ]
    made = links.rebuild(session)
    deps: LinkImportReport | None = None
    if path == demo_path() and demo_dependencies_path().exists():
        deps = links.import_links(session, demo_dependencies_path())
        if not deps.written:
            first = "; ".join(f"row {r.row}: {r.reason}" for r in deps.rejected[:3])
            raise InvalidInput(f"demo dependencies rejected ({len(deps.rejected)}): {first}")
    report: SensorImportReport | None = None
    if sensors is not None:
        if not sensors.exists():
            raise NotFound(f"demo sensors not found at {sensors}; build them with {BUILD_SENSORS}")
        report = import_sensors(session, sensors)
        if not report.written:
            # The file is ours: a rejected row is a bug in build_sensors.py, not a user error.
            first = "; ".join(f"{r.external_id}: {r.reason}" for r in report.rejected[:3])
            raise InvalidInput(f"demo sensors rejected ({len(report.rejected)}): {first}")
    return DemoReport(reports, made, report, refresh.refresh_all(session), deps)
