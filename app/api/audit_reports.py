"""The night audit, staff-only: the closed business days of a hotel and `runNightAudit`."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.exceptions import StrawberryGraphQLError

from app.api.ids import decode_id, filter_pk
from app.api.pagination import connection
from app.api.permissions import STAFF, Info
from app.api.types import LoadedNode, Money, bad_input, related, staff_only
from app.services import night_audit
from app.services.errors import InvalidInput, LockTimeout, NotFound

if TYPE_CHECKING:
    from app.api.catalog import Hotel, RoomType
    from db.models import NightAudit as NightAuditRow
else:
    NightAuditRow = Any


@strawberry.type(description="Something the night audit found wrong, said so an operator can act on it: what, "
                 "where (roomType, date when it is about one) and what to look at.")
class AuditDiscrepancy:
    kind: str
    date: date | None
    detail: str
    room_type_pk: strawberry.Private[int | None]

    @strawberry.field
    async def room_type(self, info: Info) -> Annotated[RoomType, strawberry.lazy("app.api.catalog")] | None:  # noqa: F821
        return await related(info, "RoomType", self.room_type_pk)


@strawberry.type(description="A hotel's business day, closed once by the night audit (immutable): the night's "
                 "figures and every inconsistency found. Revenue is the night's sell prices of confirmed bookings.")
class NightAudit(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    business_date: date
    closed_at: datetime
    room_nights_sold: int
    revenue: Money
    arrivals: int = strawberry.field(description="Rooms of confirmed bookings arriving on the business date.")
    departures: int = strawberry.field(description="Rooms of confirmed bookings leaving on the business date.")
    holds_expired: int = strawberry.field(description="Holds that lapsed during the hotel-local day.")
    overcommitted_cells: int = strawberry.field(description="Room types committed beyond their allotment that night.")
    discrepancies: list[AuditDiscrepancy]
    hotel_pk: strawberry.Private[int]

    loader = "night_audit"
    visible = staff_only

    @strawberry.field
    async def hotel(self, info: Info) -> Annotated[Hotel, strawberry.lazy("app.api.catalog")]:  # noqa: F821
        return await related(info, "Hotel", self.hotel_pk)

    @staticmethod
    def from_row(row: NightAuditRow) -> NightAudit:
        return NightAudit(
            id=row.id, business_date=row.business_date, closed_at=row.closed_at,
            room_nights_sold=row.room_nights_sold, revenue=Money.of(row.revenue_amount, row.revenue_currency),
            arrivals=row.arrivals, departures=row.departures, holds_expired=row.holds_expired,
            overcommitted_cells=row.overcommitted_cells, hotel_pk=row.hotel_id,
            discrepancies=[AuditDiscrepancy(kind=d["kind"], date=None if d.get("date") is None else
                                            date.fromisoformat(d["date"]), detail=d["detail"],
                                            room_type_pk=d.get("roomTypeId")) for d in row.discrepancies],
        )


@strawberry.type
class AuditReportQuery:
    @strawberry.field(permission_classes=STAFF, description="The hotel's night audits, newest closed first; "
                      "[from, to) narrows their business dates.")
    async def night_audits(self, info: Info, hotel_id: strawberry.ID,
                           from_: Annotated[date | None, strawberry.argument(name="from")] = None,
                           to: date | None = None, first: int | None = None,
                           after: str | None = None) -> relay.Connection[NightAudit]:
        pk = filter_pk(hotel_id, "Hotel")
        page = await night_audit.night_audits(info.context.services, pk, from_, to, first, after)
        return connection(page, NightAudit.from_row)


@strawberry.type
class AuditReportMutation:
    @strawberry.mutation(permission_classes=STAFF, description="Closes the hotel's business date now (once it "
                         "is over in the hotel's time zone), or returns the audit that already closed it.")
    async def run_night_audit(self, info: Info, hotel_id: strawberry.ID, business_date: date) -> NightAudit:
        # The contract answers NightAudit!: a refusal is a top-level client error, not a union member.
        try:
            pk = decode_id(hotel_id, "Hotel", "hotelId")
            row = await night_audit.run_night_audit(info.context.services, info.context.caller, pk, business_date)
        except (InvalidInput, NotFound) as failure:
            raise bad_input(failure.message) from None
        except LockTimeout as failure:
            raise StrawberryGraphQLError(f"{failure}; retry the request", extensions={"code": "LOCK_TIMEOUT"}) from None
        return NightAudit.from_row(row)

