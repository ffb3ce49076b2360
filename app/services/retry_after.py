"""`Retry-After` (RFC 9110), as the supplier feed's client and the webhook dispatcher read it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Ten digits at most: a longer number is no sensible delay, and would overflow a timedelta.
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
