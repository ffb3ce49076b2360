"""Hardblock writes: create, amend, give rooms back, revert an amendment, release (whole, nights,
in bulk), extend in bulk; the preview that writes nothing; the list query; the auto-release job.

Every write that changes what a block takes from the pool follows the booking path: validate ->
one transaction -> the room types' advisory locks (sorted) -> fresh read after the lock ->
domain decision -> writes + audit + version bump -> commit -> publish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import strawberry
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from app.api.booking_mutations import _booking_agency, _own_agency_id, _scoped
from app.api.errors import (
    BlockUnderflow,
    BlockUnderflowError,
    InvalidInput,
    InvalidInputError,
    InvalidTransition,
    InvalidTransitionError,
    LockTimeout,
    NotFound,
    NotFoundError,
    Shortfall,
    SoldOut,
    SoldOutError,
    as_user_error,
)
from app.api.hardblocks import (
    Hardblock,
    HardblockAmendmentInput,
    HardblockAmendmentPreview,
    HardblockSlotDiff,
    HardblockStatus,
)
from app.api.ids import decode_id, filter_pk
from app.api.pagination import paginate
from app.api.permissions import AUTHENTICATED, Info
from app.api.types import RoomType
from app.context import Context
from app.publish import publish_hardblock_change, publish_inventory_change
from db import audit, models
from db.calendar import InventorySnapshot, load_inventory
from db.engine import transaction
from db.hardblocks import record_auto_releases, release_nights
from db.inventory import LockTimeout as LockTimeoutError
from db.inventory import bump_version, lock_room_types
from db.queries import rows_by_id
from domain import (
    AllotmentEvent,
    AmendmentPreview,
    BookingLine,
    CalendarRow,
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
MAX_REASON_CHARS = 500
RELEASE_JOB_INTERVAL_S = 60.0

Change = tuple[date, date, int]
ONE_NIGHT = timedelta(days=1)


# --- inputs and results --------------------------------------------------------------------------


@strawberry.input
class CreateHardblockInput:
    agency_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for admins and operators; agents block for their own agency."
    )
    room_type_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date = strawberry.field(description="The day after the last night.")
    rooms: int
    release_days: int = strawberry.field(
        default=0, description="Unsold rooms of a night return to the pool this many days before it."
    )


@strawberry.input(description="Give `rooms` rooms of every night of [from, to) back to the pool.")
class ReturnHardblockRoomsInput:
    hardblock_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date
    rooms: int
    reason: str | None = None


CreateHardblockResult = Annotated[
    Hardblock | SoldOut | InvalidInput | LockTimeout, strawberry.union("CreateHardblockResult")
]
AmendHardblockResult = Annotated[
    Hardblock | SoldOut | BlockUnderflow | InvalidInput | NotFound | InvalidTransition | LockTimeout,
    strawberry.union("AmendHardblockResult"),
]
ReleaseHardblockResult = Annotated[
    Hardblock | InvalidTransition | NotFound | InvalidInput | LockTimeout, strawberry.union("ReleaseHardblockResult")
]


# --- validation ----------------------------------------------------------------------------------


def _domain_input_error(problem: DomainInvalidInput, prefix: str = "") -> InvalidInputError:
    return InvalidInputError(f"{prefix}{problem.field}", f"{prefix}{problem.field} {problem.message}")


def _check_span(start: date, end: date, field: str) -> None:
    if (end - start).days > MAX_BLOCK_NIGHTS:
        raise InvalidInputError(field, f"a hardblock spans at most {MAX_BLOCK_NIGHTS} nights")


def _check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError("reason", f"reason must be at most {MAX_REASON_CHARS} characters")
    return reason


def _check_changes(input: HardblockAmendmentInput) -> list[Change]:
    if not 1 <= len(input.changes) <= MAX_CHANGES:
        raise InvalidInputError("changes", f"an amendment has 1 to {MAX_CHANGES} changes, got {len(input.changes)}")
    today = utc_today(models.utcnow())
    changes = []
    for i, change in enumerate(input.changes):
        if problem := check_range(change.from_, change.to):
            raise _domain_input_error(problem, f"changes[{i}].")
        if change.from_ < today:
            raise InvalidInputError(f"changes[{i}].from", f"changes[{i}].from {change.from_.isoformat()} is in "
                                    "the past")
        if not 0 <= change.rooms <= MAX_ROOMS:
            raise InvalidInputError(f"changes[{i}].rooms", f"changes[{i}].rooms must be 0 to {MAX_ROOMS} "
                                    "(0 removes the nights)")
        changes.append((change.from_, change.to, change.rooms))
    _check_span(min(c[0] for c in changes), max(c[1] for c in changes), "changes")
    return changes


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


def _block_pk(id: strawberry.ID, type_name: str = "Hardblock") -> int:
    try:
        return decode_id(id, type_name, "id")
    except InvalidInputError:
        raise NotFoundError(f"no {type_name[0].lower()}{type_name[1:]} with that id", id) from None


async def _visible_block(session: AsyncSession, context: Context, pk: int, id: strawberry.ID) -> models.Hardblock:
    """The block, or NotFound when it is missing or (for agents) another agency's."""
    block = await session.get(models.Hardblock, pk)
    own = await _own_agency_id(session, context)
    if block is None or (own is not None and block.agency_id != own):
        raise NotFoundError("no hardblock with that id", id)
    return block


