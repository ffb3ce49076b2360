"""Hardblocks: create, amend, give rooms back, revert an amendment, release (whole, nights, in bulk),
extend in bulk; the preview that writes nothing; the list; the auto-release job.

Every write follows the booking path, on asyncpg directly (db.fastpath), in five round trips: one
statement reads what is checked before any lock (the block, whose it is, whether the idempotency
key was used: a retry answers from it), then BEGIN with the room type's advisory lock, one
statement reading the block again with its room type's inventory, the database's clock and the key,
the domain decision, one statement writing everything (the block, an amendment and its events,
voids, night releases, the audit entries, the key's claim, the version bump and the outbox row),
COMMIT, and the change is published.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select

from app.services.bookings import check_reason
from app.services.changes import Change as Published
from app.services.changes import Touched
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
from app.services.idempotency import KeyedWrite, check_key, failure_of, failure_record
from app.services.pages import Page, paginate
from app.services.scope import acting, own_agency_id, scoped
from db import audit, models
from db.bookings import BLOCK_PREFIX, REFERENCE_ATTEMPTS, new_reference
from db.fastpath import locked_transaction
from db.hardblocks import (
    BlockRead,
    BlockWrite,
    Claim,
    HardblockRow,
    WriteContext,
    Written,
    insert_block,
    read_block_state,
    read_pool_state,
    read_write_context,
    record,
    record_auto_releases,
    write_block,
)
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


def _check_start(start: date, today: date) -> None:
    if start < today:
        raise InvalidInput("from", f"from {start.isoformat()} is in the past")


def _check_span(start: date, end: date, field: str) -> None:
    if (end - start).days > MAX_BLOCK_NIGHTS:
        raise InvalidInput(field, f"a hardblock spans at most {MAX_BLOCK_NIGHTS} nights")


def check_changes(changes: Sequence[Change]) -> list[Change]:
    """An amendment's changes: 1 to MAX_CHANGES of them, valid ranges from today on, bounded rooms."""
    if not 1 <= len(changes) <= MAX_CHANGES:
        raise InvalidInput("changes", f"an amendment has 1 to {MAX_CHANGES} changes, got {len(changes)}")
    for i, (start, end, rooms) in enumerate(changes):
        if problem := check_range(start, end):
            raise _domain_input(problem, f"changes[{i}].")
        if not 0 <= rooms <= MAX_ROOMS:
            raise InvalidInput(f"changes[{i}].rooms", f"changes[{i}].rooms must be 0 to {MAX_ROOMS} "
                               "(0 removes the nights)")
    _check_span(min(c[0] for c in changes), max(c[1] for c in changes), "changes")
    # Lenient until the block's hotel is known: no hotel's date is earlier than the day before UTC's.
    check_changes_past(changes, earliest_today())
    return list(changes)


def earliest_today() -> date:
    """The earliest local date any hotel can have now (UTC-12 is a day behind UTC at most)."""
    return utc_today(models.utcnow()) - ONE_NIGHT


def check_changes_past(changes: Sequence[Change], today: date) -> None:
    """No change starts before `today`, the block's hotel's local date."""
    for i, (start, _, _) in enumerate(changes):
        if start < today:
            raise InvalidInput(f"changes[{i}].from", f"changes[{i}].from {start.isoformat()} is in the past")


def _check_block_span(block: HardblockRow, changes: list[Change]) -> None:
    """The span the block would have: its nights now and the ones the changes give rooms."""
    held = [c for c in changes if c[2] > 0]
    _check_span(min([block.start_date, *(c[0] for c in held)]), max([block.end_date, *(c[1] for c in held)]),
                "changes")


def _fitted(block: HardblockRow, terms: HardblockTerms, events: Sequence[AllotmentEvent],
            bookings: Sequence[BookingLine], now: datetime) -> HardblockRow:
    """The block with its stored span set to what it holds after a change: its base nights and
    every night with rooms or bookings (so lookups by night find it, and a reverted extension
    shrinks it)."""
    slots = compute_hardblock_slots(terms, events, bookings, None, None, now)
    return dataclasses.replace(block, start_date=slots[0].date, end_date=slots[-1].date + ONE_NIGHT)


