"""HTTP routes of the asset domain: taxonomy, file import, one asset with its links."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from app.api.openapi import report_or_error
from app.assets import service
from app.assets.importer import ImportOptions, parse_field_map
from app.assets.schemas import AssetRead, ImportReportRead, KindRead, TaxonomyRead
from app.auth.dependencies import AssetImporter
from app.auth.service import audit_as
from app.db import DbSession
from app.errors import InvalidInput, NotFound
from app.flows import assets as asset_flows
from app.limits import listed_rejections
from app.taxonomy.assets import KINDS, PLATE_TITLES, TAXONOMY_VERSION
from gis.hygiene import POINT_LINE_MAX_M

router = APIRouter(prefix="/assets", tags=["assets"])

SUFFIXES = (".geojson", ".json", ".gpkg", ".zip", ".csv")
AssetId = Annotated[int, PathParam(gt=0, lt=2**63, description="Asset id")]


@router.get("/kinds", response_model=TaxonomyRead)
def list_kinds() -> TaxonomyRead:
    """The asset taxonomy: plates, kinds, geometry families and expected attributes."""
    kinds = [
        KindRead(
            id=k.id,
            plate=k.plate,
            title=k.title,
            geometries=sorted(k.geometries),
            attributes=[
                {**a.__dict__, "choices": list(a.choices) if a.choices else None}
                for a in k.attributes
            ],
            description=k.description,
        )
        for k in KINDS.values()
    ]
    return TaxonomyRead(version=TAXONOMY_VERSION, plates=PLATE_TITLES, kinds=kinds)


@router.post(
    "/import",
    response_model=ImportReportRead,
    responses=report_or_error({"$ref": "#/components/schemas/ImportReportRead"}),
)
def import_assets(
    request: Request,
    db_session: DbSession,
    who: AssetImporter,
    file: Annotated[UploadFile, File(description="GeoJSON, GeoPackage, zipped Shapefile or CSV")],
    kind: Annotated[str, Form(description="Asset kind, see GET /assets/kinds")],
    layer: Annotated[str | None, Form()] = None,
    plate: Annotated[str | None, Form()] = None,
    crs: Annotated[str | None, Form(description="EPSG:n, CGCS2000, gcj02, bd09")] = None,
    id_field: Annotated[str | None, Form()] = None,
    map: Annotated[list[str] | None, Form(description="FILE_FIELD=ASSET_FIELD")] = None,
    source: Annotated[str | None, Form()] = None,
    partial: Annotated[bool, Form()] = False,
    encoding: Annotated[
        str | None, Form(max_length=40, description="CSV/Shapefile text encoding (gb18030, …)")
    ] = None,
    max_point_line_m: Annotated[
        float,
        Form(
            gt=0,
            le=10_000,
            description="a point kind takes a line shorter than this (m) as its midpoint",
        ),
    ] = POINT_LINE_MAX_M,
    dry_run: Annotated[bool, Form()] = False,
) -> JSONResponse:
    """Import a GIS file as assets of one kind: all rows or none (``partial`` keeps the good)."""
    name = Path(file.filename or "upload").name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(
            f"cannot tell the format of {name!r}: use one of {', '.join(SUFFIXES)} as its ending"
        )
    options = ImportOptions(
        kind=kind,
        layer=layer or None,
        plate=plate or None,
        crs=crs or None,
        id_field=id_field or None,
        field_map=parse_field_map([m for m in map or [] if m]),
        source=source or None,
        partial=partial,
        encoding=encoding or None,
        max_point_line_m=max_point_line_m,
    )
    with tempfile.TemporaryDirectory(prefix="cityrisk-import-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1 << 20)
        report = asset_flows.import_assets(
            db_session, path, options, dry_run=dry_run, limits=request.app.state.settings.limits
        )
    if dry_run or not report.written:
        db_session.rollback()
    else:
        counts = {k: v for k, v in report.to_dict().items() if isinstance(v, int | str | bool)}
        audit_as(db_session, who, "assets.import", name, {**counts, "kind": kind})
        db_session.commit()  # acknowledged means committed: commit before answering
        report.committed = True
    listed = listed_rejections(report.to_dict(), request.app.state.settings.limits)
    body = ImportReportRead(**listed).model_dump()
    status = 200 if report.committed or (dry_run and report.written) else 422
    return JSONResponse(status_code=status, content=body)


@router.get("/{asset_id}", response_model=AssetRead)
def get_asset(db_session: DbSession, asset_id: AssetId) -> AssetRead:
    """One asset as a GeoJSON feature, with its coupling links in both directions."""
    asset = service.get(db_session=db_session, asset_id=asset_id)
    if asset is None:
        raise NotFound(f"no asset with id {asset_id}")
    return asset
