"""createBooking, confirmBooking, cancelBooking, the bookingGroups/saleOrders lists, and the
sweeper that records lapsed holds.

Every write: validate -> one transaction -> room-type advisory locks (sorted) -> fresh read
after the lock -> domain decision -> writes + audit + version bump -> commit -> publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from app.api.bookings import BookingGroup, BookingStatus, SaleOrder
from app.api.errors import (
    BookingExpired,
    IdempotencyConflict,
    IdempotencyConflictError,
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
)
from app.api.ids import decode_id
from app.api.pagination import paginate
from app.api.permissions import AUTHENTICATED, Info
from app.api.types import RoomType
from app.context import Context
from app.publish import publish_booking_group_change, publish_inventory_change
from db import audit, models
from db.bookings import (
    GroupScope,
    HoldItem,
    claim_idempotency_key,
    expire_lapsed_holds,
    group_scope,
    insert_hold,
    lock_group,
    mark_expired,
    next_sale_order_number,
    set_bookings_status,
)
from db.calendar import StayInventory, load_stay_inventory
from db.engine import transaction
from db.inventory import LockTimeout as LockTimeoutError
from db.inventory import bump_version, lock_room_types
from db.queries import rows_by_id
from domain import BookingStatus as DomainStatus
from domain import (
    CurrencyMismatch,
    Money,
    NoRate,
    block_shortfalls,
    cancel_status,
    HardblockSlot,
    compute_hardblock_slots,
    confirm_status,
    money_sum,
    nights,
    pool_shortfalls,
    release_at,
    stay_price,
    utc_today,
)
from domain import BookingExpired as DomainBookingExpired
from domain import InvalidTransition as DomainInvalidTransition

log = logging.getLogger(__name__)

MAX_ITEMS = 20
MAX_STAY_NIGHTS = 30
MAX_KEY_CHARS = 200
MAX_REASON_CHARS = 500
SWEEP_INTERVAL_S = 5.0


# --- inputs and results --------------------------------------------------------------------------


@strawberry.input
class BookingItemInput:
    room_type_id: strawberry.ID
    check_in: date
    check_out: date = strawberry.field(description="The day after the last night.")
    rooms: int
    hardblock_id: strawberry.ID | None = strawberry.field(
        default=None, description="Book from this hardblock of the agency instead of the pool."
    )


@strawberry.input
class CreateBookingInput:
    idempotency_key: str = strawberry.field(
        description="Chosen by the client, scoped to the agency: a retry returns the first result."
    )
    agency_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for admins and operators; agents book for their own agency."
    )
    guest_name: str
    items: list[BookingItemInput]


CreateBookingResult = Annotated[
    BookingGroup | SoldOut | InvalidInput | IdempotencyConflict | LockTimeout,
    strawberry.union("CreateBookingResult"),
]
ConfirmBookingResult = Annotated[
    SaleOrder | BookingExpired | InvalidTransition | NotFound | LockTimeout,
    strawberry.union("ConfirmBookingResult"),
]
CancelBookingResult = Annotated[
    BookingGroup | InvalidTransition | NotFound | InvalidInput | LockTimeout, strawberry.union("CancelBookingResult")
]


# --- createBooking validation (no locks: references never change hotel, agency or room type) ----


@dataclass(frozen=True, slots=True)
class _Item:
    room_type: models.RoomType
    check_in: date
    check_out: date
    rooms: int
    hardblock: models.Hardblock | None


def _field(index: int, name: str) -> str:
    return f"items[{index}].{name}"


def _check_items(items: list[BookingItemInput], today: date) -> list[tuple[int, int | None]]:
    """Shape checks; returns the decoded (room type, hardblock) ids per item."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidInputError("items", f"a booking has 1 to {MAX_ITEMS} items, got {len(items)}")
    ids = []
    for i, item in enumerate(items):
        if item.rooms <= 0:
            raise InvalidInputError(_field(i, "rooms"), f"{_field(i, 'rooms')} must be positive")
        if item.check_in >= item.check_out:
            raise InvalidInputError(_field(i, "checkOut"), f"{_field(i, 'checkOut')} must be after checkIn "
                                    "(a stay is [checkIn, checkOut) over nights)")
        if (item.check_out - item.check_in).days > MAX_STAY_NIGHTS:
            raise InvalidInputError(_field(i, "checkOut"), f"a stay lasts at most {MAX_STAY_NIGHTS} nights")
        if item.check_in < today:
            raise InvalidInputError(_field(i, "checkIn"), f"{_field(i, 'checkIn')} {item.check_in} is in the past")
        room_type_id = decode_id(item.room_type_id, "RoomType", _field(i, "roomTypeId"))
        hardblock_id = (None if item.hardblock_id is None
                        else decode_id(item.hardblock_id, "Hardblock", _field(i, "hardblockId")))
        ids.append((room_type_id, hardblock_id))
    return ids


