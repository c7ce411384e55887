"""All configuration: typed pydantic-settings classes, read from the environment or `.env`.

One style throughout: cityrisk's own variables carry the ``CITYRISK_`` prefix (``CITYRISK_TILE_``
for the tiles), and only the conventional names without it — ``DATABASE_URL``,
``DATABASE_MIGRATE_URL``, ``MQTT_URL``, ``HOST``, ``PORT`` — are aliases. One class per concern
(:class:`TileSettings`, :class:`MapSettings`), each a field of :class:`Settings`, so
``create_app(settings)`` receives everything in one object.

Nothing here is instantiated at import time: call :func:`get_settings` (cached) or build
``Settings(...)`` explicitly — tests do the latter to point an app at a throwaway database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

import orjson
from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


Port = Annotated[int, Field(ge=1, le=65535)]

#: What a browser sends as ``Origin``: ``scheme://host[:port]``, or ``null`` (a file from disk).
_ORIGIN = re.compile(r"(?:https?://[^/\s?#]+|null)")


class TileSettings(BaseSettings):
    """Limits and cache of the tile endpoints (``CITYRISK_TILE_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_TILE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    max_features: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most raw features per layer per tile."
    )
    statement_timeout_ms: int = Field(
        default=5_000, ge=50, le=600_000, description="SET LOCAL statement_timeout per tile."
    )
    cache_mb: float = Field(
        default=64, ge=0, le=65_536, description="In-process tile cache size (0: no cache)."
    )
    buffer: int = Field(default=64, ge=0, le=1024, description="MVT buffer in tile units.")
    pool_size: int = Field(
        default=4, ge=1, le=64, description="Most database connections the tile routes hold."
    )
    pool_timeout_s: float = Field(
        default=10, gt=0, le=600, description="Longest wait for a free tile connection."
    )
    freshness: Literal["notify", "strict"] = Field(
        default="notify",
        description=(
            "How a tile request learns the data versions. notify: kept in memory and dropped "
            "by NOTIFY at every versioned commit (no database round trip on a cache hit); "
            "strict: read per request, shared by requests arriving together."
        ),
    )


class LimitSettings(BaseSettings):
    """What one request may make the service consume (``CITYRISK_MAX_*``); beyond it, a 4xx.

    Each default says why it is that number. Every limit is enforced before the work it bounds
    (a body while it streams in, a zip from its directory, a file from its feature count), so
    a refusal costs almost nothing.
    """

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_MAX_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        le=1 << 40,
        description="Request body of any route without its own limit below (rules, processes, "
        "refresh): the largest legitimate one, the default rule pack as YAML, is 6.6 KB.",
    )
    readings_body_bytes: int = Field(
        default=16 << 20,
        ge=1024,
        le=1 << 40,
        description="Body of POST /readings: 100,000 readings (max readings) as NDJSON are "
        "7.6 MB, as CSV 4.3 MB (measured on the reading example), with room for optional fields.",
    )
    upload_bytes: int = Field(
        default=256 << 20,
        ge=1024,
        le=1 << 40,
        description="Body of a file import (POST /assets/import, /sensors/import); spooled to "
        "disk, not memory. 45x the demo city's GeoPackage (5.6 MB, 21,000 features).",
    )
    uncompressed_bytes: int = Field(
        default=1 << 30,
        ge=1024,
        le=1 << 42,
        description="An imported file once unzipped (the sum of a zip's members as its "
        "directory declares them, checked before anything is read; else the file's size).",
    )
    zip_members: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Members of an imported zip: a Shapefile is at most 16 sidecar files "
        "(.shp .shx .dbf .prj .cpg .sbn .sbx .qix .fbn .fbx .ain .aih .atx .ixs .mxs .xml).",
    )
    import_features: int = Field(
        default=500_000,
        ge=1,
        le=100_000_000,
        description="Features per import: 500,000 points import in 21 s at +400 MB peak RSS "
        "(measured, a GeoPackage), so a few imports at once fit a 4 GB server.",
    )
    vertices: int = Field(
        default=100_000,
        ge=2,
        le=100_000_000,
        description="Vertices of one imported geometry: the demo city's largest (a FEMA flood "
        "zone) has 18,166; a 100,000-vertex zig-zag main takes the risk refresh 11.7 s "
        "(measured), within the statement timeout.",
    )
    rule_area_vertices: int = Field(
        default=2_000,
        ge=4,
        le=10_000_000,
        description="Vertices of a rule's area_wkt, tested against the sensors of every batch: "
        "measured over 2,000 sensors, 2,000 vertices cost 6 ms a batch, 10,000 23 ms, 200,000 "
        "738 ms; the demo city's admin areas have at most 1,439.",
    )
    readings: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Readings per batch (HTTP or MQTT): a 100,000-reading batch ingests in "
        "~0.45 s (225,000 readings/s, README benchmarks); 20,000 sensors at one reading a "
        "minute send 333 a second.",
    )
    reading_age_days: int = Field(
        default=400,
        ge=0,
        le=36_500,
        description="Oldest reading (days before now) POST /readings and MQTT accept; 0: no "
        "limit. A reading older than 400 days (a year and a month) from a live feed is a device "
        "replaying the wrong archive or a clock reset to its epoch, and would raise alarms on a "
        "past that was judged long ago. History is loaded by `cityrisk readings backfill` or "
        "`POST /readings?backfill=true`, which take no limit.",
    )
    rejected_listed: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="Rejected rows an error report lists (the rest are counted): 100,000 listed "
        "rejections made a 239 MB answer rendered on the event loop (12 s stall).",
    )
    cql_depth: int = Field(
        default=100,
        ge=1,
        le=250,
        description="Nesting depth of a CQL2 filter (not, functions, brackets; a chain of "
        "and/or is one level): Python's recursion limit is 1,000 frames and the translation "
        "takes one to three per level.",
    )
    statement_s: float = Field(
        default=60,
        gt=0,
        le=86_400,
        description="statement_timeout of every query an HTTP request runs (the tiles have "
        "their own): a whole 100,000-asset refresh is ~1.8 s of database time.",
    )

    @property
    def reading_age(self) -> timedelta | None:
        """:attr:`reading_age_days` as the ingest takes it: None for no limit."""
        return timedelta(days=self.reading_age_days) if self.reading_age_days else None


