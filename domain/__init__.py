"""StaySync's pure business logic: contracts, events, resolver, pool budget, decisions.

Standard library only: no I/O, no ORM, no Strawberry.
"""

from domain.bookings import (
    BookingLine,
    BookingStatus,
    cancel_status,
    confirm_status,
    counts,
    effective_status,
)
from domain.budget import CalendarRow, HardblockSlot, PoolCell, compute_calendar, compute_hardblock_slots
from domain.contracts import ContractTerms, check_contract
from domain.decisions import (
    AmendmentPreview,
    BlockRequest,
    BlockShortfall,
    RoomRequest,
    Shortfall,
    SlotConflict,
    SlotDiff,
    block_shortfalls,
    diff_slots,
    extension,
    pool_shortfalls,
    preview_amendment,
    preview_change,
    proposed_amendments,
    returned_rooms,
)
from domain.errors import (
    BookingExpired,
    CurrencyMismatch,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NoRate,
    OutsideCalendar,
)
from domain.events import AllotmentEvent, EventKind, check_event, order_key
from domain.hardblocks import (
    HardblockStatus,
    HardblockTerms,
    check_hardblock,
    effective_released_nights,
    release_at,
)
from domain.money import Money, check_money, is_currency_code, money_sum
from domain.nights import check_range, midnight_utc, nights, utc_today
from domain.pricing import stay_price
from domain.resolver import ResolvedRow, resolve

__all__ = [
    "AllotmentEvent",
    "AmendmentPreview",
    "BlockRequest",
    "BlockShortfall",
    "BookingExpired",
    "BookingLine",
    "BookingStatus",
    "CalendarRow",
    "ContractTerms",
    "CurrencyMismatch",
    "DomainError",
    "EventKind",
    "HardblockSlot",
    "HardblockStatus",
    "HardblockTerms",
    "InvalidInput",
    "InvalidTransition",
    "Money",
    "NoRate",
    "OutsideCalendar",
    "PoolCell",
    "ResolvedRow",
    "RoomRequest",
    "Shortfall",
    "SlotConflict",
    "SlotDiff",
    "block_shortfalls",
    "cancel_status",
    "check_contract",
    "check_event",
    "check_hardblock",
    "check_money",
    "check_range",
    "compute_calendar",
    "compute_hardblock_slots",
    "confirm_status",
    "counts",
    "diff_slots",
    "effective_released_nights",
    "extension",
    "effective_status",
    "is_currency_code",
    "midnight_utc",
    "money_sum",
    "nights",
    "order_key",
    "pool_shortfalls",
    "preview_amendment",
    "preview_change",
    "proposed_amendments",
    "release_at",
    "resolve",
    "returned_rooms",
    "stay_price",
    "utc_today",
]
