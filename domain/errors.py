"""Typed domain failures. Each carries the data the API layer needs to build a typed result."""

from __future__ import annotations

from datetime import date, datetime


class DomainError(Exception):
    """Base class: every expected business failure raised by `domain`."""


class InvalidInput(DomainError):
    """An input field breaks a rule. `field` uses the API's input field name (`from`, `to`, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CurrencyMismatch(DomainError):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"cannot combine {got} with {expected}")
        self.expected = expected
        self.got = got


class InvalidTransition(DomainError):
    """`action` is not allowed on `entity` while it is in state `state`."""

    def __init__(self, entity: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} a {entity} that is {state}")
        self.entity = entity
        self.state = state
        self.action = action


class BookingExpired(DomainError):
    def __init__(self, expires_at: datetime | None) -> None:
        super().__init__(f"the hold expired at {expires_at.isoformat() if expires_at else 'an unknown time'}")
        self.expires_at = expires_at


class NoRate(DomainError):
    """A night has no rate (no contract covers it), so a stay on it cannot be priced."""

    def __init__(self, room_type_id: int, night: date) -> None:
        super().__init__(f"room type {room_type_id} has no rate on {night.isoformat()}")
        self.room_type_id = room_type_id
        self.night = night


class OutsideCalendar(DomainError):
    """A decision asked about a night the caller did not compute. A caller bug, never a sell-out."""

    def __init__(self, key: int, night: date) -> None:
        super().__init__(f"{night.isoformat()} of {key} is outside the computed range")
        self.key = key
        self.night = night
