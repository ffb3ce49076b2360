"""The SQL of hardblocks: batch reads for slot grids; the writes (on asyncpg, db.fastpath) and
what they read; the auto-release job.

Writes that change what a block holds from the pool run under the room type's advisory lock
(db.inventory); recording an automatic release does not: it changes no number (availability
already counts a night as released from its release time), it only writes it down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit, models
from db.audit import AUDIT_ENTRIES, Audited, audit_values
from db.calendar import (
    COUNTING_STATUSES,
    StayInventory,
    booking_line,
    contract_terms,
    event_terms,
    hardblock_terms,
    plain_row,
    row_record,
    stay_inventory,
    stay_inventory_columns,
)
from db.fastpath import Statement
from db.outbox import CHANGES_WRITTEN, changes_by_hotel, changes_by_hotel_values, changes_written
from domain import (
    AllotmentEvent,
    BookingLine,
    DEFAULT_TIME_ZONE,
    ContractTerms,
    EventKind,
    HardblockTerms,
    effective_released_nights,
)


@dataclass
class BlockGridData:
    """What the slot grids of some blocks need, read in four statements whatever their number."""

    terms: dict[int, HardblockTerms] = field(default_factory=dict)
    amendments: list[AllotmentEvent] = field(default_factory=list)  # live BLOCK_AMENDMENTs of the blocks
    rate_events: dict[int, list[AllotmentEvent]] = field(default_factory=dict)  # live RATE_CHANGEs per room type
    contracts: dict[int, list[ContractTerms]] = field(default_factory=dict)  # per room type
    bookings: list[models.Booking] = field(default_factory=list)  # HELD/CONFIRMED bookings from the blocks
    booking_lines: list[BookingLine] = field(default_factory=list)


async def load_block_grids(
    session: AsyncSession, blocks: Sequence[models.Hardblock], start: date, end: date
) -> BlockGridData:
    """Amendments, releases and bookings of `blocks`, and the contracts and rate changes of their
    room types overlapping [start, end) (the rates of their slots)."""
    data = BlockGridData()
    if not blocks:
        return data
    ids = [b.id for b in blocks]
    room_type_ids = sorted({b.room_type_id for b in blocks})
    event = models.AllotmentEvent
    events = [event_terms(row) for row in (await session.execute(
        select(event).where(
            event.voided_at.is_(None),
            or_(
                and_(event.kind == EventKind.BLOCK_AMENDMENT.value, event.hardblock_id.in_(ids)),
                and_(event.kind == EventKind.RATE_CHANGE.value, event.room_type_id.in_(room_type_ids),
                     event.start_date < end, event.end_date > start),
            ),
        )
    )).scalars()]
    for e in events:
        if e.kind is EventKind.BLOCK_AMENDMENT:
            data.amendments.append(e)
        else:
            data.rate_events.setdefault(e.room_type_id, []).append(e)
    contract, hotel = models.Contract, models.Hotel
    # The blocks' hotels (for their time zones), each with its contracts if any: one statement.
    zones: dict[int, str] = {}
    for hotel_id, time_zone, row in (await session.execute(
        select(hotel.id, hotel.time_zone, contract).select_from(hotel).outerjoin(contract, and_(
            contract.hotel_id == hotel.id, contract.room_type_id.in_(room_type_ids), contract.start_date < end,
            contract.end_date > start,
        )).where(hotel.id.in_(sorted({b.hotel_id for b in blocks}))).order_by(contract.id)
    )):
        zones[hotel_id] = time_zone
        if row is not None:
            data.contracts.setdefault(row.room_type_id, []).append(contract_terms(row))
    releases = await night_releases(session, ids)
    for block in blocks:
        data.terms[block.id] = hardblock_terms(
            block, effective_released_nights(block.id, releases.get(block.id, {}), data.amendments),
            zones.get(block.hotel_id, DEFAULT_TIME_ZONE),
        )
    data.bookings = list((await session.execute(
        select(models.Booking)
        .where(models.Booking.hardblock_id.in_(ids), models.Booking.status.in_(COUNTING_STATUSES))
        .order_by(models.Booking.id)
    )).scalars())
    data.booking_lines = [booking_line(row) for row in data.bookings]
    return data


async def night_releases(session: AsyncSession, hardblock_ids: Iterable[int]) -> dict[int, dict[date, datetime]]:
    release = models.HardblockNightRelease
    found: dict[int, dict[date, datetime]] = defaultdict(dict)
    for block_id, night, released_at in await session.execute(
        select(release.hardblock_id, release.night, release.released_at).where(
            release.hardblock_id.in_(list(hardblock_ids))
        )
    ):
        found[block_id][night] = released_at
    return found


# --- the writes, on asyncpg: what they read before the lock and under it, and their one statement --

HardblockRecord, _HARDBLOCK_ROW = row_record(models.Hardblock)
HardblockRow = plain_row(HardblockRecord, "HardblockRow")

# What an idempotency key already holds (nothing without a key): the hash of its request, its
# outcome, and the ids of the blocks that outcome names (one {"hardblock": id}, or a bulk's list of
# them and of failures).
_EARLIER = ("earlier AS (SELECT k.request_hash, k.outcome FROM idempotency_key AS k"
            " WHERE k.scope = CAST(:key_scope AS varchar) AND k.key = CAST(:key AS varchar))")
_EARLIER_COLUMNS = ("(SELECT request_hash FROM earlier) AS earlier_hash,"
                    " (SELECT outcome FROM earlier) AS earlier_outcome")
_EARLIER_BLOCK_IDS = ("SELECT CAST(v AS integer) FROM earlier,"
                      " jsonb_path_query(earlier.outcome, '$[*].hardblock') AS v")

# What a write checks before taking any lock: the blocks it names (and an amendment's block, and
# those the key's outcome names), the agent's agency, the agency and room type a new block names,
# the key, and an amendment's events (they never change: reverting one voids them).
_CONTEXT = Statement(
    f"WITH {_EARLIER}, amendment AS (SELECT m.hardblock_id FROM hardblock_amendment AS m"
    "                              WHERE m.id = CAST(:amendment_id AS integer)) "
    f"SELECT ARRAY(SELECT {_HARDBLOCK_ROW} FROM hardblock AS x WHERE x.id = ANY(ARRAY("
    "  SELECT unnest(CAST(:ids AS integer[])) UNION ALL SELECT hardblock_id FROM amendment"
    f"  UNION ALL {_EARLIER_BLOCK_IDS}))) AS blocks, "
    "(SELECT a.id FROM agency AS a WHERE a.code = CAST(:agency_code AS varchar)) AS own, "
    "(SELECT ROW(a.id, a.code) FROM agency AS a WHERE a.id = CAST(:agency_id AS integer)) AS agency, "
    "(SELECT ROW(r.id, r.hotel_id, r.code) FROM room_type AS r"
    "  WHERE r.id = CAST(:room_type_id AS integer)) AS room_type, "
    f"{_EARLIER_COLUMNS}, (SELECT hardblock_id FROM amendment) AS amendment_block, "
    "ARRAY(SELECT ROW(e.id, e.start_date, e.end_date) FROM allotment_event AS e"
    "      WHERE e.amendment_id = CAST(:amendment_id AS integer) ORDER BY e.id) AS amendment_events"
)

# A block as of now (under its room type's lock, for a write) and what its decisions need: its
# room type's inventory over the nights asked for, widened to the block's span (and `grow` nights
# past its end), read on the span as it is now; the database's clock (with the inventory); the
# key; whether an amendment was reverted meanwhile; and, for a write that records an amendment,
# the amendment's id (drawn here so that the write's audit entry can name it).
_BLOCK_STATE = Statement(
    f"WITH {_EARLIER}, blk AS (SELECT * FROM hardblock WHERE id = CAST(:block_id AS integer)), "
    "span AS (SELECT least(CAST(:start AS date), b.start_date) AS first_night,"
    "                greatest(CAST(:end AS date), b.end_date + CAST(:grow AS integer)) AS after_last FROM blk AS b) "
    f"SELECT (SELECT {_HARDBLOCK_ROW} FROM blk AS x) AS block, "
    "(SELECT r.code FROM room_type AS r WHERE r.id = (SELECT room_type_id FROM blk)) AS room_type_code, "
    "(SELECT m.reverted_at FROM hardblock_amendment AS m WHERE m.id = CAST(:amendment_id AS integer)) AS reverted_at, "
    "CASE WHEN CAST(:amending AS boolean) THEN nextval(pg_get_serial_sequence('hardblock_amendment', 'id')) END"
    "  AS new_amendment_id, "
    f"{_EARLIER_COLUMNS}, (SELECT first_night FROM span) AS first_night, (SELECT after_last FROM span) AS after_last, "
    + stay_inventory_columns("(SELECT hotel_id FROM blk)", "(SELECT first_night FROM span)",
                             "(SELECT after_last FROM span)")
)

# Under a room type's lock, before creating a block on it: its inventory over the block's nights,
# the database's clock, the key, and the new block's id (drawn here, like an amendment's).
_POOL_STATE = Statement(
    f"WITH {_EARLIER} SELECT {_EARLIER_COLUMNS}, nextval(pg_get_serial_sequence('hardblock', 'id')) AS new_block_id, "
    + stay_inventory_columns()
)


def _write(*changes: str, when: str = "true") -> Statement:
    """One statement for everything a write changes: the `changes` (CTEs), then, provided `when`
    (SQL) holds, its audit entries, the claim of the idempotency key with the request's outcome
    (none without a key: a key claimed meanwhile claims nothing, and the caller rolls back), and
    one version bump and outbox row per hotel. It says whether it wrote, whether it claimed the key,
    and the changes it wrote."""
    claim = (
        "claim AS (INSERT INTO idempotency_key (scope, key, request_hash, outcome)"
        "  SELECT CAST(:key_scope AS varchar), CAST(:key AS varchar), CAST(:request_hash AS varchar),"
        f"        CAST(:outcome AS jsonb) WHERE CAST(:key AS varchar) IS NOT NULL AND {when}"
        "  ON CONFLICT ON CONSTRAINT uq_idempotency_key_scope_key DO NOTHING RETURNING id)"
    )
    return Statement(
        "WITH " + ", ".join([*changes, f"entries AS ({AUDIT_ENTRIES} WHERE {when})", claim, changes_by_hotel(when)])
        + f" SELECT {when} AS written, EXISTS (SELECT FROM claim) AS claimed, {CHANGES_WRITTEN}"
    )


# A new block. A reference already taken (random, so rarely) writes nothing at all: the caller
# draws again.
_INSERT_BLOCK = _write(
    "new_block AS (INSERT INTO hardblock (id, reference, agency_id, hotel_id, room_type_id, start_date, end_date,"
    "                                     base_start_date, base_end_date, rooms, release_days, status, created_at)"
    "  VALUES (:block_id, :reference, :agency_id, :hotel_id, :room_type_id, :start_date, :end_date, :base_start_date,"
    "          :base_end_date, :rooms, :release_days, :status, :created_at)"
    "  ON CONFLICT (reference) DO NOTHING RETURNING id)",
    when="EXISTS (SELECT FROM new_block)",
)
# An existing block: its row (only if it changed), a new amendment and its BLOCK_AMENDMENT events (in
# the order of the changes: a later one wins on overlap), a reverted amendment and its voided events,
# manual night releases (a night released before and re-grown by an amendment since gets the new
# time: a release stands until a later amendment sets the night again).
_WRITE_BLOCK = _write(
    "changed AS (UPDATE hardblock SET start_date = :start_date, end_date = :end_date, status = :status,"
    "                                 released_at = :released_at"
    "  WHERE id = CAST(:block_id AS integer) AND (start_date, end_date, status, released_at) IS DISTINCT FROM"
    "        (CAST(:start_date AS date), CAST(:end_date AS date), CAST(:status AS varchar),"
    "         CAST(:released_at AS timestamptz)))",
    "amendment AS (INSERT INTO hardblock_amendment (id, hardblock_id, reason, author_uid, created_at)"
    "  SELECT CAST(:amendment_id AS integer), CAST(:block_id AS integer), CAST(:reason AS text),"
    "         CAST(:actor_uid AS varchar), CAST(:now AS timestamptz) WHERE CAST(:amendment_id AS integer) IS NOT NULL)",
    "amended AS (INSERT INTO allotment_event (hotel_id, room_type_id, kind, start_date, end_date, quantity,"
    "                                         hardblock_id, amendment_id, effective_at, created_at, created_by)"
    "  SELECT CAST(:hotel_id AS integer), CAST(:room_type_id AS integer), 'BLOCK_AMENDMENT', c.first_night,"
    "         c.after_last, c.rooms, CAST(:block_id AS integer), CAST(:amendment_id AS integer),"
    "         CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(:actor_uid AS varchar)"
    "  FROM unnest(CAST(:change_starts AS date[]), CAST(:change_ends AS date[]), CAST(:change_rooms AS integer[]))"
    "       WITH ORDINALITY AS c(first_night, after_last, rooms, n) ORDER BY c.n)",
    "reverted AS (UPDATE hardblock_amendment SET reverted_at = CAST(:now AS timestamptz)"
    "  WHERE id = CAST(:reverted_amendment_id AS integer))",
    "voided AS (UPDATE allotment_event"
    "  SET voided_at = CAST(:now AS timestamptz), voided_by = CAST(:actor_uid AS varchar)"
    "  WHERE amendment_id = CAST(:reverted_amendment_id AS integer))",
    "released AS (INSERT INTO hardblock_night_release (hardblock_id, night, cause, released_at)"
    "  SELECT CAST(:block_id AS integer), n, 'MANUAL', CAST(:now AS timestamptz)"
    "  FROM unnest(CAST(:released_nights AS date[])) AS n"
    "  ON CONFLICT ON CONSTRAINT uq_hardblock_night_release_night"
    "  DO UPDATE SET cause = 'MANUAL', released_at = excluded.released_at)",
)
# Audit entries, the key's claim and the changes alone: the end of a bulk write, the release job.
_RECORD = _write()


@dataclass(frozen=True, slots=True)
class EarlierOutcome:
    """What a used idempotency key holds."""

    request_hash: str
    outcome: Any  # None: the key was claimed by a write that records no outcome (createBooking's)


class AgencyRef(NamedTuple):
    id: int
    code: str


class RoomTypeRef(NamedTuple):
    id: int
    hotel_id: int
    code: str


@dataclass(frozen=True, slots=True)
class WriteContext:
    blocks: dict[int, Any]  # HardblockRow by id
    own_agency_id: int | None  # the agency of `agency_code` (None: none given, or not registered)
    agency: AgencyRef | None  # of `agency_id`
    room_type: RoomTypeRef | None  # of `room_type_id`
    earlier: EarlierOutcome | None
    amendment_block_id: int | None  # the block of `amendment_id`, if it exists
    amendment_events: list[tuple[int, date, date]]  # (id, first night, day after the last) of its events


Key = tuple[str, str]  # an idempotency key's scope and the key


def _key_values(key: Key | None) -> dict[str, Any]:
    scope, name = key or (None, None)
    return {"key_scope": scope, "key": name}


def _earlier_of(row: Any) -> EarlierOutcome | None:
    return None if row["earlier_hash"] is None else EarlierOutcome(row["earlier_hash"], row["earlier_outcome"])


async def read_write_context(connection: asyncpg.Connection, *, ids: Sequence[int] = (),
                             amendment_id: int | None = None, agency_code: str | None = None,
                             agency_id: int | None = None, room_type_id: int | None = None,
                             key: Key | None = None) -> WriteContext:
    """One statement, outside any transaction (see _CONTEXT)."""
    row = await _CONTEXT.fetchrow(connection, ids=list(ids), amendment_id=amendment_id, agency_code=agency_code,
                                  agency_id=agency_id, room_type_id=room_type_id, **_key_values(key))
    return WriteContext(
        blocks={b[0]: HardblockRow(*b) for b in row["blocks"]}, own_agency_id=row["own"],
        agency=None if row["agency"] is None else AgencyRef(*row["agency"]),
        room_type=None if row["room_type"] is None else RoomTypeRef(*row["room_type"]),
        earlier=_earlier_of(row), amendment_block_id=row["amendment_block"],
        amendment_events=[tuple(e) for e in row["amendment_events"]],
    )


@dataclass(frozen=True, slots=True)
class BlockRead:
    """A block and its room type's inventory, read together (see _BLOCK_STATE)."""

    block: Any  # HardblockRow
    room_type_code: str
    inventory: StayInventory  # of the block's room type over [start, end); its `now` is the database's
    start: date
    end: date
    earlier: EarlierOutcome | None
    reverted_at: datetime | None  # of the amendment asked about
    new_amendment_id: int | None  # when asked for


