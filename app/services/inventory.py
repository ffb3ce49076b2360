"""What the pool is made of: contracts and the allotment events applied over them (staff writes).

Each write takes the room types' inventory locks, so it serialises with the bookings and blocks
it changes the availability of, and bumps the hotel's version like any inventory change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select

from app.services.changes import write
from app.services.context import Caller, Services
from app.services.errors import InvalidInput, InvalidTransition, NotFound
from app.services.idempotency import Keyed, check_key
from app.services.pages import Page, paginate
from db import audit, models
from db.inventory import lock_contract, lock_room_types
from domain import EventKind, Money, RestrictionPatch, check_contract, check_event, check_money, check_range

MAX_CONTRACT_NIGHTS = 3 * 366
CONTRACT_STATUSES = ("ACTIVE", "CANCELLED")
# numeric(12, 2): what a stored amount can hold.
MAX_AMOUNT = Decimal("1e10")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    external_id: str  # the supplier's contract id: the upsert key
    hotel_id: int
    room_type_id: int
    start: date
    end: date
    allotment: int
    rate: Money
    release_days: int = 0
    terms: str = ""
    status: str = "ACTIVE"


@dataclass(frozen=True, slots=True)
class EventSpec:
    kind: EventKind
    room_type_id: int
    start: date
    end: date
    quantity: int | None = None
    rate: Money | None = None
    hardblock_id: int | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class RestrictionSpec:
    room_type_id: int
    start: date
    end: date
    restriction: RestrictionPatch
    agency_ids: tuple[int, ...] = ()  # empty: every agency
    idempotency_key: str | None = None


def problem_text(problem: Any, prefix: str = "") -> InvalidInput:
    """A domain check's InvalidInput as the use cases' (the message names the field)."""
    return InvalidInput(f"{prefix}{problem.field}", f"{prefix}{problem.field} {problem.message}")


def money_input(amount: str, currency: str, field: str = "amount") -> Money:
    """A MoneyInput's text as Money, unchecked beyond being a number (the domain rule that takes it
    checks sign, minor unit and currency: a refund's, a credit limit's)."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise InvalidInput(f"{field}.amount", f"{field}.amount must be a decimal string such as \"120.00\"") from None
    return Money(value, currency.strip().upper())


def parse_money(amount: str, currency: str, field: str) -> Money:
    """Decimal text and a currency code, as a storable Money (checked by `domain.check_money`)."""
    try:
        value = Money(Decimal(amount.strip()), currency.strip().upper())
    except InvalidOperation:
        raise InvalidInput(f"{field}.amount", f"{field}.amount must be a decimal string such as \"120.00\"") from None
    if problem := check_money(value, field):
        raise problem_text(problem)
    if value.amount.as_tuple().exponent < -2 or value.amount >= MAX_AMOUNT:  # type: ignore[operator]
        raise InvalidInput(f"{field}.amount", f"{field}.amount allows at most 2 decimals and 10 integer digits")
    return value


def check_nights(start: date, end: date, *, limit: int = MAX_CONTRACT_NIGHTS) -> None:
    if problem := check_range(start, end):
        raise problem_text(problem)
    if (end - start).days > limit:
        raise InvalidInput("to", f"a range may span at most {limit} nights")


def _event_snapshot(event: models.AllotmentEvent) -> dict[str, Any]:
    return audit.snapshot(event, "kind", "room_type_id", "start_date", "end_date", "quantity", "rate_amount",
                          "currency", "hardblock_id", "voided_at", "voided_by",
                          *(("min_stay", "max_stay", "closed_to_arrival", "closed_to_departure", "min_advance_days",
                             "max_advance_days", "agency_ids") if event.kind == EventKind.RESTRICTION.value else ()))


