"""Whose rows a caller may see and act for: staff every agency's, an agent its own agency's."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.context import Caller
from app.services.errors import InvalidInput
from db import models


async def own_agency_id(session: AsyncSession, caller: Caller) -> int | None:
    """The caller's agency id for agents (0 when the agency is not registered); None for staff.
    Read on the caller's own session: a second pooled connection per request could starve the
    pool under load."""
    if caller.is_staff:
        return None
    result = await session.execute(
        select(models.Agency.id).where(models.Agency.code == caller.principal.agency_code))
    return result.scalar_one_or_none() or 0


def scoped(statement: Select[Any], own: int | None, agency_column: Any) -> Select[Any]:
    """`statement` narrowed to the agency `own_agency_id` returned (unchanged for staff)."""
    return statement if own is None else statement.where(agency_column == own if own else false())


AgencyT = TypeVar("AgencyT")


def acting(caller: Caller, agency_id: int | None, found: AgencyT | None) -> AgencyT:
    """The agency a booking or block is for, given the row looked up (by `agency_id` for staff, by
    the token's agency code for agents): staff name it, agents act for their own."""
    if caller.is_staff:
        if agency_id is None:
            raise InvalidInput("agencyId", "agencyId is required: say which agency the booking is for")
        if found is None:
            raise InvalidInput("agencyId", "no agency with that id")
        return found
    if found is None:
        raise InvalidInput("agencyId", f"your agency {caller.principal.agency_code!r} is not registered")
    if agency_id is not None and agency_id != found.id:  # type: ignore[attr-defined]
        raise InvalidInput("agencyId", "agents book for their own agency only")
    return found

