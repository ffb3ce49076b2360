"""A slow but obviously correct reading of DESIGN.md "Domain semantics": one loop per night,
no offsets, no difference arrays. Property tests check the real pipeline against it.

Hotel time is read the plain way, `zoneinfo` with fold=0, right wherever local midnight exists
(the scenarios stay clear of clock changes; tests/domain/test_hotel_time.py covers those)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    ContractTerms,
    EventKind,
    HardblockSlot,
    HardblockTerms,
    PoolCell,
    Restrictions,
)


def midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def each_night(start: date, end: date) -> list[date]:
    out = []
    night = start
    while night < end:
        out.append(night)
        night += timedelta(days=1)
    return out


def covers(start: date, end: date, night: date) -> bool:
    return start <= night < end


def counting(line: BookingLine, now: datetime) -> bool:
    if line.status == BookingStatus.CONFIRMED:
        return True
    if line.status == BookingStatus.HELD:
        return line.expires_at is None or now < line.expires_at
    return False


def last_in_total_order(events: list[AllotmentEvent]) -> AllotmentEvent | None:
    best = None
    for e in events:
        if best is None or (e.effective_at, e.id) > (best.effective_at, best.id):
            best = e
    return best


def reference_slot(
    block: HardblockTerms, events: list[AllotmentEvent], bookings: list[BookingLine], night: date, now: datetime
) -> HardblockSlot:
    amendments = [
        e
        for e in events
        if not e.voided
        and e.kind == EventKind.BLOCK_AMENDMENT
        and e.hardblock_id == block.id
        and covers(e.start, e.end, night)
    ]
    last = last_in_total_order(amendments)
    if last is not None:
        size = last.quantity
    elif covers(block.start, block.end, night):
        size = block.rooms
    else:
        size = 0
    booked = sum(
        b.rooms
        for b in bookings
        if b.hardblock_id == block.id and counting(b, now) and covers(b.check_in, b.check_out, night)
    )
    release_at = midnight(night - timedelta(days=block.release_days), block.time_zone)
    is_released = block.released_at is not None or night in block.released_nights or now >= release_at
    released = max(0, size - booked) if is_released else 0
    return HardblockSlot(
        hardblock_id=block.id,
        date=night,
        size=size,
        booked=booked,
        available=max(0, size - booked - released),
        released=released,
        release_at=release_at,
    )


def reference_cell(
    contracts: list[ContractTerms],
    events: list[AllotmentEvent],
    blocks: list[HardblockTerms],
    bookings: list[BookingLine],
    room_type_id: int,
    night: date,
    now: datetime,
    tz: str = "UTC",
) -> PoolCell:
    covering = [c for c in contracts if c.active and c.room_type_id == room_type_id and covers(c.start, c.end, night)]
    governing = max(covering, key=lambda c: c.id) if covering else None
    mine = [e for e in events if not e.voided and e.room_type_id == room_type_id and covers(e.start, e.end, night)]

    allotment = sum(c.allotment for c in covering)
    allotment += sum(e.quantity for e in mine if e.kind == EventKind.INCREASE_ALLOTMENT)
    allotment -= sum(e.quantity for e in mine if e.kind == EventKind.REDUCE_ALLOTMENT)
    allotment = max(0, allotment)

    closed = any(e.kind == EventKind.BLOCK_CONTRACT for e in mine)

    rate_change = last_in_total_order([e for e in mine if e.kind == EventKind.RATE_CHANGE])
    if rate_change is not None:
        rate = rate_change.rate
    elif governing is not None:
        rate = governing.rate
    else:
        rate = None

    block_ids = {b.id for b in blocks}
    hardblocked = 0
    for block in blocks:
        if block.room_type_id == room_type_id:
            slot = reference_slot(block, events, bookings, night, now)
            # size less released, but never less than what is booked from the block
            hardblocked += max(slot.size - slot.released, slot.booked)
    pool_lines = []
    for b in bookings:
        if not (counting(b, now) and covers(b.check_in, b.check_out, night) and b.room_type_id == room_type_id):
            continue
        if b.hardblock_id is None:
            pool_lines.append(b)
        elif b.hardblock_id not in block_ids:
            hardblocked += b.rooms  # booked from a block nobody passed in
    held = sum(b.rooms for b in pool_lines if b.status == BookingStatus.HELD)
    sold = sum(b.rooms for b in pool_lines if b.status == BookingStatus.CONFIRMED)

    if governing is None:
        release_date = release_at = None
        past_cutoff = True
    else:
        release_date = night - timedelta(days=governing.release_days)
        release_at = midnight(release_date, tz)
        past_cutoff = now >= release_at

    committed = hardblocked + held + sold
    available = 0 if closed or past_cutoff else max(0, allotment - committed)
    return PoolCell(
        room_type_id=room_type_id,
        date=night,
        allotment=allotment,
        hardblocked=hardblocked,
        held=held,
        sold=sold,
        available=available,
        overcommitted=max(0, committed - allotment),
        closed=closed,
        release_date=release_date,
        release_at=release_at,
        rate=rate,
    )


def reference_calendar(
    contracts, events, blocks, bookings, room_type_ids, start, end, now, tz="UTC"
) -> dict[int, list[PoolCell]]:
    return {
        rt: [
            reference_cell(contracts, events, blocks, bookings, rt, night, now, tz)
            for night in each_night(start, end)
        ]
        for rt in room_type_ids
    }


def reference_block_span(block: HardblockTerms, events, bookings, now) -> tuple[date, date]:
    """The block's nights with rooms or bookings, widened to its original range."""
    mine = [e for e in events if e.hardblock_id == block.id and e.kind == EventKind.BLOCK_AMENDMENT and not e.voided]
    lines = [b for b in bookings if b.hardblock_id == block.id and counting(b, now)]
    far = [block.start, block.end] + [e.start for e in mine] + [e.end for e in mine]
    far += [b.check_in for b in lines] + [b.check_out for b in lines]
    used = [
        night
        for night in each_night(min(far), max(far))
        if (s := reference_slot(block, events, bookings, night, now)).size or s.booked
    ]
    start = min([block.start, *used])
    end = max([block.end] + [u + timedelta(days=1) for u in used])
    return start, end