async def read_block_state(connection: asyncpg.Connection, block: Any, start: date | None, end: date | None, *,
                           grow: int = 0, key: Key | None = None, amendment_id: int | None = None,
                           amending: bool = False) -> BlockRead:
    """The block as it is now and its room type's inventory over [start, end) widened to its span
    (None: the span alone) and `grow` nights past its end, in one statement."""
    row = await _BLOCK_STATE.fetchrow(connection, block_id=block.id, ids=[block.room_type_id], start=start, end=end,
                                      grow=grow, amendment_id=amendment_id, amending=amending, **_key_values(key))
    return BlockRead(HardblockRow(*row["block"]), row["room_type_code"], stay_inventory(row, [block.room_type_id]),
                     row["first_night"], row["after_last"], _earlier_of(row), row["reverted_at"],
                     row["new_amendment_id"])


@dataclass(frozen=True, slots=True)
class PoolRead:
    """A room type's inventory before a new block takes from it (see _POOL_STATE)."""

    inventory: StayInventory  # its `now` is the database's
    earlier: EarlierOutcome | None
    new_block_id: int


async def read_pool_state(connection: asyncpg.Connection, hotel_id: int, room_type_id: int, start: date, end: date,
                          key: Key | None = None) -> PoolRead:
    row = await _POOL_STATE.fetchrow(connection, hotel_id=hotel_id, ids=[room_type_id], start=start, end=end,
                                     **_key_values(key))
    return PoolRead(stay_inventory(row, [room_type_id]), _earlier_of(row), row["new_block_id"])


