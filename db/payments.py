"""Card payments' statements on asyncpg (the transactions they run in hold the group's room-type
locks, like confirm and cancel): a payment started (with the hold's one extension), its state
after Stripe's word (with the money on the ledger), refunds, Stripe's events deduplicated, and
what the polling job looks for."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

import db.inventory
from db import models
from db.inventory import AGENCY_LEDGER_KEYSPACE, LockTimeout
from db.audit import AUDIT_ENTRIES, Actor, Audited, audit_values
from db.calendar import plain_row, row_record
from db.fastpath import Statement
from db.outbox import NOTICE_TOPIC

_PaymentRecord, _PAYMENT_ROW = row_record(models.Payment)
PaymentRow = plain_row(_PaymentRecord, "PaymentRow")

# The notice that tells paymentChanged's subscribers, in the write's own transaction (the outbox
# relay publishes it after the commit, or later if the writer dies first).
_NOTICE = (
    f"n AS (INSERT INTO outbox (topic, payload) SELECT '{NOTICE_TOPIC}', jsonb_build_object("
    "  'channel', CAST(:channel AS text), 'message', jsonb_build_object("
    "    'paymentId', p.id, 'groupId', p.group_id, 'agencyId', p.agency_id)) FROM p RETURNING id)"
)

# Under the group's locks: its card payments still open, and the next attempt's number.
_OPEN = Statement(
    f"SELECT ARRAY(SELECT {_PAYMENT_ROW} FROM payment AS x WHERE x.group_id = CAST(:group_id AS integer)"
    "   AND x.method = 'CARD' AND x.state IN ('PENDING', 'REQUIRES_ACTION') ORDER BY x.id) AS open, "
    "(SELECT COALESCE(max(attempt), 0) + 1 FROM payment WHERE group_id = CAST(:group_id AS integer)) AS attempt"
)
# A card payment begun (its PaymentIntent comes next, outside the transaction), and the hold
# extended when `expires_at` is given.
_START = Statement(
    "WITH p AS (INSERT INTO payment (group_id, agency_id, method, state, amount, currency, attempt, created_by,"
    "                                created_at, updated_at)"
    "           VALUES (CAST(:group_id AS integer), CAST(:agency_id AS integer), 'CARD', 'PENDING',"
    "                   CAST(:amount AS numeric), CAST(:currency AS varchar), CAST(:attempt AS integer),"
    "                   CAST(:actor_uid AS varchar), CAST(:now AS timestamptz), CAST(:now AS timestamptz)) RETURNING *), "
    "g AS (UPDATE booking_group SET expires_at = CAST(:expires_at AS timestamptz), hold_extended_at = CAST(:now AS timestamptz)"
    "      WHERE id = CAST(:group_id AS integer) AND CAST(:expires_at AS timestamptz) IS NOT NULL), "
    "b AS (UPDATE booking SET expires_at = CAST(:expires_at AS timestamptz)"
    "      WHERE group_id = CAST(:group_id AS integer) AND CAST(:expires_at AS timestamptz) IS NOT NULL), "
    f"a AS ({AUDIT_ENTRIES} UNION ALL"
    "      SELECT CAST(:now AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "             CAST(:actor_agency AS varchar), 'payment.started', 'Payment', p.id, NULL,"
    "             jsonb_build_object('group', CAST(:reference AS text), 'state', 'PENDING', 'method', 'CARD',"
    "                                'amount', CAST(:amount AS text), 'currency', p.currency, 'attempt', p.attempt),"
    "             CAST(:request_id AS varchar) FROM p), "
    f"{_NOTICE} "
    f"SELECT {_PAYMENT_ROW.replace('x.', 'p.')} AS payment, n.id AS notice_id FROM p, n"
)
# The PaymentIntent made for it (or the failure to make one).
_SET_INTENT = Statement(
    "WITH p AS (UPDATE payment SET provider_id = CAST(:provider_id AS varchar), client_secret = CAST(:client_secret AS text),"
    "           state = CAST(:state AS varchar), failure = CAST(:failure AS text), updated_at = statement_timestamp()"
    # The first PaymentIntent recorded stands: a concurrent call (a double click) that made another,
    # or failed to make one (Stripe refuses a key in use), never overwrites it.
    "           WHERE id = CAST(:id AS integer) AND provider_id IS NULL"
    "           RETURNING *), "
    f"{_NOTICE} "
    f"SELECT {_PAYMENT_ROW.replace('x.', 'p.')} AS payment, n.id AS notice_id FROM p, n"
)
# The payment of a PaymentIntent, and its group's footprint (what locks to take), without locks.
_BY_INTENT = Statement(
    f"SELECT {_PAYMENT_ROW} AS payment, "
    "(SELECT ROW(min(b.hotel_id), array_agg(DISTINCT b.room_type_id), min(b.check_in), max(b.check_out))"
    "   FROM booking AS b WHERE b.group_id = x.group_id) AS footprint "
    "FROM payment AS x WHERE x.provider_id = CAST(:provider_id AS varchar)"
)
_LOCK = Statement(f"SELECT {_PAYMENT_ROW} AS payment FROM payment AS x WHERE x.id = CAST(:id AS integer) FOR UPDATE")
_CURRENT = Statement(f"SELECT {_PAYMENT_ROW} AS payment FROM payment AS x WHERE x.id = CAST(:id AS integer)")
# A payment's new state as Stripe reports it; SUCCEEDED puts the money on the ledger, in the same
# statement (what a group has paid is never behind what Stripe took).
_TRANSITION = Statement(
    "WITH p AS (UPDATE payment SET state = CAST(:state AS varchar), failure = CAST(:failure AS text),"
    "           updated_at = CAST(:now AS timestamptz) WHERE id = CAST(:id AS integer) RETURNING *), "
    "l AS (INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id, payment_id, created_by)"
    "      SELECT p.agency_id, 'PAYMENT', CAST(:amount AS numeric), p.currency, p.group_id,"
    "             (SELECT o.id FROM sale_order AS o WHERE o.group_id = p.group_id), p.id, CAST(:actor_uid AS varchar)"
    "      FROM p WHERE p.state = 'SUCCEEDED'), "
    f"a AS ({AUDIT_ENTRIES}), "
    f"{_NOTICE} "
    f"SELECT {_PAYMENT_ROW.replace('x.', 'p.')} AS payment, n.id AS notice_id FROM p, n"
)
_REFUND = Statement(
    "WITH p AS (SELECT * FROM payment WHERE id = CAST(:id AS integer)), "
    "l AS (INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id, payment_id, note,"
    "                                created_by)"
    "      SELECT p.agency_id, 'REFUND', CAST(:amount AS numeric), p.currency, p.group_id,"
    "             (SELECT o.id FROM sale_order AS o WHERE o.group_id = p.group_id), p.id, CAST(:note AS text),"
    "             CAST(:actor_uid AS varchar) FROM p), "
    f"a AS ({AUDIT_ENTRIES}), "
    f"{_NOTICE} "
    "SELECT n.id AS notice_id FROM n"
)
# Refunds already posted for a payment (what is left to refund of it).
_REFUNDED = Statement(
    "SELECT COALESCE(sum(amount), 0) FROM ledger_entry WHERE payment_id = CAST(:id AS integer) AND kind = 'REFUND'"
)
_RECORD_EVENT = Statement(
    "INSERT INTO stripe_event (id, type, payment_id) VALUES (CAST(:id AS varchar), CAST(:type AS varchar),"
    " CAST(:payment_id AS integer)) ON CONFLICT (id) DO NOTHING RETURNING id"
)
# The group's items, for a payment that succeeded after its hold lapsed (are the rooms still free?).
_ITEMS = Statement(
    "SELECT b.room_type_id, rt.code, b.hardblock_id, h.release_days, b.check_in, b.check_out, b.rooms "
    "FROM booking AS b JOIN room_type AS rt ON rt.id = b.room_type_id LEFT JOIN hardblock AS h ON h.id = b.hardblock_id "
    "WHERE b.group_id = CAST(:group_id AS integer) ORDER BY b.id"
)
# For the polling job: card payments in flight for a while (their webhook may be lost), and
# succeeded ones whose money is kept for a group that holds no rooms (a refund that did not go).
_STALE = Statement(
    "SELECT x.provider_id FROM payment AS x WHERE x.method = 'CARD' AND x.provider_id IS NOT NULL"
    " AND x.state IN ('PENDING', 'REQUIRES_ACTION') AND x.updated_at < statement_timestamp() - make_interval(secs => CAST(:after_s AS double precision))"
    " ORDER BY x.updated_at LIMIT CAST(:limit AS integer)"
)
_UNREFUNDED = Statement(
    "SELECT x.id FROM payment AS x JOIN booking_group AS g ON g.id = x.group_id"
    " WHERE x.method = 'CARD' AND x.state = 'SUCCEEDED' AND g.status IN ('EXPIRED', 'CANCELLED')"
    " AND x.amount > COALESCE((SELECT sum(l.amount) FROM ledger_entry AS l WHERE l.payment_id = x.id AND l.kind = 'REFUND'), 0)"
    " AND NOT EXISTS (SELECT 1 FROM sale_order AS o WHERE o.group_id = g.id)"
    " ORDER BY x.id LIMIT CAST(:limit AS integer)"
)

# Cancelled sales (in the last 30 days, over a minute ago: the cancel's own attempt is over) of
# agencies that pay by card, whose card payments still hold money: what a cancellation refund may
# have left undone (Stripe was down, the worker died after the commit).
_CANCELLED = Statement(
    "SELECT * FROM (SELECT o.id, o.group_id, o.currency,"
    "  (SELECT COALESCE(sum(CASE l.kind WHEN 'REFUND' THEN -l.amount ELSE l.amount END), 0) FROM ledger_entry AS l"
    "   WHERE l.group_id = o.group_id AND l.currency = o.currency"
    "   AND l.kind IN ('PAYMENT', 'OFFLINE_PAYMENT', 'REFUND')) - COALESCE(o.cancellation_fee, 0) AS due"
    " FROM sale_order AS o JOIN agency AS a ON a.id = o.agency_id"
    " WHERE o.status = 'CANCELLED' AND a.payment_terms <> 'CREDIT'"
    "  AND o.cancelled_at > statement_timestamp() - interval '30 days'"
    "  AND o.cancelled_at < statement_timestamp() - interval '1 minute'"
    "  AND EXISTS (SELECT 1 FROM payment AS p WHERE p.group_id = o.group_id AND p.method = 'CARD'"
    "   AND p.state = 'SUCCEEDED' AND p.amount > COALESCE((SELECT sum(r.amount) FROM ledger_entry AS r"
    "    WHERE r.payment_id = p.id AND r.kind = 'REFUND'), 0))) AS c"
    " WHERE c.due > 0 ORDER BY c.id LIMIT CAST(:limit AS integer)"
)
# Under the payment's locks: its group's status and sale, and the group's money in the payment's
# currency (what refund_unowed decides on).
_GROUP_MONEY = Statement(
    "SELECT g.status, o.status AS order_status, o.total_amount AS total,"
    " (SELECT COALESCE(sum(l.amount), 0) FROM ledger_entry AS l WHERE l.group_id = g.id"
    "   AND l.currency = CAST(:currency AS varchar) AND l.kind IN ('PAYMENT', 'OFFLINE_PAYMENT')) AS received,"
    " (SELECT COALESCE(sum(l.amount), 0) FROM ledger_entry AS l WHERE l.group_id = g.id"
    "   AND l.currency = CAST(:currency AS varchar) AND l.kind = 'REFUND') AS refunded"
    " FROM booking_group AS g LEFT JOIN sale_order AS o ON o.group_id = g.id WHERE g.id = CAST(:group_id AS integer)"
)
_POLLED = Statement(
    "UPDATE payment SET updated_at = statement_timestamp() WHERE provider_id = CAST(:provider_id AS varchar)"
    " AND state IN ('PENDING', 'REQUIRES_ACTION')"
)

Footprint = tuple[int, list[int], date, date]


async def open_payments(connection: asyncpg.Connection, group_id: int) -> tuple[list[Any], int]:
    row = await _OPEN.fetchrow(connection, group_id=group_id)
    return [PaymentRow(*p) for p in row["open"]], int(row["attempt"])


async def start(connection: asyncpg.Connection, actor: Actor, now: datetime, group: Any, amount: tuple[Decimal, str],
                attempt: int, expires_at: datetime | None, channel: str,
                entries: list[Audited]) -> tuple[Any, int]:
    """The payment row (and the hold extended to `expires_at`, if given), audited; returns it and
    its notice's outbox id."""
    row = await _START.fetchrow(connection, group_id=group.id, agency_id=group.agency_id, amount=amount[0],
                                currency=amount[1], attempt=attempt, expires_at=expires_at, reference=group.reference,
                                channel=channel, **audit_values(actor, now, entries))
    return PaymentRow(*row["payment"]), int(row["notice_id"])


