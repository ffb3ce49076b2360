"""Hardblocks: create, amend, give rooms back, revert an amendment, release (whole, nights, in bulk),
extend in bulk; the preview that writes nothing; the list; the auto-release job.

Every write that changes what a block takes from the pool follows the booking path: validate ->
one transaction -> the room types' advisory locks (sorted) -> fresh read after the lock ->
domain decision -> writes + audit + version bump + outbox -> commit -> publish.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.bookings import check_reason
from app.services.changes import Write, write
from app.services.context import Caller, Services
from app.services.errors import (
    BlockUnderflow,
    Failure,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LockTimeout,
    NotFound,
    Shortfall,
    SlotDiff,
    SoldOut,
)
from app.services.idempotency import Keyed, check_key, failure_of, failure_record
from app.services.pages import Page, paginate
from app.services.scope import acting_agency, own_agency_id, scoped
from db import audit, models
from db.calendar import InventorySnapshot, load_inventory
from db.bookings import BLOCK_PREFIX, REFERENCE_ATTEMPTS, new_reference
from db.hardblocks import record_auto_releases, release_nights
from db.inventory import database_now, lock_room_types
from db.queries import rows_by_id
from domain import (
    AllotmentEvent,
    AmendmentPreview,
    BookingLine,
    CalendarRow,
    HardblockStatus,
    HardblockTerms,
    SlotConflict,
    check_hardblock,
    check_range,
    compute_hardblock_slots,
    diff_slots,
    effective_released_nights,
    extension,
    nights,
    preview_amendment,
    preview_change,
    proposed_amendments,
    returned_rooms,
    utc_today,
)
from domain import InvalidInput as DomainInvalidInput

log = logging.getLogger(__name__)

MAX_BLOCK_NIGHTS = 366
MAX_CHANGES = 50
MAX_BULK = 100
MAX_ROOMS = 10_000

Change = tuple[date, date, int]  # set the block to `rooms` on nights [from, to)
ONE_NIGHT = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class NewHardblock:
    room_type_id: int
    start: date
    end: date
    rooms: int
    release_days: int = 0
    agency_id: int | None = None  # the agency the block is for
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Amendment:
    changes: list[Change]
    reason: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    feasible: bool
    slots: list[SlotDiff]


# --- validation ----------------------------------------------------------------------------------


def _domain_input(problem: DomainInvalidInput, prefix: str = "") -> InvalidInput:
    return InvalidInput(f"{prefix}{problem.field}", f"{prefix}{problem.field} {problem.message}")


def _check_span(start: date, end: date, field: str) -> None:
    if (end - start).days > MAX_BLOCK_NIGHTS:
        raise InvalidInput(field, f"a hardblock spans at most {MAX_BLOCK_NIGHTS} nights")


def check_changes(changes: Sequence[Change]) -> list[Change]:
    """An amendment's changes: 1 to MAX_CHANGES of them, valid ranges from today on, bounded rooms."""
    if not 1 <= len(changes) <= MAX_CHANGES:
        raise InvalidInput("changes", f"an amendment has 1 to {MAX_CHANGES} changes, got {len(changes)}")
    today = utc_today(models.utcnow())
    for i, (start, end, rooms) in enumerate(changes):
        if problem := check_range(start, end):
            raise _domain_input(problem, f"changes[{i}].")
        if start < today:
            raise InvalidInput(f"changes[{i}].from", f"changes[{i}].from {start.isoformat()} is in the past")
        if not 0 <= rooms <= MAX_ROOMS:
            raise InvalidInput(f"changes[{i}].rooms", f"changes[{i}].rooms must be 0 to {MAX_ROOMS} "
                               "(0 removes the nights)")
    _check_span(min(c[0] for c in changes), max(c[1] for c in changes), "changes")
    return list(changes)


def _check_block_span(block: models.Hardblock, changes: list[Change]) -> None:
    """The span the block would have: its nights now and the ones the changes give rooms."""
    held = [c for c in changes if c[2] > 0]
    _check_span(min([block.start_date, *(c[0] for c in held)]), max([block.end_date, *(c[1] for c in held)]),
                "changes")


