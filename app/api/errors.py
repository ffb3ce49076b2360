"""Business failures: Python exceptions that carry data, and the typed union members they become.

Resolvers raise; `Schema(exception_handlers=HANDLERS)` turns each exception into its GraphQL
type when the field's result union lists it. The transaction around the write has already
rolled back by then, so a failure changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, get_args

import strawberry

from app.api.types import RoomType
from db import models
from db.inventory import LockTimeout as LockTimeoutError

if TYPE_CHECKING:
    from app.api.hardblocks import Hardblock, HardblockSlotDiff


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


@strawberry.type(description="One night on which the request wanted more rooms than are available.")
class Shortfall:
    room_type: RoomType
    date: date
    requested: int
    available: int
    hardblock_row: strawberry.Private[models.Hardblock | None] = None

    @strawberry.field(description="The hardblock the rooms were asked from; null for the pool.")
    def hardblock(self) -> Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")] | None:
        from app.api.hardblocks import Hardblock

        return Hardblock.from_row(self.hardblock_row) if self.hardblock_row else None


@strawberry.type(description="Not enough rooms: nothing was booked. `shortfalls` lists every night short.")
class SoldOut(UserError):
    shortfalls: list[Shortfall]


@strawberry.type(description="The block would hold fewer rooms than are booked from it on `nights`; "
                 "nothing was changed.")
class BlockUnderflow(UserError):
    nights: list[date]
    slots: list[Annotated[HardblockSlotDiff, strawberry.lazy("app.api.hardblocks")]]


@strawberry.type(description="This idempotency key was already used for a different request.")
class IdempotencyConflict(UserError):
    idempotency_key: str


@strawberry.type(description="The hold lapsed before it was confirmed; its rooms went back on sale.")
class BookingExpired(UserError):
    expired_at: datetime | None


class InvalidInputError(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class NotFoundError(Exception):
    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.message, self.id = message, id


class InvalidTransitionError(Exception):
    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class SoldOutError(Exception):
    def __init__(self, shortfalls: list[Shortfall]) -> None:
        nights = ", ".join(f"{s.room_type.code} {s.date.isoformat()} ({s.requested} > {s.available})"
                           for s in shortfalls[:5])
        more = f" and {len(shortfalls) - 5} more" if len(shortfalls) > 5 else ""
        super().__init__(f"not enough rooms: {nights}{more}")
        self.message, self.shortfalls = str(self), shortfalls


class IdempotencyConflictError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.message, self.key = str(self), key


class BlockUnderflowError(Exception):
    def __init__(self, slots: list[HardblockSlotDiff]) -> None:
        nights = ", ".join(f"{s.date.isoformat()} ({s.booked} booked > {s.after})" for s in slots[:5])
        more = f" and {len(slots) - 5} more" if len(slots) > 5 else ""
        super().__init__(f"the block cannot hold fewer rooms than are booked from it: {nights}{more}")
        self.message, self.slots = str(self), slots


class _InvalidInputHandler(strawberry.ExceptionHandler[InvalidInputError, InvalidInput]):
    def handle(self, exception: InvalidInputError, **_: Any) -> InvalidInput:
        return InvalidInput(message=exception.message, code="INVALID_INPUT", field=exception.field)


class _NotFoundHandler(strawberry.ExceptionHandler[NotFoundError, NotFound]):
    def handle(self, exception: NotFoundError, **_: Any) -> NotFound:
        return NotFound(message=exception.message, code="NOT_FOUND", id=exception.id)


class _InvalidTransitionHandler(strawberry.ExceptionHandler[InvalidTransitionError, InvalidTransition]):
    def handle(self, exception: InvalidTransitionError, **_: Any) -> InvalidTransition:
        return InvalidTransition(message=exception.message, code="INVALID_TRANSITION", status=exception.status)


class _LockTimeoutHandler(strawberry.ExceptionHandler[LockTimeoutError, LockTimeout]):
    def handle(self, exception: LockTimeoutError, **_: Any) -> LockTimeout:
        return LockTimeout(message=f"{exception}; retry the request", code="LOCK_TIMEOUT")


class _SoldOutHandler(strawberry.ExceptionHandler[SoldOutError, SoldOut]):
    def handle(self, exception: SoldOutError, **_: Any) -> SoldOut:
        return SoldOut(message=exception.message, code="SOLD_OUT", shortfalls=exception.shortfalls)


class _IdempotencyConflictHandler(strawberry.ExceptionHandler[IdempotencyConflictError, IdempotencyConflict]):
    def handle(self, exception: IdempotencyConflictError, **_: Any) -> IdempotencyConflict:
        return IdempotencyConflict(message=exception.message, code="IDEMPOTENCY_CONFLICT",
                                   idempotency_key=exception.key)


class _BlockUnderflowHandler(strawberry.ExceptionHandler[BlockUnderflowError, BlockUnderflow]):
    def handle(self, exception: BlockUnderflowError, **_: Any) -> BlockUnderflow:
        return BlockUnderflow(message=exception.message, code="BLOCK_UNDERFLOW",
                              nights=[s.date for s in exception.slots], slots=exception.slots)


HANDLERS = (
    _InvalidInputHandler(), _NotFoundHandler(), _InvalidTransitionHandler(), _LockTimeoutHandler(),
    _SoldOutHandler(), _IdempotencyConflictHandler(), _BlockUnderflowHandler(),
)


def as_user_error(exception: Exception) -> UserError | None:
    """The union member a business exception becomes (for results built by hand, like the
    per-block results of bulk mutations); None for anything unexpected."""
    for exception_type, handler in _HANDLED:
        if isinstance(exception, exception_type):
            return handler.handle(exception)  # type: ignore[attr-defined]
    return None


_HANDLED = [(get_args(type(handler).__orig_bases__[0])[0], handler) for handler in HANDLERS]  # type: ignore[attr-defined]
