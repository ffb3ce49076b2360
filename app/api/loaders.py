"""Per-request dataloaders over the batch reads of `db.queries` and `app.services.reads`. Each
batch opens its own short session: Strawberry resolves sibling fields concurrently, and one
session must never serve two coroutines at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiodataloader import DataLoader

from app.services.reads import block_grids
from db import queries

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from db.engine import Sessions


def _loader(
    sessions: Sessions,
    fetch: Callable[[AsyncSession, Sequence[Any]], Awaitable[dict[Any, Any]]],
    missing: Any = None,
) -> DataLoader:
    async def batch(keys: Sequence[Any]) -> list[Any]:
        async with sessions() as session:
            found = await fetch(session, keys)
        return [found.get(key, missing) for key in keys]

    return DataLoader(batch)


class Loaders:
    def __init__(self, sessions: Sessions) -> None:
        by_id = queries.BY_ID
        self.agency = _loader(sessions, by_id["agency"])
        self.agency_by_code = _loader(sessions, queries.agencies_by_code)  # (id, tier)
        self.hotel = _loader(sessions, by_id["hotel"])
        self.room_type = _loader(sessions, by_id["room_type"])
        self.room_types_by_hotel = _loader(sessions, queries.room_types_by_hotel, missing=())
        self.booking = _loader(sessions, by_id["booking"])
        self.booking_group = _loader(sessions, by_id["booking_group"])
        self.bookings_by_group = _loader(sessions, queries.bookings_by_group, missing=())
        self.sale_order = _loader(sessions, by_id["sale_order"])
        self.sale_order_by_group = _loader(sessions, queries.sale_order_by_group)
        self.hardblock = _loader(sessions, by_id["hardblock"])
        self.hardblock_amendment = _loader(sessions, by_id["hardblock_amendment"])
        self.amendments_by_block = _loader(sessions, queries.amendments_by_block, missing=())
        self.events_by_amendment = _loader(sessions, queries.events_by_amendment, missing=())
        self.allotment_event = _loader(sessions, by_id["allotment_event"])
        self.contract = _loader(sessions, by_id["contract"])
        self.audit_entry = _loader(sessions, by_id["audit_log"])
        self.night_audit = _loader(sessions, by_id["night_audit"])
        self.supplier = _loader(sessions, by_id["supplier"])
        self.sync_run = _loader(sessions, by_id["sync_run"])
        self.rate_plan = _loader(sessions, by_id["rate_plan"])
        self.webhook_endpoint = _loader(sessions, by_id["webhook_endpoint"])
        self.webhook_delivery = _loader(sessions, by_id["webhook_delivery"])
        self.payment = _loader(sessions, by_id["payment"])
        self.payments_by_group = _loader(sessions, queries.payments_by_group, missing=())
        # Ledger sums per (kind, currency): balances are sums over the ledger, never counters.
        self.ledger_by_agency = _loader(sessions, queries.ledger_by_agency, missing=())
        self.ledger_by_group = _loader(sessions, queries.ledger_by_group, missing=())
        self.ledger_by_payment = _loader(sessions, queries.ledger_by_payment, missing=())
        # (hotel id, block id, start, end) -> the BlockGridData of every block asked for in the batch
        self.block_grid = _loader(sessions, block_grids)