def _fit_span(block: models.Hardblock, terms: HardblockTerms, events: Sequence[AllotmentEvent],
              bookings: Sequence[BookingLine], now: datetime) -> None:
    """Set the stored span to what the block holds after a change: its base nights and every night
    with rooms or bookings (so lookups by night find it, and a reverted extension shrinks it)."""
    slots = compute_hardblock_slots(terms, events, bookings, None, None, now)
    block.start_date, block.end_date = slots[0].date, slots[-1].date + ONE_NIGHT


async def _visible_block(session: AsyncSession, caller: Caller, pk: int | None, id: str | None) -> models.Hardblock:
    """The block, or NotFound when it is missing (`pk` None: the id names none) or (for agents)
    another agency's."""
    block = await session.get(models.Hardblock, pk) if pk is not None else None
    own = await own_agency_id(session, caller)
    if block is None or (own is not None and block.agency_id != own):
        raise NotFound("no hardblock with that id", id)
    return block


async def _locked(session: AsyncSession, services: Services, block: models.Hardblock) -> models.Hardblock:
    """Take the block's room-type lock, then re-read the block: what it was before the lock may
    have changed (released, widened) by a writer that held it."""
    await lock_room_types(session, [block.room_type_id], services.settings.lock_timeout_ms)
    await session.refresh(block)
    return block


def _staff_only(caller: Caller, action: str) -> None:
    """Taking rooms from the pool for a block is the wholesaler's decision; agents only give back."""
    if not caller.is_staff:
        raise Forbidden(f"Forbidden: {action} needs the admin or operator role (agents may book from their "
                        "blocks, return rooms and release nights or whole blocks)")


def _active(block: models.Hardblock, action: str) -> None:
    if block.status != HardblockStatus.ACTIVE.value:
        at = block.released_at.isoformat() if block.released_at else "an earlier time"
        raise InvalidTransition(f"cannot {action} a hardblock released at {at}", status=block.status)


# --- the state of a block under the lock ---------------------------------------------------------


@dataclass
class _BlockState:
    snapshot: InventorySnapshot
    terms: HardblockTerms
    pool: CalendarRow
    now: datetime

    @property
    def room_type(self) -> models.RoomType:
        return self.snapshot.room_types[0]


async def _state(session: AsyncSession, block: models.Hardblock, start: date, end: date) -> _BlockState:
    """The block and its room type's pool over [start, end) widened to the block's span."""
    start, end = min(start, block.start_date), max(end, block.end_date)
    snapshot = await load_inventory(session, block.hotel_id, start, end, [block.room_type_id])
    now = await database_now(session)
    terms = next(t for t in snapshot.hardblock_terms if t.id == block.id)
    return _BlockState(snapshot, terms, snapshot.calendar(start, end, now)[block.room_type_id], now)


def _slot_diffs(preview: AmendmentPreview, pool: CalendarRow) -> list[SlotDiff]:
    return [
        SlotDiff(date=d.date, before=d.before, after=d.after, delta=d.delta,
                 conflict=d.conflict.value if d.conflict else None, booked=d.booked,
                 pool_needed=d.needed, pool_available=pool.available[pool.index(d.date)])
        for d in preview.slots
    ]


def _raise_conflicts(preview: AmendmentPreview, pool: CalendarRow, block_id: int | None,
                     room_type: models.RoomType, released: Callable[[str], Failure]) -> None:
    if late := preview.nights_with(SlotConflict.RELEASED):
        raise released(", ".join(d.date.isoformat() for d in late))
    diffs = {d.date: d for d in _slot_diffs(preview, pool)}
    if under := preview.nights_with(SlotConflict.BLOCK_UNDERFLOW):
        raise BlockUnderflow([diffs[d.date] for d in under])
    if short := preview.nights_with(SlotConflict.SOLD_OUT):
        # A block being created asks the pool, so its shortfalls name no block.
        raise SoldOut([Shortfall(room_type.id, room_type.code, d.date, d.needed,
                                 pool.available[pool.index(d.date)], block_id) for d in short])


def _grow_past_release(nights_: str) -> Failure:
    return InvalidInput("changes", f"nights past their release time cannot grow (their unsold rooms are "
                        f"back in the pool): {nights_}")


def _block_snapshot(block: models.Hardblock) -> dict[str, Any]:
    return audit.snapshot(block, "reference", "agency_id", "room_type_id", "start_date", "end_date",
                          "base_start_date", "base_end_date", "rooms", "release_days", "status", "released_at")


