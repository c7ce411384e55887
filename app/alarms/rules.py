"""Warning rules as data: a validated spec, versioned storage, YAML import, the default pack.

A rule names an indicator and how its readings become a graded alarm (levels I–IV: 1 red,
2 orange, 3 yellow, 4 blue). Kinds:

- ``threshold`` — the value (or value ÷ an asset's design limit, ``relative_to``) crosses level
  thresholds in ``direction``; ``persistence_n`` consecutive readings and/or a ``hold_s`` hold
  time must agree before raising; ``hysteresis`` keeps an alarm until the value is that far
  back; optional ``confirm`` (k sensors of the same asset agree within a window → an alarm on the
  asset) and ``context`` (a condition on what is nearby that sets the cause and may lower the
  level, e.g. CH₄ in a manhole with or without a gas main within 10 m).
- ``rate`` — the change over ``window_s`` seconds (rise for ``above``, drop for ``below``).
- ``baseline`` — the relative change against the same time ``lag_s`` earlier (e.g. last week).
- ``offline`` — the sensor has been silent longer than its interval × ``factor``.
- ``flatline`` — the last ``n`` readings are identical (a stuck device).
- ``spike`` — one step between consecutive readings larger than physically possible.
- ``residual`` — the robust z-score of the reading against the sensor's learned profile
  (``cityrisk rules calibrate``: median and MAD × 1.4826 per time-of-day × day-type bin);
  thresholds in σ, signed by ``direction`` (``below``: a drop).
- ``cusum`` — a one-sided CUSUM (Page 1954) of those z-scores: ``W = max(0, W + z − k)``
  (``below``: ``−z − k``), thresholds are decision intervals ``h`` in σ; its state is kept
  per sensor between batches (``detector_state``).

``persistence_n``, ``hold_s`` and ``hysteresis`` apply to every graded kind (threshold, rate,
baseline, residual; a CUSUM takes hysteresis only, as it accumulates the evidence itself): the
condition must hold for the last ``persistence_n`` readings and for ``hold_s`` seconds of data
time before it raises, and an open alarm is kept until the metric is ``hysteresis`` back.
Residual and CUSUM metrics are divided by the per-sensor scale ``calibrate`` learned (so that
the calibration window, times ``margin``, would not have raised the lowest level): the
thresholds are learned from normal data, not tuned on the evaluation.

Editing a rule makes a new version; older versions stay, so every alarm names the exact
version (the ``rule`` row) that raised it.
"""

from __future__ import annotations

import itertools
import re
from importlib import resources
from typing import Any, ClassVar, Literal

import orjson
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.params import Text
from app.settings import LimitSettings
from app.taxonomy.assets import KINDS
from app.taxonomy.indicators import INDICATORS

Level = Literal[1, 2, 3, 4]
RuleKind = Literal[
    "threshold", "rate", "baseline", "offline", "flatline", "spike", "residual", "cusum"
]
#: Kinds whose metric is graded against thresholds (larger is worse except threshold-below).
GRADED_KINDS = ("threshold", "rate", "baseline", "spike", "residual", "cusum")
#: Kinds on which persistence, hold and hysteresis make sense (a spike is one step).
HELD_KINDS = ("threshold", "rate", "baseline", "residual")
#: Kinds judged against a learned profile (``sensor_profile``).
PROFILE_KINDS = ("residual", "cusum")
CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
ANY_INDICATOR = "*"