async def _booking_agency(session: AsyncSession, context: Context, agency_id: strawberry.ID | None) -> models.Agency:
    principal = context.principal
    assert principal is not None
    if principal.is_staff:
        if agency_id is None:
            raise InvalidInputError("agencyId", "agencyId is required: say which agency the booking is for")
        agency = await session.get(models.Agency, decode_id(agency_id, "Agency", "agencyId"))
        if agency is None:
            raise InvalidInputError("agencyId", "no agency with that id")
        return agency
    agency = (await session.execute(
        select(models.Agency).where(models.Agency.code == principal.agency_code)
    )).scalar_one_or_none()
    if agency is None:
        raise InvalidInputError("agencyId", f"your agency {principal.agency_code!r} is not registered")
    if agency_id is not None and decode_id(agency_id, "Agency", "agencyId") != agency.id:
        raise InvalidInputError("agencyId", "agents book for their own agency only")
    return agency


async def _resolve_items(
    session: AsyncSession, input: CreateBookingInput, ids: list[tuple[int, int | None]], agency: models.Agency
) -> list[_Item]:
    room_types = await rows_by_id(session, models.RoomType, [rt for rt, _ in ids])
    blocks = await rows_by_id(session, models.Hardblock, [hb for _, hb in ids if hb is not None])
    items = []
    for i, (item, (room_type_id, hardblock_id)) in enumerate(zip(input.items, ids)):
        room_type = room_types.get(room_type_id)
        if room_type is None:
            raise InvalidInputError(_field(i, "roomTypeId"), f"{_field(i, 'roomTypeId')}: no such room type")
        if items and room_type.hotel_id != items[0].room_type.hotel_id:
            raise InvalidInputError(_field(i, "roomTypeId"), "all items of a booking must be in one hotel")
        block = None
        if hardblock_id is not None:
            block = blocks.get(hardblock_id)
            if block is None or block.agency_id != agency.id:  # another agency's block: as if missing
                raise InvalidInputError(_field(i, "hardblockId"),
                                        f"{_field(i, 'hardblockId')}: no hardblock of agency {agency.code} with that id")
            if block.room_type_id != room_type.id:
                raise InvalidInputError(_field(i, "hardblockId"), "the hardblock is for another room type")
        items.append(_Item(room_type, item.check_in, item.check_out, item.rooms, block))
    return items


def _request_hash(agency: models.Agency, guest_name: str, items: list[_Item]) -> str:
    canonical = {
        "agency": agency.id,
        "guestName": guest_name,
        "items": [[it.room_type.id, it.check_in.isoformat(), it.check_out.isoformat(), it.rooms,
                   it.hardblock.id if it.hardblock else None] for it in items],
    }
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


# --- createBooking decision (under the lock, on the fresh snapshot) ------------------------------


def _prices(rows: dict, items: list[_Item]) -> list[Money]:
    prices = []
    for i, item in enumerate(items):
        try:
            prices.append(stay_price(rows[item.room_type.id], item.check_in, item.check_out, item.rooms))
        except NoRate as error:
            raise InvalidInputError(_field(i, "checkIn"), f"a stay outside the contract: no rate for "
                                    f"{item.room_type.code} on {error.night.isoformat()}") from None
    try:
        money_sum(prices, prices[0].currency)
    except CurrencyMismatch as error:
        raise InvalidInputError("items", f"all items must be priced in one currency ({error})") from None
    return prices


