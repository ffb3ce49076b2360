"""The night audit: closes a hotel's business day once, with its figures and every inconsistency
found between the books and what they should say.

The figures and checks are read in one REPEATABLE READ snapshot of their own, so they agree with
each other to the room. Then the write takes the (hotel, date) advisory lock, so concurrent runs
(every worker's job, an operator's `runNightAudit`) write one row between them and the others
return it; the unique (hotel_id, business_date) backs that.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.context import Caller, Services
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.pages import Page, paginate
from db import audit, models, reports
from db.audit import Actor
from db.calendar import load_inventory
from db.engine import consistent_read, transaction
from db.inventory import lock_night_audit
from domain import (
    DEFAULT_TIME_ZONE,
    Money,
    audit_due_dates,
    compute_hardblock_slots,
    hotel_today,
    local_midnight,
    round_money,
)

log = logging.getLogger(__name__)

# How long a run waits for another run of the same day to finish (it then returns that one's row).
LOCK_WAIT_MS = 60_000
# The job never reaches further back than this (a hotel's first audit, or one after long downtime).
CATCH_UP_DAYS = 30
FALLBACK_CURRENCY = "EUR"  # a day without sales, in a hotel without contracts, has revenue 0 in it


@dataclass
class _Findings:
    room_nights_sold: int = 0
    revenue: Money = field(default_factory=lambda: Money(Decimal(0), FALLBACK_CURRENCY))
    arrivals: int = 0
    departures: int = 0
    holds_expired: int = 0
    overcommitted_cells: int = 0
    discrepancies: list[dict[str, Any]] = field(default_factory=list)

    def found(self, kind: str, detail: str, room_type_id: int | None = None, day: date | None = None) -> None:
        self.discrepancies.append({"kind": kind, "roomTypeId": room_type_id,
                                   "date": None if day is None else day.isoformat(), "detail": detail})


def _actor(who: Caller | Actor) -> Actor:
    if isinstance(who, Caller):
        if not who.is_staff:
            raise Forbidden("only staff run the night audit")
        return who.actor
    return who


async def _existing(session: AsyncSession, hotel_id: int, business_date: date) -> models.NightAudit | None:
    return (await session.execute(select(models.NightAudit).where(
        models.NightAudit.hotel_id == hotel_id, models.NightAudit.business_date == business_date))).scalar_one_or_none()


async def run_night_audit(services: Services, who: Caller | Actor, hotel_id: int, business_date: date, *,
                          now: datetime | None = None) -> models.NightAudit:
    """Close `business_date` (the night of that date) for the hotel, or return the audit that
    already closed it. `now` (tests, time travel) defaults to the database's clock."""
    return (await close_day(services, _actor(who), hotel_id, business_date, now=now))[0]


async def close_day(services: Services, actor: Actor, hotel_id: int, business_date: date, *,
                    now: datetime | None = None) -> tuple[models.NightAudit, bool]:
    """The day's audit, and whether this call wrote it."""
    async with services.sessions() as session:
        if (found := await _existing(session, hotel_id, business_date)) is not None:
            return found, False
    # Read in a snapshot of its own first (one connection at a time: runs waiting on the lock must
    # not starve the one holding it of connections); runs racing for a day all read, one writes.
    findings, closed_at = await _audit(services, hotel_id, business_date, now)
    async with transaction(services.sessions) as session:
        await lock_night_audit(session, hotel_id, business_date, LOCK_WAIT_MS)
        if (found := await _existing(session, hotel_id, business_date)) is not None:
            return found, False  # another worker closed it first
        row = models.NightAudit(
            hotel_id=hotel_id, business_date=business_date, closed_at=closed_at,
            room_nights_sold=findings.room_nights_sold, revenue_amount=findings.revenue.amount,
            revenue_currency=findings.revenue.currency, arrivals=findings.arrivals, departures=findings.departures,
            holds_expired=findings.holds_expired, overcommitted_cells=findings.overcommitted_cells,
            discrepancies=findings.discrepancies, created_by=actor.uid,
        )
        session.add(row)
        await session.flush()
        audit.record(session, actor, "night_audit.closed", "NightAudit", row.id, after=audit.snapshot(
            row, "hotel_id", "business_date", "room_nights_sold", "revenue_amount", "revenue_currency", "arrivals",
            "departures", "holds_expired", "overcommitted_cells") | {"discrepancies": len(findings.discrepancies)})
    if findings.discrepancies:
        log.warning("night audit of hotel %s for %s found %d discrepancies", hotel_id, business_date,
                    len(findings.discrepancies))
    return row, True