class MapSettings(BaseSettings):
    """The map page (``CITYRISK_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    node_modules: Path = Field(
        default_factory=lambda: project_root() / "node_modules",
        description="Where `npm ci` put the map page's pinned JS/CSS packages (a packaged copy "
        "may live elsewhere).",
    )


class AuthSettings(BaseSettings):
    """Who may do what (``CITYRISK_AUTH_*``): tokens, open reads, JWTs, rate limits."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_AUTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    open_reads: bool = Field(
        default=True,
        description="Reads (the map, tiles, alarms, OGC API, what-if impacts) need no token. "
        "False: every read needs a viewer token or better. Writes always need a token.",
    )
    cache_s: float = Field(
        default=5,
        ge=0,
        le=300,
        description="How long a checked API key is trusted in memory before it is looked up "
        "again (a revocation reaches other workers within this time; 0: every request). At "
        "5 s a tile client costs one indexed lookup per 5 s instead of one per tile.",
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="PEM public key (or a path to one) that signs the identity provider's JWTs "
        "(RS256/ES256). Unset with jwt_jwks_url unset: JWTs are not accepted.",
    )
    jwt_jwks_url: str | None = Field(
        default=None,
        description="The identity provider's JWKS URL (OIDC `jwks_uri`), instead of a key.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of a JWT.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of a JWT.")
    jwt_roles_claim: str = Field(
        default="roles",
        description="The claim holding the user's roles (a list or one string; Keycloak puts "
        "realm roles in `realm_access.roles`: a dotted path is followed).",
    )
    jwt_name_claim: str = Field(
        default="preferred_username",
        description="The claim naming the user in audit rows (`jwt:<name>`); `sub` if absent.",
    )
    ingest_per_s: float = Field(
        default=50,
        ge=0,
        description="Reading batches per second one token may post (burst: 2 s worth; 0: no "
        "limit). A gateway posting a batch a second is far below it; 429 with Retry-After above.",
    )
    expensive_per_min: float = Field(
        default=30,
        ge=0,
        description="Expensive operations (risk refresh, imports, impacts, process executions) "
        "per minute per token, or per client address without one (burst: 10; 0: no limit). A "
        "demo-city risk refresh takes ~1 s of a core, an import seconds.",
    )


