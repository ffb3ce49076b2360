"""Demo data, so GraphiQL shows real numbers on a fresh database.

Two steps. The catalogue (agencies, hotels, room types, a year of contracts) is written directly
through the models in one transaction. The activity on it (hardblocks, their amendments and
releases, booking groups held, confirmed and cancelled) goes through the GraphQL schema
in-process as an admin, so it takes the same locks, checks, audit entries and version bumps
as the API; a hotel gets it only while it has no hardblock and no booking, so seeding twice
(`--force`) adds nothing. Its dates are relative to today: blocks start three weeks ahead, so
no release cut-off has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from db import audit, models
from db.audit import Actor
from db.engine import create_engine, session_factory, transaction

SEED_ACTOR = Actor(uid="seed", role="system")
SEED_UID = "seed"  # the admin principal the activity is written as
# Demo holds stay HELD this long (the API's default is 15 minutes), so GraphiQL shows them.
DEMO_HOLD_MINUTES = 30 * 24 * 60

AGENCIES = [("SUNTRAVEL", "Sun Travel Partners"), ("BLUEWAVE", "Blue Wave Tours"), ("NORDIC", "Nordic Getaways"),
            ("CITYBREAK", "City Break Direct"), ("ATLAS", "Atlas Journeys")]
# The agency at a better tier: the demo plans give GOLD agencies 8 % off.
AGENCY_TIERS = {"NORDIC": "GOLD"}
# Payment terms other than CREDIT without a limit (the default): an agency that pays by card
# before confirmation, one that pays a deposit, and a credit limit.
AGENCY_TERMS: dict[str, dict[str, Any]] = {
    "CITYBREAK": {"payment_terms": "PREPAY"},
    "ATLAS": {"payment_terms": "DEPOSIT", "deposit_percent": 30, "balance_due_days": 14},
    "NORDIC": {"credit_limit": Decimal("50000.00"), "credit_currency": "EUR"},
}
# The demo hotels' default cancellation policy: free until 15 days before arrival, then 25 %, and
# the whole stay from 2 days before.
CANCELLATION_RULES = [{"days_before_arrival": 14, "fee_percent": 25}, {"days_before_arrival": 2, "fee_percent": 100}]

# (code, name, [(room type code, name, allotment, low-season rate, release days)], currency)
HOTELS = [
    (
        "LIS-RIVER",
        "Lisbon Riverside Hotel",
        [
            ("STD", "Standard Double", 20, "89.00", 7),
            ("SUP", "Superior River View", 12, "129.00", 7),
            ("DLX", "Deluxe Suite", 4, "249.00", 14),
            ("FAM", "Family Room", 6, "159.00", 7),
        ],
        "EUR",
    ),
    (
        "OPO-OLD",
        "Porto Old Town Inn",
        [
            ("STD", "Standard Twin", 15, "72.00", 3),
            ("DBL", "Double with Balcony", 10, "95.00", 3),
            ("STE", "Douro Suite", 3, "210.00", 10),
        ],
        "EUR",
    ),
]

TERMS = {
    "low": "Low season. Breakfast included. Free cancellation until {release} days before arrival; "
    "no-shows are charged the first night. Non-smoking rooms.",
    "high": "High season (summer). Breakfast included. Minimum stay 2 nights; free cancellation until "
    "{release} days before arrival. City tax payable at the hotel.",
}


def demo_rate_plan(hotel_id: str, hotel_code: str, today: date) -> dict[str, Any]:
    """The demo plan of a hotel, for every agency: the seasons and events of a wholesaler's year.
    Rules apply by priority, each on the price so far (the contract's net to begin with)."""
    high = next((a, b) for season, a, b in _season_ranges(today) if season == "high")
    new_year = date(today.year if today < date(today.year, 12, 31) else today.year + 1, 12, 31)
    return {
        "hotelId": hotel_id, "code": "STANDARD", "name": f"{hotel_code} standard selling prices",
        "rules": [
            {"name": "Wholesale margin", "priority": 10, "percent": "18"},
            {"name": "High season", "priority": 20, "percent": "12",
             "when": {"from": high[0].isoformat(), "to": high[1].isoformat()}},
            {"name": "New Year's Eve", "priority": 30, "amount": {"amount": "60.00", "currency": "EUR"},
             "when": {"from": new_year.isoformat(), "to": (new_year + timedelta(days=1)).isoformat()}},
            {"name": "Weekend", "priority": 40, "percent": "15", "when": {"weekdays": [5, 6]}},
            {"name": "7+ nights", "priority": 50, "percent": "-10", "per": "STAY", "when": {"minNights": 7}},
            {"name": "Gold partner", "priority": 60, "percent": "-8", "when": {"agencyTiers": ["GOLD"]}},
        ],
    }


def _season_ranges(today: date) -> list[tuple[str, date, date]]:
    """A year from the first of this month: low season, summer high season, low season again."""
    start = today.replace(day=1)
    end = start.replace(year=start.year + 1)
    summer_start, summer_end = date(start.year, 6, 1), date(start.year, 9, 1)
    if summer_end <= start:
        summer_start, summer_end = date(start.year + 1, 6, 1), date(start.year + 1, 9, 1)
    ranges = [("low", start, summer_start), ("high", summer_start, summer_end), ("low", summer_end, end)]
    return [(season, max(a, start), min(b, end)) for season, a, b in ranges if max(a, start) < min(b, end)]


async def seed_demo(
    database_url: str, *, force: bool = False, today: date | None = None, settings: Settings | None = None
) -> bool:
    """Seed the demo catalogue and its activity; does nothing (returns False) when hotels exist,
    unless `force`, which adds only what is missing. Returns whether anything was added."""
    today = today or date.today()
    engine = create_engine(database_url, pool_size=2)
    try:
        sessions = session_factory(engine)
        async with transaction(sessions) as session:
            if not force and (await session.execute(select(models.Hotel.id).limit(1))).first():
                return False
            created = await _seed_catalogue(session, today)
        activity = await _seed_activity(sessions, database_url, settings, today)
        return await _seed_suppliers(sessions, database_url, settings) or activity or created
    finally:
        await engine.dispose()


async def _create_if_code_is_new(session: AsyncSession, model: type[Any], code: str, name: str) -> Any | None:
    """A new agency or hotel (`model`) with `code` and `name`, audited as created by the seed; None
    when one with that code exists already, so seeding again adds nothing."""
    if (await session.execute(select(model).where(model.code == code))).first():
        return None
    row = model(code=code, name=name)
    session.add(row)
    await session.flush()
    audit.record(session, SEED_ACTOR, f"{model.__name__.lower()}.created", model.__name__, row.id,
                 after=audit.snapshot(row, "code", "name"))
    return row


async def _seed_catalogue(session: AsyncSession, today: date) -> bool:
    """Agencies, hotels, room types and contracts that do not exist yet (by code)."""
    created = False
    for code, name in AGENCIES:
        agency = await _create_if_code_is_new(session, models.Agency, code, name)
        if agency is not None:
            created = True
            changes = {**({"tier": AGENCY_TIERS[code]} if code in AGENCY_TIERS else {}), **AGENCY_TERMS.get(code, {})}
            if changes:
                before = audit.snapshot(agency, *changes)
                for field, value in changes.items():
                    setattr(agency, field, value)
                audit.record(session, SEED_ACTOR, "agency.updated", "Agency", agency.id,
                             before=before, after=audit.snapshot(agency, *changes))
    for hotel_code, hotel_name, room_types, currency in HOTELS:
        hotel = await _create_if_code_is_new(session, models.Hotel, hotel_code, hotel_name)
        if hotel is None:
            continue
        created = True
        hotel.cancellation_rules = CANCELLATION_RULES
        audit.record(session, SEED_ACTOR, "hotel.cancellation_policy_set", "Hotel", hotel.id,
                     before=None, after={"rules": CANCELLATION_RULES})
        for rt_code, rt_name, allotment, rate, release_days in room_types:
            room_type = models.RoomType(hotel_id=hotel.id, code=rt_code, name=rt_name)
            session.add(room_type)
            await session.flush()
            for season, start, end in _season_ranges(today):
                high = season == "high"
                contract = models.Contract(
                    external_id=f"{hotel_code}-{rt_code}-{start:%Y%m%d}",
                    hotel_id=hotel.id,
                    room_type_id=room_type.id,
                    start_date=start,
                    end_date=end,
                    allotment=allotment + (allotment // 4 if high else 0),
                    rate_amount=Decimal(rate) * (Decimal("1.35") if high else 1),
                    currency=currency,
                    release_days=release_days,
                    terms=TERMS[season].format(release=release_days),
                )
                contract.rate_amount = contract.rate_amount.quantize(Decimal("0.01"))
                session.add(contract)
                await session.flush()
                audit.record(session, SEED_ACTOR, "contract.created", "Contract", contract.id,
                             after={"externalId": contract.external_id, "from": start.isoformat(),
                                    "to": end.isoformat(), "allotment": contract.allotment,
                                    "rate": str(contract.rate_amount), "currency": currency})
        session.add(models.InventoryVersion(hotel_id=hotel.id, version=1))
    return created



# --- the activity: hardblocks and bookings, written through the GraphQL schema ------------------

Nights = tuple[int, int, int]  # (first night, day after the last night) as days after today, rooms


@dataclass(frozen=True)
class DemoBlock:
    name: str  # how the bookings below refer to it
    hotel: str
    room_type: str
    agency: str
    start: int  # days after today
    nights: int
    rooms: int
    release_days: int
    amendments: tuple[tuple[str, tuple[Nights, ...]], ...] = ()  # (reason, changes)
    returned: tuple[Nights, str] | None = None  # give `rooms` rooms back on [from, to), reason
    extend: int = 0  # bulkExtendHardblocks by this many nights
    released_nights: tuple[int, ...] = ()  # after the bookings
    released: bool = False  # the whole block, after the bookings


@dataclass(frozen=True)
class DemoBooking:
    key: str  # the idempotency key
    agency: str
    guest: str
    status: str  # HELD, CONFIRMED (with a sale order) or CANCELLED (confirmed, then cancelled)
    items: tuple[tuple[str, int, int, int, str | None], ...] = field(default=())
    # items: (room type, check-in as days after today, nights, rooms, block name or None for the pool)


BLOCKS = {
    "LIS-RIVER": [
        DemoBlock("lis-suntravel-std", "LIS-RIVER", "STD", "SUNTRAVEL", 21, 14, 5, 7,
                  amendments=(("Lisbon congress week: two more rooms", ((25, 29, 7),)),), extend=3),
        DemoBlock("lis-bluewave-sup", "LIS-RIVER", "SUP", "BLUEWAVE", 28, 10, 4, 7,
                  returned=((34, 38, 2), "Tour operator cut the group for the last nights"),
                  released_nights=(36, 37)),
        DemoBlock("lis-nordic-fam", "LIS-RIVER", "FAM", "NORDIC", 30, 5, 2, 7, released=True),
    ],
    "OPO-OLD": [
        DemoBlock("opo-nordic-std", "OPO-OLD", "STD", "NORDIC", 35, 14, 4, 3,
                  amendments=(("Festival weekend up, last nights handed back", ((38, 41, 6), (46, 49, 2))),)),
        DemoBlock("opo-suntravel-dbl", "OPO-OLD", "DBL", "SUNTRAVEL", 21, 7, 3, 3),
        DemoBlock("opo-bluewave-std", "OPO-OLD", "STD", "BLUEWAVE", 42, 7, 2, 3,
                  amendments=(("Two more nights at the end of the tour", ((49, 51, 2),)),)),
    ],
}

BOOKINGS = {
    "LIS-RIVER": [
        DemoBooking("demo-lis-1", "SUNTRAVEL", "Maria Santos", "HELD", (("STD", 22, 3, 2, "lis-suntravel-std"),)),
        DemoBooking("demo-lis-2", "SUNTRAVEL", "Jonas Berg", "CONFIRMED", (("STD", 26, 3, 3, "lis-suntravel-std"),)),
        DemoBooking("demo-lis-3", "BLUEWAVE", "Hans Müller", "CONFIRMED",
                    (("SUP", 29, 2, 2, "lis-bluewave-sup"), ("DLX", 29, 2, 1, None))),
        DemoBooking("demo-lis-4", "NORDIC", "Ingrid Holm", "CONFIRMED", (("FAM", 31, 2, 1, "lis-nordic-fam"),)),
        DemoBooking("demo-lis-5", "NORDIC", "Erik Lund", "HELD", (("STD", 23, 4, 2, None),)),
        DemoBooking("demo-lis-6", "BLUEWAVE", "Claire Dubois", "CANCELLED", (("SUP", 24, 2, 1, None),)),
    ],
    "OPO-OLD": [
        DemoBooking("demo-opo-1", "NORDIC", "Astrid Nilsson", "HELD", (("STD", 36, 3, 2, "opo-nordic-std"),)),
        DemoBooking("demo-opo-2", "NORDIC", "Lars Eriksen", "CONFIRMED", (("STD", 39, 2, 4, "opo-nordic-std"),)),
        DemoBooking("demo-opo-3", "SUNTRAVEL", "Ana Costa", "CONFIRMED",
                    (("DBL", 22, 3, 1, "opo-suntravel-dbl"), ("STE", 22, 3, 1, None))),
        DemoBooking("demo-opo-4", "SUNTRAVEL", "Pedro Alves", "HELD", (("DBL", 25, 2, 2, "opo-suntravel-dbl"),)),
        DemoBooking("demo-opo-5", "BLUEWAVE", "Sophie Martin", "CONFIRMED", (("STD", 23, 3, 3, None),)),
        DemoBooking("demo-opo-6", "BLUEWAVE", "Tom Becker", "HELD", (("STD", 49, 2, 1, "opo-bluewave-std"),)),
    ],
}

_FAILURE = "... on UserError { message code }"
_CREATE_BLOCK = f"""mutation($input: CreateHardblockInput!) {{ result: createHardblock(input: $input) {{
  __typename ... on Hardblock {{ id }} {_FAILURE} }} }}"""
_AMEND = f"""mutation($input: HardblockAmendmentInput!) {{ result: amendHardblock(input: $input) {{
  __typename {_FAILURE} }} }}"""
_RETURN = f"""mutation($input: ReturnHardblockRoomsInput!) {{ result: returnHardblockRooms(input: $input) {{
  __typename {_FAILURE} }} }}"""
_EXTEND = f"""mutation($ids: [ID!]!, $nights: Int!) {{ result: bulkExtendHardblocks(ids: $ids, nights: $nights) {{
  __typename {_FAILURE} }} }}"""
_RELEASE_NIGHTS = f"""mutation($id: ID!, $dates: [Date!]!) {{ result: releaseHardblockNights(id: $id, dates: $dates) {{
  __typename {_FAILURE} }} }}"""
_RELEASE = f"mutation($id: ID!) {{ result: releaseHardblock(id: $id) {{ __typename {_FAILURE} }} }}"
_CREATE_BOOKING = f"""mutation($input: CreateBookingInput!) {{ result: createBooking(input: $input) {{
  __typename ... on BookingGroup {{ id status }} {_FAILURE} }} }}"""
_UPSERT_RATE_PLAN = f"""mutation($input: UpsertRatePlanInput!) {{ result: upsertRatePlan(input: $input) {{
  __typename {_FAILURE} }} }}"""
_SET_RESTRICTIONS = f"""mutation($input: SetRestrictionsInput!) {{ result: setRestrictions(input: $input) {{
  __typename {_FAILURE} }} }}"""
_CONFIRM = f"mutation($id: ID!) {{ result: confirmBooking(groupId: $id) {{ __typename {_FAILURE} }} }}"
_CANCEL = f"""mutation($id: ID!, $reason: String) {{ result: cancelBooking(groupId: $id, reason: $reason) {{
  __typename {_FAILURE} }} }}"""


class SeedError(RuntimeError):
    pass


async def _no_broadcast(channel: str, message: str) -> None:
    """Nobody subscribes to a seed: its writes' after-commit messages go nowhere (their outbox
    rows are relayed by the server's relay when it runs)."""


class _Api:
    """The GraphQL schema executed in-process as the seed's admin principal, one request per call."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        from app.api.schema import build_schema
        from app.auth import Principal, Role
        from app.services.changes import OutboxRelay
        from app.services.context import Services, raw_pool

        self.schema = build_schema(settings)
        self.services = Services(settings, sessions, OutboxRelay(sessions, _no_broadcast), raw_pool(settings))
        self.principal = Principal(uid=SEED_UID, role=Role.ADMIN, agency_code=None)

    async def __call__(self, document: str, expect: str, **variables: Any) -> Any:
        from app.api.context import Context

        context = Context(services=self.services, verifier=None, broadcast=None,  # type: ignore[arg-type]
                          principal=self.principal)
        result = await self.schema.execute(document, variable_values=variables, context_value=context)
        if result.errors:
            raise SeedError(f"demo data: {result.errors[0].message}")
        payload = result.data["result"]
        for value in payload if isinstance(payload, list) else [payload]:
            if value["__typename"] != expect:
                raise SeedError(f"demo data: expected {expect}, got {value['__typename']}: {value.get('message')}")
        return payload


# The demo's suppliers: the simulator `staysync serve` starts in development (DEMO_SUPPLIER_SIM),
# and a drop folder. Their secrets are demo values, for the README's examples only.
DEMO_SUPPLIER_KEY = "demo-supplier-key"
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldC0zMmJ5dGVzLWxvbmch"
_UPSERT_SUPPLIER = "mutation($input: UpsertSupplierInput!) { result: upsertSupplier(input: $input) { __typename } }"


async def _seed_suppliers(sessions: async_sessionmaker[AsyncSession], database_url: str,
                          settings: Settings | None) -> bool:
    """An HTTP supplier on the demo simulator and a FILE supplier on `.data/supplier-drop/`, when
    there are no suppliers yet."""
    from app.settings import get_settings

    async with sessions() as session:
        if (await session.execute(select(models.Supplier.id).limit(1))).first():
            return False
    settings = (settings or get_settings()).model_copy(update={"database_url": database_url})
    drop = settings.data_dir / "supplier-drop"
    drop.mkdir(parents=True, exist_ok=True)
    api = _Api(settings, sessions)
    try:
        await api(_UPSERT_SUPPLIER, "Supplier", input={
            "code": "MHG", "name": "MHG hotel supplier (demo simulator)", "kind": "HTTP",
            "baseUrl": settings.demo_supplier_url, "apiKey": DEMO_SUPPLIER_KEY, "webhookSecret": DEMO_WEBHOOK_SECRET,
            "confirmIncreasesAfter": 2})
        await api(_UPSERT_SUPPLIER, "Supplier", input={
            "code": "DROP", "name": "Drop-folder supplier (demo)", "kind": "FILE", "dropDir": str(drop),
            "confirmIncreasesAfter": 1})
    finally:
        await api.services.raw.close()
    return True


async def _fresh_hotels(session: AsyncSession) -> list[models.Hotel]:
    """The demo hotels that have no hardblock and no booking yet."""
    busy = or_(
        exists().where(models.Hardblock.hotel_id == models.Hotel.id),
        exists().where(models.Booking.hotel_id == models.Hotel.id),
    )
    codes = [code for code in BLOCKS]
    return list((await session.execute(
        select(models.Hotel).where(models.Hotel.code.in_(codes), ~busy).order_by(models.Hotel.code)
    )).scalars())


async def _seed_activity(
    sessions: async_sessionmaker[AsyncSession], database_url: str, settings: Settings | None, today: date
) -> bool:
    from app.api.ids import to_global_id
    from app.settings import get_settings

    async with sessions() as session:
        hotels = await _fresh_hotels(session)
        if not hotels:
            return False
        agencies = {a.code: to_global_id("Agency", a.id)
                    for a in (await session.execute(select(models.Agency))).scalars()}
        room_types = {
            (hotel.code, rt.code): to_global_id("RoomType", rt.id)
            for hotel in hotels
            for rt in (await session.execute(
                select(models.RoomType).where(models.RoomType.hotel_id == hotel.id))).scalars()
        }
    settings = (settings or get_settings()).model_copy(
        update={"database_url": database_url, "booking_expiry_minutes": DEMO_HOLD_MINUTES})
    api = _Api(settings, sessions)
    try:

        def day(offset: int) -> str:
            return (today + timedelta(days=offset)).isoformat()

        def changes(nights: tuple[Nights, ...]) -> list[dict[str, Any]]:
            return [{"from": day(a), "to": day(b), "rooms": rooms} for a, b, rooms in nights]

        for hotel in hotels:
            await api(_UPSERT_RATE_PLAN, "RatePlan",
                      input=demo_rate_plan(to_global_id("Hotel", hotel.id), hotel.code, today))
            # What the high-season contracts' terms say: a minimum stay of 2 nights.
            high = next(((a, b) for season, a, b in _season_ranges(today) if season == "high"), None)
            for (hotel_code, _), room_type_id in room_types.items():
                if hotel_code == hotel.code and high is not None:
                    await api(_SET_RESTRICTIONS, "AllotmentEvent", input={
                        "roomTypeId": room_type_id, "from": high[0].isoformat(), "to": high[1].isoformat(),
                        "minStay": 2})
            ids: dict[str, str] = {}
            for block in BLOCKS[hotel.code]:
                created = await api(_CREATE_BLOCK, "Hardblock", input={
                    "agencyId": agencies[block.agency], "roomTypeId": room_types[hotel.code, block.room_type],
                    "from": day(block.start), "to": day(block.start + block.nights), "rooms": block.rooms,
                    "releaseDays": block.release_days,
                })
                ids[block.name] = created["id"]
                for reason, nights in block.amendments:
                    await api(_AMEND, "Hardblock", input={"hardblockId": ids[block.name], "reason": reason,
                                                          "changes": changes(nights)})
                if block.returned:
                    (a, b, rooms), reason = block.returned
                    await api(_RETURN, "Hardblock", input={"hardblockId": ids[block.name], "from": day(a), "to": day(b),
                                                           "rooms": rooms, "reason": reason})
                if block.extend:
                    await api(_EXTEND, "Hardblock", ids=[ids[block.name]], nights=block.extend)
            for booking in BOOKINGS[hotel.code]:
                group = await api(_CREATE_BOOKING, "BookingGroup", input={
                    "idempotencyKey": booking.key, "agencyId": agencies[booking.agency], "guestName": booking.guest,
                    "items": [{"roomTypeId": room_types[hotel.code, rt], "checkIn": day(check_in),
                               "checkOut": day(check_in + nights), "rooms": rooms,
                               "hardblockId": ids[block] if block else None}
                              for rt, check_in, nights, rooms, block in booking.items],
                })
                if booking.status in ("CONFIRMED", "CANCELLED") and group["status"] == "HELD":
                    await api(_CONFIRM, "SaleOrder", id=group["id"])
                if booking.status == "CANCELLED":
                    await api(_CANCEL, "BookingGroup", id=group["id"], reason="Guest changed plans")
            for block in BLOCKS[hotel.code]:
                if block.released_nights:
                    await api(_RELEASE_NIGHTS, "Hardblock", id=ids[block.name],
                              dates=[day(n) for n in block.released_nights])
                if block.released:
                    await api(_RELEASE, "Hardblock", id=ids[block.name])
    finally:
        await api.services.raw.close()
    return True
