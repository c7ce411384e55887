"""Access through the real API: every write needs a token of the right role (per route, read
from the routes themselves), 401 vs 403, device scope, the actor is the token's, reserved
names, cross-site writes, closed reads, JWTs, rate limits, the CLI and the audit trail."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.dependencies import OPEN_ACTIONS, Require
from app.auth.roles import PERMISSIONS, ROLES
from app.auth.service import create_token
from app.main import create_app
from app.settings import AuthSettings, Settings
from tests import factories as f
from tests.app.test_cli import cityrisk

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def routes(app: Any) -> Iterator[Any]:
    """Every route of ``app``, included routers unfolded."""
    for r in app.routes:
        if hasattr(r, "effective_route_contexts"):
            yield from r.effective_route_contexts()
        elif hasattr(r, "dependant"):
            yield r


def write_routes(settings: Settings) -> list[tuple[str, str, str]]:
    """(method, path with sample parameters, action) of every route that is not a read."""
    out = []
    for r in routes(create_app(settings)):
        for method in sorted((r.methods or set()) & WRITES):
            actions = [
                d.call.action for d in r.dependant.dependencies if isinstance(d.call, Require)
            ]
            assert len(actions) == 1, f"{method} {r.path} declares no Require(action): {actions}"
            path = re.sub(r"\{(\w+)\}", lambda m: "api-x" if m[1] == "code" else "999999", r.path)
            out.append((method, path, actions[0]))
    return out


def test_every_write_route_needs_the_right_role(
    settings: Settings, anon_client: TestClient, tokens: dict[str, str]
) -> None:
    """For each write route and each role: 401 without a token, 403 for a role the table does
    not allow, neither for one it allows. The body is a JSON array no route takes, so an
    allowed call stops at its own validation (422, 404…) and changes nothing."""
    found = write_routes(settings)
    assert len(found) >= 14
    for method, path, action in found:
        r = anon_client.request(method, path, json=[])
        if action in OPEN_ACTIONS:
            assert r.status_code not in (401, 403), (method, path, r.text)
        else:
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
            assert action in r.json()["detail"]
        for role in ROLES:
            r = anon_client.request(method, path, json=[], headers=f.bearer(tokens[role]))
            if role in PERMISSIONS[action]:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code, r.text)
                assert f"test-{role} is {role}" in r.text, (method, path, r.text)


def test_a_bad_or_revoked_token_is_401(anon_client: TestClient, client: TestClient) -> None:
    for key in ("cr_not-a-key", "nonsense", "a.b.c"):
        r = anon_client.post("/risk/refresh", json={"h3_res": 99}, headers=f.bearer(key))
        assert r.status_code == 401, r.text
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    made = client.post("/auth/tokens", json={"name": "short-lived", "role": "analyst"})
    assert made.status_code == 201, made.text
    key = made.json()["token"]
    me = anon_client.get("/auth/me", headers=f.bearer(key)).json()
    assert (me["name"], me["role"], me["via"]) == ("short-lived", "analyst", "token")
    assert "token_hash" not in made.json()
    assert client.post("/auth/tokens/short-lived/revoke").status_code == 200
    assert anon_client.get("/auth/me", headers=f.bearer(key)).status_code == 401


def test_system_actors_cannot_be_claimed(client: TestClient) -> None:
    for name in ("engine", "Engine", "anonymous", "cli", "cli:root", "replay", "cityrisk-x", ""):
        r = client.post("/auth/tokens", json={"name": name, "role": "admin"})
        assert r.status_code == 422, (name, r.text)
    twice = {"name": "dup-name", "role": "viewer"}
    assert client.post("/auth/tokens", json=twice).status_code == 201
    assert client.post("/auth/tokens", json=twice).status_code == 409


def test_a_device_posts_only_its_own_sensors(
    anon_client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    with engine.begin() as c:
        mine = f.sensor(c, "ch4_pct_lel", external_id="dev-ch4-1")
        theirs = f.sensor(c, "ch4_pct_lel", external_id="other-ch4-1")
    now = datetime.now(UTC).replace(microsecond=0)
    device = f.bearer(tokens["device"])
    ok = anon_client.post(
        "/readings",
        json=[{"sensor": "dev-ch4-1", "ts": now.isoformat(), "value": 1.0}],
        headers=device,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 1
    bad = anon_client.post(
        "/readings",
        json=[
            {"sensor": "dev-ch4-1", "ts": (now + timedelta(seconds=1)).isoformat(), "value": 2.0},
            {"sensor": "other-ch4-1", "ts": now.isoformat(), "value": 85.0},
        ],
        headers=device,
    )
    assert bad.status_code == 403, bad.text
    assert "other-ch4-1" in bad.json()["detail"]
    assert "nothing was stored" in bad.json()["detail"]
    with engine.connect() as c:
        stored = c.execute(
            text("SELECT sensor_id, count(*) FROM reading WHERE sensor_id = ANY(:s) GROUP BY 1"),
            {"s": [mine, theirs]},
        ).all()
    assert dict(stored) == {mine: 1}
    # The device reads nothing beyond its ingest, and makes no alarm move.
    assert anon_client.post("/alarms/1/transition", json={}, headers=device).status_code == 403


def test_a_fleet_token_names_its_sensors_briefly(anon_client: TestClient, engine: Engine) -> None:
    """A replay's token lists every sensor of its fleet by name (1,651 in the demo): the 403 for
    a sensor outside it names five of them and counts the rest, and a batch of the fleet's own
    sensors is checked against a set, not against every name."""
    fleet = [f"fleet-{i:04d}" for i in range(2000)]
    with Session(engine) as s, s.begin():
        _, key = create_token(
            s, name="test-fleet", role="device", sensors=fleet, created_by="test-suite"
        )
    with engine.begin() as c:
        f.sensor(c, "ch4_pct_lel", external_id="fleet-1999")
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    own = [{"sensor": "fleet-1999", "ts": now, "value": 1.0}]
    ok = anon_client.post("/readings", json=own, headers=f.bearer(key))
    assert ok.status_code == 200, ok.text
    bad = anon_client.post(
        "/readings", json=[{"sensor": "intruder", "ts": now, "value": 1.0}], headers=f.bearer(key)
    )
    assert bad.status_code == 403, bad.text
    detail = bad.json()["detail"]
    assert "fleet-0000, fleet-0001, fleet-0002, fleet-0003, fleet-0004 and 1995 more" in detail
    assert len(detail) < 300, detail


def test_cross_site_writes_are_refused(client: TestClient) -> None:
    """A page on another site can post text/plain or a form without a preflight."""
    yaml_rule = b"- code: evil\n  indicator: ch4_pct_lel\n"
    r = client.post("/rules/import", content=yaml_rule, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert "text/plain" in r.json()["detail"]
    form = client.post(
        "/alarms/1/transition",
        content=b"to=closed",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    evil = client.post(
        "/risk/refresh",
        json={},
        headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
    )
    assert evil.status_code == 403
    assert "evil.example" in evil.json()["detail"]
    # Same origin: past the check, stopped by the body's own validation (nothing runs).
    same = client.post(
        "/risk/refresh", json={"h3_res": 99}, headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 422, same.text
    # Behind a proxy that ends TLS: the browser says https, the proxy forwards plain HTTP.
    proxied = client.post(
        "/risk/refresh",
        json={"h3_res": 99},
        headers={"Origin": "https://risk.city.example", "X-Forwarded-Host": "risk.city.example"},
    )
    assert proxied.status_code == 422, proxied.text


def test_closed_reads_need_a_viewer_token(settings: Settings, tokens: dict[str, str]) -> None:
    closed = settings.model_copy(update={"auth": AuthSettings(open_reads=False)})
    with TestClient(create_app(closed)) as c:
        assert c.get("/healthz").status_code == 200
        tiles = (
            "/tiles/hydrant/14/4954/6059.mvt",
            "/ogc/collections/hydrant/tiles/WebMercatorQuad/14/6059/4954",
        )
        for path in ("/alarms", "/ogc/collections", "/map", "/risk/cells", *tiles):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=f.bearer(tokens["viewer"])).status_code == 200, path
        # EventSource and <img> tiles cannot send headers: RFC 6750 §2.3 query parameter.
        assert c.get(f"/alarms?access_token={tokens['viewer']}").status_code == 200
        assert c.get("/alarms", headers=f.bearer(tokens["device"])).status_code == 403
        assert c.post("/impact", json={}).status_code == 401
    with TestClient(create_app(settings)) as c:  # open (the default): the map needs nothing
        assert c.get("/alarms").status_code == 200
        assert c.get("/auth/me").json()["name"] == "anonymous"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    base = {
        "iss": "https://sso.city.example",
        "aud": "cityrisk",
        "exp": datetime.now(UTC) + timedelta(minutes=5),
        "preferred_username": "alice",
    }
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_jwts_from_the_identity_provider(settings: Settings, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = AuthSettings(
        jwt_public_key=pem.decode(),
        jwt_issuer="https://sso.city.example",
        jwt_audience="cityrisk",
        jwt_roles_claim="realm_access.roles",
    )
    with TestClient(create_app(settings.model_copy(update={"auth": auth}))) as c:
        good = _jwt(rsa_key, realm_access={"roles": ["offline_access", "analyst", "viewer"]})
        me = c.get("/auth/me", headers=f.bearer(good)).json()
        assert (me["name"], me["role"], me["via"]) == ("jwt:alice", "analyst", "jwt")
        assert c.post("/rules", json={}, headers=f.bearer(good)).status_code == 403
        for bad in (
            _jwt(rsa_key, realm_access={"roles": ["analyst"]}, aud="other"),
            _jwt(
                rsa_key,
                realm_access={"roles": ["analyst"]},
                exp=datetime.now(UTC) - timedelta(hours=1),
            ),
            _jwt(rsa_key, realm_access={"roles": ["nobody"]}),
            _jwt(rsa.generate_private_key(65537, 2048), realm_access={"roles": ["admin"]}),
        ):
            r = c.get("/auth/me", headers=f.bearer(bad))
            assert r.status_code == 401, r.text


def test_jwks_url(settings: Settings, rsa_key: rsa.RSAPrivateKey) -> None:
    """The provider's keys fetched from its JWKS endpoint (a real HTTP server)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/certs"
        auth = AuthSettings(jwt_jwks_url=url, jwt_audience="cityrisk", jwt_roles_claim="roles")
        with TestClient(create_app(settings.model_copy(update={"auth": auth}))) as c:
            me = c.get("/auth/me", headers=f.bearer(_jwt(rsa_key, roles="commander"))).json()
            assert (me["name"], me["role"]) == ("jwt:alice", "commander")
    finally:
        server.shutdown()


