"""Keyset pagination behind Relay connections (`first`/`after`, opaque cursors)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Select, false
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import bounded_int

T = TypeVar("T")

DEFAULT_PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{pk}".encode()).decode()


def decode_cursor(cursor: str, key: Any) -> int | None:
    """The key after which a page starts; None for a string that is not one of our cursors
    (including numbers the key's column cannot hold: they must never reach a query)."""
    try:
        kind, _, pk = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    largest = 2**63 - 1 if isinstance(key.type, BigInteger) else 2**31 - 1
    return bounded_int(pk, largest) if kind == "cursor" else None


def page_size(first: int | None) -> int:
    """`first`, within [0, MAX_PAGE] (a larger request gets the largest page)."""
    return DEFAULT_PAGE if first is None else min(max(first, 0), MAX_PAGE)


async def paginate(
    session: AsyncSession, statement: Select[Any], key: Any, *, first: int | None, after: str | None,
    descending: bool = False,
) -> Page[Any]:
    """Run `statement` (selecting one model) ordered by `key`, one page past `after`."""
    limit = page_size(first)
    if after is not None:
        last = decode_cursor(after, key)
        if last is None:  # not a cursor of ours: nothing comes after it
            statement = statement.where(false())
        else:
            statement = statement.where(key < last if descending else key > last)
    statement = statement.order_by(key.desc() if descending else key).limit(limit + 1)
    rows = list((await session.execute(statement)).scalars())
    page = rows[:limit]
    return Page(page, [encode_cursor(row.id) for row in page], len(rows) > limit, after is not None)
