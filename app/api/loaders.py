"""Per-request dataloaders. Each batch opens its own short session: Strawberry resolves sibling
fields concurrently, and one AsyncSession must never serve two coroutines at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import models, queries


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
