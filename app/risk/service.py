"""Reads of risk scores: one asset explained, cells, areas, and the drill-down between them.

Computing scores is :mod:`app.risk.refresh`; explaining one is :mod:`app.risk.explain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.params import BBox, bbox_sql, feature, feature_collection, geometry
from app.risk.explain import asset_components, explain
from app.risk.schemas import AreaRiskRead, AssetRiskRead, CellAssetRead, CityRead
from app.taxonomy.risk import COMPOSITE, RISK_CLASSES


def get_asset_risk(*, db_session: Session, asset_id: int) -> AssetRiskRead:
    """The stored score of one asset with everything that explains it; 404 without one."""
    session = db_session
    row = (
        session.execute(
            text(
                "SELECT r.asset_id, a.kind, a.plate, a.name, r.method, r.likelihood, "
                "r.consequence, r.score, r.risk_class, r.norm, r.cell_id, r.computed_at, "
                "r.area_ids FROM risk_score r JOIN asset a ON a.id = r.asset_id "
                "WHERE r.scope = 'asset' AND r.asset_id = :id"
            ),
            {"id": asset_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        exists = session.execute(text("SELECT 1 FROM asset WHERE id = :id"), {"id": asset_id})
        if exists.first() is None:
            raise NotFound(f"asset {asset_id} not found")
        raise NotFound(
            f"asset {asset_id} has no risk score (exposure layers and network nodes are not "
            "scored, or no refresh has run: POST /risk/refresh)"
        )
    cls = int(row["risk_class"])
    _, zh, en = RISK_CLASSES[cls]
    return AssetRiskRead(
        **{k: row[k] for k in ("asset_id", "kind", "plate", "name", "method", "likelihood")},
        **{k: row[k] for k in ("consequence", "score", "norm", "cell_id", "computed_at")},
        **_class_fields(row),
        class_name=f"{zh} {en}",
        area_ids=list(row["area_ids"] or []),
        components=explain(asset_components(session, [asset_id]).get(asset_id, {})),
    )


def _class_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    cls = int(row["risk_class"])
    return {"risk_class": cls, "class_colour": RISK_CLASSES[cls][0]}


def list_cells(
    *, db_session: Session, plate: str = COMPOSITE, bbox: BBox | None = None
) -> dict[str, Any]:
    """Cell scores of a plate (or the composite) as a GeoJSON FeatureCollection."""
    session = db_session
    where = "scope = 'cell' AND plate = :plate"
    params: dict[str, Any] = {"plate": plate}
    if bbox is not None:
        where += " AND " + bbox_sql("geom", bbox)
    rows = session.execute(
        text(
            "SELECT cell_id, plate, score, norm, risk_class, likelihood, consequence, "
            f"components, ST_AsGeoJSON(geom, 7) AS geometry FROM risk_score WHERE {where} "
            "ORDER BY cell_id"
        ),
        params,
    ).mappings()
    features = [
        feature(
            r["cell_id"],
            geometry(r["geometry"]),
            {
                "cell_id": r["cell_id"],
                "plate": r["plate"],
                "score": r["score"],
                "norm": r["norm"],
                **_class_fields(r),
                **r["components"],
            },
        )
        for r in rows
    ]
    return feature_collection(features)


def list_areas(*, db_session: Session, plate: str = COMPOSITE) -> list[AreaRiskRead]:
    """Admin-area scores of a plate (or the composite), worst first."""
    rows = db_session.execute(
        text(
            "SELECT r.asset_id AS area_id, a.name, a.attributes->>'admin_level' AS admin_level, "
            "r.plate, r.score, r.norm, r.risk_class, r.components FROM risk_score r "
            "JOIN asset a ON a.id = r.asset_id WHERE r.scope = 'area' AND r.plate = :plate "
            "ORDER BY r.risk_class, r.norm DESC, r.asset_id"
        ),
        {"plate": plate},
    ).mappings()
    return [
        AreaRiskRead(
            **{k: r[k] for k in ("area_id", "name", "admin_level", "plate", "score", "norm")},
            **_class_fields(r),
            **r["components"],
        )
        for r in rows
    ]


def get_city(*, db_session: Session) -> CityRead:
    """Top of the drill-down: asset counts by class per plate, and the areas to open next."""
    rows = db_session.execute(
        text(
            "SELECT plate, risk_class, count(*) AS n, max(norm) AS max_norm FROM risk_score "
            "WHERE scope = 'asset' GROUP BY plate, risk_class ORDER BY plate, risk_class"
        )
    ).mappings()
    plates: dict[str, dict[str, Any]] = {}
    for r in rows:
        p = plates.setdefault(r["plate"], {"assets": 0, "by_class": {}, "max_norm": 0.0})
        p["assets"] += r["n"]
        p["by_class"][str(r["risk_class"])] = r["n"]
        p["max_norm"] = max(p["max_norm"], r["max_norm"] or 0.0)
    return CityRead.model_validate(
        {
            "plates": plates,
            "classes": {
                str(k): {"colour": c, "name": f"{zh} {en}"}
                for k, (c, zh, en) in RISK_CLASSES.items()
            },
            "areas": "/risk/areas",
        }
    )


def list_area_cells(*, db_session: Session, area_id: int, plate: str = COMPOSITE) -> dict[str, Any]:
    """Drill-down area → cells: the cells holding the area's scored assets (GeoJSON)."""
    ids = [
        r[0]
        for r in db_session.execute(
            text(
                "SELECT DISTINCT cell_id FROM risk_score WHERE scope = 'asset' "
                "AND area_ids @> ARRAY[CAST(:a AS bigint)]"
            ),
            {"a": area_id},
        ).all()
    ]
    wanted = set(ids)
    features = list_cells(db_session=db_session, plate=plate)["features"]
    return feature_collection(f for f in features if f["id"] in wanted)


def list_cell_assets(
    *, db_session: Session, cell_id: str, plate: str | None = None
) -> list[CellAssetRead]:
    """Drill-down cell → assets: the asset scores in one cell, worst first."""
    rows = db_session.execute(
        text(
            "SELECT r.asset_id, a.kind, a.name, r.plate, r.method, r.score, r.norm, "
            "r.risk_class FROM risk_score r JOIN asset a ON a.id = r.asset_id "
            "WHERE r.scope = 'asset' AND r.cell_id = :c AND (CAST(:p AS text) IS NULL "
            "OR r.plate = :p) ORDER BY r.risk_class, r.norm DESC, r.asset_id"
        ),
        {"c": cell_id, "p": plate},
    ).mappings()
    return [
        CellAssetRead(
            **{k: r[k] for k in ("asset_id", "kind", "name", "plate", "method", "score", "norm")},
            **_class_fields(r),
            explain=f"/assets/{r['asset_id']}/risk",
        )
        for r in rows
    ]