async def _locked(session: AsyncSession, context: Context, block: models.Hardblock) -> models.Hardblock:
    """Take the block's room-type lock, then re-read the block: what it was before the lock may
    have changed (released, widened) by a writer that held it."""
    await lock_room_types(session, [block.room_type_id], context.settings.lock_timeout_ms)
    await session.refresh(block)
    return block


def _active(block: models.Hardblock, action: str) -> None:
    if block.status != HardblockStatus.ACTIVE.value:
        at = block.released_at.isoformat() if block.released_at else "an earlier time"
        raise InvalidTransitionError(f"cannot {action} a hardblock released at {at}", status=block.status)


# --- the state of a block under the lock ---------------------------------------------------------


@dataclass
class _BlockState:
    snapshot: InventorySnapshot
    terms: HardblockTerms
    pool: CalendarRow
    start: date
    end: date
    now: datetime


async def _state(session: AsyncSession, block: models.Hardblock, start: date, end: date) -> _BlockState:
    """The block and its room type's pool over [start, end) widened to the block's span."""
    start, end = min(start, block.start_date), max(end, block.end_date)
    snapshot = await load_inventory(session, block.hotel_id, start, end, [block.room_type_id])
    now = models.utcnow()
    terms = next(t for t in snapshot.hardblock_terms if t.id == block.id)
    return _BlockState(snapshot, terms, snapshot.calendar(start, end, now)[block.room_type_id], start, end, now)


def _slot_diffs(preview: AmendmentPreview, pool: CalendarRow) -> list[HardblockSlotDiff]:
    return [
        HardblockSlotDiff(date=d.date, before=d.before, after=d.after, delta=d.delta,
                          conflict=d.conflict.value if d.conflict else None, booked=d.booked,
                          pool_needed=d.needed, pool_available=pool.available[pool.index(d.date)])
        for d in preview.slots
    ]


def _raise_conflicts(preview: AmendmentPreview, pool: CalendarRow, block: models.Hardblock,
                     room_type: models.RoomType, released: Callable[[str], Exception]) -> None:
    if late := preview.nights_with(SlotConflict.RELEASED):
        raise released(", ".join(d.date.isoformat() for d in late))
    diffs = {d.date: d for d in _slot_diffs(preview, pool)}
    if under := preview.nights_with(SlotConflict.BLOCK_UNDERFLOW):
        raise BlockUnderflowError([diffs[d.date] for d in under])
    if short := preview.nights_with(SlotConflict.SOLD_OUT):
        # Copies: SoldOut rolls the transaction back, which expires the session's rows. A block
        # being created asks the pool, so its shortfalls name no block.
        block_copy = models.Hardblock(**block.model_dump()) if block.id is not None else None
        raise SoldOutError([
            Shortfall(room_type=RoomType.from_row(models.RoomType(**room_type.model_dump())), date=d.date,
                      requested=d.needed, available=pool.available[pool.index(d.date)], hardblock_row=block_copy)
            for d in short
        ])