async def _audit(services: Services, hotel_id: int, day: date, now: datetime | None) -> tuple[_Findings, datetime]:
    async with consistent_read(services.sessions) as session:
        hotel = (await session.execute(text(
            "SELECT time_zone, statement_timestamp() FROM hotel WHERE id = :hotel"), {"hotel": hotel_id})).one_or_none()
        if hotel is None:
            raise NotFound("no hotel with that id")
        tz, db_now = hotel[0] or DEFAULT_TIME_ZONE, hotel[1]
        now = now or db_now
        today = hotel_today(now, tz)
        if day >= today:
            raise InvalidInput("businessDate", (
                f"business date {day.isoformat()} has not ended yet in the hotel's time zone {tz} (it is "
                f"{today.isoformat()} there): a day is audited once it is over"))
        span = {"hotel": hotel_id, "d": day, "start": local_midnight(day, tz),
                "end": local_midnight(day + timedelta(days=1), tz), "now": now}
        findings = _Findings()
        codes = await _figures(session, span, findings)
        await _check_cells(session, hotel_id, day, now, span, codes, findings)
        await _check_sale_orders(session, span, findings)
        await _check_audit_log(session, span, findings)
        await _check_ledger(session, span, findings)
        await _check_checkpoints(session, span, findings)
        await _check_supply(session, span, codes, findings)
    return findings, now


async def _figures(session: AsyncSession, span: dict[str, Any], findings: _Findings) -> dict[int, str]:
    """The day's figures; returns the hotel's room type codes by id (for the checks' details)."""
    codes = dict((await session.execute(text("SELECT id, code FROM room_type WHERE hotel_id = :hotel"), span)).all())
    # Revenue of night D as the revenue report counts it (its frozen nightly sell prices), the
    # currency with the most room nights first.
    day = span["d"]
    revenue = sorted(((f.currency, f.room_nights, f.revenue) for f in await reports.revenue(
        session, "HOTEL", day, day + timedelta(days=1), hotel_id=span["hotel"], agency_id=None) if f.room_nights),
        key=lambda r: (-r[1], r[0]))
    if revenue:
        currency, _, amount = revenue[0]
        findings.revenue = round_money(Money(amount, currency))
        findings.room_nights_sold = sum(rooms for _, rooms, _ in revenue)
        if len(revenue) > 1:
            others = ", ".join(f"{round_money(Money(a, c)).amount} {c} ({n} room nights)" for c, n, a in revenue[1:])
            findings.found("REVENUE_IN_SEVERAL_CURRENCIES", (
                f"the night's sales are in several currencies: revenue shows the {currency} sales only; also sold: "
                f"{others}. Check the contracts' currencies of this hotel"), day=span["d"])
    else:
        currency = (await session.execute(text(
            "SELECT currency FROM contract WHERE hotel_id = :hotel ORDER BY (start_date <= :d AND end_date > :d) DESC,"
            " id DESC LIMIT 1"), span)).scalar_one_or_none()
        findings.revenue = Money(Decimal(0), currency or FALLBACK_CURRENCY)
    findings.arrivals, findings.departures = (await session.execute(text(
        "SELECT CAST(COALESCE(sum(rooms) FILTER (WHERE check_in = :d), 0) AS integer),"
        " CAST(COALESCE(sum(rooms) FILTER (WHERE check_out = :d), 0) AS integer)"
        " FROM booking WHERE hotel_id = :hotel AND status = 'CONFIRMED' AND (check_in = :d OR check_out = :d)"),
        span)).one()
    findings.holds_expired = (await session.execute(text(
        "SELECT count(*) FROM booking_group AS g WHERE g.status = 'EXPIRED'"
        " AND g.expires_at >= :start AND g.expires_at < :end"
        " AND EXISTS (SELECT 1 FROM booking AS b WHERE b.group_id = g.id AND b.hotel_id = :hotel)"), span)).scalar_one()
    return codes