class ReliabilitySettings(BaseSettings):
    """Outages and bad input (``CITYRISK_*``): what a 503 and a 422 tell the client."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    retry_after_s: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="`Retry-After` (seconds) of every 503 the database's absence causes. A small "
        "cluster answers again 0.21-0.23 s after `pg_ctl start` (3 runs of "
        "tests/app/test_outage.py), but a real server's crash recovery or failover takes "
        "seconds to tens of seconds: 5 s lets a restart pass within a retry or two without "
        "clients hammering a server that is away for longer.",
    )
    yaml_max_depth: int = Field(
        default=32,  # app.alarms.rules.YAML_MAX_DEPTH
        ge=4,
        le=1000,
        description="Deepest nesting of a rules YAML document (mappings and lists). A rule is "
        "6 levels deep at most; PyYAML recurses per level, and ~500 levels exhaust Python's "
        "stack (a 500 before this limit existed).",
    )
    error_input_max_chars: int = Field(
        default=200,
        ge=16,
        le=1_000_000,
        description="Longest `input` a validation error (422) echoes back; longer ones are cut "
        "and end with '… (N more)'. Without a cap a 10 MB field came back whole in the 422.",
    )


class EventSettings(BaseSettings):
    """Alarms grouped into suspected events (``CITYRISK_EVENT_*``; :mod:`app.events`)."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_EVENT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    window_s: float = Field(
        default=3600.0,  # gis.events.WINDOW_S
        gt=0,
        le=7 * 86_400,
        description="Largest gap in data time between the onsets (opened_ts) of two linked "
        "alarms [s]. A burst's transient reaches a DMA's sensors within seconds, but alarms "
        "follow the detectors' delay: a CUSUM needs ~10 readings for a 1-sigma shift "
        "(Montgomery, Introduction to SQC, Table 9.3), 10 x 5-min readings = 50 min.",
    )
    distance_m: float = Field(
        default=500.0,  # gis.events.DISTANCE_M
        gt=0,
        le=50_000,
        description="Largest straight-line distance between two linked alarms [m]: pressure "
        "loggers of a DMA are a few hundred metres apart, so the sensors one leak moves are "
        "neighbours at that scale.",
    )
    network_max_m: float = Field(
        default=1000.0,
        gt=0,
        le=100_000,
        description="Largest distance along the pipes between two linked alarms on the same "
        "network [m], when both sensors sit on it: sensors 100 m apart on mains that meet "
        "2 km away are hydraulically apart. 2 x distance_m: on a street grid the path along "
        "the mains is at most sqrt(2) x the straight line, plus the service offsets.",
    )
    min_sensors: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Distinct sensors a group needs to become an event: one sensor's alarm is "
        "an alarm; 'several sensors moved together' is what makes a place suspect.",
    )
    scale_m: float = Field(
        default=100.0,  # gis.events.SCALE_M
        gt=0,
        le=10_000,
        description="Distance at which the localisation's sensitivity kernel "
        "1 / (1 + d / scale_m) halves [m], of the order of the sensor spacing.",
    )
    top: int = Field(
        default=3, ge=1, le=50, description="Top candidates whose hull makes the event's area."
    )
    area_buffer_m: float = Field(
        default=50.0,  # gis.events.AREA_BUFFER_M
        gt=0,
        le=5_000,
        description="Buffer around the top candidates' hull for the area on the map [m].",
    )
    candidates: int = Field(
        default=10, ge=1, le=1000, description="Ranked candidates stored per event."
    )
    attach_m: float = Field(
        default=30.0,
        gt=0,
        le=1000,
        description="Largest offset of a sensor from a pipe for it to count as on the network "
        "[m]: loggers sit on hydrants and valve chambers a few metres to tens of metres from "
        "the main.",
    )
    baseline_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86_400,
        description="Readings before an alarm's onset whose median is where the sensor was "
        "[s]; how far its peak moved from there (relative) weighs it in the localisation.",
    )

    @model_validator(mode="after")
    def _network_reaches_the_distance(self) -> EventSettings:
        if self.network_max_m < self.distance_m:
            raise ValueError(
                f"network_max_m was {self.network_max_m:g} m, below distance_m "
                f"{self.distance_m:g} m; expected >= distance_m (a path along the pipes is "
                "never shorter than the straight line)"
            )
        return self


