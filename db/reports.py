"""The reports' SQL: revenue by stay night, aggregated in the database, and the booking lines the
CSV export streams.

Revenue counts each booked night in [from, to) at the sell price frozen on the booking for that
night (`booking.nights`), times its rooms; cost likewise at the frozen net. A booking wholly inside
one group's period is summed from its totals (no per-night work); only bookings that cross the
range's edges, or a month's for MONTH, are split night by night. A booking made before prices were
frozen per night counts its total spread evenly over its nights, and has no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The key of each grouping, on a booking `b` (and, for MONTH, the night's month).
_KEYS = {
    "AGENCY": "b.agency_id",
    "HOTEL": "b.hotel_id",
    "ROOM_TYPE": "b.room_type_id",
    "MONTH": "CAST(date_trunc('month', n.night) AS date)",
}

# The booking scope (confirmed and cancelled, overlapping the range, of the hotel, of the agency)
# is repeated in both branches rather than shared as a CTE: a CTE read twice is materialised, every
# column of every booking in the range (`nights` included) written to a tuplestore; inlined, the
# `whole` branch reads only the narrow columns it needs (an index-only scan of
# ix_booking_stay_report) and only `split` fetches `nights`, for the few bookings on the edges.
_SCOPE = """b.status IN ('CONFIRMED', 'CANCELLED') AND b.check_in < :to AND b.check_out > :from
      AND (CAST(:hotel_id AS integer) IS NULL OR b.hotel_id = :hotel_id)
      AND (CAST(:agency_id AS integer) IS NULL OR b.agency_id = :agency_id)"""

_REVENUE = """
WITH whole AS (  -- inside the range, and inside one month when grouped by month: from the totals
    SELECT b.group_id, b.status, b.currency, {whole_key} AS key,
           b.rooms * (b.check_out - b.check_in) AS room_nights, b.total_amount AS revenue, b.net_amount AS cost
    FROM booking AS b
    WHERE {scope}
      AND b.check_in >= :from AND b.check_out <= :to {whole_only}
),
split AS (  -- the others, night by night
    SELECT b.group_id, b.status, b.currency, {split_key} AS key, b.rooms AS room_nights,
           b.rooms * coalesce(CAST(e.value->>'sell' AS numeric), b.total_amount / b.rooms / (b.check_out - b.check_in))
               AS revenue,
           b.rooms * CAST(e.value->>'net' AS numeric) AS cost
    FROM booking AS b
    CROSS JOIN LATERAL generate_series(greatest(b.check_in, CAST(:from AS date)),
                                       least(b.check_out, CAST(:to AS date)) - 1, interval '1 day') AS n(night)
    LEFT JOIN LATERAL (SELECT x.value FROM jsonb_array_elements(b.nights) AS x
                       WHERE x.value->>'date' = to_char(n.night, 'YYYY-MM-DD')) AS e ON true
    WHERE {scope}
      AND {split_only}
),
nights AS (SELECT * FROM whole UNION ALL SELECT * FROM split)
SELECT key, currency,
       count(DISTINCT group_id) FILTER (WHERE status = 'CONFIRMED') AS bookings,
       coalesce(sum(room_nights) FILTER (WHERE status = 'CONFIRMED'), 0) AS room_nights,
       coalesce(sum(revenue) FILTER (WHERE status = 'CONFIRMED'), 0) AS revenue,
       sum(cost) FILTER (WHERE status = 'CONFIRMED') AS cost,
       count(*) FILTER (WHERE status = 'CONFIRMED' AND cost IS NULL) AS uncosted,
       count(DISTINCT group_id) FILTER (WHERE status = 'CANCELLED') AS cancellations,
       coalesce(sum(room_nights) FILTER (WHERE status = 'CANCELLED'), 0) AS cancelled_room_nights