def test_rate_limits_answer_429_with_retry_after(
    settings: Settings, tokens: dict[str, str]
) -> None:
    limited = settings.model_copy(
        update={"auth": AuthSettings(ingest_per_s=1, expensive_per_min=6)}
    )
    with TestClient(create_app(limited), headers=f.bearer(tokens["admin"])) as c:
        statuses = [c.post("/readings", json=[]).status_code for _ in range(4)]
        assert statuses[:2] != [429, 429]
        assert statuses[-1] == 429
        r = c.post("/readings", json=[])
        assert int(r.headers["Retry-After"]) >= 1
        assert "rate limit" in r.json()["detail"]
        burst = [c.post("/risk/refresh", json={"h3_res": 99}).status_code for _ in range(12)]
        assert burst[:10] == [422] * 10  # the burst: validated, not run
        assert burst[-1] == 429
        # Another token has its own bucket.
        other = c.post("/readings", json=[], headers=f.bearer(tokens["device"]))
        assert other.status_code != 429


def test_the_actor_of_imports_and_refreshes_is_the_token(
    client: TestClient, engine: Engine, tmp_path: Any
) -> None:
    geo = tmp_path / "hydrants.geojson"
    geo.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "audit-h1"},
                        "geometry": {"type": "Point", "coordinates": [116.3, 39.9]},
                    }
                ],
            }
        )
    )
    with geo.open("rb") as fh:
        r = client.post(
            "/assets/import",
            files={"file": ("hydrants.geojson", fh, "application/geo+json")},
            data={"kind": "hydrant", "id_field": "id", "source": "audit-test"},
        )
    assert r.status_code == 200, r.text
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT actor, role, detail FROM audit_event WHERE action = 'assets.import' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
        c.execute(text("DELETE FROM asset WHERE source = 'audit-test'"))
        c.commit()
    assert (row.actor, row.role, row.detail["kind"]) == ("test-admin", "admin", "hydrant")


