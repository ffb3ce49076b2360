"""The catalogue's types (agencies, hotels, room types, contracts), the viewer, and their admin
mutations."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.errors import InvalidInput, LockTimeout, NotFound
from app.api.ids import decode_id, filter_pk
from app.api.pagination import connection
from app.api.policies import CancellationRule, policy_of
from app.api.permissions import ADMIN, AUTHENTICATED, STAFF, Info, require_principal
from app.api.types import LoadedNode, Money, MoneyInput, Role, money, related, schema_type, staff_only
from app.services import catalog, inventory, rateplans
from app.services.notify import endpoints
from app.services.payments import ledger
from app.services.payments.terms import KEEP, TermsChange
from domain import Money as DomainMoney
from domain import PaymentTerms as DomainPaymentTerms
from domain.money import zero

# The currency of an agency's balance before it has any ledger entry or credit limit.
DEFAULT_CURRENCY = "EUR"

PaymentTerms = strawberry.enum(DomainPaymentTerms, name="PaymentTerms",
                               description="PREPAY, DEPOSIT or CREDIT (see Agency.paymentTerms).")

if TYPE_CHECKING:
    from db.models import Agency as AgencyRow
    from db.models import Contract as ContractRow
    from db.models import Hotel as HotelRow
    from db.models import RoomType as RoomTypeRow
else:
    AgencyRow = ContractRow = HotelRow = RoomTypeRow = Any


async def _own_agency_only(info: Info, row: Any) -> bool:
    principal = info.context.principal
    return principal is not None and (principal.is_staff or principal.agency_code == row.code)


@strawberry.type
class Agency(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    tier: str | None = strawberry.field(description="A code rate plans' rules may ask for (e.g. GOLD); null: "
                                        "no tier.")
    contact_email: str | None = strawberry.field(description="Where its emails go (confirmations, release alerts, "
                                                 "holds about to expire); null: none are sent.")

    payment_terms: PaymentTerms = strawberry.field(description="How it pays: PREPAY (all by card before "
                                                   "confirmation), DEPOSIT (depositPercent before, the balance "
                                                   "balanceDueDays before arrival) or CREDIT (within creditLimit).")
    credit_limit: Money | None = strawberry.field(description="CREDIT: what it may owe at most; null: no limit.")
    deposit_percent: int | None = strawberry.field(description="DEPOSIT: the share paid before confirmation.")
    balance_due_days: int | None = strawberry.field(description="DEPOSIT: the balance is due this many days "
                                                    "before arrival.")

    loader = "agency"
    visible = _own_agency_only

    @staticmethod
    def from_row(row: AgencyRow) -> Agency:
        return Agency(id=row.id, code=row.code, name=row.name, tier=row.tier, contact_email=row.contact_email,
                      payment_terms=PaymentTerms(row.payment_terms),
                      credit_limit=None if row.credit_limit is None else Money.of(row.credit_limit, row.credit_currency),
                      deposit_percent=row.deposit_percent, balance_due_days=row.balance_due_days)

    @strawberry.field(description="What it owes (positive) or has paid ahead (negative), summed over its ledger: "
                      "sales, fees and refunds less payments and credit notes; in its credit limit's currency, "
                      "else its ledger's (see balances).")
    async def outstanding(self, info: Info) -> Money:
        balances = await self._balances(info)
        currency = self.credit_limit.currency if self.credit_limit else next(iter(balances), DEFAULT_CURRENCY)
        return money(balances.get(currency, zero(currency)))  # type: ignore[return-value]

    @strawberry.field(description="What it owes per currency it has dealt in (outstanding, one Money each).")
    async def balances(self, info: Info) -> list[Money]:
        return [money(value) for value in (await self._balances(info)).values()]  # type: ignore[misc]

    async def _balances(self, info: Info) -> dict[str, DomainMoney]:
        return ledger.balances(await info.context.loaders.ledger_by_agency.load(self.id))

    @strawberry.field(description="Its webhook endpoints.")
    async def webhook_endpoints(self, info: Info) -> list[Annotated[WebhookEndpoint, strawberry.lazy("app.api.notify")]]:  # noqa: F821
        rows = await endpoints.endpoints_of(info.context.services, info.context.caller, self.id)
        return [schema_type(info, "WebhookEndpoint").from_row(row) for row in rows]


@strawberry.type
class RoomType(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    hotel_id: strawberry.Private[int]

    loader = "room_type"

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.hotel_id)

    @staticmethod
    def from_row(row: RoomTypeRow) -> RoomType:
        return RoomType(id=row.id, code=row.code, name=row.name, hotel_id=row.hotel_id)


@strawberry.type
class Hotel(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    time_zone: str = strawberry.field(description="The hotel's IANA time zone: its nights, release cut-offs and "
                                      "\"today\" are local to it.")
    stored_policy: strawberry.Private[Any] = None

    loader = "hotel"

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
    ) -> Annotated[Calendar, strawberry.lazy("app.api.inventory")]:  # noqa: F821
        return await schema_type(info, "Calendar").read(info, self.id, from_, to, room_type_ids)

    @strawberry.field(description="Its rate plans, by code. Agents see only the plan they buy under.")
    async def rate_plans(self, info: Info) -> list[Annotated[RatePlan, strawberry.lazy("app.api.pricing")]]:  # noqa: F821
        rows = await rateplans.hotel_rate_plans(info.context.services, self.id, await info.context.buyer())
        return [schema_type(info, "RatePlan").from_row(row) for row in rows]

    @staticmethod
    def from_row(row: HotelRow) -> Hotel:
        return Hotel(id=row.id, code=row.code, name=row.name, time_zone=row.time_zone,
                     stored_policy=row.cancellation_rules)

    @strawberry.field(description="Its default cancellation policy (a rate plan's own wins over it); null: none set, "
                      "cancellation is free. Applies to sales confirmed after it was set (setCancellationPolicy).")
    def cancellation_policy(self) -> list[CancellationRule] | None:
        return policy_of(self.stored_policy)


@strawberry.type
class Viewer:
    uid: str
    role: Role
    agency_code: strawberry.Private[str | None]

    @strawberry.field(description="The agency an agent acts for; null for admins and operators.")
    async def agency(self, info: Info) -> Agency | None:
        if self.agency_code is None:
            return None
        row = await catalog.agency_by_code(info.context.services, self.agency_code)
        return Agency.from_row(row) if row is not None and await _own_agency_only(info, row) else None


# The parents of bookings, blocks, contracts and events, through the request's loaders. Only
# called from an entity the caller may already see, so the agency needs no further check.
async def load_agency(info: Info, pk: int) -> Agency:
    return Agency.from_row(await info.context.loaders.agency.load(pk))


async def load_hotel(info: Info, pk: int) -> Hotel:
    return Hotel.from_row(await info.context.loaders.hotel.load(pk))


async def load_room_type(info: Info, pk: int) -> RoomType:
    return RoomType.from_row(await info.context.loaders.room_type.load(pk))


@strawberry.type
class Contract(LoadedNode, relay.Node):
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
    supplier_id: strawberry.Private[int | None] = None

    loader = "contract"
    visible = staff_only  # contracts carry the wholesaler's buying terms

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.room_type_id)

    @strawberry.field(description="The supplier it comes from; null for a contract typed in with upsertContract.")
    async def supplier(self, info: Info) -> Annotated[Supplier, strawberry.lazy("app.api.supply")] | None:  # noqa: F821
        return await related(info, "Supplier", self.supplier_id)

    @strawberry.field(description="SUPPLIER (kept in step by supplier syncs) or MANUAL (typed in).")
    def source(self) -> str:
        return "MANUAL" if self.supplier_id is None else "SUPPLIER"

    @staticmethod
    def from_row(row: ContractRow) -> Contract:
        return Contract(
            id=row.id, external_id=row.external_id, from_=row.start_date, to=row.end_date, allotment=row.allotment,
            rate=Money.of(row.rate_amount, row.currency), release_days=row.release_days, status=row.status,
            terms=row.terms, created_at=row.created_at, updated_at=row.updated_at, hotel_id=row.hotel_id,
            room_type_id=row.room_type_id, supplier_id=row.supplier_id,
        )


@strawberry.input
class CreateAgencyInput:
    code: str
    name: str
    tier: str | None = strawberry.field(default=None, description="E.g. GOLD: rate plans' rules may ask for it.")
    contact_email: str | None = strawberry.field(default=None, description="Where its emails go.")
    payment_terms: PaymentTerms | None = strawberry.field(default=None, description="Default CREDIT.")
    credit_limit: MoneyInput | None = strawberry.field(default=None, description="CREDIT only; left out: no limit.")
    deposit_percent: int | None = strawberry.field(default=None, description="DEPOSIT only (1 to 99), required.")
    balance_due_days: int | None = strawberry.field(default=None, description="DEPOSIT only (0 to 365), required.")

    def terms(self) -> TermsChange:
        return TermsChange(None if self.payment_terms is None else self.payment_terms.value,
                           _limit(self.credit_limit), self.deposit_percent, self.balance_due_days)


@strawberry.input(description="Fields left out stay as they are. When paymentTerms changes, the terms' fields "
                  "left out are cleared (a DEPOSIT's percent means nothing on CREDIT).")
class UpdateAgencyInput:
    id: strawberry.ID
    name: str | None = None
    tier: str | None = strawberry.field(default=None, description="A tier code; \"\" removes the tier.")
    contact_email: str | None = strawberry.field(default=None, description="An email address; \"\" removes it.")
    payment_terms: PaymentTerms | None = None
    credit_limit: MoneyInput | None = strawberry.field(default=strawberry.UNSET, description="null: no limit.")
    deposit_percent: int | None = strawberry.UNSET
    balance_due_days: int | None = strawberry.UNSET

    def terms(self) -> TermsChange:
        def kept(value: Any, convert: Any = lambda v: v) -> Any:
            return KEEP if value is strawberry.UNSET else convert(value)

        return TermsChange(None if self.payment_terms is None else self.payment_terms.value,
                           kept(self.credit_limit, _limit), kept(self.deposit_percent), kept(self.balance_due_days))


def _limit(value: MoneyInput | None) -> tuple[str, str] | None:
    return None if value is None else (value.amount, value.currency)


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
    time_zone: str | None = strawberry.field(
        default=None, description="IANA time zone name (e.g. Europe/Paris); omitted: UTC for a new hotel, "
        "unchanged for an existing one.")


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
UpsertContractResult = Annotated[Contract | InvalidInput | NotFound | LockTimeout,
                                 strawberry.union("UpsertContractResult")]


@strawberry.type
class CatalogQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Agents see their own agency only.")
    async def agencies(self, info: Info) -> list[Agency]:
        return [Agency.from_row(row) for row in await catalog.agencies(info.context.services, info.context.caller)]

    @strawberry.field(permission_classes=AUTHENTICATED)
    async def hotels(self, info: Info) -> list[Hotel]:
        return [Hotel.from_row(row) for row in await catalog.hotels(info.context.services)]

    @strawberry.field(permission_classes=STAFF, description="Full-text `search` over the contract terms.")
    async def contracts(
        self,
        info: Info,
        hotel_id: strawberry.ID | None = None,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> relay.Connection[Contract]:
        hotel_pk = None if hotel_id is None else filter_pk(hotel_id, "Hotel")
        page = await inventory.contracts(info.context.services, hotel_pk, search, first, after)
        return connection(page, Contract.from_row)


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(permission_classes=ADMIN)
    async def create_agency(self, info: Info, input: CreateAgencyInput) -> CreateAgencyResult:
        row = await catalog.create_agency(info.context.services, info.context.caller, input.code, input.name,
                                          input.tier, input.contact_email, input.terms())
        return Agency.from_row(row)

    @strawberry.mutation(permission_classes=ADMIN)
    async def update_agency(self, info: Info, input: UpdateAgencyInput) -> CreateAgencyResult:
        row = await catalog.update_agency(info.context.services, info.context.caller,
                                          decode_id(input.id, "Agency", "id"), input.name, input.tier,
                                          input.contact_email, input.terms())
        return Agency.from_row(row)

    @strawberry.mutation(permission_classes=ADMIN)
    async def upsert_hotel(self, info: Info, input: UpsertHotelInput) -> UpsertHotelResult:
        spec = catalog.HotelSpec(input.code, input.name, [catalog.RoomTypeSpec(rt.code, rt.name)
                                                          for rt in input.room_types], input.time_zone)
        return Hotel.from_row(await catalog.upsert_hotel(info.context.services, info.context.caller, spec))

    @strawberry.mutation(
        permission_classes=ADMIN,
        description="Creates or updates the contract with this externalId; allotment changes take effect "
        "in availability at once (shown as overcommitted if they fall below what is sold).",
    )
    async def upsert_contract(self, info: Info, input: UpsertContractInput) -> UpsertContractResult:
        spec = inventory.ContractSpec(
            external_id=input.external_id, hotel_id=decode_id(input.hotel_id, "Hotel", "hotelId"),
            room_type_id=decode_id(input.room_type_id, "RoomType", "roomTypeId"), start=input.from_, end=input.to,
            allotment=input.allotment, rate=inventory.parse_money(input.rate.amount, input.rate.currency, "rate"),
            release_days=input.release_days, terms=input.terms, status=input.status,
        )
        return Contract.from_row(await inventory.upsert_contract(info.context.services, info.context.caller, spec))


def viewer(info: Info) -> Viewer:
    principal = require_principal(info.context, info)
    return Viewer(uid=principal.uid, role=principal.role, agency_code=principal.agency_code)