# --- restrictions ----------------------------------------------------------------------------------

RESTRICTION_FIELDS = (
    "min_stay",
    "max_stay",
    "closed_to_arrival",
    "closed_to_departure",
    "min_advance_days",
    "max_advance_days",
)


def reference_restrictions(events: list[AllotmentEvent], room_type_id: int, night: date, agency_id) -> Restrictions:
    """Field by field: the last live RESTRICTION event in total order that covers the night, binds
    the agency (names it, or names none) and sets the field."""
    binding = [
        e
        for e in events
        if e.kind == EventKind.RESTRICTION
        and not e.voided
        and e.room_type_id == room_type_id
        and covers(e.start, e.end, night)
        and (len(e.agency_ids) == 0 or agency_id in e.agency_ids)
    ]
    values = {}
    for name in RESTRICTION_FIELDS:
        last = last_in_total_order([e for e in binding if getattr(e.restriction, name) is not None])
        values[name] = None if last is None else getattr(last.restriction, name)
    values["closed_to_arrival"] = values["closed_to_arrival"] is True
    values["closed_to_departure"] = values["closed_to_departure"] is True
    return Restrictions(**values)


def reference_judgement(restrictions_on, check_in: date, check_out: date, today: date) -> list[tuple[date, str]]:
    """(date, rule) of every violation, in the order of the rules."""
    arrival = restrictions_on(check_in)
    stay = len(each_night(check_in, check_out))
    lead = len(each_night(today, check_in)) - len(each_night(check_in, today))
    out = []
    if arrival.min_stay is not None and stay < arrival.min_stay:
        out.append((check_in, "MIN_STAY"))
    if arrival.max_stay is not None and stay > arrival.max_stay:
        out.append((check_in, "MAX_STAY"))
    if arrival.closed_to_arrival:
        out.append((check_in, "CLOSED_TO_ARRIVAL"))
    if restrictions_on(check_out).closed_to_departure:
        out.append((check_out, "CLOSED_TO_DEPARTURE"))
    if arrival.min_advance_days is not None and lead < arrival.min_advance_days:
        out.append((check_in, "MIN_ADVANCE_DAYS"))
    if arrival.max_advance_days is not None and lead > arrival.max_advance_days:
        out.append((check_in, "MAX_ADVANCE_DAYS"))
    return out


def reference_reasons(cell: PoolCell, restrictions: Restrictions, today: date) -> list[str]:
    reasons = []
    if cell.release_date is not None and cell.hardblocked + cell.held + cell.sold >= cell.allotment:
        reasons.append("SOLD_OUT")
    if cell.closed:
        reasons.append("CLOSED")
    if cell.release_date is not None and cell.release_date <= today:
        reasons.append("RELEASED")
    if cell.release_date is None:
        reasons.append("NO_CONTRACT")
    if cell.date < today:
        reasons.append("PAST")
    if restrictions.closed_to_arrival:
        reasons.append("CLOSED_TO_ARRIVAL")
    lead = len(each_night(today, cell.date)) - len(each_night(cell.date, today))
    too_soon = restrictions.min_advance_days is not None and lead < restrictions.min_advance_days
    too_far = restrictions.max_advance_days is not None and lead > restrictions.max_advance_days
    if too_soon or too_far:
        reasons.append("ADVANCE_WINDOW")
    return reasons
