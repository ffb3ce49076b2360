"""A supplier sync run: read the whole snapshot, then reconcile it contract by contract.

Every source (the HTTP feed, the drop folder, a signed webhook) ends here, and this is the only
way supplier data changes inventory. The order is DESIGN's:
1. take the supplier's run lock (a second trigger gets SyncAlreadyRunning) and open the run;
2. read and validate the whole snapshot: a read that fails fails the run before anything is
   applied;
3. create or rename the feed's hotels and room types;
4. each contract in its own transaction, through the normal write path: the contract's lock,
   then its room types' locks, a fresh read of the contract and its supplier events, the domain's
   plan (`domain.reconciliation`), the writes, audit entries by `supplier:<code>`, the version
   bump and the published change. A run killed mid-way leaves each contract applied or untouched.
5. close the run: SUCCEEDED, PARTIAL when records were rejected, FAILED when the read failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import select, update

from app.services import catalog
from app.services.changes import write
from app.services.context import Services
from app.services.errors import Failure
from app.services.supply import runs
from app.services.supply.suppliers import effective_transforms, transforms_of
from db import audit, models
from db.calendar import event_terms, load_inventory
from db.inventory import hotel_clock, lock_contract, lock_room_types
from domain import EventKind, Money, hotel_today
from domain.reconciliation import (
    ContractLayer,
    HeldIncrease,
    Outcome,
    Reconciliation,
    reconcile,
)
from domain.supply import ContractAction, Snapshot, SupplierContract, SyncIssue, SyncIssueKind

log = logging.getLogger(__name__)

# A run's issue list is for people: past this many, the rest are counted, not listed.
MAX_ISSUES = 1000
# syncRunChanged hears a RUNNING run's progress every this many contracts.
PROGRESS_EVERY = 200

Read = Callable[[], Awaitable[Snapshot]]


class ReadFailed(Exception):
    """The snapshot could not be read whole (HTTP error after retries, bad JSON, wrong shape)."""


def actor(supplier: models.Supplier) -> audit.Actor:
    return audit.Actor(uid=f"supplier:{supplier.code}", role="supplier")


def record_hash(record: SupplierContract) -> str:
    """The content of a record as reconciliation sees it: the same hash, the same plan."""
    return hashlib.sha256(orjson.dumps(record, default=str)).hexdigest()


@dataclass
class _Tally:
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("records", "contracts_created", "contracts_updated", "unchanged", "events_recorded", "rejected", "held"), 0))
    issues: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    def issue(self, issue: SyncIssue) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append({"external_id": issue.external_id, "kind": issue.kind.value, "message": issue.message})
        else:
            self.dropped += 1

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] += n

    def listed(self) -> list[dict[str, Any]]:
        if not self.dropped:
            return self.issues
        return [*self.issues, {"external_id": None, "kind": SyncIssueKind.INVALID_RECORD.value,
                               "message": f"{self.dropped} more issues not listed"}]


async def run_sync(services: Services, supplier: models.Supplier, trigger: str, read: Read, *,
                   on_applied: Callable[[models.SyncRun], Awaitable[None]] | None = None) -> models.SyncRun:
    """One run of the supplier, to its end, over the snapshot `read` gives. SyncAlreadyRunning
    when one is running. `on_applied` runs under the run lock after a successful apply (the drop
    folder remembers its files there)."""
    async with services.sessions() as session:
        own = await transforms_of(session, supplier.id)
    async with runs.supplier_lock(services.raw, supplier.id) as got:
        if not got:
            await runs.refuse_while_running(services, supplier)
        run = await runs.start_run(services, supplier, trigger)
        tally = _Tally()
        try:
            try:
                snapshot = await read()
            except ReadFailed as error:
                tally.issue(SyncIssue(None, SyncIssueKind.FETCH_FAILED, str(error)))
                return await runs.save_run(services, run, status="FAILED", error=str(error), stats=tally.stats,
                                           issues=tally.listed(), finished_at=models.utcnow())
            await _apply(services, supplier, run, snapshot, effective_transforms(own), tally)
            if on_applied is not None:
                await on_applied(run)
        except Exception as error:  # an outage mid-run: what was applied stays applied, and says so
            log.exception("sync run %s of supplier %s failed", run.id, supplier.code)
            message = f"failed after {tally.stats['records']} records: {type(error).__name__}: {error}"
            await runs.save_run(services, run, status="FAILED", error=message, stats=tally.stats,
                                issues=tally.listed(), finished_at=models.utcnow())
            raise
        status = "PARTIAL" if tally.stats["rejected"] else "SUCCEEDED"  # records refused, the rest applied
        return await runs.save_run(services, run, status=status, stats=tally.stats, issues=tally.listed(),
                                   finished_at=models.utcnow())


# --- applying a snapshot -----------------------------------------------------------------------


async def _apply(services: Services, supplier: models.Supplier, run: models.SyncRun, snapshot: Snapshot,
                 transforms: dict[str, ContractAction], tally: _Tally) -> None:
    for issue in snapshot.issues:  # each names a record the wall refused
        tally.issue(issue)
        tally.count("rejected")
    who = actor(supplier)
    for hotel in snapshot.hotels:
        try:
            await catalog.upsert_hotel(services, _SupplierCaller(who), catalog.HotelSpec(
                hotel.code, hotel.name, [catalog.RoomTypeSpec(rt.code, rt.name) for rt in hotel.room_types]))
        except Failure as failure:
            tally.issue(SyncIssue(hotel.code, SyncIssueKind.INVALID_RECORD, f"hotel {hotel.code}: {failure.message}"))
            tally.count("rejected")
    room_types = await _room_types(services)
    known = await _known_contracts(services, [c.external_id for c in snapshot.contracts])
    for n, record in enumerate(snapshot.contracts, 1):
        tally.count("records")
        await _one_contract(services, supplier, run, record, transforms, room_types, known.get(record.external_id),
                            tally)
        if n % PROGRESS_EVERY == 0:
            await runs.save_run(services, run, stats=dict(tally.stats))


@dataclass(frozen=True, slots=True)
class _SupplierCaller:
    """The supplier as the use cases' caller: staff rights, audited as `supplier:<code>`."""

    actor: audit.Actor
    is_staff: bool = True
    request_id: str | None = None


