"""Assets in: import a file, then refresh the risk scores so they are current at commit.

A new or changed asset changes its own score and its neighbours' (a school inside a gas
main's impact radius raises the main's consequence; a flood zone raises the likelihood of what
lies in it), so an import that wrote anything ends with a full refresh in the same transaction:
readers see the old scores and the old assets, or the new ones, never a mix. A 100,000-asset
refresh takes ~1.8 s of database time (``bench/risk.py``), small beside an import.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions, ImportReport, Progress, import_file
from app.risk import refresh
from app.risk.refresh import RefreshReport
from app.settings import LimitSettings


def import_assets(
    session: Session,
    path: Path,
    options: ImportOptions,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    limits: LimitSettings | None = None,
) -> ImportReport:
    """:func:`app.assets.importer.import_file`, then rescore if it changed any asset.

    ``dry_run``: check and count only (the caller rolls back); nothing is rescored. Flushes.
    """
    report = import_file(session, path, options, progress=progress, limits=limits)
    if report.written and not dry_run and (report.inserted or report.updated):
        report.notes.append(rescore_note(refresh.refresh_all(session)))
    return report


def rescore_note(done: RefreshReport) -> str:
    """What a refresh after an import did, as a line of the import report."""
    return (
        f"risk scores refreshed: {done.assets} assets, {done.cells} cells, {done.areas} areas "
        f"in {done.total_s:.1f} s"
    )
