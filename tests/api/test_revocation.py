"""Revoked tokens and disabled users, with real firebase-admin against a fake Firebase Auth on loopback.

In emulator mode firebase-admin reads user records from
http://FIREBASE_AUTH_EMULATOR_HOST/identitytoolkit.googleapis.com/v1/projects/<id>/accounts:lookup;
the fake answers that endpoint from a dict the tests change. The service-account key is a fresh
RSA key: firebase-admin parses it (credentials.Certificate), and emulator mode never signs with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from app.auth import FirebaseVerifier
from app.settings import Settings
from tests.api.test_subscriptions import http, next_data, open_socket, receive
from tests.api.test_websocket_hardening import closed, token_claims
from tests.support import PROJECT_ID, LiveServer, token
from tests.test_auth_tokens import new_private_key, private_pem

WAIT_S = 10
CHECK_EVERY_S = 0.3
VIEWER = "{ viewer { uid } }"


@dataclass
class FakeFirebaseAuth:
    """accounts:lookup of a Firebase Auth emulator: users by uid (absent: a plain active user)."""

    host: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    lookups: Counter = field(default_factory=Counter)

    def revoke(self, uid: str, after: float) -> None:
        self.users[uid] = {"validSince": str(int(after))}

    def disable(self, uid: str) -> None:
        self.users[uid] = {"disabled": True}

    def fail(self, uid: str) -> None:
        self.users[uid] = {"fail": True}


@pytest.fixture(scope="module")
def fake_auth() -> Iterator[FakeFirebaseAuth]:
    fake = FakeFirebaseAuth(host="")
    lookup_path = f"/identitytoolkit.googleapis.com/v1/projects/{PROJECT_ID}/accounts:lookup"

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != lookup_path:
                self.send_error(404)
                return
            [uid] = body["localId"]
            fake.lookups[uid] += 1
            if fake.users.get(uid, {}).get("fail"):
                self.send_error(503)
                return
            user = {"localId": uid, "disabled": False, **fake.users.get(uid, {})}
            answer = json.dumps({"kind": "identitytoolkit#GetAccountInfoResponse", "users": [user]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("firebase") / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT_ID, "private_key_id": "test-key",
        "private_key": private_pem(new_private_key()), "client_email": f"staysync@{PROJECT_ID}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "http://127.0.0.1:9/never-used",
    }))
    return path


@pytest.fixture(scope="module")
def server(settings: Settings, fake_auth: FakeFirebaseAuth, credentials_file: Path) -> Iterator[LiveServer]:
    # firebase-admin reads the emulator host from the environment when the verifier's client is made
    before = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
    try:
        with LiveServer(settings, firebase_auth_emulator_host=fake_auth.host, firebase_credentials=credentials_file,
                        auth_revocation_check_s=CHECK_EVERY_S) as live:
            yield live
    finally:
        if before is None:
            os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
        else:
            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = before


def bearer(uid: str, **kwargs: Any) -> str:
    return token("agent", "SUNTRAVEL", uid=uid, **kwargs)


async def viewer(server: LiveServer, uid: str) -> dict[str, Any]:
    async with http(server) as gql:
        return await gql(VIEWER, role=None, headers={"Authorization": f"Bearer {bearer(uid)}"})


# --- without credentials ----------------------------------------------------------------------------


def test_without_credentials_the_log_says_revocation_is_not_checked(settings, caplog):
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        verifier = FirebaseVerifier(settings)
    verifier.close()

    assert not verifier.checks_revocation
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "FIREBASE_CREDENTIALS is not set: revoked tokens and disabled users are not detected; "
        "a token is accepted until it expires"]


# --- HTTP -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [("revoke", "ID token has been revoked"), ("disable", "the user account is disabled")],
)
async def test_a_revoked_token_or_disabled_user_is_unauthenticated_over_http(server, fake_auth, change, message):
    uid = f"http-{change}"
    if change == "revoke":
        fake_auth.revoke(uid, after=time.time() + 5)  # after the token's iat
    else:
        fake_auth.disable(uid)

    [error] = (await viewer(server, uid))["errors"]

    assert (error["message"], error["extensions"]["code"]) == (message, "UNAUTHENTICATED")


async def test_http_requests_read_a_user_s_record_once_a_minute(server, fake_auth):
    # given a user whose record was just read
    assert (await viewer(server, "http-cached"))["data"] == {"viewer": {"uid": "http-cached"}}

    # when more requests follow at once, even after a revocation
    fake_auth.revoke("http-cached", after=time.time() + 5)
    later = [await viewer(server, "http-cached") for _ in range(3)]

    # then they are answered from the first reading (AUTH_REVOCATION_CACHE_S, 60 s)
    assert [result["data"] for result in later] == [{"viewer": {"uid": "http-cached"}}] * 3
    assert fake_auth.lookups["http-cached"] == 1


async def test_a_token_issued_after_the_revocation_is_accepted(server, fake_auth):
    fake_auth.revoke("http-reissued", after=time.time() - 60)

    assert (await viewer(server, "http-reissued"))["data"] == {"viewer": {"uid": "http-reissued"}}


# --- websockets -------------------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_at_connect_with_4403(server, fake_auth):
    # given a user whose record HTTP has cached as fine, and who is revoked since
    assert (await viewer(server, "ws-connect"))["data"] == {"viewer": {"uid": "ws-connect"}}
    fake_auth.revoke("ws-connect", after=time.time() + 5)

    # when it opens a socket
    ws = await connect(server.ws_url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=WAIT_S)
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"authorization": f"Bearer {bearer('ws-connect')}"}}))

    # then the record is read afresh, and the socket refused
    assert await closed(ws) == (4403, "Forbidden")
    assert fake_auth.lookups["ws-connect"] == 2


@pytest.mark.parametrize("change", ["revoke", "disable"])
async def test_an_open_socket_closes_with_4403_once_its_user_is_revoked_or_disabled(server, fake_auth, change):
    # given an open socket, serving queries
    uid = f"ws-open-{change}"
    ws = await open_socket(server, bearer=bearer(uid))
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": VIEWER}}))
    assert await next_data(ws) == {"viewer": {"uid": uid}}
    assert await receive(ws) == {"id": "1", "type": "complete"}

    # when the user is revoked (or disabled) in Firebase Auth
    revoked_at = time.time()
    if change == "revoke":
        fake_auth.revoke(uid, after=token_claims(bearer(uid))["iat"] + 1)
    else:
        fake_auth.disable(uid)

    # then the socket is closed at the next check
    reason = "ID token has been revoked" if change == "revoke" else "the user account is disabled"
    assert await closed(ws) == (4403, reason)
    assert time.time() - revoked_at < CHECK_EVERY_S + 2


async def test_when_firebase_auth_cannot_answer_http_is_refused_and_open_sockets_stay(server, fake_auth, caplog):
    # given an open socket, and Firebase Auth failing for its user from then on
    ws = await open_socket(server, bearer=bearer("lookup-fails"))
    fake_auth.fail("lookup-fails")

    # then HTTP requests that need an answer (none cached) are refused
    fake_auth.fail("lookup-fails-http")
    [error] = (await viewer(server, "lookup-fails-http"))["errors"]
    assert error["message"] == "ID token cannot be verified right now: the user record is unavailable"
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    # while the socket, whose token was checked at connect, lives on through several failed checks
    looked_up = fake_auth.lookups["lookup-fails"]
    while fake_auth.lookups["lookup-fails"] < looked_up + 2:
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}
    assert any("revocation check" in record.getMessage() for record in caplog.records)
    await ws.close()
