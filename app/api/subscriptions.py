"""Subscriptions (graphql-transport-ws): availability, booking groups and hardblocks as they change.

Writes publish small messages after commit (app/publish.py); each subscription filters them by
its arguments and the caller's scope, then re-reads what changed through fresh loaders (a
subscription is one operation with one context for its whole life: `fresh_loaders` before each
event), so a client always receives current, permitted data.

Fan-out: a worker with a thousand sockets on one hotel would otherwise do a thousand times the
same work per change. What is provably the same for several subscribers is done once per worker:
the snapshot read of a change (kept on the broadcast message), the GraphQL execution of the selection set on it
(`SharedResultsExecutor`: same document, same variables, same permission scope), and the JSON
encoding of that result (`SharedData`, sent by app.main's websocket handler). Anything that may
differ between subscribers — the caller's role or agency, the query, its variables — is part of
the key, and a result with errors is never shared.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import strawberry
from graphql import ExecutionResult
from strawberry.exceptions import StrawberryGraphQLError

from app.api.bookings import BookingGroup
from app.api.catalog import Hotel, RoomType
from app.api.context import Context
from app.api.hardblocks import Hardblock
from app.api.ids import decode_id
from app.api.inventory import MAX_CALENDAR_NIGHTS, CalendarCell, inventory_cache, row_cells, selects
from app.api.payments import Payment
from app.api.permissions import AUTHENTICATED, Info
from app.api.plain import PlainListExecutor
from app.api.types import bad_input, check_room_type_ids
from app.auth import Principal
from app.broadcast import Event
from app.services.changes import BOOKING_GROUPS_CHANNEL, HARDBLOCKS_CHANNEL, PAYMENTS_CHANNEL, inventory_channel
from app.services.errors import InvalidInput
from app.services.reads import LoadedInventory, inventory_version, load_calendar
from app.services.rateplans import Buyer

log = logging.getLogger(__name__)

# How long a hole in a hotel's version sequence may stay open before the subscription assumes the
# message was lost (a failed publish) rather than late (two workers publishing out of order).
GAP_GRACE_S = 1.0


@strawberry.type(description="A committed change of a hotel's inventory, with the cells it touched re-read.")
class AvailabilityChange:
    hotel: Hotel
    version: int = strawberry.field(
        description="The hotel's inventory version after the change (it grows by exactly one per committed "
        "change). On a resync: the version the cells were read at."
    )
    cells: list[CalendarCell] = strawberry.field(
        description="The subscribed cells the change touched, read after it (ordered by room type, then date). "
        "On a resync: every subscribed cell."
    )
    resync: bool = strawberry.field(
        description="True when changes may have been missed (the client fell behind, the broadcast backend "
        "reconnected, or a version never arrived): `cells` then holds the whole subscribed range, read now, "
        "and replaces what the client shows."
    )
    # Set on a change that several subscribers receive as this very object: their execution
    # results, by (operation, variables, scope); see SharedResultsExecutor.
    shared_results: strawberry.Private[dict | None] = None


@dataclass(frozen=True)
class _Watch:
    hotel_id: int
    start: date
    end: date
    room_type_ids: frozenset[int] | None
    booking_rows: bool = True  # whether the subscriber's cells show bookings (else read summed)

    def touched(self, message: dict) -> tuple[list[int], date, date] | None:
        """The part of a change that falls on the watched cells, or None."""
        ids = [i for i in message["roomTypeIds"] if self.room_type_ids is None or i in self.room_type_ids]
        start = max(self.start, date.fromisoformat(message["from"]))
        end = min(self.end, date.fromisoformat(message["to"]))
        return (ids, start, end) if ids and start < end else None


def _cells(loaded: LoadedInventory, staff: bool, agency_id: int | None, buyer: Buyer | None) -> list[CalendarCell]:
    """`agency_id`: whose restrictions the cells show (None: those binding every agency); `buyer`:
    whose sell prices they show (None: net, for staff)."""
    restrictions = loaded.restrictions(agency_id)
    reasons = loaded.reasons(restrictions)
    return [cell for room_type in loaded.snapshot.room_types
            for cell in row_cells(RoomType.from_row(room_type), loaded.rows[room_type.id], staff,
                                  restrictions[room_type.id], reasons[room_type.id],
                                  loaded.rates(room_type.id, buyer))]


@dataclass
class _SharedRead:
    loaded: LoadedInventory
    # By the hotel's (id, code, name) as each subscriber holds it, and whether it is staff (agents'
    # cells carry no pool figures).
    changes: dict[tuple, AvailabilityChange]
    cells: dict[tuple[bool, int | None], list[CalendarCell]]


async def _shared_read(context: Context, hotel_id: int, ids: list[int] | None, start: date, end: date,
                       booking_rows: bool) -> _SharedRead:
    return _SharedRead(await load_calendar(context.sessions, hotel_id, start, end, ids, booking_rows=booking_rows),
                       changes={}, cells={})


async def _read_change(
    context: Context, watch: _Watch, hotel: Hotel, ids: list[int] | None, start: date, end: date,
    version: int | None, event: Event | None = None,
) -> AvailabilityChange:
    context.fresh_loaders()
    staff = context.caller.is_staff
    buyer = await context.buyer()  # whose prices and restrictions the cells show (None: staff's view)
    own = None if buyer is None else buyer.agency_id
    if version is None or event is None:  # a resync: read now, for this subscriber
        loaded = await load_calendar(context.sessions, watch.hotel_id, start, end, ids,
                                     booking_rows=watch.booking_rows)
        inventory_cache(context).loaded.append(loaded)  # for the cells' bookings and hardblocks
        return AvailabilityChange(hotel=hotel, version=loaded.snapshot.version if version is None else version,
                                  cells=_cells(loaded, staff, own, buyer), resync=version is None)
    # The subscribers of this worker that process this message read its cells once (a thousand
    # sockets watching a hotel would otherwise run a thousand identical snapshot reads per change);
    # the read is kept on the message itself, so it never outlives it, and is taken after the change.
    key = ("availability", tuple(ids or ()), start, end, watch.booking_rows)
    task = event.memo.get(key)
    if task is None or (task.done() and task.exception() is not None):
        task = event.memo[key] = asyncio.ensure_future(
            _shared_read(context, watch.hotel_id, ids, start, end, watch.booking_rows))
    # Shielded: one subscriber going away must not cancel the read the others wait for.
    read = task.result() if task.done() else await asyncio.shield(task)
    inventory_cache(context).loaded.append(read.loaded)  # for the cells' bookings and hardblocks
    # The same object for every subscriber that would build an identical one, so that its
    # execution can be shared (the hotel row each subscription loaded at its start is compared).
    facts = (hotel.id, hotel.code, hotel.name, staff, own)
    change = read.changes.get(facts)
    if change is None:
        if (staff, own) not in read.cells:
            read.cells[staff, own] = _cells(read.loaded, staff, own, buyer)
        change = read.changes[facts] = AvailabilityChange(
            hotel=hotel, version=version, cells=read.cells[staff, own], resync=False, shared_results={})
    return change


class SharedData(dict):
    """The `data` of an execution result sent to several subscribers: encoded to JSON once."""

    __slots__ = ("_encoded",)

    def encoded(self, encode: Callable[[object], str | bytes]) -> str:
        try:
            return self._encoded
        except AttributeError:
            text = encode(dict(self))
            self._encoded = text.decode() if isinstance(text, bytes) else text
            return self._encoded


def _freeze(value: object) -> object:
    """A hashable, type-exact form of coerced variable values (TypeError when there is none)."""
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (list, tuple(_freeze(v) for v in value))
    hash(value)
    return (type(value), value)  # 1, 1.0 and True are equal keys otherwise


_UNSHAREABLE = object()


class SharedResultsExecutor(PlainListExecutor):
    """Executes a subscription event once for all the subscribers that would get the same result.

    Only events that carry `shared_results` (an AvailabilityChange several subscribers receive as
    one object) are shared; everything else executes as usual. Two executions are the same when
    they run the same parsed operation (ParserCache hands out one document per query text) with
    equal variables for the same permission scope: role and agency are all that the fields under
    AvailabilityChange look at (bookings and hardblocks are filtered by `may_see`: staff see every
    agency, an agent only its own). A result with errors is not shared: the others execute anew.
    """

    def build_per_event_executor(self, payload: Any) -> SharedResultsExecutor:
        # The subscription's variables, frozen once (the per-event executors are copies of this one).
        if "_frozen_variables" not in self.__dict__:
            try:
                self._frozen_variables = _freeze(self.variable_values.coerced)
            except TypeError:
                self._frozen_variables = _UNSHAREABLE
        return super().build_per_event_executor(payload)  # type: ignore[return-value]

    def execute_operation(self, serially: bool | None = None):  # noqa: ANN201 - graphql-core's type
        results = getattr(self.root_value, "shared_results", None)
        principal = getattr(self.context_value, "principal", None)
        variables = self.__dict__.get("_frozen_variables", _UNSHAREABLE)
        if type(results) is not dict or principal is None or variables is _UNSHAREABLE:
            return super().execute_operation(serially)
        key = (id(self.operation), variables, principal.role, principal.agency_code)
        return self._shared(results, key, serially)

    async def _shared(self, results: dict, key: tuple, serially: bool | None) -> ExecutionResult:
        entry = results.get(key)
        if entry is not None:
            future = entry[1]
            shared = future.result() if future.done() else await asyncio.shield(future)
            if shared is not None:
                return shared
            return await self._own(serially)
        future: asyncio.Future[ExecutionResult | None] = asyncio.get_running_loop().create_future()
        results[key] = (self.operation, future)  # the operation kept alive: its id() stays unique
        try:
            result = await self._own(serially)
            if result.errors or not isinstance(result, ExecutionResult) or not isinstance(result.data, dict):
                return result
            shared = ExecutionResult(SharedData(result.data), None, result.extensions)
            future.set_result(shared)
            return shared
        finally:
            if not future.done():
                future.set_result(None)

    async def _own(self, serially: bool | None) -> ExecutionResult:
        result = super().execute_operation(serially)
        return await result if self.is_awaitable(result) else result  # type: ignore[return-value]


async def _start_availability(info: Info, hotel_id: strawberry.ID, start: date, end: date,
                              room_type_ids: list[strawberry.ID] | None) -> tuple[_Watch, Hotel]:
    if start >= end:
        raise bad_input(f"to ({end}) must be after from ({start}): ranges are [from, to) over nights")
    if (end - start).days > MAX_CALENDAR_NIGHTS:
        raise bad_input(f"a subscription spans at most {MAX_CALENDAR_NIGHTS} nights")
    check_room_type_ids(room_type_ids)
    try:
        pk = decode_id(hotel_id, "Hotel", "hotelId")
        ids = None if room_type_ids is None else [decode_id(i, "RoomType", "roomTypeIds") for i in room_type_ids]
    except InvalidInput as error:
        raise bad_input(error.message) from None
    loaders = info.context.loaders
    hotel = await loaders.hotel.load(pk)
    if hotel is None:
        raise bad_input("no hotel with that hotelId")
    if ids is not None:
        own = {row.id for row in await loaders.room_types_by_hotel.load(pk)}
        if set(ids) - own:
            raise bad_input("roomTypeIds must be room types of this hotel")
    return (_Watch(pk, start, end, None if ids is None else frozenset(ids), selects(info.selected_fields, "bookings")),
            Hotel.from_row(hotel))


def _resync_required(what: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(
        f"{what} changes may have been missed (the client fell behind or the server reconnected): "
        "refetch and subscribe again", extensions={"code": "RESYNC"},
    )


def _parse(event: Event) -> dict | None:
    message = event.json()  # parsed once for all the subscribers of the channel: read it, never change it
    if not isinstance(message, dict):
        log.warning("ignoring a malformed message on %s: %.200r", event.channel, event.message)
        return None
    return message


async def _own_agency(context: Context, principal: Principal) -> int | None:
    """None for staff (they see every agency); an agent's agency id (-1 when it does not exist)."""
    if principal.is_staff:
        return None
    found = await context.loaders.agency_by_code.load(principal.agency_code)
    return -1 if found is None else found[0]


