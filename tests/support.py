"""Helpers shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import make_emulator_token

EMULATOR_HOST = "127.0.0.1:9099"
PROJECT_ID = "staysync-test"


def token(role: str, agency: str | None = None, **kwargs: Any) -> str:
    return make_emulator_token(role=role, agency=agency, project_id=PROJECT_ID, **kwargs)


class GraphQL:
    """POSTs a document as a given caller; returns the decoded JSON body."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: str | None = "admin",
        agency: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = dict(headers or {})
        if role is not None:
            all_headers.setdefault("Authorization", f"Bearer {token(role, agency)}")
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=all_headers)
        assert response.status_code == 200, response.text
        return response.json()


def data(result: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a result that must have no errors."""
    assert not result.get("errors"), result["errors"]
    return result["data"]


@contextmanager
def captured_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs, in order (the list fills as they
    go), with "COMMIT" where a transaction commits (the driver sends that outside the cursor)."""
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: PLR0913
        statements.append(statement)

    def commit(conn):
        statements.append("COMMIT")

    sa_event.listen(engine.sync_engine, "before_cursor_execute", capture)
    sa_event.listen(engine.sync_engine, "commit", commit)
    try:
        yield statements
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", capture)
        sa_event.remove(engine.sync_engine, "commit", commit)
