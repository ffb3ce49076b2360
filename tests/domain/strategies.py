"""Hypothesis strategies for small but dense inventory scenarios (few room types, few nights,
many overlaps, ties in effective time, boundaries of expiry and cut-off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from domain import (
    DEFAULT_STATUS_TRANSFORMS,
    AllotmentEvent,
    AllotmentUnit,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractAction,
    ContractLayer,
    ContractTerms,
    EventKind,
    HardblockTerms,
    Money,
    RestrictionPatch,
    SupplierContract,
    compute_calendar,
    supplier_nights,
)
from tests.domain.factories import D0, T0, d

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
    time_zone: str = "UTC"  # the hotel's: its hardblocks say the same

    def calendar(self, **changes) -> dict[int, CalendarRow]:
        s = {**self.__dict__, **changes}
        return compute_calendar(
            s["contracts"], s["events"], s["blocks"], s["bookings"], s["room_type_ids"], s["start"], s["end"], s["now"],
            s["time_zone"],
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
            self.time_zone,
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


AGENCIES = (1, 2, 3)


_MIN_STAY = st.none() | st.integers(1, 4)
_MIN_ADVANCE = st.none() | st.integers(0, 6)
_SPAN = st.none() | st.integers(0, 6)  # how far a maximum lies above its minimum
_FLAG = st.sampled_from((None, None, True, False))


@st.composite
def restriction_patches(draw) -> RestrictionPatch:
    """Valid patches of one to all six fields (small values, so that stays of a few nights meet
    both sides of every limit)."""
    min_stay, stay_span = draw(_MIN_STAY), draw(_SPAN)
    min_advance, advance_span = draw(_MIN_ADVANCE), draw(_SPAN)
    patch = RestrictionPatch(
        min_stay=min_stay,
        max_stay=None if stay_span is None else (min_stay or 1) + stay_span,
        closed_to_arrival=draw(_FLAG),
        closed_to_departure=draw(_FLAG),
        min_advance_days=min_advance,
        max_advance_days=None if advance_span is None else (min_advance or 0) + advance_span,
    )
    if all(value is None for value in patch.values()):
        return RestrictionPatch(min_stay=draw(st.integers(1, 4)))
    return patch


def agency_sets():
    return st.sampled_from((frozenset(), frozenset(), frozenset({1}), frozenset({2}), frozenset({1, 3})))


@st.composite
def events(draw, max_size: int = 12, kinds: tuple[EventKind, ...] = KINDS) -> list[AllotmentEvent]:
    count = draw(st.integers(0, max_size))
    out = []
    for id in distinct_ids(draw, count):
        kind = draw(st.sampled_from(kinds))
        start, end = night_range(draw)
        quantity = rate = hardblock_id = restriction = None
        agency_ids: frozenset[int] = frozenset()
        if kind in (EventKind.INCREASE_ALLOTMENT, EventKind.REDUCE_ALLOTMENT):
            quantity = draw(st.integers(1, 6))
        elif kind is EventKind.BLOCK_AMENDMENT:
            quantity = draw(st.integers(0, 5))
            hardblock_id = draw(st.sampled_from(BLOCK_IDS))
        elif kind is EventKind.RATE_CHANGE:
            rate = draw(st.sampled_from(RATES))
        elif kind is EventKind.RESTRICTION:
            restriction = draw(restriction_patches())
            agency_ids = draw(agency_sets())
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
                restriction=restriction,
                agency_ids=agency_ids,
            )
        )
    return out


def restriction_events(max_size: int = 12):
    return events(max_size, kinds=(EventKind.RESTRICTION,))


@st.composite
def hardblocks(draw, now: datetime, time_zone: str = "UTC") -> list[HardblockTerms]:
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
                time_zone=time_zone,
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


def instants_near_d0(step_hours: int = 6):
    """From 12 days before D0 to 6 days after, in 6-hour steps: cut-offs land on both sides
    (in hours, to land on the local midnights of every time zone too)."""
    steps = 24 // step_hours
    return st.integers(-12 * steps, 6 * steps).map(
        lambda q: datetime.combine(D0, datetime.min.time(), tzinfo=UTC) + timedelta(hours=step_hours * q)
    )


# East and west of Greenwich, far enough to be on another date than UTC for half the day.
TIME_ZONES = ("UTC", "Pacific/Auckland", "America/New_York")


@st.composite
def scenarios(draw, max_events: int = 12, time_zones: tuple[str, ...] = ("UTC",)) -> Scenario:
    now = draw(instants_near_d0(6 if time_zones == ("UTC",) else 1))
    start, end = night_range(draw, lo=-4, hi=6, longest=14)
    time_zone = draw(st.sampled_from(time_zones))
    return Scenario(
        contracts=draw(contracts()),
        events=draw(events(max_events)),
        blocks=draw(hardblocks(now, time_zone)),
        bookings=draw(booking_lines(now)),
        room_type_ids=draw(st.sampled_from([[1, 2], [1], [2, 1, 3]])),
        start=start,
        end=end,
        now=now,
        time_zone=time_zone,
    )


# --- the supplier side -----------------------------------------------------------------------

# The merged table a supplier might have: the defaults, plus a word it wants skipped.
SUPPLIER_TRANSFORMS = {**DEFAULT_STATUS_TRANSFORMS, "TENTATIVE": ContractAction.IGNORE}
# Mostly selling (the interesting sequences are counts that move), ON_REQUEST is in no table.
SUPPLIER_STATUSES = ("CONFIRMED", "CONFIRMED", "CONFIRMED", "OK", "OK", "STOP", "CXL", "TENTATIVE", "ON_REQUEST")
# How the allotment is sent: mostly plain rooms, sometimes room-nights (even or not), the
# current room-nights total sent as rooms (unit drift), or a count below zero.
ALLOTMENT_SHAPES = ("rooms",) * 6 + ("room_nights", "uneven", "drift", "drift", "negative")


@st.composite
def supplier_records(draw, layer: ContractLayer | None, last_minute: int) -> SupplierContract:
    """The next record of contract MHG-C-1: ranges that overlap, widen and narrow, counts that
    flicker around a few values, and an updated_at near the last one (earlier: stale; equal: a
    re-read). `last_minute` is the previous record's updated_at, in minutes after T0."""
    start, end = night_range(draw, lo=-2, hi=3, longest=5)
    count = (end - start).days
    per_night = draw(st.sampled_from((4, 5)) | st.integers(0, 6))  # 4 and 5 often: flicker, confirm
    unit, allotment = AllotmentUnit.ROOMS, per_night
    shape = draw(st.sampled_from(ALLOTMENT_SHAPES))
    if shape == "room_nights":
        unit, allotment = AllotmentUnit.ROOM_NIGHTS, per_night * count
    elif shape == "uneven" and count > 1:
        unit, allotment = AllotmentUnit.ROOM_NIGHTS, per_night * count + draw(st.integers(1, count - 1))
    elif shape == "drift" and layer is not None:
        counts = [n.rooms for night, n in supplier_nights(layer).items() if start <= night < end and n.rooms > 0]
        if counts:
            allotment = count * draw(st.sampled_from(counts))
    elif shape == "negative":
        allotment = -1 - per_night
    overrides = draw(st.dictionaries(st.integers(0, count - 1), st.integers(0, 6), max_size=2))
    return SupplierContract(
        external_id="MHG-C-1",
        hotel_code="H1",
        room_type_code="DBL",
        start=start,
        end=end,
        allotment=allotment,
        unit=unit,
        rate=draw(st.sampled_from(RATES[:3])),
        release_days=draw(st.integers(0, 3)),
        status=draw(st.sampled_from(SUPPLIER_STATUSES)),
        terms=draw(st.sampled_from(("", "BB"))),
        updated_at=T0 + timedelta(minutes=last_minute + draw(st.integers(-2, 3))),
        nights=tuple(sorted((start + timedelta(days=i), rooms) for i, rooms in overrides.items())),
    )


@st.composite
def operator_events(draw, max_size: int = 4) -> list[AllotmentEvent]:
    """Operators' own adjustments of room type 1, with ids far from the supplier's."""
    out = []
    for i in range(draw(st.integers(0, max_size))):
        kind = draw(
            st.sampled_from((EventKind.INCREASE_ALLOTMENT, EventKind.REDUCE_ALLOTMENT, EventKind.BLOCK_CONTRACT))
        )
        start, end = night_range(draw, lo=-3, hi=8, longest=4)
        out.append(
            AllotmentEvent(
                id=10_000 + i,
                kind=kind,
                room_type_id=1,
                start=start,
                end=end,
                effective_at=draw(st.sampled_from(INSTANTS)),
                quantity=None if kind is EventKind.BLOCK_CONTRACT else draw(st.integers(1, 6)),
            )
        )
    return out
