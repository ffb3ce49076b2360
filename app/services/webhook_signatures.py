"""Standard Webhooks signatures, both ways: checking what a supplier pushes to us, and signing
what we push to partners.

`webhook-signature: v1,<base64 of HMAC-SHA256("{webhook-id}.{webhook-timestamp}.{body}")>`, keyed
with the bytes of a `whsec_<base64>` secret; the header may hold several space-separated
signatures (a sender rotating its secret), and one match is enough. A timestamp more than five
minutes from now either way is refused, so a captured request cannot be replayed later.

Written here rather than taken from the `standardwebhooks` package, whose output the tests check
this against: its `verify` reads the wall clock (no `now` to test with), lets a malformed header
escape as ValueError or binascii.Error instead of its own error, and needs the body as text; its
`sign` misreads an aware timestamp that is not in UTC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

SECRET_PREFIX = "whsec_"
TOLERANCE = timedelta(minutes=5)
_SECONDS = re.compile(r"[0-9]{1,12}")


class SignatureInvalid(Exception):
    """A request's signature headers do not prove it came from the secret's holder, just now."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret. ValueError when it is not one: that is our configuration
    at fault, not the sender's, so it is not a SignatureInvalid."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"a webhook secret is {SECRET_PREFIX!r} followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def new_secret(size: int = 32) -> str:
    """A fresh random secret, `whsec_` + base64 of `size` bytes (the standard asks for 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for `body` sent as `msg_id` at `timestamp` (Unix seconds)."""
    return "v1," + base64.b64encode(_mac(secret_key(secret), msg_id, str(timestamp), body)).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The three headers that make `body` a signed webhook sent at `now`."""
    timestamp = int(now.timestamp())  # an aware datetime's instant, whatever its zone
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None) -> str:
    """The request's `webhook-id` (the sender's dedupe key) once its signature holds; raises
    SignatureInvalid otherwise. `headers` may be any case; `body` is the raw bytes received."""
    key = secret_key(secret)
    found = {name.lower(): value for name, value in headers.items()}
    msg_id, timestamp, signatures = (found.get(name, "").strip()
                                     for name in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", timestamp), ("webhook-signature", signatures)):
        if not value:
            raise SignatureInvalid(f"the {name} header is missing")
    if not _SECONDS.fullmatch(timestamp):
        raise SignatureInvalid("the webhook-timestamp header is not whole seconds since 1970")
    age = (now or datetime.now(UTC)).timestamp() - int(timestamp)
    if age > TOLERANCE.total_seconds():
        raise SignatureInvalid(f"the webhook-timestamp is {age:.0f}s old (at most {TOLERANCE.seconds}s: a replay?)")
    if -age > TOLERANCE.total_seconds():
        raise SignatureInvalid(f"the webhook-timestamp is {-age:.0f}s in the future (at most {TOLERANCE.seconds}s)")
    expected = _mac(key, msg_id, timestamp, body)
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":  # another scheme (v1a is asymmetric): not ours to check
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(given, expected):
            return msg_id
    raise SignatureInvalid("no v1 signature matches (a wrong secret, or the body or headers were changed)")


def _mac(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
