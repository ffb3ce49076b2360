"""The two notices no write causes, recorded by jobs that every worker runs:

- `hardblock.release_upcoming`: a block's unsold nights return to the pool within
  RELEASE_ALERT_HOURS. Once per block, night and threshold, however many workers look and however
  often they restart: a (block, night, threshold) row is claimed with INSERT ... ON CONFLICT DO
  NOTHING in the transaction that records the event, so exactly one transaction wins each night.
- `booking_group.expiring`: a hold lapses within HOLD_EXPIRING_NOTICE. Once per group, the same way.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from app.services.context import Services
from app.services.notify.events import node_id
from app.services.reads import block_grids, block_grid
from db import models
from db.queries import rows_by_id
from db.engine import transaction

HOLD_EXPIRING_NOTICE = timedelta(minutes=5)

# Nights of active blocks whose release instant (the hotel-local midnight `release_days` before the
# night) is still ahead but within the threshold, not yet released, not yet announced.
_UPCOMING = text("""
SELECT b.id AS hardblock_id, n.night, n.release_at
FROM hardblock AS b
JOIN hotel AS h ON h.id = b.hotel_id
CROSS JOIN LATERAL (
    SELECT CAST(series.night AS date) AS night,
           CAST(CAST(series.night AS date) - b.release_days AS timestamp) AT TIME ZONE h.time_zone AS release_at
    FROM generate_series(b.start_date, b.end_date - 1, interval '1 day') AS series(night)) AS n
WHERE b.status = 'ACTIVE'
  AND n.release_at > statement_timestamp()
  AND n.release_at <= statement_timestamp() + make_interval(hours => :hours)
  AND NOT EXISTS (SELECT 1 FROM release_alert AS a WHERE a.hardblock_id = b.id AND a.night = n.night
                  AND a.threshold_hours = :hours)
  AND NOT EXISTS (SELECT 1 FROM hardblock_night_release AS r WHERE r.hardblock_id = b.id AND r.night = n.night)
ORDER BY b.id, n.night
LIMIT :limit
""")
_CLAIM_NIGHTS = text("""
INSERT INTO release_alert (hardblock_id, night, threshold_hours)
SELECT :block, night, :hours FROM unnest(CAST(:nights AS date[])) AS night
ON CONFLICT DO NOTHING RETURNING night
""")


async def announce_releases(services: Services, *, limit: int = 500) -> int:
    """Record a release_upcoming event per block for its nights (with unsold rooms) that release
    within the threshold and were not announced; returns how many nights were claimed."""
    hours = services.settings.release_alert_hours
    now = models.utcnow()
    async with transaction(services.sessions) as session:
        rows = list((await session.execute(_UPCOMING, {"hours": hours, "limit": limit})).mappings())
        if not rows:
            return 0
        nights: dict[int, list[tuple[Any, datetime]]] = defaultdict(list)
        for row in rows:
            nights[row["hardblock_id"]].append((row["night"], row["release_at"]))
        blocks = await rows_by_id(session, models.Hardblock, list(nights))
        room_types = await rows_by_id(session, models.RoomType, [b.room_type_id for b in blocks.values()])
        keys = [(blocks[pk].hotel_id, pk, min(n for n, _ in found), max(n for n, _ in found) + timedelta(days=1))
                for pk, found in nights.items()]
        grids = await block_grids(session, keys)
        claimed = 0
        for key in keys:
            hotel_id, pk, start, end = key
            block = blocks[pk]
            data = grids[key]
            unsold = {view.slot.date: view.slot.available
                      for view in block_grid(data, pk, start, end, now, data.bookings)}
            won = [row.night for row in await session.execute(
                _CLAIM_NIGHTS, {"block": pk, "hours": hours, "nights": [n for n, _ in nights[pk]]})]
            claimed += len(won)
            announced = [(n, at) for n, at in nights[pk] if n in won and unsold.get(n, 0) > 0]
            if not announced:
                continue
            room_type = room_types.get(block.room_type_id)
            event = models.PartnerEvent(
                type="hardblock.release_upcoming", agency_id=block.agency_id, hotel_id=block.hotel_id,
                entity_type="Hardblock", entity_id=pk, payload={
                    "id": node_id("Hardblock", pk), "reference": block.reference,
                    "hotelId": node_id("Hotel", block.hotel_id), "roomTypeId": node_id("RoomType", block.room_type_id),
                    "roomTypeName": room_type.name if room_type else "", "hours": hours,
                    "nights": [{"date": n.isoformat(), "releaseAt": at.isoformat(), "unsold": unsold[n]}
                               for n, at in announced],
                    "updatedAt": now.isoformat()})
            session.add(event)
            await session.flush()
            await session.execute(text(
                "UPDATE release_alert SET event_id = :event WHERE hardblock_id = :block AND threshold_hours = :hours "
                "AND night = ANY(CAST(:nights AS date[]))"),
                {"event": event.id, "block": pk, "hours": hours, "nights": [n for n, _ in announced]})
    return claimed


_CLAIM_EXPIRING = text("""
INSERT INTO hold_expiry_notice (group_id)
SELECT g.id FROM booking_group AS g
WHERE g.status = 'HELD' AND g.expires_at > statement_timestamp()
  AND g.expires_at <= statement_timestamp() + make_interval(secs => :within_s)
ORDER BY g.expires_at LIMIT :limit
ON CONFLICT DO NOTHING RETURNING group_id
""")
# The event's payload is built at fan-out, from the group, like those of the writes' events.
_RECORD_EXPIRING = text("""
WITH recorded AS (
    INSERT INTO partner_event (type, agency_id, hotel_id, entity_type, entity_id)
    SELECT 'booking_group.expiring', g.agency_id, (SELECT min(b.hotel_id) FROM booking AS b WHERE b.group_id = g.id),
           'BookingGroup', g.id
    FROM booking_group AS g WHERE g.id = ANY(CAST(:ids AS integer[]))
    RETURNING id, entity_id
)
UPDATE hold_expiry_notice AS n SET event_id = recorded.id FROM recorded WHERE n.group_id = recorded.entity_id
""")


async def announce_expiring_holds(services: Services, *, limit: int = 500) -> int:
    """Record an expiring event for each hold lapsing within HOLD_EXPIRING_NOTICE that was not
    told yet; returns how many."""
    async with transaction(services.sessions) as session:
        claimed = [row.group_id for row in await session.execute(
            _CLAIM_EXPIRING, {"within_s": HOLD_EXPIRING_NOTICE.total_seconds(), "limit": limit})]
        if claimed:
            await session.execute(_RECORD_EXPIRING, {"ids": claimed})
        return len(claimed)
