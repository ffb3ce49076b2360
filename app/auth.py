"""Firebase ID tokens -> Principal.

Verification uses firebase-admin (blocking, so it runs in a thread). Custom claims carry the
StaySync role (`admin` | `operator` | `agent`) and, for agents, the agency code (`agency`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import firebase_admin
import google.auth.credentials
from firebase_admin import auth as firebase_auth
from firebase_admin import exceptions as firebase_exceptions

from app.settings import Settings

logger = logging.getLogger(__name__)

EMULATOR_HOST_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
ID_TOKEN_ISSUER_PREFIX = "https://securetoken.google.com/"
# firebase-admin's default (120 s) would let a hanging certificate endpoint pin every
# verification thread for two minutes.
CERT_FETCH_TIMEOUT_S = 10
# Google's and our clocks disagree by a few seconds at times; without slack, fresh tokens fail
# with "Token used too early".
CLOCK_SKEW_S = 5

_BEARER_FORMAT = "Authorization header must be 'Bearer <Firebase ID token>'"
# firebase-admin appends advice for SDK users ("Make sure the ID token comes from…", "See
# https://… for details"); API clients only need the reason.
_SDK_ADVICE = re.compile(r"\s*(Make sure the|See https?://).*", re.DOTALL)
_MAX_REASON_CHARS = 200
# google-auth quotes the token, or a decoded part of it, in some reasons ("Wrong number of segments
# in token: b'<the token>'"). Strawberry logs every error's message, so drop the quote.
_QUOTED_TOKEN = re.compile(r":\s*b?(['\"]).*?\1", re.DOTALL)


class Role(str, Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Principal:
    uid: str
    role: Role
    agency_code: str | None  # None for admin/operator
    # The token's `exp` (Unix time); websockets close when it passes. Not part of identity.
    expires_at: float | None = field(default=None, compare=False)

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)


class AuthenticationError(Exception):
    """`message` is for the caller (it may quote parts of their own token); `reason` is a fixed
    word for logs, which must never hold any part of a token; `uid` when the token named one."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str, reason: str = "invalid", uid: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.uid = uid


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is no header."""
    if header is None or not header.strip():
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthenticationError(_BEARER_FORMAT, "malformed header")
    return parts[1]


class FirebaseVerifier:
    """Verifies Firebase ID tokens with a firebase-admin App of its own.

    firebase-admin picks emulator mode from os.environ[FIREBASE_AUTH_EMULATOR_HOST] at every
    verification (emulator mode accepts unsigned and expired tokens), so the environment is
    aligned with `settings` here and re-checked on each call.
    """

    def __init__(self, settings: Settings) -> None:
        settings.export_firebase_env()
        self._emulated = bool(settings.firebase_auth_emulator_host)
        # Verifying ID tokens needs only the project id and Google's public certificates. The
        # default credential (Application Default Credentials) would search the environment
        # and the GCE metadata server; AnonymousCredentials is always "valid", is never
        # refreshed, and adds nothing to requests, so no credential is ever looked up.
        self._app: firebase_admin.App | None = firebase_admin.initialize_app(
            credential=google.auth.credentials.AnonymousCredentials(),
            options={
                "projectId": settings.firebase_project_id,
                "httpTimeout": CERT_FETCH_TIMEOUT_S,
            },
            name=f"staysync-auth-{uuid.uuid4().hex}",
        )
        try:
            client = firebase_auth._get_client(self._app)  # the client verify_id_token(app=) uses
            # firebase-admin hard-codes Google's certificate URL in _token_gen.TokenVerifier and
            # offers no option for it. The auth client is created once per App and cached, so
            # repointing its ID-token verifier here holds for every later verify_id_token(app=).
            # Tests and air-gapped deployments (a mirror of Google's endpoint) rely on it.
            self._token_verifier = client._token_verifier
            id_token_verifier = self._token_verifier.id_token_verifier
            if not hasattr(id_token_verifier, "cert_url"):
                raise RuntimeError(
                    f"firebase-admin {firebase_admin.__version__} changed its token verifier; "
                    "FIREBASE_CERT_URL cannot be applied"
                )
            id_token_verifier.cert_url = settings.firebase_cert_url
        except BaseException:
            self.close()
            raise

    async def verify(self, token: str) -> Principal:
        if self._app is None:
            raise RuntimeError("FirebaseVerifier is closed")
        if os.environ.get(EMULATOR_HOST_ENV) and not self._emulated:
            # Fail closed: someone set the emulator switch after startup, and firebase-admin
            # would now accept unsigned tokens.
            raise RuntimeError(
                f"{EMULATOR_HOST_ENV} is set but the settings do not enable emulator mode"
            )
        try:
            claims = await asyncio.to_thread(
                firebase_auth.verify_id_token, token, app=self._app, clock_skew_seconds=CLOCK_SKEW_S
            )
        except firebase_auth.ExpiredIdTokenError:
            raise AuthenticationError("ID token has expired", "expired") from None
        except firebase_auth.RevokedIdTokenError:
            raise AuthenticationError("ID token has been revoked", "revoked") from None
        except firebase_auth.UserDisabledError:
            raise AuthenticationError("the user account is disabled", "user disabled") from None
        except firebase_auth.CertificateFetchError as error:
            # The reason names the certificate URL (maybe an internal mirror): log, don't send.
            logger.warning("ID token verification failed: %s", error)
            raise AuthenticationError(
                "ID token cannot be verified right now: the public certificates are unavailable",
                "certificates unavailable",
            ) from None
        except (firebase_exceptions.FirebaseError, ValueError) as error:
            raise AuthenticationError(f"ID token is invalid: {_reason(error)}") from None
        principal = principal_from_claims(claims)
        # Emulator mode accepts expired tokens; a token past its `exp` is refused in every mode.
        if principal.expires_at is not None and principal.expires_at + CLOCK_SKEW_S < time.time():
            raise AuthenticationError("ID token has expired", "expired", principal.uid)
        return principal

    def close(self) -> None:
        if self._app is None:
            return
        app, self._app = self._app, None
        firebase_admin.delete_app(app)
        token_verifier = getattr(self, "_token_verifier", None)
        if token_verifier is not None:
            token_verifier.request.session.close()


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map verified claims; a token without a usable StaySync role is not a StaySync login."""
    uid = claims.get("uid") or claims.get("sub")
    if not isinstance(uid, str) or not uid:
        raise AuthenticationError("ID token has no subject", "no subject")
    raw_role = claims.get("role")
    if raw_role is None:
        raise AuthenticationError("token has no StaySync role claim", "no role", uid)
    try:
        role = Role(raw_role)
    except ValueError:
        raise AuthenticationError(
            f"token has no StaySync role claim: 'role' must be admin, operator or agent, "
            f"not {str(raw_role)[:40]!r}", "unknown role", uid,
        ) from None
    exp = claims.get("exp")
    expires_at = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    if role is not Role.AGENT:
        return Principal(uid=uid, role=role, agency_code=None, expires_at=expires_at)
    agency = claims.get("agency")
    if not isinstance(agency, str) or not agency.strip():
        raise AuthenticationError("agent token has no 'agency' claim (the agency code)", "no agency", uid)
    return Principal(uid=uid, role=role, agency_code=agency, expires_at=expires_at)


