"""Firebase ID tokens -> Principal.

Verification uses firebase-admin (blocking, so it runs in a thread). Custom claims carry the
StaySync role (`admin` | `operator` | `agent`) and, for agents, the agency code (`agency`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
from firebase_admin import credentials as firebase_credentials
from firebase_admin import exceptions as firebase_exceptions

from app.lru import LRU
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
# Users whose revocation answers are cached at most (per worker); past that, stale ones are dropped.
REVOCATION_CACHE_MAX_USERS = 10_000
# Tokens whose verified principal is kept (per worker), least recently used first out. An entry is
# about 300 bytes; 10,000 covers every client of a worker that sends its token again within its hour.
VERIFIED_TOKENS_MAX = 10_000


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
    # The token's `iat`: a revocation after it invalidates the token.
    issued_at: float | None = field(default=None, compare=False)

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


class UserLookupFailed(AuthenticationError):
    """Firebase Auth could not be asked whether the user is revoked or disabled."""


@dataclass(frozen=True, slots=True)
class _UserStatus:
    checked_at: float  # time.monotonic()
    disabled: bool
    tokens_valid_after_ms: int


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
        # Revocation needs the user's record, which only a service account may read.
        self.checks_revocation = settings.firebase_credentials is not None
        self._revocation_cache_s = settings.auth_revocation_cache_s
        self._user_status: dict[str, _UserStatus] = {}
        self._verified_tokens: LRU[tuple[bool, bytes], Principal] = LRU(VERIFIED_TOKENS_MAX)
        if self.checks_revocation:
            credential: Any = firebase_credentials.Certificate(str(settings.firebase_credentials))
        else:
            logger.warning("FIREBASE_CREDENTIALS is not set: revoked tokens and disabled users are not "
                           "detected; a token is accepted until it expires")
            # Verifying ID tokens needs only the project id and Google's public certificates. The
            # default credential (Application Default Credentials) would search the environment
            # and the GCE metadata server; AnonymousCredentials is always "valid", is never
            # refreshed, and adds nothing to requests, so no credential is ever looked up.
            credential = google.auth.credentials.AnonymousCredentials()
        self._app: firebase_admin.App | None = firebase_admin.initialize_app(
            credential=credential,
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

    async def verify(self, token: str, *, fresh: bool = False) -> Principal:
        """The principal of a valid, unexpired token whose user is neither disabled nor revoked
        (see check_revocation; `fresh` looks the user up again).

        A token that verified once is remembered until its `exp` (by its hash, so no token is
        kept in memory): a client sends the same token for an hour, and decoding it and checking
        its signature in a thread every time is most of what authentication costs. What can change
        within that hour is still checked on every call: the expiry and the user's revocation.
        """
        if self._app is None:
            raise RuntimeError("FirebaseVerifier is closed")
        emulated = bool(os.environ.get(EMULATOR_HOST_ENV))
        if emulated and not self._emulated:
            # Fail closed: someone set the emulator switch after startup, and firebase-admin
            # would now accept unsigned tokens.
            raise RuntimeError(
                f"{EMULATOR_HOST_ENV} is set but the settings do not enable emulator mode"
            )
        # The mode is part of the key: a token accepted unsigned by emulator mode is verified
        # again, signature and all, if the switch is ever cleared.
        key = (emulated, hashlib.sha256(token.encode()).digest())
        principal = self._verified_tokens.get(key)
        if principal is None:
            principal = await self._verify_token(token)
            if principal.expires_at is not None:
                self._verified_tokens.put(key, principal)
        # Emulator mode accepts expired tokens, and a remembered one outlives its `exp`: a token
        # past its `exp` is refused in every mode.
        if principal.expires_at is not None and principal.expires_at + CLOCK_SKEW_S < time.time():
            self._verified_tokens.discard(key)
            raise AuthenticationError("ID token has expired", "expired", principal.uid)
        await self.check_revocation(principal, fresh=fresh)
        return principal

    async def _verify_token(self, token: str) -> Principal:
        """firebase-admin's verification (signature, audience, issuer, times) and the claims' mapping."""
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
        return principal_from_claims(claims)

    async def check_revocation(self, principal: Principal, *, fresh: bool = False) -> None:
        """Refuse (AuthenticationError) a user who is disabled or whose tokens were revoked after
        this one was issued, as verify_id_token(check_revoked=True) does. The user's record is
        read from Firebase Auth at most once per AUTH_REVOCATION_CACHE_S per uid, or now if
        `fresh`; UserLookupFailed when it cannot be read. Nothing is checked without credentials.
        """
        if not self.checks_revocation:
            return
        status = None if fresh else self._user_status.get(principal.uid)
        if status is None or time.monotonic() - status.checked_at >= self._revocation_cache_s:
            status = await self._look_up(principal.uid)
        if status.disabled:
            raise AuthenticationError("the user account is disabled", "user disabled", principal.uid)
        if (principal.issued_at or 0) * 1000 < status.tokens_valid_after_ms:
            raise AuthenticationError("ID token has been revoked", "revoked", principal.uid)

    async def _look_up(self, uid: str) -> _UserStatus:
        try:
            user = await asyncio.to_thread(firebase_auth.get_user, uid, app=self._app)
        except firebase_auth.UserNotFoundError:
            raise AuthenticationError("the user account does not exist", "unknown user", uid) from None
        except (firebase_exceptions.FirebaseError, ValueError) as error:
            # The reason may name internal endpoints: log, don't send.
            logger.warning("could not read the user record of %s for the revocation check: %s", uid, error)
            raise UserLookupFailed(
                "ID token cannot be verified right now: the user record is unavailable", "user lookup failed",
                uid) from None
        status = _UserStatus(time.monotonic(), user.disabled, user.tokens_valid_after_timestamp)
        if len(self._user_status) >= REVOCATION_CACHE_MAX_USERS:
            self._user_status = {uid: kept for uid, kept in self._user_status.items()
                                 if status.checked_at - kept.checked_at < self._revocation_cache_s}
            if len(self._user_status) >= REVOCATION_CACHE_MAX_USERS:
                self._user_status.clear()
        self._user_status[uid] = status
        return status

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
    expires_at, issued_at = _unix_time(claims.get("exp")), _unix_time(claims.get("iat"))
    if role is not Role.AGENT:
        return Principal(uid=uid, role=role, agency_code=None, expires_at=expires_at, issued_at=issued_at)
    agency = claims.get("agency")
    if not isinstance(agency, str) or not agency.strip():
        raise AuthenticationError("agent token has no 'agency' claim (the agency code)", "no agency", uid)
    return Principal(uid=uid, role=role, agency_code=agency, expires_at=expires_at, issued_at=issued_at)


def _unix_time(claim: Any) -> float | None:
    return float(claim) if isinstance(claim, (int, float)) and not isinstance(claim, bool) else None


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
