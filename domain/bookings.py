"""Booking lines and their status rules. A hold lapses by time alone: nothing waits for a sweeper."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.errors import BookingExpired, InvalidTransition


class BookingStatus(StrEnum):
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


def effective_status(status: BookingStatus, expires_at: datetime | None, now: datetime) -> BookingStatus:
    """The status as of `now`: a HELD booking at or past `expires_at` is EXPIRED, swept or not.

    A hold without an expiry never lapses by time (it still counts, which errs on the side of
    not selling a room twice).
    """
    if status is BookingStatus.HELD and expires_at is not None and now >= expires_at:
        return BookingStatus.EXPIRED
    return status


def counts(status: BookingStatus, expires_at: datetime | None, now: datetime) -> bool:
    """Whether the booking consumes inventory at `now`."""
    return effective_status(status, expires_at, now) in (BookingStatus.HELD, BookingStatus.CONFIRMED)


@dataclass(frozen=True, slots=True)
class BookingLine:
    """One item of a booking group: `rooms` rooms of a room type on nights [check_in, check_out)."""

    id: int
    group_id: int
    agency_id: int
    room_type_id: int
    check_in: date
    check_out: date
    rooms: int
    status: BookingStatus
    expires_at: datetime | None
    hardblock_id: int | None = None

    def counts(self, now: datetime) -> bool:
        return counts(self.status, self.expires_at, now)


def confirm_status(status: BookingStatus, expires_at: datetime | None, now: datetime) -> BookingStatus:
    """The status after confirming. Idempotent: confirming a CONFIRMED group keeps it CONFIRMED."""
    current = effective_status(status, expires_at, now)
    if current in (BookingStatus.HELD, BookingStatus.CONFIRMED):
        return BookingStatus.CONFIRMED
    if current is BookingStatus.EXPIRED:
        raise BookingExpired(expires_at)
    raise InvalidTransition("booking group", current.value, "confirm")


def cancel_status(status: BookingStatus, expires_at: datetime | None, now: datetime) -> BookingStatus:
    """The status after cancelling. Idempotent: cancelling a CANCELLED group keeps it CANCELLED."""
    current = effective_status(status, expires_at, now)
    if current is BookingStatus.EXPIRED:
        raise InvalidTransition("booking group", current.value, "cancel")
    return BookingStatus.CANCELLED
