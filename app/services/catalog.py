"""The catalogue: agencies, hotels and their room types (admin writes, everyone's reads)."""

from __future__ import annotations

import re
from datetime import timedelta
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from app.services.changes import write
from app.services.context import Caller, Services
from app.services.errors import InvalidInput
from app.services.payments.terms import TermsChange, changed_terms, current_terms, store_terms
from db import audit, models
from db.inventory import lock_room_types
from domain import DEFAULT_TIME_ZONE, AgencyTerms, PaymentTerms, check_time_zone, utc_today
from domain.contracts import MAX_RELEASE_DAYS

CODE = re.compile(r"^[A-Z0-9_-]{2,32}$")
ROOM_TYPE_CODE = TIER = re.compile(r"^[A-Z0-9_-]{1,32}$")
MAX_ROOM_TYPES = 200


@dataclass(frozen=True, slots=True)
class RoomTypeSpec:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class HotelSpec:
    code: str
    name: str
    room_types: list[RoomTypeSpec] = field(default_factory=list)  # upserted by code; others are kept
    time_zone: str | None = None  # IANA; None: UTC for a new hotel, the stored one on an update


def code(value: str, field: str, *, shortest: int = 2) -> str:
    """Codes are case-insensitive identifiers, stored upper-case."""
    text = value.strip().upper()
    pattern = CODE if shortest == 2 else ROOM_TYPE_CODE
    if not pattern.match(text):
        raise InvalidInput(field, f"{field} must be {shortest} to 32 characters of A-Z, 0-9, '_' or '-', got {value!r}")
    return text


def name(value: str, field: str = "name") -> str:
    text = value.strip()
    if not text or len(text) > 200:
        raise InvalidInput(field, f"{field} must be 1 to 200 characters")
    return text


def tier(value: str | None) -> str | None:
    """A tier code, stored upper-case; None or "" for no tier."""
    if value is None or not value.strip():
        return None
    text = value.strip().upper()
    if not TIER.match(text):
        raise InvalidInput("tier", f"tier must be 1 to 32 characters of A-Z, 0-9, '_' or '-', got {value!r}")
    return text


EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def email_address(value: str | None) -> str | None:
    """A contact address (an addr-spec, at most 254 characters); None or "" for none."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > 254 or not EMAIL.match(text):
        raise InvalidInput("contactEmail", f"contactEmail must be an email address such as ops@agency.example, got {value!r}")
    return text


async def create_agency(services: Services, caller: Caller, agency_code: str, agency_name: str,
                        agency_tier: str | None = None, contact_email: str | None = None,
                        terms: TermsChange = TermsChange()) -> models.Agency:
    """Create an agency (payment terms CREDIT without a limit unless `terms` say otherwise); a
    retry with the same fields returns it unchanged."""
    agency_code, agency_name, agency_tier = code(agency_code, "code"), name(agency_name), tier(agency_tier)
    contact_email = email_address(contact_email)
    payment = changed_terms(AgencyTerms(PaymentTerms.CREDIT), terms)
    async with write(services) as unit:
        session = unit.session
        existing = (await session.execute(
            select(models.Agency).where(models.Agency.code == agency_code))).scalar_one_or_none()
        if existing is not None:
            if ((existing.name, existing.tier, existing.contact_email, current_terms(existing))
                    != (agency_name, agency_tier, contact_email, payment)):
                raise InvalidInput("code", f"agency {agency_code} already exists (as {existing.name!r}): "
                                   "updateAgency changes it")
            return existing  # a retry: nothing to do
        agency = models.Agency(code=agency_code, name=agency_name, tier=agency_tier, contact_email=contact_email)
        store_terms(agency, payment)
        session.add(agency)
        await session.flush()
        audit.record(session, caller.actor, "agency.created", "Agency", agency.id,
                     after=audit.snapshot(agency, *_AGENCY_FIELDS))
    return agency


_AGENCY_FIELDS = ("code", "name", "tier", "contact_email", "payment_terms", "credit_limit", "credit_currency",
                  "deposit_percent", "balance_due_days")


async def update_agency(services: Services, caller: Caller, agency_id: int, agency_name: str | None,
                        agency_tier: str | None, contact_email: str | None = None,
                        terms: TermsChange = TermsChange()) -> models.Agency:
    """Rename an agency, change its tier, its contact address or its payment terms (None leaves a
    field as it is; "" removes a tier or an address; see TermsChange). Prices and confirmations
    decided after it commits use the new values."""
    new_name = None if agency_name is None else name(agency_name)
    new_email = None if contact_email is None else email_address(contact_email)
    async with write(services) as unit:
        session = unit.session
        agency = await session.get(models.Agency, agency_id, with_for_update=True)
        if agency is None:  # InvalidInput, not NotFound: the API's contract answers CreateAgencyResult
            raise InvalidInput("id", "id: no agency with that id")
        before = audit.snapshot(agency, *_AGENCY_FIELDS)
        if new_name is not None:
            agency.name = new_name
        if agency_tier is not None:
            agency.tier = tier(agency_tier)
        if contact_email is not None:
            agency.contact_email = new_email
        store_terms(agency, changed_terms(current_terms(agency), terms))
        after = audit.snapshot(agency, *_AGENCY_FIELDS)
        if after != before:
            await session.flush()
            audit.record(session, caller.actor, "agency.updated", "Agency", agency.id, before=before, after=after)
    return agency


def _hotel_snapshot(hotel: models.Hotel, room_types: Iterable[models.RoomType]) -> dict:
    return {
        "code": hotel.code,
        "name": hotel.name,
        "timeZone": hotel.time_zone,
        "roomTypes": sorted(({"code": rt.code, "name": rt.name} for rt in room_types), key=lambda rt: rt["code"]),
    }


async def upsert_hotel(services: Services, caller: Caller, spec: HotelSpec) -> models.Hotel:
    """Create or rename a hotel by code, and upsert its room types by code."""
    hotel_code, hotel_name = code(spec.code, "code"), name(spec.name)
    if spec.time_zone is not None and (problem := check_time_zone(spec.time_zone)):
        raise InvalidInput(problem.field, f"{problem.field} {problem.message}, got {spec.time_zone!r}")
    if len(spec.room_types) > MAX_ROOM_TYPES:
        raise InvalidInput("roomTypes", f"a hotel has at most {MAX_ROOM_TYPES} room types, got {len(spec.room_types)}")
    wanted: dict[str, str] = {}
    for index, room_type in enumerate(spec.room_types):
        rt_code = code(room_type.code, f"roomTypes[{index}].code", shortest=1)
        if rt_code in wanted:
            raise InvalidInput(f"roomTypes[{index}].code", f"room type {rt_code} is listed twice")
        wanted[rt_code] = name(room_type.name, f"roomTypes[{index}].name")

    async with write(services) as unit:
        session = unit.session
        hotel = (await session.execute(select(models.Hotel).where(models.Hotel.code == hotel_code))).scalar_one_or_none()
        current: dict[str, models.RoomType] = {}
        if hotel is None:
            hotel = models.Hotel(code=hotel_code, name=hotel_name, time_zone=spec.time_zone or DEFAULT_TIME_ZONE)
            session.add(hotel)
            await session.flush()
            before = None
        else:
            rows = await session.execute(select(models.RoomType).where(models.RoomType.hotel_id == hotel.id))
            current = {row.code: row for row in rows.scalars()}
            before = _hotel_snapshot(hotel, current.values())
            hotel.name = hotel_name
            if spec.time_zone is not None and spec.time_zone != hotel.time_zone:
                # The zone moves every cut-off: under the room types' locks (a booking decides on
                # one zone or the other, never a mix), and published like any inventory change for
                # the nights whose cut-off can be near now.
                await lock_room_types(session, [rt.id for rt in current.values()], services.settings.lock_timeout_ms)
                hotel.time_zone = spec.time_zone
                today = utc_today(models.utcnow())
                unit.touch(hotel.id, [rt.id for rt in current.values()], today - timedelta(days=1),
                           today + timedelta(days=MAX_RELEASE_DAYS + 2))
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
            audit.record(session, caller.actor, action, "Hotel", hotel.id, before=before, after=after)
    return hotel


async def agencies(services: Services, caller: Caller) -> list[models.Agency]:
    """Agents see their own agency only."""
    statement = select(models.Agency).order_by(models.Agency.code)
    if not caller.is_staff:
        statement = statement.where(models.Agency.code == caller.principal.agency_code)
    async with services.sessions() as session:
        return list((await session.execute(statement)).scalars())


async def hotels(services: Services) -> list[models.Hotel]:
    async with services.sessions() as session:
        return list((await session.execute(select(models.Hotel).order_by(models.Hotel.code))).scalars())


async def agency_by_code(services: Services, agency_code: str) -> models.Agency | None:
    async with services.sessions() as session:
        return (await session.execute(
            select(models.Agency).where(models.Agency.code == agency_code))).scalar_one_or_none()