def _grow_past_release(nights_: str) -> Exception:
    return InvalidInputError("changes", f"nights past their release time cannot grow (their unsold rooms are "
                             f"back in the pool): {nights_}")


def _block_snapshot(block: models.Hardblock) -> dict[str, Any]:
    return audit.snapshot(block, "reference", "agency_id", "room_type_id", "start_date", "end_date",
                          "base_start_date", "base_end_date", "rooms", "release_days", "status", "released_at")


def _changes_snapshot(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [{"from": a.isoformat(), "to": b.isoformat(), "rooms": rooms} for a, b, rooms in changes]


@dataclass(frozen=True, slots=True)
class _Touched:
    """What a committed block write changed, for the publish after commit."""

    block: models.Hardblock
    start: date
    end: date


async def _apply_amendment(
    session: AsyncSession, context: Context, block: models.Hardblock, changes: list[Change], reason: str,
    action: str = "hardblock.amended", state: _BlockState | None = None,
) -> _Touched:
    """Decide and record an amendment of a block whose lock the caller holds (on `state`, a read
    the caller already took under that lock and covering the changes, if given)."""
    _active(block, "amend")
    _check_block_span(block, changes)
    if state is None:
        state = await _state(session, block, min(c[0] for c in changes), max(c[1] for c in changes))
    events, lines = state.snapshot.events, state.snapshot.booking_lines
    preview = preview_amendment(state.terms, changes, events, lines, state.pool, state.now)
    room_type = next(rt for rt in state.snapshot.room_types if rt.id == block.room_type_id)
    _raise_conflicts(preview, state.pool, block, room_type, _grow_past_release)
    before = _block_snapshot(block)
    amendment = models.HardblockAmendment(hardblock_id=block.id, reason=reason, author_uid=context.actor.uid,
                                          created_at=state.now)
    session.add(amendment)
    await session.flush()
    session.add_all([
        models.AllotmentEvent(
            hotel_id=block.hotel_id, room_type_id=block.room_type_id, kind="BLOCK_AMENDMENT", start_date=start,
            end_date=end, quantity=rooms, hardblock_id=block.id, amendment_id=amendment.id,
            effective_at=state.now, created_at=state.now, created_by=context.actor.uid,
        )
        for start, end, rooms in changes
    ])
    proposed = proposed_amendments(state.terms, changes, events, state.now)
    touched = {night for start, end, _ in changes for night in nights(start, end)}
    regrown = dataclasses.replace(state.terms, released_nights=state.terms.released_nights - touched)
    _fit_span(block, regrown, [*events, *proposed], lines, state.now)
    await session.flush()
    audit.record(session, context.actor, action, "Hardblock", block.id, before=before, after={
        **_block_snapshot(block), "amendment_id": amendment.id, "reason": reason,
        "changes": _changes_snapshot(changes),
        "slots": [{"date": d.date.isoformat(), "before": d.before, "after": d.after} for d in preview.slots],
    })
    return _Touched(block, min(c[0] for c in changes), max(c[1] for c in changes))


async def _release(session: AsyncSession, context: Context, block: models.Hardblock) -> _Touched:
    _active(block, "release")
    state = await _state(session, block, block.start_date, block.end_date)
    slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                    block.start_date, block.end_date, state.now)
    before = _block_snapshot(block)
    block.status, block.released_at = HardblockStatus.RELEASED.value, state.now
    await session.flush()
    audit.record(session, context.actor, "hardblock.released", "Hardblock", block.id, before=before, after={
        **_block_snapshot(block), "rooms_returned": sum(slot.available for slot in slots),
    })
    return _Touched(block, block.start_date, block.end_date)


async def _extend(session: AsyncSession, context: Context, block: models.Hardblock, count: int) -> _Touched:
    _active(block, "extend")
    # One read for the decision and the amendment: the block and the nights it may grow into.
    state = await _state(session, block, block.start_date, block.end_date + timedelta(days=count))
    slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                    block.start_date, block.end_date, state.now)
    try:
        change = extension(slots, count, block.rooms)
    except DomainInvalidInput as problem:
        raise _domain_input_error(problem) from None
    _check_span(block.start_date, change[1], "nights")
    return await _apply_amendment(session, context, block, [change], f"extended by {count} nights",
                                  "hardblock.extended", state)