async def set_intent(connection: asyncpg.Connection, payment_id: int, provider_id: str | None,
                     client_secret: str | None, state: str, failure: str | None, channel: str) -> tuple[Any, int | None]:
    row = await _SET_INTENT.fetchrow(connection, id=payment_id, provider_id=provider_id, client_secret=client_secret,
                                     state=state, failure=failure, channel=channel)
    if row is None:  # the failure lost to the PaymentIntent another call made: that one stands
        return PaymentRow(*(await _CURRENT.fetchrow(connection, id=payment_id))["payment"]), None
    return PaymentRow(*row["payment"]), int(row["notice_id"])


async def failed_intents(connection: asyncpg.Connection, group_id: int) -> list[str]:
    """The group's card payments that failed but whose PaymentIntent may still be paid."""
    return [r[0] for r in await connection.fetch(
        "SELECT provider_id FROM payment WHERE group_id = $1 AND method = 'CARD' AND state = 'FAILED'"
        " AND provider_id IS NOT NULL ORDER BY id", group_id)]


async def by_intent(connection: asyncpg.Connection, provider_id: str) -> tuple[Any, Footprint | None] | None:
    row = await _BY_INTENT.fetchrow(connection, provider_id=provider_id)
    if row is None:
        return None
    footprint = None
    if row["footprint"] is not None:
        hotel_id, room_type_ids, start_, end = row["footprint"]
        footprint = (hotel_id, sorted(room_type_ids), start_, end)
    return PaymentRow(*row["payment"]), footprint