def _changes_snapshot(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [{"from": a.isoformat(), "to": b.isoformat(), "rooms": rooms} for a, b, rooms in changes]


Span = tuple[date, date]  # the nights a block write changed


def _touch(unit: Write, block: models.Hardblock, span: Span) -> None:
    unit.touch(block.hotel_id, [block.room_type_id], *span, blocks=[(block.id, block.agency_id)])


async def _apply_amendment(
    session: AsyncSession, caller: Caller, block: models.Hardblock, changes: list[Change], reason: str,
    action: str = "hardblock.amended", state: _BlockState | None = None,
) -> Span:
    """Decide and record an amendment of a block whose lock the caller holds (on `state`, a read
    the caller already took under that lock and covering the changes, if given)."""
    _active(block, "amend")
    _check_block_span(block, changes)
    if state is None:
        state = await _state(session, block, min(c[0] for c in changes), max(c[1] for c in changes))
    events, lines = state.snapshot.events, state.snapshot.booking_lines
    preview = preview_amendment(state.terms, changes, events, lines, state.pool, state.now)
    if grown := [d.date.isoformat() for d in preview.slots if d.after > d.before]:
        _staff_only(caller, f"growing or extending a block (nights {', '.join(grown[:5])})")
    _raise_conflicts(preview, state.pool, block.id, state.room_type, _grow_past_release)
    before = _block_snapshot(block)
    amendment = models.HardblockAmendment(hardblock_id=block.id, reason=reason, author_uid=caller.actor.uid,
                                          created_at=state.now)
    session.add(amendment)
    await session.flush()
    session.add_all([
        models.AllotmentEvent(
            hotel_id=block.hotel_id, room_type_id=block.room_type_id, kind="BLOCK_AMENDMENT", start_date=start,
            end_date=end, quantity=rooms, hardblock_id=block.id, amendment_id=amendment.id,
            effective_at=state.now, created_at=state.now, created_by=caller.actor.uid,
        )
        for start, end, rooms in changes
    ])
    proposed = proposed_amendments(state.terms, changes, events, state.now)
    touched = {night for start, end, _ in changes for night in nights(start, end)}
    regrown = dataclasses.replace(state.terms, released_nights=state.terms.released_nights - touched)
    _fit_span(block, regrown, [*events, *proposed], lines, state.now)
    await session.flush()
    audit.record(session, caller.actor, action, "Hardblock", block.id, before=before, after={
        **_block_snapshot(block), "amendment_id": amendment.id, "reason": reason,
        "changes": _changes_snapshot(changes),
        "slots": [{"date": d.date.isoformat(), "before": d.before, "after": d.after} for d in preview.slots],
    })
    return min(c[0] for c in changes), max(c[1] for c in changes)


async def _release(session: AsyncSession, caller: Caller, block: models.Hardblock) -> Span:
    _active(block, "release")
    state = await _state(session, block, block.start_date, block.end_date)
    slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                    block.start_date, block.end_date, state.now)
    before = _block_snapshot(block)
    block.status, block.released_at = HardblockStatus.RELEASED.value, state.now
    await session.flush()
    audit.record(session, caller.actor, "hardblock.released", "Hardblock", block.id, before=before, after={
        **_block_snapshot(block), "rooms_returned": sum(slot.available for slot in slots),
    })
    return block.start_date, block.end_date


async def _extend(session: AsyncSession, caller: Caller, block: models.Hardblock, count: int) -> Span:
    _active(block, "extend")
    # One read for the decision and the amendment: the block and the nights it may grow into.
    state = await _state(session, block, block.start_date, block.end_date + timedelta(days=count))
    slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                    block.start_date, block.end_date, state.now)
    try:
        change = extension(slots, count, block.rooms)
    except DomainInvalidInput as problem:
        raise _domain_input(problem) from None
    _check_span(block.start_date, change[1], "nights")
    return await _apply_amendment(session, caller, block, [change], f"extended by {count} nights",
                                  "hardblock.extended", state)


BlockWrite = Callable[[AsyncSession, models.Hardblock], Awaitable[Span | None]]


Idempotent = tuple[str | None, str, dict[str, Any]]  # the key (or None), the operation, the request
_UNKEYED: Idempotent = (None, "", {})