# What each cell number is recomputed from, and where to look when it differs.
_CELL_SOURCES = {
    "allotment": ("ACTIVE contracts plus live INCREASE/REDUCE_ALLOTMENT events covering the night",
                  "check the room type's contracts and allotment events on that night"),
    "held": ("pool bookings of HELD, unexpired groups",
             "look for booking rows whose status or expiry differ from their group's (they are copies of it)"),
    "sold": ("pool bookings of CONFIRMED groups",
             "look for booking rows whose status differs from their group's (it is a copy of it)"),
    "hardblocked": ("bookings taken from hardblocks by HELD (unexpired) or CONFIRMED groups",
                    "look at the blocks' bookings on that night and their groups' status"),
}

# Night D is over, so every block has released its unsold rooms on it (a night releases at the
# latest at its own midnight): a block holds on it only what is booked from it.
_RAW_CELLS = text(
    "SELECT rt.id,"
    " GREATEST(0, COALESCE((SELECT sum(c.allotment) FROM contract AS c WHERE c.room_type_id = rt.id"
    "   AND c.status = 'ACTIVE' AND c.start_date <= :d AND c.end_date > :d), 0)"
    "  + COALESCE((SELECT sum(CASE e.kind WHEN 'INCREASE_ALLOTMENT' THEN e.quantity ELSE -e.quantity END)"
    "   FROM allotment_event AS e WHERE e.room_type_id = rt.id AND e.voided_at IS NULL"
    "   AND e.kind IN ('INCREASE_ALLOTMENT', 'REDUCE_ALLOTMENT') AND e.start_date <= :d AND e.end_date > :d), 0)),"
    " COALESCE(sum(b.rooms) FILTER (WHERE b.hardblock_id IS NULL AND g.status = 'HELD'"
    "   AND (g.expires_at IS NULL OR g.expires_at > :now)), 0),"
    " COALESCE(sum(b.rooms) FILTER (WHERE b.hardblock_id IS NULL AND g.status = 'CONFIRMED'), 0),"
    " COALESCE(sum(b.rooms) FILTER (WHERE b.hardblock_id IS NOT NULL AND (g.status = 'CONFIRMED'"
    "   OR (g.status = 'HELD' AND (g.expires_at IS NULL OR g.expires_at > :now)))), 0)"
    " FROM room_type AS rt"
    " LEFT JOIN booking AS b ON b.room_type_id = rt.id AND b.check_in <= :d AND b.check_out > :d"
    " LEFT JOIN booking_group AS g ON g.id = b.group_id"
    " WHERE rt.hotel_id = :hotel GROUP BY rt.id"
)


async def _check_cells(session: AsyncSession, hotel_id: int, day: date, now: datetime, span: dict[str, Any],
                       codes: dict[int, str], findings: _Findings) -> None:
    """The calendar pipeline's cells against the same numbers summed from the raw rows (the groups'
    own status rather than the bookings' copies of it), then over-sold pool and block nights."""
    snapshot = await load_inventory(session, hotel_id, day, day + timedelta(days=1))
    rows = snapshot.calendar(day, day + timedelta(days=1), now)
    raw = {rt: dict(zip(_CELL_SOURCES, numbers)) for rt, *numbers in (await session.execute(_RAW_CELLS, span)).all()}
    for rt, row in sorted(rows.items(), key=lambda item: codes.get(item[0], "")):
        code = codes.get(rt, str(rt))
        pipeline = {"allotment": row.allotment[0], "held": row.held[0], "sold": row.sold[0],
                    "hardblocked": row.hardblocked[0]}
        for name, value in pipeline.items():
            recomputed = int(raw.get(rt, {}).get(name, 0))
            if value != recomputed:
                source, hint = _CELL_SOURCES[name]
                findings.found("CELL_MISMATCH", (
                    f"{code} on {day.isoformat()}: the calendar shows {name} {value}, but the {source} add up to "
                    f"{recomputed}; {hint}"), rt, day)
        if row.overcommitted[0] > 0:
            findings.overcommitted_cells += 1
            findings.found("POOL_OVERSOLD", (
                f"{code} on {day.isoformat()}: {row.hardblocked[0] + row.held[0] + row.sold[0]} rooms committed "
                f"(hardblocked {row.hardblocked[0]} + held {row.held[0]} + sold {row.sold[0]}) against an allotment "
                f"of {row.allotment[0]}: over-sold by {row.overcommitted[0]}. Nothing was cancelled; check the "
                "night's bookings and recent allotment reductions, and agree more rooms with the hotel or move "
                "bookings"), rt, day)
    for block, terms in zip(snapshot.hardblocks, snapshot.hardblock_terms):
        for slot in compute_hardblock_slots(terms, snapshot.events, snapshot.booking_lines, day,
                                            day + timedelta(days=1), now):
            if slot.booked > slot.size:
                findings.found("BLOCK_OVERSOLD", (
                    f"hardblock {block.reference} ({codes.get(block.room_type_id, block.room_type_id)}) on "
                    f"{day.isoformat()}: {slot.booked} rooms booked from it, but it holds {slot.size}: over-sold "
                    f"by {slot.booked - slot.size}. Check the block's bookings and amendments on that night"),
                    block.room_type_id, day)