async def lock_ledger_of(connection: asyncpg.Connection, payment_id: int, timeout_ms: int) -> None:
    """The ledger lock of the payment's agency (db.inventory AGENCY_LEDGER_KEYSPACE), under the
    transaction's `lock_timeout`."""
    if not db.inventory.locking_enabled:
        return
    try:
        await connection.execute(
            f"SELECT set_config('lock_timeout', '{int(timeout_ms)}', true), "
            f"pg_advisory_xact_lock((SELECT (agency_id::bigint << 8) | {AGENCY_LEDGER_KEYSPACE} FROM payment "
            f"WHERE id = {int(payment_id)}))")
    except asyncpg.LockNotAvailableError as error:
        raise LockTimeout([], f"timed out waiting for another write of payment {payment_id}'s ledger") from error


async def lock(connection: asyncpg.Connection, payment_id: int) -> Any:
    return PaymentRow(*(await _LOCK.fetchrow(connection, id=payment_id))["payment"])


async def transition(connection: asyncpg.Connection, payment: Any, state: str, failure: str | None,
                     amount: Decimal, actor: Actor, now: datetime, entries: list[Audited],
                     channel: str) -> tuple[Any, int]:
    """The payment's new state (SUCCEEDED: `amount` on the ledger as a PAYMENT), audited."""
    row = await _TRANSITION.fetchrow(connection, id=payment.id, state=state, failure=failure, amount=amount,
                                     channel=channel, **audit_values(actor, now, entries))
    return PaymentRow(*row["payment"]), int(row["notice_id"])


