"""Schemathesis against ``/openapi.json``: no 5xx and no response outside the document.

Thousands of requests generated from the schema (valid and invalid parameters and bodies) go
to the real app served by uvicorn on a migrated database of this module's own (they write
rules, readings and incidents, which other tests must not see). Every response must be below
500 and match the document: its status code, content type, headers and body schema.

Not checked: schemathesis' ``positive_data_acceptance`` (a schema-valid request must not be a
4xx). The schema cannot say everything a 422 refuses (an unknown layer id, a bbox of the wrong
shape, a 404 for an id nobody created), so that check fails on honest 4xxs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.scratch import scratch_database, scratch_token, serve_in_thread
from app.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# An SSE stream only ends when its client leaves, or after max_events / timeout_s: generated
# requests would hold it open (each up to schemathesis' request timeout) and add nothing that
# the stream's own tests (tests/app/alarms/test_stream.py) do not check.
SKIPPED = {"/alarms/stream"}
EXAMPLES_PER_OPERATION = 80  # 59 operations: 3,781 requests in 25 s (derandomized), measured
MIN_REQUESTS = 2_000
#: The admin key the generated requests send (made in the fuzz database by ``base_url``).
AUTH: dict[str, str] = {}

# The readings' NDJSON and CSV bodies are text: sent as schemathesis sends text/plain.
schemathesis.serializer.alias(["application/x-ndjson", "text/csv"], "text/plain")


def make_app(settings: Settings) -> object:
    """The app under test (the one place to add credentials)."""
    return create_app(settings)


@pytest.fixture(scope="module")
def base_url(
    server_url: str, admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with scratch_database(
        server_url, admin_url=admin_url, prefix="cityrisk_fuzz", migrate=True
    ) as url:
        # Every write needs a token: the generated requests carry an admin's, so they reach
        # each route's own validation (anonymous, writes stop at the 401 before it).
        AUTH["Authorization"] = f"Bearer {scratch_token(url, 'admin', name='fuzz-admin')}"
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp_path_factory.mktemp("fuzz")),
            mqtt_consumer=False,
            offline_check_s=0,
        )
        with serve_in_thread(make_app(settings)) as base:
            yield base


def test_generated_requests_get_documented_answers_and_no_5xx(base_url: str) -> None:
    schema = schemathesis.openapi.from_dict(create_app().openapi())
    calls = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED:
            continue

        # derandomize: the same requests on every run, so the suite does not flake; a change
        # to the schema changes them. database=None: no .hypothesis/ directory in the checkout.
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=base_url, checks=CHECKS, headers=AUTH)

        try:
            run()
        except Exception as exc:  # every operation runs; their failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    print(f"schemathesis: {calls} requests")
    assert calls >= MIN_REQUESTS, calls
