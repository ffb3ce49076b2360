"""The supply side's types: suppliers (admin), their sync runs (staff), and syncRunChanged."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.errors import InvalidInput, NotFound, SyncAlreadyRunning
from app.api.ids import decode_id, filter_pk
from app.api.pagination import connection
from app.api.permissions import ADMIN, STAFF, Info
from app.api.types import LoadedNode, staff_only
from app.services.changes import SYNC_RUNS_CHANNEL
from app.services.supply import runs, sources, suppliers
from domain.supply import ContractAction as DomainContractAction
from domain.supply import SyncIssueKind as DomainSyncIssueKind

if TYPE_CHECKING:
    from db.models import Supplier as SupplierRow
    from db.models import SyncRun as SyncRunRow
else:
    SupplierRow = SyncRunRow = Any

ContractAction = strawberry.enum(DomainContractAction, name="ContractAction")
SyncIssueKind = strawberry.enum(DomainSyncIssueKind, name="SyncIssueKind")


@strawberry.enum
class SupplierKind(Enum):
    HTTP = "HTTP"
    FILE = "FILE"


@strawberry.enum
class SyncTrigger(Enum):
    MANUAL = "MANUAL"
    SCHEDULE = "SCHEDULE"
    FILE = "FILE"
    WEBHOOK = "WEBHOOK"


@strawberry.enum
class SyncRunStatus(Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"


@strawberry.type(description="A supplier's status word and what StaySync does with its records.")
class StatusTransform:
    external_status: str
    action: ContractAction


@strawberry.type(description="What a run read and did. `held`: records with an increase held until it is "
                 "confirmed by the next reads (or suspected unit drift).")
class SyncStats:
    records: int = 0
    contracts_created: int = 0
    contracts_updated: int = 0
    unchanged: int = 0
    events_recorded: int = 0
    rejected: int = 0
    held: int = 0


@strawberry.type(description="Something a run could not take as it came; `externalId` names the supplier's record.")
class SyncIssue:
    external_id: str | None
    kind: SyncIssueKind
    message: str


@strawberry.type(description="One reconciliation of a supplier's data, from start to finish.")
class SyncRun(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    trigger: SyncTrigger
    status: SyncRunStatus
    started_at: datetime
    finished_at: datetime | None
    stats: SyncStats
    issues: list[SyncIssue]
    error: str | None = strawberry.field(description="Why a FAILED run failed.")
    supplier_id: strawberry.Private[int]

    loader = "sync_run"
    visible = staff_only

    @strawberry.field
    async def supplier(self, info: Info) -> Supplier:
        return Supplier.from_row(await info.context.loaders.supplier.load(self.supplier_id))

    @staticmethod
    def from_row(row: SyncRunRow) -> SyncRun:
        known = {name: int(row.stats.get(name, 0)) for name in SyncStats.__annotations__}
        return SyncRun(
            id=row.id, trigger=SyncTrigger(row.trigger), status=SyncRunStatus(row.status), started_at=row.started_at,
            finished_at=row.finished_at, stats=SyncStats(**known), error=row.error, supplier_id=row.supplier_id,
            issues=[SyncIssue(external_id=i.get("external_id"), kind=DomainSyncIssueKind(i["kind"]),
                              message=i["message"]) for i in row.issues],
        )


@strawberry.type(description="An upstream source of contracts. Its API key and webhook secret are write-only.")
class Supplier(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    kind: SupplierKind
    base_url: str | None
    drop_dir: str | None
    enabled: bool
    confirm_increases_after: int = strawberry.field(description="Consecutive reads that must show an increase "
                                                    "before it applies (1: at once). Reductions apply at once.")
    api_key_set: bool = strawberry.field(description="Whether an API key is stored (it is never returned).")
    webhook_secret_set: bool = strawberry.field(description="Whether a webhook secret is stored (never returned).")

    loader = "supplier"
    visible = staff_only

    @strawberry.field(description="The supplier's own status words, then the defaults they do not override.")
    async def status_transforms(self, info: Info) -> list[StatusTransform]:
        async with info.context.services.sessions() as session:
            own = await suppliers.transforms_of(session, self.id)
        table = suppliers.effective_transforms(own)
        return [StatusTransform(external_status=word, action=action)
                for word, action in sorted(table.items(), key=lambda item: (item[0] not in own, item[0]))]

    @strawberry.field
    async def last_run(self, info: Info) -> SyncRun | None:
        row = await runs.last_run(info.context.services, self.id)
        return None if row is None else SyncRun.from_row(row)

    @strawberry.field(description="Newest first.")
    async def runs(self, info: Info, first: int | None = None, after: str | None = None) -> relay.Connection[SyncRun]:
        return connection(await runs.runs(info.context.services, self.id, first, after), SyncRun.from_row)

    @staticmethod
    def from_row(row: SupplierRow) -> Supplier:
        return Supplier(id=row.id, code=row.code, name=row.name, kind=SupplierKind(row.kind), base_url=row.base_url,
                        drop_dir=row.drop_dir, enabled=row.enabled, confirm_increases_after=row.confirm_increases_after,
                        api_key_set=bool(row.api_key), webhook_secret_set=bool(row.webhook_secret))


@strawberry.input
class StatusTransformInput:
    external_status: str
    action: ContractAction


@strawberry.input(description="Secrets are write-only: leave `apiKey` or `webhookSecret` out to keep what is "
                  "stored, or send \"\" to remove it. `statusTransforms`, when given, replaces the supplier's table.")
class UpsertSupplierInput:
    code: str
    name: str
    kind: SupplierKind
    base_url: str | None = None
    drop_dir: str | None = None
    api_key: str | None = None
    webhook_secret: str | None = None
    confirm_increases_after: int = 2
    enabled: bool = True
    status_transforms: list[StatusTransformInput] | None = None


UpsertSupplierResult = Annotated[Supplier | InvalidInput, strawberry.union("UpsertSupplierResult")]
SyncSupplierResult = Annotated[SyncRun | SyncAlreadyRunning | NotFound, strawberry.union("SyncSupplierResult")]


@strawberry.type
class SupplyQuery:
    @strawberry.field(permission_classes=STAFF)
    async def suppliers(self, info: Info) -> list[Supplier]:
        return [Supplier.from_row(row) for row in await suppliers.suppliers(info.context.services)]

    @strawberry.field(permission_classes=STAFF, description="Newest first.")
    async def sync_runs(self, info: Info, supplier_id: strawberry.ID | None = None, first: int | None = None,
                        after: str | None = None) -> relay.Connection[SyncRun]:
        pk = None if supplier_id is None else filter_pk(supplier_id, "Supplier")
        return connection(await runs.runs(info.context.services, pk, first, after), SyncRun.from_row)


@strawberry.type
class SupplyMutation:
    @strawberry.mutation(permission_classes=ADMIN)
    async def upsert_supplier(self, info: Info, input: UpsertSupplierInput) -> UpsertSupplierResult:
        spec = suppliers.SupplierSpec(
            code=input.code, name=input.name, kind=input.kind.value, base_url=input.base_url, drop_dir=input.drop_dir,
            api_key=input.api_key, webhook_secret=input.webhook_secret,
            confirm_increases_after=input.confirm_increases_after, enabled=input.enabled,
            status_transforms=None if input.status_transforms is None else [
                (t.external_status, t.action.value) for t in input.status_transforms],
        )
        return Supplier.from_row(await suppliers.upsert_supplier(info.context.services, info.context.caller, spec))

    @strawberry.mutation(permission_classes=STAFF, description="Runs the supplier's sync now and returns the "
                         "run once it has finished (SyncAlreadyRunning while another run of it is under way).")
    async def sync_supplier(self, info: Info, supplier_id: strawberry.ID) -> SyncSupplierResult:
        pk = decode_id(supplier_id, "Supplier", "supplierId")
        return SyncRun.from_row(await sources.sync_now(info.context.services, pk, "MANUAL", id=supplier_id))


@strawberry.type
class SupplySubscription:
    @strawberry.subscription(permission_classes=STAFF, description="Each change of a sync run (started, its "
                             "progress, its end), re-read; without `supplierId`, every supplier's runs.")
    async def sync_run_changed(self, info: Info, supplier_id: strawberry.ID | None = None
                               ) -> AsyncGenerator[SyncRun, None]:
        pk = None if supplier_id is None else decode_id(supplier_id, "Supplier", "supplierId")
        context = info.context
        async with context.broadcast.subscribe(SYNC_RUNS_CHANNEL) as subscriber:
            async for event in subscriber:
                if event.resync:
                    continue  # each message names a whole run: the next one re-reads it anyway
                message = event.json()
                if not isinstance(message, dict) or (pk is not None and message.get("supplierId") != pk):
                    continue
                context.fresh_loaders()
                row = await context.loaders.sync_run.load(message["syncRunId"])
                if row is not None:
                    yield SyncRun.from_row(row)