async def refunded(connection: asyncpg.Connection, payment_id: int) -> Decimal:
    return Decimal(await connection.fetchval(_REFUNDED.sql, *_REFUNDED.args({"id": payment_id})))


async def post_refund(connection: asyncpg.Connection, payment: Any, amount: Decimal, note: str, actor: Actor,
                      now: datetime, entries: list[Audited], channel: str) -> int:
    """A REFUND of `amount` of the payment on the ledger, audited; returns the notice's outbox id."""
    row = await _REFUND.fetchrow(connection, id=payment.id, amount=amount, note=note, channel=channel,
                                 **audit_values(actor, now, entries))
    return int(row["notice_id"])


async def record_event(connection: asyncpg.Connection, event_id: str, event_type: str,
                       payment_id: int | None) -> bool:
    """Whether this Stripe event is new (recorded now, in the caller's transaction)."""
    return await _RECORD_EVENT.fetchrow(connection, id=event_id, type=event_type, payment_id=payment_id) is not None


async def items(connection: asyncpg.Connection, group_id: int) -> list[asyncpg.Record]:
    return await connection.fetch(_ITEMS.sql, *_ITEMS.args({"group_id": group_id}))


async def stale_intents(connection: asyncpg.Connection, after_s: float, limit: int) -> list[str]:
    return [r[0] for r in await connection.fetch(_STALE.sql, *_STALE.args({"after_s": after_s, "limit": limit}))]


async def unrefunded(connection: asyncpg.Connection, limit: int) -> list[int]:
    return [r[0] for r in await connection.fetch(_UNREFUNDED.sql, *_UNREFUNDED.args({"limit": limit}))]


async def cancelled_with_card_money(connection: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(_CANCELLED.sql, *_CANCELLED.args({"limit": limit}))


async def group_money(connection: asyncpg.Connection, group_id: int, currency: str) -> asyncpg.Record:
    return await _GROUP_MONEY.fetchrow(connection, group_id=group_id, currency=currency)


async def polled(connection: asyncpg.Connection, provider_id: str) -> None:
    """A payment asked of Stripe and still in flight goes to the back of the polling queue."""
    await connection.execute(_POLLED.sql, *_POLLED.args({"provider_id": provider_id}))
