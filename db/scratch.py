"""Throwaway databases on a server (tests and benchmarks never share data with anything)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from db.engine import plain_url


async def _admin(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(plain_url(server_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_scratch_database(server_url: str, prefix: str) -> str:
    """Create an empty database named `<prefix>_<random>` and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(plain_url(server_url)).set(database=name).render_as_string(hide_password=False)


async def drop_scratch_database(url: str) -> None:
    """Drop it from the server's maintenance database (one cannot drop the database one is in)."""
    name = make_url(url).database
    server = make_url(plain_url(url)).set(database="postgres").render_as_string(hide_password=False)
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    url = await create_scratch_database(server_url, prefix)
    try:
        yield url
    finally:
        await drop_scratch_database(url)
