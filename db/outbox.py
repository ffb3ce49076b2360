"""The outbox: a committed change of inventory, recorded in the change's own transaction.

`record_change` bumps the hotel's inventory version and writes the change's outbox row in one
statement (the version bump is the last thing a write does before it commits; see
`db.inventory.bump_version`). The relay (app.services.changes) publishes the row after commit and
marks it sent; rows a crashed worker left unsent are claimed by any worker with SKIP LOCKED.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

CHANGE_TOPIC = "inventory.change"
NOTICE_TOPIC = "notice"  # {"channel", "message"}: published as it is


def change_payload(groups: str = "CAST(:groups AS jsonb)") -> str:
    """The SQL of a change row's payload, built where the new version is known (`version` is the
    name of the CTE that bumped it). The booking hold's one-statement write (db.bookings) names
    its new group in `groups`."""
    return (
        "jsonb_build_object('hotelId', CAST(:hotel_id AS integer), 'version', version.version, "
        "'roomTypeIds', to_jsonb(CAST(:changed_room_type_ids AS integer[])), "
        "'from', CAST(:start AS date), 'to', CAST(:end AS date), "
        f"'groups', {groups}, 'blocks', CAST(:blocks AS jsonb))"
    )


def bump_version_sql(rows: str = "VALUES (CAST(:hotel_id AS integer), 1)") -> str:
    """The version bump, for each row of `rows` (one: the hotel and 1; none: no bump)."""
    return (
        f"INSERT INTO inventory_version (hotel_id, version) {rows} "
        "ON CONFLICT (hotel_id) DO UPDATE SET version = inventory_version.version + 1 RETURNING version"
    )


BUMP_VERSION = bump_version_sql()


def changes_by_hotel(when: str = "true") -> str:
    """The CTEs `version` and `change` of a write that records its changes from parallel arrays:
    each hotel of `:hotel_ids` (sorted, so that concurrent writers lock the version rows in one
    order) gets its version bumped and an outbox row of its `:payloads` entry (`Change.payload()`)
    with the new version, provided `when` (SQL) holds. `change` returns each row's id and payload."""
    return (
        "version AS (INSERT INTO inventory_version (hotel_id, version)"
        f"  SELECT h, 1 FROM unnest(CAST(:hotel_ids AS integer[])) AS h WHERE {when}"
        "  ON CONFLICT (hotel_id) DO UPDATE SET version = inventory_version.version + 1 RETURNING hotel_id, version), "
        f"change AS (INSERT INTO outbox (topic, payload) SELECT '{CHANGE_TOPIC}',"
        "  c.payload || jsonb_build_object('version', version.version)"
        "  FROM version JOIN unnest(CAST(:hotel_ids AS integer[]), CAST(:payloads AS jsonb[])) AS c(hotel_id, payload)"
        "  USING (hotel_id) RETURNING id, payload)"
    )


# A select-list entry of a statement with `changes_by_hotel`: (hotel id, outbox id, version) of each
# change written.
CHANGES_WRITTEN = ("ARRAY(SELECT ROW(CAST(c.payload->>'hotelId' AS integer), c.id, CAST(c.payload->>'version' AS integer))"
                   " FROM change AS c) AS changes_written")


def changes_by_hotel_values(payloads: Sequence[dict]) -> dict:
    """The parameters of `changes_by_hotel`, for payloads in hotel order (Touched.unversioned())."""
    return {"hotel_ids": [payload["hotelId"] for payload in payloads], "payloads": list(payloads)}


def changes_written(row: Any, payloads: Sequence[dict]) -> list[tuple[int, int]]:
    """(outbox id, version) per payload, in their order, from the row holding CHANGES_WRITTEN."""
    found = {hotel_id: (outbox_id, version) for hotel_id, outbox_id, version in row["changes_written"]}
    return [found[payload["hotelId"]] for payload in payloads]

_RECORD_CHANGE = text(
    f"WITH version AS ({BUMP_VERSION}) "
    f"INSERT INTO outbox (topic, payload) SELECT '{CHANGE_TOPIC}', {change_payload()} FROM version "
    "RETURNING id, CAST(payload->>'version' AS integer) AS version"
).bindparams(bindparam("groups", type_=JSONB), bindparam("blocks", type_=JSONB))


def change_parameters(
    hotel_id: int, room_type_ids: Sequence[int], start: date, end: date,
    groups: Sequence[tuple[int, int]], blocks: Sequence[tuple[int, int]],
) -> dict:
    return {
        "hotel_id": hotel_id, "changed_room_type_ids": sorted(set(room_type_ids)), "start": start, "end": end,
        "groups": [list(pair) for pair in groups], "blocks": [list(pair) for pair in blocks],
    }


async def record_change(
    session: AsyncSession, hotel_id: int, room_type_ids: Sequence[int], start: date, end: date,
    groups: Sequence[tuple[int, int]] = (), blocks: Sequence[tuple[int, int]] = (),
) -> tuple[int, int]:
    """Bump the hotel's version and write the change's outbox row; returns (version, row id).

    `groups` and `blocks` are the (id, agency id) pairs of the booking groups and hardblocks the
    change touched."""
    row = (await session.execute(
        _RECORD_CHANGE, change_parameters(hotel_id, room_type_ids, start, end, groups, blocks)
    )).one()
    return int(row.version), int(row.id)


_RECORD_NOTICE = text(
    f"INSERT INTO outbox (topic, payload) VALUES ('{NOTICE_TOPIC}', :payload) RETURNING id"
).bindparams(bindparam("payload", type_=JSONB))


async def record_notice(session: AsyncSession, payload: dict) -> int:
    return int((await session.execute(_RECORD_NOTICE, {"payload": payload})).scalar_one())


# Unsent rows older than the grace period: their writer did not mark them sent in time (it
# crashed, or lost its connection), so whoever claims them first publishes them.
_CLAIM_STALE = text(
    "SELECT id, topic, payload FROM outbox "
    "WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => :grace_s) "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = text("UPDATE outbox SET sent_at = now() WHERE id = ANY(CAST(:ids AS bigint[])) AND sent_at IS NULL")
_FORGET_SENT = text("DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => :keep_s)")


async def claim_stale(session: AsyncSession, grace_s: float, limit: int) -> list[tuple[int, str, dict]]:
    """Lock up to `limit` stale unsent rows for this transaction (others skip them)."""
    rows = await session.execute(_CLAIM_STALE, {"grace_s": grace_s, "limit": limit})
    return [(row.id, row.topic, row.payload) for row in rows]


async def mark_sent(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(_MARK_SENT, {"ids": list(ids)})


async def forget_sent(session: AsyncSession, keep_s: float) -> None:
    await session.execute(_FORGET_SENT, {"keep_s": keep_s})
