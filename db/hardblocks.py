"""The SQL of hardblocks: batch reads for slot grids, night releases and the auto-release job.

Writes that change what a block holds from the pool run under the room type's advisory lock
(db.inventory); recording an automatic release does not: it changes no number (availability
already counts a night as released from its release time), it only writes it down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import models
from db.calendar import COUNTING_STATUSES, booking_line, contract_terms, event_terms, hardblock_terms
from domain import (
    AllotmentEvent,
    BookingLine,
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
    contract = models.Contract
    for row in (await session.execute(
        select(contract).where(contract.room_type_id.in_(room_type_ids), contract.start_date < end,
                               contract.end_date > start)
    )).scalars():
        data.contracts.setdefault(row.room_type_id, []).append(contract_terms(row))
    releases = await night_releases(session, ids)
    for block in blocks:
        data.terms[block.id] = hardblock_terms(
            block, effective_released_nights(block.id, releases.get(block.id, {}), data.amendments)
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


async def release_nights(session: AsyncSession, hardblock_id: int, nights: Iterable[date], now: datetime) -> None:
    """Record manual releases. A night released before and re-grown by an amendment since gets
    the new time: a release stands until a later amendment sets the night again."""
    statement = insert(models.HardblockNightRelease).values(
        [{"hardblock_id": hardblock_id, "night": night, "cause": "MANUAL", "released_at": now} for night in nights]
    )
    await session.execute(statement.on_conflict_do_update(
        constraint="uq_hardblock_night_release_night",
        set_={"cause": "MANUAL", "released_at": statement.excluded.released_at},
    ))


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
_RECORD_AUTO_RELEASES = text(f"""
WITH due AS (
    SELECT b.id AS hardblock_id, night::date AS night
    FROM hardblock b
    CROSS JOIN LATERAL generate_series(b.start_date, b.end_date - 1, interval '1 day') AS night
    WHERE b.status = 'ACTIVE'
      AND b.start_date - b.release_days <= :today
      AND night::date - b.release_days <= :today
      AND NOT EXISTS (SELECT 1 FROM hardblock_night_release r
                      WHERE r.hardblock_id = b.id AND r.night = night::date
                        AND NOT {_SUPERSEDED.format(release="r")})
    ORDER BY b.id, night
    LIMIT :limit
)
INSERT INTO hardblock_night_release AS existing (hardblock_id, night, cause, released_at)
SELECT hardblock_id, night, 'AUTO', :now FROM due
ON CONFLICT (hardblock_id, night) DO UPDATE SET cause = 'AUTO', released_at = excluded.released_at
    WHERE {_SUPERSEDED.format(release="existing")}
RETURNING hardblock_id, night
""")


async def record_auto_releases(
    session: AsyncSession, now: datetime, today: date, *, limit: int = 1000
) -> dict[int, list[date]]:
    """Write down up to `limit` nights that released themselves; returns them per block."""
    rows = await session.execute(_RECORD_AUTO_RELEASES, {"today": today, "now": now, "limit": limit})
    recorded: dict[int, list[date]] = defaultdict(list)
    for block_id, night in rows:
        recorded[block_id].append(night)
    return {block_id: sorted(nights) for block_id, nights in recorded.items()}