async def upsert_contract(services: Services, caller: Caller, spec: ContractSpec) -> models.Contract:
    """Create or update the contract with this external id. Allotment changes take effect in
    availability at once (shown as overcommitted if they fall below what is sold)."""
    external_id = spec.external_id.strip()
    if not external_id or len(external_id) > 100:
        raise InvalidInput("externalId", "externalId must be 1 to 100 characters")
    check_nights(spec.start, spec.end)
    if problem := check_contract(spec.start, spec.end, spec.allotment, spec.rate, spec.release_days):
        raise problem_text(problem)
    status = spec.status.strip().upper()
    if status not in CONTRACT_STATUSES:
        raise InvalidInput("status", "status must be ACTIVE or CANCELLED")

    async with write(services) as unit:
        session = unit.session
        if await session.get(models.Hotel, spec.hotel_id) is None:
            raise NotFound("no hotel with that id", str(spec.hotel_id))
        room_type = await session.get(models.RoomType, spec.room_type_id)
        if room_type is None:
            raise NotFound("no room type with that id", str(spec.room_type_id))
        if room_type.hotel_id != spec.hotel_id:
            raise InvalidInput("roomTypeId", "the room type belongs to another hotel")
        await lock_contract(session, external_id, services.settings.lock_timeout_ms)
        contract = (await session.execute(
            select(models.Contract).where(models.Contract.external_id == external_id))).scalar_one_or_none()
        if contract is not None and contract.hotel_id != spec.hotel_id:
            raise InvalidInput("hotelId", f"contract {external_id} belongs to another hotel")
        if contract is not None and contract.supplier_id is not None:
            # Its supplier is the source of truth: an edit here would be undone (or fought) by
            # the next sync. Local adjustments are allotment events, which syncs leave alone.
            raise InvalidInput("externalId", f"contract {external_id} comes from a supplier and changes only "
                               "through its syncs; record allotment events to adjust it locally")
        # The contract feeds availability: serialise with bookings of both room types.
        touched = {spec.room_type_id} | ({contract.room_type_id} if contract else set())
        await lock_room_types(session, touched, services.settings.lock_timeout_ms)
        nights = [spec.start, spec.end] + ([contract.start_date, contract.end_date] if contract else [])

        fields = dict(
            room_type_id=spec.room_type_id, start_date=spec.start, end_date=spec.end, allotment=spec.allotment,
            rate_amount=spec.rate.amount, currency=spec.rate.currency, release_days=spec.release_days,
            terms=spec.terms, status=status,
        )
        if contract is None:
            contract = models.Contract(external_id=external_id, hotel_id=spec.hotel_id, **fields)
            session.add(contract)
            before = None
        else:
            before = audit.snapshot(contract, *fields)
            if before == audit.snapshot(fields, *fields):
                return contract  # unchanged: a retry, no new version
            for name, value in fields.items():
                setattr(contract, name, value)
            contract.updated_at = models.utcnow()
        await session.flush()
        after = audit.snapshot(contract, *fields)
        action = "contract.created" if before is None else "contract.updated"
        audit.record(session, caller.actor, action, "Contract", contract.id, before=before, after=after)
        unit.touch(spec.hotel_id, touched, min(nights), max(nights))
    return contract


async def record_allotment_event(services: Services, caller: Caller, spec: EventSpec) -> models.AllotmentEvent:
    """Append an allotment event from the supplier. BLOCK_AMENDMENT events are written by the
    hardblock amendments, which check the pool and the block's bookings."""
    if spec.kind is EventKind.BLOCK_AMENDMENT:
        raise InvalidInput("kind", "BLOCK_AMENDMENT events are recorded through amendHardblock, "
                                   "which checks pool availability and the block's bookings")
    if spec.kind is EventKind.RESTRICTION:
        raise InvalidInput("kind", "RESTRICTION events carry OTA restrictions (minimum stay, closed to arrival, "
                                   "...), which recordAllotmentEvent does not take")
    if spec.hardblock_id is not None:
        raise InvalidInput("hardblockId", f"hardblockId is not used by {spec.kind.value}")
    check_nights(spec.start, spec.end)
    if problem := check_event(spec.kind, spec.start, spec.end, spec.quantity, spec.rate, None):
        raise problem_text(problem)
    return await _append_event(
        services, caller, check_key(spec.idempotency_key), "recordAllotmentEvent",
        {**asdict(spec), "idempotency_key": None}, spec.room_type_id, kind=spec.kind.value,
        start_date=spec.start, end_date=spec.end, quantity=spec.quantity,
        rate_amount=spec.rate.amount if spec.rate else None, currency=spec.rate.currency if spec.rate else None,
    )