@dataclass(frozen=True)
class _EntityFeed:
    """A subscription to one kind of entity (a booking group, a hardblock) changing."""

    channel: str
    type_name: str  # of the optional global ID argument
    key: str  # the argument's name, and the entity's id in a published message
    loader_name: str
    what: str  # "booking group": in errors and the description
    noun: str  # "group": in the description
    from_row: Callable[[Any], Any]
    # The entity's id in a message, when `key` names another one it is filtered by (a payment's
    # feed is keyed by its group); None: `key` itself.
    target: str | None = None

    @property
    def description(self) -> str:
        return (f"The {self.what}, re-read, each time a committed write changes it; without `{self.key}`, every "
                f"{self.noun} the caller may see. Agents receive only their agency's {self.noun}s. Without "
                f"`{self.key}`, a subscriber that may have missed changes gets an error with code RESYNC and the "
                "stream ends.")


_BOOKING_GROUP_FEED = _EntityFeed(
    channel=BOOKING_GROUPS_CHANNEL, type_name="BookingGroup", key="groupId", loader_name="booking_group",
    what="booking group", noun="group", from_row=BookingGroup.from_row,
)
_PAYMENT_FEED = _EntityFeed(
    channel=PAYMENTS_CHANNEL, type_name="BookingGroup", key="groupId", loader_name="payment",
    what="payment", noun="payment", from_row=Payment.from_row, target="paymentId",
)
_HARDBLOCK_FEED = _EntityFeed(
    channel=HARDBLOCKS_CHANNEL, type_name="Hardblock", key="hardblockId", loader_name="hardblock",
    what="hardblock", noun="block", from_row=Hardblock.from_row,
)