async def _check_sale_orders(session: AsyncSession, span: dict[str, Any], findings: _Findings) -> None:
    """Every confirmed group of the night (staying, or confirmed that day) has its one sale order,
    confirmed, for what its bookings total; and no sale order stands for a group that is not confirmed."""
    rows = (await session.execute(text(
        "SELECT g.reference, g.status, s.number, s.status, s.total_amount, s.currency,"
        " (SELECT sum(b.total_amount) FROM booking AS b WHERE b.group_id = g.id),"
        " (SELECT min(b.currency) FROM booking AS b WHERE b.group_id = g.id),"
        " (SELECT min(b.room_type_id) FROM booking AS b WHERE b.group_id = g.id AND b.hotel_id = :hotel)"
        " FROM booking_group AS g LEFT JOIN sale_order AS s ON s.group_id = g.id"
        " WHERE (g.status = 'CONFIRMED' OR s.status = 'CONFIRMED')"
        "  AND EXISTS (SELECT 1 FROM booking AS b WHERE b.group_id = g.id AND b.hotel_id = :hotel"
        "   AND ((b.check_in <= :d AND b.check_out > :d) OR (g.confirmed_at >= :start AND g.confirmed_at < :end)))"
        " ORDER BY g.id"), span)).all()
    day = span["d"]
    for reference, status, number, order_status, order_total, order_currency, total, currency, rt in rows:
        group = f"booking group {reference}"
        if number is None:
            findings.found("MISSING_SALE_ORDER", (
                f"{group} is CONFIRMED but has no sale order (its bookings total {total} {currency}): it was not "
                "confirmed through confirmBooking; check its audit trail, then issue the sale order or put the "
                "group back"), rt, day)
        elif status != "CONFIRMED":
            findings.found("SALE_ORDER_WITHOUT_CONFIRMED_GROUP", (
                f"sale order {number} is CONFIRMED but {group} is {status}: cancel the sale order or "
                "correct the group"), rt, day)
        elif order_status != "CONFIRMED":
            findings.found("SALE_ORDER_NOT_CONFIRMED", (
                f"{group} is CONFIRMED but its sale order {number} is {order_status}: cancel the group or "
                "reinstate the sale order"), rt, day)
        elif order_total != total or order_currency != currency:
            findings.found("SALE_ORDER_TOTAL_MISMATCH", (
                f"sale order {number} of {group} totals {order_total} {order_currency}, but the group's bookings "
                f"total {total} {currency}: one of them was changed after confirmation; check the audit trail "
                "and correct the sale order or the bookings"), rt, day)


