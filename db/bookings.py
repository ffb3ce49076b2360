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

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit, models
from db.audit import AUDIT_ENTRIES, Audited, audit_values
from db.calendar import StayInventory, plain_row, row_record, stay_inventory, stay_inventory_columns
from db.fastpath import Statement
from db.ledger import checkpoint_columns, combined
from db.outbox import (
    BUMP_VERSION,
    CHANGE_TOPIC,
    CHANGES_WRITTEN,
    bump_version_sql,
    change_parameters,
    change_payload,
    changes_by_hotel,
    changes_by_hotel_values,
    changes_written,
)
from db.models import BookingGroup, IdempotencyKey, SaleOrder
from domain import AgencyTerms, LedgerEntry, LedgerKind, Money, PaymentTerms, paid


@dataclass(frozen=True, slots=True)
class HoldItem:
    """One booking of a new hold, priced."""

    room_type_id: int
    hardblock_id: int | None
    check_in: date
    check_out: date
    rooms: int
    total_amount: Decimal  # sell, for all the rooms
    currency: str
    net_amount: Decimal | None = None
    nights: str = "[]"  # the frozen breakdown, JSON (models.Booking.nights)


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


# The hold's write, one statement: the group (a reference already taken, random so rarely, writes
# nothing at all: insert_hold draws again), the idempotency key's claim naming it (a key a
# concurrent request holds writes nothing further: the caller rolls back), then, driven by the
# claim's row, the bookings (in order), the `booking_group.created` audit entry, the hotel's
# version bump (last, as `bump_version` asks) and the change's outbox row. The key's row may name
# the group inserted beside it: foreign keys are checked at the end of the statement.
_INSERT_HOLD = Statement(
    "WITH new_group AS ("
    "  INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by, created_at)"
    "  VALUES (:reference, :agency_id, :status, :guest_name, :expires_at, :created_by, :created_at)"
    "  ON CONFLICT (reference) DO NOTHING RETURNING id"
    "), claim AS ("
    "  INSERT INTO idempotency_key (scope, key, request_hash, group_id)"
    "  SELECT CAST(:key_scope AS varchar), CAST(:key AS varchar), CAST(:request_hash AS varchar), new_group.id"
    "  FROM new_group ON CONFLICT ON CONSTRAINT uq_idempotency_key_scope_key DO NOTHING RETURNING group_id AS id"
    "), new_bookings AS ("
    "  INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, hardblock_id, check_in, check_out, rooms,"
    "                       status, expires_at, total_amount, currency, net_amount, nights, rate_plan_id,"
    "                       rate_plan_version)"
    "  SELECT claim.id, :agency_id, :hotel_id, item.room_type_id, item.hardblock_id, item.check_in,"
    "         item.check_out, item.rooms, :status, :expires_at, item.total_amount, item.currency, item.net_amount,"
    "         CAST(item.nights AS jsonb), CAST(:rate_plan_id AS integer), CAST(:rate_plan_version AS integer)"
    "  FROM claim, unnest(CAST(:room_type_ids AS integer[]), CAST(:hardblock_ids AS integer[]),"
    "                     CAST(:check_ins AS date[]), CAST(:check_outs AS date[]), CAST(:rooms AS integer[]),"
    "                     CAST(:totals AS numeric[]), CAST(:currencies AS varchar[]), CAST(:nets AS numeric[]),"
    "                     CAST(:nights AS text[]))"
    "       WITH ORDINALITY AS item(room_type_id, hardblock_id, check_in, check_out, rooms, total_amount, currency,"
    "                               net_amount, nights, n)"
    "  ORDER BY item.n"
    "), new_entry AS ("
    "  INSERT INTO audit_log (at, actor_uid, actor_role, agency_code, action, entity_type, entity_id, after,"
    "                         request_id)"
    "  SELECT CAST(:created_at AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "         CAST(:actor_agency AS varchar), 'booking_group.created', 'BookingGroup', claim.id,"
    "         CAST(:after AS jsonb), CAST(:request_id AS varchar)"
    "  FROM claim"
    f"), version AS ({bump_version_sql('SELECT CAST(:hotel_id AS integer), 1 FROM claim')}"
    "), change AS ("
    f"  INSERT INTO outbox (topic, payload) SELECT '{CHANGE_TOPIC}', "
    + change_payload("jsonb_build_array(jsonb_build_array(claim.id, CAST(:agency_id AS integer)))")
    + "  FROM claim, version RETURNING id"
    ") "
    "SELECT (SELECT id FROM new_group) AS group_id, claim.id AS claimed, version.version, change.id AS change_id "
    "FROM (SELECT 1) AS one LEFT JOIN claim ON true LEFT JOIN version ON true LEFT JOIN change ON true"
)


