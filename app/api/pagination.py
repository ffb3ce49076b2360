"""Keyset pagination behind Relay connections (`first`/`after`, opaque cursors)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Select, false
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from app.api.types import bounded_int

T = TypeVar("T")

DEFAULT_PAGE = 50
MAX_PAGE = 200


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
    session: AsyncSession,
    statement: Select[Any],
    key: Any,
    *,
    first: int | None,
    after: str | None,
    node: Callable[[Any], T],
    descending: bool = False,
) -> relay.Connection[T]:
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
    edges = [relay.Edge(cursor=encode_cursor(row.id), node=node(row)) for row in page]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=len(rows) > limit,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