# The hotel's sale orders confirmed or cancelled during the day, with what the ledger holds of each:
# (count, sum) of its SALE, CREDIT_NOTE and FEE entries in its own currency, and entries of those
# kinds in another currency.
_LEDGER_OF_DAY = text(
    "SELECT s.number, s.total_amount, s.currency, s.status, s.cancellation_fee,"
    " s.confirmed_at >= :start AND s.confirmed_at < :end AS confirmed_today,"
    " s.cancelled_at >= :start AND s.cancelled_at < :end AS cancelled_today,"
    " count(l.id) FILTER (WHERE l.kind = 'SALE' AND l.currency = s.currency), sum(l.amount) FILTER (WHERE l.kind = 'SALE' AND l.currency = s.currency),"
    " count(l.id) FILTER (WHERE l.kind = 'CREDIT_NOTE' AND l.currency = s.currency), sum(l.amount) FILTER (WHERE l.kind = 'CREDIT_NOTE' AND l.currency = s.currency),"
    " count(l.id) FILTER (WHERE l.kind = 'FEE' AND l.currency = s.currency), sum(l.amount) FILTER (WHERE l.kind = 'FEE' AND l.currency = s.currency),"
    " count(l.id) FILTER (WHERE l.kind IN ('SALE', 'CREDIT_NOTE', 'FEE') AND l.currency <> s.currency)"
    " FROM sale_order AS s LEFT JOIN ledger_entry AS l ON l.sale_order_id = s.id"
    " WHERE ((s.confirmed_at >= :start AND s.confirmed_at < :end) OR (s.cancelled_at >= :start AND s.cancelled_at < :end))"
    "  AND EXISTS (SELECT 1 FROM booking AS b WHERE b.group_id = s.group_id AND b.hotel_id = :hotel)"
    " GROUP BY s.id ORDER BY s.number"
)
# Payments of the hotel's groups whose refunds add up to more than they brought in.
_OVER_REFUNDED = text(
    "SELECT p.id, p.method, p.amount, p.currency, g.reference, r.refunded, r.entries FROM payment AS p"
    " JOIN booking_group AS g ON g.id = p.group_id"
    " JOIN (SELECT payment_id, sum(amount) AS refunded, count(*) AS entries FROM ledger_entry WHERE kind = 'REFUND'"
    "       GROUP BY payment_id) AS r ON r.payment_id = p.id"
    " WHERE r.refunded > p.amount"
    "  AND EXISTS (SELECT 1 FROM booking AS b WHERE b.group_id = p.group_id AND b.hotel_id = :hotel)"
    " ORDER BY p.id"
)


def _posted(count: int, amount: Decimal | None, currency: str) -> str:
    if not count:
        return "none"
    return f"{count} entr{'y' if count == 1 else 'ies'} of {amount} {currency} in all"


async def _check_ledger(session: AsyncSession, span: dict[str, Any], findings: _Findings) -> None:
    """The ledger against the day's sales and cancellations: a sale order confirmed that day has
    exactly one SALE entry of its total; one cancelled that day a CREDIT_NOTE of its total and a FEE
    of its cancellation fee (none when the fee is zero); and no payment of the hotel was refunded
    more than it brought in. The ledger is append-only: a correction is a new entry."""
    day = span["d"]
    for (number, total, currency, status, fee, confirmed_today, cancelled_today, sales, sold, notes, noted, fees,
         charged, foreign) in (await session.execute(_LEDGER_OF_DAY, span)).all():
        order = f"sale order {number} ({total} {currency})"
        if foreign:
            findings.found("LEDGER_MISMATCH", (
                f"{order} has {foreign} sale, credit note or fee entr{'y' if foreign == 1 else 'ies'} in another "
                f"currency than its own: post the reversing entries, then the right ones in {currency}"), day=day)
        if confirmed_today and (sales != 1 or sold != total):
            findings.found("LEDGER_MISMATCH", (
                f"{order} was confirmed on {day.isoformat()} but the ledger holds {_posted(sales, sold, currency)} "
                f"of kind SALE where exactly one of {total} {currency} belongs: the agency's outstanding balance is "
                f"off by the difference; post the missing sale, or a credit note against a duplicate"), day=day)
        if not cancelled_today or status != "CANCELLED":
            continue
        if notes != 1 or noted != total:
            findings.found("LEDGER_MISMATCH", (
                f"{order} was cancelled on {day.isoformat()} but the ledger holds {_posted(notes, noted, currency)} "
                f"of kind CREDIT_NOTE where exactly one of {total} {currency} belongs: the agency is still charged "
                f"for (or credited beyond) the cancelled sale; post the missing credit note, or a SALE against a "
                f"duplicate"), day=day)
        expected = fee or Decimal(0)
        if (fees, charged or Decimal(0)) != ((1, expected) if expected > 0 else (0, Decimal(0))):
            findings.found("LEDGER_MISMATCH", (
                f"{order} was cancelled on {day.isoformat()} with a fee of {expected} {currency}, but the ledger "
                f"holds {_posted(fees, charged, currency)} of kind FEE"
                + (" where none belongs" if expected == 0 else f" where exactly one of {expected} {currency} belongs")
                + ": correct the agency's balance with a credit note or the missing fee"), day=day)
    for payment_id, method, amount, currency, reference, refunded, entries in (
            await session.execute(_OVER_REFUNDED, span)).all():
        findings.found("REFUND_EXCEEDS_PAYMENT", (
            f"{method.lower()} payment {payment_id} of booking group {reference} brought in {amount} {currency}, but "
            f"{entries} refund entr{'y' if entries == 1 else 'ies'} return {refunded} {currency}: "
            f"{refunded - amount} {currency} too much went back. Check the payment's refunds (and Stripe's, for a "
            "card) and recover the difference from the agency"), day=day)