class KeyTaken(Exception):
    """The idempotency key was claimed by a concurrent request that committed first: roll back and
    answer as a retry would."""


async def insert_hold(
    connection: asyncpg.Connection,
    group: BookingGroup,
    bookings: Sequence[HoldItem],
    actor: audit.Actor,
    audit_after: dict,
    idempotency: tuple[str, str, str],
    footprint: Footprint,
    rate_plan: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Write a new HELD group in one statement (see _INSERT_HOLD), inside the transaction that
    holds the room types' locks. Sets `group.id`; returns the new inventory version and the outbox
    row's id. KeyTaken when the key was claimed meanwhile (the caller must roll back).

    One round trip, because it runs inside the critical section, where every round trip is time
    the room types' advisory locks are held.
    """
    scope, key, request_hash = idempotency
    hotel_id, room_type_ids, start, end = footprint
    values = {
        **change_parameters(hotel_id, room_type_ids, start, end, (), ()),
        "reference": group.reference, "agency_id": group.agency_id, "status": group.status,
        "guest_name": group.guest_name, "expires_at": group.expires_at, "created_by": group.created_by,
        "created_at": group.created_at,
        "room_type_ids": [b.room_type_id for b in bookings], "hardblock_ids": [b.hardblock_id for b in bookings],
        "check_ins": [b.check_in for b in bookings], "check_outs": [b.check_out for b in bookings],
        "rooms": [b.rooms for b in bookings], "totals": [b.total_amount for b in bookings],
        "currencies": [b.currency for b in bookings], "nets": [b.net_amount for b in bookings],
        "nights": [b.nights for b in bookings],
        "rate_plan_id": rate_plan and rate_plan[0], "rate_plan_version": rate_plan and rate_plan[1],
        "actor_uid": actor.uid, "actor_role": actor.role, "actor_agency": actor.agency_code,
        "request_id": actor.request_id, "after": audit_after, "key_scope": scope, "key": key,
        "request_hash": request_hash,
    }
    for _ in range(REFERENCE_ATTEMPTS):
        row = await _INSERT_HOLD.fetchrow(connection, **values)
        if row["group_id"] is None:  # the reference is taken: draw again
            group.reference = values["reference"] = new_reference(GROUP_PREFIX)
            if "reference" in audit_after:  # the audit entry names the reference the group gets
                values["after"] = {**audit_after, "reference": group.reference}
            continue
        if row["claimed"] is None:
            raise KeyTaken(key)
        group.id = row["group_id"]
        return int(row["version"]), int(row["change_id"])
    raise RuntimeError(f"{REFERENCE_ATTEMPTS} random booking references in a row were taken")


# --- the reads of a hold: before any transaction, and under the locks ---------------------------

RoomTypeRecord, _ROOM_TYPE_ROW = row_record(models.RoomType)
HardblockRecord, _HARDBLOCK_ROW = row_record(models.Hardblock)
_GroupRecord, _GROUP_ROW = row_record(models.BookingGroup)


GroupRow = plain_row(_GroupRecord, "GroupRow")


def _earlier(scope: str) -> str:
    """The select-list entries of what an idempotency key already holds: its request's hash, and
    its group (a row of booking_group's columns)."""
    match = f"k.scope = {scope} AND k.key = CAST(:key AS varchar)"
    return (f"(SELECT k.request_hash FROM idempotency_key AS k WHERE {match}) AS earlier_hash, "
            f"(SELECT {_GROUP_ROW} FROM idempotency_key AS k JOIN booking_group AS x ON x.id = k.group_id "
            f"WHERE {match}) AS earlier_group")


# Who acts (staff name the agency by id, agents are theirs by code), the items' room types and
# blocks, what the key already holds (a quote has none), and the inventory with the agency's plan:
# all a request needs before deciding.
def _context_sql(keyed: bool) -> str:
    return (
        "WITH acting AS (SELECT a.id, a.code FROM agency AS a WHERE a.id = CAST(:agency_id AS integer)"
        "  OR (CAST(:agency_id AS integer) IS NULL AND a.code = CAST(:agency_code AS varchar))) "
        "SELECT (SELECT ROW(acting.id, acting.code) FROM acting) AS agency, "
        f"ARRAY(SELECT {_ROOM_TYPE_ROW} FROM room_type AS x WHERE x.id = ANY(CAST(:ids AS integer[]))) AS room_types, "
        f"ARRAY(SELECT {_HARDBLOCK_ROW} FROM hardblock AS x WHERE x.id = ANY(CAST(:block_ids AS integer[]))) AS blocks, "
        + (_earlier("(SELECT code FROM acting)") + ", " if keyed else "")
        + stay_inventory_columns("(SELECT x.hotel_id FROM room_type AS x WHERE x.id = (CAST(:ids AS integer[]))[1])",
                                 agency="(SELECT id FROM acting)")
    )


_HOLD_CONTEXT = Statement(_context_sql(keyed=True))
_QUOTE_CONTEXT = Statement(_context_sql(keyed=False))
_LOCKED_READ = Statement("SELECT " + _earlier("CAST(:scope AS varchar)") + ", "
                         + stay_inventory_columns(agency="CAST(:agency_id AS integer)"))


@dataclass(frozen=True, slots=True)
class Earlier:
    """What a used idempotency key holds."""

    request_hash: str
    group: BookingGroup | None


@dataclass(frozen=True, slots=True)
class HoldContext:
    agency: tuple[int, str] | None  # (id, code)
    room_types: dict[int, Any]  # RoomTypeRecord by id
    blocks: dict[int, Any]  # HardblockRecord by id
    earlier: Earlier | None
    inventory: StayInventory  # of the hotel of the smallest room type id


def _earlier_of(row: asyncpg.Record) -> Earlier | None:
    if row.get("earlier_hash") is None:
        return None
    group = row["earlier_group"]
    return Earlier(row["earlier_hash"], None if group is None else GroupRow(*group))


async def read_hold_context(connection: asyncpg.Connection, *, agency_id: int | None, agency_code: str | None,
                            room_type_ids: list[int], block_ids: list[int], key: str | None, start: date,
                            end: date) -> HoldContext:
    """One statement, outside any transaction (`room_type_ids` sorted). Without a `key` (a quote),
    `earlier` is None."""
    values = {"agency_id": agency_id, "agency_code": agency_code, "ids": room_type_ids, "block_ids": block_ids,
              "start": start, "end": end}
    if key is None:
        row = await _QUOTE_CONTEXT.fetchrow(connection, **values)
    else:
        row = await _HOLD_CONTEXT.fetchrow(connection, key=key, **values)
    return HoldContext(
        agency=None if row["agency"] is None else tuple(row["agency"]),
        room_types={r[0]: RoomTypeRecord(*r) for r in row["room_types"]},
        blocks={b[0]: HardblockRecord(*b) for b in row["blocks"]},
        earlier=_earlier_of(row),
        inventory=stay_inventory(row, room_type_ids),
    )


async def read_locked(connection: asyncpg.Connection, hotel_id: int, room_type_ids: list[int], start: date,
                      end: date, agency_id: int, scope: str, key: str) -> tuple[StayInventory, Earlier | None]:
    """Under the locks: the inventory with the agency's rate plan (the version committed when this
    read starts), and the key as a request that held them before left it."""
    row = await _LOCKED_READ.fetchrow(connection, hotel_id=hotel_id, ids=room_type_ids, start=start, end=end,
                                      agency_id=agency_id, scope=scope, key=key)
    return stay_inventory(row, room_type_ids), _earlier_of(row)


def expiry_snapshot(group: BookingGroup | dict) -> dict:
    return audit.snapshot(group, "status", "expires_at")


# --- confirm, cancel and a lapsed hold's expiry, on asyncpg (the same round trips as the hold) ----

# jsonb does not decode inside a record (asyncpg hands its binary form to the text codec): the
# frozen policy is read on its own, as text (LockedGroup.sale_rules).
_SaleOrderRecord, _SALE_ORDER_ROW = row_record(models.SaleOrder, "cancellation_rules")
SaleOrderRow = plain_row(_SaleOrderRecord, "SaleOrderRow")

_CHANGE = (
    f"version AS ({BUMP_VERSION}), "
    f"change AS (INSERT INTO outbox (topic, payload) SELECT '{CHANGE_TOPIC}', {change_payload()} FROM version"
    " RETURNING id)"
)

# The group and its footprint, and (for agents) their agency's id: what confirm and cancel check
# before taking any lock.
_GROUP_CONTEXT = Statement(
    f"SELECT (SELECT {_GROUP_ROW} FROM booking_group AS x WHERE x.id = CAST(:id AS integer)) AS grp, "
    "(SELECT ROW(min(b.hotel_id), array_agg(DISTINCT b.room_type_id), min(b.check_in), max(b.check_out))"
    "   FROM booking AS b WHERE b.group_id = CAST(:id AS integer) HAVING count(*) > 0) AS footprint, "
    "(SELECT a.id FROM agency AS a WHERE a.code = CAST(:agency_code AS varchar)) AS own"
)
# Under the room types' locks (and the agency's ledger lock, for a confirmation or a cancel): the group as of
# now (FOR UPDATE: expiry may have won), the database's clock, the bookings' frozen prices, the
# group's sale order, and what the payment rules need: the agency's terms and ledger, the group's
# ledger, the stay's first night and hotel zone, and the cancellation policy of its rate plan (or
# its hotel's).
_LOCK_GROUP = Statement(
    f"SELECT {_GROUP_ROW} AS grp, statement_timestamp() AS now, "
    "ARRAY(SELECT ROW(b.total_amount, b.currency) FROM booking AS b WHERE b.group_id = x.id ORDER BY b.id) AS prices, "
    f"(SELECT {_SALE_ORDER_ROW.replace('x.', 'o.')} FROM sale_order AS o WHERE o.group_id = x.id) AS sale_order, "
    "(SELECT ROW(a.payment_terms, a.credit_limit, a.credit_currency, a.deposit_percent, a.balance_due_days)"
    "   FROM agency AS a WHERE a.id = x.agency_id) AS terms, "
    # What the agency owes (its checkpoint and the entries after it) matters only against a
    # credit limit: without one it is not read.
    + checkpoint_columns("x.agency_id", "EXISTS (SELECT 1 FROM agency AS c WHERE c.id = x.agency_id"
                                        " AND c.credit_limit IS NOT NULL)") + ", "
    # The group's ledger summed per kind and currency (domain.payments adds them up).
    "ARRAY(SELECT ROW(l.kind, l.currency, sum(l.amount)) FROM ledger_entry AS l WHERE l.group_id = x.id"
    "  GROUP BY l.kind, l.currency) AS group_ledger, "
    "(SELECT CAST(o.cancellation_rules AS text) FROM sale_order AS o WHERE o.group_id = x.id) AS sale_rules, "
    "(SELECT ROW(s.check_in, h.time_zone, CAST(COALESCE(p.cancellation_rules, h.cancellation_rules) AS text))"
    "   FROM (SELECT min(b.check_in) AS check_in, min(b.hotel_id) AS hotel_id, min(b.rate_plan_id) AS plan_id"
    "         FROM booking AS b WHERE b.group_id = x.id) AS s"
    "   JOIN hotel AS h ON h.id = s.hotel_id LEFT JOIN rate_plan AS p ON p.id = s.plan_id) AS stay "
    "FROM booking_group AS x WHERE x.id = CAST(:id AS integer) FOR UPDATE OF x"
)
_CONFIRM = Statement(
    "WITH g AS (UPDATE booking_group SET status = 'CONFIRMED', confirmed_at = CAST(:now AS timestamptz)"
    "           WHERE id = CAST(:id AS integer)), "
    "b AS (UPDATE booking SET status = 'CONFIRMED' WHERE group_id = CAST(:id AS integer)), "
    "o AS (INSERT INTO sale_order (number, group_id, agency_id, status, total_amount, currency, confirmed_at,"
    "                              cancellation_rules, balance_due_at)"
    "      SELECT 'SO-' || CAST(:year AS text) || '-' || lpad(CAST(n AS text), greatest(6, length(CAST(n AS text))), '0'),"
    "             CAST(:id AS integer), CAST(:agency_id AS integer), 'CONFIRMED', CAST(:total AS numeric),"
    "             CAST(:currency AS varchar), CAST(:now AS timestamptz), CAST(:cancellation_rules AS jsonb),"
    "             CAST(:balance_due_at AS timestamptz)"
    "      FROM (SELECT nextval('sale_order_number_seq') AS n) AS seq RETURNING *), "
    # The sale on the agency's ledger, in the same statement: what it owes is never behind its sales.
    "l AS (INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id, created_by)"
    "      SELECT o.agency_id, 'SALE', o.total_amount, o.currency, o.group_id, o.id, CAST(:actor_uid AS varchar)"
    "      FROM o), "
    f"a AS ({AUDIT_ENTRIES} UNION ALL"
    "      SELECT CAST(:now AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "             CAST(:actor_agency AS varchar), 'sale_order.created', 'SaleOrder', o.id, NULL,"
    "             jsonb_build_object('number', o.number, 'group', CAST(:reference AS text), 'status', 'CONFIRMED',"
    "                                'total', CAST(:total_snapshot AS jsonb)), CAST(:request_id AS varchar) FROM o), "
    f"{_CHANGE} "
    f"SELECT {_SALE_ORDER_ROW.replace('x.', 'o.')} AS sale_order, version.version, change.id AS change_id"
    " FROM o, version, change"
)
# Status changes without a sale order of their own: a lapsed hold written down as EXPIRED, a
# cancellation (and its sale order's, if any: their audit entries are computed here).
_SET_STATUS = Statement(
    "WITH g AS (UPDATE booking_group SET status = CAST(:status AS varchar),"
    "           cancelled_at = CASE WHEN CAST(:status AS varchar) = 'CANCELLED' THEN CAST(:now AS timestamptz)"
    "                          ELSE cancelled_at END WHERE id = CAST(:id AS integer)), "
    "b AS (UPDATE booking SET status = CAST(:status AS varchar) WHERE group_id = CAST(:id AS integer)), "
    "o AS (UPDATE sale_order SET status = 'CANCELLED', cancelled_at = CAST(:now AS timestamptz),"
    "             cancellation_fee = CAST(:fee AS numeric)"
    "      WHERE group_id = CAST(:id AS integer) AND status = 'CONFIRMED' AND CAST(:status AS varchar) = 'CANCELLED'"
    "      RETURNING id, number, agency_id, group_id, currency), "
    # The cancellation on the agency's ledger, in the same statement (domain cancellation_entries:
    # a credit note of the total, and the fee): what it owes is never behind its cancellations.
    "l AS (INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id, created_by)"
    "      SELECT o.agency_id, e.kind, e.amount, o.currency, o.group_id, o.id, CAST(:actor_uid AS varchar)"
    "      FROM o, unnest(CAST(:ledger_kinds AS varchar[]), CAST(:ledger_amounts AS numeric[])) AS e(kind, amount)), "
    f"a AS ({AUDIT_ENTRIES} UNION ALL"
    "      SELECT CAST(:now AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "             CAST(:actor_agency AS varchar), 'sale_order.cancelled', 'SaleOrder', o.id,"
    "             jsonb_build_object('number', o.number, 'status', 'CONFIRMED'),"
    "             jsonb_build_object('number', o.number, 'status', 'CANCELLED', 'reason', CAST(:reason AS text),"
    "                                'cancellation_fee', CAST(:fee AS text)),"
    "             CAST(:request_id AS varchar) FROM o), "
    f"{_CHANGE} "
    "SELECT version.version, change.id AS change_id FROM version, change"
)


@dataclass(frozen=True, slots=True)
class GroupContext:
    group: BookingGroup | None
    footprint: Footprint | None
    own_agency_id: int | None  # the agent's agency (None: staff, or not registered)


async def read_group_context(connection: asyncpg.Connection, group_id: int, agency_code: str | None) -> GroupContext:
    row = await _GROUP_CONTEXT.fetchrow(connection, id=group_id, agency_code=agency_code)
    footprint = None
    if row["footprint"] is not None:
        hotel_id, room_type_ids, start, end = row["footprint"]
        footprint = (hotel_id, sorted(room_type_ids), start, end)
    group = None if row["grp"] is None else GroupRow(*row["grp"])
    return GroupContext(group, footprint, row["own"])


@dataclass(frozen=True, slots=True)
class LockedGroup:
    group: BookingGroup
    now: datetime  # the database's
    prices: list[tuple[Decimal, str]]  # each booking's frozen total and currency
    sale_order: SaleOrder | None
    terms: AgencyTerms  # how the group's agency pays
    agency_ledger: list[LedgerEntry]  # the agency's ledger, one entry per kind and currency (summed; empty
    # without a credit limit, which is all it is read for)
    ledger_read: tuple[int, int]  # entries read past the agency's checkpoint, and the last one's id
    group_ledger: list[LedgerEntry]  # the group's, likewise
    check_in: date  # the stay's first night
    time_zone: str  # its hotel's
    cancellation_rules: list[dict[str, Any]] | None  # its rate plan's policy, else its hotel's (None: free)
    sale_rules: list[dict[str, Any]] | None  # the policy frozen on its sale order (None: free, or no sale)


    def paid_in(self, currency: str) -> Money:
        """What was paid towards the group and kept, in `currency` (domain.payments `paid`)."""
        return paid((e for e in self.group_ledger if e.amount.currency == currency), currency)


def ledger_entries(sums: Sequence[Any]) -> list[LedgerEntry]:
    """Rows of (kind, currency, amount), as ledger sums are read, as domain entries."""
    return [LedgerEntry(LedgerKind(kind), Money(amount, currency)) for kind, currency, amount in sums]


def agency_terms(row: Any) -> AgencyTerms:
    """An agency's (payment_terms, credit_limit, credit_currency, deposit_percent, balance_due_days)."""
    terms, limit, currency, deposit_percent, balance_due_days = row
    return AgencyTerms(PaymentTerms(terms), None if limit is None else Money(limit, currency), deposit_percent,
                       balance_due_days)


async def lock_group_raw(connection: asyncpg.Connection, group_id: int) -> LockedGroup:
    row = await _LOCK_GROUP.fetchrow(connection, id=group_id)
    order = None if row["sale_order"] is None else SaleOrderRow(*row["sale_order"])
    check_in, time_zone, rules = row["stay"]
    agency_sums, tail_count, last_id = combined(row["checkpoint"], row["ledger_tail"])
    return LockedGroup(GroupRow(*row["grp"]), row["now"], [tuple(p) for p in row["prices"]], order,
                       agency_terms(row["terms"]), ledger_entries(agency_sums), (tail_count, last_id),
                       ledger_entries(row["group_ledger"]), check_in, time_zone, _json(rules), _json(row["sale_rules"]))


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _write_values(actor: audit.Actor, now: datetime, entries: Sequence[Audited], group: BookingGroup,
                  footprint: Footprint) -> dict[str, Any]:
    hotel_id, room_type_ids, start, end = footprint
    return {**change_parameters(hotel_id, room_type_ids, start, end, [(group.id, group.agency_id)], ()),
            "id": group.id, **audit_values(actor, now, entries)}


async def confirm_group(connection: asyncpg.Connection, group: BookingGroup, now: datetime, total: tuple[Decimal, str],
                        total_snapshot: dict, entries: Sequence[Audited], actor: audit.Actor,
                        footprint: Footprint, cancellation_rules: list[dict[str, Any]] | None = None,
                        balance_due_at: datetime | None = None) -> tuple[SaleOrder, int, int]:
    """CONFIRMED with its sale order (numbered from the sequence; the cancellation policy and the
    balance's due date frozen on it) and the sale on the agency's ledger, audited, versioned, in
    the outbox: one statement. Returns the sale order, the new version and the outbox row's id."""
    row = await _CONFIRM.fetchrow(connection, **_write_values(actor, now, entries, group, footprint),
                                  year=str(now.year), agency_id=group.agency_id, total=total[0], currency=total[1],
                                  reference=group.reference, total_snapshot=total_snapshot,
                                  cancellation_rules=cancellation_rules, balance_due_at=balance_due_at)
    return SaleOrderRow(*row["sale_order"]), int(row["version"]), int(row["change_id"])


async def set_group_status(connection: asyncpg.Connection, group: BookingGroup, status: str, now: datetime,
                           entries: Sequence[Audited], actor: audit.Actor, footprint: Footprint,
                           reason: str | None = None, fee: Decimal | None = None,
                           ledger: Sequence[LedgerEntry] = ()) -> tuple[int, int]:
    """EXPIRED or CANCELLED (a cancellation cancels a confirmed sale order too, with its `fee`,
    and posts `ledger`: its cancellation_entries), audited, versioned, in the outbox: one
    statement. Returns the new version and the outbox row's id."""
    row = await _SET_STATUS.fetchrow(connection, **_write_values(actor, now, entries, group, footprint),
                                     status=status, reason=reason, fee=fee,
                                     ledger_kinds=[entry.kind.value for entry in ledger],
                                     ledger_amounts=[entry.amount.amount for entry in ledger])
    return int(row["version"]), int(row["change_id"])


# --- the sweeper: lapsed holds written down as EXPIRED, many at once ------------------------------

# Lapsed holds (as of the database's clock) and their bookings' footprints, read without locks.
_LAPSED = Statement(
    "SELECT g.id AS group_id, b.hotel_id, b.room_type_id, b.check_in, b.check_out "
    "FROM (SELECT id FROM booking_group WHERE status = 'HELD' AND expires_at <= statement_timestamp() "
    "      ORDER BY expires_at LIMIT CAST(:limit AS integer)) AS g "
    "JOIN booking AS b ON b.group_id = g.id"
)
# Under the room types' locks: those still HELD and lapsed; one another worker is expiring is
# skipped, not waited on.
_LOCK_LAPSED = Statement(
    f"SELECT {_GROUP_ROW} AS grp, statement_timestamp() AS now FROM booking_group AS x "
    "WHERE x.id = ANY(CAST(:ids AS integer[])) AND x.status = 'HELD' AND x.expires_at <= statement_timestamp() "
    "ORDER BY x.id FOR UPDATE OF x SKIP LOCKED"
)
# Statuses, audit entries, and one version bump and outbox row per hotel.
_EXPIRE = Statement(
    "WITH g AS (UPDATE booking_group SET status = 'EXPIRED' WHERE id = ANY(CAST(:group_ids AS integer[]))), "
    "b AS (UPDATE booking SET status = 'EXPIRED' WHERE group_id = ANY(CAST(:group_ids AS integer[]))), "
    f"a AS ({AUDIT_ENTRIES}), {changes_by_hotel()} "
    f"SELECT {CHANGES_WRITTEN}"
)


async def lapsed_holds(connection: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(_LAPSED.sql, *_LAPSED.args({"limit": limit}))


async def lock_lapsed(connection: asyncpg.Connection, group_ids: list[int]) -> tuple[list[Any], datetime | None]:
    """The groups still HELD and lapsed, locked (as of now: confirm or cancel may have won), and
    the database's clock (None when there are none)."""
    rows = await connection.fetch(_LOCK_LAPSED.sql, *_LOCK_LAPSED.args({"ids": group_ids}))
    return [GroupRow(*row["grp"]) for row in rows], (rows[0]["now"] if rows else None)


async def expire_groups(connection: asyncpg.Connection, groups: Sequence[Any], now: datetime,
                        entries: Sequence[Audited], payloads: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """Write the groups down as EXPIRED, audited, with one version bump and outbox row per change
    payload (one per hotel, in hotel order; the version each gets replaces theirs). Returns
    (outbox id, version) per payload, in their order."""
    row = await _EXPIRE.fetchrow(connection, group_ids=[g.id for g in groups],
                                 **audit_values(audit.SYSTEM, now, entries), **changes_by_hotel_values(payloads))
    return changes_written(row, payloads)
