"""Batch reads by key list, returning dicts (the dataloaders' and the calendar's building blocks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from db.models import RoomType

Row = TypeVar("Row", bound=SQLModel)


async def rows_by_id(session: AsyncSession, model: type[Row], ids: Sequence[int]) -> dict[int, Row]:
    if not ids:
        return {}
    result = await session.execute(select(model).where(model.id.in_(list(set(ids)))))  # type: ignore[attr-defined]
    return {row.id: row for row in result.scalars()}


async def room_types_by_hotel(session: AsyncSession, hotel_ids: Sequence[int]) -> dict[int, list[RoomType]]:
    grouped: dict[int, list[RoomType]] = defaultdict(list)
    if hotel_ids:
        result = await session.execute(
            select(RoomType).where(RoomType.hotel_id.in_(list(set(hotel_ids)))).order_by(RoomType.code)
        )
        for room_type in result.scalars():
            grouped[room_type.hotel_id].append(room_type)
    return grouped