def _visible(caller: Caller, context: WriteContext, pk: int | None, id: str | None) -> HardblockRow:
    """The block, or NotFound when it is missing (`pk` None: the id names none) or (for agents)
    another agency's."""
    block = context.blocks.get(pk) if pk is not None else None
    if block is None or not _may_touch(caller, context, block):
        raise NotFound("no hardblock with that id", id)
    return block


def _may_touch(caller: Caller, context: WriteContext, block: HardblockRow) -> bool:
    # An agent whose agency is not registered has no blocks (own_agency_id None then).
    return caller.is_staff or (context.own_agency_id is not None and block.agency_id == context.own_agency_id)


async def _context(connection: asyncpg.Connection, caller: Caller, keyed: KeyedWrite | None = None,
                   **asked: Any) -> WriteContext:
    """What a write checks before any lock (db.hardblocks.read_write_context), as `caller` sees it."""
    return await read_write_context(connection, agency_code=None if caller.is_staff else caller.principal.agency_code,
                                    key=keyed.lookup if keyed else None, **asked)


def _staff_only(caller: Caller, action: str) -> None:
    """Taking rooms from the pool for a block is the wholesaler's decision; agents only give back."""
    if not caller.is_staff:
        raise Forbidden(f"Forbidden: {action} needs the admin or operator role (agents may book from their "
                        "blocks, return rooms and release nights or whole blocks)")


def _active(block: HardblockRow, action: str) -> None:
    if block.status != HardblockStatus.ACTIVE.value:
        at = block.released_at.isoformat() if block.released_at else "an earlier time"
        raise InvalidTransition(f"cannot {action} a hardblock released at {at}", status=block.status)


# --- the state of a block under the lock ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BlockState:
    """A block as of its read (under its room type's lock, for a write) and what its decisions need."""

    read: BlockRead
    terms: HardblockTerms
    pool: CalendarRow  # its room type over the nights read

    @property
    def block(self) -> HardblockRow:
        return self.read.block

    @property
    def now(self) -> datetime:  # the database's, as of the read
        return self.read.inventory.now

    @property
    def events(self) -> list[AllotmentEvent]:
        return self.read.inventory.events

    @property
    def lines(self) -> list[BookingLine]:
        return self.read.inventory.booking_lines


@dataclass(frozen=True, slots=True)
class _Reads:
    """What a decision about a block reads besides the block: its room type over [start, end)
    widened to the block's span as of the read (None: the span alone) and `grow` nights past its
    end; `amends`: the decision records an amendment (the read draws the amendment's id);
    `reverting`: the amendment whose revert time it reads."""

    start: date | None = None
    end: date | None = None
    grow: int = 0
    amends: bool = False
    reverting: int | None = None


@dataclass(frozen=True, slots=True)
class _Operation:
    """A write of one existing block: what it reads, and the decision on that (what to write, or
    None for nothing)."""

    decide: Callable[[_BlockState], BlockWrite | None]
    reads: _Reads = _Reads()


async def _read_state(connection: asyncpg.Connection, block: HardblockRow, reads: _Reads,
                     keyed: KeyedWrite | None = None) -> _BlockState:
    """The block as it is now and what a decision about it reads, in one statement; _Replayed when
    the key was claimed by a request that held the lock before this one."""
    read = await read_block_state(connection, block, reads.start, reads.end, grow=reads.grow,
                                  key=keyed.lookup if keyed else None, amendment_id=reads.reverting,
                                  amending=reads.amends)
    if read.earlier is not None:
        raise _Replayed()
    terms = next(t for t in read.inventory.hardblock_terms if t.id == block.id)
    pool = read.inventory.calendar(read.start, read.end, read.inventory.now)[block.room_type_id]
    return _BlockState(read, terms, pool)


class _Replayed(Exception):
    """The idempotency key was claimed by a concurrent request that committed first: roll back and
    answer as a retry would (read again: it holds the outcome now)."""


def _slot_diffs(preview: AmendmentPreview, pool: CalendarRow) -> list[SlotDiff]:
    return [
        SlotDiff(date=d.date, before=d.before, after=d.after, delta=d.delta,
                 conflict=d.conflict.value if d.conflict else None, booked=d.booked,
                 pool_needed=d.needed, pool_available=pool.available[pool.index(d.date)])
        for d in preview.slots
    ]


