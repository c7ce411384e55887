"""Every collection the OGC API serves: the asset catalog's, then the impact zones.

The collections themselves are defined by their domains (:mod:`app.assets.catalog`,
:mod:`app.impact.catalog`); this module only puts them in one order and refuses a clash of ids
at import time.
"""

from __future__ import annotations

from app.assets.catalog import COLLECTIONS as ASSET_COLLECTIONS
from app.assets.catalog import Collection
from app.errors import NotFound
from app.impact.catalog import COLLECTIONS as IMPACT_COLLECTIONS


def _merge(*catalogs: dict[str, Collection]) -> dict[str, Collection]:
    out: dict[str, Collection] = {}
    for catalog in catalogs:
        for collection_id, collection in catalog.items():
            if collection_id in out:
                raise ValueError(f"collection id {collection_id!r} is defined twice")
            out[collection_id] = collection
    return out


#: Every collection by id: asset kinds in taxonomy order, exposure, then impact_zones.
COLLECTIONS: dict[str, Collection] = _merge(ASSET_COLLECTIONS, IMPACT_COLLECTIONS)


def get_collection(collection_id: str) -> Collection:
    """The collection ``collection_id``; :class:`NotFound` (404) if there is none."""
    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise NotFound(
            f"no collection {collection_id!r}; see /ogc/collections for the "
            f"{len(COLLECTIONS)} collections"
        ) from None
