"""Booking groups, their bookings and sale orders: the types, the lists, and createBooking,
confirmBooking and cancelBooking over the use cases of app.services.bookings."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.audit import AuditEntry, audit_trail
from app.api.catalog import Agency, Hotel, RoomType, load_agency, load_hotel, load_room_type
from app.api.errors import (
    BookingExpired,
    CreditLimitExceeded,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LockTimeout,
    NotFound,
    PaymentRequired,
    RestrictionViolated,
    SoldOut,
)
from app.api.ids import decode_id, decode_optional, target_pk
from app.api.pagination import connection
from app.api.payments import Payment, PaymentStatus, payments_of
from app.api.permissions import AUTHENTICATED, Info
from app.api.types import BookingStatus, LoadedNode, Money, agency_scoped, related, schema_type
from app.services import bookings, rateplans
from app.services.payments import figures
from app.services.reads import is_loaded
from domain import Money as DomainMoney
from domain import effective_status

if TYPE_CHECKING:
    from db.models import Booking as BookingRow
    from db.models import BookingGroup as BookingGroupRow
    from db.models import SaleOrder as SaleOrderRow
else:
    BookingRow = BookingGroupRow = SaleOrderRow = Any


def _status(status: str, expires_at: datetime | None) -> BookingStatus:
    """A hold past its expiry reads as EXPIRED at once, before the sweeper records it."""
    return effective_status(BookingStatus(status), expires_at, datetime.now(UTC))


@strawberry.type
class Booking(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    check_in: date
    check_out: date
    rooms: int
    status: BookingStatus
    total: Money
    row: strawberry.Private[BookingRow]

    loader = "booking"
    visible = agency_scoped

    @staticmethod
    def from_row(row: BookingRow) -> Booking:
        return Booking(
            id=row.id, check_in=row.check_in, check_out=row.check_out, rooms=row.rooms,
            status=_status(row.status, row.expires_at), total=Money.of(row.total_amount, row.currency), row=row,
        )

    @strawberry.field
    async def group(self, info: Info) -> BookingGroup:
        return BookingGroup.from_row(await info.context.loaders.booking_group.load(self.row.group_id))

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.row.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @strawberry.field(description="The price of one room per night, frozen when the rooms were held: sell, net "
                      "(staff only) and the rules applied. Empty for bookings made before rate plans.")
    async def nights(self, info: Info) -> list[Annotated[PricedNight, strawberry.lazy("app.api.pricing")]]:  # noqa: F821
        row = self.row
        if not is_loaded(row, "nights"):  # a calendar cell's booking: read without its breakdown
            row = await info.context.loaders.booking.load(row.id)
        priced_night, staff = schema_type(info, "PricedNight"), info.context.caller.is_staff
        return [priced_night.of(night, staff) for night in rateplans.nights_of(row.nights)]

    @strawberry.field(description="The hardblock the rooms come from; null for pool bookings.")
    async def hardblock(self, info: Info) -> Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")] | None:  # noqa: F821
        return await related(info, "Hardblock", self.row.hardblock_id)


@strawberry.type
class BookingGroup(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    reference: str
    status: BookingStatus
    expires_at: datetime | None
    guest_name: str
    created_at: datetime
    row: strawberry.Private[BookingGroupRow]

    loader = "booking_group"
    visible = agency_scoped

    @staticmethod
    def from_row(row: BookingGroupRow) -> BookingGroup:
        return BookingGroup(
            id=row.id, reference=row.reference, status=_status(row.status, row.expires_at),
            expires_at=row.expires_at, guest_name=row.guest_name, created_at=row.created_at, row=row,
        )

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    @strawberry.field
    async def bookings(self, info: Info) -> list[Booking]:
        return [Booking.from_row(row) for row in await info.context.loaders.bookings_by_group.load(self.id)]

    @strawberry.field(description="Sum of the bookings' prices, frozen when the rooms were held.")
    async def total(self, info: Info) -> Money:
        rows = await info.context.loaders.bookings_by_group.load(self.id)
        currency = rows[0].currency if rows else "EUR"
        return Money.of(sum((row.total_amount for row in rows), Decimal(0)), currency)

    @strawberry.field
    async def sale_order(self, info: Info) -> SaleOrder | None:
        row = await info.context.loaders.sale_order_by_group.load(self.id)
        return SaleOrder.from_row(row) if row else None

    @strawberry.field(description="What must be paid now, less what was paid: while held, before the group can be "
                      "confirmed (PREPAY: the total; DEPOSIT: the deposit, or the whole once the balance is due); once "
                      "confirmed, the balance from its sale order's balanceDueAt on. Zero for CREDIT agencies and for "
                      "groups no longer held or confirmed.")
    async def amount_due_now(self, info: Info) -> Money:
        loaders = info.context.loaders
        bookings = await loaders.bookings_by_group.load(self.id)
        if self.status not in (BookingStatus.HELD, BookingStatus.CONFIRMED):
            return Money.of(Decimal(0), bookings[0].currency if bookings else "EUR")
        agency, hotel, ledger, sale_order = await asyncio.gather(
            loaders.agency.load(self.row.agency_id), loaders.hotel.load(bookings[0].hotel_id),
            loaders.ledger_by_group.load(self.id), loaders.sale_order_by_group.load(self.id))
        due = figures.due_now(agency, bookings, ledger, hotel.time_zone, datetime.now(UTC),
                              sale_order if self.status is BookingStatus.CONFIRMED else None)
        return Money.of(due.amount, due.currency)

    @strawberry.field(description="Its payments, oldest first.")
    async def payments(self, info: Info) -> list[Payment]:
        return await payments_of(info, self.id)

    @strawberry.field(description="What happened to the group and its sale order (created, confirmed, "
                      "cancelled, expired), oldest first.")
    async def audit_trail(self, info: Info) -> list[AuditEntry]:
        if not await info.context.may_see(self.row.agency_id):
            return []
        entities = [("BookingGroup", self.id)]
        if order := await info.context.loaders.sale_order_by_group.load(self.id):
            entities.append(("SaleOrder", order.id))
        return await audit_trail(info, entities)


@strawberry.type
class SaleOrder(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    number: str
    status: str
    total: Money
    confirmed_at: datetime
    cancelled_at: datetime | None
    row: strawberry.Private[SaleOrderRow]

    loader = "sale_order"
    visible = agency_scoped

    @staticmethod
    def from_row(row: SaleOrderRow) -> SaleOrder:
        return SaleOrder(
            id=row.id, number=row.number, status=row.status, total=Money.of(row.total_amount, row.currency),
            confirmed_at=row.confirmed_at, cancelled_at=row.cancelled_at, row=row,
        )

    @strawberry.field
    async def group(self, info: Info) -> BookingGroup:
        return BookingGroup.from_row(await info.context.loaders.booking_group.load(self.row.group_id))

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    async def _figures(self, info: Info) -> figures.SaleFigures:
        ledger = await info.context.loaders.ledger_by_group.load(self.row.group_id)
        return figures.sale_figures(DomainMoney(self.row.total_amount, self.row.currency), ledger)

    @strawberry.field
    async def payment_status(self, info: Info) -> PaymentStatus:
        return (await self._figures(info)).status

    @strawberry.field(description="Payments received less refunds, summed over the ledger.")
    async def paid(self, info: Info) -> Money:
        paid = (await self._figures(info)).paid
        return Money.of(paid.amount, paid.currency)

    @strawberry.field(description="What the agency still owes on this sale, summed over the ledger (the sale, fees "
                      "and refunds less payments and credit notes); negative: a refund is due to it.")
    async def balance_due(self, info: Info) -> Money:
        due = (await self._figures(info)).balance_due
        return Money.of(due.amount, due.currency)

    @strawberry.field(description="DEPOSIT terms: when the balance is due (the hotel-local midnight, balanceDueDays "
                      "before arrival), frozen at confirmation; null for other terms.")
    def balance_due_at(self) -> datetime | None:
        return self.row.balance_due_at

    @strawberry.field(description="What cancelling cost, under the policy frozen at confirmation; null while the "
                      "sale stands.")
    def cancellation_fee(self) -> Money | None:
        return None if self.row.cancellation_fee is None else Money.of(self.row.cancellation_fee, self.row.currency)

    @strawberry.field(description="The group's payments, oldest first.")
    async def payments(self, info: Info) -> list[Payment]:
        return await payments_of(info, self.row.group_id)


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
    BookingGroup | SoldOut | RestrictionViolated | InvalidInput | IdempotencyConflict | LockTimeout,
    strawberry.union("CreateBookingResult"),
]
ConfirmBookingResult = Annotated[
    SaleOrder | BookingExpired | InvalidTransition | NotFound | LockTimeout | PaymentRequired | CreditLimitExceeded,
    strawberry.union("ConfirmBookingResult"),
]
CancelBookingResult = Annotated[
    BookingGroup | InvalidTransition | NotFound | InvalidInput | LockTimeout, strawberry.union("CancelBookingResult")
]


def _item(index: int, item: BookingItemInput) -> bookings.BookingItem:
    field = f"items[{index}]."
    return bookings.BookingItem(
        room_type_id=decode_id(item.room_type_id, "RoomType", f"{field}roomTypeId"), check_in=item.check_in,
        check_out=item.check_out, rooms=item.rooms,
        hardblock_id=decode_optional(item.hardblock_id, "Hardblock", f"{field}hardblockId"),
    )


@strawberry.type
class BookingMutation:
    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Hold rooms for 1 to 20 items, all or none, until `expiresAt`. Never sells a room "
        "twice: decided under the room types' inventory locks on a fresh read.",
    )
    async def create_booking(self, info: Info, input: CreateBookingInput) -> CreateBookingResult:
        request = bookings.NewBooking(
            idempotency_key=input.idempotency_key, guest_name=input.guest_name,
            items=[_item(i, item) for i, item in enumerate(input.items)],
            agency_id=decode_optional(input.agency_id, "Agency", "agencyId"),
        )
        return BookingGroup.from_row(await bookings.create_booking(info.context.services, info.context.caller, request))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Turn a HELD, unexpired group CONFIRMED and create its sale order at the prices frozen "
        "when the rooms were held. Idempotent: a CONFIRMED group returns its sale order.",
    )
    async def confirm_booking(self, info: Info, group_id: strawberry.ID) -> ConfirmBookingResult:
        pk = target_pk(group_id, "BookingGroup")
        order = await bookings.confirm_booking(info.context.services, info.context.caller, pk, group_id)
        return SaleOrder.from_row(order)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release a HELD or CONFIRMED group's rooms (its sale order is cancelled too). "
        "Idempotent: a CANCELLED group is returned as is.",
    )
    async def cancel_booking(self, info: Info, group_id: strawberry.ID, reason: str | None = None) -> CancelBookingResult:
        pk = target_pk(group_id, "BookingGroup")
        group = await bookings.cancel_booking(info.context.services, info.context.caller, pk, reason, group_id)
        return BookingGroup.from_row(group)


@strawberry.type
class BookingQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's groups only.")
    async def booking_groups(
        self, info: Info, status: BookingStatus | None = None, first: int | None = None, after: str | None = None
    ) -> relay.Connection[BookingGroup]:
        page = await bookings.booking_groups(info.context.services, info.context.caller, status, first, after)
        return connection(page, BookingGroup.from_row)

    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's sale orders only.")
    async def sale_orders(self, info: Info, first: int | None = None, after: str | None = None) -> relay.Connection[SaleOrder]:
        page = await bookings.sale_orders(info.context.services, info.context.caller, first, after)
        return connection(page, SaleOrder.from_row)