def _block_slots(snapshot: StayInventory, blocks: dict[int, models.Hardblock], start: date, end: date,
                 now: datetime) -> list[HardblockSlot]:
    terms = {t.id: t for t in snapshot.hardblock_terms}
    slots: list[HardblockSlot] = []
    for block_id, block in blocks.items():
        if block_id in terms:
            slots += compute_hardblock_slots(terms[block_id], snapshot.events, snapshot.booking_lines, start, end, now)
        else:  # its stored span (which covers every night it holds) misses the range: no rooms there
            slots += [HardblockSlot(block_id, night, 0, 0, 0, 0, release_at(night, block.release_days))
                      for night in nights(start, end)]
    return slots


def _shortfalls(snapshot: StayInventory, rows: dict, items: list[_Item], now: datetime) -> list[Shortfall]:
    room_types = {item.room_type.id: item.room_type for item in items}
    found = [
        Shortfall(room_type=RoomType.from_row(room_types[s.room_type_id]), date=s.date,
                  requested=s.requested, available=s.available)
        for s in pool_shortfalls(rows, [(it.room_type.id, it.check_in, it.check_out, it.rooms)
                                        for it in items if it.hardblock is None])
    ]
    block_items = [(it, it.hardblock) for it in items if it.hardblock is not None]
    if block_items:
        blocks = {block.id: block for _, block in block_items}
        start = min(it.check_in for it, _ in block_items)
        end = max(it.check_out for it, _ in block_items)
        slots = _block_slots(snapshot, blocks, start, end, now)
        for s in block_shortfalls(slots, [(b.id, it.check_in, it.check_out, it.rooms) for it, b in block_items]):
            block = blocks[s.hardblock_id]
            # A copy: SoldOut rolls the transaction back, which expires the session's rows.
            found.append(Shortfall(room_type=RoomType.from_row(room_types[block.room_type_id]), date=s.date,
                                   requested=s.requested, available=s.available,
                                   hardblock_row=models.Hardblock(**block.model_dump())))
    return found


# --- shared helpers ------------------------------------------------------------------------------


async def _own_agency_id(session: AsyncSession, context: Context) -> int | None:
    """The caller's agency id for agents; None for staff. Read on the caller's own session: a
    second pooled connection per request could starve the pool under load."""
    principal = context.principal
    assert principal is not None
    if principal.is_staff:
        return None
    result = await session.execute(select(models.Agency.id).where(models.Agency.code == principal.agency_code))
    return result.scalar_one_or_none() or 0


def _group_pk(group_id: strawberry.ID) -> int:
    try:
        return decode_id(group_id, "BookingGroup", "groupId")
    except InvalidInputError:
        raise NotFoundError("no booking group with that id", group_id) from None


async def _visible_scope(session: AsyncSession, context: Context, pk: int, group_id: strawberry.ID) -> GroupScope:
    """The group's scope, or NotFound when it is missing or another agency's (agents)."""
    group = await session.get(models.BookingGroup, pk)
    own = await _own_agency_id(session, context)
    scope = await group_scope(session, pk) if group is not None else None
    if group is None or scope is None or (own is not None and group.agency_id != own):
        raise NotFoundError("no booking group with that id", group_id)
    return scope


def _group_snapshot(group: models.BookingGroup) -> dict[str, Any]:
    return audit.snapshot(group, "reference", "status", "expires_at", "confirmed_at", "cancelled_at")