async def _publish(context: Context, touched: Sequence[_Touched], versions: dict[int, int]) -> None:
    for t in touched:
        await publish_inventory_change(context, t.block.hotel_id, versions[t.block.hotel_id], [t.block.room_type_id],
                                       t.start, t.end)
        await publish_hardblock_change(context, t.block.id, t.block.agency_id)


async def _bump(session: AsyncSession, touched: Sequence[_Touched]) -> dict[int, int]:
    return {hotel_id: await bump_version(session, hotel_id) for hotel_id in sorted({t.block.hotel_id for t in touched})}


async def _one_block_write(
    context: Context, id: strawberry.ID, write: Callable[[AsyncSession, models.Hardblock], Awaitable[_Touched | None]],
) -> Hardblock:
    """Look the block up, lock its room type, write, bump, commit, publish."""
    pk = _block_pk(id)
    async with transaction(context.sessions) as session:
        block = await _locked(session, context, await _visible_block(session, context, pk, id))
        touched = await write(session, block)
        versions = await _bump(session, [touched]) if touched else {}
    if touched:
        await _publish(context, [touched], versions)
    return Hardblock.from_row(block)


async def _bulk(
    context: Context, ids: list[strawberry.ID], write: Callable[[AsyncSession, models.Hardblock], Awaitable[_Touched]],
) -> list[Any]:
    """One transaction, every room type locked up front in one sorted order; each block is
    written in its own savepoint, so it succeeds or fails whole without touching the others."""
    if len(ids) > MAX_BULK:
        return [as_user_error(InvalidInputError("ids", f"at most {MAX_BULK} hardblock ids, got {len(ids)}"))] * len(ids)
    results: list[Any] = []
    touched: list[_Touched] = []
    try:
        async with transaction(context.sessions) as session:
            own = await _own_agency_id(session, context)
            pks: list[int | None] = []
            for id in ids:
                try:
                    pks.append(_block_pk(id))
                except NotFoundError:
                    pks.append(None)
            blocks = await rows_by_id(session, models.Hardblock, [pk for pk in pks if pk is not None])
            visible = {pk: b for pk, b in blocks.items() if own is None or b.agency_id == own}
            await lock_room_types(session, {b.room_type_id for b in visible.values()}, context.settings.lock_timeout_ms)
            seen: set[int] = set()
            for id, pk in zip(ids, pks):
                block = visible.get(pk) if pk is not None else None
                if block is None:
                    results.append(as_user_error(NotFoundError("no hardblock with that id", id)))
                    continue
                if block.id in seen:
                    results.append(as_user_error(InvalidInputError("ids", f"{id} is listed more than once")))
                    continue
                seen.add(block.id)
                try:
                    async with session.begin_nested():
                        await session.refresh(block)
                        touched.append(await write(session, block))
                    results.append(Hardblock.from_row(block))
                except (InvalidInputError, InvalidTransitionError, SoldOutError, BlockUnderflowError) as error:
                    results.append(as_user_error(error))
            versions = await _bump(session, touched)
    except LockTimeoutError as error:
        return [as_user_error(error) for _ in ids]
    await _publish(context, touched, versions)
    return results


# --- mutations -----------------------------------------------------------------------------------


