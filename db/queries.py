"""Batch reads by key list, returning dicts (the dataloaders' building blocks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from db.ledger import Sums, ledgers_by_agency
from db.models import (
    Agency,
    AllotmentEvent,
    AuditEntry,
    Booking,
    BookingGroup,
    Contract,
    Hardblock,
    HardblockAmendment,
    Hotel,
    LedgerEntry,
    NightAudit,
    Payment,
    RatePlan,
    RoomType,
    SaleOrder,
    Supplier,
    SyncRun,
    WebhookDelivery,
    WebhookEndpoint,
)

Row = TypeVar("Row", bound=SQLModel)

# Primary keys are PostgreSQL integers: anything outside them names nothing (and must not reach
# a query, where asyncpg would refuse to encode it).
MAX_PK = 2**31 - 1


def bounded_int(text: str, largest: int) -> int | None:
    """`text` as a whole number from 1 to `largest` (ASCII digits only), or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(largest)):
        return None
    value = int(text)
    return value if 0 < value <= largest else None


async def rows_by_id(session: AsyncSession, model: type[Row], ids: Sequence[int]) -> dict[int, Row]:
    if not ids:
        return {}
    result = await session.execute(select(model).where(model.id.in_(list(set(ids)))))  # type: ignore[attr-defined]
    return {row.id: row for row in result.scalars()}


async def rows_grouped_by(
    session: AsyncSession, column: Any, keys: Sequence[Any], order_by: Any
) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    if keys:
        model = column.class_
        result = await session.execute(select(model).where(column.in_(list(set(keys)))).order_by(order_by))
        for row in result.scalars():
            grouped[getattr(row, column.key)].append(row)
    return grouped


async def room_types_by_hotel(session: AsyncSession, hotel_ids: Sequence[int]) -> dict[int, list[RoomType]]:
    return await rows_grouped_by(session, RoomType.hotel_id, hotel_ids, RoomType.code)


async def bookings_by_group(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, list[Booking]]:
    return await rows_grouped_by(session, Booking.group_id, group_ids, Booking.id)


async def sale_order_by_group(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, SaleOrder]:
    return {key: rows[0] for key, rows in (await rows_grouped_by(session, SaleOrder.group_id, group_ids, SaleOrder.id)).items()}


async def payments_by_group(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, list[Payment]]:
    return await rows_grouped_by(session, Payment.group_id, group_ids, Payment.id)


async def _ledger_sums(session: AsyncSession, column: Any, keys: Sequence[int]) -> dict[int, Sums]:
    rows = await session.execute(
        select(column, LedgerEntry.kind, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where(column.in_(list(keys))).group_by(column, LedgerEntry.kind, LedgerEntry.currency))
    out: dict[int, Sums] = {}
    for key, kind, currency, amount in rows:
        out.setdefault(key, []).append((kind, currency, amount))
    return out


async def ledger_by_agency(session: AsyncSession, agency_ids: Sequence[int]) -> dict[int, Sums]:
    return await ledgers_by_agency(session, agency_ids)  # its checkpoint and the entries after it


async def ledger_by_group(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, Sums]:
    return await _ledger_sums(session, LedgerEntry.group_id, group_ids)


async def ledger_by_payment(session: AsyncSession, payment_ids: Sequence[int]) -> dict[int, Sums]:
    return await _ledger_sums(session, LedgerEntry.payment_id, payment_ids)


async def agencies_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, tuple[int, str | None]]:
    """(id, tier) per agency code: who the caller's agency is and what pricing needs of it, in two
    columns (an ORM row costs a subscription's every event several times the query)."""
    result = await session.execute(select(Agency.code, Agency.id, Agency.tier).where(Agency.code.in_(list(set(codes)))))
    return {code: (pk, tier) for code, pk, tier in result}


async def amendments_by_block(session: AsyncSession, block_ids: Sequence[int]) -> dict[int, list[HardblockAmendment]]:
    return await rows_grouped_by(session, HardblockAmendment.hardblock_id, block_ids, HardblockAmendment.id)


async def events_by_amendment(session: AsyncSession, amendment_ids: Sequence[int]) -> dict[int, list[AllotmentEvent]]:
    return await rows_grouped_by(session, AllotmentEvent.amendment_id, amendment_ids, AllotmentEvent.id)


def _by_id(model: type[Row]) -> Any:
    async def fetch(session: AsyncSession, ids: Sequence[int]) -> dict[int, Row]:
        return await rows_by_id(session, model, ids)

    return fetch


# Batch reads by primary key, per table name: what the API's loaders are built from.
BY_ID = {
    model.__tablename__: _by_id(model)  # type: ignore[attr-defined]
    for model in (Agency, Hotel, RoomType, Booking, BookingGroup, SaleOrder, Hardblock, HardblockAmendment,
                  AllotmentEvent, Contract, AuditEntry, Supplier, SyncRun, RatePlan, WebhookEndpoint,
                  WebhookDelivery, NightAudit, Payment)
}
