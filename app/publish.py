"""What writes tell subscribers, after commit: small messages of ids and ranges, never payloads.

Channels: `inventory.<hotelId>` (cells changed: room types and a night range, with the hotel's
new inventory version), `booking_groups` and `hardblocks` (which entity changed and whose it is;
subscribers filter on that and re-read the entity with their own permissions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import date

from app.context import Context

log = logging.getLogger(__name__)


def inventory_channel(hotel_id: int) -> str:
    return f"inventory.{hotel_id}"


BOOKING_GROUPS_CHANNEL = "booking_groups"
HARDBLOCKS_CHANNEL = "hardblocks"


async def _publish(context: Context, channel: str, message: dict) -> None:
    try:
        await context.broadcast.publish(channel, json.dumps(message, separators=(",", ":")))
    except Exception:  # the write is committed; a lost notification is caught by version gaps
        log.exception("could not publish to %s", channel)


async def publish_inventory_change(
    context: Context, hotel_id: int, version: int, room_type_ids: Iterable[int], start: date, end: date
) -> None:
    await _publish(context, inventory_channel(hotel_id), {
        "hotelId": hotel_id, "version": version, "roomTypeIds": sorted(set(room_type_ids)),
        "from": start.isoformat(), "to": end.isoformat(),
    })


async def publish_booking_group_change(context: Context, group_id: int, agency_id: int) -> None:
    await _publish(context, BOOKING_GROUPS_CHANNEL, {"groupId": group_id, "agencyId": agency_id})


async def publish_hardblock_change(context: Context, hardblock_id: int, agency_id: int) -> None:
    await _publish(context, HARDBLOCKS_CHANNEL, {"hardblockId": hardblock_id, "agencyId": agency_id})