async def _one_block_write(services: Services, caller: Caller, pk: int | None, id: str | None,
                           block_write: BlockWrite, idempotent: Idempotent = _UNKEYED) -> models.Hardblock:
    """Look the block up, lock its room type, write, bump, commit, publish (a keyed retry: the
    block as it is now, written nothing)."""
    key, operation, request = idempotent
    async with write(services) as unit:
        keyed = Keyed(unit.session, caller, check_key(key), operation, {"hardblock": pk, **request})
        if (earlier := await keyed.replay()) is not None:
            return await _visible_block(unit.session, caller, earlier["hardblock"], id)
        block = await _locked(unit.session, services, await _visible_block(unit.session, caller, pk, id))
        if span := await block_write(unit.session, block):
            _touch(unit, block, span)
        await keyed.remember({"hardblock": block.id})
    return block


BulkResult = models.Hardblock | Failure


async def _bulk(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                block_write: BlockWrite, idempotent: Idempotent) -> list[BulkResult]:
    """One transaction, every room type locked up front in one sorted order; each block is
    written in its own savepoint, so it succeeds or fails whole without touching the others.
    `ids` pairs each primary key (None for an id that names no hardblock) with how it was named.
    A keyed retry answers what the first request did, item by item, and writes nothing."""
    results: list[BulkResult] = []
    key, operation, request = idempotent
    try:
        async with write(services) as unit:
            session = unit.session
            keyed = Keyed(session, caller, check_key(key), operation, {"ids": [name for _, name in ids], **request})
            if (earlier := await keyed.replay()) is not None:
                return await _replayed(session, earlier)
            own = await own_agency_id(session, caller)
            blocks = await rows_by_id(session, models.Hardblock, [pk for pk, _ in ids if pk is not None])
            visible = {pk: b for pk, b in blocks.items() if own is None or b.agency_id == own}
            await lock_room_types(session, {b.room_type_id for b in visible.values()},
                                  services.settings.lock_timeout_ms)
            seen: set[int] = set()
            for pk, name in ids:
                block = visible.get(pk) if pk is not None else None
                if block is None:
                    results.append(NotFound("no hardblock with that id", name))
                    continue
                if block.id in seen:
                    results.append(InvalidInput("ids", f"{name} is listed more than once"))
                    continue
                seen.add(block.id)
                try:
                    async with session.begin_nested():
                        await session.refresh(block)
                        span = await block_write(session, block)
                    if span:
                        _touch(unit, block, span)
                    results.append(block)
                except (InvalidInput, InvalidTransition, SoldOut, BlockUnderflow) as error:
                    results.append(error)
            await keyed.remember([failure_record(r) if isinstance(r, Failure) else {"hardblock": r.id}
                                  for r in results])
    except (LockTimeout, IdempotencyConflict, InvalidInput) as error:  # the whole request's: every item's answer
        return [error for _ in ids]
    return results


async def _replayed(session: AsyncSession, outcome: list[dict[str, Any]]) -> list[BulkResult]:
    blocks = await rows_by_id(session, models.Hardblock, [o["hardblock"] for o in outcome if "hardblock" in o])
    return [blocks[o["hardblock"]] if "hardblock" in o else failure_of(o) for o in outcome]


# --- use cases -----------------------------------------------------------------------------------


