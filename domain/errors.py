"""Typed domain failures. Each carries the data the API layer needs to build a typed result."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # money imports errors
    from domain.money import Money


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


class RatePlanConflict(InvalidInput):
    """An active rate plan would share agencies with another active plan of the same hotel:
    `agency_ids` are the agencies both name (empty when both are for all agencies)."""

    def __init__(self, other_code: str, agency_ids: tuple[int, ...]) -> None:
        if agency_ids:
            message = f"agencies {', '.join(map(str, agency_ids))} already use the active plan {other_code}"
        else:
            message = f"the active plan {other_code} is already for all agencies"
        super().__init__("agencyIds", message)
        self.other_code = other_code
        self.agency_ids = agency_ids


class PriceOutOfRange(DomainError):
    """A rate plan took a night's price beyond `limit` (per room and night): a plan out of all
    proportion, refused rather than stored as a sale."""

    def __init__(self, night: date, limit: Decimal) -> None:
        super().__init__(f"the price of {night.isoformat()} exceeds {limit} per room and night")
        self.night = night
        self.limit = limit


class PaymentRequired(DomainError):
    """A sale cannot be confirmed before `amount_due` is paid (PREPAY, or a DEPOSIT's deposit)."""

    def __init__(self, amount_due: Money) -> None:
        super().__init__(f"{_text(amount_due)} must be paid first")
        self.amount_due = amount_due


class CreditLimitExceeded(DomainError):
    """A credit sale of `amount` would take what the agency owes, `outstanding`, past `limit`."""

    def __init__(self, limit: Money, outstanding: Money, amount: Money) -> None:
        if limit.currency != amount.currency:
            message = (f"the credit limit of {_text(limit)} bounds {limit.currency} sales only: a sale of "
                       f"{_text(amount)} cannot go on credit")
        else:
            message = (f"a sale of {_text(amount)} on top of {_text(outstanding)} outstanding exceeds the credit "
                       f"limit of {_text(limit)}")
        super().__init__(message)
        self.limit = limit
        self.outstanding = outstanding
        self.amount = amount


def _text(money: Money) -> str:
    return f"{money.amount} {money.currency}"