async def _append_event(services: Services, caller: Caller, key: str | None, operation: str,
                        request: dict[str, Any], room_type_id: int, *, agency_ids: Sequence[int] = (),
                        **fields: Any) -> models.AllotmentEvent:
    """Record one operator event on a room type: a keyed retry replays, the agencies it names
    must exist, the room type's lock is taken, and it is audited, versioned and published."""
    async with write(services) as unit:
        session = unit.session
        keyed = Keyed(session, caller, key, operation, request)
        if (earlier := await keyed.replay()) is not None:
            return await session.get(models.AllotmentEvent, earlier["allotment_event"])  # type: ignore[return-value]
        room_type = await session.get(models.RoomType, room_type_id)
        if room_type is None:
            raise NotFound("no room type with that id", str(room_type_id))
        if agency_ids:
            found = set((await session.execute(
                select(models.Agency.id).where(models.Agency.id.in_(agency_ids)))).scalars())
            if missing := [pk for pk in agency_ids if pk not in found]:
                raise NotFound("no agency with that id", str(missing[0]))
        await lock_room_types(session, [room_type.id], services.settings.lock_timeout_ms)
        event = models.AllotmentEvent(hotel_id=room_type.hotel_id, room_type_id=room_type.id,
                                      created_by=caller.actor.uid, agency_ids=list(agency_ids), **fields)
        session.add(event)
        await session.flush()
        audit.record(session, caller.actor, "allotment_event.recorded", "AllotmentEvent", event.id,
                     after=_event_snapshot(event))
        await keyed.remember({"allotment_event": event.id})
        unit.touch(room_type.hotel_id, [room_type.id], event.start_date, event.end_date)
    return event


async def set_restrictions(services: Services, caller: Caller, spec: RestrictionSpec) -> models.AllotmentEvent:
    """Append a RESTRICTION event: the fields it sets hold on its nights for its agencies (every
    agency when none is named) until a later event sets them again or it is voided."""
    check_nights(spec.start, spec.end)
    agency_ids = tuple(sorted(set(spec.agency_ids)))
    if problem := check_event(EventKind.RESTRICTION, spec.start, spec.end, restriction=spec.restriction,
                              agency_ids=agency_ids):
        raise problem_text(problem)
    patch = spec.restriction
    return await _append_event(
        services, caller, check_key(spec.idempotency_key), "setRestrictions",
        {**asdict(spec), "agency_ids": list(agency_ids), "idempotency_key": None}, spec.room_type_id,
        agency_ids=agency_ids, kind=EventKind.RESTRICTION.value, start_date=spec.start, end_date=spec.end,
        min_stay=patch.min_stay, max_stay=patch.max_stay, closed_to_arrival=patch.closed_to_arrival,
        closed_to_departure=patch.closed_to_departure, min_advance_days=patch.min_advance_days,
        max_advance_days=patch.max_advance_days,
    )


async def void_allotment_event(services: Services, caller: Caller, pk: int | None, id: str | None = None,
                               ) -> models.AllotmentEvent:
    """Void (revert) an event: it is then ignored, exactly as if it had never been recorded."""
    async with write(services) as unit:
        session = unit.session
        event = await session.get(models.AllotmentEvent, pk) if pk is not None else None
        if event is None:
            raise NotFound("no allotment event with that id", id)
        if event.source == "SUPPLIER":
            raise InvalidTransition("supplier events are changed only by supplier syncs (the supplier is the "
                                    "source of truth); record an operator event to adjust on top",
                                    status="SUPPLIER")
        if event.kind == EventKind.BLOCK_AMENDMENT.value:
            # Voiding one event of an amendment would resize the block unchecked.
            raise InvalidTransition("BLOCK_AMENDMENT events are reverted a whole amendment at a time with "
                                    "revertHardblockAmendment, which checks the pool and the block's bookings",
                                    status="BLOCK_AMENDMENT")
        await lock_room_types(session, [event.room_type_id], services.settings.lock_timeout_ms)
        await session.refresh(event, with_for_update=True)  # a concurrent void may have won
        if event.voided_at is not None:
            raise InvalidTransition(f"the event was already voided at {event.voided_at.isoformat()}", status="VOIDED")
        before = _event_snapshot(event)
        event.voided_at, event.voided_by = models.utcnow(), caller.actor.uid
        await session.flush()
        audit.record(session, caller.actor, "allotment_event.voided", "AllotmentEvent", event.id,
                     before=before, after=_event_snapshot(event))
        unit.touch(event.hotel_id, [event.room_type_id], event.start_date, event.end_date)
    return event


async def contracts(services: Services, hotel_id: int | None, search: str | None, first: int | None,
                    after: str | None) -> Page[models.Contract]:
    """Staff's list; `search` is full text over the terms; `hotel_id` 0 matches nothing."""
    statement = select(models.Contract)
    if hotel_id is not None:
        statement = statement.where(models.Contract.hotel_id == hotel_id)
    if search and search.strip():
        statement = statement.where(models.Contract.search.op("@@")(func.websearch_to_tsquery("english", search.strip())))
    async with services.sessions() as session:
        return await paginate(session, statement, models.Contract.id, first=first, after=after)
