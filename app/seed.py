"""Demo data, so GraphiQL shows real numbers on a fresh database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from db import audit, models
from db.audit import Actor
from db.engine import create_engine, session_factory, transaction

SEED_ACTOR = Actor(uid="seed", role="system")

AGENCIES = [("SUNTRAVEL", "Sun Travel Partners"), ("BLUEWAVE", "Blue Wave Tours"), ("NORDIC", "Nordic Getaways")]

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


def _season_ranges(today: date) -> list[tuple[str, date, date]]:
    """A year from the first of this month: low season, summer high season, low season again."""
    start = today.replace(day=1)
    end = start.replace(year=start.year + 1)
    summer_start, summer_end = date(start.year, 6, 1), date(start.year, 9, 1)
    if summer_end <= start:
        summer_start, summer_end = date(start.year + 1, 6, 1), date(start.year + 1, 9, 1)
    ranges = [("low", start, summer_start), ("high", summer_start, summer_end), ("low", summer_end, end)]
    return [(season, max(a, start), min(b, end)) for season, a, b in ranges if max(a, start) < min(b, end)]


async def seed_demo(database_url: str, *, force: bool = False, today: date | None = None) -> bool:
    """Seed the demo catalogue; does nothing (returns False) when hotels exist, unless `force`."""
    today = today or date.today()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            if not force and (await session.execute(select(models.Hotel.id).limit(1))).first():
                return False
            for code, name in AGENCIES:
                if (await session.execute(select(models.Agency).where(models.Agency.code == code))).first():
                    continue
                agency = models.Agency(code=code, name=name)
                session.add(agency)
                await session.flush()
                audit.record(session, SEED_ACTOR, "agency.created", "Agency", agency.id,
                             after=audit.snapshot(agency, "code", "name"))
            for hotel_code, hotel_name, room_types, currency in HOTELS:
                if (await session.execute(select(models.Hotel).where(models.Hotel.code == hotel_code))).first():
                    continue
                hotel = models.Hotel(code=hotel_code, name=hotel_name)
                session.add(hotel)
                await session.flush()
                audit.record(session, SEED_ACTOR, "hotel.created", "Hotel", hotel.id,
                             after={"code": hotel_code, "name": hotel_name})
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
        return True
    finally:
        await engine.dispose()

