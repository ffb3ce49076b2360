"""Business failures as data: the typed union members the use cases' failures become.

Resolvers call a use case; `Schema(exception_handlers=HANDLERS)` turns each failure of
app.services.errors into its GraphQL type when the field's result union lists it. The
transaction around the write has already rolled back by then, so a failure changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, get_args

import strawberry

from app.api.permissions import Info
from app.api.types import Money, money, related
from app.services import errors as failures


@strawberry.interface(description="A business failure returned as data (not as a top-level error).")
class UserError:
    message: str
    code: str


@strawberry.type(description="The input was rejected; `field` names the offending input field.")
class InvalidInput(UserError):
    field: str | None


@strawberry.type(description="Nothing with that id exists (or it is not visible to the caller).")
class NotFound(UserError):
    id: strawberry.ID | None


@strawberry.type(description="The entity's current state does not allow this operation.")
class InvalidTransition(UserError):
    status: str | None


@strawberry.type(description="The inventory lock was busy for longer than the lock timeout; retry.")
class LockTimeout(UserError):
    retryable: bool = True


async def _shortfall_room_type(root: Shortfall, info: Info) -> Annotated[RoomType, strawberry.lazy("app.api.catalog")]:  # noqa: F821
    return await related(info, "RoomType", root.room_type_id)


async def _shortfall_hardblock(root: Shortfall, info: Info) -> Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")] | None:  # noqa: F821
    return await related(info, "Hardblock", root.hardblock_id)


@strawberry.type(description="One night on which the request wanted more rooms than are available.")
class Shortfall:
    room_type: Annotated[RoomType, strawberry.lazy("app.api.catalog")] = strawberry.field(  # noqa: F821
        resolver=_shortfall_room_type)
    date: date
    requested: int
    available: int
    hardblock: Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")] | None = strawberry.field(  # noqa: F821
        resolver=_shortfall_hardblock, description="The hardblock the rooms were asked from; null for the pool.")
    room_type_id: strawberry.Private[int] = 0
    hardblock_id: strawberry.Private[int | None] = None


@strawberry.type(description="Not enough rooms: nothing was booked. `shortfalls` lists every night short.")
class SoldOut(UserError):
    shortfalls: list[Shortfall]


async def _violation_room_type(root: Violation, info: Info) -> Annotated[RoomType, strawberry.lazy("app.api.catalog")]:  # noqa: F821
    return await related(info, "RoomType", root.room_type_id)


@strawberry.type(description="One selling restriction a stay breaks.")
class Violation:
    room_type: Annotated[RoomType, strawberry.lazy("app.api.catalog")] = strawberry.field(  # noqa: F821
        resolver=_violation_room_type)
    date: date = strawberry.field(description="The arrival, or the departure for CLOSED_TO_DEPARTURE.")
    rule: str = strawberry.field(description="MIN_STAY, MAX_STAY, CLOSED_TO_ARRIVAL, CLOSED_TO_DEPARTURE, "
                                 "MIN_ADVANCE_DAYS or MAX_ADVANCE_DAYS.")
    detail: str
    room_type_id: strawberry.Private[int] = 0


@strawberry.type(description="The stays break selling restrictions: nothing was booked. `violations` lists "
                 "every one.")
class RestrictionViolated(UserError):
    violations: list[Violation]


@strawberry.type(description="One night of an amendment's diff grid.")
class HardblockSlotDiff:
    date: date
    before: int
    after: int
    delta: int
    conflict: str | None = strawberry.field(description="Why the change cannot be made on this night: "
                                            "BLOCK_UNDERFLOW, SOLD_OUT or RELEASED; null when it can.")
    booked: int = strawberry.field(default=0, description="Rooms booked from the block on this night.")
    pool_needed: int = strawberry.field(default=0, description="Rooms the change takes from the pool.")
    pool_available: int | None = strawberry.field(default=None, description="Pool rooms available on this "
                                                  "night before the change (previews only).")

    @classmethod
    def of(cls, diff: failures.SlotDiff) -> HardblockSlotDiff:
        return cls(date=diff.date, before=diff.before, after=diff.after, delta=diff.delta, conflict=diff.conflict,
                   booked=diff.booked, pool_needed=diff.pool_needed, pool_available=diff.pool_available)


@strawberry.type(description="The block would hold fewer rooms than are booked from it on `nights`; "
                 "nothing was changed.")
class BlockUnderflow(UserError):
    nights: list[date]
    slots: list[HardblockSlotDiff]


@strawberry.type(description="This idempotency key was already used for a different request.")
class IdempotencyConflict(UserError):
    idempotency_key: str


@strawberry.type(description="The hold lapsed before it was confirmed; its rooms went back on sale.")
class BookingExpired(UserError):
    expired_at: datetime | None


@strawberry.type(description="Money is due before the group can be confirmed (PREPAY, or a DEPOSIT's deposit): "
                 "startPayment takes it by card.")
class PaymentRequired(UserError):
    amount_due: Money


@strawberry.type(description="A sale on credit would take what the agency owes past its credit limit.")
class CreditLimitExceeded(UserError):
    limit: Money
    outstanding: Money
    amount: Money


async def _running_run(root: SyncAlreadyRunning, info: Info) -> Annotated[SyncRun, strawberry.lazy("app.api.supply")] | None:  # noqa: F821
    return await related(info, "SyncRun", root.run_id)


@strawberry.type(description="A sync of this supplier is already running; `run` is that run.")
class SyncAlreadyRunning(UserError):
    run: Annotated[SyncRun, strawberry.lazy("app.api.supply")] | None = strawberry.field(  # noqa: F821
        resolver=_running_run)
    run_id: strawberry.Private[int | None] = None


class _InvalidInputHandler(strawberry.ExceptionHandler[failures.InvalidInput, InvalidInput]):
    def handle(self, exception: failures.InvalidInput, **_: Any) -> InvalidInput:
        return InvalidInput(message=exception.message, code="INVALID_INPUT", field=exception.field)


class _NotFoundHandler(strawberry.ExceptionHandler[failures.NotFound, NotFound]):
    def handle(self, exception: failures.NotFound, **_: Any) -> NotFound:
        return NotFound(message=exception.message, code="NOT_FOUND", id=exception.id)


class _InvalidTransitionHandler(strawberry.ExceptionHandler[failures.InvalidTransition, InvalidTransition]):
    def handle(self, exception: failures.InvalidTransition, **_: Any) -> InvalidTransition:
        return InvalidTransition(message=exception.message, code="INVALID_TRANSITION", status=exception.status)


class _LockTimeoutHandler(strawberry.ExceptionHandler[failures.LockTimeout, LockTimeout]):
    def handle(self, exception: failures.LockTimeout, **_: Any) -> LockTimeout:
        return LockTimeout(message=f"{exception}; retry the request", code="LOCK_TIMEOUT")


class _SoldOutHandler(strawberry.ExceptionHandler[failures.SoldOut, SoldOut]):
    def handle(self, exception: failures.SoldOut, **_: Any) -> SoldOut:
        return SoldOut(message=exception.message, code="SOLD_OUT", shortfalls=[
            Shortfall(date=s.date, requested=s.requested, available=s.available, room_type_id=s.room_type_id,
                      hardblock_id=s.hardblock_id)
            for s in exception.shortfalls
        ])


class _RestrictionViolatedHandler(strawberry.ExceptionHandler[failures.RestrictionViolated, RestrictionViolated]):
    def handle(self, exception: failures.RestrictionViolated, **_: Any) -> RestrictionViolated:
        return RestrictionViolated(message=exception.message, code="RESTRICTION_VIOLATED", violations=[
            Violation(date=v.date, rule=v.rule.value, detail=v.detail, room_type_id=v.room_type_id)
            for v in exception.violations
        ])


class _IdempotencyConflictHandler(strawberry.ExceptionHandler[failures.IdempotencyConflict, IdempotencyConflict]):
    def handle(self, exception: failures.IdempotencyConflict, **_: Any) -> IdempotencyConflict:
        return IdempotencyConflict(message=exception.message, code="IDEMPOTENCY_CONFLICT",
                                   idempotency_key=exception.key)


class _BlockUnderflowHandler(strawberry.ExceptionHandler[failures.BlockUnderflow, BlockUnderflow]):
    def handle(self, exception: failures.BlockUnderflow, **_: Any) -> BlockUnderflow:
        return BlockUnderflow(message=exception.message, code="BLOCK_UNDERFLOW",
                              nights=[s.date for s in exception.slots],
                              slots=[HardblockSlotDiff.of(s) for s in exception.slots])


class _BookingExpiredHandler(strawberry.ExceptionHandler[failures.BookingExpired, BookingExpired]):
    def handle(self, exception: failures.BookingExpired, **_: Any) -> BookingExpired:
        return BookingExpired(message=exception.message, code="BOOKING_EXPIRED", expired_at=exception.expires_at)


class _PaymentRequiredHandler(strawberry.ExceptionHandler[failures.PaymentRequired, PaymentRequired]):
    def handle(self, exception: failures.PaymentRequired, **_: Any) -> PaymentRequired:
        return PaymentRequired(message=exception.message, code="PAYMENT_REQUIRED", amount_due=money(exception.amount_due))


class _CreditLimitExceededHandler(strawberry.ExceptionHandler[failures.CreditLimitExceeded, CreditLimitExceeded]):
    def handle(self, exception: failures.CreditLimitExceeded, **_: Any) -> CreditLimitExceeded:
        return CreditLimitExceeded(message=exception.message, code="CREDIT_LIMIT_EXCEEDED",
                                   limit=money(exception.limit), outstanding=money(exception.outstanding),
                                   amount=money(exception.amount))


class _SyncAlreadyRunningHandler(strawberry.ExceptionHandler[failures.SyncAlreadyRunning, SyncAlreadyRunning]):
    def handle(self, exception: failures.SyncAlreadyRunning, **_: Any) -> SyncAlreadyRunning:
        return SyncAlreadyRunning(message=exception.message, code="SYNC_ALREADY_RUNNING", run_id=exception.run_id)


HANDLERS = (
    _InvalidInputHandler(), _NotFoundHandler(), _InvalidTransitionHandler(), _LockTimeoutHandler(),
    _SoldOutHandler(), _RestrictionViolatedHandler(), _IdempotencyConflictHandler(), _BlockUnderflowHandler(), _BookingExpiredHandler(),
    _SyncAlreadyRunningHandler(), _PaymentRequiredHandler(), _CreditLimitExceededHandler(),
)

_HANDLED = [(get_args(type(handler).__orig_bases__[0])[0], handler) for handler in HANDLERS]  # type: ignore[attr-defined]


def as_user_error(exception: Exception) -> UserError | None:
    """The union member a failure becomes (for results built by hand, like the per-block results of
    bulk mutations); None for anything unexpected."""
    for exception_type, handler in _HANDLED:
        if isinstance(exception, exception_type):
            return handler.handle(exception)  # type: ignore[attr-defined]
    return None