class Target(BaseModel):
    """Which sensors a rule applies to, besides its indicator."""

    model_config = ConfigDict(extra="forbid")

    asset_kinds: list[str] | None = None
    asset_ids: list[int] | None = None
    area_wkt: str | None = Field(None, description="Polygon in EPSG:4326 (WKT)")
    exclude_indicators: list[str] | None = None

    @field_validator("asset_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str] | None) -> list[str] | None:
        unknown = sorted(set(kinds or []) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown asset kinds {unknown}")
        return kinds


class Confirm(BaseModel):
    """k-of-n confirmation: at least ``k`` sensors of the same asset beyond the lowest
    threshold within ``window_s``; the alarm is then raised on the asset."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(ge=2, le=100)
    window_s: int = Field(300, gt=0, le=86_400)


class Context(BaseModel):
    """A condition on what is near the sensor: sets the cause, and lowers the level if unmet."""

    model_config = ConfigDict(extra="forbid")

    near_kinds: list[str]
    within_m: float = Field(gt=0, le=10_000)
    cause_if_near: str
    cause_otherwise: str
    levels_lower_otherwise: int = Field(1, ge=0, le=3)


class RuleSpec(BaseModel):
    """A rule as written by a user (YAML, the API) — validated before it is stored."""

    model_config = ConfigDict(extra="forbid")

    code: str
    title: Text
    kind: RuleKind = "threshold"
    indicator: str
    direction: Literal["above", "below"] = "above"
    thresholds: dict[Level, float] = Field(default_factory=dict)
    target: Target = Field(default_factory=Target)
    hysteresis: float = Field(0.0, ge=0)
    persistence_n: int = Field(1, ge=1, le=100)
    hold_s: int = Field(0, ge=0, le=86_400)
    relative_to: Text | None = Field(None, description="Asset attribute holding a design limit")
    confirm: Confirm | None = None
    context: Context | None = None
    window_s: int | None = Field(None, gt=0, le=7 * 86_400, description="rate: Δ over this")
    lag_s: int | None = Field(None, gt=0, le=366 * 86_400, description="baseline: compare to")
    factor: float | None = Field(None, gt=1, le=1000, description="offline: × interval_s")
    n: int | None = Field(None, ge=3, le=10_000, description="flatline: identical readings")
    level: Level = Field(4, description="level of data-quality alarms (offline/flatline/spike)")
    k: float | None = Field(
        None, gt=0, le=10, description="cusum: reference value in σ (default 0.5: a 1σ shift)"
    )
    margin: float = Field(
        1.2,
        ge=1,
        le=10,
        description="residual/cusum: learned scale = max(1, margin × calibration max ÷ the "
        "lowest level's threshold)",
    )
    peers: Literal["zone"] | None = Field(
        None,
        description="residual/cusum: subtract the median z of the sensors of the same zone "
        "(sensor or asset attribute `zone`, else `dma`; one zone if none) at the same time "
        "step: a city-wide swing cancels, a local drop stands out",
    )
    peer_step_s: int = Field(300, gt=0, le=3600, description="peers: time step they share")
    flatline_alpha: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="flatline: with a calibrated sensor, n is raised until a run of identical "
        "readings that long has probability below this (p_repeat ** (n - 1) < alpha)",
    )
    is_enabled: bool = True
    source: Text | None = Field(None, description="Where the numbers come from")

    @field_validator("code")
    @classmethod
    def _slug(cls, code: str) -> str:
        if not CODE.match(code):
            raise ValueError("code must be 2-64 chars of a-z, 0-9, '_', '.', '-'")
        return code

    @field_validator("thresholds", mode="before")
    @classmethod
    def _level_keys(cls, value: Any) -> Any:
        """JSON object keys are strings: accept "1".."4" and the roman "I".."IV"."""
        if not isinstance(value, dict):
            return value
        roman = {"I": 1, "II": 2, "III": 3, "IV": 4}
        out = {}
        for key, threshold in value.items():
            text_key = str(key).strip().upper()
            out[roman.get(text_key, int(text_key) if text_key.isdigit() else key)] = threshold
        return out

    @field_validator("indicator")
    @classmethod
    def _known_indicator(cls, indicator: str) -> str:
        if indicator != ANY_INDICATOR and indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {indicator!r}")
        return indicator

    @model_validator(mode="after")
    def _coherent(self) -> RuleSpec:
        graded = self.kind in GRADED_KINDS
        if graded and not self.thresholds:
            raise ValueError(f"a {self.kind} rule needs thresholds for at least one level")
        ordered = [self.thresholds[lv] for lv in sorted(self.thresholds, reverse=True)]
        rising = all(a <= b for a, b in itertools.pairwise(ordered))
        falling = all(a >= b for a, b in itertools.pairwise(ordered))
        if self.kind in ("rate", "baseline", "spike", "residual", "cusum") and not rising:
            raise ValueError(f"{self.kind} thresholds must not decrease from level IV to level I")
        if self.kind == "threshold" and self.direction == "above" and not rising:
            raise ValueError("'above' thresholds must not decrease from level IV to level I")
        if self.kind == "threshold" and self.direction == "below" and not falling:
            raise ValueError("'below' thresholds must not increase from level IV to level I")
        held = {"persistence_n": self.persistence_n > 1, "hysteresis": self.hysteresis > 0}
        held["hold_s"] = self.hold_s > 0
        misplaced = [name for name, is_set in held.items() if is_set]
        if self.kind == "cusum":
            # the statistic accumulates the evidence itself (its decision interval is the
            # persistence), and its past values are state, not readings to look back at
            misplaced = [m for m in misplaced if m != "hysteresis"]
        if self.kind not in HELD_KINDS and misplaced:
            raise ValueError(
                f"{', '.join(misplaced)} apply to {', '.join(HELD_KINDS)} rules, not {self.kind}"
            )
        if self.peers is not None and self.kind not in PROFILE_KINDS:
            raise ValueError(f"peers apply to residual and cusum rules, not {self.kind}")
        if self.kind == "rate" and self.window_s is None:
            raise ValueError("a rate rule needs window_s")
        if self.kind == "baseline" and self.lag_s is None:
            raise ValueError("a baseline rule needs lag_s")
        if self.kind == "offline" and self.factor is None:
            raise ValueError("an offline rule needs factor")
        if self.kind == "flatline" and self.n is None:
            raise ValueError("a flatline rule needs n")
        if self.indicator == ANY_INDICATOR and self.kind not in ("offline", "flatline"):
            raise ValueError("indicator '*' is only for offline and flatline rules")
        return self

    # -- storage mapping ------------------------------------------------------------------------
    CONDITION_FIELDS: ClassVar[tuple[str, ...]] = (
        "hysteresis", "persistence_n", "hold_s", "relative_to", "confirm", "context",
        "window_s", "lag_s", "factor", "n", "level", "source", "k", "margin",
        "flatline_alpha", "peers", "peer_step_s",
    )  # fmt: skip

    def conditions(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(self.CONDITION_FIELDS), exclude_none=True)


class StoredRule(BaseModel):
    """A stored rule version."""

    id: int
    version: int
    is_current: bool
    spec: RuleSpec


def _row_to_rule(row: Any) -> StoredRule:
    spec = RuleSpec(
        code=row.code,
        title=row.title,
        kind=row.kind,
        indicator=row.indicator,
        direction=row.direction,
        thresholds={int(k): v for k, v in row.thresholds.items()},
        target=row.target or {},
        is_enabled=row.is_enabled,
        **(row.conditions or {}),
    )
    return StoredRule(id=row.id, version=row.version, is_current=row.is_current, spec=spec)


_SELECT = (
    "SELECT id, code, version, title, kind, indicator, direction, thresholds, target, "
    "conditions, is_enabled, is_current FROM rule"
)


def current_rules(session: Session, *, enabled_only: bool = False) -> list[StoredRule]:
    where = " WHERE is_current" + (" AND is_enabled" if enabled_only else "")
    return [_row_to_rule(r) for r in session.execute(text(_SELECT + where + " ORDER BY code"))]


def versions(session: Session, code: str) -> list[StoredRule]:
    rows = session.execute(text(_SELECT + " WHERE code = :c ORDER BY version"), {"c": code})
    found = [_row_to_rule(r) for r in rows]
    if not found:
        raise NotFound(f"no rule with code {code!r}")
    return found


#: Vertices of a rule's ``area_wkt`` unless told (the default of
#: ``CITYRISK_MAX_RULE_AREA_VERTICES``, read from the class: no environment at import).
MAX_AREA_VERTICES: int = LimitSettings.model_fields["rule_area_vertices"].default


def check_area(spec: RuleSpec, *, max_vertices: int = MAX_AREA_VERTICES) -> None:
    """Refuse an ``area_wkt`` that is no polygon or has more than ``max_vertices`` vertices.

    The area is tested against the sensors of every batch the rule judges: 200,000 vertices
    made a CH4 batch take 8 s instead of 0.05 s.
    """
    wkt = spec.target.area_wkt
    if not wkt:
        return
    try:
        area = shapely.from_wkt(wkt)
    except shapely.errors.GEOSException as exc:
        raise InvalidInput(f"rule {spec.code!r}: target.area_wkt is not WKT: {exc}") from None
    if area is None or area.geom_type not in ("Polygon", "MultiPolygon") or area.is_empty:
        kind = "nothing" if area is None else area.geom_type
        raise InvalidInput(
            f"rule {spec.code!r}: target.area_wkt is a {kind}; a Polygon or MultiPolygon in "
            "EPSG:4326 is expected"
        )
    vertices = int(shapely.get_num_coordinates(area))
    if vertices > max_vertices:
        raise InvalidInput(
            f"rule {spec.code!r}: target.area_wkt has {vertices:,} vertices; the limit is "
            f"{max_vertices:,} (CITYRISK_MAX_RULE_AREA_VERTICES): simplify the outline"
        )


def save(
    session: Session,
    spec: RuleSpec,
    *,
    actor: str,
    create_only: bool = False,
    max_area_vertices: int = MAX_AREA_VERTICES,
) -> StoredRule:
    """Store ``spec`` as a new rule, or as the next version of its code (unchanged: no-op).

    Refuses an ``area_wkt`` over ``max_area_vertices`` vertices (:func:`check_area`).
    """
    check_area(spec, max_vertices=max_area_vertices)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('rule:' || :c))"), {"c": spec.code})
    current = session.execute(
        text(_SELECT + " WHERE code = :c AND is_current FOR UPDATE"), {"c": spec.code}
    ).one_or_none()
    if current is not None:
        if create_only:
            raise Conflict(f"rule {spec.code!r} exists (version {current.version}); use PUT")
        stored = _row_to_rule(current)
        if stored.spec == spec:
            return stored
        session.execute(text("UPDATE rule SET is_current = false WHERE id = :i"), {"i": current.id})
    version = 1 if current is None else current.version + 1
    row = session.execute(
        text(
            "INSERT INTO rule (code, version, title, kind, indicator, direction, thresholds, "
            "target, conditions, is_enabled, is_current, created_by) VALUES (:code, :version, "
            ":title, :kind, :indicator, :direction, CAST(:thresholds AS jsonb), "
            "CAST(:target AS jsonb), CAST(:conditions AS jsonb), :enabled, true, :actor) "
            "RETURNING id"
        ),
        {
            "code": spec.code,
            "version": version,
            "title": spec.title,
            "kind": spec.kind,
            "indicator": spec.indicator,
            "direction": spec.direction,
            "thresholds": _json({str(k): v for k, v in spec.thresholds.items()}),
            "target": _json(spec.target.model_dump(mode="json", exclude_none=True)),
            "conditions": _json(spec.conditions()),
            "enabled": spec.is_enabled,
            "actor": actor,
        },
    ).scalar_one()
    return StoredRule(id=row, version=version, is_current=True, spec=spec)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


#: Default deepest nesting of a rules document (``CITYRISK_YAML_MAX_DEPTH``); a rule is 6 deep.
YAML_MAX_DEPTH = 32


def check_yaml_depth(body: bytes | str, max_depth: int) -> None:
    """Refuse a YAML document nested deeper than ``max_depth`` collections.

    PyYAML's parser is a loop, but its composer and constructor recurse once per level: ~500
    levels raise ``RecursionError`` (a 500). So the event stream is walked first, without
    building anything, and the document refused at the first level too deep.
    """
    depth = 0
    for event in yaml.parse(body, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            # A few nested aliases expand to billions of nodes for the validation to walk
            # ("billion laughs"); a rules file never needs them.
            raise InvalidInput("rules YAML may not use aliases (*name); write each rule out")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                mark = event.start_mark
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
                raise InvalidInput(
                    f"the YAML is nested more than {max_depth} levels deep{where}; expected at "
                    f"most {max_depth} (a rule is 6 deep; the limit is CITYRISK_YAML_MAX_DEPTH)"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(body: bytes | str, *, max_depth: int = YAML_MAX_DEPTH) -> list[RuleSpec]:
    """Rules from a YAML document: a list of rules, or ``{rules: [...]}``, at most
    ``max_depth`` collections deep."""
    try:
        check_yaml_depth(body, max_depth)
        doc = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}") from None
    if isinstance(doc, dict) and "rules" in doc:
        doc = doc["rules"]
    if not isinstance(doc, list):
        raise InvalidInput("a rules YAML is a list of rules (or a mapping with a 'rules' list)")
    specs = []
    for i, item in enumerate(doc):
        try:
            specs.append(RuleSpec.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            code = item.get("code") if isinstance(item, dict) else None
            raise InvalidInput(
                f"rule #{i + 1} ({code or 'no code'}): {where}: {first['msg']}"
            ) from None
    codes = [s.code for s in specs]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise InvalidInput(f"rule codes appear twice: {', '.join(duplicates)}")
    return specs


def default_pack() -> list[RuleSpec]:
    """The rules shipped with cityrisk (``app/alarms/default_rules.yaml``)."""
    return parse_yaml(resources.files("app.alarms").joinpath("default_rules.yaml").read_bytes())


def load(
    session: Session,
    specs: list[RuleSpec],
    *,
    actor: str,
    max_area_vertices: int = MAX_AREA_VERTICES,
) -> list[StoredRule]:
    """Save every spec (new versions only where something changed)."""
    for spec in specs:  # all or none, before the first write
        check_area(spec, max_vertices=max_area_vertices)
    return [save(session, spec, actor=actor, max_area_vertices=max_area_vertices) for spec in specs]