class Settings(BaseSettings):
    """cityrisk's settings: ``CITYRISK_<FIELD>``, or the conventional name where aliased."""

    model_config = SettingsConfigDict(
        env_prefix="CITYRISK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,  # a rejected DATABASE_URL may carry a password
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL URL of a database with PostGIS >= 3.1. Unset: the project-local "
        "cluster under .data/pg (started by `cityrisk db up`), as its unprivileged service role.",
    )
    database_migrate_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_MIGRATE_URL", "database_migrate_url"),
        description="PostgreSQL URL `cityrisk migrate` uses: a role that may CREATE EXTENSION "
        "(a superuser, or the database's owner once PostGIS exists). Unset: DATABASE_URL, else "
        "the local cluster's superuser. Objects are created as the database's owner.",
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST", "host"))
    port: Port = Field(default=8000, validation_alias=AliasChoices("PORT", "port"))
    data_dir: Path = Field(
        default_factory=lambda: project_root() / ".data",
        description="Where the project-local PostGIS cluster and its credentials live.",
    )
    pg_port: Port = Field(
        default=55432,
        description="TCP port of the project-local PostGIS cluster (127.0.0.1 only).",
    )
    db_connect_timeout_s: int = Field(
        default=5,
        ge=1,
        le=120,
    )
    mqtt_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MQTT_URL", "mqtt_url"),
        description="MQTT broker for live readings; unset: the local Mosquitto (`cityrisk mq up`).",
    )
    mqtt_port: Port = Field(
        default=51883,
        description="TCP port of the project-local Mosquitto (127.0.0.1 only).",
    )
    mqtt_consumer: bool = Field(
        default=True,
        description="`cityrisk serve` consumes readings from MQTT (when MQTT_URL is set or the "
        "local broker is up).",
    )
    mqtt_client_id: str = Field(
        default="cityrisk-ingest",
        min_length=1,
        max_length=64,
        description="Client id of the reading consumer: the broker keeps its persistent session.",
    )

    offline_check_s: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="How often `cityrisk serve` checks for silent sensors (0: never).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to read the API from a browser (CORS), a JSON list such as "
        '`["null", "http://wall.intranet"]` (`"null"`: a page opened from disk), or `*` for any. '
        "Empty (the default): no CORS headers at all.",
    )
    tiles: TileSettings = Field(default_factory=TileSettings)
    maps: MapSettings = Field(default_factory=MapSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    events: EventSettings = Field(default_factory=EventSettings)

    @field_validator("database_url", "database_migrate_url", mode="before")
    @classmethod
    def _normalise_database_url(cls, value: object, info: ValidationInfo) -> str | None:
        """Accept the usual spellings and always drive PostgreSQL through psycopg 3."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return normalise_database_url(str(value), name=(info.field_name or "database_url").upper())

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _check_mqtt_url(cls, value: object) -> str | None:
        """Refuse an unusable MQTT_URL at start-up, as DATABASE_URL is (empty means unset)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        parse_mqtt_url(str(value))
        return str(value).strip()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_cors_origins(cls, value: object) -> list[str]:
        """A JSON list of origins, or ``*``; each origin as browsers send it (no path, no ``/``)."""
        if value is None:
            return []
        if isinstance(value, str):
            raw = value.strip()
            if not raw:
                return []
            if raw == "*":
                return ["*"]
            try:
                value = orjson.loads(raw)
            except ValueError:
                raise ValueError(
                    "CITYRISK_CORS_ORIGINS must be a JSON list of origins, e.g. "
                    '["null", "http://wall.intranet"], or * for any origin'
                ) from None
        if not isinstance(value, list | tuple) or not all(isinstance(o, str) for o in value):
            raise ValueError("CITYRISK_CORS_ORIGINS must be a JSON list of strings, or *")
        origins: list[str] = []
        for item in value:
            origin = item.strip().rstrip("/")  # browsers never send the trailing slash
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CITYRISK_CORS_ORIGINS: {item!r} is not an origin; expected "
                    "scheme://host[:port] (no path), null (a file opened from disk) or *"
                )
            if origin not in origins:
                origins.append(origin)
        return origins

    @property
    def uses_local_cluster(self) -> bool:
        """True when no DATABASE_URL was given and the project-local cluster is used."""
        return self.database_url is None


class ConfigError(ValueError):
    """A setting is present but unusable; the message is meant for the user as is."""


def normalise_database_url(raw: str, *, name: str = "DATABASE_URL") -> str:
    """Return ``raw`` as a ``postgresql+psycopg://`` URL, or raise :class:`ConfigError`.

    ``name``: the setting ``raw`` came from, for the messages.

    >>> normalise_database_url("postgres://u:p@localhost:5432/city")
    'postgresql+psycopg://u:p@localhost:5432/city'
    """
    raw = raw.strip()
    try:
        url: URL = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        if isinstance(exc, ValueError):  # make_url parses the port with int()
            raise ConfigError(f"{name} {_redact(raw)!r} has a port that is not a number") from None
        raise ConfigError(
            f"{name} {_redact(raw)!r} is not a URL; expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{name} scheme {url.drivername!r} is not PostgreSQL; expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        )
    if not url.database:
        raise ConfigError(f"{name} {_redact(raw)!r} names no database (the /DBNAME part)")
    port = url.port
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{name} port {port} is out of range 1-65535")
    url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class BrokerAddress:
    """Where an MQTT broker listens and how to log in, parsed from ``mqtt://`` / ``mqtts://``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        """The URL without its password, for messages."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse an MQTT URL; raise :class:`ConfigError` with the reason when it is unusable.

    ``mqtt://`` is plain TCP (default port 1883), ``mqtts://`` is TLS (default port 8883).

    >>> parse_mqtt_url("mqtt://u:p@broker.example:1884")
    BrokerAddress(host='broker.example', port=1884, tls=False, username='u', password='p')
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"MQTT_URL {url!r} has a port that is not a number 1-65535") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(
            f"MQTT_URL scheme {parts.scheme!r} is not supported; expected "
            "mqtt://[USER:PASSWORD@]HOST[:PORT] or mqtts://…"
        )
    if not parts.hostname:
        raise ConfigError("MQTT_URL names no host; expected mqtt://[USER:PASSWORD@]HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _redact(raw: str) -> str:
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "…@" + raw.split("@")[-1] if "@" in raw else raw


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