@strawberry.type
class HardblockMutation:
    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Reserve `rooms` rooms of a room type on every night of [from, to) for one agency. Needs "
        "that many available in the pool on every night; decided under the room type's inventory lock.",
    )
    async def create_hardblock(self, info: Info, input: CreateHardblockInput) -> CreateHardblockResult:
        context = info.context
        if problem := check_hardblock(input.from_, input.to, input.rooms, input.release_days):
            raise _domain_input_error(problem)
        if input.rooms > MAX_ROOMS:
            raise InvalidInputError("rooms", f"rooms must be at most {MAX_ROOMS}")
        _check_span(input.from_, input.to, "to")
        if input.from_ < utc_today(models.utcnow()):
            raise InvalidInputError("from", f"from {input.from_.isoformat()} is in the past")
        room_type_id = decode_id(input.room_type_id, "RoomType", "roomTypeId")

        async with transaction(context.sessions) as session:
            agency = await _booking_agency(session, context, input.agency_id)
            room_type = await session.get(models.RoomType, room_type_id)
            if room_type is None:
                raise InvalidInputError("roomTypeId", "no room type with that id")
            await lock_room_types(session, [room_type_id], context.settings.lock_timeout_ms)
            snapshot = await load_inventory(session, room_type.hotel_id, input.from_, input.to, [room_type_id])
            now = models.utcnow()
            pool = snapshot.calendar(input.from_, input.to, now)[room_type_id]
            block = models.Hardblock(
                reference=f"HB-{secrets.token_hex(4).upper()}", agency_id=agency.id, hotel_id=room_type.hotel_id,
                room_type_id=room_type_id, start_date=input.from_, end_date=input.to, base_start_date=input.from_,
                base_end_date=input.to, rooms=input.rooms,
                release_days=input.release_days, status=HardblockStatus.ACTIVE.value, created_at=now,
            )
            terms = HardblockTerms(0, room_type_id, agency.id, input.from_, input.to, input.rooms, input.release_days)
            slots = compute_hardblock_slots(terms, [], [], input.from_, input.to, now)
            diffs = diff_slots([], slots, pool, nights(input.from_, input.to), now)
            preview = AmendmentPreview(all(d.conflict is None for d in diffs), tuple(diffs))
            _raise_conflicts(preview, pool, block, room_type, lambda late: InvalidInputError(
                "releaseDays", f"nights past their release time cannot be blocked: {late}"))
            session.add(block)
            await session.flush()
            audit.record(session, context.actor, "hardblock.created", "Hardblock", block.id,
                         after={**_block_snapshot(block), "agency": agency.code})
            touched = _Touched(block, input.from_, input.to)
            versions = await _bump(session, [touched])
        await _publish(context, [touched], versions)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Set the block's size on some nights (extending it beyond its range, or 0 to remove nights), "
        "recorded as BLOCK_AMENDMENT events grouped in one amendment. Never below what is booked from it "
        "(BlockUnderflow); growth needs pool availability (SoldOut).",
    )
    async def amend_hardblock(self, info: Info, input: HardblockAmendmentInput) -> AmendHardblockResult:
        changes = _check_changes(input)
        reason = _check_reason(input.reason)
        return await _one_block_write(
            info.context, input.hardblock_id,
            lambda session, block: _apply_amendment(session, info.context, block, changes, reason),
        )

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Give `rooms` rooms of each night of [from, to) back to the pool (an amendment shrinking "
        "those nights; never below what is booked).",
    )
    async def return_hardblock_rooms(self, info: Info, input: ReturnHardblockRoomsInput) -> AmendHardblockResult:
        context = info.context
        if input.from_ >= input.to:
            raise InvalidInputError("to", "to must be after from (ranges are half-open over nights)")
        _check_span(input.from_, input.to, "to")
        reason = _check_reason(input.reason) or f"returned {input.rooms} rooms"

        async def write(session: AsyncSession, block: models.Hardblock) -> _Touched:
            _active(block, "return rooms of")
            state = await _state(session, block, input.from_, input.to)
            slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                            input.from_, input.to, state.now)
            try:
                changes = returned_rooms(state.terms, slots, input.rooms, state.now)
            except DomainInvalidInput as problem:
                raise InvalidInputError(problem.field, problem.message) from None
            return await _apply_amendment(session, context, block, changes, reason, "hardblock.rooms_returned",
                                          state)

        return await _one_block_write(context, input.hardblock_id, write)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Void an amendment's events, if the block can go back: not below its bookings, and "
        "only with pool availability for what it takes back. Otherwise a typed error naming the nights.",
    )
    async def revert_hardblock_amendment(self, info: Info, amendment_id: strawberry.ID) -> AmendHardblockResult:
        context = info.context
        pk = _block_pk(amendment_id, "HardblockAmendment")
        async with transaction(context.sessions) as session:
            amendment = await session.get(models.HardblockAmendment, pk)
            if amendment is None:
                raise NotFoundError("no hardblock amendment with that id", amendment_id)
            block = await _visible_block(session, context, amendment.hardblock_id, amendment_id)
            block = await _locked(session, context, block)
            await session.refresh(amendment)
            if amendment.reverted_at is not None:
                raise InvalidTransitionError(f"the amendment was already reverted at "
                                             f"{amendment.reverted_at.isoformat()}", status="REVERTED")
            _active(block, "revert an amendment of")
            own = list((await session.execute(
                select(models.AllotmentEvent).where(models.AllotmentEvent.amendment_id == pk)
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
            room_type = next(rt for rt in state.snapshot.room_types if rt.id == block.room_type_id)
            _raise_conflicts(preview, state.pool, block, room_type, lambda late: InvalidTransitionError(
                f"cannot revert: nights past their release time cannot grow back: {late}", status="RELEASED"))
            await session.execute(
                update(models.AllotmentEvent).where(models.AllotmentEvent.id.in_(own_ids))
                .values(voided_at=state.now, voided_by=context.actor.uid).execution_options(synchronize_session=False)
            )
            amendment.reverted_at = state.now
            _fit_span(block, after_terms, after_events, state.snapshot.booking_lines, state.now)
            await session.flush()
            audit.record(session, context.actor, "hardblock.amendment_reverted", "Hardblock", block.id,
                         before={"amendment_id": pk, "reverted_at": None},
                         after={"amendment_id": pk, "reverted_at": state.now.isoformat(),
                                "slots": [{"date": d.date.isoformat(), "before": d.before, "after": d.after}
                                          for d in preview.slots]})
            touched = _Touched(block, start, end)
            versions = await _bump(session, [touched])
        await _publish(context, [touched], versions)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release the whole block: its unsold rooms return to the pool; bookings already made "
        "from it stay. One way: a RELEASED block is an InvalidTransition.",
    )
    async def release_hardblock(self, info: Info, id: strawberry.ID) -> ReleaseHardblockResult:
        return await _one_block_write(info.context, id, lambda session, block: _release(session, info.context, block))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release the unsold rooms of some nights to the pool (bookings stay). Nights already "
        "released are left as they are; only a new amendment, which checks the pool, re-grows a night.",
    )
    async def release_hardblock_nights(self, info: Info, id: strawberry.ID, dates: list[date]) -> ReleaseHardblockResult:
        context = info.context
        wanted = sorted(set(dates))
        if not 1 <= len(wanted) <= MAX_BLOCK_NIGHTS:
            raise InvalidInputError("dates", f"1 to {MAX_BLOCK_NIGHTS} dates, got {len(wanted)}")

        async def write(session: AsyncSession, block: models.Hardblock) -> _Touched | None:
            _active(block, "release nights of")
            outside = [d.isoformat() for d in wanted if not block.start_date <= d < block.end_date]
            if outside:
                raise InvalidInputError("dates", f"not nights of the block ({block.start_date.isoformat()} to "
                                        f"{block.end_date.isoformat()}): {', '.join(outside)}")
            state = await _state(session, block, wanted[0], wanted[-1] + ONE_NIGHT)
            fresh = [d for d in wanted if not state.terms.is_released(d, state.now)]
            if not fresh:
                return None
            slots = compute_hardblock_slots(state.terms, state.snapshot.events, state.snapshot.booking_lines,
                                            fresh[0], fresh[-1] + ONE_NIGHT, state.now)
            returned = {slot.date: slot.available for slot in slots}
            await release_nights(session, block.id, fresh, state.now)
            audit.record(session, context.actor, "hardblock.nights_released", "Hardblock", block.id, after={
                "cause": "MANUAL", "nights": [{"date": d.isoformat(), "rooms_returned": returned[d]} for d in fresh],
            })
            return _Touched(block, fresh[0], fresh[-1] + ONE_NIGHT)

        return await _one_block_write(context, id, write)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release several blocks: one result per id, in order, each block all or nothing.",
    )
    async def bulk_release_hardblocks(self, info: Info, ids: list[strawberry.ID]) -> list[ReleaseHardblockResult]:
        return await _bulk(info.context, ids, lambda session, block: _release(session, info.context, block))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Extend several blocks by `nights` nights after their last night, at the size of that "
        "night: one result per id, in order, each block all or nothing (growth needs the pool).",
    )
    async def bulk_extend_hardblocks(self, info: Info, ids: list[strawberry.ID], nights: int) -> list[AmendHardblockResult]:
        if not 1 <= nights <= MAX_BLOCK_NIGHTS:
            return [as_user_error(InvalidInputError("nights", f"nights must be 1 to {MAX_BLOCK_NIGHTS}"))] * len(ids)
        return await _bulk(info.context, ids, lambda session, block: _extend(session, info.context, block, nights))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="The diff grid an amendment would produce (before, after, delta and conflict per night), "
        "written nowhere.",
    )
    async def preview_hardblock_amendment(self, info: Info, input: HardblockAmendmentInput) -> HardblockAmendmentPreview:
        context = info.context
        try:
            changes = _check_changes(input)
            pk = _block_pk(input.hardblock_id)
            async with context.sessions() as session:
                block = await _visible_block(session, context, pk, input.hardblock_id)
                _active(block, "amend")
                _check_block_span(block, changes)
                state = await _state(session, block, min(c[0] for c in changes), max(c[1] for c in changes))
        except (InvalidInputError, NotFoundError, InvalidTransitionError) as error:
            return HardblockAmendmentPreview(feasible=False, slots=[], error=as_user_error(error))
        preview = preview_amendment(state.terms, changes, state.snapshot.events, state.snapshot.booking_lines,
                                    state.pool, state.now)
        return HardblockAmendmentPreview(feasible=preview.feasible, slots=_slot_diffs(preview, state.pool))


