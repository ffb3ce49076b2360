"""Per-request dataloaders. Each batch opens its own short session: Strawberry resolves sibling
fields concurrently, and one AsyncSession must never serve two coroutines at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import models, queries
from db.hardblocks import BlockGridData, load_block_grids


def _loader(
    sessions: async_sessionmaker[AsyncSession],
    fetch: Callable[[AsyncSession, Sequence[Any]], Awaitable[dict[Any, Any]]],
    missing: Any = None,
) -> DataLoader:
    async def batch(keys: Sequence[Any]) -> list[Any]:
        async with sessions() as session:
            found = await fetch(session, keys)
        return [found.get(key, missing) for key in keys]

    return DataLoader(batch)


def _by_id(model: type) -> Callable[[AsyncSession, Sequence[int]], Awaitable[dict[int, Any]]]:
    return lambda session, ids: queries.rows_by_id(session, model, ids)


async def _block_grids(session: AsyncSession, keys: Sequence[tuple[int, int, date, date]]) -> dict[Any, Any]:
    blocks = await queries.rows_by_id(session, models.Hardblock, [key[1] for key in keys])
    data = await load_block_grids(session, list(blocks.values()), min(key[2] for key in keys),
                                  max(key[3] for key in keys))
    own = _per_block(data)
    return {key: own[key[1]] for key in keys if key[1] in blocks}


def _per_block(data: BlockGridData) -> dict[int, BlockGridData]:
    """Each block's share of a batch: its terms, amendments and bookings (the room types' contracts
    and rate changes shared), so one block's grid does not scan the other blocks' rows."""
    amendments: dict[int, list[Any]] = defaultdict(list)
    bookings: dict[int, list[Any]] = defaultdict(list)
    lines: dict[int, list[Any]] = defaultdict(list)
    for event in data.amendments:
        amendments[event.hardblock_id].append(event)
    for row, line in zip(data.bookings, data.booking_lines, strict=True):
        bookings[row.hardblock_id].append(row)
        lines[row.hardblock_id].append(line)
    return {
        block_id: BlockGridData(terms={block_id: terms}, amendments=amendments[block_id],
                                rate_events=data.rate_events, contracts=data.contracts,
                                bookings=bookings[block_id], booking_lines=lines[block_id])
        for block_id, terms in data.terms.items()
    }


class Loaders:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.agency = _loader(sessions, _by_id(models.Agency))
        self.agency_id_by_code = _loader(sessions, queries.agency_ids_by_code)
        self.hotel = _loader(sessions, _by_id(models.Hotel))
        self.room_type = _loader(sessions, _by_id(models.RoomType))
        self.room_types_by_hotel = _loader(sessions, queries.room_types_by_hotel, missing=())
        self.booking = _loader(sessions, _by_id(models.Booking))
        self.booking_group = _loader(sessions, _by_id(models.BookingGroup))
        self.bookings_by_group = _loader(sessions, queries.bookings_by_group, missing=())
        self.sale_order = _loader(sessions, _by_id(models.SaleOrder))
        self.sale_order_by_group = _loader(sessions, queries.sale_order_by_group)
        self.hardblock = _loader(sessions, _by_id(models.Hardblock))
        self.hardblock_amendment = _loader(sessions, _by_id(models.HardblockAmendment))
        self.amendments_by_block = _loader(sessions, queries.amendments_by_block, missing=())
        self.events_by_amendment = _loader(sessions, queries.events_by_amendment, missing=())
        # (hotel id, block id, start, end) -> the BlockGridData of every block asked for in the batch
        self.block_grid = _loader(sessions, _block_grids)
