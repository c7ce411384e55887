"""The demo city: Cambridge, MA (see data/demo/PROVENANCE.md), loaded idempotently."""

from __future__ import annotations

from pathlib import Path

import pyogrio
from sqlalchemy.orm import Session

from app.assets import links
from app.assets.importer import ImportOptions, ImportReport, import_file
from app.errors import NotFound
from app.settings import project_root


def demo_path() -> Path:
    return project_root() / "data" / "demo" / "cambridge.gpkg"


def load(session: Session, path: Path | None = None) -> tuple[list[ImportReport], dict[str, int]]:
    """Import every layer (named by its kind) and rebuild the derived links, in one transaction.

    Each feature carries its own ``source`` (``cambridge_gis`` or ``derived``), so loading
    again updates nothing.
    """
    path = path or demo_path()
    if not path.exists():
        raise NotFound(f"demo data not found at {path}; rebuild it with data/demo/build.py")
    reports = [
        import_file(session, path, ImportOptions(kind=str(layer), layer=str(layer)))
        for layer, _ in pyogrio.list_layers(path)
    ]
    return reports, links.rebuild(session)
