"""Per-request dataloaders. Each batch opens its own short session: Strawberry resolves sibling
fields concurrently, and one AsyncSession must never serve two coroutines at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.models import Agency, Hotel, RoomType

K = TypeVar("K")


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


class Loaders:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.agency = _loader(sessions, lambda s, ids: queries.rows_by_id(s, Agency, ids))
        self.hotel = _loader(sessions, lambda s, ids: queries.rows_by_id(s, Hotel, ids))
        self.room_type = _loader(sessions, lambda s, ids: queries.rows_by_id(s, RoomType, ids))
        self.room_types_by_hotel = _loader(sessions, queries.room_types_by_hotel, missing=())
