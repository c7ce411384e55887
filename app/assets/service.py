"""Service functions of the asset domain (keyword-only; they flush, never commit)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets.schemas import AssetRead, LinkRead

_ASSET_SQL = text(
    """
    SELECT id, source, external_id, plate, kind, name, owner, attributes, length_m, area_m2,
           created_at, updated_at, ST_AsGeoJSON(geom, 7) AS geometry
    FROM asset WHERE id = :id
    """
)

_LINKS_SQL = text(
    """
    SELECT l.id, 'out' AS direction, l.to_asset_id AS other_asset_id, o.kind AS other_kind,
           o.name AS other_name, l.link_type, l.rule, l.distance_m
    FROM asset_link l JOIN asset o ON o.id = l.to_asset_id WHERE l.from_asset_id = :id
    UNION ALL
    SELECT l.id, 'in', l.from_asset_id, o.kind, o.name, l.link_type, l.rule, l.distance_m
    FROM asset_link l JOIN asset o ON o.id = l.from_asset_id WHERE l.to_asset_id = :id
    ORDER BY rule, distance_m NULLS LAST
    """
)


def get(*, db_session: Session, asset_id: int) -> AssetRead | None:
    """One asset as a GeoJSON feature with its links in both directions, or None."""
    row = db_session.execute(_ASSET_SQL, {"id": asset_id}).mappings().one_or_none()
    if row is None:
        return None
    props: dict[str, Any] = {
        k: row[k] for k in ("source", "external_id", "plate", "kind", "name", "owner")
    }
    props.update(
        length_m=row["length_m"],
        area_m2=row["area_m2"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
        **row["attributes"],
    )
    links = [
        LinkRead(**dict(r)) for r in db_session.execute(_LINKS_SQL, {"id": asset_id}).mappings()
    ]
    return AssetRead(
        id=row["id"], geometry=orjson.loads(row["geometry"]), properties=props, links=links
    )
