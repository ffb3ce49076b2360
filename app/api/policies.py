"""Cancellation policies as the API shows them (Hotel.cancellationPolicy, RatePlan.cancellationPolicy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry


@strawberry.type(description="Cancelling `daysBeforeArrival` days or fewer before check-in (at the hotel's local "
                 "date) costs `feePercent` % of the sale's total; the highest percent that applies wins.")
class CancellationRule:
    days_before_arrival: int
    fee_percent: int


def policy_of(stored: Sequence[dict[str, Any]] | None) -> list[CancellationRule] | None:
    """A stored policy ([{days_before_arrival, fee_percent}]) as the API's; None: none set."""
    if stored is None:
        return None
    return [CancellationRule(days_before_arrival=int(rule["days_before_arrival"]),
                             fee_percent=int(rule["fee_percent"])) for rule in stored]