def _created_snapshot(group: models.BookingGroup, agency: models.Agency, items: list[_Item],
                      prices: list[Money]) -> dict[str, Any]:
    return {
        **_group_snapshot(group), "agency": agency.code, "guest_name": group.guest_name,
        "total": _money_snapshot(money_sum(prices, prices[0].currency)),
        "items": [audit.snapshot({"room_type_id": it.room_type.id, "check_in": it.check_in,
                                  "check_out": it.check_out, "rooms": it.rooms,
                                  "hardblock_id": it.hardblock.id if it.hardblock else None,
                                  "total": price.amount},
                                 "room_type_id", "check_in", "check_out", "rooms", "hardblock_id", "total")
                  for it, price in zip(items, prices)],
    }


def _money_snapshot(value: Money) -> dict[str, str]:
    return {"amount": f"{value.amount:.2f}", "currency": value.currency}


async def _publish(context: Context, scope: GroupScope, version: int, group: models.BookingGroup) -> None:
    await publish_inventory_change(context, scope.hotel_id, version, scope.room_type_ids, scope.start, scope.end)
    await publish_booking_group_change(context, group.id, group.agency_id)


# --- mutations -----------------------------------------------------------------------------------


@strawberry.type
class BookingMutation:
    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Hold rooms for 1 to 20 items, all or none, until `expiresAt`. Never sells a room "
        "twice: decided under the room types' inventory locks on a fresh read.",
    )
    async def create_booking(self, info: Info, input: CreateBookingInput) -> CreateBookingResult:
        context = info.context
        settings = context.settings
        key = input.idempotency_key.strip()
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise InvalidInputError("idempotencyKey", f"idempotencyKey must be 1 to {MAX_KEY_CHARS} characters")
        guest_name = input.guest_name.strip()
        if not 1 <= len(guest_name) <= 200:
            raise InvalidInputError("guestName", "guestName must be 1 to 200 characters")
        ids = _check_items(input.items, utc_today(models.utcnow()))

        async with transaction(context.sessions) as session:
            agency = await _booking_agency(session, context, input.agency_id)
            items = await _resolve_items(session, input, ids, agency)
            request_hash = _request_hash(agency, guest_name, items)

            # First: a concurrent retry with this key waits here until the first one commits.
            earlier = await claim_idempotency_key(session, agency.code, key, request_hash)
            if earlier is not None:
                if earlier.request_hash != request_hash or earlier.group_id is None:
                    raise IdempotencyConflictError(key)
                return BookingGroup.from_row(await session.get(models.BookingGroup, earlier.group_id))

            scope = GroupScope(items[0].room_type.hotel_id, sorted({it.room_type.id for it in items}),
                               min(it.check_in for it in items), max(it.check_out for it in items))
            group = models.BookingGroup(
                reference=f"BG-{secrets.token_hex(5).upper()}", agency_id=agency.id, status="HELD",
                guest_name=guest_name, created_by=context.actor.uid,
            )

            async def decide() -> tuple[list[Money], datetime]:
                """Prices, or SoldOut, on a read of what is committed now."""
                now = models.utcnow()
                inventory = await load_stay_inventory(session, scope.hotel_id, scope.room_type_ids, scope.start,
                                                      scope.end, now)
                rows = inventory.calendar(scope.start, scope.end, now)
                prices = _prices(rows, items)
                if shortfalls := _shortfalls(inventory, rows, items, now):
                    raise SoldOutError(shortfalls)
                return prices, now

            # Already sold out as of a committed read: answer without queueing on the lock. That
            # SoldOut is true as of the read and writes nothing; only a request that may succeed
            # takes the lock, and it decides again on a read taken after it.
            await decide()
            # The critical section, from the lock to the commit: three round trips (read, write,
            # commit). Everything that does not depend on availability happened above.
            await lock_room_types(session, scope.room_type_ids, settings.lock_timeout_ms)
            prices, now = await decide()

            group.created_at, group.expires_at = now, now + timedelta(minutes=settings.booking_expiry_minutes)
            version = await insert_hold(
                session, group,
                [HoldItem(it.room_type.id, it.hardblock.id if it.hardblock else None, it.check_in, it.check_out,
                          it.rooms, price.amount, price.currency) for it, price in zip(items, prices)],
                context.actor, _created_snapshot(group, agency, items, prices), (agency.code, key), scope.hotel_id,
            )
        await _publish(context, scope, version, group)
        return BookingGroup.from_row(group)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Turn a HELD, unexpired group CONFIRMED and create its sale order at the prices frozen "
        "when the rooms were held. Idempotent: a CONFIRMED group returns its sale order.",
    )
    async def confirm_booking(self, info: Info, group_id: strawberry.ID) -> ConfirmBookingResult:
        context = info.context
        pk = _group_pk(group_id)
        version = None
        async with transaction(context.sessions) as session:
            scope = await _visible_scope(session, context, pk, group_id)
            await lock_room_types(session, scope.room_type_ids, context.settings.lock_timeout_ms)
            group = await lock_group(session, pk)  # the state as of the lock: expiry may have won
            now = models.utcnow()
            try:
                confirm_status(DomainStatus(group.status), group.expires_at, now)
            except DomainBookingExpired as error:
                if group.status == "HELD":  # lapsed, not yet swept: write down what time did
                    await mark_expired(session, [group], context.actor)
                    version = await bump_version(session, scope.hotel_id)
                result: Any = BookingExpired(message=str(error), code="BOOKING_EXPIRED", expired_at=error.expires_at)
            except DomainInvalidTransition as error:
                raise InvalidTransitionError(str(error), status=error.state) from None
            else:
                if group.status == "CONFIRMED":
                    order = (await session.execute(
                        select(models.SaleOrder).where(models.SaleOrder.group_id == pk)
                    )).scalar_one()
                else:
                    order = await _confirm(session, context, group, now)
                    version = await bump_version(session, scope.hotel_id)
                result = SaleOrder.from_row(order)
        if version is not None:
            await _publish(context, scope, version, group)
        return result

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release a HELD or CONFIRMED group's rooms (its sale order is cancelled too). "
        "Idempotent: a CANCELLED group is returned as is.",
    )
    async def cancel_booking(self, info: Info, group_id: strawberry.ID, reason: str | None = None) -> CancelBookingResult:
        context = info.context
        reason = (reason or "").strip()
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidInputError("reason", f"reason must be at most {MAX_REASON_CHARS} characters")
        pk = _group_pk(group_id)
        version = None
        async with transaction(context.sessions) as session:
            scope = await _visible_scope(session, context, pk, group_id)
            await lock_room_types(session, scope.room_type_ids, context.settings.lock_timeout_ms)
            group = await lock_group(session, pk)
            now = models.utcnow()
            try:
                cancel_status(DomainStatus(group.status), group.expires_at, now)
            except DomainInvalidTransition as error:
                raise InvalidTransitionError(str(error), status=error.state) from None
            if group.status != "CANCELLED":
                before = _group_snapshot(group)
                group.status, group.cancelled_at = "CANCELLED", now
                await set_bookings_status(session, [pk], "CANCELLED")
                orders = (await session.execute(
                    update(models.SaleOrder)
                    .where(models.SaleOrder.group_id == pk, models.SaleOrder.status == "CONFIRMED")
                    .values(status="CANCELLED", cancelled_at=now)
                    .returning(models.SaleOrder.id, models.SaleOrder.number)
                    .execution_options(synchronize_session=False)
                )).all()
                audit.record(session, context.actor, "booking_group.cancelled", "BookingGroup", pk,
                             before=before, after={**_group_snapshot(group), "reason": reason})
                for order_id, number in orders:
                    audit.record(session, context.actor, "sale_order.cancelled", "SaleOrder", order_id,
                                 before={"number": number, "status": "CONFIRMED"},
                                 after={"number": number, "status": "CANCELLED", "reason": reason})
                await session.flush()
                version = await bump_version(session, scope.hotel_id)
        if version is not None:
            await _publish(context, scope, version, group)
        return BookingGroup.from_row(group)