async def create_hardblock(services: Services, caller: Caller, request: NewHardblock) -> models.Hardblock:
    """Reserve `rooms` rooms of a room type on every night of [start, end) for one agency. Needs that
    many available in the pool on every night; decided under the room type's inventory lock."""
    if problem := check_hardblock(request.start, request.end, request.rooms, request.release_days):
        raise _domain_input(problem)
    if request.rooms > MAX_ROOMS:
        raise InvalidInput("rooms", f"rooms must be at most {MAX_ROOMS}")
    _check_span(request.start, request.end, "to")
    if request.start < utc_today(models.utcnow()):
        raise InvalidInput("from", f"from {request.start.isoformat()} is in the past")
    _staff_only(caller, "creating a hardblock")
    key = check_key(request.idempotency_key)

    async with write(services) as unit:
        session = unit.session
        keyed = Keyed(session, caller, key, "createHardblock",
                      {**dataclasses.asdict(request), "idempotency_key": None})
        if (earlier := await keyed.replay()) is not None:
            return await session.get(models.Hardblock, earlier["hardblock"])  # type: ignore[return-value]
        agency = await acting_agency(session, caller, request.agency_id)
        room_type = await session.get(models.RoomType, request.room_type_id)
        if room_type is None:
            raise InvalidInput("roomTypeId", "no room type with that id")
        await lock_room_types(session, [room_type.id], services.settings.lock_timeout_ms)
        snapshot = await load_inventory(session, room_type.hotel_id, request.start, request.end, [room_type.id])
        now = await database_now(session)
        pool = snapshot.calendar(request.start, request.end, now)[room_type.id]
        block = models.Hardblock(
            reference=new_reference(BLOCK_PREFIX), agency_id=agency.id, hotel_id=room_type.hotel_id,
            room_type_id=room_type.id, start_date=request.start, end_date=request.end,
            base_start_date=request.start, base_end_date=request.end, rooms=request.rooms,
            release_days=request.release_days, status=HardblockStatus.ACTIVE.value, created_at=now,
        )
        terms = HardblockTerms(0, room_type.id, agency.id, request.start, request.end, request.rooms,
                               request.release_days)
        slots = compute_hardblock_slots(terms, [], [], request.start, request.end, now)
        diffs = diff_slots([], slots, pool, nights(request.start, request.end), now)
        preview = AmendmentPreview(all(d.conflict is None for d in diffs), tuple(diffs))
        _raise_conflicts(preview, pool, None, room_type, lambda late: InvalidInput(
            "releaseDays", f"nights past their release time cannot be blocked: {late}"))
        await _insert_with_fresh_reference(session, block)
        audit.record(session, caller.actor, "hardblock.created", "Hardblock", block.id,
                     after={**_block_snapshot(block), "agency": agency.code})
        await keyed.remember({"hardblock": block.id})
        _touch(unit, block, (request.start, request.end))
    return block


async def _insert_with_fresh_reference(session: AsyncSession, block: models.Hardblock) -> None:
    """Insert the block; a random reference that is already taken is drawn again (in a savepoint,
    so the failed insert leaves the transaction usable)."""
    for _ in range(REFERENCE_ATTEMPTS):
        try:
            async with session.begin_nested():
                session.add(block)
                await session.flush()
            return
        except IntegrityError as error:
            if "uq_hardblock_reference" not in str(error.orig):
                raise
            block.reference = new_reference(BLOCK_PREFIX)
    raise RuntimeError(f"{REFERENCE_ATTEMPTS} random hardblock references in a row were taken")


async def amend_hardblock(services: Services, caller: Caller, pk: int | None, amendment: Amendment,
                          id: str | None = None) -> models.Hardblock:
    """Set the block's size on some nights (extending it beyond its range, or 0 to remove nights),
    as BLOCK_AMENDMENT events grouped in one amendment. Never below what is booked from it
    (BlockUnderflow); growth needs pool availability (SoldOut)."""
    changes = check_changes(amendment.changes)
    reason = check_reason(amendment.reason)
    return await _one_block_write(services, caller, pk, id,
                                  lambda session, block: _apply_amendment(session, caller, block, changes, reason),
                                  (amendment.idempotency_key, "amendHardblock",
                                   {"changes": _changes_snapshot(changes), "reason": reason}))


async def return_hardblock_rooms(services: Services, caller: Caller, pk: int | None, start: date, end: date, rooms: int,
                                 reason: str | None = None, id: str | None = None,
                                 idempotency_key: str | None = None) -> models.Hardblock:
    """Give `rooms` rooms of each night of [start, end) back to the pool (an amendment shrinking
    those nights; never below what is booked)."""
    if start >= end:
        raise InvalidInput("to", "to must be after from (ranges are half-open over nights)")
    _check_span(start, end, "to")
    reason = check_reason(reason) or f"returned {rooms} rooms"

    async def give_back(session: AsyncSession, block: models.Hardblock) -> Span:
        _active(block, "return rooms of")
        state = await _state(session, block, start, end)
        slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                        start, end, state.now)
        try:
            changes = returned_rooms(state.terms, slots, rooms, state.now)
        except DomainInvalidInput as problem:
            raise InvalidInput(problem.field, problem.message) from None
        return await _apply_amendment(session, caller, block, changes, reason, "hardblock.rooms_returned", state)

    return await _one_block_write(services, caller, pk, id, give_back, (
        idempotency_key, "returnHardblockRooms", {"from": start, "to": end, "rooms": rooms, "reason": reason}))


