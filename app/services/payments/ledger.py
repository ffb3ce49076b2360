"""Balances as sums over the ledger (domain.payments), from ledger rows summed per kind and
currency (db.queries.ledger_by_*, db.bookings' locked reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from db.bookings import ledger_entries
from domain import LedgerEntry, Money, outstanding, paid, received, refunded


def _in(entries: Sequence[LedgerEntry], currency: str) -> list[LedgerEntry]:
    return [entry for entry in entries if entry.amount.currency == currency]


def balances(sums: Sequence[Any]) -> dict[str, Money]:
    """What an agency owes per currency it has dealt in (`outstanding`), currencies in order."""
    entries = ledger_entries(sums)
    return {c: outstanding(_in(entries, c), c) for c in sorted({e.amount.currency for e in entries})}


def paid_towards(sums: Sequence[Any], currency: str) -> Money:
    """What was paid and kept (payments - refunds) in `currency`: a group's or a sale order's paid."""
    return paid(_in(ledger_entries(sums), currency), currency)


def received_and_refunded(sums: Sequence[Any], currency: str) -> tuple[Money, Money]:
    """Payments received, and refunds made, in `currency` (payment_status's inputs)."""
    entries = _in(ledger_entries(sums), currency)
    return received(entries, currency), refunded(entries, currency)


def owed(sums: Sequence[Any], currency: str) -> Money:
    """`outstanding` over the entries in `currency` (a sale order's: its balance due)."""
    return outstanding(_in(ledger_entries(sums), currency), currency)
