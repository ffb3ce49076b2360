"""Publish/subscribe between workers (broadcaster), published to only after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from broadcaster import Broadcast as _Broadcaster

from db.engine import plain_url


class Broadcast:
    def __init__(self, url: str) -> None:
        if url.startswith(("postgres://", "postgresql")):
            url = plain_url(url).replace("postgresql://", "postgres://", 1)
        self.url = url
        self._backend = _Broadcaster(url)

    async def connect(self) -> None:
        await self._backend.connect()

    async def disconnect(self) -> None:
        await self._backend.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        await self._backend.publish(channel=channel, message=message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Any]:
        async with self._backend.subscribe(channel=channel) as subscriber:
            yield subscriber
