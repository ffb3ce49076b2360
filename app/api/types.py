"""Node types shared by every area of the API, and their scoping rules."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, NewType

import strawberry
from strawberry import relay

from app.api.permissions import Info
from app.auth import Principal
from db import models

if TYPE_CHECKING:
    from app.api.inventory import Calendar


@strawberry.type(description="A decimal amount (as a string, never a float) in an ISO 4217 currency.")
class Money:
    amount: str
    currency: str

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        return cls(amount=f"{amount:.2f}", currency=currency)


@strawberry.input(description="A decimal amount such as \"129.50\" and an ISO 4217 currency such as \"EUR\".")
class MoneyInput:
    amount: str
    currency: str


@strawberry.enum
class Role(enum.Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AGENT = "agent"


# Primary keys are PostgreSQL integers: anything outside them names nothing (and must not reach
# a query, where asyncpg would refuse to encode it).
MAX_PK = 2**31 - 1


def bounded_int(text: str, largest: int) -> int | None:
    """`text` as a whole number from 1 to `largest` (ASCII digits only), or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(largest)):
        return None
    value = int(text)
    return value if 0 < value <= largest else None


def node_pk(node_id: object) -> int | None:
    """The primary key a node id's number stands for, or None when it cannot be one."""
    return bounded_int(str(node_id), MAX_PK)


def _pks(node_ids: Iterable[str]) -> list[int | None]:
    return [node_pk(i) for i in node_ids]


async def _resolve(info: Info, loader: Any, node_ids: Iterable[str], build: Any) -> list[Any]:
    pks = _pks(node_ids)
    rows = await loader.load_many([pk or 0 for pk in pks])
    return [build(row, info.context.principal) if row is not None else None for row in rows]


@strawberry.type
class Agency(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str

    @staticmethod
    def from_row(row: models.Agency) -> Agency:
        return Agency(id=row.id, code=row.code, name=row.name)

    @staticmethod
    def visible(row: models.Agency, principal: Principal | None) -> Agency | None:
        if principal is None or (not principal.is_staff and principal.agency_code != row.code):
            return None
        return Agency.from_row(row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        return await _resolve(info, info.context.loaders.agency, node_ids, cls.visible)


@strawberry.type
class RoomType(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    hotel_id: strawberry.Private[int]

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.hotel_id)

    @staticmethod
    def from_row(row: models.RoomType, principal: Principal | None = None) -> RoomType:
        return RoomType(id=row.id, code=row.code, name=row.name, hotel_id=row.hotel_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        return await _resolve(info, info.context.loaders.room_type, node_ids, cls.from_row)


@strawberry.type
class Hotel(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str

    @strawberry.field
    async def room_types(self, info: Info) -> list[RoomType]:
        rows = await info.context.loaders.room_types_by_hotel.load(self.id)
        return [RoomType.from_row(row) for row in rows]

    @strawberry.field(description="Pool availability per room type and night over [from, to).")
    async def calendar(
        self,
        info: Info,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        room_type_ids: list[strawberry.ID] | None = None,
    ) -> Annotated[Calendar, strawberry.lazy("app.api.inventory")]:
        from app.api.inventory import hotel_calendar

        return await hotel_calendar(info, self.id, from_, to, room_type_ids)

    @staticmethod
    def from_row(row: models.Hotel, principal: Principal | None = None) -> Hotel:
        return Hotel(id=row.id, code=row.code, name=row.name)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        return await _resolve(info, info.context.loaders.hotel, node_ids, cls.from_row)


@strawberry.type
class Viewer:
    uid: str
    role: Role
    agency_code: strawberry.Private[str | None]

    @strawberry.field(description="The agency an agent acts for; null for admins and operators.")
    async def agency(self, info: Info) -> Agency | None:
        if self.agency_code is None:
            return None
        return await _agency_by_code(info, self.agency_code)


async def _agency_by_code(info: Info, code: str) -> Agency | None:
    from sqlalchemy import select

    async with info.context.sessions() as session:
        row = (await session.execute(select(models.Agency).where(models.Agency.code == code))).scalar_one_or_none()
    return Agency.visible(row, info.context.principal) if row else None


# The parents of bookings, blocks, contracts and events, through the request's loaders. Only
# called from an entity the caller may already see, so the agency needs no further check.
async def load_agency(info: Info, pk: int) -> Agency:
    return Agency.from_row(await info.context.loaders.agency.load(pk))


async def load_hotel(info: Info, pk: int) -> Hotel:
    return Hotel.from_row(await info.context.loaders.hotel.load(pk))


async def load_room_type(info: Info, pk: int) -> RoomType:
    return RoomType.from_row(await info.context.loaders.room_type.load(pk))


def _identity(value: Any) -> Any:
    return value


def _reject_input(value: Any) -> Any:
    raise ValueError("Series is an output-only scalar")


# A whole list as one scalar: graphql-core completes it once instead of once per night, which is
# what lets a 50 x 365 grid serialise at close to json.dumps speed (see bench/calendar_http.py).
Series = NewType("Series", list)
SERIES_SCALAR = strawberry.scalar(
    name="Series",
    description="A JSON array with one entry per night, in date order.",
    serialize=_identity,
    parse_value=_reject_input,
)
