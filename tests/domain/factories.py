"""Small builders for domain inputs. Nights are given as day offsets from D0."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domain import (
    DEFAULT_STATUS_TRANSFORMS,
    AllotmentEvent,
    AllotmentUnit,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractAction,
    ContractLayer,
    ContractTerms,
    EventKind,
    HardblockTerms,
    LayerNight,
    Money,
    PoolCell,
    Reconciliation,
    RestrictionPatch,
    SupplierContract,
    apply_reconciliation,
    compute_calendar,
    reconcile,
    supplier_nights,
)

D0 = date(2026, 5, 1)
# Well before D0, so cut-offs of a few days have not passed yet.
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def d(offset: int) -> date:
    return D0 + timedelta(days=offset)


def eur(amount: str | int) -> Money:
    return Money(Decimal(amount), "EUR")


def contract(
    id: int = 1,
    rt: int = 1,
    start: int = 0,
    end: int = 10,
    allotment: int = 10,
    rate: str | int = "100",
    release_days: int = 0,
    active: bool = True,
) -> ContractTerms:
    return ContractTerms(id, rt, d(start), d(end), allotment, eur(rate), release_days, active)


def event(
    id: int,
    kind: EventKind,
    start: int,
    end: int,
    rt: int = 1,
    at: datetime | None = None,
    quantity: int | None = None,
    rate: Money | None = None,
    hardblock_id: int | None = None,
    voided: bool = False,
) -> AllotmentEvent:
    return AllotmentEvent(
        id=id,
        kind=kind,
        room_type_id=rt,
        start=d(start),
        end=d(end),
        effective_at=at if at is not None else T0 + timedelta(minutes=id),
        quantity=quantity,
        rate=rate,
        hardblock_id=hardblock_id,
        voided=voided,
    )


def increase(id: int, start: int, end: int, quantity: int, **kw) -> AllotmentEvent:
    return event(id, EventKind.INCREASE_ALLOTMENT, start, end, quantity=quantity, **kw)


def reduce(id: int, start: int, end: int, quantity: int, **kw) -> AllotmentEvent:
    return event(id, EventKind.REDUCE_ALLOTMENT, start, end, quantity=quantity, **kw)


def stop_sell(id: int, start: int, end: int, **kw) -> AllotmentEvent:
    return event(id, EventKind.BLOCK_CONTRACT, start, end, **kw)


def rate_change(id: int, start: int, end: int, amount: str | int, **kw) -> AllotmentEvent:
    return event(id, EventKind.RATE_CHANGE, start, end, rate=eur(amount), **kw)


def restrict(
    id: int,
    start: int,
    end: int,
    rt: int = 1,
    agencies: tuple[int, ...] = (),
    at: datetime | None = None,
    voided: bool = False,
    **fields,
) -> AllotmentEvent:
    """A RESTRICTION event setting `fields` (RestrictionPatch's names) for `agencies` (none: all)."""
    return AllotmentEvent(
        id=id,
        kind=EventKind.RESTRICTION,
        room_type_id=rt,
        start=d(start),
        end=d(end),
        effective_at=at if at is not None else T0 + timedelta(minutes=id),
        voided=voided,
        restriction=RestrictionPatch(**fields),
        agency_ids=frozenset(agencies),
    )


def amend(id: int, block_id: int, start: int, end: int, quantity: int, rt: int = 1, **kw) -> AllotmentEvent:
    return event(id, EventKind.BLOCK_AMENDMENT, start, end, rt=rt, quantity=quantity, hardblock_id=block_id, **kw)


def block(
    id: int = 1,
    rt: int = 1,
    start: int = 0,
    end: int = 5,
    rooms: int = 2,
    release_days: int = 0,
    released_at: datetime | None = None,
    released_nights: frozenset[date] = frozenset(),
    agency_id: int = 1,
) -> HardblockTerms:
    return HardblockTerms(id, rt, agency_id, d(start), d(end), rooms, release_days, released_at, released_nights)


def booking(
    id: int,
    start: int,
    end: int,
    rooms: int = 1,
    rt: int = 1,
    status: BookingStatus = BookingStatus.CONFIRMED,
    expires_at: datetime | None = None,
    hardblock_id: int | None = None,
) -> BookingLine:
    return BookingLine(id, id, 1, rt, d(start), d(end), rooms, status, expires_at, hardblock_id)


def hold(id: int, start: int, end: int, rooms: int = 1, expires_at: datetime | None = None, **kw) -> BookingLine:
    expiry = expires_at if expires_at is not None else NOW + timedelta(minutes=15)
    return booking(id, start, end, rooms, status=BookingStatus.HELD, expires_at=expiry, **kw)


def calendar(
    contracts=(),
    events=(),
    blocks=(),
    bookings=(),
    rts=(1,),
    start: int = 0,
    end: int = 10,
    now: datetime = NOW,
) -> dict[int, CalendarRow]:
    return compute_calendar(
        list(contracts), list(events), list(blocks), list(bookings), list(rts), d(start), d(end), now
    )


def cell(rows: dict[int, CalendarRow], night: int, rt: int = 1) -> PoolCell:
    row = rows[rt]
    return row.cell(row.index(d(night)))


def column(rows: dict[int, CalendarRow], name: str, rt: int = 1) -> list:
    return list(getattr(rows[rt], name))


# --- the supplier side -----------------------------------------------------------------------


def supplier_record(
    start: int = 0,
    end: int = 5,
    allotment: int = 10,
    unit: AllotmentUnit = AllotmentUnit.ROOMS,
    rate: str | int = "100",
    release_days: int = 3,
    status: str = "CONFIRMED",
    terms: str = "",
    at: int = 0,
    nights: dict[int, int] | None = None,
) -> SupplierContract:
    """A record of contract MHG-C-1 that passed the wall; `at` is its updated_at in minutes after T0."""
    return SupplierContract(
        external_id="MHG-C-1",
        hotel_code="H1",
        room_type_code="DBL",
        start=d(start),
        end=d(end),
        allotment=allotment,
        unit=unit,
        rate=eur(rate),
        release_days=release_days,
        status=status,
        terms=terms,
        updated_at=T0 + timedelta(minutes=at),
        nights=tuple((d(night), rooms) for night, rooms in sorted((nights or {}).items())),
    )


class SupplierFeed:
    """One contract's reconciliations in a row, recorded as the service would: event ids from a
    sequence, each run a minute after the last."""

    def __init__(
        self,
        confirm_after: int = 1,
        today: date = D0,
        transforms: dict[str, ContractAction] = DEFAULT_STATUS_TRANSFORMS,
        layer: ContractLayer | None = None,
    ) -> None:
        self.confirm_after = confirm_after
        self.today = today
        self.transforms = transforms
        self.layer = layer
        self.next_id = 1 + max((e.id for e in layer.events), default=0) if layer else 1
        self.clock = T0 + timedelta(days=1)

    def plan(self, record: SupplierContract) -> Reconciliation:
        return reconcile(record, self.layer, self.transforms, self.confirm_after, self.today)

    def read(self, record: SupplierContract) -> Reconciliation:
        plan = self.plan(record)
        ids = range(self.next_id, self.next_id + len(plan.events))
        self.next_id += len(plan.events)
        self.clock += timedelta(minutes=1)
        self.layer = apply_reconciliation(
            self.layer, plan, event_ids=ids, effective_at=self.clock, contract_id=1, room_type_id=1
        )
        return plan

    def nights(self) -> dict[date, LayerNight]:
        return supplier_nights(self.layer) if self.layer else {}

    def rooms(self) -> list[int]:
        return [night.rooms for night in self.nights().values()]
