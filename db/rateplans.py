"""The rate plans a read prices with, read in the same statement (and snapshot) as the inventory
they price, so the occupancy a rule sees and the plan are of one moment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PlanRef:
    """An active plan as a read found it. `rules` is the stored JSON as text: a worker that has
    compiled this (id, version) already never parses it."""

    id: int
    version: int
    rules: str
    agency_ids: tuple[int, ...]  # empty: for every agency


_PLAN_ROW = "ROW(p.id, p.version, CAST(p.rules AS text), p.agency_ids)"


def plan_columns(hotel: str, agency: str) -> str:
    """Select-list entries `plan` (the PlanRef row of the plan agency `agency` buys the hotel's
    rooms under, or NULL: sell = net) and `agency_tier`. `hotel` and `agency` are SQL of ids.
    The choice is domain.select_plan's: the active plan naming the agency, else the active plan
    for all agencies; ties (which saving refuses) by code."""
    return (
        f"(SELECT {_PLAN_ROW} FROM rate_plan AS p WHERE p.hotel_id = {hotel} AND p.active "
        f" AND ({agency} = ANY(p.agency_ids) OR cardinality(p.agency_ids) = 0) "
        " ORDER BY cardinality(p.agency_ids) = 0, p.code LIMIT 1) AS plan, "
        f"(SELECT a.tier FROM agency AS a WHERE a.id = {agency}) AS agency_tier"
    )


def plans_column(hotel: str) -> str:
    """Select-list entry `plans`: every active plan of the hotel (for reads shown to several
    agencies: a calendar's subscribers)."""
    return f"ARRAY(SELECT {_PLAN_ROW} FROM rate_plan AS p WHERE p.hotel_id = {hotel} AND p.active ORDER BY p.code) AS plans"


def plan_ref(value: Any) -> PlanRef | None:
    return None if value is None else PlanRef(value[0], value[1], value[2], tuple(value[3]))
