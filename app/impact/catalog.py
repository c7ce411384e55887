"""The stored impact zones as a feature collection (OGC API Features, the ``impact_zones`` layer).

One feature per row of ``incident_zone`` (a threshold ring, a protective-action square, an
isolated segment …), joined to its ``incident`` for the status and the data time. The
collection is data, like the asset catalog: :mod:`app.ogc` serves it and :mod:`layers.registry`
draws it, both through :meth:`~app.assets.catalog.Collection.conditions`, so the items, their
counts and the tiles agree on what a zone is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, literal
from sqlalchemy.sql.elements import ColumnElement

from app.assets.catalog import Collection, FeatureSource, JsonType, Property
from app.impact.models import Incident, IncidentZone
from app.impact.params import SCENARIOS

INCIDENT: Table = Incident.__table__  # type: ignore[assignment]
INCIDENT_ZONE: Table = IncidentZone.__table__  # type: ignore[assignment]

#: Collection id (and map layer id) of the stored impact zones.
IMPACT_ZONES_ID = "impact_zones"

INCIDENT_STATUSES = ("open", "contained", "closed")


def _utc_text(column: ColumnElement[Any]) -> ColumnElement[Any]:
    # RFC 3339 text in UTC: JSON-ready, the same in GeoJSON and MVT, and it sorts and compares
    # chronologically in filters.
    return func.to_char(func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"'))


def _prop(
    name: str,
    type_: JsonType,
    value: ColumnElement[Any],
    title: str,
    description: str = "",
    **kw: Any,
) -> Property:
    return Property(name, type_, title, description, column=name, value=value, **kw)


_PROPERTIES = (
    _prop(
        "incident_id",
        "integer",
        INCIDENT_ZONE.c.incident_id,
        "Incident",
        "the incident (GET /incidents/{id})",
    ),
    _prop("incident_title", "string", INCIDENT.c.title, "Incident title"),
    _prop(
        "status",
        "string",
        INCIDENT.c.status,
        "Incident status",
        "open, contained or closed",
        enum=INCIDENT_STATUSES,
    ),
    _prop(
        "scenario",
        "string",
        INCIDENT_ZONE.c.scenario,
        "Scenario",
        "the impact scenario that drew the zone",
        enum=tuple(SCENARIOS),
    ),
    _prop(
        "model",
        "string",
        INCIDENT_ZONE.c.model,
        "Zone model",
        "the model id, e.g. vce_tnt_kingery_bulmash",
    ),
    _prop("label", "string", INCIDENT_ZONE.c.label, "Label"),
    _prop(
        "threshold",
        "number",
        INCIDENT_ZONE.c.threshold,
        "Threshold",
        "the level the zone's edge marks, in `unit` (kPa, kW/m2, …)",
    ),
    _prop("unit", "string", INCIDENT_ZONE.c.unit, "Unit", "unit of the threshold"),
    _prop(
        "radius_m",
        "number",
        INCIDENT_ZONE.c.radius_m,
        "Radius",
        "radius of a circular zone [m]",
        unit="m",
    ),
    _prop(
        "severity",
        "integer",
        INCIDENT_ZONE.c.severity,
        "Severity",
        "1 (most severe, red) … 4 (blue), as the four-colour scales",
        minimum=1,
        maximum=4,
    ),
    _prop(
        "source", "string", INCIDENT_ZONE.c.source, "Source", "the standard or paper of the model"
    ),
    _prop(
        "data_at",
        "string",
        _utc_text(INCIDENT.c.data_at),
        "Data time",
        "the data time the zone was computed for (RFC 3339, UTC)",
    ),
    _prop(
        "computed_at",
        "string",
        _utc_text(INCIDENT.c.computed_at),
        "Computed at",
        "when the zone was computed (RFC 3339, UTC)",
    ),
)

#: ``incident_zone`` joined to its incident; ``geom`` is the zone's own, GiST-indexed column.
ZONE_SOURCE = FeatureSource(
    INCIDENT_ZONE.join(INCIDENT, INCIDENT.c.id == INCIDENT_ZONE.c.incident_id),
    INCIDENT_ZONE.c.id,
    INCIDENT_ZONE.c.geom,
    "incident_zone",
)

IMPACT_ZONES = Collection(
    id=IMPACT_ZONES_ID,
    title="Impact zones",
    description="The zones of every incident's stored impact (POST /incidents, recompute): "
    "threshold rings, protective-action areas and isolated segments, each with its model, "
    "threshold, unit, severity (1 red … 4 blue) and source, and its incident's status and data "
    "time. Filter status = 'open' for the incidents under way.",
    kinds=(),
    geometries=frozenset({"polygon"}),
    properties={p.name: p for p in _PROPERTIES},
    source=ZONE_SOURCE,
)

#: The impact domain's collections, by id.
COLLECTIONS: dict[str, Collection] = {IMPACT_ZONES.id: IMPACT_ZONES}
