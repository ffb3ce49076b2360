"""Idempotency keys for the writes that are not idempotent by nature, with createBooking's rules.

A key is scoped to the caller (an agent's agency; a staff member's own uid). The first request
with a key claims it in its own transaction and stores its outcome there (`Keyed` on SQLAlchemy;
`KeyedWrite` on asyncpg, in the write's one statement); a failure rolls the claim back with
everything else, so a retry after a failure runs again. A retry of a committed request
gets the first outcome (the rows it wrote, read as they are now); the same key with a different
request is an IdempotencyConflict. Concurrent retries serialise on the key's unique index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.context import Caller
from app.services import errors
from app.services.errors import Failure, IdempotencyConflict, InvalidInput
from db import models
from db.bookings import claim_idempotency_key

MAX_KEY_CHARS = 200
_NO_OUTCOME = object()


def check_key(key: str | None) -> str | None:
    """The key trimmed, or None when there is none; InvalidInput when it is blank or too long."""
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidInput("idempotencyKey", f"idempotencyKey must be 1 to {MAX_KEY_CHARS} characters")
    return key


def _scope(caller: Caller) -> str:
    principal = caller.principal
    if principal.agency_code is not None:  # agents: their agency, as createBooking
        return principal.agency_code
    # Staff: their own uid (hashed: uids run to 128 characters; the prefix keeps it apart from any agency code).
    return "uid:" + hashlib.sha256(principal.uid.encode()).hexdigest()[:40]


def _hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Keyed:
    """One keyed write, inside its transaction: `replay()` first, then `remember(outcome)` before
    committing. Without a key both do nothing."""

    def __init__(self, session: AsyncSession, caller: Caller, key: str | None, operation: str,
                 request: dict[str, Any]) -> None:
        self.session, self.key, self.scope = session, key, _scope(caller)
        self.request_hash = _hash(operation, request)

    async def replay(self) -> Any:
        """The first request's outcome for a retry; `None` when this request claimed the key (or
        has none). IdempotencyConflict for the same key with a different request."""
        if self.key is None:
            return None
        earlier = await claim_idempotency_key(self.session, self.scope, self.key, self.request_hash)
        return None if earlier is None else _replayed(self.key, self.request_hash, earlier)

    async def remember(self, outcome: Any) -> None:
        if self.key is None:
            return
        key = models.IdempotencyKey
        await self.session.execute(
            update(key).where(key.scope == self.scope, key.key == self.key).values(outcome=outcome)
            .execution_options(synchronize_session=False)
        )


def _replayed(key: str, request_hash: str, earlier: Any) -> Any:
    """The outcome a used key (`earlier`: its request_hash and outcome) gives a retry of the request."""
    if earlier.request_hash != request_hash or earlier.outcome is None:
        raise IdempotencyConflict(key)
    return earlier.outcome


class KeyedWrite:
    """One keyed write on asyncpg (db.fastpath), whose statements carry the key: its reads return
    what the key holds (`lookup`), `replay` answers a retry from that, and the write statement
    claims the key with the outcome (`claim`) or finds it taken by a concurrent request that
    committed first (then the write rolls back and replays it). Without a key all three do nothing."""

    def __init__(self, caller: Caller, key: str | None, operation: str, request: dict[str, Any]) -> None:
        self.key, self.scope = key, _scope(caller)
        self.request_hash = _hash(operation, request)

    @property
    def lookup(self) -> tuple[str, str] | None:
        return None if self.key is None else (self.scope, self.key)

    def replay(self, earlier: Any) -> Any:
        """The first request's outcome for a retry (`earlier`: what the key held when read, None
        when unused); None otherwise. IdempotencyConflict for the same key with a different request."""
        return None if earlier is None or self.key is None else _replayed(self.key, self.request_hash, earlier)

    def claim(self, outcome: Any) -> tuple[str, str, str, Any] | None:
        return None if self.key is None else (self.scope, self.key, self.request_hash, outcome)


# --- failures as stored outcomes (a bulk write answers some items with failures) -----------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {name: _plain(v) for name, v in dataclasses.asdict(value).items()}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def failure_record(failure: Failure) -> dict[str, Any]:
    """A failure as JSON: its class and the arguments that rebuild it."""
    if isinstance(failure, errors.SoldOut):
        return {"failure": "SoldOut", "shortfalls": _plain(failure.shortfalls)}
    if isinstance(failure, errors.BlockUnderflow):
        return {"failure": "BlockUnderflow", "slots": _plain(failure.slots)}
    if isinstance(failure, errors.InvalidInput):
        return {"failure": "InvalidInput", "field": failure.field, "message": failure.message}
    if isinstance(failure, errors.NotFound):
        return {"failure": "NotFound", "message": failure.message, "id": failure.id}
    if isinstance(failure, errors.InvalidTransition):
        return {"failure": "InvalidTransition", "message": failure.message, "status": failure.status}
    raise TypeError(f"{type(failure).__name__} is not a recorded outcome")  # LockTimeout rolls everything back


def _dated(cls: type, record: dict[str, Any]) -> Any:
    return cls(**{**record, "date": date.fromisoformat(record["date"])})


def failure_of(record: dict[str, Any]) -> Failure:
    kind = record["failure"]
    if kind == "SoldOut":
        return errors.SoldOut([_dated(errors.Shortfall, s) for s in record["shortfalls"]])
    if kind == "BlockUnderflow":
        return errors.BlockUnderflow([_dated(errors.SlotDiff, s) for s in record["slots"]])
    if kind == "InvalidInput":
        return errors.InvalidInput(record["field"], record["message"])
    if kind == "NotFound":
        return errors.NotFound(record["message"], record["id"])
    return errors.InvalidTransition(record["message"], record["status"])