Claim = tuple[str, str, str, Any]  # an idempotency key's scope, the key, the request's hash, its outcome


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """What one write of an existing block changes (see _WRITE_BLOCK)."""

    block: Any  # HardblockRow, as the write leaves it
    entries: Sequence[Audited]
    nights: tuple[date, date]  # the nights whose availability it changed, [first, day after the last)
    amendment: tuple[int, str, Sequence[tuple[date, date, int]]] | None = None  # (new id, reason, changes)
    reverted_amendment_id: int | None = None
    released_nights: Sequence[date] = ()


@dataclass(frozen=True, slots=True)
class Written:
    claimed: bool  # the idempotency key, if any (False: a concurrent request claimed it first)
    changes: list[tuple[int, int]]  # (outbox id, version) per change payload, in their order


def _tail_values(actor: audit.Actor, now: datetime | None, entries: Sequence[Audited], claim: Claim | None,
                 payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    scope, key, request_hash, outcome = claim or (None, None, None, None)
    return {**audit_values(actor, now, entries), "key_scope": scope, "key": key, "request_hash": request_hash,
            "outcome": outcome, **changes_by_hotel_values(payloads)}


def _written(row: Any, claim: Claim | None, payloads: Sequence[dict[str, Any]]) -> Written:
    return Written(claim is None or row["claimed"], changes_written(row, payloads))


async def insert_block(connection: asyncpg.Connection, block: Any, actor: audit.Actor, entries: Sequence[Audited],
                       claim: Claim | None, payloads: Sequence[dict[str, Any]]) -> Written | None:
    """Insert the block (its id drawn by read_pool_state), with its audit entries, the key's claim
    and the changes, in one statement; None when its reference is already taken (nothing written)."""
    values = {column: getattr(block, column) for column in HardblockRecord._fields if column != "id"}
    row = await _INSERT_BLOCK.fetchrow(connection, block_id=block.id, **values,
                                       **_tail_values(actor, block.created_at, entries, claim, payloads))
    return _written(row, claim, payloads) if row["written"] else None


async def write_block(connection: asyncpg.Connection, write: BlockWrite, actor: audit.Actor, now: datetime,
                      claim: Claim | None = None, payloads: Sequence[dict[str, Any]] = ()) -> Written:
    """Everything `write` changes, with its audit entries (at `now`), the key's claim and the
    changes (none: a bulk write records them at its end), in one statement."""
    block = write.block
    amendment_id, reason, changes = write.amendment or (None, None, ())
    row = await _WRITE_BLOCK.fetchrow(
        connection, block_id=block.id, hotel_id=block.hotel_id, room_type_id=block.room_type_id,
        start_date=block.start_date, end_date=block.end_date, status=block.status, released_at=block.released_at,
        amendment_id=amendment_id, reason=reason, change_starts=[c[0] for c in changes],
        change_ends=[c[1] for c in changes], change_rooms=[c[2] for c in changes],
        reverted_amendment_id=write.reverted_amendment_id, released_nights=list(write.released_nights),
        **_tail_values(actor, now, write.entries, claim, payloads))
    return _written(row, claim, payloads)


async def record(connection: asyncpg.Connection, actor: audit.Actor, now: datetime | None, entries: Sequence[Audited],
                 claim: Claim | None, payloads: Sequence[dict[str, Any]]) -> Written:
    """Audit entries (at `now`), the key's claim and the changes, in one statement."""
    row = await _RECORD.fetchrow(connection, **_tail_values(actor, now, entries, claim, payloads))
    return _written(row, claim, payloads)


# Nights of active blocks whose release time (midnight UTC, release_days before the night) has
# passed and that no standing release records yet. A manual release that a later live amendment
# re-grew no longer stands (effective_released_nights): its row is taken over by the automatic
# release when the night's time comes, so that release is written down too. Every worker may run
# this: the unique (block, night) index and the re-checked condition of the update give each night
# to exactly one transaction.
_SUPERSEDED = """EXISTS (SELECT 1 FROM allotment_event e
                 WHERE e.hardblock_id = {release}.hardblock_id AND e.kind = 'BLOCK_AMENDMENT'
                   AND e.voided_at IS NULL AND e.start_date <= {release}.night AND e.end_date > {release}.night
                   AND e.effective_at >= {release}.released_at)"""
# The database's clock decides what is due (`today` is the block's hotel's local date: a night is
# due from the hotel-local midnight `release_days` before it) and stamps the releases. The series'
# nights are qualified: inside the subquery a bare `night` is the release row's own column.
_RECORD_AUTO_RELEASES = Statement(f"""
WITH clock AS (SELECT statement_timestamp() AS now),
due AS (
    SELECT b.id AS hardblock_id, series.night::date AS night
    FROM hardblock b
    JOIN hotel h ON h.id = b.hotel_id
    CROSS JOIN LATERAL (SELECT CAST(timezone(h.time_zone, (SELECT now FROM clock)) AS date) AS today) AS hotel_day
    CROSS JOIN LATERAL generate_series(b.start_date, b.end_date - 1, interval '1 day') AS series(night)
    WHERE b.status = 'ACTIVE'
      AND b.start_date - b.release_days <= hotel_day.today
      AND series.night::date - b.release_days <= hotel_day.today
      AND NOT EXISTS (SELECT 1 FROM hardblock_night_release r
                      WHERE r.hardblock_id = b.id AND r.night = series.night::date
                        AND NOT {_SUPERSEDED.format(release="r")})
    ORDER BY b.id, series.night
    LIMIT CAST(:limit AS integer)
),
recorded AS (
    INSERT INTO hardblock_night_release AS existing (hardblock_id, night, cause, released_at)
    SELECT hardblock_id, night, 'AUTO', (SELECT now FROM clock) FROM due
    ON CONFLICT (hardblock_id, night) DO UPDATE SET cause = 'AUTO', released_at = excluded.released_at
        WHERE {_SUPERSEDED.format(release="existing")}
    RETURNING hardblock_id, night
)
SELECT b.id, b.hotel_id, b.room_type_id, b.agency_id, b.release_days, array_agg(r.night ORDER BY r.night) AS nights,
       (SELECT now FROM clock) AS now
FROM recorded AS r JOIN hardblock AS b ON b.id = r.hardblock_id GROUP BY b.id ORDER BY b.id
""")


@dataclass(frozen=True, slots=True)
class AutoReleased:
    """The nights of one block that released themselves, as recorded."""

    id: int
    hotel_id: int
    room_type_id: int
    agency_id: int
    release_days: int
    nights: list[date]  # sorted


async def record_auto_releases(connection: asyncpg.Connection, *,
                               limit: int = 1000) -> tuple[list[AutoReleased], datetime | None]:
    """Write down up to `limit` nights that released themselves: the blocks (by id) with their
    nights, and the database's time they were recorded at (None when there were none). One row
    per block: an array inside a record would need a decoder asyncpg may not have learnt yet."""
    rows = await connection.fetch(_RECORD_AUTO_RELEASES.sql, *_RECORD_AUTO_RELEASES.args({"limit": limit}))
    return [AutoReleased(*row[:6]) for row in rows], (rows[0]["now"] if rows else None)
