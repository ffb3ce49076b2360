"""Why a calendar night cannot be sold or arrived on (the API's `CalendarCell.reasons`)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from domain.budget import CalendarRow
from domain.restrictions import RestrictionRow


class UnavailableReason(StrEnum):
    SOLD_OUT = "SOLD_OUT"  # a contract covers the night and its pool has no room left
    CLOSED = "CLOSED"  # stop-sell (BLOCK_CONTRACT)
    RELEASED = "RELEASED"  # the contract's release cut-off has passed
    NO_CONTRACT = "NO_CONTRACT"  # no active contract covers the night
    PAST = "PAST"  # before the hotel's today
    CLOSED_TO_ARRIVAL = "CLOSED_TO_ARRIVAL"  # no stay may start on the night
    ADVANCE_WINDOW = "ADVANCE_WINDOW"  # arriving on the night is too soon or too far ahead


def unavailable_reasons(
    row: CalendarRow, restrictions: RestrictionRow, today: date
) -> tuple[tuple[UnavailableReason, ...], ...]:
    """Per night of `row`, every reason that holds, each on its own (a past night is also released,
    a closed one may also be sold out), in the order above; () when the night can be sold and
    arrived on. `restrictions` are the caller's agency's and cover the row's nights; `today` is
    the hotel's, as of the `now` the row was computed at.

    The first five are the pool's: none of them holds exactly when `available > 0` (SOLD_OUT
    means allotment <= hardblocked + held + sold, an allotment of 0 included; a past night is
    also RELEASED or NO_CONTRACT). The last two judge the night as an arrival; minStay, maxStay
    and closedToDeparture depend on the stay, so they are judged on stays (`judge_stay`).
    """
    n = len(row.dates)
    if n:  # both ends covered, or OutsideCalendar
        restrictions.on(row.dates[0])
        restrictions.on(row.dates[-1])
    offset = (row.start - restrictions.start).days
    today_ordinal = today.toordinal()
    out = []
    for night, allotment, hardblocked, held, sold, is_closed, release_date, r in zip(
        row.dates, row.allotment, row.hardblocked, row.held, row.sold, row.closed, row.release_date,
        restrictions.nights[offset : offset + n],
    ):
        reasons = []
        if release_date is not None and allotment <= hardblocked + held + sold:
            reasons.append(UnavailableReason.SOLD_OUT)
        if is_closed:
            reasons.append(UnavailableReason.CLOSED)
        if release_date is None:
            reasons.append(UnavailableReason.NO_CONTRACT)
        elif release_date <= today:
            reasons.append(UnavailableReason.RELEASED)
        lead = night.toordinal() - today_ordinal
        if lead < 0:
            reasons.append(UnavailableReason.PAST)
        if r.closed_to_arrival:
            reasons.append(UnavailableReason.CLOSED_TO_ARRIVAL)
        if (r.min_advance_days is not None and lead < r.min_advance_days) or (
            r.max_advance_days is not None and lead > r.max_advance_days
        ):
            reasons.append(UnavailableReason.ADVANCE_WINDOW)
        out.append(tuple(reasons))
    return tuple(out)