def make_emulator_token(
    *,
    role: Role | str,
    agency: str | None = None,
    uid: str | None = None,
    project_id: str,
    lifetime_s: int = 3600,
    now: float | None = None,
) -> str:
    """An unsigned ID token as the Firebase Auth emulator issues it.

    Only accepted while FIREBASE_AUTH_EMULATOR_HOST is set (never in production).
    """
    parsed_role = _parse_role(role)
    if parsed_role is Role.AGENT and not agency:
        raise ValueError("an agent token needs an agency code (agency=...)")
    if uid is None:
        uid = f"dev-agent-{agency}" if parsed_role is Role.AGENT else f"dev-{parsed_role.value}"
    if not uid or len(uid) > 128:
        raise ValueError("uid must be 1 to 128 characters")
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ID_TOKEN_ISSUER_PREFIX + project_id,
        "aud": project_id,
        "sub": uid,
        "user_id": uid,
        "auth_time": issued_at,
        "iat": issued_at,
        "exp": issued_at + lifetime_s,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
        "role": parsed_role.value,
    }
    if agency is not None:
        claims["agency"] = agency
    header = {"alg": "none", "typ": "JWT"}
    return f"{_b64_json(header)}.{_b64_json(claims)}."


def _parse_role(role: Role | str) -> Role:
    if isinstance(role, Role):
        return role
    try:
        return Role(role.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {role!r}: expected admin, operator or agent") from None


def _b64_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _reason(error: Exception) -> str:
    reason = _QUOTED_TOKEN.sub("", _SDK_ADVICE.sub("", str(error))).strip()
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 1] + "…"
    return reason
