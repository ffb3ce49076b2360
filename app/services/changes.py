"""One path for "what changed": every write returns `Change`s, recorded in an outbox row in the
write's own transaction and published after it commits.

Subscribers hear small messages of ids and ranges, never payloads, on these channels:
`inventory.<hotelId>` (cells changed: room types and a night range, with the hotel's new
inventory version), `booking_groups` and `hardblocks` (which entity changed and whose it is;
subscribers filter on that and re-read the entity with their own permissions).

Delivery is at least once. The writer publishes right after its commit and marks the row sent
(in batches, off the request path). A row still unsent after `grace_s` (its writer crashed
between commit and publish, or lost its connection) is claimed by any worker's relay with
`FOR UPDATE SKIP LOCKED` and published then. Subscribers already tolerate a repeated version.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import outbox
from db.engine import transaction
from db.inventory import LockTimeout, is_lock_timeout

if TYPE_CHECKING:
    from app.services.context import Services

log = logging.getLogger(__name__)

BOOKING_GROUPS_CHANNEL = "booking_groups"
HARDBLOCKS_CHANNEL = "hardblocks"
SYNC_RUNS_CHANNEL = "sync_runs"
PAYMENTS_CHANNEL = "payments"

Publish = Callable[[str, str], Awaitable[None]]


def inventory_channel(hotel_id: int) -> str:
    return f"inventory.{hotel_id}"


def is_valid_message(channel: str, message: Any) -> bool:
    """Whether `message` (decoded JSON) has the shape `Change.messages()` gives on `channel`.

    Subscribers read these fields as they are; a malformed message (a hand-made NOTIFY, another
    version of the app) would otherwise end every subscription of its channel. A channel that
    no change publishes to has no valid message.
    """
    if not isinstance(message, dict):
        return False
    if channel == BOOKING_GROUPS_CHANNEL:
        return _are_ids(message, "groupId", "agencyId")
    if channel == HARDBLOCKS_CHANNEL:
        return _are_ids(message, "hardblockId", "agencyId")
    if channel == SYNC_RUNS_CHANNEL:
        return _are_ids(message, "syncRunId", "supplierId")
    if channel == PAYMENTS_CHANNEL:
        return _are_ids(message, "paymentId", "groupId", "agencyId")
    if not _are_ids(message, "hotelId", "version") or channel != inventory_channel(message["hotelId"]):
        return False
    room_type_ids = message.get("roomTypeIds")
    if not isinstance(room_type_ids, list) or not all(_is_id(i) for i in room_type_ids):
        return False
    try:
        return date.fromisoformat(message["from"]) < date.fromisoformat(message["to"])
    except (KeyError, TypeError, ValueError):
        return False


def _is_id(value: Any) -> bool:
    return type(value) is int  # not a bool, not a float


def _are_ids(message: dict[str, Any], *keys: str) -> bool:
    return all(_is_id(message.get(key)) for key in keys)


@dataclass(frozen=True, slots=True)
class Change:
    """A committed change of one hotel's inventory: its new version, the cells it touched, and the
    booking groups and hardblocks it touched, each as (id, agency id)."""

    hotel_id: int
    version: int
    room_type_ids: tuple[int, ...]
    start: date
    end: date
    groups: tuple[tuple[int, int], ...] = ()
    blocks: tuple[tuple[int, int], ...] = ()

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (inventory_channel(self.hotel_id), {
                "hotelId": self.hotel_id, "version": self.version, "roomTypeIds": list(self.room_type_ids),
                "from": self.start.isoformat(), "to": self.end.isoformat(),
            }),
            *((BOOKING_GROUPS_CHANNEL, {"groupId": g, "agencyId": a}) for g, a in self.groups),
            *((HARDBLOCKS_CHANNEL, {"hardblockId": b, "agencyId": a}) for b, a in self.blocks),
        ]

    def payload(self) -> dict[str, Any]:
        """The outbox row's payload (db.outbox.change_payload builds the same in SQL)."""
        return {"hotelId": self.hotel_id, "version": self.version, "roomTypeIds": list(self.room_type_ids),
                "from": self.start.isoformat(), "to": self.end.isoformat(),
                "groups": [list(g) for g in self.groups], "blocks": [list(b) for b in self.blocks]}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Change:
        return cls(
            hotel_id=int(payload["hotelId"]), version=int(payload["version"]),
            room_type_ids=tuple(payload["roomTypeIds"]), start=date.fromisoformat(payload["from"]),
            end=date.fromisoformat(payload["to"]),
            groups=tuple(tuple(pair) for pair in payload.get("groups", ())),  # type: ignore[misc]
            blocks=tuple(tuple(pair) for pair in payload.get("blocks", ())),  # type: ignore[misc]
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """A committed change that is not inventory (a sync run's progress, say): one message on one
    channel, delivered like the changes, through the outbox."""

    channel: str
    message: dict[str, Any]

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        return [(self.channel, self.message)]

    def payload(self) -> dict[str, Any]:
        return {"channel": self.channel, "message": self.message}


Published = Change | Notice


@dataclass
class _PendingChange:
    room_type_ids: set[int] = field(default_factory=set)
    start: date = date.max
    end: date = date.min
    groups: dict[int, int] = field(default_factory=dict)
    blocks: dict[int, int] = field(default_factory=dict)


class Touched:
    """What a write changed, gathered per hotel: each hotel gets one version bump and one Change
    per transaction, however many times it is touched."""

    def __init__(self) -> None:
        self._hotels: dict[int, _PendingChange] = {}

    def touch(self, hotel_id: int, room_type_ids: Iterable[int], start: date, end: date, *,
              groups: Iterable[tuple[int, int]] = (), blocks: Iterable[tuple[int, int]] = ()) -> None:
        touched = self._hotels.setdefault(hotel_id, _PendingChange())
        touched.room_type_ids.update(room_type_ids)
        touched.start, touched.end = min(touched.start, start), max(touched.end, end)
        touched.groups.update(groups)
        touched.blocks.update(blocks)

    def unversioned(self) -> list[Change]:
        """One Change per hotel, in hotel order (the order the version rows are locked in), with
        version 0: the version bump that records it gives the real one."""
        return [Change(hotel_id, 0, tuple(sorted(t.room_type_ids)), t.start, t.end, tuple(sorted(t.groups.items())),
                       tuple(sorted(t.blocks.items())))
                for hotel_id, t in sorted(self._hotels.items())]


class Write:
    """The unit of work of one write transaction: what it touched, recorded just before commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.changes: list[Published] = []
        self.outbox_ids: list[int] = []
        self._touched = Touched()
        self._notices: list[Notice] = []

    def touch(self, hotel_id: int, room_type_ids: Iterable[int], start: date, end: date, *,
              groups: Iterable[tuple[int, int]] = (), blocks: Iterable[tuple[int, int]] = ()) -> None:
        """Note cells (and groups, blocks) this write changed (see Touched)."""
        self._touched.touch(hotel_id, room_type_ids, start, end, groups=groups, blocks=blocks)

    def announce(self, channel: str, message: dict[str, Any]) -> None:
        """Publish `message` on `channel` once the write commits (and only then)."""
        self._notices.append(Notice(channel, message))

    def recorded(self, change: Published, outbox_id: int) -> None:
        """A change the write recorded itself (its version bump and outbox row are part of one of
        its own statements: the booking hold)."""
        self.changes.append(change)
        self.outbox_ids.append(outbox_id)

    async def _record(self) -> None:
        # Last, just before commit: the version row's lock serialises the commits of one hotel.
        for change in self._touched.unversioned():
            version, outbox_id = await outbox.record_change(
                self.session, change.hotel_id, change.room_type_ids, change.start, change.end, change.groups,
                change.blocks)
            self.recorded(dataclasses.replace(change, version=version), outbox_id)
        self._touched = Touched()
        for notice in self._notices:
            self.recorded(notice, await outbox.record_notice(self.session, notice.payload()))
        self._notices = []


@asynccontextmanager
async def write(services: Services) -> AsyncIterator[Write]:
    """One write transaction: yields the unit of work; on success records its changes (version
    bumps and outbox rows), commits, then publishes them. Any exception rolls everything back."""
    try:
        async with transaction(services.sessions) as session:
            unit = Write(session)
            yield unit
            await unit._record()
    except DBAPIError as error:
        # The room types' locks set the transaction's lock_timeout; a row lock can run out of it too:
        # the hotel's version row, held by another write of the hotel that is committing.
        if is_lock_timeout(error):
            raise LockTimeout([], "timed out waiting for another write of this hotel to commit") from error
        raise
    await services.relay.deliver(unit.changes, unit.outbox_ids)


class OutboxRelay:
    """Publishes committed changes: at once for the writer, and later for rows nobody sent."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish, *,
                 grace_s: float = 5.0, interval_s: float = 1.0, keep_s: float = 3600.0, batch: int = 500) -> None:
        self._sessions, self._publish = sessions, publish
        self.grace_s, self.interval_s, self.keep_s, self.batch = grace_s, interval_s, keep_s, batch
        self._sent: list[int] = []

    async def deliver(self, changes: Iterable[Published], outbox_ids: Iterable[int]) -> None:
        """Publish changes that just committed; their rows are marked sent by the next `flush`."""
        for change, outbox_id in zip(changes, outbox_ids, strict=True):
            if await self._send(change):
                self._sent.append(outbox_id)

    async def _send(self, change: Published) -> bool:
        try:
            for channel, message in change.messages():
                await self._publish(channel, orjson.dumps(message).decode())
        except Exception:  # the change is committed and its row unsent: the relay retries it
            log.exception("could not publish %r", change)
            return False
        return True

    async def flush(self) -> int:
        """Mark what was published as sent (one statement for all of it)."""
        sent, self._sent = self._sent, []
        if sent:
            try:
                async with transaction(self._sessions) as session:
                    await outbox.mark_sent(session, sent)
            except Exception:
                self._sent[:0] = sent  # not lost: marked next time (or published once more)
                raise
        return len(sent)

    async def sweep(self) -> int:
        """Publish the rows left unsent for longer than `grace_s`; returns how many."""
        async with transaction(self._sessions) as session:
            rows = await outbox.claim_stale(session, self.grace_s, self.batch)
            sent = []
            for outbox_id, topic, payload in rows:
                payload = json.loads(payload) if isinstance(payload, str) else payload
                if topic == outbox.CHANGE_TOPIC:
                    change: Published = Change.from_payload(payload)
                elif topic == outbox.NOTICE_TOPIC:
                    change = Notice(payload["channel"], payload["message"])
                else:
                    continue
                if await self._send(change):
                    sent.append(outbox_id)
            await outbox.mark_sent(session, sent)
            await outbox.forget_sent(session, self.keep_s)
        return len(sent)

    async def run(self) -> None:
        """Forever: flush marks and sweep stale rows every `interval_s`. Cancel to stop (it flushes
        once more on the way out)."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await self.flush()
                    while await self.sweep() >= self.batch:
                        pass
                except Exception:
                    log.exception("outbox relay failed; retrying in %s s", self.interval_s)
        finally:
            with contextlib.suppress(Exception):
                await self.flush()
