"""Reports in GraphQL: pickupReport, utilisationReport (staff) and revenueReport, over the use cases
of app.services.reports (the CSV export, app/reports_csv.py, serves the same rows)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry

from app.api.catalog import Agency, RoomType, load_agency, load_room_type
from app.api.ids import filter_pk
from app.api.permissions import AUTHENTICATED, STAFF, Info
from app.api.types import Money, bad_input, money, schema_type
from app.services import reports
from app.services.errors import InvalidInput as InvalidInputFailure
from domain import Money as DomainMoney
from domain.reports import Period as DomainPeriod

Period = strawberry.enum(DomainPeriod, name="Period", description="DAY, WEEK (ISO, from Monday) or MONTH.")


@strawberry.enum(description="What revenue is grouped by: the agency, hotel or room type, or the month of the "
                 "stay night.")
class RevenueKey(Enum):
    AGENCY = "AGENCY"
    HOTEL = "HOTEL"
    ROOM_TYPE = "ROOM_TYPE"
    MONTH = "MONTH"


def _percent(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


async def _call(coroutine: Any) -> Any:
    """A use case's InvalidInput as a top-level BAD_USER_INPUT (these fields return lists)."""
    try:
        return await coroutine
    except InvalidInputFailure as error:
        raise bad_input(error.message) from None


@strawberry.type(description="One hardblock's pickup over the report's nights.")
class PickupRow:
    room_nights_blocked: int
    room_nights_picked_up: int = strawberry.field(description="Booked from it, held and confirmed.")
    room_nights_released: int = strawberry.field(description="Given back to the pool unsold.")
    room_nights_remaining: int = strawberry.field(description="Neither booked nor released yet.")
    pickup_percent: float | None = strawberry.field(description="Picked up / blocked x 100; null when nothing was blocked.")
    wash_percent: float | None = strawberry.field(description="Released unsold / blocked x 100.")
    hardblock_id: strawberry.Private[int]
    agency_id: strawberry.Private[int]
    room_type_id: strawberry.Private[int]

    @strawberry.field
    async def block(self, info: Info) -> Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")]:  # noqa: F821
        return schema_type(info, "Hardblock").from_row(await info.context.loaders.hardblock.load(self.hardblock_id))

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.agency_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.room_type_id)


@strawberry.type(description="One room type over one period: the calendar's numbers added up over its nights "
                 "(room nights).")
class UtilisationRow:
    from_: date = strawberry.field(name="from", description="The period's first night in the report.")
    to: date = strawberry.field(description="The day after its last night in the report.")
    allotment: int
    hardblocked: int
    held: int
    sold: int
    released: int = strawberry.field(description="Room nights hardblocks gave back to the pool.")
    available: int
    overcommitted: int
    closed_nights: int
    utilisation_percent: float | None = strawberry.field(description="Sold / allotment x 100.")
    # A plain value, not a resolver: 18,250 rows (50 room types x 365 days) complete as plain data
    # (app/api/plain.py).
    room_type: RoomType


@strawberry.type(description="Confirmed sales by stay night for one key (and currency), and what was cancelled.")
class RevenueRow:
    key: str = strawberry.field(description="The agency, hotel or HOTEL/ROOM_TYPE code, or YYYY-MM.")
    label: str = strawberry.field(description="Its name.")
    bookings: int = strawberry.field(description="Confirmed booking groups with nights in the range.")
    room_nights: int
    revenue: Money = strawberry.field(description="Sell.")
    cost: Money | None = strawberry.field(description="Net. Staff only; null also when some nights were sold "
                                          "before prices were frozen per night.")
    margin: Money | None = strawberry.field(description="Revenue - cost. Staff only.")
    cancellations: int
    cancelled_room_nights: int
    average_daily_rate: Money | None = strawberry.field(description="Revenue per room night.")

    @staticmethod
    def of(row: reports.RevenueRow) -> RevenueRow:
        def of_amount(amount: Decimal | None) -> Money | None:
            return money(None if amount is None else DomainMoney(amount, row.currency))

        return RevenueRow(key=row.key, label=row.label, bookings=row.bookings, room_nights=row.room_nights,
                          revenue=money(DomainMoney(row.revenue, row.currency)), cost=of_amount(row.cost),
                          margin=of_amount(row.margin), cancellations=row.cancellations,
                          cancelled_room_nights=row.cancelled_room_nights,
                          average_daily_rate=of_amount(row.average_daily_rate))


def pickup_rows(found: list[reports.Pickup]) -> list[PickupRow]:
    return [PickupRow(
        room_nights_blocked=p.figures.blocked, room_nights_picked_up=p.figures.picked_up,
        room_nights_released=p.figures.released, room_nights_remaining=p.figures.remaining,
        pickup_percent=_percent(p.figures.pickup_percent), wash_percent=_percent(p.figures.wash_percent),
        hardblock_id=p.block.id, agency_id=p.block.agency_id, room_type_id=p.block.room_type_id) for p in found]


@strawberry.type
class ReportQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Per hardblock overlapping [from, to): what "
                      "it blocked, what was picked up, released and remains. Agents: their own agency's blocks.")
    async def pickup_report(self, info: Info, from_: Annotated[date, strawberry.argument(name="from")], to: date,
                            hotel_id: strawberry.ID | None = None, agency_id: strawberry.ID | None = None
                            ) -> list[PickupRow]:
        hotel = None if hotel_id is None else filter_pk(hotel_id, "Hotel")
        agency = None if agency_id is None else filter_pk(agency_id, "Agency")
        found = await _call(reports.pickup_report(info.context.services, info.context.caller, hotel, agency, from_, to))
        return pickup_rows(found)

    @strawberry.field(permission_classes=STAFF, description="Per room type and period of [from, to), the "
                      "calendar's numbers added up (room nights); every period is a row.")
    async def utilisation_report(self, info: Info, hotel_id: strawberry.ID,
                                 from_: Annotated[date, strawberry.argument(name="from")], to: date,
                                 group_by: Period) -> list[UtilisationRow]:  # type: ignore[valid-type]
        rows, room_type_rows = await _call(reports.utilisation_report(
            info.context.services, info.context.caller, filter_pk(hotel_id, "Hotel"), from_, to, group_by))
        room_types = {pk: RoomType.from_row(row) for pk, row in room_type_rows.items()}
        return [UtilisationRow(
            from_=r.start, to=r.end, allotment=r.allotment, hardblocked=r.hardblocked, held=r.held, sold=r.sold,
            released=r.released, available=r.available, overcommitted=r.overcommitted, closed_nights=r.closed_nights,
            utilisation_percent=_percent(r.utilisation_percent), room_type=room_types[r.room_type_id]) for r in rows]

    @strawberry.field(permission_classes=AUTHENTICATED, description="Confirmed sales by stay night over [from, to) "
                      "per key, with cancellations; every key is a row. Agents: their own agency's, sell only.")
    async def revenue_report(self, info: Info, from_: Annotated[date, strawberry.argument(name="from")], to: date,
                             group_by: RevenueKey, hotel_id: strawberry.ID | None = None) -> list[RevenueRow]:
        hotel = None if hotel_id is None else filter_pk(hotel_id, "Hotel")
        rows = await _call(reports.revenue_report(info.context.services, info.context.caller, from_, to,
                                                  group_by.value, hotel))
        return [RevenueRow.of(row) for row in rows]