async def _confirm(session: AsyncSession, context: Context, group: models.BookingGroup, now: datetime) -> models.SaleOrder:
    before = _group_snapshot(group)
    group.status, group.confirmed_at = "CONFIRMED", now
    prices = [Money(amount, currency) for amount, currency in await set_bookings_status(session, [group.id], "CONFIRMED")]
    total = money_sum(prices, prices[0].currency)
    order = models.SaleOrder(
        number=await next_sale_order_number(session, now), group_id=group.id, agency_id=group.agency_id,
        status="CONFIRMED", total_amount=total.amount, currency=total.currency, confirmed_at=now,
    )
    session.add(order)
    await session.flush()
    audit.record(session, context.actor, "booking_group.confirmed", "BookingGroup", group.id,
                 before=before, after=_group_snapshot(group))
    audit.record(session, context.actor, "sale_order.created", "SaleOrder", order.id,
                 after={"number": order.number, "group": group.reference, "status": "CONFIRMED",
                        "total": _money_snapshot(total)})
    await session.flush()
    return order


# --- queries -------------------------------------------------------------------------------------


def _status_filter(status: BookingStatus, now: datetime) -> Any:
    """By the status as read (a lapsed hold is EXPIRED whether or not the sweeper ran)."""
    g = models.BookingGroup
    lapsed = and_(g.status == "HELD", g.expires_at <= now)
    if status is BookingStatus.HELD:
        return and_(g.status == "HELD", or_(g.expires_at.is_(None), g.expires_at > now))
    if status is BookingStatus.EXPIRED:
        return or_(g.status == "EXPIRED", lapsed)
    return g.status == status.value


