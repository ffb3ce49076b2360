"""The SQL of the booking writes: idempotency keys, status changes, sale order numbers, expiry.

Callers hold the room-type advisory locks (db.inventory) before changing any status here, and
take them before any row lock, so a confirm, a cancel and the sweeper never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.inventory import bump_version, lock_room_types
from db.models import SALE_ORDER_NUMBER_SEQ, Booking, BookingGroup, IdempotencyKey


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """A committed change of one hotel's inventory, for subscribers (published after commit)."""

    hotel_id: int
    version: int
    room_type_ids: list[int]
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class GroupScope:
    """What a group's bookings touch: the locks to take and the cells that change."""

    hotel_id: int
    room_type_ids: list[int]
    start: date
    end: date


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


async def attach_idempotency_key(session: AsyncSession, scope: str, key: str, group_id: int) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(group_id=group_id)
    )


async def group_scope(session: AsyncSession, group_id: int) -> GroupScope | None:
    """The (immutable) room types and nights of a group's bookings: safe to read before the lock."""
    rows = (await session.execute(
        select(Booking.hotel_id, Booking.room_type_id, Booking.check_in, Booking.check_out)
        .where(Booking.group_id == group_id)
    )).all()
    if not rows:
        return None
    return GroupScope(
        hotel_id=rows[0].hotel_id,
        room_type_ids=sorted({row.room_type_id for row in rows}),
        start=min(row.check_in for row in rows),
        end=max(row.check_out for row in rows),
    )


async def lock_group(session: AsyncSession, group_id: int) -> BookingGroup:
    """Re-read the group FOR UPDATE (call after the room-type locks): its state as of now."""
    result = await session.execute(
        select(BookingGroup)
        .where(BookingGroup.id == group_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


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
    "FROM (SELECT id FROM booking_group WHERE status = 'HELD' AND expires_at <= :now "
    "      ORDER BY expires_at LIMIT :limit) AS g "
    "JOIN booking AS b ON b.group_id = g.id"
)


async def expire_lapsed_holds(
    session: AsyncSession, now: datetime, lock_timeout_ms: int, *, limit: int = 200
) -> tuple[list[tuple[int, int]], list[InventoryChange]]:
    """One sweep: mark up to `limit` lapsed holds EXPIRED. Safe with several workers.
    Returns the expired (group id, agency id) pairs and the inventory changes per hotel.

    The candidates are read without locks, then their room types are locked (sorted), and only
    then are the groups re-read FOR UPDATE SKIP LOCKED, still HELD and lapsed: the same lock
    order as confirm and cancel, and a group another worker is expiring is skipped, not waited on.
    """
    candidates = (await session.execute(_LAPSED, {"now": now, "limit": limit})).all()
    if not candidates:
        return [], []
    await lock_room_types(session, {row.room_type_id for row in candidates}, lock_timeout_ms)
    groups = list((await session.execute(
        select(BookingGroup)
        .where(
            BookingGroup.id.in_({row.group_id for row in candidates}),
            BookingGroup.status == "HELD",
            BookingGroup.expires_at <= now,
        )
        .order_by(BookingGroup.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )).scalars())
    if not groups:
        return [], []
    await mark_expired(session, groups, audit.SYSTEM)

    expired = {group.id for group in groups}
    touched: dict[int, list] = {}
    for row in candidates:
        if row.group_id in expired:
            touched.setdefault(row.hotel_id, []).append(row)
    changes = []
    for hotel_id in sorted(touched):
        rows = touched[hotel_id]
        changes.append(InventoryChange(
            hotel_id=hotel_id,
            version=await bump_version(session, hotel_id),
            room_type_ids=sorted({row.room_type_id for row in rows}),
            start=min(row.check_in for row in rows),
            end=max(row.check_out for row in rows),
        ))
    return sorted((group.id, group.agency_id) for group in groups), changes
