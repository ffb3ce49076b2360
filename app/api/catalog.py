"""Admin setup: agencies, hotels with their room types, and supplier contracts."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

import strawberry
from sqlalchemy import func, select
from strawberry import relay

from app.api.errors import InvalidInput, InvalidInputError, NotFound, NotFoundError
from app.api.ids import decode_id, filter_pk
from app.api.pagination import paginate
from app.api.permissions import ADMIN, AUTHENTICATED, STAFF, Info
from app.api.types import Agency, Hotel, Money, MoneyInput, RoomType, load_hotel, load_room_type, node_pk
from app.publish import publish_inventory_change
from db import audit, models
from db.engine import transaction
from db.inventory import bump_version, lock_room_types
from domain import check_range

CODE = re.compile(r"^[A-Z0-9_-]{2,32}$")
ROOM_TYPE_CODE = re.compile(r"^[A-Z0-9_-]{1,32}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_CONTRACT_NIGHTS = 3 * 366


def _code(value: str, field: str, *, shortest: int = 2) -> str:
    """Codes are case-insensitive identifiers, stored upper-case."""
    code = value.strip().upper()
    pattern = CODE if shortest == 2 else ROOM_TYPE_CODE
    if not pattern.match(code):
        raise InvalidInputError(
            field, f"{field} must be {shortest} to 32 characters of A-Z, 0-9, '_' or '-', got {value!r}"
        )
    return code


def _name(value: str, field: str = "name") -> str:
    name = value.strip()
    if not name or len(name) > 200:
        raise InvalidInputError(field, f"{field} must be 1 to 200 characters")
    return name


def parse_money(value: MoneyInput, field: str) -> tuple[Decimal, str]:
    try:
        amount = Decimal(value.amount.strip())
    except InvalidOperation:
        raise InvalidInputError(f"{field}.amount", f"{field}.amount must be a decimal string such as \"120.00\"") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInputError(f"{field}.amount", f"{field}.amount must be zero or more")
    if amount.as_tuple().exponent < -2 or amount >= Decimal("1e10"):  # type: ignore[operator]
        raise InvalidInputError(f"{field}.amount", f"{field}.amount allows at most 2 decimals and 10 integer digits")
    currency = value.currency.strip().upper()
    if not CURRENCY.match(currency):
        raise InvalidInputError(f"{field}.currency", f"{field}.currency must be an ISO 4217 code such as EUR")
    return amount, currency


def check_nights(start: date, end: date, *, limit: int = MAX_CONTRACT_NIGHTS) -> None:
    if start >= end:
        raise InvalidInputError("to", f"to ({end}) must be after from ({start}): ranges are [from, to) over nights")
    if problem := check_range(start, end):
        raise InvalidInputError(problem.field, f"{problem.field} {problem.message}")
    if (end - start).days > limit:
        raise InvalidInputError("to", f"a range may span at most {limit} nights")


# --- types -------------------------------------------------------------------------------------


@strawberry.type
class Contract(relay.Node):
    id: relay.NodeID[int]
    external_id: str
    from_: date = strawberry.field(name="from", description="First night.")
    to: date = strawberry.field(description="The day after the last night.")
    allotment: int
    rate: Money
    release_days: int
    status: str
    terms: str
    created_at: datetime
    updated_at: datetime
    hotel_id: strawberry.Private[int]
    room_type_id: strawberry.Private[int]

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.room_type_id)

    @staticmethod
    def from_row(row: models.Contract) -> Contract:
        return Contract(
            id=row.id,
            external_id=row.external_id,
            from_=row.start_date,
            to=row.end_date,
            allotment=row.allotment,
            rate=Money.of(row.rate_amount, row.currency),
            release_days=row.release_days,
            status=row.status,
            terms=row.terms,
            created_at=row.created_at,
            updated_at=row.updated_at,
            hotel_id=row.hotel_id,
            room_type_id=row.room_type_id,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: list[str], required: bool = False) -> list[Contract | None]:
        # Contracts carry the wholesaler's buying terms: staff only.
        principal = info.context.principal
        if principal is None or not principal.is_staff:
            return [None for _ in node_ids]
        pks = [pk for pk in map(node_pk, node_ids) if pk is not None]
        async with info.context.sessions() as session:
            rows = (await session.execute(select(models.Contract).where(models.Contract.id.in_(pks)))).scalars()
            found = {str(row.id): cls.from_row(row) for row in rows}
        return [found.get(str(i)) for i in node_ids]


@strawberry.input
class CreateAgencyInput:
    code: str
    name: str


@strawberry.input
class RoomTypeInput:
    code: str
    name: str


@strawberry.input
class UpsertHotelInput:
    code: str
    name: str
    room_types: list[RoomTypeInput] = strawberry.field(
        default_factory=list,
        description="Upserted by code; room types not listed are kept (contracts may refer to them).",
    )


@strawberry.input
class UpsertContractInput:
    external_id: str = strawberry.field(description="The supplier's contract id: the upsert key.")
    hotel_id: strawberry.ID
    room_type_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date
    allotment: int
    rate: MoneyInput
    release_days: int = 0
    terms: str = ""
    status: str = "ACTIVE"


CreateAgencyResult = Annotated[Agency | InvalidInput, strawberry.union("CreateAgencyResult")]
UpsertHotelResult = Annotated[Hotel | InvalidInput, strawberry.union("UpsertHotelResult")]
UpsertContractResult = Annotated[Contract | InvalidInput | NotFound, strawberry.union("UpsertContractResult")]


# --- queries -----------------------------------------------------------------------------------


@strawberry.type
class CatalogQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Agents see their own agency only.")
    async def agencies(self, info: Info) -> list[Agency]:
        principal = info.context.principal
        statement = select(models.Agency).order_by(models.Agency.code)
        if principal is not None and not principal.is_staff:
            statement = statement.where(models.Agency.code == principal.agency_code)
        async with info.context.sessions() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [Agency.from_row(row) for row in rows]

    @strawberry.field(permission_classes=AUTHENTICATED)
    async def hotels(self, info: Info) -> list[Hotel]:
        async with info.context.sessions() as session:
            rows = (await session.execute(select(models.Hotel).order_by(models.Hotel.code))).scalars().all()
        return [Hotel.from_row(row) for row in rows]

    @strawberry.field(permission_classes=STAFF, description="Full-text `search` over the contract terms.")
    async def contracts(
        self,
        info: Info,
        hotel_id: strawberry.ID | None = None,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> relay.Connection[Contract]:
        statement = select(models.Contract)
        if hotel_id is not None:
            statement = statement.where(models.Contract.hotel_id == filter_pk(hotel_id, "Hotel"))
        if search and search.strip():
            query = func.websearch_to_tsquery("english", search.strip())
            statement = statement.where(models.Contract.search.op("@@")(query))
        async with info.context.sessions() as session:
            return await paginate(
                session, statement, models.Contract.id, first=first, after=after, node=Contract.from_row
            )


# --- mutations ---------------------------------------------------------------------------------


async def _hotel_row(session, hotel_id: int) -> models.Hotel:
    hotel = await session.get(models.Hotel, hotel_id)
    if hotel is None:
        raise NotFoundError("no hotel with that id", str(hotel_id))
    return hotel


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(permission_classes=ADMIN)
    async def create_agency(self, info: Info, input: CreateAgencyInput) -> CreateAgencyResult:
        code, name = _code(input.code, "code"), _name(input.name)
        async with transaction(info.context.sessions) as session:
            existing = (
                await session.execute(select(models.Agency).where(models.Agency.code == code))
            ).scalar_one_or_none()
            if existing is not None:
                if existing.name != name:
                    raise InvalidInputError("code", f"agency {code} already exists (as {existing.name!r})")
                return Agency.from_row(existing)  # a retry: nothing to do
            agency = models.Agency(code=code, name=name)
            session.add(agency)
            await session.flush()
            audit.record(session, info.context.actor, "agency.created", "Agency", agency.id,
                         after=audit.snapshot(agency, "code", "name"))
        return Agency.from_row(agency)

    @strawberry.mutation(permission_classes=ADMIN)
    async def upsert_hotel(self, info: Info, input: UpsertHotelInput) -> UpsertHotelResult:
        code, name = _code(input.code, "code"), _name(input.name)
        wanted: dict[str, str] = {}
        for index, room_type in enumerate(input.room_types):
            rt_code = _code(room_type.code, f"roomTypes[{index}].code", shortest=1)
            if rt_code in wanted:
                raise InvalidInputError(f"roomTypes[{index}].code", f"room type {rt_code} is listed twice")
            wanted[rt_code] = _name(room_type.name, f"roomTypes[{index}].name")

        async with transaction(info.context.sessions) as session:
            hotel = (await session.execute(select(models.Hotel).where(models.Hotel.code == code))).scalar_one_or_none()
            current: dict[str, models.RoomType] = {}
            if hotel is None:
                hotel = models.Hotel(code=code, name=name)
                session.add(hotel)
                await session.flush()
                before = None
            else:
                rows = await session.execute(select(models.RoomType).where(models.RoomType.hotel_id == hotel.id))
                current = {row.code: row for row in rows.scalars()}
                before = _hotel_snapshot(hotel, current.values())
                hotel.name = name
            for rt_code, rt_name in wanted.items():
                if rt_code in current:
                    current[rt_code].name = rt_name
                else:
                    current[rt_code] = models.RoomType(hotel_id=hotel.id, code=rt_code, name=rt_name)
                    session.add(current[rt_code])
            await session.flush()
            after = _hotel_snapshot(hotel, current.values())
            if after != before:
                action = "hotel.created" if before is None else "hotel.updated"
                audit.record(session, info.context.actor, action, "Hotel", hotel.id, before=before, after=after)
        return Hotel.from_row(hotel)

    @strawberry.mutation(
        permission_classes=ADMIN,
        description="Creates or updates the contract with this externalId; allotment changes take effect "
        "in availability at once (shown as overcommitted if they fall below what is sold).",
    )
    async def upsert_contract(self, info: Info, input: UpsertContractInput) -> UpsertContractResult:
        external_id = input.external_id.strip()
        if not external_id or len(external_id) > 100:
            raise InvalidInputError("externalId", "externalId must be 1 to 100 characters")
        hotel_id = decode_id(input.hotel_id, "Hotel", "hotelId")
        room_type_id = decode_id(input.room_type_id, "RoomType", "roomTypeId")
        check_nights(input.from_, input.to)
        if input.allotment < 0:
            raise InvalidInputError("allotment", "allotment must be zero or more rooms per night")
        if not 0 <= input.release_days <= 365:
            raise InvalidInputError("releaseDays", "releaseDays must be between 0 and 365")
        status = input.status.strip().upper()
        if status not in ("ACTIVE", "CANCELLED"):
            raise InvalidInputError("status", "status must be ACTIVE or CANCELLED")
        amount, currency = parse_money(input.rate, "rate")
        settings = info.context.settings

        async with transaction(info.context.sessions) as session:
            await _hotel_row(session, hotel_id)
            room_type = await session.get(models.RoomType, room_type_id)
            if room_type is None:
                raise NotFoundError("no room type with that id", input.room_type_id)
            if room_type.hotel_id != hotel_id:
                raise InvalidInputError("roomTypeId", "the room type belongs to another hotel")
            contract = (
                await session.execute(
                    select(models.Contract).where(models.Contract.external_id == external_id)
                )
            ).scalar_one_or_none()
            if contract is not None and contract.hotel_id != hotel_id:
                raise InvalidInputError("hotelId", f"contract {external_id} belongs to another hotel")
            # The contract feeds availability: serialise with bookings of both room types.
            touched = {room_type_id} | ({contract.room_type_id} if contract else set())
            await lock_room_types(session, touched, settings.lock_timeout_ms)
            nights = [input.from_, input.to] + ([contract.start_date, contract.end_date] if contract else [])

            fields = dict(
                room_type_id=room_type_id, start_date=input.from_, end_date=input.to,
                allotment=input.allotment, rate_amount=amount, currency=currency,
                release_days=input.release_days, terms=input.terms, status=status,
            )
            if contract is None:
                contract = models.Contract(external_id=external_id, hotel_id=hotel_id, **fields)
                session.add(contract)
                before = None
            else:
                before = audit.snapshot(contract, *fields)
                if before == audit.snapshot(fields, *fields):
                    return Contract.from_row(contract)  # unchanged: a retry, no new version
                for name, value in fields.items():
                    setattr(contract, name, value)
                contract.updated_at = models.utcnow()
            await session.flush()
            after = audit.snapshot(contract, *fields)
            action = "contract.created" if before is None else "contract.updated"
            audit.record(session, info.context.actor, action, "Contract", contract.id, before=before, after=after)
            version = await bump_version(session, hotel_id)
        await publish_inventory_change(info.context, hotel_id, version, touched, min(nights), max(nights))
        return Contract.from_row(contract)


def _hotel_snapshot(hotel: models.Hotel, room_types) -> dict:
    return {
        "code": hotel.code,
        "name": hotel.name,
        "roomTypes": sorted(({"code": rt.code, "name": rt.name} for rt in room_types), key=lambda rt: rt["code"]),
    }