async def revert_hardblock_amendment(services: Services, caller: Caller, amendment_pk: int | None,
                                     id: str | None = None) -> models.Hardblock:
    """Void an amendment's events, if the block can go back: not below its bookings, and only with
    pool availability for what it takes back. Otherwise a typed failure naming the nights."""
    _staff_only(caller, "reverting an amendment")
    async with write(services) as unit:
        session = unit.session
        amendment = await session.get(models.HardblockAmendment, amendment_pk) if amendment_pk else None
        if amendment is None:
            raise NotFound("no hardblock amendment with that id", id)
        block = await _visible_block(session, caller, amendment.hardblock_id, id)
        block = await _locked(session, services, block)
        await session.refresh(amendment)
        if amendment.reverted_at is not None:
            raise InvalidTransition(f"the amendment was already reverted at {amendment.reverted_at.isoformat()}",
                                    status="REVERTED")
        _active(block, "revert an amendment of")
        own = list((await session.execute(
            select(models.AllotmentEvent).where(models.AllotmentEvent.amendment_id == amendment_pk)
        )).scalars())
        start, end = min(e.start_date for e in own), max(e.end_date for e in own)
        state = await _state(session, block, start, end)
        own_ids = {e.id for e in own}
        events = state.snapshot.events
        after_events = [e for e in events if e.id not in own_ids]
        releases = state.snapshot.releases.get(block.id, {})
        after_terms = dataclasses.replace(
            state.terms, released_nights=effective_released_nights(block.id, releases, after_events))
        touched_nights = {night for e in own for night in nights(e.start_date, e.end_date)}
        preview = preview_change((state.terms, events), (after_terms, after_events), state.snapshot.booking_lines,
                                 state.pool, touched_nights, state.now)
        _raise_conflicts(preview, state.pool, block.id, state.room_type, lambda late: InvalidTransition(
            f"cannot revert: nights past their release time cannot grow back: {late}", status="RELEASED"))
        await session.execute(
            update(models.AllotmentEvent).where(models.AllotmentEvent.id.in_(own_ids))
            .values(voided_at=state.now, voided_by=caller.actor.uid).execution_options(synchronize_session=False)
        )
        amendment.reverted_at = state.now
        _fit_span(block, after_terms, after_events, state.snapshot.booking_lines, state.now)
        await session.flush()
        audit.record(session, caller.actor, "hardblock.amendment_reverted", "Hardblock", block.id,
                     before={"amendment_id": amendment_pk, "reverted_at": None},
                     after={"amendment_id": amendment_pk, "reverted_at": state.now.isoformat(),
                            "slots": [{"date": d.date.isoformat(), "before": d.before, "after": d.after}
                                      for d in preview.slots]})
        _touch(unit, block, (start, end))
    return block


async def release_hardblock(services: Services, caller: Caller, pk: int | None, id: str | None = None) -> models.Hardblock:
    """Release the whole block: its unsold rooms return to the pool; bookings made from it stay."""
    return await _one_block_write(services, caller, pk, id, lambda session, block: _release(session, caller, block))


async def release_hardblock_nights(services: Services, caller: Caller, pk: int | None, dates: Sequence[date],
                                   id: str | None = None) -> models.Hardblock:
    """Release the unsold rooms of some nights to the pool (bookings stay). Nights already released
    are left as they are; only a new amendment, which checks the pool, re-grows a night."""
    # The list as sent is bounded, not only its distinct dates: 100,000 copies of one date is work.
    wanted = sorted(set(dates))
    if not 1 <= len(dates) <= MAX_BLOCK_NIGHTS or not wanted:
        raise InvalidInput("dates", f"1 to {MAX_BLOCK_NIGHTS} dates, got {len(dates)}")

    async def release(session: AsyncSession, block: models.Hardblock) -> Span | None:
        _active(block, "release nights of")
        outside = [d.isoformat() for d in wanted if not block.start_date <= d < block.end_date]
        if outside:
            raise InvalidInput("dates", f"not nights of the block ({block.start_date.isoformat()} to "
                               f"{block.end_date.isoformat()}): {', '.join(outside)}")
        state = await _state(session, block, wanted[0], wanted[-1] + ONE_NIGHT)
        fresh = [d for d in wanted if not state.terms.is_released(d, state.now)]
        if not fresh:
            return None
        slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                        fresh[0], fresh[-1] + ONE_NIGHT, state.now)
        returned = {slot.date: slot.available for slot in slots}
        await release_nights(session, block.id, fresh, state.now)
        audit.record(session, caller.actor, "hardblock.nights_released", "Hardblock", block.id, after={
            "cause": "MANUAL", "nights": [{"date": d.isoformat(), "rooms_returned": returned[d]} for d in fresh],
        })
        return fresh[0], fresh[-1] + ONE_NIGHT

    return await _one_block_write(services, caller, pk, id, release)


