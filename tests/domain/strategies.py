"""Hypothesis strategies for small but dense inventory scenarios (few room types, few nights,
many overlaps, ties in effective time, boundaries of expiry and cut-off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractTerms,
    EventKind,
    HardblockTerms,
    Money,
    compute_calendar,
)
from tests.domain.factories import D0, d

ROOM_TYPES = (1, 2)
BLOCK_IDS = (1, 2, 3)
RATES = tuple(Money(Decimal(a), "EUR") for a in ("80", "95.50", "120", "135", "150"))
# Set-semantics kinds twice: their order is where a resolver goes wrong.
KINDS = (*EventKind, EventKind.RATE_CHANGE, EventKind.BLOCK_AMENDMENT)
# A handful of instants, so that ties on effective_at (broken by id) are common.
INSTANTS = tuple(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in (0, 0, 1, 2, 5))


@dataclass(frozen=True)
class Scenario:
    contracts: list[ContractTerms]
    events: list[AllotmentEvent]
    blocks: list[HardblockTerms]
    bookings: list[BookingLine]
    room_type_ids: list[int]
    start: date
    end: date
    now: datetime

    def calendar(self, **changes) -> dict[int, CalendarRow]:
        s = {**self.__dict__, **changes}
        return compute_calendar(
            s["contracts"], s["events"], s["blocks"], s["bookings"], s["room_type_ids"], s["start"], s["end"], s["now"]
        )

    def inputs(self) -> tuple:
        return (
            self.contracts,
            self.events,
            self.blocks,
            self.bookings,
            self.room_type_ids,
            self.start,
            self.end,
            self.now,
        )


def night_range(draw, lo: int = -3, hi: int = 14, longest: int = 7) -> tuple[date, date]:
    start = draw(st.integers(lo, hi))
    return d(start), d(start + draw(st.integers(1, longest)))


def distinct_ids(draw, count: int) -> list[int]:
    """`count` distinct ids in an order unrelated to list position."""
    return draw(st.permutations(range(1, count + 1)))


@st.composite
def contracts(draw) -> list[ContractTerms]:
    count = draw(st.integers(0, 4))
    out = []
    for id in distinct_ids(draw, count):
        start, end = night_range(draw, longest=14)
        out.append(
            ContractTerms(
                id=id,
                room_type_id=draw(st.sampled_from(ROOM_TYPES)),
                start=start,
                end=end,
                allotment=draw(st.integers(0, 8)),
                rate=draw(st.sampled_from(RATES)),
                release_days=draw(st.integers(0, 10)),
                active=draw(st.booleans() | st.just(True)),
            )
        )
    return out


@st.composite
def events(draw, max_size: int = 12) -> list[AllotmentEvent]:
    count = draw(st.integers(0, max_size))
    out = []
    for id in distinct_ids(draw, count):
        kind = draw(st.sampled_from(KINDS))
        start, end = night_range(draw)
        quantity = rate = hardblock_id = None
        if kind in (EventKind.INCREASE_ALLOTMENT, EventKind.REDUCE_ALLOTMENT):
            quantity = draw(st.integers(1, 6))
        elif kind is EventKind.BLOCK_AMENDMENT:
            quantity = draw(st.integers(0, 5))
            hardblock_id = draw(st.sampled_from(BLOCK_IDS))
        elif kind is EventKind.RATE_CHANGE:
            rate = draw(st.sampled_from(RATES))
        out.append(
            AllotmentEvent(
                id=id,
                kind=kind,
                room_type_id=draw(st.sampled_from((1, 1, 1, 2))),  # dense: most events share a room type
                start=start,
                end=end,
                effective_at=draw(st.sampled_from(INSTANTS)),
                quantity=quantity,
                rate=rate,
                hardblock_id=hardblock_id,
                voided=draw(st.integers(0, 5)) == 0,
            )
        )
    return out


@st.composite
def hardblocks(draw, now: datetime) -> list[HardblockTerms]:
    count = draw(st.integers(0, len(BLOCK_IDS) - 1))  # the last id stays unknown: its bookings are orphans
    out = []
    for id in range(1, count + 1):
        start, end = night_range(draw)
        released_nights = frozenset(draw(st.lists(st.integers(-3, 20).map(d), max_size=3)))
        out.append(
            HardblockTerms(
                id=id,
                room_type_id=draw(st.sampled_from(ROOM_TYPES)),
                agency_id=1,
                start=start,
                end=end,
                rooms=draw(st.integers(1, 4)),
                release_days=draw(st.integers(0, 10)),
                released_at=draw(st.sampled_from([None, None, None, now - timedelta(days=1)])),
                released_nights=released_nights,
            )
        )
    return out


def expiry(now: datetime):
    """None, or around `now` (exactly `now` included: a hold is expired at its expiry instant)."""
    return st.none() | st.integers(-3, 3).map(lambda m: now + timedelta(minutes=m * 10))


@st.composite
def booking_lines(draw, now: datetime, max_size: int = 8, hardblock_ids=(None, None, *BLOCK_IDS)) -> list[BookingLine]:
    count = draw(st.integers(0, max_size))
    out = []
    for id in range(1, count + 1):
        start, end = night_range(draw, longest=5)
        out.append(
            BookingLine(
                id=id,
                group_id=draw(st.integers(1, 3)),
                agency_id=1,
                room_type_id=draw(st.sampled_from((*ROOM_TYPES, 3))),
                check_in=start,
                check_out=end,
                rooms=draw(st.integers(1, 3)),
                status=draw(st.sampled_from(list(BookingStatus))),
                expires_at=draw(expiry(now)),
                hardblock_id=draw(st.sampled_from(hardblock_ids)),
            )
        )
    return out


def instants_near_d0():
    """From 12 days before D0 to 6 days after, in 6-hour steps: cut-offs land on both sides."""
    return st.integers(-48, 24).map(
        lambda q: datetime.combine(D0, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6 * q)
    )


@st.composite
def scenarios(draw, max_events: int = 12) -> Scenario:
    now = draw(instants_near_d0())
    start, end = night_range(draw, lo=-4, hi=6, longest=14)
    return Scenario(
        contracts=draw(contracts()),
        events=draw(events(max_events)),
        blocks=draw(hardblocks(now)),
        bookings=draw(booking_lines(now)),
        room_type_ids=draw(st.sampled_from([[1, 2], [1], [2, 1, 3]])),
        start=start,
        end=end,
        now=now,
    )
