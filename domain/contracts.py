from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from domain.errors import InvalidInput
from domain.money import Money, check_money
from domain.nights import check_range

MAX_RELEASE_DAYS = 365
# Rooms of one room type on one night, in a contract or an event: far above any hotel, and far
# below where sums over many events would overflow the database's integers.
MAX_ROOMS = 100_000


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """A supplier contract for one room type on nights [start, end).

    Where several active contracts cover a night, their allotments add up and the one with the
    highest id governs the rate and the release days. Inactive contracts contribute nothing.
    """

    id: int
    room_type_id: int
    start: date
    end: date
    allotment: int
    rate: Money
    release_days: int
    active: bool = True


def check_contract(start: date, end: date, allotment: int, rate: Money, release_days: int) -> InvalidInput | None:
    if problem := check_range(start, end):
        return problem
    if not 0 <= allotment <= MAX_ROOMS:
        return InvalidInput("allotment", f"must be 0 to {MAX_ROOMS}")
    if not 0 <= release_days <= MAX_RELEASE_DAYS:
        return InvalidInput("releaseDays", f"must be 0 to {MAX_RELEASE_DAYS}")
    return check_money(rate, "rate")