async def bulk_release_hardblocks(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                                  idempotency_key: str | None = None) -> list[BulkResult]:
    """Release several blocks: one result per id, in order, each block all or nothing."""
    return await _bulk(services, caller, ids, lambda session, block: _release(session, caller, block),
                       (idempotency_key, "bulkReleaseHardblocks", {}))


async def bulk_extend_hardblocks(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                                 count: int, idempotency_key: str | None = None) -> list[BulkResult]:
    """Extend several blocks by `count` nights after their last night, at the size of that night: one
    result per id, in order, each block all or nothing (growth needs the pool)."""
    _staff_only(caller, "extending hardblocks")
    if not 1 <= count <= MAX_BLOCK_NIGHTS:
        return [InvalidInput("nights", f"nights must be 1 to {MAX_BLOCK_NIGHTS}")] * len(ids)
    return await _bulk(services, caller, ids, lambda session, block: _extend(session, caller, block, count),
                       (idempotency_key, "bulkExtendHardblocks", {"nights": count}))


async def preview_hardblock_amendment(services: Services, caller: Caller, pk: int | None, amendment: Amendment,
                                      id: str | None = None) -> Preview:
    """The diff grid an amendment would produce (before, after, delta and conflict per night),
    written nowhere."""
    changes = check_changes(amendment.changes)
    async with services.sessions() as session:
        block = await _visible_block(session, caller, pk, id)
        _active(block, "amend")
        _check_block_span(block, changes)
        state = await _state(session, block, min(c[0] for c in changes), max(c[1] for c in changes))
    preview = preview_amendment(state.terms, changes, state.snapshot.events, state.snapshot.booking_lines,
                                state.pool, state.now)
    return Preview(preview.feasible, _slot_diffs(preview, state.pool))


async def hardblocks(services: Services, caller: Caller, hotel_id: int | None, status: HardblockStatus | None,
                     first: int | None, after: str | None) -> Page[models.Hardblock]:
    """Newest first; agents see their own agency's blocks only. `hotel_id` 0 matches nothing."""
    async with services.sessions() as session:
        statement = scoped(select(models.Hardblock), await own_agency_id(session, caller), models.Hardblock.agency_id)
        if hotel_id is not None:
            statement = statement.where(models.Hardblock.hotel_id == hotel_id)
        if status is not None:
            statement = statement.where(models.Hardblock.status == status.value)
        return await paginate(session, statement, models.Hardblock.id, first=first, after=after, descending=True)


# --- the auto-release job ------------------------------------------------------------------------


async def record_releases(services: Services, *, limit: int = 1000) -> int:
    """Write down (audit, version bump, publish) the nights that released themselves since the
    last run. Availability never waits for this. Returns how many nights were recorded."""
    async with write(services) as unit:
        session = unit.session
        now = await database_now(session)
        recorded = await record_auto_releases(session, now, utc_today(now), limit=limit)
        if not recorded:
            return 0
        blocks = await rows_by_id(session, models.Hardblock, list(recorded))
        for block_id, released in recorded.items():
            block = blocks[block_id]
            audit.record(session, audit.SYSTEM, "hardblock.nights_released", "Hardblock", block_id, after={
                "cause": "AUTO", "release_days": block.release_days, "nights": [d.isoformat() for d in released],
            })
            _touch(unit, block, (released[0], released[-1] + ONE_NIGHT))
    return sum(len(nights_) for nights_ in recorded.values())
