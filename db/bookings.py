"""The SQL of the booking writes: idempotency keys, status changes, sale order numbers, expiry.

Callers hold the room-type advisory locks (db.inventory) before changing any status here, and
take them before any row lock, so a confirm, a cancel and the sweeper never deadlock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.inventory import lock_room_types
from db.outbox import CHANGE_TOPIC, bump_version_sql, change_parameters, change_payload
from db.models import SALE_ORDER_NUMBER_SEQ, Booking, BookingGroup, IdempotencyKey


@dataclass(frozen=True, slots=True)
class HoldItem:
    """One booking of a new hold, priced."""

    room_type_id: int
    hardblock_id: int | None
    check_in: date
    check_out: date
    rooms: int
    total_amount: Decimal
    currency: str


GROUP_PREFIX, BLOCK_PREFIX = "BG", "HB"
# A reference is random (it tells nobody how many bookings or blocks there are); a draw that is
# already taken is drawn again, which a billion-fold space makes rare.
REFERENCE_ATTEMPTS = 5
_REFERENCE_BYTES = {GROUP_PREFIX: 5, BLOCK_PREFIX: 4}


def new_reference(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(_REFERENCE_BYTES[prefix]).upper()}"


# What a group's bookings touch: (hotel id, sorted room type ids, first night, day after the last
# night). Bookings never change hotel, room type or nights, so it is safe to read before the lock.
Footprint = tuple[int, list[int], date, date]


async def claim_idempotency_key(
    session: AsyncSession, scope: str, key: str, request_hash: str
) -> IdempotencyKey | None:
    """Insert the key, or return the row a committed request already holds it with.

    ON CONFLICT DO NOTHING waits for a concurrent transaction inserting the same key, so
    concurrent retries serialise on the unique index: the later one sees the first's outcome.
    Returns None when this request claimed the key.
    """
    claimed = await session.execute(
        insert(IdempotencyKey)
        .values(scope=scope, key=key, request_hash=request_hash)
        .on_conflict_do_nothing(constraint="uq_idempotency_key_scope_key")
        .returning(IdempotencyKey.id)
    )
    if claimed.scalar_one_or_none() is not None:
        return None
    existing = await session.execute(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    return existing.scalar_one()


_INSERT_HOLD = text(
    "WITH new_group AS ("
    "  INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by, created_at)"
    "  VALUES (:reference, :agency_id, :status, :guest_name, :expires_at, :created_by, :created_at)"
    # A reference already taken (random, so rarely) writes nothing at all: every other part of the
    # statement, the version bump included, is driven by new_group's row; insert_hold retries.
    "  ON CONFLICT (reference) DO NOTHING RETURNING id"
    "), new_bookings AS ("
    "  INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, hardblock_id, check_in, check_out, rooms,"
    "                       status, expires_at, total_amount, currency)"
    "  SELECT new_group.id, :agency_id, :hotel_id, item.room_type_id, item.hardblock_id, item.check_in,"
    "         item.check_out, item.rooms, :status, :expires_at, item.total_amount, item.currency"
    "  FROM new_group, unnest(CAST(:room_type_ids AS integer[]), CAST(:hardblock_ids AS integer[]),"
    "                         CAST(:check_ins AS date[]), CAST(:check_outs AS date[]), CAST(:rooms AS integer[]),"
    "                         CAST(:totals AS numeric[]), CAST(:currencies AS varchar[]))"
    "       WITH ORDINALITY AS item(room_type_id, hardblock_id, check_in, check_out, rooms, total_amount, currency, n)"
    "  ORDER BY item.n"
    "), new_entry AS ("
    "  INSERT INTO audit_log (at, actor_uid, actor_role, agency_code, action, entity_type, entity_id, after,"
    "                         request_id)"
    "  SELECT CAST(:created_at AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "         CAST(:actor_agency AS varchar), 'booking_group.created', 'BookingGroup', new_group.id,"
    "         CAST(:after AS jsonb), CAST(:request_id AS varchar)"
    "  FROM new_group"
    "), keyed AS ("
    "  UPDATE idempotency_key SET group_id = new_group.id FROM new_group"
    "  WHERE idempotency_key.scope = :key_scope AND idempotency_key.key = :key"
    f"), version AS ({bump_version_sql('SELECT CAST(:hotel_id AS integer), 1 FROM new_group')}"
    "), change AS ("
    f"  INSERT INTO outbox (topic, payload) SELECT '{CHANGE_TOPIC}', "
    + change_payload("jsonb_build_array(jsonb_build_array(new_group.id, CAST(:agency_id AS integer)))")
    + "  FROM new_group, version RETURNING id"
    ") "
    "SELECT new_group.id, version.version, change.id AS change_id FROM new_group, version, change"
).bindparams(bindparam("after", type_=JSONB), bindparam("blocks", type_=JSONB))


async def insert_hold(
    session: AsyncSession,
    group: BookingGroup,
    bookings: Sequence[HoldItem],
    actor: audit.Actor,
    audit_after: dict,
    idempotency: tuple[str, str],
    footprint: Footprint,
) -> tuple[int, int]:
    """Write a new HELD group in one statement: the group, its bookings (in order), its
    `booking_group.created` audit entry, its idempotency key's link, the hotel's version bump
    (last, as `bump_version` asks) and the change's outbox row. Sets `group.id`; returns the new
    inventory version and the outbox row's id.

    The whole write is one round trip because it runs inside the critical section, where every
    round trip is time the room types' advisory locks are held.
    """
    scope, key = idempotency
    hotel_id, room_type_ids, start, end = footprint
    connection = await session.connection()
    parameters = {
        **change_parameters(hotel_id, room_type_ids, start, end, (), ()),
        "reference": group.reference, "agency_id": group.agency_id, "status": group.status,
        "guest_name": group.guest_name, "expires_at": group.expires_at, "created_by": group.created_by,
        "created_at": group.created_at,
        "room_type_ids": [b.room_type_id for b in bookings], "hardblock_ids": [b.hardblock_id for b in bookings],
        "check_ins": [b.check_in for b in bookings], "check_outs": [b.check_out for b in bookings],
        "rooms": [b.rooms for b in bookings], "totals": [b.total_amount for b in bookings],
        "currencies": [b.currency for b in bookings],
        "actor_uid": actor.uid, "actor_role": actor.role, "actor_agency": actor.agency_code,
        "request_id": actor.request_id, "after": audit_after, "key_scope": scope, "key": key,
    }
    for _ in range(REFERENCE_ATTEMPTS):
        row = (await connection.execute(_INSERT_HOLD, parameters)).one_or_none()
        if row is not None:
            group.id = row.id
            return int(row.version), int(row.change_id)
        group.reference = parameters["reference"] = new_reference(GROUP_PREFIX)  # taken: draw again
    raise RuntimeError(f"{REFERENCE_ATTEMPTS} random booking references in a row were taken")


async def group_footprint(session: AsyncSession, group_id: int) -> Footprint | None:
    rows = (await session.execute(
        select(Booking.hotel_id, Booking.room_type_id, Booking.check_in, Booking.check_out)
        .where(Booking.group_id == group_id)
    )).all()
    if not rows:
        return None
    return (rows[0].hotel_id, sorted({row.room_type_id for row in rows}), min(row.check_in for row in rows),
            max(row.check_out for row in rows))


async def lock_group(session: AsyncSession, group_id: int) -> tuple[BookingGroup, datetime]:
    """Re-read the group FOR UPDATE (call after the room-type locks): its state as of now, and the
    database's clock for that now (decide expiry with it, not the host's)."""
    result = await session.execute(
        select(BookingGroup, func.statement_timestamp())
        .where(BookingGroup.id == group_id)
        .with_for_update(of=BookingGroup)
        .execution_options(populate_existing=True)
    )
    group, now = result.one()
    return group, now


async def set_bookings_status(
    session: AsyncSession, group_ids: Sequence[int], status: str
) -> list[tuple[Decimal, str]]:
    """Bookings carry their group's status (denormalised for the availability scan).
    Returns the frozen (amount, currency) of each booking changed."""
    result = await session.execute(
        update(Booking)
        .where(Booking.group_id.in_(list(group_ids)))
        .values(status=status)
        .returning(Booking.total_amount, Booking.currency)
        .execution_options(synchronize_session=False)
    )
    return [(amount, currency) for amount, currency in result]


async def next_sale_order_number(session: AsyncSession, now: datetime) -> str:
    number = (await session.execute(select(SALE_ORDER_NUMBER_SEQ.next_value()))).scalar_one()
    return f"SO-{now.year}-{number:06d}"


def expiry_snapshot(group: BookingGroup | dict) -> dict:
    return audit.snapshot(group, "status", "expires_at")


async def mark_expired(
    session: AsyncSession, groups: Sequence[BookingGroup], actor: audit.Actor
) -> None:
    """Record lapsed holds as EXPIRED, audited. Their rooms stopped counting at `expires_at`
    already; this only writes down what time did."""
    for group in groups:
        before = expiry_snapshot(group)
        group.status = "EXPIRED"
        audit.record(session, actor, "booking_group.expired", "BookingGroup", group.id,
                     before=before, after=expiry_snapshot(group))
    await set_bookings_status(session, [group.id for group in groups], "EXPIRED")
    await session.flush()


_LAPSED = text(
    "SELECT g.id AS group_id, b.hotel_id, b.room_type_id, b.check_in, b.check_out "
    "FROM (SELECT id FROM booking_group WHERE status = 'HELD' AND expires_at <= statement_timestamp() "
    "      ORDER BY expires_at LIMIT :limit) AS g "
    "JOIN booking AS b ON b.group_id = g.id"
)


async def expire_lapsed_holds(
    session: AsyncSession, lock_timeout_ms: int, *, limit: int = 200
) -> list[tuple[BookingGroup, list[Any]]]:
    """One sweep: mark up to `limit` lapsed holds EXPIRED. Safe with several workers. Returns
    each expired group with its bookings' (hotel_id, room_type_id, check_in, check_out) rows.

    The candidates are read without locks, then their room types are locked (sorted), and only
    then are the groups re-read FOR UPDATE SKIP LOCKED, still HELD and lapsed: the same lock
    order as confirm and cancel, and a group another worker is expiring is skipped, not waited on.
    """
    candidates = (await session.execute(_LAPSED, {"limit": limit})).all()
    if not candidates:
        return []
    await lock_room_types(session, {row.room_type_id for row in candidates}, lock_timeout_ms)
    groups = list((await session.execute(
        select(BookingGroup)
        .where(
            BookingGroup.id.in_({row.group_id for row in candidates}),
            BookingGroup.status == "HELD",
            BookingGroup.expires_at <= func.statement_timestamp(),
        )
        .order_by(BookingGroup.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )).scalars())
    if groups:
        await mark_expired(session, groups, audit.SYSTEM)
    return [(group, [row for row in candidates if row.group_id == group.id]) for group in groups]