def test_cli_token_create_list_revoke(database_url: str, settings: Settings) -> None:
    """A revocation by another process reaches this one within CITYRISK_AUTH_CACHE_S."""
    env = {"DATABASE_URL": database_url}
    cached = settings.model_copy(update={"auth": AuthSettings(cache_s=1.5)})
    with TestClient(create_app(cached)) as anon_client:
        _create_list_revoke(env, anon_client)


def _create_list_revoke(env: dict[str, str], anon_client: TestClient) -> None:
    made = cityrisk("token", "create", "--role", "commander", "--name", "值班长", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("cr_")
    me = anon_client.get("/auth/me", headers=f.bearer(key)).json()
    assert (me["name"], me["role"]) == ("值班长", "commander")
    listed = cityrisk("token", "list", env=env)
    assert "值班长\tcommander\tcr_" in listed.stdout
    assert key not in listed.stdout
    device = cityrisk("token", "create", "--role", "device", env=env)
    assert device.returncode != 0
    assert "needs its sensors" in device.stderr
    assert cityrisk("token", "revoke", "值班长", env=env).returncode == 0
    deadline = time.monotonic() + 1.5
    while anon_client.get("/auth/me", headers=f.bearer(key)).status_code == 200:
        assert time.monotonic() < deadline + 0.5, "still trusted after cache_s"
        time.sleep(0.1)
    assert anon_client.get("/auth/me", headers=f.bearer(key)).status_code == 401