def _raise_conflicts(preview: AmendmentPreview, pool: CalendarRow, block_id: int | None,
                     room_type: tuple[int, str], released: Callable[[str], Failure]) -> None:
    if late := preview.nights_with(SlotConflict.RELEASED):
        raise released(", ".join(d.date.isoformat() for d in late))
    diffs = {d.date: d for d in _slot_diffs(preview, pool)}
    if under := preview.nights_with(SlotConflict.BLOCK_UNDERFLOW):
        raise BlockUnderflow([diffs[d.date] for d in under])
    if short := preview.nights_with(SlotConflict.SOLD_OUT):
        # A block being created asks the pool, so its shortfalls name no block.
        room_type_id, code = room_type
        raise SoldOut([Shortfall(room_type_id, code, d.date, d.needed, pool.available[pool.index(d.date)], block_id)
                       for d in short])


def _grow_past_release(nights_: str) -> Failure:
    return InvalidInput("changes", f"nights past their release time cannot grow (their unsold rooms are "
                        f"back in the pool): {nights_}")


def _block_snapshot(block: HardblockRow) -> dict[str, Any]:
    return audit.snapshot(block, "reference", "agency_id", "room_type_id", "start_date", "end_date",
                          "base_start_date", "base_end_date", "rooms", "release_days", "status", "released_at")


