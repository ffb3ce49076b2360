"""Every table of StaySync. Availability is never stored: it is recomputed from these records."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

# Constraint names are deterministic so migrations can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BOOKING_STATUSES = ("HELD", "CONFIRMED", "CANCELLED", "EXPIRED")
PAYMENT_TERMS = ("PREPAY", "DEPOSIT", "CREDIT")
PAYMENT_STATES = ("PENDING", "REQUIRES_ACTION", "SUCCEEDED", "FAILED", "CANCELED")
PAYMENT_METHODS = ("CARD", "OFFLINE")
LEDGER_KINDS = ("SALE", "PAYMENT", "REFUND", "FEE", "CREDIT_NOTE", "OFFLINE_PAYMENT")
EVENT_KINDS = (
    "INCREASE_ALLOTMENT",
    "REDUCE_ALLOTMENT",
    "BLOCK_CONTRACT",
    "BLOCK_AMENDMENT",
    "RATE_CHANGE",
    "RESTRICTION",
)
SUPPLIER_KINDS = ("HTTP", "FILE")
CONTRACT_ACTIONS = ("ACTIVE", "STOP_SELL", "CANCELLED", "IGNORE")
SYNC_TRIGGERS = ("MANUAL", "SCHEDULE", "FILE", "WEBHOOK")
SYNC_STATUSES = ("RUNNING", "SUCCEEDED", "PARTIAL", "FAILED")
EVENT_SOURCES = ("OPERATOR", "SUPPLIER")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _fk(target: str, *, nullable: bool = False, ondelete: str = "RESTRICT") -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey(target, ondelete=ondelete),
            nullable=nullable,
            index=True,
        ),
    )


def _created_at() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


def _timestamp(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _money() -> Any:
    return Field(sa_column=Column(Numeric(12, 2), nullable=False))


def _priced_money() -> Any:
    """A price the engine computed: rounded to its currency's minor unit (3 places for KWD), so
    without a fixed scale, which would round it again."""
    return Field(sa_column=Column(Numeric(), nullable=False))


def _currency() -> Any:
    return Field(sa_column=Column(String(3), nullable=False))


def _date() -> Any:
    return Field(sa_column=Column(Date, nullable=False))


def _date_defaulting_to(column: str) -> Any:
    """A date that, when not given on insert, takes the value given for `column`."""
    return Field(default=None, sa_column=Column(
        Date, nullable=False, default=lambda context: context.get_current_parameters()[column]
    ))


class Agency(SQLModel, table=True):
    __tablename__ = "agency"
    __table_args__ = (
        CheckConstraint("code ~ '^[A-Z0-9_-]{2,32}$'", name="code_format"),
        CheckConstraint("tier ~ '^[A-Z0-9_-]{1,32}$'", name="tier_format"),
        CheckConstraint(_in("payment_terms", PAYMENT_TERMS), name="payment_terms_known"),
        CheckConstraint("(credit_limit IS NULL) = (credit_currency IS NULL) AND credit_limit >= 0",
                        name="credit_limit_valid"),
        CheckConstraint("(payment_terms = 'DEPOSIT') = (deposit_percent IS NOT NULL AND balance_due_days IS NOT NULL)"
                        " AND deposit_percent BETWEEN 1 AND 99 AND balance_due_days BETWEEN 0 AND 365",
                        name="deposit_terms_valid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # A rate plan's rules may ask for it (e.g. GOLD agencies pay less); null: no tier.
    tier: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    # Where the agency's emails go (confirmations, release alerts...); null: none are sent.
    contact_email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    # How it pays (domain.payments.AgencyTerms): CREDIT without a limit is what every agency had
    # before payments existed, so it is the default.
    payment_terms: str = Field(default="CREDIT", sa_column=Column(String(8), nullable=False, server_default="CREDIT"))
    credit_limit: Decimal | None = Field(default=None, sa_column=Column(Numeric(), nullable=True))
    credit_currency: str | None = Field(default=None, sa_column=Column(String(3), nullable=True))
    deposit_percent: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    balance_due_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = _created_at()


class Hotel(SQLModel, table=True):
    __tablename__ = "hotel"
    __table_args__ = (CheckConstraint("code ~ '^[A-Z0-9_-]{2,32}$'", name="code_format"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # IANA zone: the hotel's nights, "today" and release cut-offs are its local calendar's.
    time_zone: str = Field(default="UTC", sa_column=Column(String(64), nullable=False, server_default="UTC"))
    # The default cancellation policy of its sales ([{days_before_arrival, fee_percent}]; null:
    # free cancellation); a rate plan's own policy wins over it.
    cancellation_rules: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _created_at()


class RoomType(SQLModel, table=True):
    __tablename__ = "room_type"
    __table_args__ = (
        UniqueConstraint("hotel_id", "code", name="uq_room_type_hotel_code"),
        CheckConstraint("code ~ '^[A-Z0-9_-]{1,32}$'", name="code_format"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hotel_id: int = _fk("hotel.id", ondelete="CASCADE")
    code: str = Field(sa_column=Column(String(32), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))


class InventoryVersion(SQLModel, table=True):
    """Per-hotel counter bumped by every committed inventory change (subscribers detect gaps)."""

    __tablename__ = "inventory_version"
    __table_args__ = (CheckConstraint("version >= 0", name="version_nonnegative"),)

    hotel_id: int = Field(
        sa_column=Column(Integer, ForeignKey("hotel.id", ondelete="CASCADE"), primary_key=True)
    )
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class Contract(SQLModel, table=True):
    __tablename__ = "contract"
    __table_args__ = (
        CheckConstraint("start_date < end_date", name="nights_ordered"),
        CheckConstraint("allotment >= 0", name="allotment_nonnegative"),
        CheckConstraint("rate_amount >= 0", name="rate_nonnegative"),
        CheckConstraint("release_days >= 0", name="release_days_nonnegative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        CheckConstraint(_in("status", ("ACTIVE", "CANCELLED")), name="status_known"),
        Index("ix_contract_room_type_nights", "room_type_id", "start_date", "end_date"),
        Index("ix_contract_search", "search", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    hotel_id: int = _fk("hotel.id")
    room_type_id: int = _fk("room_type.id")
    start_date: date = _date()
    end_date: date = _date()
    allotment: int = Field(sa_column=Column(Integer, nullable=False))
    rate_amount: Decimal = _money()
    currency: str = _currency()
    release_days: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    status: str = Field(default="ACTIVE", sa_column=Column(String(16), nullable=False))
    terms: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    search: Any = Field(
        default=None,
        sa_column=Column(
            TSVECTOR,
            Computed("to_tsvector('english', external_id || ' ' || terms)", persisted=True),
        ),
    )
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    # Contracts from a supplier: what reconciliation remembers between reads (the rules are in
    # domain.reconciliation). Typed-in contracts leave these empty.
    supplier_id: int | None = _fk("supplier.id", nullable=True)
    supplier_updated_at: datetime | None = _timestamp()  # the `updated_at` of the last record applied
    supplier_hash: str | None = Field(default=None, sa_column=Column(String(64)))  # of that record
    held_increases: list = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )


class Hardblock(SQLModel, table=True):
    __tablename__ = "hardblock"
    __table_args__ = (
        CheckConstraint("start_date < end_date", name="nights_ordered"),
        CheckConstraint("start_date <= base_start_date AND base_start_date < base_end_date "
                        "AND base_end_date <= end_date", name="base_nights_within_span"),
        CheckConstraint("rooms > 0", name="rooms_positive"),
        CheckConstraint("release_days >= 0", name="release_days_nonnegative"),
        CheckConstraint(_in("status", ("ACTIVE", "RELEASED")), name="status_known"),
        Index("ix_hardblock_room_type_nights", "room_type_id", "start_date", "end_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    agency_id: int = _fk("agency.id")
    hotel_id: int = _fk("hotel.id")
    room_type_id: int = _fk("room_type.id")
    # Every night the block holds rooms on (amendments that extend it widen it); lookups by
    # night rely on it. The sizes come from `rooms` on the base nights, then the amendments.
    start_date: date = _date()
    end_date: date = _date()
    base_start_date: date | None = _date_defaulting_to("start_date")
    base_end_date: date | None = _date_defaulting_to("end_date")
    rooms: int = Field(sa_column=Column(Integer, nullable=False))
    release_days: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    status: str = Field(default="ACTIVE", sa_column=Column(String(16), nullable=False))
    released_at: datetime | None = _timestamp()
    created_at: datetime = _created_at()


class HardblockAmendment(SQLModel, table=True):
    """Groups the BLOCK_AMENDMENT events of one amendment, with its author and reason."""

    __tablename__ = "hardblock_amendment"

    id: int | None = Field(default=None, primary_key=True)
    hardblock_id: int = _fk("hardblock.id")
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    author_uid: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = _created_at()
    reverted_at: datetime | None = _timestamp()


class HardblockNightRelease(SQLModel, table=True):
    """A night whose unsold rooms went back to the pool (manually or by the release job)."""

    __tablename__ = "hardblock_night_release"
    __table_args__ = (
        UniqueConstraint("hardblock_id", "night", name="uq_hardblock_night_release_night"),
        CheckConstraint(_in("cause", ("MANUAL", "AUTO")), name="cause_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hardblock_id: int = _fk("hardblock.id")
    night: date = _date()
    cause: str = Field(sa_column=Column(String(8), nullable=False))
    released_at: datetime = _created_at()


class AllotmentEvent(SQLModel, table=True):
    __tablename__ = "allotment_event"
    __table_args__ = (
        CheckConstraint("start_date < end_date", name="nights_ordered"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind_known"),
        CheckConstraint(
            "(kind NOT IN ('INCREASE_ALLOTMENT', 'REDUCE_ALLOTMENT')) OR quantity > 0",
            name="quantity_positive",
        ),
        CheckConstraint(
            "kind <> 'BLOCK_AMENDMENT' OR (quantity >= 0 AND hardblock_id IS NOT NULL)",
            name="amendment_targets_block",
        ),
        CheckConstraint(
            "kind <> 'RATE_CHANGE' OR (rate_amount >= 0 AND currency IS NOT NULL)",
            name="rate_change_has_rate",
        ),
        Index("ix_allotment_event_room_type_nights", "room_type_id", "start_date", "end_date"),
        CheckConstraint(_in("source", EVENT_SOURCES), name="source_known"),
        CheckConstraint("source <> 'SUPPLIER' OR contract_id IS NOT NULL", name="supplier_event_has_contract"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hotel_id: int = _fk("hotel.id")
    room_type_id: int = _fk("room_type.id")
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    start_date: date = _date()
    end_date: date = _date()
    quantity: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    rate_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    currency: str | None = Field(default=None, sa_column=Column(String(3)))
    hardblock_id: int | None = _fk("hardblock.id", nullable=True)
    amendment_id: int | None = _fk("hardblock_amendment.id", nullable=True)
    effective_at: datetime = _created_at()
    created_at: datetime = _created_at()
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    voided_at: datetime | None = _timestamp()
    voided_by: str | None = Field(default=None, sa_column=Column(String(128)))
    # OPERATOR events are local adjustments; SUPPLIER events are reconciliation's, tied to the
    # contract they adjust and the run that recorded them, and only reconciliation voids them.
    source: str = Field(default="OPERATOR", sa_column=Column(
        String(16), nullable=False, server_default="OPERATOR"))
    contract_id: int | None = _fk("contract.id", nullable=True)
    sync_run_id: int | None = _fk("sync_run.id", nullable=True)
    # RESTRICTION events: the fields they set (None leaves a field as earlier events set it) and
    # the agencies they bind (empty: every agency).
    min_stay: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    max_stay: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    closed_to_arrival: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    closed_to_departure: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    min_advance_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    max_advance_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    agency_ids: list[int] = Field(default_factory=list, sa_column=Column(
        ARRAY(Integer), nullable=False, server_default="{}"))


class RatePlan(SQLModel, table=True):
    """A hotel's selling rules for the agencies it names (none: every agency). `rules` is the
    validated list the API took, stored as JSON; `version` grows with every save, so a worker's
    compiled copy is known stale by comparing it."""

    __tablename__ = "rate_plan"
    __table_args__ = (
        UniqueConstraint("hotel_id", "code", name="uq_rate_plan_hotel_code"),
        CheckConstraint("code ~ '^[A-Z0-9_-]{2,32}$'", name="code_format"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hotel_id: int = _fk("hotel.id", ondelete="CASCADE")
    code: str = Field(sa_column=Column(String(32), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    agency_ids: list[int] = Field(default_factory=list, sa_column=Column(
        ARRAY(Integer), nullable=False, server_default="{}"))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    rules: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(
        JSONB, nullable=False, server_default="[]"))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    # The plan's own cancellation policy (as Hotel.cancellation_rules); null: the hotel's.
    cancellation_rules: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class BookingGroup(SQLModel, table=True):
    __tablename__ = "booking_group"
    __table_args__ = (
        CheckConstraint(_in("status", BOOKING_STATUSES), name="status_known"),
        Index("ix_booking_group_held_expiry", "expires_at", postgresql_where=text("status = 'HELD'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    agency_id: int = _fk("agency.id")
    status: str = Field(default="HELD", sa_column=Column(String(16), nullable=False))
    guest_name: str = Field(default="", sa_column=Column(String(200), nullable=False))
    expires_at: datetime | None = _timestamp()
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = _created_at()
    confirmed_at: datetime | None = _timestamp()
    cancelled_at: datetime | None = _timestamp()
    # Set when a card payment started while the group was held: the hold is extended once.
    hold_extended_at: datetime | None = _timestamp()


class Booking(SQLModel, table=True):
    """One item of a group. Status and expiry are the group's (denormalised for the
    availability aggregate, which must stay one indexed scan inside the lock)."""

    __tablename__ = "booking"
    __table_args__ = (
        CheckConstraint("check_in < check_out", name="nights_ordered"),
        CheckConstraint("rooms > 0", name="rooms_positive"),
        CheckConstraint(_in("status", BOOKING_STATUSES), name="status_known"),
        CheckConstraint("total_amount >= 0", name="total_nonnegative"),
        Index("ix_booking_room_type_stay", "room_type_id", "check_in", "check_out"),
        # The reports' (migration c3f1a8d5e7b2): revenue's bookings inside the range from the index
        # alone, and those straddling its edges (`daterange(...) @> ...`) through the GiST.
        Index("ix_booking_stay_report", "check_in", "check_out",
              postgresql_include=["status", "hotel_id", "agency_id", "room_type_id", "group_id", "rooms",
                                  "total_amount", "net_amount", "currency"]),
        Index("ix_booking_stay_range", text("daterange(check_in, check_out)"), postgresql_using="gist"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = _fk("booking_group.id", ondelete="CASCADE")
    agency_id: int = _fk("agency.id")
    hotel_id: int = _fk("hotel.id")
    room_type_id: int = _fk("room_type.id")
    hardblock_id: int | None = _fk("hardblock.id", nullable=True)
    check_in: date = _date()
    check_out: date = _date()
    rooms: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(default="HELD", sa_column=Column(String(16), nullable=False))
    expires_at: datetime | None = _timestamp()
    total_amount: Decimal = _priced_money()  # sell, for all the rooms
    currency: str = _currency()
    # The breakdown frozen when the hold was priced: per night and room, net, sell and the rules
    # applied ([{"date", "net", "sell", "applied": [{"rule", "amount"}]}], amounts as strings).
    # Empty for bookings made before rate plans existed.
    nights: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(
        JSONB, nullable=False, server_default="[]"))
    net_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(), nullable=True))
    rate_plan_id: int | None = _fk("rate_plan.id", nullable=True, ondelete="SET NULL")
    rate_plan_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))


# Numbers sale orders (SO-<year>-<n>): gapless is not promised, unique is.
SALE_ORDER_NUMBER_SEQ = Sequence("sale_order_number_seq", metadata=SQLModel.metadata)


class SaleOrder(SQLModel, table=True):
    __tablename__ = "sale_order"
    __table_args__ = (
        CheckConstraint(_in("status", ("CONFIRMED", "CANCELLED")), name="status_known"),
        CheckConstraint("total_amount >= 0", name="total_nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    group_id: int = Field(
        sa_column=Column(Integer, ForeignKey("booking_group.id"), nullable=False, unique=True)
    )
    agency_id: int = _fk("agency.id")
    status: str = Field(default="CONFIRMED", sa_column=Column(String(16), nullable=False))
    total_amount: Decimal = _priced_money()
    currency: str = _currency()
    confirmed_at: datetime = _created_at()
    cancelled_at: datetime | None = _timestamp()
    # Frozen at confirmation, as the prices are: the cancellation policy the sale was made under
    # (null: free cancellation), and for DEPOSIT terms the date the balance is due.
    cancellation_rules: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    balance_due_at: datetime | None = _timestamp()
    cancellation_fee: Decimal | None = Field(default=None, sa_column=Column(Numeric(), nullable=True))


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_key_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(sa_column=Column(String(64), nullable=False))
    key: str = Field(sa_column=Column(String(200), nullable=False))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    group_id: int | None = _fk("booking_group.id", nullable=True)
    # What another keyed write answered (the ids it wrote, the failures of a bulk's items): a retry
    # replays it. createBooking links its group through group_id instead.
    outcome: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _created_at()


class AuditEntry(SQLModel, table=True):
    """Append-only: never updated, never purged (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    at: datetime = _created_at()
    actor_uid: str = Field(sa_column=Column(String(128), nullable=False))
    actor_role: str = Field(sa_column=Column(String(16), nullable=False))
    agency_code: str | None = Field(default=None, sa_column=Column(String(32)))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    entity_type: str = Field(sa_column=Column(String(32), nullable=False))
    entity_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    before: dict | None = Field(default=None, sa_column=Column(JSONB))
    after: dict | None = Field(default=None, sa_column=Column(JSONB))
    request_id: str | None = Field(default=None, sa_column=Column(String(64)))


class NightAudit(SQLModel, table=True):
    """One hotel's business day, closed once: its figures and every inconsistency found. Immutable
    (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

    __tablename__ = "night_audit"
    __table_args__ = (
        UniqueConstraint("hotel_id", "business_date", name="uq_night_audit_hotel_date"),
        CheckConstraint("revenue_currency ~ '^[A-Z]{3}$'", name="currency_iso"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hotel_id: int = _fk("hotel.id")
    business_date: date = _date()
    closed_at: datetime = _created_at()
    room_nights_sold: int = Field(sa_column=Column(Integer, nullable=False))
    revenue_amount: Decimal = _priced_money()
    revenue_currency: str = _currency()
    arrivals: int = Field(sa_column=Column(Integer, nullable=False))
    departures: int = Field(sa_column=Column(Integer, nullable=False))
    holds_expired: int = Field(sa_column=Column(Integer, nullable=False))
    overcommitted_cells: int = Field(sa_column=Column(Integer, nullable=False))
    # [{"kind", "roomTypeId" (or null), "date" (ISO, or null), "detail"}]
    discrepancies: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))


class Supplier(SQLModel, table=True):
    """An upstream source of contracts: pulled over HTTP or read from a drop folder, and allowed to
    push signed webhooks. Its secrets are write-only: nothing returns or logs them."""

    __tablename__ = "supplier"
    __table_args__ = (
        CheckConstraint(_in("kind", SUPPLIER_KINDS), name="kind_known"),
        CheckConstraint("confirm_increases_after BETWEEN 1 AND 100", name="confirm_increases_after_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    kind: str = Field(sa_column=Column(String(8), nullable=False))
    base_url: str | None = Field(default=None, sa_column=Column(String(2000)))
    drop_dir: str | None = Field(default=None, sa_column=Column(String(2000)))
    api_key: str | None = Field(default=None, sa_column=Column(Text))
    webhook_secret: str | None = Field(default=None, sa_column=Column(Text))
    confirm_increases_after: int = Field(
        default=2, sa_column=Column(Integer, nullable=False, server_default="2"))
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class StatusTransformConfig(SQLModel, table=True):
    """A supplier's own status word and what StaySync does with it (over the default table in
    domain.supply)."""

    __tablename__ = "status_transform_config"
    __table_args__ = (
        UniqueConstraint(
            "source", "entity_type", "external_status", name="uq_status_transform_config_mapping"
        ),
        CheckConstraint(_in("internal_status", CONTRACT_ACTIONS), name="action_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The supplier's code (kept as `source`, as the table was first written).
    source: str = Field(sa_column=Column(String(64), nullable=False))
    supplier_id: int | None = _fk("supplier.id", nullable=True, ondelete="CASCADE")
    entity_type: str = Field(default="contract", sa_column=Column(String(32), nullable=False))
    external_status: str = Field(sa_column=Column(String(64), nullable=False))
    internal_status: str = Field(sa_column=Column(String(32), nullable=False))  # a ContractAction
    created_at: datetime = _created_at()


class SyncRun(SQLModel, table=True):
    """One reconciliation of a supplier's data, from start to finish. A RUNNING row whose
    supplier lock nobody holds belongs to a worker that died: the next run marks it FAILED."""

    __tablename__ = "sync_run"
    __table_args__ = (
        CheckConstraint(_in("status", SYNC_STATUSES), name="status_known"),
        CheckConstraint(_in("trigger", SYNC_TRIGGERS), name="trigger_known"),
        Index("ix_sync_run_supplier_started", "supplier_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_column=Column(String(64), nullable=False))  # the supplier's code
    supplier_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("supplier.id", ondelete="CASCADE"), nullable=True))
    trigger: str = Field(default="MANUAL", sa_column=Column(String(16), nullable=False, server_default="MANUAL"))
    status: str = Field(default="RUNNING", sa_column=Column(String(16), nullable=False))
    started_at: datetime = _created_at()
    finished_at: datetime | None = _timestamp()
    stats: dict = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    issues: list = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    error: str | None = Field(default=None, sa_column=Column(Text))


class SupplierFile(SQLModel, table=True):
    """A drop-folder file already reconciled, by content: the same bytes are not read twice."""

    __tablename__ = "supplier_file"
    __table_args__ = (
        UniqueConstraint("supplier_id", "sha256", name="uq_supplier_file_content"),
    )

    id: int | None = Field(default=None, primary_key=True)
    supplier_id: int = _fk("supplier.id", ondelete="CASCADE")
    name: str = Field(sa_column=Column(String(1000), nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    sync_run_id: int = _fk("sync_run.id", ondelete="CASCADE")
    created_at: datetime = _created_at()


class InboundWebhook(SQLModel, table=True):
    """A supplier webhook taken (by its `webhook-id`): a replay answers with the same run."""

    __tablename__ = "inbound_webhook"
    __table_args__ = (
        UniqueConstraint("supplier_id", "webhook_id", name="uq_inbound_webhook_message"),
    )

    id: int | None = Field(default=None, primary_key=True)
    supplier_id: int = _fk("supplier.id", ondelete="CASCADE")
    webhook_id: str = Field(sa_column=Column(String(200), nullable=False))
    sync_run_id: int | None = _fk("sync_run.id", nullable=True, ondelete="SET NULL")
    received_at: datetime = _created_at()


class OutboxMessage(SQLModel, table=True):
    """A committed change waiting to reach subscribers: written in the change's own transaction,
    so a crash between commit and publish loses nothing (app.services.changes relays it)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where=text("sent_at IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    topic: str = Field(sa_column=Column(String(64), nullable=False))
    payload: dict = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _created_at()
    sent_at: datetime | None = _timestamp()


# --- telling partners ---------------------------------------------------------------------------

DELIVERY_STATUSES = ("PENDING", "DELIVERED", "FAILED", "GAVE_UP")
EMAIL_STATUSES = ("PENDING", "SENT", "RECORDED", "FAILED", "GAVE_UP")


class WebhookEndpoint(SQLModel, table=True):
    """Where an agency's systems (agency_id) or the wholesaler's own (agency_id null, staff's)
    hear about events. The secret signs deliveries; after a rotation the previous one signs too
    until `previous_secret_until`."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    agency_id: int | None = _fk("agency.id", nullable=True, ondelete="CASCADE")
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    events: list[str] = Field(sa_column=Column(ARRAY(String(64)), nullable=False))
    secret: str = Field(sa_column=Column(String(100), nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    previous_secret_until: datetime | None = _timestamp()
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    disabled_reason: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    disabled_at: datetime | None = _timestamp()
    failing_since: datetime | None = _timestamp()  # the first failure since the last success
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class PartnerEvent(SQLModel, table=True):
    """Something partners hear about, recorded in the transaction of the write that caused it (by
    triggers on audit_log and outbox, or by the alert jobs), fanned out to deliveries and emails
    after it commits. `payload` is filled at fan-out for audit-born events."""

    __tablename__ = "partner_event"
    __table_args__ = (Index("ix_partner_event_pending", "id", postgresql_where=text("fanned_out_at IS NULL")),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    agency_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    hotel_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    entity_type: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    entity_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    audit_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    payload: dict | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _created_at()
    fanned_out_at: datetime | None = _timestamp()


class WebhookDelivery(SQLModel, table=True):
    """One event to one endpoint: its payload frozen, its `webhook_id` the receiver's dedupe key
    across retries and replays."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_delivery_event_endpoint"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status_known"),
        Index("ix_webhook_delivery_due", "next_attempt_at", postgresql_where=text("status IN ('PENDING', 'FAILED')")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    event_id: int = Field(sa_column=Column(BigInteger, ForeignKey("partner_event.id"), nullable=False, index=True))
    endpoint_id: int = _fk("webhook_endpoint.id", ondelete="CASCADE")
    webhook_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    event_type: str = Field(sa_column=Column(String(64), nullable=False))
    payload: dict = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="PENDING", sa_column=Column(String(16), nullable=False, server_default="PENDING"))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime = _created_at()
    lease_until: datetime | None = _timestamp()
    last_status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    delivered_at: datetime | None = _timestamp()
    created_at: datetime = _created_at()


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    delivery_id: int = Field(sa_column=Column(BigInteger, ForeignKey("webhook_delivery.id", ondelete="CASCADE"),
                                              nullable=False, index=True))
    at: datetime = _created_at()
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    duration_ms: int = Field(sa_column=Column(Integer, nullable=False))


class EmailMessage(SQLModel, table=True):
    """An email, rendered when its event was fanned out and sent (or, without SMTP_URL, recorded)
    by any worker; one per event and kind."""

    __tablename__ = "email_message"
    __table_args__ = (
        UniqueConstraint("event_id", "kind", name="uq_email_message_event_kind"),
        CheckConstraint(_in("status", EMAIL_STATUSES), name="status_known"),
        Index("ix_email_message_due", "next_attempt_at", postgresql_where=text("status IN ('PENDING', 'FAILED')")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("partner_event.id"),
                                                               nullable=True))
    agency_id: int | None = _fk("agency.id", nullable=True, ondelete="SET NULL")
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    to_address: str = Field(sa_column=Column(String(254), nullable=False))
    subject: str = Field(sa_column=Column(String(300), nullable=False))
    text_body: str = Field(sa_column=Column(Text, nullable=False))
    html_body: str = Field(sa_column=Column(Text, nullable=False))
    message_id: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(default="PENDING", sa_column=Column(String(16), nullable=False, server_default="PENDING"))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime = _created_at()
    lease_until: datetime | None = _timestamp()
    last_error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    sent_at: datetime | None = _timestamp()
    created_at: datetime = _created_at()


class ReleaseAlert(SQLModel, table=True):
    """That a block's night was announced as releasing within `threshold_hours`: once each."""

    __tablename__ = "release_alert"

    hardblock_id: int = Field(sa_column=Column(Integer, ForeignKey("hardblock.id", ondelete="CASCADE"),
                                               primary_key=True))
    night: date = Field(sa_column=Column(Date, primary_key=True))
    threshold_hours: int = Field(sa_column=Column(Integer, primary_key=True))
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _created_at()


class HoldExpiryNotice(SQLModel, table=True):
    """That a hold's agency was told it lapses soon: once per group."""

    __tablename__ = "hold_expiry_notice"

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("booking_group.id", ondelete="CASCADE"),
                                           primary_key=True))
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _created_at()


