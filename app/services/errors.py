"""The business failures of the use cases: exceptions that carry data, never Strawberry types.

Raised inside a write's transaction, they roll it back, so a failure changes nothing. The API
turns each into its typed union member (app.api.errors); other callers read the same fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from db.engine import database_unavailable  # a lost database or exhausted pool: retry the same request
from db.inventory import LockTimeout  # a failure like these: retryable, and it changed nothing
from domain import Money, Violation

__all__ = [
    "BlockUnderflow", "BookingExpired", "CreditLimitExceeded", "Failure", "Forbidden", "IdempotencyConflict", "InvalidInput",
    "InvalidTransition", "LockTimeout", "NotFound", "PaymentRequired", "RestrictionViolated", "Shortfall", "SlotDiff", "SoldOut", "SyncAlreadyRunning", "database_unavailable",
]


class Failure(Exception):
    """An expected business failure; `message` is meant for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(Failure):
    """The caller's role may not do this (an agent growing a block, say). Not a union member: the
    API answers it like a permission refusal, with code FORBIDDEN."""


class InvalidInput(Failure):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(Failure):
    """Nothing with that id exists, or the caller may not see it (the same answer, on purpose)."""

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


class InvalidTransition(Failure):
    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class SyncAlreadyRunning(Failure):
    """A supplier's sync is already running (one run at a time per supplier)."""

    def __init__(self, supplier_code: str, run_id: int | None) -> None:
        super().__init__(f"a sync of supplier {supplier_code} is already running"
                         + (f" (run {run_id})" if run_id is not None else ""))
        self.run_id = run_id


class IdempotencyConflict(Failure):
    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key


class BookingExpired(Failure):
    def __init__(self, message: str, expires_at: datetime | None) -> None:
        super().__init__(message)
        self.expires_at = expires_at


class PaymentRequired(Failure):
    """The group cannot be confirmed before `amount_due` is paid (PREPAY, or a DEPOSIT's deposit)."""

    def __init__(self, message: str, amount_due: Money) -> None:
        super().__init__(message)
        self.amount_due = amount_due


class CreditLimitExceeded(Failure):
    """A credit sale of `amount` would take what the agency owes, `outstanding`, past `limit`."""

    def __init__(self, message: str, limit: Money, outstanding: Money, amount: Money) -> None:
        super().__init__(message)
        self.limit, self.outstanding, self.amount = limit, outstanding, amount


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One night on which a request wanted more rooms than are available."""

    room_type_id: int
    room_type_code: str
    date: date
    requested: int
    available: int
    hardblock_id: int | None = None  # None: the pool


class SoldOut(Failure):
    def __init__(self, shortfalls: Sequence[Shortfall]) -> None:
        super().__init__(f"not enough rooms: {_listed(shortfalls, _shortfall)}")
        self.shortfalls = list(shortfalls)


class RestrictionViolated(Failure):
    """The stays break selling restrictions (minStay, closedToArrival, ...): nothing was booked.
    `violations` lists every one; `codes` names the room types in the message."""

    def __init__(self, violations: Sequence[Violation], codes: dict[int, str]) -> None:
        super().__init__("restrictions not met: " + _listed(
            violations, lambda v: f"{codes.get(v.room_type_id, v.room_type_id)} {v.date.isoformat()} {v.rule}: {v.detail}"))
        self.violations = list(violations)


@dataclass(frozen=True, slots=True)
class SlotDiff:
    """One night of an amendment's diff grid: the block's size before and after."""

    date: date
    before: int
    after: int
    delta: int
    conflict: str | None = None  # BLOCK_UNDERFLOW, SOLD_OUT or RELEASED; None when it can be made
    booked: int = 0
    pool_needed: int = 0
    pool_available: int | None = None


class BlockUnderflow(Failure):
    def __init__(self, slots: Sequence[SlotDiff]) -> None:
        super().__init__("the block cannot hold fewer rooms than are booked from it: "
                         + _listed(slots, lambda s: f"{s.date.isoformat()} ({s.booked} booked > {s.after})"))
        self.slots = list(slots)


def _shortfall(s: Shortfall) -> str:
    return f"{s.room_type_code} {s.date.isoformat()} ({s.requested} > {s.available})"


def _listed(items: Sequence, describe) -> str:  # noqa: ANN001
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return ", ".join(map(describe, items[:5])) + more
