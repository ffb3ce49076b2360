"""Firebase ID tokens: emulator tokens, and RS256 tokens checked against a local certificate server.

No database; the only sockets are on 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google.auth.crypt
import google.auth.jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

import app.auth
from app.auth import (
    AuthenticationError,
    FirebaseVerifier,
    Principal,
    Role,
    bearer_token,
    make_emulator_token,
)
from app.settings import Settings

PROJECT = "staysync-test"
EMULATOR_HOST = "127.0.0.1:9099"
KID = "test-key-1"
# Emulator mode never fetches certificates; should it ever try, it fails on loopback instead of
# reaching Google.
NEVER_FETCHED = "http://127.0.0.1:9/never-fetched"
BEARER_FORMAT = "Authorization header must be 'Bearer <Firebase ID token>'"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "firebase_project_id": PROJECT,
        "firebase_cert_url": NEVER_FETCHED,
        "firebase_auth_emulator_host": None,
    }
    return Settings(**(values | overrides))


# --- Authorization header ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER abc.def.ghi", "abc.def.ghi"),
        ("  Bearer   abc.def.ghi  ", "abc.def.ghi"),
    ],
)
def test_bearer_token_accepts(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "abc.def.ghi",
        "Bearer a b",
        "Token abc",
        "Bearer: abc",
    ],
)
def test_bearer_token_rejects_malformed(header: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        bearer_token(header)

    assert caught.value.message == BEARER_FORMAT
    assert caught.value.code == "UNAUTHENTICATED"


# --- Emulator tokens -----------------------------------------------------------------------


def decode_segment(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def encode_segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def with_claims(token: str, **changes: Any) -> str:
    """The same unsigned token with claims replaced (None removes one)."""
    header, payload, signature = token.split(".")
    claims = decode_segment(payload)
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return f"{header}.{encode_segment(claims)}.{signature}"


def test_make_emulator_token_matches_the_emulator_format() -> None:
    token = make_emulator_token(
        role=Role.AGENT, agency="ACME", project_id=PROJECT, now=1_700_000_000
    )

    header, payload, signature = token.split(".")
    assert decode_segment(header) == {"alg": "none", "typ": "JWT"}
    assert signature == ""
    assert decode_segment(payload) == {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": "dev-agent-ACME",
        "user_id": "dev-agent-ACME",
        "auth_time": 1_700_000_000,
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
        "role": "agent",
        "agency": "ACME",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "agent"}, "agent token needs an agency"),
        ({"role": Role.AGENT, "agency": ""}, "agent token needs an agency"),
        ({"role": "superuser"}, "unknown role 'superuser'"),
        ({"role": "admin", "uid": ""}, "uid must be"),
    ],
)
def test_make_emulator_token_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_emulator_token(project_id=PROJECT, **kwargs)


@pytest.fixture
def emulator_verifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[FirebaseVerifier]:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", EMULATOR_HOST)
    verifier = FirebaseVerifier(make_settings(firebase_auth_emulator_host=EMULATOR_HOST))
    yield verifier
    verifier.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("role", "agency", "expected"),
    [
        ("admin", None, Principal(uid="dev-admin", role=Role.ADMIN, agency_code=None)),
        ("OPERATOR", None, Principal(uid="dev-operator", role=Role.OPERATOR, agency_code=None)),
        (Role.AGENT, "ACME", Principal(uid="dev-agent-ACME", role=Role.AGENT, agency_code="ACME")),
        # an agency claim on a staff token grants nothing
        (Role.OPERATOR, "ACME", Principal("dev-operator", Role.OPERATOR, agency_code=None)),
    ],
)
async def test_emulator_token_verifies_to_principal(
    emulator_verifier: FirebaseVerifier, role: str, agency: str | None, expected: Principal
) -> None:
    token = make_emulator_token(role=role, agency=agency, project_id=PROJECT)

    principal = await emulator_verifier.verify(token)

    assert principal == expected
    assert principal.is_staff is (expected.role is not Role.AGENT)


@pytest.mark.asyncio
async def test_emulator_token_keeps_explicit_uid(emulator_verifier: FirebaseVerifier) -> None:
    token = make_emulator_token(role="agent", agency="ACME", uid="alice", project_id=PROJECT)

    assert await emulator_verifier.verify(token) == Principal("alice", Role.AGENT, "ACME")


AGENT_TOKEN = make_emulator_token(
    role=Role.AGENT, agency="ACME", project_id=PROJECT, lifetime_s=10**8
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("token", "message"),
    [
        (with_claims(AGENT_TOKEN, agency=None), "agent token has no 'agency' claim"),
        (with_claims(AGENT_TOKEN, agency=""), "agent token has no 'agency' claim"),
        (with_claims(AGENT_TOKEN, agency=42), "agent token has no 'agency' claim"),
        (with_claims(AGENT_TOKEN, role=None), "token has no StaySync role claim"),
        (with_claims(AGENT_TOKEN, role="superuser"), "token has no StaySync role claim"),
        (with_claims(AGENT_TOKEN, role="ADMIN"), "token has no StaySync role claim"),
        (with_claims(AGENT_TOKEN, aud="another-project"), "ID token is invalid: "),
        ("garbage", "ID token is invalid: "),
        ("a.b.c", "ID token is invalid: "),
        ("", "ID token is invalid: "),
    ],
)
async def test_emulator_rejects(
    emulator_verifier: FirebaseVerifier, token: str, message: str
) -> None:
    with pytest.raises(AuthenticationError, match=message) as caught:
        await emulator_verifier.verify(token)

    assert caught.value.code == "UNAUTHENTICATED"
    assert "https://" not in caught.value.message  # SDK advice is stripped


@pytest.mark.asyncio
async def test_emulator_switch_set_after_startup_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    verifier = FirebaseVerifier(make_settings())
    try:
        monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", EMULATOR_HOST)

        with pytest.raises(RuntimeError, match="FIREBASE_AUTH_EMULATOR_HOST"):
            await verifier.verify(make_emulator_token(role="admin", project_id=PROJECT))
    finally:
        verifier.close()


@pytest.mark.asyncio
async def test_an_expired_emulator_token_is_refused(emulator_verifier: FirebaseVerifier) -> None:
    # firebase-admin's emulator mode would accept it: the verifier checks `exp` itself
    token = make_emulator_token(role="admin", project_id=PROJECT, now=time.time() - 7200)
    with pytest.raises(AuthenticationError) as caught:
        await emulator_verifier.verify(token)
    assert caught.value.message == "ID token has expired"


# --- Verified tokens are remembered until their exp ------------------------------------------


@pytest.mark.asyncio
async def test_a_token_is_verified_once_and_then_remembered(
    emulator_verifier: FirebaseVerifier, verifications: list[str]
) -> None:
    token = make_emulator_token(role="agent", agency="ACME", project_id=PROJECT)

    first = await emulator_verifier.verify(token)
    again = await emulator_verifier.verify(token)

    assert first == again == Principal("dev-agent-ACME", Role.AGENT, "ACME")
    assert verifications == [token]


@pytest.mark.asyncio
async def test_a_remembered_token_is_refused_once_past_its_exp(
    emulator_verifier: FirebaseVerifier, verifications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a token that verified, valid for another minute
    token = make_emulator_token(role="admin", project_id=PROJECT, lifetime_s=60)
    await emulator_verifier.verify(token)

    # when it comes again two minutes later
    later = time.time() + 120
    monkeypatch.setattr(app.auth, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic))
    with pytest.raises(AuthenticationError) as caught:
        await emulator_verifier.verify(token)

    # then it is refused, and so it is the next time (firebase-admin's emulator mode would accept it)
    assert caught.value.message == "ID token has expired"
    with pytest.raises(AuthenticationError, match="ID token has expired"):
        await emulator_verifier.verify(token)


@pytest.mark.asyncio
async def test_remembered_tokens_are_bounded_least_recently_used_first_out(
    verifications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", EMULATOR_HOST)
    monkeypatch.setattr(app.auth, "VERIFIED_TOKENS_MAX", 2)
    verifier = FirebaseVerifier(make_settings(firebase_auth_emulator_host=EMULATOR_HOST))
    try:
        first, second, third = (make_emulator_token(role="admin", uid=f"u{i}", project_id=PROJECT)
                                for i in range(3))
        for token in (first, second, first, third):  # `second` is now the least recently used
            await verifier.verify(token)
        assert len(verifier._verified_tokens) == 2

        await verifier.verify(first)
        await verifier.verify(second)
    finally:
        verifier.close()

    assert verifications == [first, second, third, second]


@pytest.mark.asyncio
async def test_an_unsigned_token_remembered_in_emulator_mode_is_checked_again_once_the_switch_is_off(
    emulator_verifier: FirebaseVerifier, verifications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_emulator_token(role="admin", project_id=PROJECT)
    await emulator_verifier.verify(token)

    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")
    with pytest.raises(AuthenticationError, match='has no "kid" claim'):
        await emulator_verifier.verify(token)

    assert verifications == [token, token]


def test_the_code_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)  # `make test` says development
    assert Settings(firebase_auth_emulator_host=None).app_env == "production"


def test_memory_broadcast_is_refused_with_several_workers() -> None:
    with pytest.raises(ValidationError, match="memory://"):
        make_settings(web_concurrency=2, broadcast_url="memory://")
    assert make_settings(web_concurrency=2, broadcast_url="redis://127.0.0.1:6379/0").web_concurrency == 2


def test_production_refuses_the_emulator() -> None:
    with pytest.raises(ValidationError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        Settings(app_env="production", firebase_auth_emulator_host=EMULATOR_HOST)


@pytest.mark.parametrize("base", ["http://127.0.0.1:8420", "http://localhost:8420", "http://[::1]:8420"])
def test_production_refuses_a_fake_stripe_on_loopback(base: str) -> None:
    production = {"app_env": "production", "firebase_auth_emulator_host": None}  # whatever the environment says
    with pytest.raises(ValidationError, match="loopback STRIPE_API_BASE"):
        Settings(**production, stripe_api_key="sk_live_x", stripe_api_base=base)
    assert Settings(app_env="development", stripe_api_base=base).stripe_api_base == base
    assert Settings(**production, stripe_api_base="https://stripe-proxy.internal.example").stripe_api_base


# --- Signed tokens (emulator mode off) -----------------------------------------------------


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def self_signed_cert_pem(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Keys:
    google: str  # private key PEM whose certificate the server publishes under KID
    impostor: str  # another private key PEM
    cert: str


@pytest.fixture(scope="module")
def keys() -> Keys:
    google_key = new_private_key()
    return Keys(
        google=private_pem(google_key),
        impostor=private_pem(new_private_key()),
        cert=self_signed_cert_pem(google_key),
    )


@dataclass
class CertServer:
    url: str
    requests: list[str]


@pytest.fixture
def cert_server(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Iterator[CertServer]:
    """Serves {kid: cert} at /certs like Google's securetoken endpoint (other paths: 404)."""
    body = json.dumps({KID: keys.cert}).encode()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path != "/certs":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            # Like Google's endpoint; each test has a fresh verifier, hence a fresh cache.
            self.send_header("Cache-Control", "public, max-age=300")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy in the environment must not intercept
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield CertServer(url=f"http://127.0.0.1:{server.server_port}/certs", requests=seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def verifier(
    cert_server: CertServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FirebaseVerifier]:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    verifier = FirebaseVerifier(make_settings(firebase_cert_url=cert_server.url))
    yield verifier
    verifier.close()


def id_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": "uid-agent-1",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "password", "identities": {}},
        "role": "agent",
        "agency": "ACME",
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(private_key_pem: str, claims: dict[str, Any], kid: str = KID) -> str:
    signer = google.auth.crypt.RSASigner.from_string(private_key_pem, key_id=kid)
    return google.auth.jwt.encode(signer, claims, header={"kid": kid}).decode()


@pytest.mark.asyncio
async def test_signed_token_verifies_and_certs_are_cached(
    verifier: FirebaseVerifier, cert_server: CertServer, keys: Keys
) -> None:
    token = sign(keys.google, id_claims())

    first = await verifier.verify(token)
    second = await verifier.verify(sign(keys.google, id_claims(sub="uid-op", role="operator")))

    assert first == Principal(uid="uid-agent-1", role=Role.AGENT, agency_code="ACME")
    assert second == Principal(uid="uid-op", role=Role.OPERATOR, agency_code=None)
    assert cert_server.requests == ["/certs"]


@pytest.mark.asyncio
async def test_expired_signed_token_is_rejected(verifier: FirebaseVerifier, keys: Keys) -> None:
    now = int(time.time())
    token = sign(keys.google, id_claims(iat=now - 7200, auth_time=now - 7200, exp=now - 3600))

    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)

    assert caught.value.message == "ID token has expired"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda keys: sign(keys.impostor, id_claims()), "Could not verify token signature"),
        (lambda keys: sign(keys.google, id_claims(aud="another-project")), '"aud" (audience)'),
        (
            lambda keys: sign(keys.google, id_claims(iss="https://securetoken.google.com/other")),
            '"iss" (issuer)',
        ),
        (lambda keys: sign(keys.google, id_claims(sub=None)), '"sub" (subject)'),
        (lambda keys: sign(keys.google, id_claims(), kid="unknown-kid"), "unknown-kid"),
        (
            lambda keys: make_emulator_token(role="admin", project_id=PROJECT),
            'Firebase ID token has no "kid" claim',
        ),
        (
            lambda keys: sign(keys.google, id_claims(iat=int(time.time()) + 600)),
            "Token used too early",
        ),
    ],
    ids=[
        "other-key-same-kid",
        "wrong-audience",
        "wrong-issuer",
        "no-subject",
        "unknown-kid",
        "unsigned-emulator-token",
        "issued-in-future",
    ],
)
async def test_bad_signed_token_is_rejected(
    verifier: FirebaseVerifier, keys: Keys, make_token: Any, reason: str
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(make_token(keys))

    assert caught.value.message.startswith("ID token is invalid: ")
    assert reason in caught.value.message
    assert "https://firebase.google.com" not in caught.value.message


@pytest.mark.asyncio
async def test_signed_token_without_role_is_rejected(
    verifier: FirebaseVerifier, keys: Keys
) -> None:
    with pytest.raises(AuthenticationError, match="token has no StaySync role claim"):
        await verifier.verify(sign(keys.google, id_claims(role=None)))


@pytest.mark.asyncio
async def test_certificate_fetch_failure_is_unauthenticated(
    cert_server: CertServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    verifier = FirebaseVerifier(make_settings(firebase_cert_url=cert_server.url + "-missing"))
    try:
        with pytest.raises(AuthenticationError) as caught:
            await verifier.verify(sign(keys.google, id_claims()))
    finally:
        verifier.close()

    assert "public certificates are unavailable" in caught.value.message
    assert "127.0.0.1" not in caught.value.message
    assert cert_server.requests == ["/certs-missing"]