async def _entity_changes(info: Info, feed: _EntityFeed, entity_id: strawberry.ID | None):
    """The changed entities of `feed` (the one of `entity_id`, or all) that the caller may see,
    re-read."""
    pk = _optional_id(entity_id, feed.type_name, feed.key)
    context = info.context
    assert context.principal is not None  # the permission class ran
    own = await _own_agency(context, context.principal)
    async with context.broadcast.subscribe(feed.channel) as subscriber:
        async for event in subscriber:
            if event.resync:
                if pk is None or feed.target is not None:
                    raise _resync_required(feed.what)
                target = pk  # one entity: its current state is the resync
            else:
                message = _parse(event)
                if message is None or (pk is not None and message.get(feed.key) != pk):
                    continue
                if own is not None and message.get("agencyId") != own:
                    continue  # another agency's: not even read
                target = message.get(feed.target or feed.key)
            context.fresh_loaders()
            row = await getattr(context.loaders, feed.loader_name).load(target)
            if row is None or (own is not None and row.agency_id != own):
                continue
            yield feed.from_row(row)


def _optional_id(value: strawberry.ID | None, type_name: str, argument: str) -> int | None:
    if value is None:
        return None
    try:
        return decode_id(value, type_name, argument)
    except InvalidInput as error:
        raise bad_input(error.message) from None


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=AUTHENTICATED,
        description="One event per committed inventory change that touches the watched cells (room types "
        "`roomTypeIds`, default all, on nights [from, to)), with those cells re-read. `version` grows by one "
        "per change of the hotel; changes elsewhere are not sent, and the server itself sends `resync: true` "
        "when it may have missed one. `sinceVersion`: the version of the calendar the client already shows; "
        "if the hotel has moved past it when the subscription starts, a resync comes first.",
    )
    async def availability_changed(
        self,
        info: Info,
        hotel_id: strawberry.ID,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        room_type_ids: list[strawberry.ID] | None = None,
        since_version: int | None = None,
    ) -> AsyncGenerator[AvailabilityChange, None]:
        context = info.context
        watch, hotel = await _start_availability(info, hotel_id, from_, to, room_type_ids)
        ids = None if watch.room_type_ids is None else sorted(watch.room_type_ids)
        loop = asyncio.get_running_loop()
        async with context.broadcast.subscribe(inventory_channel(watch.hotel_id)) as subscriber:
            # Listening first, then reading the version: no change can fall between the two.
            heard = await inventory_version(context.sessions, watch.hotel_id)  # every version up to here is known
            covered = -1 if since_version is None else since_version  # what the client already shows
            if since_version is not None and heard > since_version:
                change = await _read_change(context, watch, hotel, ids, watch.start, watch.end, None)
                heard = covered = max(heard, change.version)
                yield change
            ahead: set[int] = set()  # versions heard past a hole in the sequence
            hole_since: float | None = None
            while True:
                try:
                    timeout = None if hole_since is None else max(0.0, hole_since + GAP_GRACE_S - loop.time())
                    event = await asyncio.wait_for(subscriber.get(), timeout)
                except TimeoutError:
                    log.warning("hotel %s: inventory version %s never arrived; resyncing", watch.hotel_id, heard + 1)
                    event = Event(subscriber.channel)
                if event.resync:
                    change = await _read_change(context, watch, hotel, ids, watch.start, watch.end, None)
                    heard = covered = change.version
                    ahead, hole_since = set(), None
                    yield change
                    continue
                message = _parse(event)
                if message is None:
                    continue
                version = int(message["version"])
                if version > heard:
                    ahead.add(version)
                    while heard + 1 in ahead:
                        heard += 1
                        ahead.discard(heard)
                    hole_since = (hole_since or loop.time()) if ahead else None
                if version <= covered or (touched := watch.touched(message)) is None:
                    continue
                yield await _read_change(context, watch, hotel, *touched, version, event)

    @strawberry.subscription(permission_classes=AUTHENTICATED, description=_BOOKING_GROUP_FEED.description)
    async def booking_group_changed(
        self, info: Info, group_id: strawberry.ID | None = None
    ) -> AsyncGenerator[BookingGroup, None]:
        changes = _entity_changes(info, _BOOKING_GROUP_FEED, group_id)
        async with aclosing(changes):  # unsubscribes even when closed at our own `yield`
            async for group in changes:
                yield group

    @strawberry.subscription(permission_classes=AUTHENTICATED, description=(
        "A payment, re-read, each time it changes (started, its state after Stripe's word, refunded); with `groupId`, "
        "the payments of that group only. Agents receive only their agency's payments. A subscriber that may have "
        "missed changes gets an error with code RESYNC and the stream ends."))
    async def payment_changed(self, info: Info, group_id: strawberry.ID | None = None) -> AsyncGenerator[Payment, None]:
        changes = _entity_changes(info, _PAYMENT_FEED, group_id)
        async with aclosing(changes):  # as above
            async for payment in changes:
                yield payment

    @strawberry.subscription(permission_classes=AUTHENTICATED, description=_HARDBLOCK_FEED.description)
    async def hardblock_changed(
        self, info: Info, hardblock_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Hardblock, None]:
        changes = _entity_changes(info, _HARDBLOCK_FEED, hardblock_id)
        async with aclosing(changes):  # as above
            async for block in changes:
                yield block
