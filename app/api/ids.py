"""Relay global ids in inputs: decoded here so a wrong or foreign id is a clear InvalidInput."""

from __future__ import annotations

from strawberry import relay

from app.api.types import node_pk
from app.services.errors import InvalidInput


def to_global_id(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def decode_id(value: str, type_name: str, field: str) -> int:
    try:
        global_id = relay.GlobalID.from_id(value)
        pk = node_pk(global_id.node_id)
        if global_id.type_name != type_name or pk is None:
            raise ValueError
        return pk
    except (ValueError, relay.GlobalIDValueError):
        raise InvalidInput(field, f"{field} must be the id of a {type_name}, got {value!r}") from None


def decode_optional(value: str | None, type_name: str, field: str) -> int | None:
    return None if value is None else decode_id(value, type_name, field)


def decode_any(value: str, field: str) -> tuple[str, int]:
    try:
        global_id = relay.GlobalID.from_id(value)
        pk = node_pk(global_id.node_id)
        if pk is None:
            raise ValueError
        return global_id.type_name, pk
    except (ValueError, relay.GlobalIDValueError):
        raise InvalidInput(field, f"{field} is not a valid id: {value!r}") from None


def target_pk(value: str, type_name: str) -> int | None:
    """The entity a mutation acts on; None for an id that names no `type_name` (the use case
    answers NotFound, as for a missing one, after checking the rest of the input)."""
    try:
        return decode_id(value, type_name, "id")
    except InvalidInput:
        return None


def filter_pk(value: str, type_name: str) -> int:
    """The primary key a filter argument names; 0 (which matches nothing) for an id that is not a
    `type_name`: a list filtered by an unknown id is empty, not an error."""
    try:
        return decode_id(value, type_name, "id")
    except InvalidInput:
        return 0