# Checkpoints moved during the day, of agencies that sold at the hotel: their sums against the
# entries up to them, summed again.
_CHECKPOINTS = text(
    "SELECT a.code, k.through_id, CAST(k.sums AS text),"
    " ARRAY(SELECT ROW(l.kind, l.currency, CAST(sum(l.amount) AS text)) FROM ledger_entry AS l"
    "       WHERE l.agency_id = k.agency_id AND l.id <= k.through_id GROUP BY l.kind, l.currency)"
    " FROM ledger_checkpoint AS k JOIN agency AS a ON a.id = k.agency_id"
    " WHERE k.updated_at >= :start AND k.updated_at < :end"
    "  AND EXISTS (SELECT 1 FROM booking AS b WHERE b.agency_id = k.agency_id AND b.hotel_id = :hotel)"
    " ORDER BY a.code"
)


async def _check_checkpoints(session: AsyncSession, span: dict[str, Any], findings: _Findings) -> None:
    """A ledger checkpoint (an agency's sums up to an entry, which the credit check reads instead
    of the entries) must equal those entries summed again."""
    for code, through_id, stored, recomputed in (await session.execute(_CHECKPOINTS, span)).all():
        kept = {(kind, currency): Decimal(amount) for kind, currency, amount in orjson.loads(stored)}
        summed = {(kind, currency): Decimal(amount) for kind, currency, amount in recomputed}
        if kept != summed:
            shown = ", ".join(f"{kind} {currency} kept {kept.get((kind, currency), 0)}, summed "
                              f"{summed.get((kind, currency), 0)}" for kind, currency in sorted(set(kept) | set(summed))
                              if kept.get((kind, currency)) != summed.get((kind, currency)))
            findings.found("LEDGER_CHECKPOINT_MISMATCH", (
                f"agency {code}'s ledger checkpoint through entry {through_id} does not match its entries ({shown}): "
                "its outstanding balance and credit checks are off by the difference; an entry was written without "
                "the agency's ledger lock. Delete the checkpoint row: the next credit check sums the entries and "
                "writes it again"), day=span["d"])


_MISSING_AUDIT = text(
    "WITH groups AS (SELECT g.* FROM booking_group AS g"
    "  WHERE EXISTS (SELECT 1 FROM booking AS b WHERE b.group_id = g.id AND b.hotel_id = :hotel)),"
    " expected AS ("
    "  SELECT 'booking_group.created' AS action, 'BookingGroup' AS entity_type, 'booking group' AS what, id,"
    "   reference, created_at AS at FROM groups WHERE created_at >= :start AND created_at < :end"
    "  UNION ALL SELECT 'booking_group.confirmed', 'BookingGroup', 'booking group', id, reference, confirmed_at"
    "   FROM groups WHERE confirmed_at >= :start AND confirmed_at < :end"
    "  UNION ALL SELECT 'booking_group.cancelled', 'BookingGroup', 'booking group', id, reference, cancelled_at"
    "   FROM groups WHERE cancelled_at >= :start AND cancelled_at < :end"
    "  UNION ALL SELECT 'booking_group.expired', 'BookingGroup', 'booking group', id, reference, expires_at"
    "   FROM groups WHERE status = 'EXPIRED' AND expires_at >= :start AND expires_at < :end"
    "  UNION ALL SELECT 'hardblock.created', 'Hardblock', 'hardblock', id, reference, created_at"
    "   FROM hardblock WHERE hotel_id = :hotel AND created_at >= :start AND created_at < :end)"
    " SELECT x.action, x.what, x.reference, x.at FROM expected AS x WHERE NOT EXISTS (SELECT 1 FROM audit_log AS a"
    "  WHERE a.entity_type = x.entity_type AND a.entity_id = x.id AND a.action = x.action)"
    " ORDER BY x.at, x.reference"
)


