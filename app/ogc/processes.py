"""OGC API – Processes (Part 1 Core) over the impact scenarios: descriptions and execute requests.

Each scenario of :data:`app.impact.params.SCENARIOS` is a process of the same id. Its inputs are
the target (``asset_id`` or ``point``), the data time ``at``, the cascade options, and every
parameter of the scenario with its JSON Schema, unit, default and source, read from the same
table that checks ``POST /impact``; its one output ``result`` is the document ``POST /impact``
returns. Execution is synchronous only (``sync-execute``): an impact takes well under a second,
so there are no jobs to keep. The routes are in :mod:`app.ogc.routes`; they execute through
:func:`app.impact.service.compute`, the call behind ``POST /impact``.

Process descriptions are OpenAPI 3.0 schemas (OGC 18-062r2 ``schema.yaml``), whose
``exclusiveMinimum`` is a boolean beside ``minimum``; :func:`oas30` rewrites the parameters'
JSON Schema 2020-12 (a number) into that dialect. Errors are the Processes exception document
(``type``, ``title``, ``status``, ``detail``; RFC 7807).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal

from app import __version__
from app.errors import CityriskError, InvalidInput
from app.impact.params import SCENARIOS, STEPS, Param, Scenario
from app.impact.service import LEONTIEF_COUPLING

#: Conformance classes of OGC API – Processes – Part 1 this API implements.
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
)

EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
NO_SUCH_PROCESS = EXCEPTIONS + "no-such-process"
NO_SUCH_JOB = EXCEPTIONS + "no-such-job"
#: No Processes exception type covers a bad input; this is the OGC (OWS Common) code for it.
INVALID_PARAMETER = "InvalidParameterValue"

REL = "http://www.opengis.net/def/rel/ogc/1.0/"
JSON = "application/json"

#: The one output of every process.
OUTPUT = "result"
#: Members of an execute request (OGC 18-062r2 ``execute.yaml``).
EXECUTE_MEMBERS = frozenset({"inputs", "outputs", "response", "subscriber", "mode"})
CASCADE_MODES = ("propagate", "leontief")


class ProcessError(CityriskError):
    """An OGC API – Processes exception: its body is ``type``, ``title``, ``status``, ``detail``."""

    def __init__(self, message: str, *, status: HTTPStatus, type_: str, title: str) -> None:
        super().__init__(message)
        self.status_code = int(status)
        self.type = type_
        self.title = title

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status_code,
            "detail": self.message,
        }


def invalid(message: str) -> ProcessError:
    """A 400 for a bad execute request or input; ``message`` names the field."""
    return ProcessError(
        message, status=HTTPStatus.BAD_REQUEST, type_=INVALID_PARAMETER, title="invalid input"
    )


def get_process(process_id: str) -> Scenario:
    """The scenario behind process ``process_id``; a 404 ``no-such-process`` if none."""
    try:
        return SCENARIOS[process_id]
    except KeyError:
        raise ProcessError(
            f"no process {process_id!r}; the processes are {', '.join(SCENARIOS)}",
            status=HTTPStatus.NOT_FOUND,
            type_=NO_SUCH_PROCESS,
            title="no such process",
        ) from None


def no_such_job(job_id: str) -> ProcessError:
    return ProcessError(
        f"no job {job_id!r}: processes run synchronously here, so there are no jobs",
        status=HTTPStatus.NOT_FOUND,
        type_=NO_SUCH_JOB,
        title="no such job",
    )


# -- descriptions ---------------------------------------------------------------------------------


def oas30(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (JSON Schema 2020-12) in OpenAPI 3.0's dialect, recursively.

    2020-12 writes ``{"exclusiveMinimum": 0}``; OpenAPI 3.0 (and so OGC process descriptions)
    ``{"minimum": 0, "exclusiveMinimum": true}``, likewise for the maximum.

    Examples
    --------
    >>> oas30({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}})
    {'type': 'array', 'items': {'type': 'number', 'minimum': 0, 'exclusiveMinimum': True}}
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        bound = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}.get(key)
        if bound is not None and not isinstance(value, bool):
            out[bound] = value
            out[key] = True
        elif isinstance(value, dict):
            out[key] = oas30(value)
        elif isinstance(value, list):
            out[key] = [oas30(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


_POINT_ARRAY = {
    "type": "array",
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
    "description": "[lon, lat] in WGS84 degrees",
}
_POINT_GEOJSON = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {"type": {"type": "string", "enum": ["Point"]}, "coordinates": _POINT_ARRAY},
    "description": "a GeoJSON Point",
}


def _input(
    title: str, description: str, schema: dict[str, Any], *, required: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "schema": schema,
        "minOccurs": 1 if required else 0,
        "maxOccurs": 1,
        **extra,
    }


def _param_input(param: Param) -> dict[str, Any]:
    schema = oas30(param.schema())
    metadata: list[dict[str, str]] = []
    description = param.description
    if param.unit:
        schema["x-ogc-unit"] = param.unit
        metadata.append({"role": "unit", "value": param.unit})
        description = f"{description} [{param.unit}]"
    if param.source:
        metadata.append({"role": "source", "value": param.source})
    if param.attribute:
        metadata.append({"role": "asset-attribute", "value": param.attribute})
        description += f"; default: the asset's {param.attribute}"
    if param.default is not None:
        description += "; default: " + (param.source or "given in the schema")
    return _input(param.name, description, schema, metadata=metadata)


def inputs(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The input descriptions of ``scenario``'s process, by input id."""
    kinds = f" ({', '.join(scenario.kinds)})" if scenario.kinds else ""
    out: dict[str, dict[str, Any]] = {}
    either = scenario.target == "either"
    if scenario.target != "point":
        out["asset_id"] = _input(
            "asset",
            f"the asset the scenario starts from{kinds}"
            + ("; give asset_id or point" if either else ""),
            {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            required=not either,
        )
    if scenario.target != "asset":
        out["point"] = _input(
            "point",
            "where the scenario starts, WGS84 [lon, lat] or a GeoJSON Point"
            + ("; give asset_id or point" if either else ""),
            {"oneOf": [_POINT_ARRAY, _POINT_GEOJSON]},
            required=not either,
        )
    out["at"] = _input(
        "data time",
        "the readings (wind, …) as of this time, RFC 3339 with an offset; default now",
        {"type": "string", "format": "date-time"},
    )
    out["cascade_mode"] = _input(
        "cascade mode",
        "propagate: time-stepped failures; leontief: also the steady-state inoperability",
        {"type": "string", "enum": list(CASCADE_MODES), "default": CASCADE_MODES[0]},
    )
    out["coupling"] = _input(
        "coupling",
        "leontief: share of a supplier's inoperability passed on",
        oas30(
            {
                "type": "number",
                "exclusiveMinimum": 0,
                "exclusiveMaximum": 1,
                "default": LEONTIEF_COUPLING,
            }
        ),
    )
    for param in (*scenario.params, STEPS):
        out[param.name] = _param_input(param)
    return out


def _links(scenario: Scenario, root: str) -> list[dict[str, str]]:
    href = f"{root}/processes/{scenario.id}"
    return [
        {"href": href, "rel": "self", "type": JSON, "title": "process description"},
        {
            "href": f"{href}/execution",
            "rel": REL + "execute",
            "type": JSON,
            "title": "execute (POST)",
        },
    ]


def summary(scenario: Scenario, root: str) -> dict[str, Any]:
    """The process summary (``/processes`` lists these); ``root`` is the API root (…/ogc)."""
    return {
        "id": scenario.id,
        "title": scenario.title,
        "description": scenario.description,
        "version": __version__,
        "keywords": ["impact", *scenario.kinds],
        "jobControlOptions": ["sync-execute"],
        "outputTransmission": ["value"],
        "links": _links(scenario, root),
    }


def description(scenario: Scenario, root: str) -> dict[str, Any]:
    """The process description: the summary with its inputs and outputs."""
    return {
        **summary(scenario, root),
        "inputs": inputs(scenario),
        "outputs": {
            OUTPUT: {
                "title": "impact",
                "description": "what POST /impact returns: inputs with their origins, zones "
                "(GeoJSON), exposure per zone, the cascade step by step, actions, notes",
                "schema": {"type": "object", "contentMediaType": JSON},
            }
        },
    }


def process_list(root: str, self_href: str) -> dict[str, Any]:
    return {
        "processes": [summary(s, root) for s in SCENARIOS.values()],
        "links": [{"href": self_href, "rel": "self", "type": JSON, "title": "this document"}],
    }


# -- execution ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """An execute request, checked: the arguments of :func:`app.impact.service.compute`."""

    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    asset_id: int | None = None
    point: list[float] | None = None
    at: datetime | None = None
    cascade_mode: str = CASCADE_MODES[0]
    coupling: float = LEONTIEF_COUPLING
    response: Literal["raw", "document"] = "raw"


def _unwrap(name: str, value: Any) -> Any:
    """An input's value: inline, or a qualified value ``{"value": …, "mediaType": …}``."""
    if isinstance(value, dict):
        if "href" in value:
            raise invalid(f"inputs.{name} is a reference (href); give the value inline")
        if "value" in value and set(value) <= {"value", "mediaType", "encoding", "schema"}:
            return value["value"]
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise invalid(f"inputs.{name} was {value!r}; expected an asset id (integer >= 1)")
    return value


def _point(value: Any) -> list[float]:
    coords = value
    if isinstance(value, dict):
        if value.get("type") != "Point":
            raise invalid(f"inputs.point was {value!r}; expected [lon, lat] or a GeoJSON Point")
        coords = value.get("coordinates")
    if (
        not isinstance(coords, list)
        or len(coords) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
        or not all(math.isfinite(c) for c in coords)
    ):
        raise invalid(f"inputs.point was {value!r}; expected [lon, lat] or a GeoJSON Point")
    return [float(c) for c in coords]


def _at(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid(
            f"inputs.at was {value!r}; expected an RFC 3339 date-time with an offset, e.g. "
            "2026-11-28T10:00:00Z"
        )
    return parsed


def _outputs(outputs: Any) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, dict):
        raise invalid(f"outputs was {outputs!r}; expected an object by output id ({OUTPUT})")
    for name, spec in outputs.items():
        if name != OUTPUT:
            raise invalid(f"outputs.{name} is not an output; the only output is {OUTPUT}")
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise invalid(f"outputs.{name} was {spec!r}; expected an object")
        mode = spec.get("transmissionMode", "value")
        if mode != "value":
            raise invalid(f"outputs.{name}.transmissionMode was {mode!r}; only value is offered")
        media = (spec.get("format") or {}).get("mediaType", JSON)
        if media != JSON:
            raise invalid(f"outputs.{name}.format.mediaType was {media!r}; only {JSON}")


def parse_execute(scenario: Scenario, body: Any) -> Execution:
    """Check an execute request against ``scenario``'s inputs; a 400 naming the field.

    The parameters are checked by the same :meth:`Param.check` as ``POST /impact`` (here named
    ``inputs.<name>``); the target and what depends on the data (the asset's kind, a point
    outside the city) are left to :func:`app.impact.service.compute`.
    """
    if not isinstance(body, dict):
        raise invalid('the execute request must be a JSON object: {"inputs": {…}}')
    unknown = sorted(set(body) - EXECUTE_MEMBERS)
    if unknown:
        raise invalid(
            f"{', '.join(unknown)}: not members of an execute request; expected "
            "inputs, outputs, response"
        )
    response = body.get("response", "raw")
    if response not in ("raw", "document"):
        raise invalid(f"response was {response!r}; expected raw or document")
    if body.get("subscriber") is not None:
        raise invalid("subscriber: callbacks need asynchronous execution, which is not offered")
    _outputs(body.get("outputs"))
    given = body.get("inputs")
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise invalid(f"inputs was {given!r}; expected an object by input id")
    known = inputs(scenario)
    extra = sorted(set(given) - set(known))
    if extra:
        raise invalid(
            f"inputs {', '.join(extra)} are not inputs of {scenario.id}; known: {', '.join(known)}"
        )
    values = {name: _unwrap(name, v) for name, v in given.items() if v is not None}
    params: dict[str, Any] = {}
    by_name = {p.name: p for p in (*scenario.params, STEPS)}
    for name, value in values.items():
        if name in by_name:
            try:
                by_name[name].check(value, where=f"inputs.{name}")
            except InvalidInput as exc:
                raise invalid(exc.message) from exc
            params[name] = value
    mode = values.get("cascade_mode", CASCADE_MODES[0])
    if mode not in CASCADE_MODES:
        raise invalid(f"inputs.cascade_mode was {mode!r}; expected {' or '.join(CASCADE_MODES)}")
    coupling = values.get("coupling", LEONTIEF_COUPLING)
    if isinstance(coupling, bool) or not isinstance(coupling, int | float) or not 0 < coupling < 1:
        raise invalid(f"inputs.coupling was {coupling!r}; expected a number in (0, 1)")
    return Execution(
        scenario=scenario.id,
        params=params,
        asset_id=_integer("asset_id", values["asset_id"]) if "asset_id" in values else None,
        point=_point(values["point"]) if "point" in values else None,
        at=_at(values["at"]) if "at" in values else None,
        cascade_mode=mode,
        coupling=float(coupling),
        response=response,
    )


# -- OpenAPI --------------------------------------------------------------------------------------

EXCEPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
EXECUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "inputs": {"type": "object", "additionalProperties": True},
        "outputs": {"type": "object", "additionalProperties": True},
        "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"},
    },
}


