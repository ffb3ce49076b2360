"""Bookings: hold (createBooking), confirm, cancel, the lists, and the sweeper that records lapsed
holds.

Every write: validate -> one transaction -> room-type advisory locks (sorted) -> fresh read
after the lock -> domain decision -> writes + audit + version bump + outbox -> commit -> publish.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, or_, select

from app.services.changes import Change, Touched
from app.services.context import Caller, Services
from app.services.errors import (
    BookingExpired,
    CreditLimitExceeded,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LockTimeout,
    NotFound,
    PaymentRequired,
    RestrictionViolated,
    Shortfall,
    SoldOut,
)
from app.services.idempotency import MAX_KEY_CHARS
from app.services.inventory import MAX_AMOUNT
from app.services.pages import Page, paginate
from app.services.payments.policies import rules_of
from app.services.payments.refunds import CancelRefund, refund_cancelled_sale
from app.services.rateplans import compiled, nights_json
from app.services.scope import acting, own_agency_id, scoped
from db import audit, models
from db.bookings import (
    GROUP_PREFIX,
    Earlier,
    GroupRow,
    HardblockRecord,
    HoldContext,
    HoldItem,
    KeyTaken,
    LockedGroup,
    RoomTypeRecord,
    Footprint,
    confirm_group,
    expire_groups,
    expiry_snapshot,
    insert_hold,
    lapsed_holds,
    lock_lapsed,
    lock_group_raw,
    new_reference,
    read_group_context,
    read_hold_context,
    read_locked,
    set_group_status,
)
from db.calendar import StayInventory, load_stay_inventory
from db.ledger import CHECKPOINT_EVERY, move_checkpoint
from db.payments import items as group_items
from db.rateplans import PlanRef
from db.fastpath import locked_transaction
from domain import BookingExpired as DomainBookingExpired
from domain import CreditLimitExceeded as DomainCreditLimitExceeded
from domain import PaymentRequired as DomainPaymentRequired
from domain import BookingStatus, CurrencyMismatch, HardblockSlot, Money, NoRate, PricedItem, PriceOutOfRange
from domain import InvalidTransition as DomainInvalidTransition
from domain import LedgerEntry, PaymentTerms, cancellation_entries, cancellation_fee, received, refund_due, refunded
from domain import (
    balance_due_date,
    block_shortfalls,
    confirmation_decision,
    hotel_today,
    local_midnight,
    outstanding,
    cancel_status,
    compute_hardblock_slots,
    confirm_status,
    money_sum,
    nights,
    pool_shortfalls,
    release_at,
    resolve_restrictions,
    restriction_violations,
    price_stays,
    utc_today,
)

ONE_NIGHT = timedelta(days=1)

log = logging.getLogger(__name__)

MAX_ITEMS = 20
MAX_STAY_NIGHTS = 30
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class BookingItem:
    room_type_id: int
    check_in: date
    check_out: date
    rooms: int
    hardblock_id: int | None = None


@dataclass(frozen=True, slots=True)
class NewBooking:
    idempotency_key: str
    guest_name: str
    items: list[BookingItem]
    agency_id: int | None = None  # staff name the agency; agents book for their own


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    items: list[BookingItem]
    agency_id: int | None = None  # staff name the agency; agents quote for their own


# --- createBooking -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Agency:
    id: int
    code: str


@dataclass(frozen=True, slots=True)
class _Item:
    room_type: RoomTypeRecord
    check_in: date
    check_out: date
    rooms: int
    hardblock: HardblockRecord | None


def _field(index: int, name: str) -> str:
    return f"items[{index}].{name}"


def check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"reason must be at most {MAX_REASON_CHARS} characters")
    return reason


def _check(request: NewBooking, today: date) -> tuple[str, str]:
    """Shape checks (no database): the idempotency key and the guest name, trimmed."""
    key = request.idempotency_key.strip()
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidInput("idempotencyKey", f"idempotencyKey must be 1 to {MAX_KEY_CHARS} characters")
    guest_name = request.guest_name.strip()
    if not 1 <= len(guest_name) <= 200:
        raise InvalidInput("guestName", "guestName must be 1 to 200 characters")
    _check_items(request.items, today)
    return key, guest_name


def _check_items(items: list[BookingItem], today: date) -> None:
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidInput("items", f"a booking has 1 to {MAX_ITEMS} items, got {len(items)}")
    for i, item in enumerate(items):
        if item.rooms <= 0:
            raise InvalidInput(_field(i, "rooms"), f"{_field(i, 'rooms')} must be positive")
        if item.check_in >= item.check_out:
            raise InvalidInput(_field(i, "checkOut"), f"{_field(i, 'checkOut')} must be after checkIn "
                               "(a stay is [checkIn, checkOut) over nights)")
        if (item.check_out - item.check_in).days > MAX_STAY_NIGHTS:
            raise InvalidInput(_field(i, "checkOut"), f"a stay lasts at most {MAX_STAY_NIGHTS} nights")
    _check_past(items, today)


def _check_past(items: list[BookingItem], today: date) -> None:
    """No stay starts before `today`: the hotel's local date (before the hotel is known, the
    earliest date any hotel can have, so that check refuses only what every hotel would)."""
    for i, item in enumerate(items):
        if item.check_in < today:
            raise InvalidInput(_field(i, "checkIn"), f"{_field(i, 'checkIn')} {item.check_in} is in the past")


def _resolve_items(request: NewBooking | QuoteRequest, agency: _Agency, context: HoldContext) -> list[_Item]:
    items: list[_Item] = []
    for i, item in enumerate(request.items):
        room_type = context.room_types.get(item.room_type_id)
        if room_type is None:
            raise InvalidInput(_field(i, "roomTypeId"), f"{_field(i, 'roomTypeId')}: no such room type")
        if items and room_type.hotel_id != items[0].room_type.hotel_id:
            raise InvalidInput(_field(i, "roomTypeId"), "all items of a booking must be in one hotel")
        block = None
        if item.hardblock_id is not None:
            block = context.blocks.get(item.hardblock_id)
            if block is None or block.agency_id != agency.id:  # another agency's block: as if missing
                raise InvalidInput(_field(i, "hardblockId"),
                                   f"{_field(i, 'hardblockId')}: no hardblock of agency {agency.code} with that id")
            if block.room_type_id != room_type.id:
                raise InvalidInput(_field(i, "hardblockId"), "the hardblock is for another room type")
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


def _price(inventory: StayInventory, rows: dict, items: list[_Item]) -> tuple[PricedItem, ...]:
    """Every item priced by the rate plan the agency buys under (read with `inventory`, so the
    occupancy its rules see is the decision's), or at net without one."""
    try:
        priced = price_stays(compiled(inventory.plan), rows,
                             [(it.room_type.id, it.check_in, it.check_out, it.rooms) for it in items],
                             inventory.today, inventory.agency_tier)
    except NoRate as error:
        i = next(i for i, it in enumerate(items)
                 if it.room_type.id == error.room_type_id and it.check_in <= error.night < it.check_out)
        raise InvalidInput(_field(i, "checkIn"), f"a stay outside the contract: no rate for "
                           f"{items[i].room_type.code} on {error.night.isoformat()}") from None
    except CurrencyMismatch as error:
        raise InvalidInput("items", f"all items and the rate plan's amounts must be in one currency ({error})"
                           ) from None
    except PriceOutOfRange as error:
        raise InvalidInput("items", f"the rate plan prices {error.night.isoformat()} beyond what a booking "
                           f"can hold ({error.limit:,.0f} per room and night)") from None
    try:
        total = money_sum((item.total for item in priced), priced[0].total.currency)
    except CurrencyMismatch as error:
        raise InvalidInput("items", f"all items must be priced in one currency ({error})") from None
    if total.amount >= MAX_AMOUNT:
        raise InvalidInput("items", f"the booking's total {total.amount} {total.currency} is more than a booking "
                           f"can hold (below {MAX_AMOUNT:,.0f})")
    return priced


def _block_slots(snapshot: StayInventory, blocks: dict[int, models.Hardblock], start: date, end: date,
                 now: datetime) -> list[HardblockSlot]:
    terms = {t.id: t for t in snapshot.hardblock_terms}
    slots: list[HardblockSlot] = []
    for block_id, block in blocks.items():
        if block_id in terms:
            slots += compute_hardblock_slots(terms[block_id], snapshot.events, snapshot.booking_lines, start, end, now)
        else:  # its stored span (which covers every night it holds) misses the range: no rooms there
            slots += [HardblockSlot(block_id, night, 0, 0, 0, 0,
                                    release_at(night, block.release_days, snapshot.time_zone))
                      for night in nights(start, end)]
    return slots


def _shortfalls(snapshot: StayInventory, rows: dict, items: list[_Item], now: datetime) -> list[Shortfall]:
    codes = {item.room_type.id: item.room_type.code for item in items}
    found = [
        Shortfall(s.room_type_id, codes[s.room_type_id], s.date, s.requested, s.available)
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
            room_type_id = blocks[s.hardblock_id].room_type_id
            found.append(Shortfall(room_type_id, codes[room_type_id], s.date, s.requested, s.available,
                                   s.hardblock_id))
    return found


def _group_snapshot(group: models.BookingGroup) -> dict[str, Any]:
    return audit.snapshot(group, "reference", "status", "expires_at", "confirmed_at", "cancelled_at")


def _money_snapshot(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": value.currency}


def _created_snapshot(group: models.BookingGroup, agency: models.Agency, items: list[_Item],
                      priced: tuple[PricedItem, ...], plan: PlanRef | None) -> dict[str, Any]:
    """What the audit log keeps of a new hold: net and sell, per item and night, and the plan
    version that priced them."""
    currency = priced[0].total.currency
    return {
        **_group_snapshot(group), "agency": agency.code, "guest_name": group.guest_name,
        "total": _money_snapshot(money_sum((p.total for p in priced), currency)),
        "net_total": _money_snapshot(money_sum((p.net_total for p in priced), currency)),
        "rate_plan": None if plan is None else {"id": plan.id, "version": plan.version},
        "items": [{**audit.snapshot({"room_type_id": it.room_type.id, "check_in": it.check_in,
                                     "check_out": it.check_out, "rooms": it.rooms,
                                     "hardblock_id": it.hardblock.id if it.hardblock else None,
                                     "total": price.total.amount, "net_total": price.net_total.amount},
                                    "room_type_id", "check_in", "check_out", "rooms", "hardblock_id", "total",
                                    "net_total"),
                   "nights": nights_json(price.nights)}
                  for it, price in zip(items, priced)],
    }


def _replay(earlier: Earlier, request_hash: str, key: str) -> models.BookingGroup:
    """A retry's answer: the group the key's first request created."""
    if earlier.request_hash != request_hash or earlier.group is None:
        raise IdempotencyConflict(key)
    return earlier.group


def _decide(inventory: StayInventory, items: list[_Item], agency_id: int) -> tuple[PricedItem, ...]:
    """The items priced, or SoldOut naming every night short, or RestrictionViolated naming every restriction
    broken (for `agency_id`), on `inventory` as of its own (the database's) now and the hotel's
    today. `inventory` must cover the night of the last check-out (closedToDeparture)."""
    start, end = min(it.check_in for it in items), max(it.check_out for it in items)
    rows = inventory.calendar(start, end, inventory.now)
    priced = _price(inventory, rows, items)
    if shortfalls := _shortfalls(inventory, rows, items, inventory.now):
        raise SoldOut(shortfalls)
    restrictions = resolve_restrictions(inventory.events, inventory.room_type_ids, start, end + ONE_NIGHT, agency_id)
    if violations := restriction_violations(
            restrictions, [(it.room_type.id, it.check_in, it.check_out, it.rooms) for it in items], inventory.today):
        raise RestrictionViolated(violations, {it.room_type.id: it.room_type.code for it in items})
    return priced


def _footprint(items: list[BookingItem]) -> tuple[list[int], date, date]:
    """The room types (sorted: the locks' order) and the nights [start, end) of some items."""
    return (sorted({it.room_type_id for it in items}), min(it.check_in for it in items),
            max(it.check_out for it in items))


async def _read_context(connection: Any, caller: Caller, request: NewBooking | QuoteRequest,
                        key: str | None) -> HoldContext:
    """The one read before deciding: who acts, the items' room types and blocks, the key's first
    use (none for a quote), and the inventory with the agency's plan, up to the night of the last
    check-out (its closedToDeparture)."""
    room_type_ids, start, end = _footprint(request.items)
    return await read_hold_context(
        connection, agency_id=request.agency_id if caller.is_staff else None,
        agency_code=None if caller.is_staff else caller.principal.agency_code, room_type_ids=room_type_ids,
        block_ids=sorted({it.hardblock_id for it in request.items if it.hardblock_id is not None}), key=key,
        start=start, end=end + ONE_NIGHT)


async def create_booking(services: Services, caller: Caller, request: NewBooking) -> models.BookingGroup:
    """Hold rooms for every item, all or none, until `expiresAt`; SoldOut names every night short.
    Never sells a room twice: decided under the room types' inventory locks on a fresh read.

    Five round trips on asyncpg (db.fastpath): the context read, then BEGIN with the locks, the
    read after them, the write and COMMIT. The critical section, from the lock to the commit, is
    the last three; everything that does not depend on availability happens before it.
    """
    settings = services.settings
    # Lenient until the hotel's zone is known (with the context read below): the earliest
    # local date of any hotel (UTC-12) is the day before UTC's at the latest.
    key, guest_name = _check(request, utc_today(models.utcnow()) - timedelta(days=1))
    room_type_ids, start, end = _footprint(request.items)
    async with services.raw.connection() as connection:
        context = await _read_context(connection, caller, request, key)
        agency = acting(caller, request.agency_id, None if context.agency is None else _Agency(*context.agency))
        _check_past(request.items, context.inventory.today)  # exact: the hotel's local today, by the database's clock
        items = _resolve_items(request, agency, context)
        request_hash = _request_hash(agency, guest_name, items)
        if context.earlier is not None:  # a retry of a request that committed
            return _replay(context.earlier, request_hash, key)
        # Already sold out as of a committed read: answer without queueing on the lock. That SoldOut
        # is true as of the read and writes nothing; only a request that may succeed takes the lock,
        # and it decides again on a read taken after it.
        _decide(context.inventory, items, agency.id)

        hotel_id = items[0].room_type.hotel_id
        group = GroupRow(reference=new_reference(GROUP_PREFIX), agency_id=agency.id, status="HELD",
                         guest_name=guest_name, created_by=caller.actor.uid)
        try:
            async with locked_transaction(connection, room_type_ids, settings.lock_timeout_ms):
                inventory, earlier = await read_locked(connection, hotel_id, room_type_ids, start, end + ONE_NIGHT,
                                                     agency.id, agency.code, key)
                if earlier is not None:  # a concurrent retry held the locks first and committed
                    raise _Replayed(earlier)
                _check_past(request.items, inventory.today)  # midnight may have struck meanwhile
                priced = _decide(inventory, items, agency.id)
                group.created_at = inventory.now
                group.expires_at = inventory.now + timedelta(minutes=settings.booking_expiry_minutes)
                version, change_id = await insert_hold(
                    connection, group,
                    [HoldItem(it.room_type.id, it.hardblock.id if it.hardblock else None, it.check_in,
                              it.check_out, it.rooms, price.total.amount, price.total.currency,
                              price.net_total.amount, orjson.dumps(nights_json(price.nights)).decode())
                     for it, price in zip(items, priced)],
                    caller.actor, _created_snapshot(group, agency, items, priced, inventory.plan),
                    (agency.code, key, request_hash), (hotel_id, room_type_ids, start, end),
                    None if inventory.plan is None else (inventory.plan.id, inventory.plan.version),
                )
        except _Replayed as replayed:
            return _replay(replayed.earlier, request_hash, key)
        except KeyTaken:  # claimed meanwhile by a request on other room types: it has committed now
            earlier = (await read_hold_context(
                connection, agency_id=agency.id, agency_code=None, room_type_ids=room_type_ids, block_ids=[],
                key=key, start=start, end=end)).earlier
            assert earlier is not None, "a key's claim commits or rolls back with its request"
            return _replay(earlier, request_hash, key)
    await services.relay.deliver(
        [Change(hotel_id, version, tuple(room_type_ids), start, end, ((group.id, agency.id),))], [change_id])
    return group


async def quote(services: Services, caller: Caller, request: QuoteRequest) -> tuple[PricedItem, ...]:
    """What createBooking would hold and charge for these items now: the same checks and the same
    decision on one committed read (no lock, nothing written), so SoldOut and RestrictionViolated
    are createBooking's, and a stay quoted is one createBooking accepts on the same inventory.
    One statement; the pricing is pure computation on it."""
    _check_items(request.items, utc_today(models.utcnow()) - timedelta(days=1))  # see create_booking
    async with services.raw.connection() as connection:
        context = await _read_context(connection, caller, request, None)
    agency = acting(caller, request.agency_id, None if context.agency is None else _Agency(*context.agency))
    _check_past(request.items, context.inventory.today)
    return _decide(context.inventory, _resolve_items(request, agency, context), agency.id)


class _Replayed(Exception):
    def __init__(self, earlier: Earlier) -> None:
        super().__init__("replayed")
        self.earlier = earlier


# --- confirm and cancel --------------------------------------------------------------------------


async def visible_group(connection: Any, caller: Caller, pk: int | None,
                         id: str | None) -> tuple[models.BookingGroup, Footprint]:
    """The group and its footprint, or NotFound when it is missing (`pk` None: the id names none)
    or another agency's (agents)."""
    context = await read_group_context(connection, pk, None if caller.is_staff else caller.principal.agency_code) \
        if pk is not None else None
    if context is None or context.group is None or context.footprint is None or (
            not caller.is_staff and context.group.agency_id != context.own_agency_id):
        raise NotFound("no booking group with that id", id)
    return context.group, context.footprint


def published_change(footprint: Footprint, group: models.BookingGroup, version: int) -> Change:
    """The change a write of `group` committed (its cells, its version), to publish."""
    hotel_id, room_type_ids, start, end = footprint
    return Change(hotel_id, version, tuple(room_type_ids), start, end, ((group.id, group.agency_id),))


def _published(services: Services, footprint: Footprint, group: models.BookingGroup, version: int,
               change_id: int) -> Any:
    return services.relay.deliver([published_change(footprint, group, version)], [change_id])


async def group_shortfalls(connection: Any, locked: LockedGroup, footprint: Footprint) -> list[Shortfall]:
    """Under the group's room-type locks: the nights its bookings could not be held again now (the
    pool or its blocks sold meanwhile). For a hold that lapsed, whose rooms no longer count."""
    hotel_id, room_type_ids, start, end = footprint
    inventory = await load_stay_inventory(connection, hotel_id, room_type_ids, start, end)
    items = [_Item(SimpleNamespace(id=row["room_type_id"], code=row["code"]), row["check_in"], row["check_out"],
                   row["rooms"], None if row["hardblock_id"] is None else SimpleNamespace(
                       id=row["hardblock_id"], room_type_id=row["room_type_id"], release_days=row["release_days"]))
             for row in await group_items(connection, locked.group.id)]
    return _shortfalls(inventory, inventory.calendar(start, end, inventory.now), items, inventory.now)


async def confirm_booking(services: Services, caller: Caller, group_id: int | None,
                          id: str | None = None) -> models.SaleOrder:
    """Turn a HELD, unexpired group CONFIRMED and create its sale order at the prices frozen when
    the rooms were held. Idempotent: a CONFIRMED group returns its sale order. A lapsed hold is
    recorded EXPIRED (committed) and answers BookingExpired. `id` is how the caller named the
    group, for NotFound. Five round trips on asyncpg, like the hold."""
    async with services.raw.connection() as connection:
        visible, footprint = await visible_group(connection, caller, group_id, id)
        # The agency's ledger lock too: what it owes is read and the sale added by one confirmation
        # at a time, or two could each fit under the limit that both together pass.
        async with locked_transaction(connection, footprint[1], services.settings.lock_timeout_ms,
                                      agency_id=visible.agency_id):
            locked = await lock_group_raw(connection, group_id)  # as of the lock: expiry may have won
            group, now = locked.group, locked.now
            try:
                confirm_status(BookingStatus(group.status), group.expires_at, now)
            except DomainBookingExpired as error:
                expired = BookingExpired(str(error), error.expires_at)
                if group.status != "HELD":
                    raise expired from None
                # Lapsed, not yet swept: write down what time did, then answer.
                before = expiry_snapshot(group)
                group.status = "EXPIRED"
                written = await set_group_status(
                    connection, group, "EXPIRED", now,
                    [("booking_group.expired", "BookingGroup", group.id, before, expiry_snapshot(group))],
                    caller.actor, footprint)
            except DomainInvalidTransition as error:
                raise InvalidTransition(str(error), status=error.state) from None
            else:
                if group.status == "CONFIRMED":
                    assert locked.sale_order is not None, "a confirmed group has its sale order"
                    return locked.sale_order
                order, *written = await confirm_locked(connection, locked, caller.actor, footprint)
                expired = None
    await _published(services, footprint, group, *written)
    if expired is not None:
        raise expired  # after the commit: the expiry it found is recorded
    return order


def group_total(locked: LockedGroup) -> Money:
    """The sale's total: the bookings' frozen prices added up."""
    return money_sum([Money(amount, currency) for amount, currency in locked.prices], locked.prices[0][1])


def payment_failure(locked: LockedGroup, total: Money) -> PaymentRequired | CreditLimitExceeded | None:
    """Whether the agency's payment terms let the group be confirmed now (domain.payments
    `confirmation_decision`, on the ledgers read under the locks), as the failure to raise."""
    currency = total.currency
    decision = confirmation_decision(
        locked.terms, total, locked.paid_in(currency),
        outstanding((e for e in locked.agency_ledger if e.amount.currency == currency), currency),
        locked.check_in, hotel_today(locked.now, locked.time_zone))
    if isinstance(decision, DomainPaymentRequired):
        return PaymentRequired(str(decision), decision.amount_due)
    if isinstance(decision, DomainCreditLimitExceeded):
        return CreditLimitExceeded(str(decision), decision.limit, decision.outstanding, decision.amount)
    return None


async def confirm_locked(connection: Any, locked: LockedGroup, actor: Any,
                         footprint: Footprint) -> tuple[models.SaleOrder, int, int]:
    """Confirm a group locked by `lock_group_raw` (under its room types' and its agency's locks),
    if its agency's payment terms allow: its sale order, with the cancellation policy and the
    balance's due date frozen on it, and the sale on the ledger. Raises PaymentRequired or
    CreditLimitExceeded (nothing written). Returns the sale order, the version and the change id."""
    group, now = locked.group, locked.now
    total = group_total(locked)
    if failure := payment_failure(locked, total):
        raise failure
    read, last_id = locked.ledger_read
    if read >= CHECKPOINT_EVERY:  # under the agency's ledger lock: what was read is final, keep its sum
        await move_checkpoint(connection, group.agency_id, last_id,
                              [(e.kind.value, e.amount.currency, e.amount.amount) for e in locked.agency_ledger])
    before = _group_snapshot(group)
    group.status, group.confirmed_at = "CONFIRMED", now
    due_on = balance_due_date(locked.terms, locked.check_in)  # DEPOSIT: the balance's, at the hotel's midnight
    return await confirm_group(
        connection, group, now, (total.amount, total.currency), _money_snapshot(total),
        [("booking_group.confirmed", "BookingGroup", group.id, before, _group_snapshot(group))],
        actor, footprint, locked.cancellation_rules, None if due_on is None else local_midnight(due_on, locked.time_zone))


async def cancel_booking(services: Services, caller: Caller, group_id: int | None, reason: str | None = None,
                         id: str | None = None) -> models.BookingGroup:
    """Release a HELD or CONFIRMED group's rooms (its sale order is cancelled too). Idempotent: a
    CANCELLED group is returned as is."""
    reason = check_reason(reason)
    async with services.raw.connection() as connection:
        visible, footprint = await visible_group(connection, caller, group_id, id)
        # The agency's ledger lock too: a confirmed sale's cancellation posts to its ledger.
        async with locked_transaction(connection, footprint[1], services.settings.lock_timeout_ms,
                                      agency_id=visible.agency_id):
            locked = await lock_group_raw(connection, group_id)
            group, now = locked.group, locked.now
            try:
                cancel_status(BookingStatus(group.status), group.expires_at, now)
            except DomainInvalidTransition as error:
                raise InvalidTransition(str(error), status=error.state) from None
            if group.status == "CANCELLED":
                return group
            before = _group_snapshot(group)
            fee, ledger, refund = _cancellation(locked)
            group.status, group.cancelled_at = "CANCELLED", now
            written = await set_group_status(
                connection, group, "CANCELLED", now,
                [("booking_group.cancelled", "BookingGroup", group.id, before,
                  {**_group_snapshot(group), "reason": reason})],
                caller.actor, footprint, reason, None if fee is None else fee.amount, ledger)
    await _published(services, footprint, group, *written)
    if refund is not None:  # after the commit: the cancellation never waits on, or fails with, Stripe
        try:
            await refund_cancelled_sale(services, caller.actor, refund)
        except Exception:  # the cancellation stands; the sale order's balance shows the refund still due
            log.exception("refunding cancelled sale order %s failed", refund.sale_order_id)
    return group


def _cancellation(locked: LockedGroup) -> tuple[Money | None, tuple[LedgerEntry, ...], CancelRefund | None]:
    """What cancelling a locked group charges and posts: for a confirmed sale, the fee of its
    frozen policy at the hotel-local date of cancelling (none: free), its cancellation entries, and
    what is then to refund of its card payments (what was received above the fee, less refunds;
    nothing for a CREDIT agency, whose credit note is its refund). Nothing for a hold."""
    order = locked.sale_order
    if order is None or order.status != "CONFIRMED":
        return None, (), None
    total = Money(order.total_amount, order.currency)
    fee = cancellation_fee(rules_of(locked.sale_rules) or (), total, locked.check_in,
                           hotel_today(locked.now, locked.time_zone))
    entries = cancellation_entries(order.id, total, fee)
    if locked.terms.terms is PaymentTerms.CREDIT:
        return fee, entries, None
    ledger = [e for e in locked.group_ledger if e.amount.currency == order.currency]
    due = refund_due(received(ledger, order.currency), fee, refunded(ledger, order.currency))
    return fee, entries, (CancelRefund(order.id, order.group_id, due) if due.amount > 0 else None)


# --- lists ---------------------------------------------------------------------------------------


def _status_filter(status: BookingStatus, now: datetime) -> Any:
    """By the status as read (a lapsed hold is EXPIRED whether or not the sweeper ran)."""
    g = models.BookingGroup
    if status is BookingStatus.HELD:
        return and_(g.status == "HELD", or_(g.expires_at.is_(None), g.expires_at > now))
    if status is BookingStatus.EXPIRED:
        return or_(g.status == "EXPIRED", and_(g.status == "HELD", g.expires_at <= now))
    return g.status == status.value


async def booking_groups(services: Services, caller: Caller, status: BookingStatus | None,
                         first: int | None, after: str | None) -> Page[models.BookingGroup]:
    """Newest first; agents see their own agency's groups only."""
    async with services.sessions() as session:
        statement = scoped(select(models.BookingGroup), await own_agency_id(session, caller),
                           models.BookingGroup.agency_id)
        if status is not None:
            statement = statement.where(_status_filter(status, models.utcnow()))
        return await paginate(session, statement, models.BookingGroup.id, first=first, after=after, descending=True)


async def sale_orders(services: Services, caller: Caller, first: int | None,
                      after: str | None) -> Page[models.SaleOrder]:
    """Newest first; agents see their own agency's sale orders only."""
    async with services.sessions() as session:
        statement = scoped(select(models.SaleOrder), await own_agency_id(session, caller),
                           models.SaleOrder.agency_id)
        return await paginate(session, statement, models.SaleOrder.id, first=first, after=after, descending=True)


# --- the expiry sweeper --------------------------------------------------------------------------


async def sweep_expired_holds(services: Services, *, limit: int = 200) -> list[int]:
    """Record up to `limit` lapsed holds as EXPIRED (audited, one version bump and change per
    hotel, published). Returns the expired groups' ids. Availability never waits for this: it only
    writes it down. Safe with several workers: the candidates are read without locks, their room
    types locked (sorted, the order confirm and cancel use), and only then are the groups re-read
    FOR UPDATE SKIP LOCKED, still HELD and lapsed."""
    try:
        async with services.raw.connection() as connection:
            candidates = await lapsed_holds(connection, limit)
            if not candidates:
                return []
            async with locked_transaction(connection, {c["room_type_id"] for c in candidates},
                                          services.settings.lock_timeout_ms):
                groups, now = await lock_lapsed(connection, sorted({c["group_id"] for c in candidates}))
                if not groups:
                    return []
                entries = []
                for group in groups:
                    before = expiry_snapshot(group)
                    group.status = "EXPIRED"
                    entries.append(("booking_group.expired", "BookingGroup", group.id, before, expiry_snapshot(group)))
                agency_of = {group.id: group.agency_id for group in groups}
                touched = Touched()
                for row in candidates:
                    if row["group_id"] in agency_of:  # not confirmed, cancelled or taken by another worker
                        touched.touch(row["hotel_id"], [row["room_type_id"]], row["check_in"], row["check_out"],
                                      groups=[(row["group_id"], agency_of[row["group_id"]])])
                changes = touched.unversioned()
                written = await expire_groups(connection, groups, now, entries, [c.payload() for c in changes])
    except LockTimeout:
        log.info("expiry sweep skipped: inventory locks busy")
        return []
    await services.relay.deliver([dataclasses.replace(change, version=version) for change, (_, version) in
                                  zip(changes, written, strict=True)], [outbox_id for outbox_id, _ in written])
    return [group.id for group in groups]
