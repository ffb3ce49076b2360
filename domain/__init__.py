"""StaySync's pure business logic: contracts, events, resolver, pool budget, decisions.

Standard library only: no I/O, no ORM, no Strawberry.
"""

from domain.bookings import (
    BookingLine,
    BookingStatus,
    cancel_status,
    check_booking_item,
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
    pool_shortfalls,
    preview_amendment,
    proposed_amendments,
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
from domain.events import AllotmentEvent, EventKind, check_event, live_events, order_key, validate_event, void_event
from domain.hardblocks import (
    HardblockStatus,
    HardblockTerms,
    check_hardblock,
    release_at,
    release_block,
    release_block_nights,
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
    "check_booking_item",
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
    "effective_status",
    "is_currency_code",
    "live_events",
    "midnight_utc",
    "money_sum",
    "nights",
    "order_key",
    "pool_shortfalls",
    "preview_amendment",
    "proposed_amendments",
    "release_at",
    "release_block",
    "release_block_nights",
    "resolve",
    "stay_price",
    "utc_today",
    "validate_event",
    "void_event",
]
