"""Business failures: Python exceptions that carry data, and the typed union members they become.

Resolvers raise; `Schema(exception_handlers=HANDLERS)` turns each exception into its GraphQL
type when the field's result union lists it. The transaction around the write has already
rolled back by then, so a failure changes nothing.
"""

from __future__ import annotations

from typing import Any

import strawberry

from db.inventory import LockTimeout as LockTimeoutError


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


HANDLERS = (_InvalidInputHandler(), _NotFoundHandler(), _InvalidTransitionHandler(), _LockTimeoutHandler())
