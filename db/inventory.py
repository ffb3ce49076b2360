"""Advisory locks and the per-hotel inventory version: the overbooking guard rails.

Every write that consumes or returns inventory runs in one transaction that first locks each
(hotel, room type) it touches, in sorted key order so two writers never wait on each other in
opposite orders, under `SET LOCAL lock_timeout` so a stuck holder becomes a retryable error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain import DEFAULT_TIME_ZONE

# Advisory lock keys are one bigint: (id << 8) | keyspace, so room-type locks never collide
# with other kinds of lock this service may take.
ROOM_TYPE_KEYSPACE = 1
CONTRACT_KEYSPACE = 2  # by the supplier's contract id (a hash of it): creating one is then an upsert
SUPPLIER_KEYSPACE = 3  # a supplier's sync run: session-scoped, held for the whole run
RATE_PLAN_KEYSPACE = 4  # by hotel: its plan saves, one at a time (no two plans for the same agencies)
NIGHT_AUDIT_KEYSPACE = 5  # by (hotel, business date): one worker closes a day, the others wait and read it
# By agency, its ledger lock: every entry of its ledger is written under it (so its entries' ids
# grow in commit order, and a checkpoint is final), and what it owes is read and a sale added by one
# confirmation at a time (the credit limit's check). Taken after the room types' locks, and before
# any row lock of a payment or sale order.
AGENCY_LEDGER_KEYSPACE = 6


def supplier_lock_key(supplier_id: int) -> int:
    return (supplier_id << 8) | SUPPLIER_KEYSPACE

_LOCK = text(
    "WITH setting AS MATERIALIZED (SELECT set_config('lock_timeout', :timeout, true)) "
    "SELECT pg_advisory_xact_lock(k) FROM setting, unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"
)

# Off only for the race tests (tests/api/test_*_races.py) and the benchmarks' comparator (UNSAFE_DISABLE_INVENTORY_LOCKS),
# which prove the checks fail without the lock.
locking_enabled = True


class LockTimeout(Exception):
    def __init__(self, keys: list[int], message: str | None = None) -> None:
        super().__init__(message or f"timed out waiting for the inventory lock of room types {keys}")
        self.keys = keys


def is_lock_timeout(error: DBAPIError) -> bool:
    """`lock_timeout` expired (SQLSTATE 55P03), on an advisory lock or a row lock."""
    return getattr(error.orig, "sqlstate", None) == "55P03" or "lock timeout" in str(error.orig)


def room_type_lock_key(room_type_id: int) -> int:
    return (room_type_id << 8) | ROOM_TYPE_KEYSPACE


def agency_ledger_lock_key(agency_id: int) -> int:
    return (agency_id << 8) | AGENCY_LEDGER_KEYSPACE


async def lock_room_types(session: AsyncSession, room_type_ids: Iterable[int], timeout_ms: int) -> None:
    """Take the transaction-scoped advisory locks of `room_type_ids` (sorted, deduplicated)."""
    if not session.in_transaction():
        raise RuntimeError("advisory locks must be taken inside a transaction")
    ids = sorted(set(room_type_ids))
    if not ids or not locking_enabled:
        return
    try:
        # One round trip for the timeout and all keys. set_config(..., true) is SET LOCAL; the
        # materialised CTE runs it before the sort, and the locks are taken after the sort (a
        # volatile output column is computed above the ORDER BY), which fixes their order.
        await (await session.connection()).execute(_LOCK, {"timeout": str(int(timeout_ms)),
                                                           "keys": [room_type_lock_key(i) for i in ids]})
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise LockTimeout(ids) from error
        raise


_CONTRACT_LOCK = text(
    "WITH setting AS MATERIALIZED (SELECT set_config('lock_timeout', :timeout, true)) "
    "SELECT pg_advisory_xact_lock((CAST(hashtext(:external_id) AS bigint) << 8) | :keyspace) FROM setting"
)


async def lock_contract(session: AsyncSession, external_id: str, timeout_ms: int) -> None:
    """Serialise the writers of one supplier contract id, before they read it: two first upserts of a
    new id would otherwise both find nothing and both insert. Taken before any room-type lock."""
    if not locking_enabled:
        return
    try:
        await (await session.connection()).execute(_CONTRACT_LOCK, {
            "timeout": str(int(timeout_ms)), "external_id": external_id, "keyspace": CONTRACT_KEYSPACE})
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise LockTimeout([], f"timed out waiting for another write of contract {external_id}") from error
        raise


async def lock_agency_ledger(session: AsyncSession, agency_id: int, timeout_ms: int) -> None:
    """The agency's ledger lock, for the transaction (see AGENCY_LEDGER_KEYSPACE)."""
    if not locking_enabled:
        return
    try:
        await session.execute(_LOCK, {"timeout": str(int(timeout_ms)), "keys": [agency_ledger_lock_key(agency_id)]})
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise LockTimeout([], f"timed out waiting for another write of agency {agency_id}'s ledger") from error
        raise


async def lock_rate_plans(session: AsyncSession, hotel_id: int, timeout_ms: int) -> None:
    """The hotel's rate-plan lock, for the transaction: saves of its plans one at a time."""
    try:
        await session.execute(_LOCK, {"timeout": str(int(timeout_ms)), "keys": [(hotel_id << 8) | RATE_PLAN_KEYSPACE]})
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise LockTimeout([], "timed out waiting for another save of this hotel's rate plans") from error
        raise


def night_audit_lock_key(hotel_id: int, business_date: date) -> int:
    return (((hotel_id << 20) | business_date.toordinal()) << 8) | NIGHT_AUDIT_KEYSPACE


async def lock_night_audit(session: AsyncSession, hotel_id: int, business_date: date, timeout_ms: int) -> None:
    """The (hotel, business date) audit lock, for the transaction: its audits one at a time."""
    try:
        await session.execute(_LOCK, {"timeout": str(int(timeout_ms)),
                                      "keys": [night_audit_lock_key(hotel_id, business_date)]})
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise LockTimeout([], f"timed out waiting for another night audit of {business_date.isoformat()}") from error
        raise


async def bump_version(session: AsyncSession, hotel_id: int) -> int:
    """Increase the hotel's inventory version by exactly one and return it.

    The row lock this takes is held until commit, which serialises the *commits* of one hotel's
    inventory writes (a gapless counter needs that); call it last, just before committing, so
    the critical sections of different room types still overlap.
    """
    result = await session.execute(
        text(
            "INSERT INTO inventory_version (hotel_id, version) VALUES (:hotel_id, 1) "
            "ON CONFLICT (hotel_id) DO UPDATE SET version = inventory_version.version + 1 "
            "RETURNING version"
        ),
        {"hotel_id": hotel_id},
    )
    return int(result.scalar_one())


async def current_version(session: AsyncSession, hotel_id: int) -> int:
    result = await session.execute(
        text("SELECT version FROM inventory_version WHERE hotel_id = :hotel_id"), {"hotel_id": hotel_id}
    )
    return int(result.scalar_one_or_none() or 0)


async def hotel_clock(session: AsyncSession, hotel_id: int) -> tuple[datetime, str]:
    """The database's clock and the hotel's time zone, in one statement. Decisions that compare
    against "now" inside a locked transaction take it from the database, which every app host
    shares, never from the host (hosts' clocks drift apart): `statement_timestamp()` is the time of
    this statement, after any lock the transaction waited for."""
    row = (await session.execute(
        text("SELECT statement_timestamp(), (SELECT time_zone FROM hotel WHERE id = :hotel_id)"),
        {"hotel_id": hotel_id})).one()
    return row[0], row[1] or DEFAULT_TIME_ZONE