def _changes_snapshot(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [{"from": a.isoformat(), "to": b.isoformat(), "rooms": rooms} for a, b, rooms in changes]


def _slots_snapshot(preview: AmendmentPreview) -> list[dict[str, Any]]:
    return [{"date": d.date.isoformat(), "before": d.before, "after": d.after} for d in preview.slots]


def _room_type(state: _BlockState) -> tuple[int, str]:
    return state.block.room_type_id, state.read.room_type_code


# --- the decisions: what a write of a block writes, on its state under the lock -------------------


def _amend(caller: Caller, state: _BlockState, changes: list[Change], reason: str,
           action: str = "hardblock.amended") -> BlockWrite:
    """An amendment of the block, decided on `state` (a read covering the changes)."""
    block = state.block
    _active(block, "amend")
    _check_block_span(block, changes)
    preview = preview_amendment(state.terms, changes, state.events, state.lines, state.pool, state.now)
    if grown := [d.date.isoformat() for d in preview.slots if d.after > d.before]:
        _staff_only(caller, f"growing or extending a block (nights {', '.join(grown[:5])})")
    _raise_conflicts(preview, state.pool, block.id, _room_type(state), _grow_past_release)
    proposed = proposed_amendments(state.terms, changes, state.events, state.now)
    touched = {night for start, end, _ in changes for night in nights(start, end)}
    regrown = dataclasses.replace(state.terms, released_nights=state.terms.released_nights - touched)
    after = _fitted(block, regrown, [*state.events, *proposed], state.lines, state.now)
    amendment_id = state.read.new_amendment_id
    assert amendment_id is not None, "an amending operation's read draws the amendment's id"
    return BlockWrite(after, [(action, "Hardblock", block.id, _block_snapshot(block), {
        **_block_snapshot(after), "amendment_id": amendment_id, "reason": reason,
        "changes": _changes_snapshot(changes), "slots": _slots_snapshot(preview),
    })], (min(c[0] for c in changes), max(c[1] for c in changes)), amendment=(amendment_id, reason, changes))


def _release(state: _BlockState) -> BlockWrite:
    block = state.block
    _active(block, "release")
    slots = compute_hardblock_slots(state.terms, state.events, state.lines, block.start_date, block.end_date,
                                    state.now)
    after = dataclasses.replace(block, status=HardblockStatus.RELEASED.value, released_at=state.now)
    return BlockWrite(after, [("hardblock.released", "Hardblock", block.id, _block_snapshot(block), {
        **_block_snapshot(after), "rooms_returned": sum(slot.available for slot in slots),
    })], (block.start_date, block.end_date))


def _extend(caller: Caller, state: _BlockState, count: int) -> BlockWrite:
    block = state.block
    _active(block, "extend")
    slots = compute_hardblock_slots(state.terms, state.events, state.lines, block.start_date, block.end_date,
                                    state.now)
    try:
        change = extension(slots, count, block.rooms)
    except DomainInvalidInput as problem:
        raise _domain_input(problem) from None
    _check_span(block.start_date, change[1], "nights")
    return _amend(caller, state, [change], f"extended by {count} nights", "hardblock.extended")


# Releasing a block reads its own span; extending it, the nights it may grow into as well (one read
# for the decision and the amendment).
def _releasing() -> _Operation:
    return _Operation(_release)


def _extending(caller: Caller, count: int) -> _Operation:
    return _Operation(lambda state: _extend(caller, state, count), _Reads(grow=count, amends=True))


# --- one block, or several: the transaction around the decision -----------------------------------


def _versioned(changes: list[Published], written: Written | None) -> tuple[list[Published], list[int]]:
    """The changes a committed write recorded, with their versions, and their outbox rows' ids:
    what the relay publishes."""
    if written is None:
        return [], []
    return ([dataclasses.replace(change, version=version) for change, (_, version) in
             zip(changes, written.changes, strict=True)], [outbox_id for outbox_id, _ in written.changes])


def _touch(touched: Touched, write: BlockWrite) -> None:
    block = write.block
    touched.touch(block.hotel_id, [block.room_type_id], *write.nights, blocks=[(block.id, block.agency_id)])


async def _write_locked_block(services: Services, connection: asyncpg.Connection, caller: Caller, block: HardblockRow,
                              operation: _Operation, keyed: KeyedWrite | None = None
                              ) -> tuple[HardblockRow, tuple[list[Published], list[int]]]:
    """BEGIN with the block's room type's lock, its state, the decision, the one write (claiming the
    key with the block's id), COMMIT. Returns the block as the write left it and what to publish.
    _Replayed when a concurrent request with the key committed first (rolled back)."""
    async with locked_transaction(connection, [block.room_type_id], services.settings.lock_timeout_ms):
        state = await _read_state(connection, block, operation.reads, keyed)
        write = operation.decide(state)
        if write is None:  # nothing to change (nights already released: a write that takes no key)
            return state.block, ([], [])
        touched = Touched()
        _touch(touched, write)
        changes = touched.unversioned()
        written = await write_block(connection, write, caller.actor, state.now,
                                    keyed.claim({"hardblock": block.id}) if keyed else None,
                                    [change.payload() for change in changes])
        if not written.claimed:
            raise _Replayed()
    return write.block, _versioned(changes, written)


async def _one_block_write(services: Services, caller: Caller, pk: int | None, id: str | None,
                           operation: _Operation, keyed: KeyedWrite | None = None) -> HardblockRow:
    """Look the block up, lock its room type, decide, write, commit, publish (a keyed retry: the
    block as it is now, written nothing)."""
    async with services.raw.connection() as connection:
        context = await _context(connection, caller, keyed, ids=[] if pk is None else [pk])
        if keyed and (earlier := keyed.replay(context.earlier)) is not None:
            return _visible(caller, context, earlier["hardblock"], id)
        try:
            block, published = await _write_locked_block(services, connection, caller,
                                                          _visible(caller, context, pk, id), operation, keyed)
        except _Replayed:
            assert keyed is not None, "only a keyed write is replayed"
            context = await _context(connection, caller, keyed)  # the key's first request has committed
            return _visible(caller, context, keyed.replay(context.earlier)["hardblock"], id)
    await services.relay.deliver(*published)
    return block


BulkResult = HardblockRow | Failure


async def _bulk(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                operation: _Operation, keyed_as: tuple[str | None, str, dict[str, Any]]) -> list[BulkResult]:
    """One transaction, every room type locked up front in one sorted order; each block is read,
    decided and written in turn (a failure writes nothing of it), so it succeeds or fails whole
    without touching the others; one version bump and change per hotel at the end, with the key's
    claim. `ids` pairs each primary key (None for an id that names no hardblock) with how it was
    named. A keyed retry answers what the first request did, item by item, and writes nothing."""
    key, name, request = keyed_as
    try:
        keyed = KeyedWrite(caller, check_key(key), name, {"ids": [named for _, named in ids], **request})
        async with services.raw.connection() as connection:
            context = await _context(connection, caller, keyed, ids=sorted({pk for pk, _ in ids if pk is not None}))
            if (earlier := keyed.replay(context.earlier)) is not None:
                return _bulk_replay(earlier, context)
            visible = {pk: b for pk, b in context.blocks.items() if _may_touch(caller, context, b)}
            try:
                results, published = await _write_locked_blocks(services, connection, caller, ids, visible,
                                                                 operation, keyed)
            except _Replayed:
                context = await _context(connection, caller, keyed)  # the key's first request has committed
                return _bulk_replay(keyed.replay(context.earlier), context)
    except (LockTimeout, IdempotencyConflict, InvalidInput) as error:  # the whole request's: every item's answer
        return [error for _ in ids]
    await services.relay.deliver(*published)
    return results


async def _write_locked_blocks(services: Services, connection: asyncpg.Connection, caller: Caller,
                               ids: Sequence[tuple[int | None, str]], visible: dict[int, HardblockRow],
                               operation: _Operation, keyed: KeyedWrite
                               ) -> tuple[list[BulkResult], tuple[list[Published], list[int]]]:
    results: list[BulkResult] = []
    touched, seen, now = Touched(), set(), None
    async with locked_transaction(connection, {b.room_type_id for b in visible.values()},
                                  services.settings.lock_timeout_ms):
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
                state = await _read_state(connection, block, operation.reads, keyed)
                write = operation.decide(state)
            except (InvalidInput, InvalidTransition, SoldOut, BlockUnderflow) as error:
                results.append(error)
                continue
            now = state.now
            if write is not None:
                await write_block(connection, write, caller.actor, now)  # its change is recorded below
                _touch(touched, write)
            results.append(state.block if write is None else write.block)
        changes = touched.unversioned()
        claim = keyed.claim([failure_record(r) if isinstance(r, Failure) else {"hardblock": r.id} for r in results])
        written = None
        if changes or claim is not None:
            written = await record(connection, caller.actor, now, [], claim, [change.payload() for change in changes])
            if not written.claimed:
                raise _Replayed()
    return results, _versioned(changes, written)


def _bulk_replay(outcome: list[dict[str, Any]], context: WriteContext) -> list[BulkResult]:
    """A bulk retry's answer: each item's first result (its block as it is now)."""
    return [context.blocks[o["hardblock"]] if "hardblock" in o else failure_of(o) for o in outcome]


# --- use cases -----------------------------------------------------------------------------------


async def create_hardblock(services: Services, caller: Caller, request: NewHardblock) -> HardblockRow:
    """Reserve `rooms` rooms of a room type on every night of [start, end) for one agency. Needs that
    many available in the pool on every night; decided under the room type's inventory lock."""
    if problem := check_hardblock(request.start, request.end, request.rooms, request.release_days):
        raise _domain_input(problem)
    if request.rooms > MAX_ROOMS:
        raise InvalidInput("rooms", f"rooms must be at most {MAX_ROOMS}")
    _check_span(request.start, request.end, "to")
    _check_start(request.start, earliest_today())  # lenient until the hotel is known: exact under the lock
    _staff_only(caller, "creating a hardblock")
    keyed = KeyedWrite(caller, check_key(request.idempotency_key), "createHardblock",
                       {**dataclasses.asdict(request), "idempotency_key": None})

    async with services.raw.connection() as connection:
        context = await _context(connection, caller, keyed, agency_id=request.agency_id,
                                 room_type_id=request.room_type_id)
        if (earlier := keyed.replay(context.earlier)) is not None:
            return context.blocks[earlier["hardblock"]]
        agency = acting(caller, request.agency_id, context.agency)
        if context.room_type is None:
            raise InvalidInput("roomTypeId", "no room type with that id")
        room_type_id, hotel_id, code = context.room_type
        try:
            async with locked_transaction(connection, [room_type_id], services.settings.lock_timeout_ms):
                read = await read_pool_state(connection, hotel_id, room_type_id, request.start, request.end,
                                             keyed.lookup)
                if read.earlier is not None:  # a concurrent retry held the lock first and committed
                    raise _Replayed()
                _check_start(request.start, read.inventory.today)
                now = read.inventory.now
                pool = read.inventory.calendar(request.start, request.end, now)[room_type_id]
                terms = HardblockTerms(0, room_type_id, agency.id, request.start, request.end, request.rooms,
                                       request.release_days, time_zone=read.inventory.time_zone)
                slots = compute_hardblock_slots(terms, [], [], request.start, request.end, now)
                diffs = diff_slots([], slots, pool, nights(request.start, request.end), now)
                preview = AmendmentPreview(all(d.conflict is None for d in diffs), tuple(diffs))
                _raise_conflicts(preview, pool, None, (room_type_id, code), lambda late: InvalidInput(
                    "releaseDays", f"nights past their release time cannot be blocked: {late}"))
                block = HardblockRow(
                    id=read.new_block_id, reference=new_reference(BLOCK_PREFIX), agency_id=agency.id,
                    hotel_id=hotel_id, room_type_id=room_type_id, start_date=request.start, end_date=request.end,
                    base_start_date=request.start, base_end_date=request.end, rooms=request.rooms,
                    release_days=request.release_days, status=HardblockStatus.ACTIVE.value, created_at=now,
                )
                touched = Touched()
                touched.touch(hotel_id, [room_type_id], request.start, request.end, blocks=[(block.id, agency.id)])
                changes = touched.unversioned()
                written = await _insert_with_fresh_reference(connection, caller, block, agency.code,
                                                             keyed.claim({"hardblock": block.id}), changes)
                if not written.claimed:
                    raise _Replayed()
        except _Replayed:
            context = await _context(connection, caller, keyed)  # the key's first request has committed
            return context.blocks[keyed.replay(context.earlier)["hardblock"]]
    await services.relay.deliver(*_versioned(changes, written))
    return block


async def _insert_with_fresh_reference(connection: asyncpg.Connection, caller: Caller, block: HardblockRow,
                                       agency_code: str, claim: Claim | None, changes: list[Published]) -> Written:
    """Insert the block; a random reference that is already taken is drawn again (the statement
    that found it taken wrote nothing)."""
    for _ in range(REFERENCE_ATTEMPTS):
        written = await insert_block(
            connection, block, caller.actor,
            [("hardblock.created", "Hardblock", block.id, None, {**_block_snapshot(block), "agency": agency_code})],
            claim, [c.payload() for c in changes])
        if written is not None:
            return written
        block.reference = new_reference(BLOCK_PREFIX)
    raise RuntimeError(f"{REFERENCE_ATTEMPTS} random hardblock references in a row were taken")


async def amend_hardblock(services: Services, caller: Caller, pk: int | None, amendment: Amendment,
                          id: str | None = None) -> HardblockRow:
    """Set the block's size on some nights (extending it beyond its range, or 0 to remove nights),
    as BLOCK_AMENDMENT events grouped in one amendment. Never below what is booked from it
    (BlockUnderflow); growth needs pool availability (SoldOut)."""
    changes = check_changes(amendment.changes)
    reason = check_reason(amendment.reason)
    keyed = KeyedWrite(caller, check_key(amendment.idempotency_key), "amendHardblock",
                       {"hardblock": pk, "changes": _changes_snapshot(changes), "reason": reason})

    def amend(state: _BlockState) -> BlockWrite:
        check_changes_past(changes, state.read.inventory.today)  # exact: the block's hotel's today
        return _amend(caller, state, changes, reason)

    return await _one_block_write(services, caller, pk, id, _Operation(
        amend, _Reads(min(c[0] for c in changes), max(c[1] for c in changes), amends=True)), keyed)


async def return_hardblock_rooms(services: Services, caller: Caller, pk: int | None, start: date, end: date, rooms: int,
                                 reason: str | None = None, id: str | None = None,
                                 idempotency_key: str | None = None) -> HardblockRow:
    """Give `rooms` rooms of each night of [start, end) back to the pool (an amendment shrinking
    those nights; never below what is booked)."""
    if start >= end:
        raise InvalidInput("to", "to must be after from (ranges are half-open over nights)")
    _check_span(start, end, "to")
    reason = check_reason(reason) or f"returned {rooms} rooms"
    keyed = KeyedWrite(caller, check_key(idempotency_key), "returnHardblockRooms",
                       {"hardblock": pk, "from": start, "to": end, "rooms": rooms, "reason": reason})

    def give_back(state: _BlockState) -> BlockWrite:
        _active(state.block, "return rooms of")
        slots = compute_hardblock_slots(state.terms, state.events, state.lines, start, end, state.now)
        try:
            changes = returned_rooms(state.terms, slots, rooms, state.now)
        except DomainInvalidInput as problem:
            raise InvalidInput(problem.field, problem.message) from None
        return _amend(caller, state, changes, reason, "hardblock.rooms_returned")

    return await _one_block_write(services, caller, pk, id, _Operation(give_back, _Reads(start, end, amends=True)),
                                  keyed)


async def revert_hardblock_amendment(services: Services, caller: Caller, amendment_pk: int | None,
                                     id: str | None = None) -> HardblockRow:
    """Void an amendment's events, if the block can go back: not below its bookings, and only with
    pool availability for what it takes back. Otherwise a typed failure naming the nights."""
    _staff_only(caller, "reverting an amendment")
    async with services.raw.connection() as connection:
        context = await _context(connection, caller, amendment_id=amendment_pk)
        if context.amendment_block_id is None:
            raise NotFound("no hardblock amendment with that id", id)
        block = _visible(caller, context, context.amendment_block_id, id)
        own = context.amendment_events  # an amendment's events never change: reverting it voids them
        start, end = min(e[1] for e in own), max(e[2] for e in own)

        def revert(state: _BlockState) -> BlockWrite:
            if state.read.reverted_at is not None:
                raise InvalidTransition(f"the amendment was already reverted at {state.read.reverted_at.isoformat()}",
                                        status="REVERTED")
            _active(state.block, "revert an amendment of")
            own_ids = {e[0] for e in own}
            after_events = [e for e in state.events if e.id not in own_ids]
            releases = state.read.inventory.releases.get(state.block.id, {})
            after_terms = dataclasses.replace(
                state.terms, released_nights=effective_released_nights(state.block.id, releases, after_events))
            touched_nights = {night for _, first, after_last in own for night in nights(first, after_last)}
            preview = preview_change((state.terms, state.events), (after_terms, after_events), state.lines,
                                     state.pool, touched_nights, state.now)
            _raise_conflicts(preview, state.pool, state.block.id, _room_type(state), lambda late: InvalidTransition(
                f"cannot revert: nights past their release time cannot grow back: {late}", status="RELEASED"))
            return BlockWrite(
                _fitted(state.block, after_terms, after_events, state.lines, state.now),
                [("hardblock.amendment_reverted", "Hardblock", state.block.id,
                  {"amendment_id": amendment_pk, "reverted_at": None},
                  {"amendment_id": amendment_pk, "reverted_at": state.now.isoformat(),
                   "slots": _slots_snapshot(preview)})],
                (start, end), reverted_amendment_id=amendment_pk)

        block, published = await _write_locked_block(services, connection, caller, block,
                                                     _Operation(revert, _Reads(start, end, reverting=amendment_pk)))
    await services.relay.deliver(*published)
    return block


async def release_hardblock(services: Services, caller: Caller, pk: int | None, id: str | None = None) -> HardblockRow:
    """Release the whole block: its unsold rooms return to the pool; bookings made from it stay."""
    return await _one_block_write(services, caller, pk, id, _releasing())


async def release_hardblock_nights(services: Services, caller: Caller, pk: int | None, dates: Sequence[date],
                                   id: str | None = None) -> HardblockRow:
    """Release the unsold rooms of some nights to the pool (bookings stay). Nights already released
    are left as they are; only a new amendment, which checks the pool, re-grows a night."""
    # The list as sent is bounded, not only its distinct dates: 100,000 copies of one date is work.
    wanted = sorted(set(dates))
    if not 1 <= len(dates) <= MAX_BLOCK_NIGHTS or not wanted:
        raise InvalidInput("dates", f"1 to {MAX_BLOCK_NIGHTS} dates, got {len(dates)}")

    def release(state: _BlockState) -> BlockWrite | None:
        block = state.block
        _active(block, "release nights of")
        outside = [d.isoformat() for d in wanted if not block.start_date <= d < block.end_date]
        if outside:
            raise InvalidInput("dates", f"not nights of the block ({block.start_date.isoformat()} to "
                               f"{block.end_date.isoformat()}): {', '.join(outside)}")
        fresh = [d for d in wanted if not state.terms.is_released(d, state.now)]
        if not fresh:
            return None
        slots = compute_hardblock_slots(state.terms, state.events, state.lines, fresh[0], fresh[-1] + ONE_NIGHT,
                                        state.now)
        returned = {slot.date: slot.available for slot in slots}
        return BlockWrite(block, [("hardblock.nights_released", "Hardblock", block.id, None, {
            "cause": "MANUAL", "nights": [{"date": d.isoformat(), "rooms_returned": returned[d]} for d in fresh],
        })], (fresh[0], fresh[-1] + ONE_NIGHT), released_nights=fresh)

    return await _one_block_write(services, caller, pk, id,
                                  _Operation(release, _Reads(wanted[0], wanted[-1] + ONE_NIGHT)))


async def bulk_release_hardblocks(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                                  idempotency_key: str | None = None) -> list[BulkResult]:
    """Release several blocks: one result per id, in order, each block all or nothing."""
    return await _bulk(services, caller, ids, _releasing(), (idempotency_key, "bulkReleaseHardblocks", {}))


async def bulk_extend_hardblocks(services: Services, caller: Caller, ids: Sequence[tuple[int | None, str]],
                                 count: int, idempotency_key: str | None = None) -> list[BulkResult]:
    """Extend several blocks by `count` nights after their last night, at the size of that night: one
    result per id, in order, each block all or nothing (growth needs the pool)."""
    _staff_only(caller, "extending hardblocks")
    if not 1 <= count <= MAX_BLOCK_NIGHTS:
        return [InvalidInput("nights", f"nights must be 1 to {MAX_BLOCK_NIGHTS}")] * len(ids)
    return await _bulk(services, caller, ids, _extending(caller, count),
                       (idempotency_key, "bulkExtendHardblocks", {"nights": count}))


async def preview_hardblock_amendment(services: Services, caller: Caller, pk: int | None, amendment: Amendment,
                                      id: str | None = None) -> Preview:
    """The diff grid an amendment would produce (before, after, delta and conflict per night),
    written nowhere: the write's reads, without its lock."""
    changes = check_changes(amendment.changes)
    async with services.raw.connection() as connection:
        block = _visible(caller, await _context(connection, caller, ids=[] if pk is None else [pk]), pk, id)
        _active(block, "amend")
        _check_block_span(block, changes)
        state = await _read_state(connection, block, _Reads(min(c[0] for c in changes), max(c[1] for c in changes)))
    check_changes_past(changes, state.read.inventory.today)
    preview = preview_amendment(state.terms, changes, state.events, state.lines, state.pool, state.now)
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
    last run. Availability never waits for this, and it takes no room type's lock: it changes no
    number. Returns how many nights were recorded."""
    async with services.raw.connection() as connection:
        # No room types to lock: the transaction's lock_timeout bounds the wait for a version row.
        async with locked_transaction(connection, (), services.settings.lock_timeout_ms):
            recorded, now = await record_auto_releases(connection, limit=limit)
            if not recorded:
                return 0
            touched = Touched()
            for block in recorded:
                touched.touch(block.hotel_id, [block.room_type_id], block.nights[0], block.nights[-1] + ONE_NIGHT,
                              blocks=[(block.id, block.agency_id)])
            changes = touched.unversioned()
            written = await record(connection, audit.SYSTEM, now, [
                ("hardblock.nights_released", "Hardblock", block.id, None, {
                    "cause": "AUTO", "release_days": block.release_days,
                    "nights": [d.isoformat() for d in block.nights]})
                for block in recorded], None, [c.payload() for c in changes])
    await services.relay.deliver(*_versioned(changes, written))
    return sum(len(block.nights) for block in recorded)
