"""Relay connections over the use cases' keyset pages (app.services.pages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from strawberry import relay

from app.services.pages import Page

T = TypeVar("T")


def connection(page: Page[Any], node: Callable[[Any], T]) -> relay.Connection[T]:
    edges = [relay.Edge(cursor=cursor, node=node(row)) for row, cursor in zip(page.rows, page.cursors)]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
