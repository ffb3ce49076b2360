"""Keyset pagination behind Relay connections (`first`/`after`, opaque cursors)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from app.api.errors import InvalidInputError

T = TypeVar("T")

DEFAULT_PAGE = 50
MAX_PAGE = 200


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{pk}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        kind, _, pk = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "cursor":
            raise ValueError
        return int(pk)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("after", f"not a cursor of this connection: {cursor!r}") from None


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if not 0 <= first <= MAX_PAGE:
        raise InvalidInputError("first", f"first must be between 0 and {MAX_PAGE}, got {first}")
    return first


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
    limit = check_first(first)
    if after is not None:
        last = decode_cursor(after)
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