async def _check_audit_log(session: AsyncSession, span: dict[str, Any], findings: _Findings) -> None:
    """Every write of the day that the audit log must record has its entry."""
    for action, what, reference, at in (await session.execute(_MISSING_AUDIT, span)).all():
        findings.found("AUDIT_ENTRY_MISSING", (
            f"{what} {reference} was {action.split('.')[1]} at {at.isoformat()} but the audit log has no {action} "
            f"entry for it: it was written outside the API (a manual fix or a bug); find out who changed it and "
            "why"), day=span["d"])


async def _check_supply(session: AsyncSession, span: dict[str, Any], codes: dict[int, str],
                        findings: _Findings) -> None:
    """The supplier sync runs of the day (of suppliers of this hotel's contracts) that did not end
    clean, and each contract the supplier left overcommitted."""
    contracts = dict((await session.execute(text(
        "SELECT external_id, room_type_id FROM contract WHERE hotel_id = :hotel"), span)).all())
    runs = (await session.execute(text(
        "SELECT r.id, r.source, r.status, r.started_at, r.issues, r.error FROM sync_run AS r"
        " WHERE r.started_at >= :start AND r.started_at < :end"
        "  AND (r.status IN ('PARTIAL', 'FAILED') OR jsonb_array_length(r.issues) > 0)"
        "  AND r.supplier_id IN (SELECT supplier_id FROM contract WHERE hotel_id = :hotel)"
        " ORDER BY r.id"), span)).all()
    day = span["d"]
    for run_id, source, status, started_at, issues, error in runs:
        kinds = Counter(issue.get("kind", "?") for issue in issues)
        listed = "; ".join(f"{issue.get('external_id') or '-'}: {issue.get('message', '')}" for issue in issues[:3])
        more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no issues"
        findings.found(f"SYNC_RUN_{status}" if status in ("PARTIAL", "FAILED") else "SYNC_RUN_ISSUES", (
            f"supplier {source} sync run {run_id} (started {started_at.isoformat()}) ended {status} with {summary}"
            + (f"; error: {error}" if error else "") + (f": {listed}{more}" if listed else "")
            + ". Look at the run (syncRuns) and reconcile the records it could not take"), day=day)
        for issue in issues:
            if issue.get("kind") == "OVERCOMMITTED" and issue.get("external_id") in contracts:
                rt = contracts[issue["external_id"]]
                findings.found("SUPPLIER_OVERCOMMITTED", (
                    f"supplier {source} (run {run_id}) reduced contract {issue['external_id']} "
                    f"({codes.get(rt, rt)}) below what is committed: {issue.get('message', '')}"), rt, day)


# --- the job and the list ----------------------------------------------------------------------------


async def catch_up(services: Services, *, now: datetime | None = None, actor: Actor = audit.SYSTEM) -> int:
    """Close every hotel's business days that are due and not closed yet (after downtime, several
    per hotel, oldest first). Safe on every worker at once. Returns how many this call closed."""
    async with services.sessions() as session:
        hotels = (await session.execute(text(
            "SELECT h.id, h.time_zone, statement_timestamp(),"
            " (SELECT max(business_date) FROM night_audit AS a WHERE a.hotel_id = h.id),"
            " LEAST((SELECT min(check_in) FROM booking AS b WHERE b.hotel_id = h.id),"
            "       (SELECT min(start_date) FROM contract AS c WHERE c.hotel_id = h.id))"
            " FROM hotel AS h ORDER BY h.id"))).all()
    closed = 0
    for hotel_id, tz, db_now, last, first in hotels:
        when = now or db_now
        for day in audit_due_dates(when, tz or DEFAULT_TIME_ZONE, services.settings.night_audit_hour, last, first,
                                   CATCH_UP_DAYS):
            try:
                closed += (await close_day(services, actor, hotel_id, day, now=now))[1]
            except Exception:
                log.exception("night audit of hotel %s for %s failed", hotel_id, day)
                break  # the next days wait for this one: audits close in date order
    return closed


async def night_audits(services: Services, hotel_id: int, start: date | None, end: date | None,
                       first: int | None, after: str | None) -> Page[models.NightAudit]:
    """The hotel's audits, newest closed first; [start, end) narrows the business dates."""
    statement = select(models.NightAudit).where(models.NightAudit.hotel_id == hotel_id)
    if start is not None:
        statement = statement.where(models.NightAudit.business_date >= start)
    if end is not None:
        statement = statement.where(models.NightAudit.business_date < end)
    async with services.sessions() as session:
        return await paginate(session, statement, models.NightAudit.id, first=first, after=after, descending=True)