async def _room_types(services: Services) -> dict[tuple[str, str], tuple[int, int]]:
    """(hotel code, room type code) -> (hotel id, room type id)."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(models.Hotel.code, models.RoomType.code, models.Hotel.id, models.RoomType.id)
            .join(models.RoomType, models.RoomType.hotel_id == models.Hotel.id))
        return {(h, r): (hid, rid) for h, r, hid, rid in rows}


@dataclass(frozen=True, slots=True)
class _Known:
    supplier_id: int | None
    supplier_hash: str | None
    holding: bool  # increases held: every read counts, even of the same record


async def _known_contracts(services: Services, external_ids: list[str]) -> dict[str, _Known]:
    """What StaySync has of these contracts, in one query: enough to skip a record that is the
    same as the last one applied (the unchanged re-run costs one query, not one per contract)."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(models.Contract.external_id, models.Contract.supplier_id, models.Contract.supplier_hash,
                   models.Contract.held_increases)
            .where(models.Contract.external_id.in_(external_ids)))
        return {e: _Known(s, h, bool(held)) for e, s, h, held in rows}


async def _one_contract(services: Services, supplier: models.Supplier, run: models.SyncRun, record: SupplierContract,
                        transforms: dict[str, ContractAction], room_types: dict[tuple[str, str], tuple[int, int]],
                        known: _Known | None, tally: _Tally) -> None:
    place = room_types.get((record.hotel_code, record.room_type_code))
    if place is None:
        tally.issue(SyncIssue(record.external_id, SyncIssueKind.UNKNOWN_HOTEL,
                              f"hotel {record.hotel_code} has no room type {record.room_type_code} (neither the feed's "
                              "hotels nor StaySync know it)"))
        tally.count("rejected")
        return
    digest = record_hash(record)
    if known is not None and known.supplier_id == supplier.id and known.supplier_hash == digest and not known.holding:
        tally.count("unchanged")  # the very record already applied, nothing held: nothing to do
        return
    hotel_id, room_type_id = place
    plan = await _reconcile_locked(services, supplier, run, record, digest, transforms, hotel_id, room_type_id)
    for issue in plan.issues:
        tally.issue(issue)
    if plan.outcome is Outcome.REJECTED:
        tally.count("rejected")
    elif plan.outcome is Outcome.CREATED:
        tally.count("contracts_created")
    elif plan.outcome is Outcome.UPDATED:
        tally.count("contracts_updated")
    else:
        tally.count("unchanged")
    if any(i.kind in (SyncIssueKind.HELD_INCREASE, SyncIssueKind.UNIT_DRIFT) for i in plan.issues):
        tally.count("held")
    tally.count("events_recorded", len(plan.events))