FROM nights GROUP BY key, currency
"""


@dataclass(frozen=True, slots=True)
class RevenueFigures:
    key: Any  # an agency, hotel or room type id, or the first day of a month
    currency: str
    bookings: int  # confirmed booking groups with nights in the range
    room_nights: int
    revenue: Decimal  # sell
    cost: Decimal | None  # net; None when some nights have no frozen net (bookings before rate plans)
    cancellations: int
    cancelled_room_nights: int

    @classmethod
    def zero(cls, key: Any, currency: str) -> RevenueFigures:
        """A key without sales (every key is a row)."""
        return cls(key, currency, 0, 0, Decimal(0), Decimal(0), 0, 0)


# In scope and not inside [from, to): check_in < from < check_out or check_in < to < check_out.
_STRADDLING = """(daterange(b.check_in, b.check_out) @> daterange(CAST(:from AS date) - 1, CAST(:from AS date) + 1)
           OR daterange(b.check_in, b.check_out) @> daterange(CAST(:to AS date) - 1, CAST(:to AS date) + 1))"""


def _revenue_sql(group_by: str) -> str:
    month = group_by == "MONTH"
    return _REVENUE.format(
        scope=_SCOPE,
        whole_key="CAST(date_trunc('month', b.check_in) AS date)" if month else _KEYS[group_by],
        split_key=_KEYS[group_by],
        whole_only="AND date_trunc('month', b.check_in) = date_trunc('month', b.check_out - 1)" if month else "",
        # not `whole`: for MONTH, crossing a month's end too; else straddling `from` or `to` (contains
        # the night before it and it), which the GiST on the stay's daterange finds directly
        split_only=("NOT (b.check_in >= :from AND b.check_out <= :to AND date_trunc('month', b.check_in) = "
                    "date_trunc('month', b.check_out - 1))") if month else _STRADDLING,
    )


_STATEMENTS = {key: text(_revenue_sql(key)) for key in _KEYS}


async def revenue(session: AsyncSession, group_by: str, start: date, end: date, *, hotel_id: int | None,
                  agency_id: int | None) -> list[RevenueFigures]:
    """Revenue of confirmed sales (and what was cancelled) by stay night over [start, end), per key
    and currency."""
    # The split's row estimate (generate_series: 1,000 rows a booking) would have the planner JIT-
    # compile the query, which costs more than the whole query runs.
    await session.execute(text("SET LOCAL jit = off"))
    result = await session.execute(_STATEMENTS[group_by], {"from": start, "to": end, "hotel_id": hotel_id,
                                                           "agency_id": agency_id})
    return [
        RevenueFigures(key=row.key, currency=row.currency, bookings=row.bookings, room_nights=int(row.room_nights),
                       revenue=row.revenue, cost=None if row.uncosted else row.cost,
                       cancellations=row.cancellations, cancelled_room_nights=int(row.cancelled_room_nights))
        for row in result
    ]


# One line per booking (an item of a group), for the CSV export: PostgreSQL writes the CSV itself
# (COPY ... TO STDOUT, quoting and all) and the server passes the bytes on as they come. No ORDER
# BY: a sort would hold the first byte back until every row is read. Agents' lines have no net.
def booking_lines_copy(staff: bool) -> str:
    net = "b.net_amount, " if staff else ""
    return f"""
SELECT g.reference, b.id AS booking_id, a.code AS agency, h.code AS hotel, rt.code AS room_type, b.check_in,
       b.check_out, b.rooms, b.status, b.total_amount, {net}b.currency, o.number AS sale_order,
       g.guest_name, g.created_at
FROM booking AS b
JOIN booking_group AS g ON g.id = b.group_id
JOIN agency AS a ON a.id = b.agency_id
JOIN hotel AS h ON h.id = b.hotel_id
JOIN room_type AS rt ON rt.id = b.room_type_id
LEFT JOIN sale_order AS o ON o.group_id = g.id
WHERE b.check_in < $2 AND b.check_out > $1
  AND ($3::integer IS NULL OR b.hotel_id = $3) AND ($4::text IS NULL OR a.code = $4)
"""
