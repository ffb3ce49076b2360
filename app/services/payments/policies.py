"""Cancellation policies (setCancellationPolicy): a hotel's default and a rate plan's own. A sale
freezes the policy it was confirmed under (its rate plan's, else its hotel's), so a change applies
to sales confirmed after it commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from app.auth import Role
from app.services.context import Caller, Services
from app.services.errors import Forbidden, InvalidInput
from db import audit, models
from db.engine import transaction
from domain import CancellationRule, check_policy


def rules_json(rules: Sequence[CancellationRule]) -> list[dict[str, int]]:
    """The stored form (hotel, rate plan and sale order alike), furthest from arrival first."""
    return [{"days_before_arrival": rule.days_before_arrival, "fee_percent": rule.fee_percent}
            for rule in sorted(rules, key=lambda rule: -rule.days_before_arrival)]


def rules_of(stored: Sequence[dict[str, Any]] | None) -> list[CancellationRule] | None:
    if stored is None:
        return None
    return [CancellationRule(int(rule["days_before_arrival"]), int(rule["fee_percent"])) for rule in stored]


async def set_cancellation_policy(services: Services, caller: Caller, hotel_id: int, rate_plan_id: int | None,
                                  rules: Sequence[CancellationRule], inherit: bool = False
                                  ) -> models.Hotel | models.RatePlan:
    """Set the hotel's default policy (`rate_plan_id` None) or the rate plan's own. `rules` empty:
    free cancellation, explicitly. `inherit` (rate plans only, with no rules): drop the plan's own
    policy, so the hotel's applies. Audited; a change to the same policy writes nothing."""
    if caller.principal.role is not Role.ADMIN:
        raise Forbidden("only admins set cancellation policies")
    if problem := check_policy(rules):
        raise InvalidInput(problem.field, f"{problem.field} {problem.message}")
    if inherit and rate_plan_id is None:
        raise InvalidInput("inherit", "inherit drops a rate plan's own policy; a hotel has nothing to inherit "
                                      "(rules: [] makes its cancellations free)")
    if inherit and rules:
        raise InvalidInput("rules", "rules must be empty with inherit: the plan takes the hotel's policy")
    stored = None if inherit else rules_json(rules)
    async with transaction(services.sessions) as session:
        query = select(models.Hotel).where(models.Hotel.id == hotel_id)
        hotel = (await session.execute(query if rate_plan_id else query.with_for_update())).scalar_one_or_none()
        if hotel is None:
            raise InvalidInput("hotelId", "no hotel with that id")
        row: models.Hotel | models.RatePlan = hotel
        if rate_plan_id is not None:
            plan = (await session.execute(select(models.RatePlan).where(models.RatePlan.id == rate_plan_id)
                                          .with_for_update())).scalar_one_or_none()
            if plan is None or plan.hotel_id != hotel.id:
                raise InvalidInput("ratePlanId", f"no rate plan of hotel {hotel.code} with that id")
            row = plan
        if row.cancellation_rules == stored:
            return row
        before = {"cancellation_rules": row.cancellation_rules}
        row.cancellation_rules = stored
        await session.flush()
        kind = "rate_plan" if isinstance(row, models.RatePlan) else "hotel"
        assert row.id is not None
        audit.record(session, caller.actor, f"{kind}.cancellation_policy_set",
                     "RatePlan" if kind == "rate_plan" else "Hotel", row.id, before=before,
                     after={"cancellation_rules": stored})
    return row