def exception_response(description: str) -> dict[str, Any]:
    """An OpenAPI 3.0 response carrying a Processes exception."""
    return {"description": description, "content": {JSON: {"schema": EXCEPTION_SCHEMA}}}


def execute_operation(
    summary_: str, request_schema: dict[str, Any], operation_id: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.0 operation of an execution (generic, or one process's inputs)."""
    operation: dict[str, Any] = {
        "tags": ["OGC API Processes"],
        "summary": summary_,
        "requestBody": {"required": True, "content": {JSON: {"schema": request_schema}}},
        "responses": {
            "200": {
                "description": "response raw (default): the impact document, as POST /impact "
                f"returns it; response document: {{{OUTPUT!r}: the impact document}}",
                "content": {JSON: {"schema": {"type": "object"}}},
            },
            "400": exception_response("an invalid input, named in detail"),
            "404": exception_response("no such process"),
        },
    }
    if operation_id:
        operation["operationId"] = operation_id
    return operation


def openapi_paths() -> dict[str, Any]:
    """One ``/processes/{id}/execution`` path per process, with its inputs as the body schema.

    Concrete paths beside the templated one: OpenAPI clients and validators then know each
    process's inputs, units and bounds (in OpenAPI 3.0's dialect: that is what this checks).
    """
    paths: dict[str, Any] = {}
    for scenario in SCENARIOS.values():
        body = {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                **EXECUTE_SCHEMA["properties"],
                "inputs": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        name: {**spec["schema"], "description": spec["description"]}
                        for name, spec in inputs(scenario).items()
                    },
                },
            },
        }
        paths[f"/ogc/processes/{scenario.id}/execution"] = {
            "post": execute_operation(
                f"Execute {scenario.id}: {scenario.title}", body, f"execute_{scenario.id}"
            )
        }
    return paths