class BalanceReminder(SQLModel, table=True):
    """That a DEPOSIT sale's agency was reminded its balance falls due: once per sale order, however
    many workers look (the row is claimed with INSERT ... ON CONFLICT DO NOTHING)."""

    __tablename__ = "balance_reminder"

    sale_order_id: int = Field(sa_column=Column(Integer, ForeignKey("sale_order.id", ondelete="CASCADE"),
                                                primary_key=True))
    email_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _created_at()


class Payment(SQLModel, table=True):
    """Money received for a booking group: a card payment (a Stripe PaymentIntent, `provider_id`)
    or an offline one recorded by staff (a bank transfer, `reference`). What it brought in and what
    was refunded of it are ledger entries (`LedgerEntry.payment_id`), not columns here."""

    __tablename__ = "payment"
    __table_args__ = (
        CheckConstraint(_in("state", PAYMENT_STATES), name="state_known"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # One card attempt per number per group: the attempt is in Stripe's idempotency key.
        UniqueConstraint("group_id", "attempt", name="uq_payment_group_attempt"),
        Index("ix_payment_in_flight", "updated_at",
              postgresql_where=text("method = 'CARD' AND state IN ('PENDING', 'REQUIRES_ACTION')")),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = _fk("booking_group.id")
    agency_id: int = _fk("agency.id")
    method: str = Field(sa_column=Column(String(8), nullable=False))
    state: str = Field(default="PENDING", sa_column=Column(String(16), nullable=False))
    amount: Decimal = _priced_money()
    currency: str = _currency()
    attempt: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    provider_id: str | None = Field(default=None, sa_column=Column(String(255), nullable=True, unique=True))
    client_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reference: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    failure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class LedgerEntry(SQLModel, table=True):
    """One money movement of an agency (domain.payments.LedgerEntry): append-only (a trigger
    refuses UPDATE, DELETE and TRUNCATE). Balances are sums over these rows, never counters.

    Every entry of an agency is written under the agency's ledger lock (db.inventory
    `agency_ledger_lock_key`), so its entries' ids grow in commit order: what a reader holding the
    lock sees up to an id is final (see LedgerCheckpoint)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint(_in("kind", LEDGER_KINDS), name="kind_known"),
        CheckConstraint("amount >= 0", name="amount_nonnegative"),
        # A sale is posted once per sale order, whatever retries or races do.
        Index("uq_ledger_entry_sale", "sale_order_id", unique=True, postgresql_where=text("kind = 'SALE'")),
        # An agency's entries after its checkpoint (and the foreign key's look-ups).
        Index("ix_ledger_entry_agency_tail", "agency_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agency_id: int = Field(sa_column=Column(Integer, ForeignKey("agency.id", ondelete="RESTRICT"), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    amount: Decimal = _priced_money()
    currency: str = _currency()
    # The group it belongs to (its sale order's, once confirmed; a card payment comes before the
    # sale order exists): SaleOrder.paid sums a group's entries. Null: the agency's own account.
    group_id: int | None = _fk("booking_group.id", nullable=True)
    sale_order_id: int | None = _fk("sale_order.id", nullable=True)
    payment_id: int | None = _fk("payment.id", nullable=True)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = _created_at()


class LedgerCheckpoint(SQLModel, table=True):
    """An agency's ledger summed per kind and currency up to an entry (`through_id`): written under
    the agency's ledger lock, when every entry up to it is committed and can never change (the
    ledger is append-only), so a balance is this plus the entries after it, and a confirmation's
    credit check costs the same after a million sales as after ten. The night audit sums the
    entries again and reports any difference."""

    __tablename__ = "ledger_checkpoint"

    agency_id: int = Field(sa_column=Column(Integer, ForeignKey("agency.id", ondelete="RESTRICT"), primary_key=True))
    through_id: int = Field(sa_column=Column(Integer, nullable=False))
    # [[kind, currency, amount as text], ...]
    sums: list[list[str]] = Field(sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = _created_at()


class StripeEvent(SQLModel, table=True):
    """A Stripe webhook event applied: its id is the dedupe key (Stripe delivers at least once)."""

    __tablename__ = "stripe_event"

    id: str = Field(sa_column=Column(String(255), primary_key=True))
    type: str = Field(sa_column=Column(String(128), nullable=False))
    payment_id: int | None = _fk("payment.id", nullable=True)
    received_at: datetime = _created_at()
