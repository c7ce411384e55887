"""Imports every domain's tables so ``Base.metadata`` is complete (for Alembic and tests)."""

from app.alarms.models import Alarm, AlarmEvent, Rule
from app.assets.models import Asset, AssetLink
from app.auth.models import ApiToken, AuditEvent
from app.db import Base
from app.events.models import SuspectedEvent, SuspectedEventAlarm
from app.impact.models import Incident, IncidentZone
from app.risk.models import RiskScore
from app.sensors.models import LatestReading, MobileReading, Reading, Sensor
from app.tiles.models import DataVersion

__all__ = [
    "Alarm",
    "AlarmEvent",
    "ApiToken",
    "Asset",
    "AssetLink",
    "AuditEvent",
    "Base",
    "DataVersion",
    "Incident",
    "IncidentZone",
    "LatestReading",
    "MobileReading",
    "Reading",
    "RiskScore",
    "Rule",
    "Sensor",
    "SuspectedEvent",
    "SuspectedEventAlarm",
]
