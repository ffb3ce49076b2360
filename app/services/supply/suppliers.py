"""Suppliers, managed by admins. Their secrets (the feed's API key, the webhook secret) are
write-only: stored, used by the sync, and never returned, logged or written to the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from app.services.catalog import code, name
from app.services.changes import write
from app.services.context import Caller, Services
from app.services.errors import InvalidInput, NotFound
from app.services.webhook_signatures import secret_key
from db import audit, models
from domain.supply import DEFAULT_STATUS_TRANSFORMS, ContractAction

KINDS = ("HTTP", "FILE")
MAX_TRANSFORMS = 100
MAX_STATUS_CHARS = 64
MAX_SECRET_CHARS = 1000
ENTITY = "contract"  # the entity type of status_transform_config rows written here


@dataclass(frozen=True, slots=True)
class SupplierSpec:
    code: str
    name: str
    kind: str
    base_url: str | None = None
    drop_dir: str | None = None
    # None keeps what is stored; "" removes it.
    api_key: str | None = None
    webhook_secret: str | None = None
    confirm_increases_after: int = 2
    enabled: bool = True
    # None keeps the supplier's table; a list replaces it.
    status_transforms: list[tuple[str, str]] | None = None


def _url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InvalidInput("baseUrl", f"baseUrl must be an http(s) URL of at most 2000 characters, got {value!r}")
    if parts.username or parts.password:
        raise InvalidInput("baseUrl", "baseUrl must not carry credentials (the API key is its own field)")
    return url.rstrip("/")


def check_webhook_secret(secret: str) -> None:
    """Standard Webhooks: `whsec_` and the base64 of the key (at least 16 bytes of it)."""
    try:
        key = secret_key(secret)
    except ValueError as problem:
        raise InvalidInput("webhookSecret", f"webhookSecret: {problem}") from None
    if len(key) < 16:
        raise InvalidInput("webhookSecret", "webhookSecret's key must be at least 16 bytes")


def _secret(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return value
    if len(value) > MAX_SECRET_CHARS or value != value.strip():
        raise InvalidInput(field, f"{field} must be at most {MAX_SECRET_CHARS} characters, without surrounding spaces")
    return value


def _transforms(pairs: list[tuple[str, str]]) -> dict[str, str]:
    if len(pairs) > MAX_TRANSFORMS:
        raise InvalidInput("statusTransforms", f"at most {MAX_TRANSFORMS} status transforms")
    table: dict[str, str] = {}
    for index, (external, action) in enumerate(pairs):
        word = external.strip().upper()
        if not word or len(word) > MAX_STATUS_CHARS:
            raise InvalidInput(f"statusTransforms[{index}].externalStatus",
                               f"statusTransforms[{index}].externalStatus must be 1 to {MAX_STATUS_CHARS} characters")
        if word in table:
            raise InvalidInput(f"statusTransforms[{index}].externalStatus",
                               f"status {word} is listed twice")
        if action not in ContractAction.__members__:
            raise InvalidInput(f"statusTransforms[{index}].action", f"unknown action {action!r}")
        table[word] = action
    return table


def snapshot(supplier: models.Supplier, transforms: dict[str, str]) -> dict:
    """What the audit log keeps of a supplier: whether a secret is set, never the secret."""
    return {
        **audit.snapshot(supplier, "code", "name", "kind", "base_url", "drop_dir", "confirm_increases_after",
                         "enabled"),
        "api_key_set": bool(supplier.api_key), "webhook_secret_set": bool(supplier.webhook_secret),
        "status_transforms": dict(sorted(transforms.items())),
    }


async def transforms_of(session, supplier_id: int) -> dict[str, str]:  # noqa: ANN001
    """The supplier's own table (without the defaults)."""
    rows = await session.execute(
        select(models.StatusTransformConfig.external_status, models.StatusTransformConfig.internal_status)
        .where(models.StatusTransformConfig.supplier_id == supplier_id))
    return {word: action for word, action in rows}


def effective_transforms(own: dict[str, str]) -> dict[str, ContractAction]:
    """The defaults, with the supplier's own words over them."""
    return {**DEFAULT_STATUS_TRANSFORMS, **{word: ContractAction(action) for word, action in own.items()}}


async def upsert_supplier(services: Services, caller: Caller, spec: SupplierSpec) -> models.Supplier:
    """Create or update a supplier by code."""
    supplier_code, supplier_name = code(spec.code, "code"), name(spec.name)
    kind = spec.kind.strip().upper()
    if kind not in KINDS:
        raise InvalidInput("kind", "kind must be HTTP or FILE")
    base_url = _url(spec.base_url)
    drop_dir = spec.drop_dir.strip() if spec.drop_dir and spec.drop_dir.strip() else None
    if kind == "HTTP" and base_url is None:
        raise InvalidInput("baseUrl", "an HTTP supplier needs a baseUrl")
    if kind == "FILE" and drop_dir is None:
        raise InvalidInput("dropDir", "a FILE supplier needs a dropDir")
    if drop_dir is not None and (len(drop_dir) > 2000 or "\x00" in drop_dir):
        raise InvalidInput("dropDir", "dropDir must be a path of at most 2000 characters")
    if not 1 <= spec.confirm_increases_after <= 100:
        raise InvalidInput("confirmIncreasesAfter", "confirmIncreasesAfter must be 1 to 100 (1 applies increases at once)")
    api_key = _secret(spec.api_key, "apiKey")
    webhook_secret = _secret(spec.webhook_secret, "webhookSecret")
    if webhook_secret:
        check_webhook_secret(webhook_secret)
    transforms = None if spec.status_transforms is None else _transforms(spec.status_transforms)

    async with write(services) as unit:
        session = unit.session
        supplier = (await session.execute(
            select(models.Supplier).where(models.Supplier.code == supplier_code).with_for_update()
        )).scalar_one_or_none()
        if supplier is None:
            supplier = models.Supplier(code=supplier_code, name=supplier_name, kind=kind)
            session.add(supplier)
            await session.flush()
            before, own = None, {}
        else:
            own = await transforms_of(session, supplier.id)
            before = snapshot(supplier, own)
        supplier.name, supplier.kind, supplier.base_url, supplier.drop_dir = supplier_name, kind, base_url, drop_dir
        supplier.confirm_increases_after, supplier.enabled = spec.confirm_increases_after, spec.enabled
        if api_key is not None:
            supplier.api_key = api_key or None
        if webhook_secret is not None:
            supplier.webhook_secret = webhook_secret or None
        if transforms is not None and transforms != own:
            await session.execute(delete(models.StatusTransformConfig)
                                  .where(models.StatusTransformConfig.supplier_id == supplier.id))
            session.add_all([models.StatusTransformConfig(source=supplier_code, supplier_id=supplier.id,
                                                          entity_type=ENTITY, external_status=word,
                                                          internal_status=action)
                             for word, action in transforms.items()])
            own = transforms
        after = snapshot(supplier, own)
        if after != before:
            supplier.updated_at = models.utcnow()
            await session.flush()
            audit.record(session, caller.actor, "supplier.created" if before is None else "supplier.updated",
                         "Supplier", supplier.id, before=before, after=after)
    return supplier


async def suppliers(services: Services) -> list[models.Supplier]:
    async with services.sessions() as session:
        return list((await session.execute(select(models.Supplier).order_by(models.Supplier.code))).scalars())


async def supplier(services: Services, pk: int | None, id: str | None = None) -> models.Supplier:
    async with services.sessions() as session:
        found = await session.get(models.Supplier, pk) if pk is not None else None
    if found is None:
        raise NotFound("no supplier with that id", id)
    return found