# --- queries -------------------------------------------------------------------------------------


@strawberry.type
class HardblockQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's blocks only.")
    async def hardblocks(
        self, info: Info, hotel_id: strawberry.ID | None = None, status: HardblockStatus | None = None,
        first: int | None = None, after: str | None = None,
    ) -> relay.Connection[Hardblock]:
        async with info.context.sessions() as session:
            statement = await _scoped(session, info.context, select(models.Hardblock), models.Hardblock.agency_id)
            if hotel_id is not None:
                statement = statement.where(models.Hardblock.hotel_id == filter_pk(hotel_id, "Hotel"))
            if status is not None:
                statement = statement.where(models.Hardblock.status == status.value)
            return await paginate(session, statement, models.Hardblock.id, first=first, after=after,
                                  node=Hardblock.from_row, descending=True)


# --- the auto-release job ------------------------------------------------------------------------


async def record_releases(context: Context, *, limit: int = 1000) -> int:
    """Write down (audit, version bump, publish) the nights that released themselves since the
    last run. Availability never waits for this. Returns how many nights were recorded."""
    now = models.utcnow()
    async with transaction(context.sessions) as session:
        recorded = await record_auto_releases(session, now, utc_today(now), limit=limit)
        if not recorded:
            return 0
        blocks = await rows_by_id(session, models.Hardblock, list(recorded))
        touched = []
        for block_id, released in recorded.items():
            block = blocks[block_id]
            audit.record(session, audit.SYSTEM, "hardblock.nights_released", "Hardblock", block_id, after={
                "cause": "AUTO", "release_days": block.release_days, "nights": [d.isoformat() for d in released],
            })
            touched.append(_Touched(block, released[0], released[-1] + ONE_NIGHT))
        versions = await _bump(session, touched)
    await _publish(context, touched, versions)
    return sum(len(nights_) for nights_ in recorded.values())


async def run_release_job(context: Context, interval_s: float = RELEASE_JOB_INTERVAL_S, *, batch: int = 1000) -> None:
    """Forever: record due releases (again at once while batches come back full), then sleep."""
    while True:
        try:
            while await record_releases(context, limit=batch) >= batch:
                pass
        except Exception:
            log.exception("hardblock release job failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)
