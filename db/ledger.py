"""An agency's ledger summed per kind and currency, as its checkpoint plus the entries after it
(models.LedgerCheckpoint): the read costs the entries since the checkpoint, not the agency's
whole history. A reader holding the agency's ledger lock may move the checkpoint up to what it
read (every entry of the agency is written under that lock, so none before it is still to come).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.fastpath import Statement

# Entries read past the checkpoint after which a reader under the lock moves it.
CHECKPOINT_EVERY = 1000

Sums = list[tuple[str, str, Decimal]]  # (kind, currency, amount)


def checkpoint_columns(agency: str, when: str = "TRUE") -> str:
    """Select-list entries: the agency's checkpoint (through_id, sums as text) and the entries after
    it summed per kind and currency with their count and last id; read only `when` it holds."""
    after = f"COALESCE((SELECT k.through_id FROM ledger_checkpoint AS k WHERE k.agency_id = {agency}), 0)"
    return (
        f"(SELECT ROW(k.through_id, CAST(k.sums AS text)) FROM ledger_checkpoint AS k"
        f"  WHERE k.agency_id = {agency} AND {when}) AS checkpoint, "
        f"ARRAY(SELECT ROW(l.kind, l.currency, sum(l.amount), count(*), max(l.id)) FROM ledger_entry AS l"
        f"  WHERE l.agency_id = {agency} AND l.id > {after} AND {when} GROUP BY l.kind, l.currency) AS ledger_tail"
    )


def combined(checkpoint: Any, tail: Sequence[Any]) -> tuple[Sums, int, int]:
    """The agency's sums (checkpoint + tail), how many entries the tail held and the last id read."""
    through, totals = 0, {}
    if checkpoint is not None:
        through, sums = checkpoint
        for kind, currency, amount in orjson.loads(sums):
            totals[kind, currency] = Decimal(amount)
    count, last = 0, through
    for kind, currency, amount, n, max_id in tail:
        totals[kind, currency] = totals.get((kind, currency), Decimal(0)) + amount
        count, last = count + n, max(last, max_id)
    return [(kind, currency, amount) for (kind, currency), amount in sorted(totals.items())], count, last


_WRITE = Statement(
    "INSERT INTO ledger_checkpoint (agency_id, through_id, sums) VALUES (CAST(:agency_id AS integer),"
    " CAST(:through_id AS integer), CAST(:sums AS jsonb)) ON CONFLICT (agency_id) DO UPDATE"
    " SET through_id = excluded.through_id, sums = excluded.sums, updated_at = statement_timestamp()"
    " WHERE ledger_checkpoint.through_id < excluded.through_id"
)


async def move_checkpoint(connection: asyncpg.Connection, agency_id: int, through_id: int, sums: Sums) -> None:
    """Under the agency's ledger lock only: its sums up to `through_id` (all it has read)."""
    await connection.execute(_WRITE.sql, *_WRITE.args({
        "agency_id": agency_id, "through_id": through_id,
        "sums": [[kind, currency, str(amount)] for kind, currency, amount in sums]}))


_BY_AGENCY = text(
    "SELECT a.id, " + checkpoint_columns("a.id") + " FROM agency AS a WHERE a.id = ANY(CAST(:ids AS integer[]))"
)


async def ledgers_by_agency(session: AsyncSession, agency_ids: Sequence[int]) -> dict[int, Sums]:
    """Each agency's sums (checkpoint + entries after it), for the API's balances."""
    rows = await session.execute(_BY_AGENCY, {"ids": list(agency_ids)})
    return {agency_id: combined(checkpoint, tail)[0] for agency_id, checkpoint, tail in rows}
