"""What every area of the API shares: scalars, enums (generated from the domain's and auth's own),
Money, and the one way a node is resolved from its id.

Areas refer to each other's node types (a booking's hardblock, a hotel's calendar) through the
schema by name (`related`, `schema_type`), as `node(id:)` itself does, so no area module imports
another that imports it back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, NewType

import strawberry
from strawberry.exceptions import StrawberryGraphQLError

from app.api.permissions import Info
from app.auth import Role as AuthRole
from db.queries import MAX_PK, bounded_int
from domain import BookingStatus as DomainBookingStatus
from domain import EventKind, HardblockStatus as DomainHardblockStatus
from domain import format_amount

Role = strawberry.enum(AuthRole, name="Role")
BookingStatus = strawberry.enum(DomainBookingStatus, name="BookingStatus")
HardblockStatus = strawberry.enum(DomainHardblockStatus, name="HardblockStatus")
AllotmentEventKind = strawberry.enum(EventKind, name="AllotmentEventKind")


@strawberry.type(description="A decimal amount (as a string, never a float) in an ISO 4217 currency.")
class Money:
    amount: str
    currency: str

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        return cls(amount=format_amount(amount, currency), currency=currency)


@strawberry.input(description="A decimal amount such as \"129.50\" and an ISO 4217 currency such as \"EUR\".")
class MoneyInput:
    amount: str
    currency: str


def money(value: Any) -> Money | None:
    """A domain Money (or None) as the API's."""
    return Money.of(value.amount, value.currency) if value is not None else None


# Caps of list arguments, checked before any work starts (README, "Security model").
MAX_ROOM_TYPE_IDS = 200


def bad_input(message: str) -> StrawberryGraphQLError:
    """A top-level client error, for arguments of queries and subscriptions."""
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def check_room_type_ids(ids: list[Any] | None, argument: str = "roomTypeIds") -> None:
    if ids is not None and len(ids) > MAX_ROOM_TYPE_IDS:
        raise bad_input(f"{argument} lists at most {MAX_ROOM_TYPE_IDS} room types, got {len(ids)}")


def node_pk(node_id: object) -> int | None:
    """The primary key a node id's number stands for, or None when it cannot be one."""
    return bounded_int(str(node_id), MAX_PK)


Visible = Callable[[Info, Any], Awaitable[bool]]


async def everyone(info: Info, row: Any) -> bool:
    return True


async def staff_only(info: Info, row: Any) -> bool:
    principal = info.context.principal
    return principal is not None and principal.is_staff


async def agency_scoped(info: Info, row: Any) -> bool:
    """Rows that belong to an agency: staff see all, agents their own agency's."""
    return await info.context.may_see(row.agency_id)


class LoadedNode:
    """Node types resolve their ids in one way: through their loader, filtered by who may see them.

    A type sets `loader` (the name of its loader on the request's Loaders), `visible` (one of the
    rules above) and a `from_row` that builds it."""

    loader = ""
    visible: Visible = everyone

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await getattr(info.context.loaders, cls.loader).load_many([node_pk(i) or 0 for i in node_ids])
        visible = cls.visible
        return [cls.from_row(row) if row is not None and await visible(info, row) else None  # type: ignore[attr-defined]
                for row in rows]


def schema_type(info: Info, name: str) -> Any:
    """The class behind a type of the schema, by its GraphQL name."""
    return info.schema.get_type_by_name(name).origin  # type: ignore[union-attr]


async def related(info: Info, type_name: str, pk: int | None) -> Any:
    """The node of type `type_name` with primary key `pk`, as the caller may see it (or None)."""
    if pk is None:
        return None
    return (await schema_type(info, type_name).resolve_nodes(info=info, node_ids=[str(pk)]))[0]


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