class _Refused(Exception):
    def __init__(self, issue: SyncIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


async def _reconcile_locked(services: Services, supplier: models.Supplier, run: models.SyncRun,
                            record: SupplierContract, digest: str, transforms: dict[str, ContractAction],
                            hotel_id: int, room_type_id: int) -> Reconciliation:
    """Plan and record one contract in one transaction, under its locks."""
    who = actor(supplier)
    timeout = services.settings.lock_timeout_ms
    try:
        async with write(services) as unit:
            session = unit.session
            await lock_contract(session, record.external_id, timeout)
            contract = (await session.execute(
                select(models.Contract).where(models.Contract.external_id == record.external_id))).scalar_one_or_none()
            if contract is not None:
                _check_owner(contract, supplier, record, room_type_id)
            await lock_room_types(session, [room_type_id], timeout)
            now, time_zone = await hotel_clock(session, hotel_id)
            layer = None if contract is None else await _layer(session, contract)
            plan = reconcile(record, layer, transforms, supplier.confirm_increases_after,
                             hotel_today(now, time_zone))
            if plan.outcome in (Outcome.REJECTED, Outcome.IGNORED) or any(
                    i.kind is SyncIssueKind.STALE for i in plan.issues):
                return plan  # nothing to remember either: a stale record is not the last one applied
            contract = await _record(session, unit, who, supplier, run, record, digest, plan, contract, hotel_id,
                                     room_type_id, now)
            if any(e.kind is EventKind.REDUCE_ALLOTMENT for e in plan.events):
                overcommitted = await _overcommitted(session, contract, now)
                if overcommitted:
                    plan = _with_issue(plan, SyncIssue(record.external_id, SyncIssueKind.OVERCOMMITTED, (
                        f"the supplier's reduction leaves more rooms committed than allotted on {len(overcommitted)} "
                        f"night(s) ({', '.join(d.isoformat() for d in overcommitted[:5])}"
                        f"{' …' if len(overcommitted) > 5 else ''}); nothing was cancelled: resolve with the hotel")))
            return plan
    except _Refused as refused:
        return Reconciliation(Outcome.REJECTED, issues=(refused.issue,))


def _check_owner(contract: models.Contract, supplier: models.Supplier, record: SupplierContract,
                 room_type_id: int) -> None:
    if contract.supplier_id != supplier.id:
        whose = "typed in by hand" if contract.supplier_id is None else "another supplier's"
        raise _Refused(SyncIssue(record.external_id, SyncIssueKind.INVALID_RECORD,
                                 f"contract {record.external_id} already exists and is {whose}; it is left alone"))
    if contract.room_type_id != room_type_id:
        raise _Refused(SyncIssue(record.external_id, SyncIssueKind.INVALID_RECORD, (
            f"contract {record.external_id} is for another room type than StaySync's copy "
            f"({record.hotel_code}/{record.room_type_code}); contracts do not move between room types: "
            "the supplier should issue a new contract id")))


def _with_issue(plan: Reconciliation, issue: SyncIssue) -> Reconciliation:
    return dataclasses.replace(plan, issues=(*plan.issues, issue))


async def _layer(session: Any, contract: models.Contract) -> ContractLayer:
    events = (await session.execute(
        select(models.AllotmentEvent).where(models.AllotmentEvent.contract_id == contract.id,
                                            models.AllotmentEvent.source == "SUPPLIER",
                                            models.AllotmentEvent.voided_at.is_(None))
        .order_by(models.AllotmentEvent.id))).scalars().all()
    return ContractLayer(
        contract_id=contract.id, room_type_id=contract.room_type_id, start=contract.start_date, end=contract.end_date,
        allotment=contract.allotment, rate=Money(contract.rate_amount, contract.currency),
        release_days=contract.release_days, terms=contract.terms, events=tuple(event_terms(e) for e in events),
        last_updated_at=contract.supplier_updated_at,
        held=tuple(HeldIncrease(date.fromisoformat(h["night"]), h["rooms"], h["reads"])
                   for h in contract.held_increases),
    )


_CONTRACT_FIELDS = ("room_type_id", "start_date", "end_date", "allotment", "rate_amount", "currency", "release_days",
                    "terms", "status")


async def _record(session: Any, unit: Any, who: audit.Actor, supplier: models.Supplier, run: models.SyncRun,
                  record: SupplierContract, digest: str, plan: Reconciliation, contract: models.Contract | None,
                  hotel_id: int, room_type_id: int, now: datetime) -> models.Contract:
    before = None if contract is None else audit.snapshot(contract, *_CONTRACT_FIELDS)
    touched: list[tuple[date, date]] = []
    if contract is None:
        row = plan.row
        assert row is not None, "a new contract's plan creates its row"
        contract = models.Contract(
            external_id=record.external_id, hotel_id=hotel_id, room_type_id=room_type_id, start_date=row.start,
            end_date=row.end, allotment=row.allotment, rate_amount=row.rate.amount, currency=row.rate.currency,
            release_days=row.release_days, terms=row.terms, status="ACTIVE", supplier_id=supplier.id,
            created_at=now, updated_at=now)
        session.add(contract)
        touched.append((row.start, row.end))
    elif plan.row is not None:
        row = plan.row
        touched.append((min(row.start, contract.start_date), max(row.end, contract.end_date)))
        contract.start_date, contract.end_date, contract.allotment = row.start, row.end, row.allotment
        contract.rate_amount, contract.currency = row.rate.amount, row.rate.currency
        contract.release_days, contract.terms, contract.updated_at = row.release_days, row.terms, now
    held = [{"night": h.night.isoformat(), "rooms": h.rooms, "reads": h.reads} for h in plan.held]
    held_before = contract.held_increases
    contract.supplier_updated_at = plan.last_updated_at
    contract.supplier_hash = digest
    contract.held_increases = held
    await session.flush()
    if before is not None and held != held_before:
        audit.record(session, who, "contract.increases_held", "Contract", contract.id,
                     before={"held_increases": held_before}, after={"held_increases": held, "sync_run_id": run.id})
    if plan.row is not None:
        audit.record(session, who, "contract.created" if before is None else "contract.updated", "Contract",
                     contract.id, before=before, after={**audit.snapshot(contract, *_CONTRACT_FIELDS),
                                                        "sync_run_id": run.id})
    if plan.voids:
        voided = (await session.execute(
            update(models.AllotmentEvent)
            .where(models.AllotmentEvent.id.in_(plan.voids), models.AllotmentEvent.contract_id == contract.id,
                   models.AllotmentEvent.source == "SUPPLIER", models.AllotmentEvent.voided_at.is_(None))
            .values(voided_at=now, voided_by=who.uid)
            .returning(models.AllotmentEvent.id, models.AllotmentEvent.start_date, models.AllotmentEvent.end_date)
        )).all()
        for event_id, start, end in voided:
            audit.record(session, who, "allotment_event.voided", "AllotmentEvent", event_id,
                         after={"voided_at": now.isoformat(), "sync_run_id": run.id})
            touched.append((start, end))
    events = [models.AllotmentEvent(
        hotel_id=hotel_id, room_type_id=room_type_id, kind=e.kind.value, start_date=e.start, end_date=e.end,
        quantity=e.quantity, rate_amount=e.rate.amount if e.rate else None, currency=e.rate.currency if e.rate else None,
        effective_at=now, created_at=now, created_by=who.uid, source="SUPPLIER", contract_id=contract.id,
        sync_run_id=run.id) for e in plan.events]
    session.add_all(events)
    await session.flush()
    for event in events:
        audit.record(session, who, "allotment_event.recorded", "AllotmentEvent", event.id, after={
            **audit.snapshot(event, "kind", "room_type_id", "start_date", "end_date", "quantity", "rate_amount",
                             "currency"), "contract_id": contract.id, "sync_run_id": run.id})
        touched.append((event.start_date, event.end_date))
    if touched:
        unit.touch(hotel_id, [room_type_id], min(a for a, _ in touched), max(b for _, b in touched))
    return contract


async def _overcommitted(session: Any, contract: models.Contract, now: datetime) -> list[date]:
    """The contract's nights whose room type now has more committed than allotted."""
    snapshot = await load_inventory(session, contract.hotel_id, contract.start_date, contract.end_date,
                                    [contract.room_type_id])
    row = snapshot.calendar(contract.start_date, contract.end_date, now)[contract.room_type_id]
    return [night for night, over in zip(row.dates, row.overcommitted) if over > 0]


def merged(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Several reads (drop-folder files, in name order) as one snapshot; a later record of the same
    id wins, as a later file is the newer word."""
    hotels: dict[str, Any] = {}
    contracts: dict[str, SupplierContract] = {}
    issues: list[SyncIssue] = []
    for snapshot in snapshots:
        hotels.update((h.code, h) for h in snapshot.hotels)
        for record in snapshot.contracts:
            contracts.pop(record.external_id, None)
            contracts[record.external_id] = record
        issues.extend(snapshot.issues)
    return Snapshot(tuple(hotels.values()), tuple(contracts.values()), tuple(issues))