async def _scoped(session: AsyncSession, context: Context, statement: Select[Any], agency_column: Any) -> Select[Any]:
    own = await _own_agency_id(session, context)
    return statement if own is None else statement.where(agency_column == own if own else false())


@strawberry.type
class BookingQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's groups only.")
    async def booking_groups(
        self, info: Info, status: BookingStatus | None = None, first: int | None = None, after: str | None = None
    ) -> relay.Connection[BookingGroup]:
        async with info.context.sessions() as session:
            statement = await _scoped(session, info.context, select(models.BookingGroup), models.BookingGroup.agency_id)
            if status is not None:
                statement = statement.where(_status_filter(status, models.utcnow()))
            return await paginate(session, statement, models.BookingGroup.id, first=first, after=after,
                                  node=BookingGroup.from_row, descending=True)

    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's sale orders only.")
    async def sale_orders(self, info: Info, first: int | None = None, after: str | None = None) -> relay.Connection[SaleOrder]:
        async with info.context.sessions() as session:
            statement = await _scoped(session, info.context, select(models.SaleOrder), models.SaleOrder.agency_id)
            return await paginate(session, statement, models.SaleOrder.id, first=first, after=after,
                                  node=SaleOrder.from_row, descending=True)


# --- the expiry sweeper --------------------------------------------------------------------------


async def sweep_expired_holds(context: Context, *, limit: int = 200) -> list[int]:
    """Record up to `limit` lapsed holds as EXPIRED (audited, versions bumped, published).
    Returns the expired groups' ids. Availability never waits for this: it only writes it down."""
    try:
        async with transaction(context.sessions) as session:
            expired, changes = await expire_lapsed_holds(
                session, models.utcnow(), context.settings.lock_timeout_ms, limit=limit
            )
    except LockTimeoutError:
        log.info("expiry sweep skipped: inventory locks busy")
        return []
    for change in changes:
        await publish_inventory_change(context, change.hotel_id, change.version, change.room_type_ids,
                                       change.start, change.end)
    for group_id, agency_id in expired:
        await publish_booking_group_change(context, group_id, agency_id)
    return [group_id for group_id, _ in expired]


async def run_expiry_sweeper(context: Context, interval_s: float = SWEEP_INTERVAL_S, *, batch: int = 200) -> None:
    """Forever: sweep (again at once while batches come back full), then sleep. Cancel to stop."""
    while True:
        try:
            while len(await sweep_expired_holds(context, limit=batch)) >= batch:
                pass
        except Exception:
            log.exception("expiry sweep failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)
